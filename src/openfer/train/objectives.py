"""What :func:`openfer.train.recipe.train` optimises and selects on: the task's head, loss and
validation score.

``expression`` (the default): soft-label cross-entropy on ``(N, C)`` target distributions, selection
on validation accuracy. ``valence_arousal``: a 2-output ``tanh`` head trained on ``(N, 2)`` targets in
[-1, 1] with ``ccc_weight * (1 - mean CCC) + mse_weight * MSE`` (CCC computed per batch over each
dimension), selection on the validation CCC averaged over valence and arousal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..eval.datasets import VA_NAMES
from ..eval.metrics import regression_report
from .config import TrainConfig
from .nets import build

TASKS = ("expression", "valence_arousal")


class Objective(Protocol):
    """The task-specific parts of training."""

    task: ClassVar[str]
    metric: ClassVar[str]  # history/summary key of the selection score (higher is better)

    def build(self, cfg: TrainConfig, dropout: float) -> nn.Module: ...

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor: ...

    def score(self, pred: np.ndarray, target: np.ndarray) -> tuple[float, dict[str, float]]:
        """Selection score and extra per-epoch log columns for validation outputs ``pred``."""
        ...


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def batch_ccc(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Lin's CCC of each column of ``(B, K)`` tensors (population moments), differentiable."""
    mp, mt = pred.mean(0), target.mean(0)
    vp = pred.var(0, unbiased=False)
    vt = target.var(0, unbiased=False)
    cov = ((pred - mp) * (target - mt)).mean(0)
    return 2 * cov / (vp + vt + (mp - mt) ** 2 + eps)


@dataclass(frozen=True)
class Classification:
    """Expression classes: soft-label cross-entropy, selection on validation accuracy."""

    task: ClassVar[str] = "expression"
    metric: ClassVar[str] = "valid_acc"

    def build(self, cfg: TrainConfig, dropout: float) -> nn.Module:
        return build(cfg.arch, len(cfg.classes), dropout)

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_cross_entropy(out, target)

    def score(self, pred: np.ndarray, target: np.ndarray) -> tuple[float, dict[str, float]]:
        return float((pred.argmax(1) == target).mean()), {}


@dataclass(frozen=True)
class ValenceArousal:
    """Valence and arousal in [-1, 1]: ``ccc_weight * (1 - mean CCC) + mse_weight * MSE``.

    The CCC term is what the task is scored on; the small MSE term (weight 0.1 against 1.0) keeps the
    gradient informative when a batch's CCC is flat (near-constant predictions early in training)
    and anchors the absolute level. Selection on the mean validation CCC.
    """

    ccc_weight: float = 1.0
    mse_weight: float = 0.1
    task: ClassVar[str] = "valence_arousal"
    metric: ClassVar[str] = "valid_ccc"

    def build(self, cfg: TrainConfig, dropout: float) -> nn.Module:
        return build(cfg.arch, len(VA_NAMES), dropout, tanh=True)

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = out.float()
        c = batch_ccc(out, target)
        return self.ccc_weight * (1 - c.mean()) + self.mse_weight * F.mse_loss(out, target)

    def score(self, pred: np.ndarray, target: np.ndarray) -> tuple[float, dict[str, float]]:
        rep = regression_report(pred, target, VA_NAMES)
        extra = {f"valid_ccc_{k}": v for k, v in rep["ccc"].items()}
        extra.update({f"valid_rmse_{k}": v for k, v in rep["rmse"].items()})
        return rep["ccc_mean"], extra


def objective_for(task: str) -> Objective:
    if task == "expression":
        return Classification()
    if task == "valence_arousal":
        return ValenceArousal()
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
