"""What :func:`openfer.train.recipe.train` optimises and selects on: the task's head, loss and
validation score.

``expression`` (the default): soft-label cross-entropy on ``(N, C)`` target distributions, selection
on validation accuracy (validation UAR logged beside it). With ``TrainConfig.logit_adjust`` tau > 0 the
loss is the logit-adjusted cross-entropy of Menon et al. (ICLR 2021, "Long-tail learning via logit
adjustment"): the cross-entropy of ``logits + tau * log(prior)``, ``prior`` the mean training target.
The network's own logits then estimate a class-balanced posterior, so rare classes (contempt, disgust)
are not traded away for the frequent ones during feature learning; the prior is added back post hoc
(:mod:`openfer.train.rebalance`) to choose the accuracy/UAR trade-off on validation data. ``valence_arousal``: a 2-output ``tanh`` head trained on ``(N, 2)`` targets in
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


def log_prior(targets: np.ndarray, floor: float = 1e-4) -> np.ndarray:
    """``log`` of the class prior of ``(N, C)`` training targets (mean row), each class at least ``floor``."""
    prior = np.maximum(np.asarray(targets, np.float64).mean(0), floor)
    return np.log(prior / prior.sum()).astype(np.float32)


@dataclass(frozen=True)
class Classification:
    """Expression classes: soft-label cross-entropy (logit-adjusted when ``tau`` > 0 and a ``log_prior``
    is given), selection on validation accuracy, validation UAR logged as ``valid_uar``."""

    tau: float = 0.0
    log_prior: tuple[float, ...] = ()
    task: ClassVar[str] = "expression"
    metric: ClassVar[str] = "valid_acc"

    def build(self, cfg: TrainConfig, dropout: float) -> nn.Module:
        return build(cfg.arch, len(cfg.classes), dropout)

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.tau and self.log_prior:
            out = out.float() + self.tau * torch.tensor(self.log_prior, dtype=torch.float32, device=out.device)
        return soft_cross_entropy(out, target)

    def score(self, pred: np.ndarray, target: np.ndarray) -> tuple[float, dict[str, float]]:
        """Accuracy (selection) and UAR. With the logit-adjusted loss the network's logits are the
        balanced ones: the UAR is theirs, the accuracy that of ``logits + tau * log prior`` (the
        estimate of the ordinary posterior), so that selection does not favour the epochs that
        learnt the rare classes least."""
        hit = pred.argmax(1) == target
        recalls = [float(hit[target == c].mean()) for c in np.unique(target)]
        if self.tau and self.log_prior:
            hit = (pred + self.tau * np.asarray(self.log_prior)).argmax(1) == target
        return float(hit.mean()), {"valid_uar": float(np.mean(recalls))}


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


def objective_for(task: str, cfg: TrainConfig | None = None, targets: np.ndarray | None = None) -> Objective:
    """The objective of ``task``; for ``expression`` with ``cfg.logit_adjust`` > 0 the logit-adjusted
    loss with the prior of the training ``targets``."""
    if task == "expression":
        tau = cfg.logit_adjust if cfg is not None else 0.0
        if tau and targets is None:
            raise ValueError("the logit-adjusted loss needs the training targets for its prior")
        return Classification(tau, tuple(log_prior(targets).tolist()) if tau else ())
    if task == "valence_arousal":
        return ValenceArousal()
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
