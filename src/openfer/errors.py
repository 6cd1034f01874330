"""Exception tree. Every error openfer raises on purpose derives from :class:`OpenFerError`.

The CLI maps them to exit codes: ``InputError`` -> 3, ``WeightsError``/``ModelError`` -> 4.
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
