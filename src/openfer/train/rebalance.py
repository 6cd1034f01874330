"""Rebalancing a trained classifier's last layer for the rare classes, without retraining the network.

Three levers on a frozen network (pure numpy, except :func:`replace_head` and
:func:`features_model`, which edit an exported ONNX graph with the ``onnx`` package):

* :func:`adjust_logits` -- post-hoc logit adjustment (Menon et al., 2021, "Long-tail learning via
  logit adjustment"): ``logits - tau * log(prior)``; the same as adding ``-tau log prior`` to the
  last layer's bias, so it can be written into the graph (:func:`adjusted_bias`).
* :func:`tau_normalize` -- divide each class's weight vector by its norm to the power ``tau``
  (Kang et al., 2020, "Decoupling representation and classifier for long-tailed recognition").
* :func:`fit_linear_head` -- classifier re-training (cRT, same paper) on frozen penultimate
  features: a new linear layer trained with the class-balanced (or logit-adjusted) soft-label
  cross-entropy, full batch, deterministic.

:func:`balanced_objective` ranks the candidates on validation data (UAR with an accuracy floor), and
:func:`pick_one_se` picks one with the one-standard-error rule (:func:`uar_standard_error`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ShapeError


def class_prior(targets: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Class frequencies from integer labels ``(N,)`` or soft targets ``(N, C)``; every class gets
    at least half a sample, so ``log(prior)`` is finite."""
    t = np.asarray(targets)
    if t.ndim == 1:
        c = int(num_classes if num_classes is not None else t.max() + 1)
        counts = np.bincount(t.astype(np.int64), minlength=c).astype(np.float64)
    elif t.ndim == 2:
        counts = t.astype(np.float64).sum(0)
    else:
        raise ShapeError("targets", "(N,) or (N, C)", t.shape)
    counts = np.maximum(counts, 0.5)
    return counts / counts.sum()


