"""Names that reach output files and the terminal, made safe to write.

File names are bytes on POSIX; Python decodes the ones that are not valid UTF-8 with surrogate
escapes (``b"bad\\xffname.jpg"`` -> ``"bad\\udcffname.jpg"``), which no UTF-8 writer accepts. And a
name may hold control characters (a newline splits a one-line message, an escape sequence can rewrite
the terminal).

* :func:`utf8_safe` replaces each undecodable byte with the text ``\\xNN`` (``"bad\\\\xffname.jpg"``):
  valid UTF-8, readable, and the same spelling ``ls -b`` shows. Used for CSV and Parquet cells.
* :func:`printable` does that and also escapes control characters (``\\n``, ``\\t``, ``\\x1b``...),
  for terminal lines, log messages and table cells that must stay on one line.

JSON output keeps names exact: ``json`` writes lone surrogates as ``\\udcff`` escapes, which Python and
JavaScript read back unchanged.
"""

from __future__ import annotations

import re

__all__ = ["printable", "utf8_safe"]

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def utf8_safe(text: str) -> str:
    """``text`` with surrogate escapes (undecodable file-name bytes) written as ``\\xNN``."""
    if not _SURROGATE.search(text):
        return text
    raw = text.encode("utf-8", "surrogateescape" if _only_escapes(text) else "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """:func:`utf8_safe` plus control characters escaped, so ``text`` is one safe terminal line."""
    return _CONTROL.sub(_escape, utf8_safe(text))


def _only_escapes(text: str) -> bool:
    return all("\udc80" <= c <= "\udcff" for c in _SURROGATE.findall(text))


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
