"""ONNX Runtime sessions for the shipped models, verified by sha256 at load."""

from .onnx import OnnxModel, as_model, list_models, model_path, registry, verified_path

__all__ = ["OnnxModel", "as_model", "list_models", "model_path", "registry", "verified_path"]
