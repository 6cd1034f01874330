"""openfer: offline facial expression analysis on ONNX Runtime."""

from __future__ import annotations

__version__ = "0.1.0"
