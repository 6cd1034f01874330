"""Several trained expression networks as one ONNX model: logits averaged, features concatenated
for the open-set head (``openfer.train.nets.Ensemble``), calibrated on FER2013Valid.

    python scripts/build_ensemble.py --runs /work/runs/fernet_s_e30_s0 /work/runs/fernet_s_e30_s1_deg \
        --data ../shared/datasets/ferplus --out /work/runs/fernet_s2/fernet_s2.onnx \
        [--cache /work/runs/openset/ferplus48.npz]

Prints the FER2013Valid accuracy (mirror-averaged) of each member and of the ensemble; the test
split is not touched here (``scripts/release_model.py`` reports it once for a shipped model).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--runs", type=Path, nargs="+", required=True, help="run folders with best.pt, config.json"
    )
    ap.add_argument("--data", type=Path, required=True, help="FER+ root")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, help="npz of 48x48 crops from scripts/openset_protocol.py")
    ap.add_argument("--template-from", default="fernet_s", help="shipped model whose crop template is reused")
    args = ap.parse_args()

    import torch

    from openfer.runtime.onnx import OnnxModel
    from openfer.train.config import TrainConfig
    from openfer.train.export import export_onnx, fit_temperature
    from openfer.train.nets import Ensemble, build
    from openfer.train.openset import fit_openset, views

    members, seeds, epochs, archs = [], [], [], []
    for run in args.runs:
        c = json.loads((run / "config.json").read_text())
        net = build(c["arch"], len(c["classes"]), 0.0)
        net.load_state_dict(torch.load(run / "best.pt", map_location="cpu", weights_only=False)["model"])
        members.append(net.eval())
        seeds.append(c["seed"])
        archs.append(c["arch"])
        epochs.append(c["epochs"])
    cfg = TrainConfig(arch=c["arch"], classes=tuple(c["classes"]), mean=c["mean"], std=c["std"])
    if args.cache and args.cache.exists():
        d = np.load(args.cache)
        xt, yt, xv, yv = d["train_x"], d["train_y"], d["valid_x"], d["valid_y"]
    else:
        from openfer.eval.datasets import load_gray_stack, read_ferplus

        tr, va = read_ferplus(args.data, "train"), read_ferplus(args.data, "valid")
        xt, yt, xv, yv = load_gray_stack(tr, 48), tr.labels, load_gray_stack(va, 48), va.labels
    report = {}
    for run, net in zip(args.runs, members, strict=True):
        lo = views(net, xv, cfg)[0]
        report[str(run)] = float((lo.argmax(1) == yv).mean())
    ens = Ensemble(members).eval()
    lo = views(ens, xv, cfg)[0]
    report["ensemble"] = float((lo.argmax(1) == yv).mean())
    temperature = fit_temperature(lo, yv)
    maha, cal = fit_openset(ens, cfg, xt, yt, xv, yv, temperature)
    spec = dict(OnnxModel.load(args.template_from).spec)
    for k in ("seed", "epochs", "best_valid_acc", "openset", "trained_on"):
        spec.pop(k, None)
    spec.update(
        {
            "arch": "ensemble:" + "+".join(archs),
            "members": [str(r.name) for r in args.runs],
            "seeds": seeds,
            "epochs": epochs,
            "temperature": temperature,
            "best_valid_acc": report["ensemble"],
            "trained_on": "ferplus/train",
            "openset": cal.to_dict(),
        }
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(ens, spec, args.out, openset=maha)
    command = (
        "python scripts/build_ensemble.py --runs "
        + " ".join(str(r) for r in args.runs)
        + f" --out {args.out}"
    )
    (args.out.parent / "ensemble.json").write_text(
        json.dumps(
            {
                "name": args.out.stem,
                "members": [str(r.resolve()) for r in args.runs],
                "command": command,
                "valid_accuracy": report,
                "temperature": temperature,
            },
            indent=1,
        )
        + "\n"
    )
    print(json.dumps({"valid_accuracy": report, "temperature": temperature, "out": str(args.out)}, indent=1))


if __name__ == "__main__":
    main()
