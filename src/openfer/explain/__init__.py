"""Explanations: reason texts (pure, in ``openfer.core.reasons``) and occlusion saliency maps."""

from ..core.reasons import compound_label, explain

__all__ = ["compound_label", "explain"]
