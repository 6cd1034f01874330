"""Give an already trained expression model the open-set head (``openfer train`` adds it to new
models itself): fit the Mahalanobis statistics of its features on FER2013Train, calibrate the
unknown score on FER2013Valid, and re-export the same weights with the second output.

    python scripts/add_openset_head.py --weights /work/runs/fernet_s_e30_s0/best.pt \
        --model fernet_s --data ../shared/datasets/ferplus --out /work/runs/fernet_s_e30_s0/fernet_s_open.onnx

The class probabilities of the new file equal the old ones (checked here on FER2013Valid).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True, help="best.pt of the training run")
    ap.add_argument("--model", default="fernet_s", help="the shipped model (its spec is reused)")
    ap.add_argument("--data", type=Path, required=True, help="FER+ root")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import torch

    from openfer.components.expression import ExpressionClassifier
    from openfer.eval.datasets import load_gray_stack, read_ferplus
    from openfer.runtime.onnx import OnnxModel
    from openfer.train.config import TrainConfig
    from openfer.train.export import export_onnx
    from openfer.train.nets import build
    from openfer.train.openset import fit_openset

    old = OnnxModel.load(args.model)
    spec = dict(old.spec)
    cfg = TrainConfig(arch=spec["arch"], classes=tuple(spec["classes"]), mean=spec["mean"], std=spec["std"])
    net = build(cfg.arch, len(cfg.classes), 0.0)
    st = torch.load(args.weights, map_location="cpu", weights_only=False)
    net.load_state_dict(st.get("model", st))
    tr, va = read_ferplus(args.data, "train"), read_ferplus(args.data, "valid")
    xt, xv = load_gray_stack(tr, spec["size"]), load_gray_stack(va, spec["size"])
    maha, cal = fit_openset(net, cfg, xt, tr.labels, xv, va.labels, float(spec["temperature"]))
    spec["openset"] = cal.to_dict()
    export_onnx(args.weights, spec, args.out, openset=maha)
    before = ExpressionClassifier(args.model).predict_crops(xv)
    new = ExpressionClassifier(str(args.out))
    after, unknown = new.predict_open(xv)
    diff = float(np.abs(after - before).max())
    print(
        json.dumps(
            {
                "out": str(args.out),
                "max_probability_change": diff,
                "valid_flagged_at_0.95": float((unknown > 0.95).mean()),
            }
        )
    )
    if diff > 1e-4:
        raise SystemExit(f"probabilities changed by {diff}: not the same model")


if __name__ == "__main__":
    main()
