"""``openfer train``: train an expression model on a labelled data set and export it to ONNX.

For FER+ (the default recipe) it trains on FER2013Train's vote distributions, selects the epoch on
FER2013Valid, fits a calibration temperature on FER2013Valid and never reads FER2013Test.

``--task va`` trains a valence/arousal regressor instead, on a ``path,valence,arousal`` CSV (or an
AffectNet CSV): same networks with a 2-output ``tanh`` head, loss ``1 - mean CCC`` plus a small MSE
term (:mod:`openfer.train.objectives`), selection on the validation CCC, ONNX spec
``{"task": "valence_arousal", "outputs": ["valence", "arousal"], ...}`` for
``AnalyzerOptions(va_model=...)``.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np

from ..io.tables import atomic_open, write_json

log = logging.getLogger("openfer.train")
MIN_TEMPLATE_FACES = 20
TASK_CHOICES = ("expression", "va")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..eval.evaluate import FORMATS
    from .config import TrainConfig

    d = TrainConfig()
    p.add_argument(
        "data", help="data set: FER+ root, a CSV (path,label or path,valence,arousal) or an ImageFolder"
    )
    p.add_argument(
        "--task",
        choices=TASK_CHOICES,
        default=None,
        help="expression classes or valence/arousal regression (va); default: va for a CSV with "
        "valence and arousal columns and no label column, else expression",
    )
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
    p.add_argument(
        "--init-from",
        default="",
        help="fine-tune from a checkpoint (.pt), an exported openfer .onnx or a shipped model name (e.g. fernet_s)",
    )
    p.add_argument(
        "--degrade-p",
        type=float,
        default=d.degrade_p,
        help="probability of blurring, noising, JPEG-compressing or downscaling a training image",
    )
    p.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="bf16 autocast: auto (default) uses it only on CPUs with native bf16, where it is ~2.7x "
        "faster; elsewhere it is emulated and ~14x slower than fp32",
    )
    p.add_argument(
        "--freeze",
        default="",
        metavar="MODULES",
        help="comma-separated modules kept fixed while fine-tuning (e.g. stem,stages.0,stages.1 with --init-from)",
    )
    p.add_argument(
        "--logit-adjust",
        type=float,
        default=d.logit_adjust,
        metavar="TAU",
        help="train with the logit-adjusted loss (cross-entropy of logits + TAU * log class prior) so "
        "that rare classes shape the features; 0 (default): plain cross-entropy",
    )
    p.add_argument(
        "--scale",
        type=float,
        nargs=2,
        default=list(d.scale),
        metavar=("LO", "HI"),
        help=f"random zoom range of the crop augmentation (> 1: tighter; default {d.scale[0]} {d.scale[1]})",
    )
    p.add_argument(
        "--template-images", type=int, default=2000, help="training images used to measure the crop template"
    )
    p.add_argument(
        "--teacher",
        nargs="+",
        default=[],
        metavar="MODEL",
        help="distill: ONNX expression models (names or paths) whose mirror-averaged predictions on the "
        "training crops are blended into the targets (see openfer.train.distill); teachers must not "
        "have seen the validation or test images",
    )
    p.add_argument(
        "--teacher-run",
        nargs="+",
        default=[],
        metavar="RUN",
        help="distill online: run folders of this command (best.pt + config.json, trained on the same "
        "training set) whose networks see every augmented batch the student sees; their mean posterior "
        "is blended into its targets with --teacher-weight. Runs the teachers on --device",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="where to train: cpu, cuda, cuda:N, or auto (default: cuda where PyTorch sees a GPU, else cpu)",
    )
    p.add_argument(
        "--time-budget",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="fit the run into SECONDS: after the first epoch the epoch count is lowered to what fits "
        "(recorded in config.json; rerun with that --epochs to repeat it)",
    )
    stage = p.add_mutually_exclusive_group()
    stage.add_argument(
        "--train-only",
        action="store_true",
        help="train and stop (best.pt, last.pt, log.csv, config.json in --out): e.g. on a GPU machine "
        "without the face-mesh models; export later with --export-only",
    )
    stage.add_argument(
        "--export-only",
        action="store_true",
        help="export the finished run in --out (its best.pt, config.json and log.csv) to ONNX without "
        "training: crop template, temperature and open-set head fitted on DATA here",
    )
    p.add_argument(
        "--teacher-weight",
        type=_unit_float,
        default=0.5,
        help="weight of the teachers' predictions in the blended targets (default 0.5)",
    )


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not v >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"must be >= 0 (0: no budget), got {text}")
    return v


def _unit_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {v:g}")
    return v


def _load(data, size: int) -> np.ndarray:  # noqa: ANN001
    from ..eval.datasets import load_gray_stack

    return load_gray_stack(data, size)


def guess_task(data: str | Path, task: str | None) -> str:
    """``"expression"`` or ``"valence_arousal"``: ``task`` when given (``va`` is short for the latter),
    else valence/arousal for a CSV (or a folder's ``labels.csv``) that has valence and arousal columns
    and no label column."""
    if task is not None:
        return "valence_arousal" if task in ("va", "valence_arousal") else "expression"
    p = Path(data)
    if p.is_dir() and (p / "labels.csv").is_file():
        p = p / "labels.csv"
    if p.is_file() and p.suffix.lower() == ".csv":
        from ..eval.evaluate import _csv_header

        head = _csv_header(p)
        if {"valence", "arousal"} <= head and not head & {"label", "emotion", "expression"}:
            return "valence_arousal"
    return "expression"


def _config(args: argparse.Namespace, **extra: object):  # noqa: ANN202
    """The :class:`TrainConfig` of the command line (arguments it does not know are left out)."""
    from .config import TrainConfig

    names = {f.name for f in fields(TrainConfig)}
    device = _device(getattr(args, "device", "cpu"))
    given = dict(
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        init_from=args.init_from,
        degrade_p=args.degrade_p,
        logit_adjust=getattr(args, "logit_adjust", 0.0),
        bf16=_bf16(getattr(args, "bf16", "auto"), device),
        freeze=getattr(args, "freeze", ""),
        scale=tuple(getattr(args, "scale", TrainConfig.scale)),
        device=device,
        time_budget=getattr(args, "time_budget", 0.0),
        teacher_runs=tuple(str(t) for t in getattr(args, "teacher_run", None) or ()),
        teacher_weight=getattr(args, "teacher_weight", 0.5),
        **extra,
    )
    return TrainConfig(**{k: v for k, v in given.items() if k in names})


def _init_sha256(init_from: str) -> str:
    from ..runtime.onnx import registry, sha256_file, verified_file

    if init_from in registry():
        return verified_file(init_from)[1]
    if not Path(init_from).is_file():
        from ..errors import InputError

        raise InputError(f"--init-from {init_from}: not found (a .pt checkpoint, an .onnx or a shipped model name)")
    return sha256_file(Path(init_from))


def _device(choice: str) -> str:
    """``auto``: ``cuda`` where PyTorch sees a GPU, else ``cpu``; anything else as given (checked)."""
    import torch

    from ..errors import InputError

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(choice)
    except RuntimeError:
        raise InputError(f"--device {choice}: not a device (cpu, cuda, cuda:N or auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {choice}: PyTorch sees no CUDA GPU here")
    return choice


def _run_config(out: Path):  # noqa: ANN202
    """The :class:`TrainConfig` a finished run in ``out`` recorded (``config.json``); the export runs on
    the CPU whatever device trained it."""
    from ..errors import InputError
    from .config import TrainConfig

    for name in ("config.json", "best.pt"):
        if not (out / name).is_file():
            raise InputError(f"{out / name}: not found (--export-only exports a run folder of `openfer train`)")
    raw = json.loads((out / "config.json").read_text())
    known = {f.name for f in fields(TrainConfig)}
    vals = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if k in known}
    return TrainConfig(**vals)


def _run_summary(out: Path, metric: str) -> dict:
    """What :func:`~openfer.train.recipe.train` returns, read back from a finished run folder."""
    import csv

    import torch

    best = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    history = []
    if (out / "log.csv").is_file():
        with open(out / "log.csv", newline="") as fh:
            history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    return {f"best_{metric}": float(best[metric]), "epochs": len(history), "history": history}


def _bf16(choice: str, device: str = "cpu") -> bool:
    if choice == "auto":
        if device.startswith("cuda"):
            import torch

            return bool(torch.cuda.is_bf16_supported())
        from .recipe import bf16_supported

        return bf16_supported()
    return choice == "on"


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
    if guess_task(args.data, getattr(args, "task", None)) == "valence_arousal":
        return run_valence_arousal(args)
    import torch

    from ..eval.datasets import read_ferplus, relabel
    from ..eval.evaluate import _guess_format, read_dataset
    from .config import TrainConfig
    from .export import export_onnx, fit_temperature
    from .nets import build
    from .openset import fit_openset
    from .recipe import predict_logits, train

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
    teachers, notes = list(getattr(args, "teacher", None) or []), {}
    if teachers:  # loaded (and checked) before anything is written
        from .distill import load_teachers

        teacher_models = load_teachers(teachers, tr.classes, args.threads)
        notes = {"teachers": [str(t) for t in teachers], "teacher_weight": args.teacher_weight}
    if args.init_from:  # which file it was: a shipped name changes meaning with the next release
        notes["init_sha256"] = _init_sha256(args.init_from)
    out = Path(args.out)
    if getattr(args, "export_only", False):
        cfg: TrainConfig = _run_config(out)
        notes = dict(cfg.notes)  # the run's own provenance (teachers, init) for the spec
        if tuple(cfg.classes) != tuple(tr.classes):
            from ..errors import InputError

            raise InputError(f"{out}: the run's classes {list(cfg.classes)} are not {args.data}'s {list(tr.classes)}")
        if cfg.notes.get("teachers"):  # the offline teachers' blend, as the run trained on it
            from .distill import load_teachers

            teacher_models = load_teachers(cfg.notes["teachers"], tr.classes, args.threads)
            teachers, args.teacher_weight = cfg.notes["teachers"], cfg.notes["teacher_weight"]
    else:
        cfg = _config(args, classes=tr.classes, notes=notes)
    out.mkdir(parents=True, exist_ok=True)
    log.info("train %d images, valid %d, classes %s", len(tr), len(va), tr.classes)
    xt = _load(tr, cfg.size)
    va = va.subset(va.labels >= 0) if (va.labels < 0).any() else va
    xv = _load(va, cfg.size)
    if teachers:
        from .distill import blend_targets, cached_teacher_probabilities

        teach = cached_teacher_probabilities(out / "teacher.npz", teacher_models, xt, tr.classes)
        agree = float((teach.argmax(1) == soft.argmax(1)).mean())
        log.info("teachers agree with the training targets on %.1f%% of images", 100 * agree)
        soft = blend_targets(soft, teach, args.teacher_weight)
    if getattr(args, "export_only", False):
        summary = _run_summary(out, "valid_acc")
        log.info("exporting %s (trained elsewhere: %d epochs, best valid acc %.4f)", out, summary["epochs"],
                 summary["best_valid_acc"])
    else:
        summary = train(cfg, xt, soft, xv, va.labels, out)
    if getattr(args, "train_only", False):
        with atomic_open(out / "summary.json") as fh:
            json.dump({**summary, "config": asdict(cfg)}, fh, indent=1, default=str)
        print(f"trained {out} (valid accuracy {summary['best_valid_acc']:.4f}); export with --export-only")
        return 0

    # crop template: where the face mesh lands on the training crops
    template = ensure_template(out / "template.json", xt, cfg.seed, args.template_images)

    model = build(cfg.arch, len(cfg.classes), 0.0)
    model.load_state_dict(torch.load(out / "best.pt", map_location="cpu", weights_only=False)["model"])
    adjust = _fold_training_prior(model, cfg, soft)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # the temperature of what ships: the ONNX runs in float32, whatever precision training used
    logits = predict_logits(model, xv, replace(cfg, bf16=False))
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
        **({"distilled_from": notes["teachers"], "teacher_weight": notes["teacher_weight"]} if "teachers" in notes else {}),
        **({"init_sha256": notes["init_sha256"]} if "init_sha256" in notes else {}),
        **({"distilled_online_from": list(cfg.teacher_runs), "teacher_weight": cfg.teacher_weight}
           if cfg.teacher_runs else {}),
        **({"trained_on_device": cfg.device} if cfg.device != "cpu" else {}),
        **({"logit_adjust": adjust} if adjust else {}),
    }
    onnx_path = export_onnx(model.to(memory_format=torch.contiguous_format), spec, out / f"{cfg.arch}.onnx", openset=maha)
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


def _fold_training_prior(model, cfg, soft: np.ndarray) -> dict | None:  # noqa: ANN001
    """With the logit-adjusted loss the network's logits are the balanced ones (the loss saw
    ``logits + tau * log prior``). Add ``tau * log prior`` to the last layer's bias, so that the
    exported model estimates the ordinary posterior: the one whose accuracy selected the epoch
    (``Classification.score``), the one the temperature and open set are fitted on, and the one
    post-hoc logit adjustment (``scripts/rebalance_head.py``) starts from. Returns what was folded
    (for the spec), or None without the adjusted loss."""
    import torch

    from .objectives import log_prior

    if not cfg.logit_adjust:
        return None
    prior = log_prior(soft)
    with torch.no_grad():
        model.fc.bias += torch.as_tensor(cfg.logit_adjust * prior, dtype=model.fc.bias.dtype)
    return {
        "tau": cfg.logit_adjust,
        "log_prior": [round(float(v), 6) for v in prior],
        "folded": "tau * log_prior added to the last bias: the logits estimate the training-prior posterior",
    }


def _va_data(path: str | Path, fmt: str | None):  # noqa: ANN202
    from ..errors import InputError
    from ..eval.datasets import read_csv_valence_arousal

    if fmt not in (None, "csv", "affectnet"):
        raise InputError(f"valence/arousal training reads a CSV (csv or affectnet format), not {fmt!r}")
    p = Path(path)
    if p.is_dir() and (p / "labels.csv").is_file():
        p = p / "labels.csv"
    return read_csv_valence_arousal(p)


def run_valence_arousal(args: argparse.Namespace) -> int:
    """``openfer train DATA.csv --task va``: valence/arousal regression, reported with CCC and RMSE."""
    import torch

    from ..errors import InputError
    from ..eval.datasets import VA_NAMES
    from ..eval.metrics import regression_report
    from .export import export_onnx
    from .nets import build
    from .recipe import predict_logits, train

    if getattr(args, "train_only", False) or getattr(args, "export_only", False):
        raise InputError("--train-only / --export-only split expression training; a valence/arousal run "
                         "trains and exports in one command")
    tr = _va_data(args.data, args.format)
    dropped = {"train": tr.dropped}
    if args.valid:
        va = _va_data(args.valid, args.format)
        dropped["valid"] = va.dropped
    else:  # a seeded random fraction of the rows
        rng = np.random.default_rng(args.seed)
        k = min(max(int(round(len(tr) * args.valid_fraction)), 1), len(tr) - 1)
        if k < 1:
            raise InputError(f"{tr.name}: {len(tr)} row(s) are too few to hold out a validation set")
        held = np.zeros(len(tr), bool)
        held[rng.choice(len(tr), size=k, replace=False)] = True
        tr, va = tr.subset(~held), tr.subset(held)
    # no mixup/CutMix: a blend of two faces need not show the blend of their valence/arousal
    cfg = _config(args, task="valence_arousal", classes=VA_NAMES, mix_p=0.0)
    if len(tr) < cfg.batch_size:
        raise InputError(
            f"{len(tr)} training images are fewer than one batch ({cfg.batch_size}): lower --batch-size"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log.info("valence/arousal: train %d images, valid %d", len(tr), len(va))
    xt, xv = _load(tr, cfg.size), _load(va, cfg.size)
    summary = train(cfg, xt, tr.values, xv, va.values, out)
    template = ensure_template(out / "template.json", xt, cfg.seed, args.template_images)

    model = build(cfg.arch, len(VA_NAMES), 0.0, tanh=True)
    model.load_state_dict(torch.load(out / "best.pt", map_location="cpu", weights_only=False)["model"])
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    report = regression_report(predict_logits(model, xv, cfg), va.values, VA_NAMES)
    spec = {
        "task": "valence_arousal",
        "outputs": list(VA_NAMES),
        "arch": cfg.arch,
        "size": cfg.size,
        "color": "gray",
        "mean": cfg.mean,
        "std": cfg.std,
        "template_index": template["template_index"],
        "template": template["template"],
        "crop": "similarity transform of the face mesh's rigid points onto 'template' (x, y in [0, 1])",
        "trained_on": tr.name,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "best_valid_ccc": summary["best_valid_ccc"],
        "valid_ccc": report["ccc"],
        "valid_rmse": report["rmse"],
    }
    onnx_path = export_onnx(out / "best.pt", spec, out / f"{cfg.arch}.onnx")
    with atomic_open(out / "summary.json") as fh:
        json.dump(
            {**summary, "valid": report, "dropped_rows": dropped, "config": asdict(cfg)},
            fh,
            indent=1,
            default=str,
        )
    c, r = report["ccc"], report["rmse"]
    log.info("best valid CCC %.4f, exported %s", summary["best_valid_ccc"], onnx_path)
    print(
        f"exported {onnx_path} (valid CCC valence {c['valence']:.3f}, arousal {c['arousal']:.3f}; "
        f"RMSE valence {r['valence']:.3f}, arousal {r['arousal']:.3f})"
    )
    return 0
