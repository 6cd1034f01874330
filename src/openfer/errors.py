"""Exception tree. Every error openfer raises on purpose derives from :class:`OpenFerError`.

The CLI maps them to exit codes: ``InputError`` -> 3, ``WeightsError``/``ModelError`` -> 4,
``MissingDependencyError`` -> 5, ``OutputError`` -> 6.
"""

from __future__ import annotations


class OpenFerError(Exception):
    """Base class of all openfer errors."""


class InputError(OpenFerError, ValueError):
    """A user-supplied input (file, array, data set) is missing, unreadable or malformed."""


class ShapeError(InputError):
    """An array has the wrong shape: names the field, the expected and the actual shape."""

    def __init__(self, field: str, expected: str, actual: tuple[int, ...]) -> None:
        super().__init__(f"{field}: expected shape {expected}, got {tuple(actual)}")
        self.field = field
        self.expected = expected
        self.actual = tuple(actual)


class ModelError(OpenFerError, RuntimeError):
    """A model cannot be loaded or run, or its metadata contradicts its registry entry."""


class WeightsError(ModelError):
    """A shipped weight file is missing or its sha256 does not match the registry."""


class MissingDependencyError(OpenFerError, ImportError):
    """An optional dependency is not installed: names the package, what needs it and the extra
    that installs it (``pip install 'openfer[EXTRA]'``). Not bad input: the same input works once the
    extra is installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(f"{purpose} needs {package}: pip install 'openfer[{extra}]'", name=package)
        self.package = package
        self.extra = extra
        self.purpose = purpose


class OutputError(OpenFerError, OSError):
    """An output file cannot be written (full disk, permissions, a missing folder): names the file."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path
        self.reason = reason