def adjust_logits(logits: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """``logits - tau * log(prior)``: ``tau = 1`` turns a prior-matched classifier into one for a
    uniform prior (the Bayes rule for balanced error)."""
    lo = np.asarray(logits, dtype=np.float64)
    p = np.asarray(prior, dtype=np.float64)
    if lo.ndim != 2 or p.shape != (lo.shape[1],):
        raise ShapeError("logits/prior", f"(N, C) and (C,), C={p.shape[0] if p.ndim else '?'}", lo.shape)
    return lo - tau * np.log(p)[None]


def adjusted_bias(bias: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """The last layer's bias that makes the network output :func:`adjust_logits` of its logits."""
    return np.asarray(bias, dtype=np.float64) - tau * np.log(np.asarray(prior, dtype=np.float64))


def tau_normalize(weight: np.ndarray, tau: float) -> np.ndarray:
    """``(C, D)`` weights with row ``c`` divided by ``||w_c|| ** tau`` (``tau = 0``: unchanged)."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 2:
        raise ShapeError("weight", "(C, D)", w.shape)
    return w / (np.linalg.norm(w, axis=1, keepdims=True) ** tau)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


@dataclass(frozen=True)
class LinearHead:
    """``logits = features @ weight.T + bias`` (``weight`` ``(C, D)``, ``bias`` ``(C,)``)."""

    weight: np.ndarray
    bias: np.ndarray

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.weight.T + self.bias


def fit_linear_head(
    features: np.ndarray,
    targets: np.ndarray,
    *,
    balance: str = "reweight",
    l2: float = 1e-4,
    steps: int = 400,
    lr: float = 0.05,
    init: LinearHead | None = None,
) -> LinearHead:
    """Train a linear head on frozen ``(N, D)`` features with soft ``(N, C)`` targets (rows sum to 1).

    ``balance``: ``"none"`` (plain cross-entropy), ``"reweight"`` (each sample weighted by the
    inverse frequency of its target classes: the expectation of class-balanced sampling, without
    its noise), or ``"logit_adjusted"`` (the loss sees ``logits + log(prior)``, Menon et al. 2021,
    so the head itself learns balanced scores). Features are standardised internally; the returned
    head applies to the raw features. Full-batch Adam, ``steps`` steps, from ``init`` (mapped into
    the standardised space) or zeros; deterministic.
    """
    f = np.asarray(features, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    if f.ndim != 2 or t.ndim != 2 or len(f) != len(t):
        raise ShapeError("features/targets", f"(N, D) and (N={len(f)}, C)", t.shape)
    if balance not in ("none", "reweight", "logit_adjusted"):
        raise ValueError(f"balance must be none, reweight or logit_adjusted, got {balance!r}")
    n, c = len(f), t.shape[1]
    mu, sd = f.mean(0), f.std(0) + 1e-6
    z = (f - mu) / sd
    prior = class_prior(t)
    sample_w = np.ones(n)
    if balance == "reweight":
        sample_w = t @ (1.0 / (c * prior))
    sample_w = sample_w / sample_w.sum()
    offset = np.log(prior) if balance == "logit_adjusted" else np.zeros(c)
    if init is None:
        w, b = np.zeros((c, f.shape[1])), np.zeros(c)
    else:  # logits = z @ (W sd).T + (b + W mu)
        w = np.asarray(init.weight, dtype=np.float64) * sd[None]
        b = np.asarray(init.bias, dtype=np.float64) + init.weight @ mu
    params = [w, b]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for step in range(1, steps + 1):
        p = np.exp(_log_softmax(z @ w.T + b + offset))
        g = (p - t) * sample_w[:, None]  # d loss / d logits
        grads = [g.T @ z + l2 * w, g.sum(0)]
        for i, (pa, gr) in enumerate(zip(params, grads, strict=True)):
            m[i] = 0.9 * m[i] + 0.1 * gr
            v[i] = 0.999 * v[i] + 0.001 * gr**2
            pa -= lr * (m[i] / (1 - 0.9**step)) / (np.sqrt(v[i] / (1 - 0.999**step)) + 1e-8)
    return LinearHead(w / sd[None], b - (w / sd[None]) @ mu)


def balanced_objective(probs: np.ndarray, labels: np.ndarray, min_accuracy: float) -> float:
    """UAR of ``argmax(probs)`` if its accuracy is at least ``min_accuracy``, else ``accuracy - 1``
    (below every feasible candidate, and still ordered by accuracy)."""
    y = np.asarray(labels)
    pred = np.asarray(probs).argmax(1)
    acc = float((pred == y).mean())
    if acc < min_accuracy:
        return acc - 1.0
    present = np.unique(y)
    return float(np.mean([(pred[y == k] == k).mean() for k in present]))


def uar_standard_error(pred: np.ndarray, labels: np.ndarray, n: int = 300, seed: int = 0) -> float:
    """Bootstrap standard error of the UAR of predictions ``pred`` (resampling the images; with a
    class of 16 images it is about 0.02)."""
    y, p = np.asarray(labels), np.asarray(pred)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        yy, pp = y[i], p[i]
        out.append(np.mean([(pp[yy == k] == k).mean() for k in np.unique(yy)]))
    return float(np.std(out))


def pick_one_se(uar: np.ndarray, accuracy: np.ndarray, min_accuracy: float, se: float) -> int:
    """Index of a candidate by the one-standard-error rule: among those with ``accuracy >=
    min_accuracy``, the most accurate one whose UAR is within ``se`` of the best UAR (UAR
    differences smaller than their noise do not buy accuracy away). None feasible: the most accurate."""
    u, a = np.asarray(uar, dtype=np.float64), np.asarray(accuracy, dtype=np.float64)
    ok = a >= min_accuracy
    if not ok.any():
        return int(np.argmax(a))
    near = ok & (u >= u[ok].max() - se)
    return int(np.flatnonzero(near)[np.argmax(a[near])])


def _head_gemm(graph, output: str = "logits"):  # noqa: ANN001, ANN202
    for node in graph.node:
        if output in node.output and node.op_type == "Gemm":
            return node
    raise ValueError(f"the graph has no Gemm node producing {output!r}")


def head_of(model) -> LinearHead:  # noqa: ANN001
    """The ``Gemm`` layer that produces the ``logits`` output of an ONNX model (``transB = 1``)."""
    from onnx import numpy_helper

    node = _head_gemm(model.graph)
    inits = {i.name: i for i in model.graph.initializer}
    trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
    w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
    b = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
    return LinearHead(w if trans_b else w.T, b)


def replace_head(model, head: LinearHead, spec: dict | None = None):  # noqa: ANN001, ANN201
    """A copy of the ONNX ``model`` whose ``logits`` Gemm uses ``head`` (every other node, output and
    initializer, e.g. the open-set distance, unchanged); ``spec`` replaces the ``openfer.spec``
    metadata when given."""
    import onnx
    from onnx import numpy_helper

    from ..runtime.onnx import SPEC_KEY

    out = onnx.ModelProto()
    out.CopyFrom(model)
    node = _head_gemm(out.graph)
    trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
    w = np.asarray(head.weight, dtype=np.float32)
    new = {node.input[1]: w if trans_b else w.T, node.input[2]: np.asarray(head.bias, dtype=np.float32)}
    for init in out.graph.initializer:
        if init.name in new:
            arr = new[init.name]
            old = numpy_helper.to_array(init)
            if old.shape != arr.shape:
                raise ShapeError(f"head {init.name}", str(old.shape), arr.shape)
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
    if spec is not None:
        kept = [p for p in out.metadata_props if p.key != SPEC_KEY]
        del out.metadata_props[:]
        out.metadata_props.extend(kept)
        p = out.metadata_props.add()
        p.key, p.value = SPEC_KEY, json.dumps(spec)
    return out


def features_model(model, name: str = "features"):  # noqa: ANN001, ANN201
    """A copy of the ONNX ``model`` with one more output, ``name``: the input of the ``logits``
    Gemm (the penultimate features, ``(N, D)``)."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    node = _head_gemm(out.graph)
    dim = head_of(model).weight.shape[1]
    out.graph.node.append(onnx.helper.make_node("Identity", [node.input[0]], [name]))
    out.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["N", dim]))
    return out


def save_model(model, path: str | Path) -> Path:  # noqa: ANN001
    """Write an ONNX model atomically."""
    import onnx

    from ..io.tables import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))
    return path


__all__ = [
    "LinearHead",
    "adjust_logits",
    "adjusted_bias",
    "balanced_objective",
    "class_prior",
    "features_model",
    "fit_linear_head",
    "head_of",
    "pick_one_se",
    "replace_head",
    "save_model",
    "tau_normalize",
    "uar_standard_error",
]
