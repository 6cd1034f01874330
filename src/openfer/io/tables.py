"""Writers for analysis records: JSON, CSV and Parquet, each written atomically (temp file + rename).

A write that fails (full disk, permissions, a path that is a folder) raises
:class:`~openfer.errors.OutputError` naming the file, and leaves no partial file behind. Text cells
of CSV and Parquet go through :func:`openfer.io.text.printable` (undecodable file-name bytes as
``\\xNN``, control characters escaped); JSON keeps strings exact.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..errors import OutputError
from ..extras import require
from .text import printable


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step, on error
    it is removed, so readers never see a half-written file. The file gets the usual (umask)
    permissions, not mkstemp's owner-only ones."""
    path = Path(path)
    check_folders(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "it is a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise _output_error(path, e) from None
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, OutputError):
            raise _output_error(path, e) from None
        raise


def check_folders(path: str | Path) -> None:
    """:class:`OutputError` when the nearest existing ancestor of ``path`` is a file (so ``path``
    can never be written): what a batch checks before any work, and every write before writing."""
    path = Path(path)
    for up in path.parents:
        if up.exists():
            if not up.is_dir():
                raise OutputError(printable(str(path)), f"{printable(str(up))} is a file, not a folder")
            return


def _output_error(path: Path, e: OSError) -> OutputError:
    return OutputError(printable(str(path)), e.strerror or str(e))


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open`` for writing through :func:`atomic_path`; the data is flushed to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_json(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=1, allow_nan=False, default=_json_default)
        fh.write("\n")
    return path


def write_json_stream(head: dict[str, Any], key: str, items: Iterable[Any], path: str | Path) -> Path:
    """What :func:`write_json` writes for ``{**head, key: list(items)}``, byte for byte, without holding
    the list: the items are encoded one at a time as they come (a batch's JSON document is assembled
    this way from its work files)."""
    path = Path(path)
    opts: dict[str, Any] = {"indent": 1, "allow_nan": False, "default": _json_default}
    if key in head:
        raise ValueError(f"{key!r} is both in head and the streamed key")
    top = json.dumps({**head, key: []}, **opts)
    assert top.endswith("[]\n}")  # the streamed key is the last one
    with atomic_open(path) as fh:
        fh.write(top[: -len("[]\n}")])
        sep = "["
        for item in items:
            fh.write(sep + "\n  " + json.dumps(item, **opts).replace("\n", "\n  "))
            sep = ","
        fh.write("[]\n}\n" if sep == "[" else "\n ]\n}\n")
    return path


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def columns_of(records: Iterable[dict[str, Any]]) -> list[str]:
    """Every key of the records, in the order first seen."""
    cols: dict[str, None] = {}
    for r in records:
        cols.update(dict.fromkeys(r))
    return list(cols)


def write_csv(
    records: Iterable[dict[str, Any]], path: str | Path, columns: Sequence[str] | None = None
) -> Path:
    """One row per record; nested values (landmark lists) are JSON-encoded. With ``columns`` the records
    are read once, as they come (an iterator is enough); without, they must be a sequence."""
    path = Path(path)
    if not columns:
        records = list(records)
    cols = list(columns) if columns else columns_of(records)
    with atomic_open(path, newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow({k: _cell(v) for k, v in r.items()})
    return path


def _cell(v: Any) -> Any:
    if isinstance(v, str):
        return printable(v)
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def records_to_dataframe(records: Sequence[dict[str, Any]], classes: Sequence[str] = ()) -> Any:
    pd = require("pandas", "tables", "DataFrames")
    if records:
        return pd.DataFrame.from_records(list(records))
    base = [
        "source",
        "frame",
        "time",
        "face",
        "x1",
        "y1",
        "x2",
        "y2",
        "score",
        "landmark_score",
        "yaw",
        "pitch",
        "roll",
        "label",
        "label_score",
        *classes,
    ]
    return pd.DataFrame(columns=base)


def write_parquet(records: Sequence[dict[str, Any]], path: str | Path, classes: Sequence[str] = ()) -> Path:
    path = Path(path)
    require("pyarrow", "tables", "Parquet output")
    safe = [{k: printable(v) if isinstance(v, str) else v for k, v in r.items()} for r in records]
    df = records_to_dataframe(safe, classes)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path
