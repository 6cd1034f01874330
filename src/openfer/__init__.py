"""openfer: offline facial expression analysis on ONNX Runtime.

>>> import openfer
>>> analyzer = openfer.Analyzer()                 # doctest: +SKIP
>>> result = analyzer.analyze("photo.jpg")        # doctest: +SKIP

Names are imported lazily, so ``import openfer`` stays fast and loads no model.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Analyzer": "openfer.pipeline",
    "AnalyzerOptions": "openfer.pipeline",
    "PRESETS": "openfer.pipeline",
    "Faces": "openfer.types",
    "Face": "openfer.types",
    "FrameResult": "openfer.types",
    "EXPRESSIONS": "openfer.types",
    "OpenFerError": "openfer.errors",
    "InputError": "openfer.errors",
    "ModelError": "openfer.errors",
    "WeightsError": "openfer.errors",
    "read_image": "openfer.io.images",
    "list_models": "openfer.runtime.onnx",
    "MissingDependencyError": "openfer.errors",
    "OutputError": "openfer.errors",
    "VideoAnalyzer": "openfer.video",
    "Timeline": "openfer.video",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'openfer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
