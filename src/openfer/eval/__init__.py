"""Evaluation: data set readers, metrics and reports (core install, no PyTorch)."""
