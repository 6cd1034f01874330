"""ONNX export of a trained expression (or valence/arousal) network with its preprocessing spec in
the metadata, and temperature calibration on validation logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..core.openset import Mahalanobis
from ..io.tables import atomic_path
from ..runtime.onnx import SPEC_KEY
from .nets import build


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising the NLL of ``softmax(logits / T)`` (golden-section search on log T)."""
    lo = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)

    def nll(log_t: float) -> float:
        z = lo / np.exp(log_t)
        z -= z.max(1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return float(-lp[np.arange(len(y)), y].mean())

    a, b = np.log(0.25), np.log(8.0)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(60):
        if nll(c) < nll(d):
            b, d = d, c
            c = b - g * (b - a)
        else:
            a, c = c, d
            d = a + g * (b - a)
    return float(np.exp((a + b) / 2))


def export_onnx(
    weights: str | Path | torch.nn.Module,
    spec: dict,
    out: str | Path,
    opset: int = 17,
    openset: Mahalanobis | None = None,
) -> Path:
    """Export ``weights`` (a state dict, or a checkpoint with ``model``) of ``spec["arch"]``, or a
    built network (a module with ``features`` and ``fc``, e.g. :class:`~openfer.train.nets.Ensemble`).

    The model takes ``(N, 1, S, S)`` float32 normalised crops and returns ``(N, C)`` logits; ``spec``
    (arch, classes, size, mean, std, template, temperature, …) is stored as JSON under ``openfer.spec``.
    With ``openset`` it has a second output, ``mahalanobis`` ``(N,)`` (see
    :class:`~openfer.train.openset.WithDistance`); ``spec["openset"]`` should then hold its calibration.

    A valence/arousal network (``spec["task"] == "valence_arousal"``, ``spec["outputs"]`` naming the
    columns) has a ``tanh`` head and one output, ``valence_arousal`` ``(N, 2)`` in [-1, 1].
    """
    import onnx

    regression = spec.get("task") == "valence_arousal"
    if regression and openset is not None:
        raise ValueError("a valence/arousal model has no open-set head")
    if isinstance(weights, torch.nn.Module):
        model = weights
    else:
        st = torch.load(weights, map_location="cpu", weights_only=False)
        n_out = len(spec["outputs"]) if regression else len(spec["classes"])
        model = build(spec["arch"], n_out, 0.0, tanh=regression)
        model.load_state_dict(st.get("model", st))
    model.eval()
    names = ["valence_arousal"] if regression else ["logits"]
    if openset is not None:
        from .openset import WithDistance

        model = WithDistance(model, openset).eval()
        names.append("mahalanobis")
    x = torch.zeros(1, 1, spec["size"], spec["size"])
    out = Path(out)
    with atomic_path(out, suffix=".onnx") as tmp:
        torch.onnx.export(
            model,
            x,
            str(tmp),
            input_names=["input"],
            output_names=names,
            dynamic_axes={"input": {0: "N"}, **{n: {0: "N"} for n in names}},
            opset_version=opset,
            dynamo=False,
        )
        m = onnx.load(str(tmp))
        del m.metadata_props[:]
        p = m.metadata_props.add()
        p.key, p.value = SPEC_KEY, json.dumps(spec)
        m.producer_name = "openfer"
        onnx.save(m, str(tmp))
    return out


def weights_from_onnx(path: str | Path, calib: torch.Tensor | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild the trainable network of an openfer expression ``.onnx`` (its ``arch`` from the spec)
    with the exported weights, for fine-tuning a shipped model whose checkpoint is not at hand.

    Export folds every BatchNorm into the conv before it (``W' = W * g / s``, bias ``b'``). Here each
    conv gets ``W'`` back and its BatchNorm is set to reproduce ``x + b'`` exactly in eval mode; with
    ``calib`` (normalised crops ``(N, 1, S, S)``, e.g. 1,000 training images) its statistics are
    those of its inputs on them (``mean m``, ``var v``; ``gamma = sqrt(v + eps)``, ``beta = m + b'``),
    so that training mode, which normalises by batch statistics, starts from the same function too.
    Returns the network (eval mode) and the spec.
    """
    import json as _json

    import onnx
    from onnx import numpy_helper

    from ..runtime.onnx import SPEC_KEY

    m = onnx.load(str(path))
    meta = {p.key: p.value for p in m.metadata_props}
    spec = _json.loads(meta[SPEC_KEY])
    init = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in m.graph.initializer}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    net = build(spec["arch"], len(spec["classes"]), 0.0)
    pairs = [(mod[0], mod[1]) for mod in net.modules() if isinstance(mod, torch.nn.Sequential)
             and len(mod) == 2 and isinstance(mod[0], torch.nn.Conv2d) and isinstance(mod[1], torch.nn.BatchNorm2d)]
    if len(pairs) != len(convs):
        raise ValueError(f"{path}: {len(convs)} convolutions in the graph, {len(pairs)} in {spec['arch']}")
    with torch.no_grad():
        for (conv, bn), node in zip(pairs, convs, strict=True):
            w, b = init[node.input[1]], init[node.input[2]]
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise ValueError(f"{path}: conv {node.input[1]} is {tuple(w.shape)}, expected {tuple(conv.weight.shape)}")
            conv.weight.copy_(w)
            bn.weight.fill_(1.0)
            bn.bias.copy_(b)
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        net.fc.weight.copy_(init["net.fc.weight"])
        net.fc.bias.copy_(init["net.fc.bias"])
    net.eval()
    if calib is not None:
        stats: dict[torch.nn.BatchNorm2d, torch.Tensor] = {}
        hooks = [bn.register_forward_pre_hook(lambda mod, inp: stats.__setitem__(mod, inp[0].detach()))
                 for _, bn in pairs]
        with torch.no_grad():
            net(calib)
            for h in hooks:
                h.remove()
            for _, bn in pairs:
                x = stats[bn]
                mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
                bias = bn.bias.clone()
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
                bn.weight.copy_(torch.sqrt(var + bn.eps))
                bn.bias.copy_(mean + bias)
    return net, spec
