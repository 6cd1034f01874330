"""Optional dependencies: :func:`require` imports one or raises
:class:`~openfer.errors.MissingDependencyError` naming the extra that installs it.

``import openfer`` never imports an extra; each feature that needs one calls :func:`require` when it
runs, so a missing extra is reported as such (CLI exit code 5), not as bad input.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """``import module``, or :class:`MissingDependencyError` (``purpose`` needs ``module``: install
    ``openfer[extra]``). Only a missing top-level package counts; an error inside an installed
    package propagates unchanged."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        top = module.split(".")[0]
        if e.name is None or e.name.split(".")[0] != top:
            raise
        raise MissingDependencyError(top, extra, purpose) from None
