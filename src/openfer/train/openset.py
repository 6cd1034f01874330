"""Open-set head for a trained expression network: Mahalanobis statistics of its penultimate
features and the calibration of ``unknown_score`` (see :mod:`openfer.core.openset`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core.openset import Mahalanobis, OpenSetCalibration, msp_score
from .config import TrainConfig
from .recipe import _normalize

# How the shipped score combines the evidence: z(mahalanobis) + z(msp). The choice and its
# measurement are in docs/validation.md (scripts/openset_protocol.py).
DEFAULT_WEIGHTS: dict[str, float] = {"mahalanobis": 1.0, "msp": 1.0}


@torch.no_grad()
def views(model: nn.Module, x_u8: np.ndarray, cfg: TrainConfig, batch: int = 512) -> tuple[np.ndarray, ...]:
    """Mirror-averaged logits and the features of the crops and of their mirror images."""
    model.eval()
    lo, fe, ff = [], [], []
    for i in range(0, len(x_u8), batch):
        xb = _normalize(torch.from_numpy(x_u8[i : i + batch]).unsqueeze(1), cfg).float()
        f, g = model.features(xb), model.features(torch.flip(xb, dims=[3]))
        fe.append(f.numpy())
        ff.append(g.numpy())
        lo.append(((model.fc(f) + model.fc(g)) / 2).numpy())
    d = getattr(model, "num_features", 0)
    if not lo:
        return np.zeros((0, 0)), np.zeros((0, d)), np.zeros((0, d))
    return np.concatenate(lo), np.concatenate(fe), np.concatenate(ff)


def mean_distance(maha: Mahalanobis, f: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The open-set distance as the ONNX model reports it: the mean over the face and its mirror."""
    return (maha.score(f) + maha.score(g)) / 2


def fit_openset(
    model: nn.Module,
    cfg: TrainConfig,
    train_x: np.ndarray,
    train_labels: np.ndarray,
    valid_x: np.ndarray,
    valid_labels: np.ndarray,
    temperature: float,
    weights: dict[str, float] | None = None,
) -> tuple[Mahalanobis, OpenSetCalibration]:
    """Fit class means and shared covariance on the training features (both views, majority
    labels), then calibrate the combined score on the validation faces of known classes."""
    _, tf, tg = views(model, train_x, cfg)
    maha = Mahalanobis.fit(np.concatenate([tf, tg]), np.concatenate([train_labels, train_labels]))
    vl, vf, vg = views(model, valid_x, cfg)
    known = valid_labels >= 0
    scores = {"mahalanobis": mean_distance(maha, vf, vg)[known], "msp": msp_score(vl, temperature)[known]}
    return maha, OpenSetCalibration.fit(scores, weights or DEFAULT_WEIGHTS)


class WithDistance(nn.Module):
    """The network plus a second output: the squared Mahalanobis distance of its features to the
    nearest class mean, as ``||f L - mu L||^2`` with ``precision = L L^T`` (Cholesky)."""

    def __init__(self, net: nn.Module, maha: Mahalanobis) -> None:
        super().__init__()
        self.net = net
        lo = torch.linalg.cholesky(torch.from_numpy(maha.precision))
        self.register_buffer("proj", lo.float())
        self.register_buffer("centres", (torch.from_numpy(maha.means) @ lo).float())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.net.features(x)
        g = f @ self.proj
        d = ((g[:, None, :] - self.centres[None]) ** 2).sum(-1)
        return self.net.fc(f), d.min(1).values
