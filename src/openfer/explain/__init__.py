"""Explanations: why a face got its label, from measured evidence (AUs, probabilities)."""

from .reasons import compound_label, explain

__all__ = ["compound_label", "explain"]
