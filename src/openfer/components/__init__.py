"""Model components: each wraps one ONNX model with pure pre- and post-processing."""
