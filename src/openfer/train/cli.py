"""``openfer train``: train an expression model on a labelled data set and export it to ONNX.

For FER+ (the default recipe) it trains on FER2013Train's vote distributions, selects the epoch on
FER2013Valid, fits a calibration temperature on FER2013Valid and never reads FER2013Test.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from ..io.tables import atomic_open, write_json

log = logging.getLogger("openfer.train")
MIN_TEMPLATE_FACES = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..eval.evaluate import FORMATS
    from .config import TrainConfig

    d = TrainConfig()
    p.add_argument("data", help="data set: FER+ root, a CSV (path,label) or an ImageFolder")
    p.add_argument("--format", choices=FORMATS, default=None, help="data set layout (default: guessed)")
    p.add_argument(
        "--valid",
        help="validation set; default: the data set's own validation split "
        "(FER+ FER2013Valid, fer2013.csv PublicTest) or a held-out fraction of the training data",
    )
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=0.1,
        help="fraction held out for validation when the data set has no validation split",
    )
    p.add_argument("--out", required=True, help="run folder: checkpoints, log, exported model")
    p.add_argument("--arch", default=d.arch)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--init-from", default="", help="fine-tune from a checkpoint (.pt)")
    p.add_argument(
        "--degrade-p",
        type=float,
        default=d.degrade_p,
        help="probability of blurring, noising, JPEG-compressing or downscaling a training image",
    )
    p.add_argument(
        "--template-images", type=int, default=2000, help="training images used to measure the crop template"
    )


def _load(data, size: int) -> np.ndarray:  # noqa: ANN001
    from ..eval.datasets import load_gray_stack

    return load_gray_stack(data, size)


def holdout(data, fraction: float, seed: int):  # noqa: ANN001, ANN201
    """Split ``data`` into (train, valid) with ``fraction`` of each class held out (seeded)."""
    rng = np.random.default_rng(seed)
    valid = np.zeros(len(data), bool)
    for c in np.unique(data.labels):
        idx = np.flatnonzero(data.labels == c)
        k = int(round(len(idx) * fraction))
        valid[rng.choice(idx, size=min(k, len(idx) - 1), replace=False) if len(idx) > 1 else []] = True
    return data.subset(~valid), data.subset(valid)


def ensure_template(path: Path, crops: np.ndarray, seed: int, n: int) -> dict:
    """Measure (once; cached in ``path``) the crop template on ``n`` random training crops."""
    from ..components.landmarks import FaceMesh
    from .template import fit_template, mesh_on_crops

    if not path.exists():
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(crops), size=min(n, len(crops)), replace=False))
        lm, sc = mesh_on_crops(crops[pick], FaceMesh(iris=False))
        if int((sc >= 0.5).sum()) >= MIN_TEMPLATE_FACES:
            template = fit_template(lm, sc, crops.shape[1])
        else:  # not face crops the mesh can read (tiny, synthetic, ...): FER+ framing of the default model
            from ..components.expression import ExpressionClassifier

            spec = ExpressionClassifier().spec
            log.warning(
                "face mesh found faces in %d of %d crops: using the default model's crop template",
                int((sc >= 0.5).sum()),
                len(sc),
            )
            template = {
                "template_index": list(spec.template_index),
                "template": [list(t) for t in spec.template],
                "n_used": 0,
                "n_total": len(sc),
                "source": "default model",
            }
        write_json(template, path)
    return json.loads(path.read_text())


def run(args: argparse.Namespace) -> int:
    import torch

    from ..eval.datasets import read_ferplus, relabel
    from ..eval.evaluate import _guess_format, read_dataset
    from .export import export_onnx, fit_temperature
    from .nets import build
    from .openset import fit_openset
    from .recipe import TrainConfig, predict_logits, train

    fmt = args.format
    if fmt == "ferplus" or (fmt is None and (Path(args.data) / "FER2013Train").is_dir()):
        tr, va = read_ferplus(args.data, "train"), read_ferplus(args.data, "valid")
        soft = tr.soft
    else:
        if fmt is None:
            fmt, _ = _guess_format(Path(args.data))
        tr = read_dataset(args.data, fmt, split="train", classes=None)
        tr = tr.subset(tr.labels >= 0)
        if args.valid:
            va = relabel(read_dataset(args.valid, fmt, split="valid", classes=None), tr.classes)
        elif fmt == "fer2013":  # fer2013.csv has its own validation split (PublicTest)
            va = relabel(read_dataset(args.data, fmt, split="valid", classes=None), tr.classes)
        else:  # hold out a seeded, stratified fraction of the training set
            tr, va = holdout(tr, args.valid_fraction, args.seed)
        soft = tr.soft if tr.soft is not None else np.eye(len(tr.classes), dtype=np.float32)[tr.labels]
    cfg_fields = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(
        **{
            k: v
            for k, v in dict(
                arch=args.arch,
                classes=tr.classes,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=args.seed,
                threads=args.threads,
                init_from=args.init_from,
                degrade_p=args.degrade_p,
            ).items()
            if k in cfg_fields
        }
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log.info("train %d images, valid %d, classes %s", len(tr), len(va), tr.classes)
    xt, xv = _load(tr, cfg.size), _load(va, cfg.size)
    va = va.subset(va.labels >= 0) if (va.labels < 0).any() else va
    xv = _load(va, cfg.size)
    summary = train(cfg, xt, soft, xv, va.labels, out)

    # crop template: where the face mesh lands on the training crops
    template = ensure_template(out / "template.json", xt, cfg.seed, args.template_images)

    model = build(cfg.arch, len(cfg.classes), 0.0)
    model.load_state_dict(torch.load(out / "best.pt", map_location="cpu", weights_only=False)["model"])
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    logits = predict_logits(model, xv, cfg)
    temperature = fit_temperature(logits, va.labels)
    labelled = tr.labels >= 0
    maha, openset = fit_openset(model, cfg, xt[labelled], tr.labels[labelled], xv, va.labels, temperature)
    spec = {
        "arch": cfg.arch,
        "classes": list(cfg.classes),
        "size": cfg.size,
        "color": "gray",
        "mean": cfg.mean,
        "std": cfg.std,
        "temperature": temperature,
        "template_index": template["template_index"],
        "template": template["template"],
        "crop": "similarity transform of the face mesh's rigid points onto 'template' (x, y in [0, 1])",
        "trained_on": summary.get("data", tr.name),
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "best_valid_acc": summary["best_valid_acc"],
        "openset": openset.to_dict(),
    }
    onnx_path = export_onnx(out / "best.pt", spec, out / f"{cfg.arch}.onnx", openset=maha)
    with atomic_open(out / "summary.json") as fh:
        json.dump({**summary, "temperature": temperature, "config": asdict(cfg)}, fh, indent=1, default=str)
    log.info(
        "best valid acc %.4f, temperature %.3f, exported %s",
        summary["best_valid_acc"],
        temperature,
        onnx_path,
    )
    print(f"exported {onnx_path} (valid accuracy {summary['best_valid_acc']:.4f})")
    return 0
