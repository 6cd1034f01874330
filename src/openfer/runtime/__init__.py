"""ONNX Runtime sessions for the shipped models, verified by sha256 at load."""

from .onnx import OnnxModel, model_path, registry, verified_path

__all__ = ["OnnxModel", "model_path", "registry", "verified_path"]
