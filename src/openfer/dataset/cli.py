"""``openfer dataset ...``: argument parsing for the dataset tools (the work is in the modules beside this one)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

EXIT_OK, EXIT_INPUT = 0, 3


def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {v}")
    return v


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="dataset tools: data cards, label issues, pseudo-labels")
    tools = p.add_subparsers(dest="dataset_command", metavar="TOOL", parser_class=type(p))
    _add_card(tools)
    _add_issues(tools)
    _add_pseudolabel(tools)


def _data_arguments(c: argparse.ArgumentParser, data: str, out: str, model: str) -> None:
    """The arguments every dataset tool shares: the data set, its layout and splits, the output folder,
    the model and how faces are found."""
    from ..eval.evaluate import FORMATS

    c.add_argument("data", help=data)
    c.add_argument("--format", choices=FORMATS, default=None, help="data set layout (default: guessed)")
    c.add_argument("--split", action="append", choices=("train", "valid", "test"), default=None,
                   help="only this split (repeat for several; default: every split the data has)")
    c.add_argument("--out", required=True, metavar="DIR", help=out)
    c.add_argument("--model", default="fernet_s", help=model)
    c.add_argument("--faces", choices=("crops", "detect"), default=None,
                   help="crops: images are face crops (default for ferplus, fer2013); detect: photos")


def _add_card(tools: argparse._SubParsersAction) -> None:
    from .hashing import NEAR_DISTANCE

    c = tools.add_parser("card", help="write a datasheet (card.md, card.json, plots, duplicates.csv) of a data set")
    _data_arguments(c, "a data set openfer evaluate reads: FER+ root (all splits), fer2013.csv, RAF-DB, "
                       "AffectNet CSV, CSV (path,label), folder with labels.csv, or ImageFolder",
                    out="folder for the card (outside the data set)",
                    model="expression model to score (shipped name or .onnx)")
    c.add_argument("--sample", type=_non_negative_int, default=500, metavar="N",
                   help="images per split for the pipeline and the model (seeded random sample; 0: all; default 500)")
    c.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    c.add_argument("--near", type=_non_negative_int, default=None, metavar="BITS",
                   help=f"near-duplicate threshold: pHash Hamming distance (of 64 bits, default {NEAR_DISTANCE})")
    c.add_argument("--no-pipeline", action="store_true", help="skip face statistics and model accuracy")
    c.add_argument("--about", metavar="FILE", default=None,
                   help="TOML or JSON answers to the questions only a person can answer (licence, consent...)")
    c.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: default)")


def _folds(text: str) -> int:
    v = _non_negative_int(text)
    if v < 2:
        raise argparse.ArgumentTypeError(f"K-fold needs 2 or more folds, got {v}")
    return v


def _add_issues(tools: argparse._SubParsersAction) -> None:
    from .confident import FILTERS, RANKINGS
    from .issues import PREDICTIONS

    c = tools.add_parser("issues", help="rank likely label errors (confident learning on out-of-sample "
                                        "probabilities): issues.csv, issues.json, contact_sheet.png")
    _data_arguments(c, "a labelled data set openfer evaluate reads (FER+ root, CSV, folder...)",
                    out="folder for the outputs (outside the data set)",
                    model="expression model (shipped name or .onnx)")
    c.add_argument("--predictions", choices=PREDICTIONS, default="auto",
                   help="model: the model's probabilities (data it never saw); kfold: K-fold cross-validated "
                        "linear head on its features (data it was trained on); auto (default): kfold for the "
                        "train and valid splits of FER+/fer2013, model otherwise")
    c.add_argument("--folds", type=_folds, default=5, metavar="K", help="K of the K-fold route (default 5)")
    c.add_argument("--seed", type=int, default=0, help="seed of the folds (default 0)")
    c.add_argument("--features-cache", metavar="DIR", default=None,
                   help="folder of cached features (features_<split>_*.npz, used after a spot check; "
                        "written there when none fits)")
    c.add_argument("--filter", choices=FILTERS, default="prune_by_noise_rate",
                   help="which samples confident learning flags (default prune_by_noise_rate)")
    c.add_argument("--rank", choices=RANKINGS, default="self_confidence",
                   help="label quality score the issues are ranked by (default self_confidence)")
    c.add_argument("--max-rows", type=_non_negative_int, default=0, metavar="N",
                   help="write only the first N rows of issues.csv (0: all; issues.json counts all)")
    c.add_argument("--sheet", type=_non_negative_int, default=40, metavar="N",
                   help="issues on the contact sheet (default 40; 0: no sheet)")
    c.add_argument("--annotations", metavar="CSV", default=None,
                   help="individual annotations (columns path,annotator,label; one row each): consensus labels "
                        "and annotator quality into issues.json and annotators.csv")
    c.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: default)")


def _share(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), got {v}")
    return v


def _add_pseudolabel(tools: argparse._SubParsersAction) -> None:
    from ..eval.evaluate import FORMATS
    from .pseudolabel import RECTIFY

    c = tools.add_parser("pseudolabel", help="labels for unlabelled or synthetic face images where the model is "
                                             "confident enough for a stated precision (labels.csv for openfer "
                                             "train); with --given, rectify given labels")
    c.add_argument("images", nargs="+", metavar="IMAGES",
                   help="image files, folders of images, globs, a CSV with a path column, or one data set openfer "
                        "evaluate reads (FER+ root or split folder, ImageFolder...)")
    c.add_argument("-r", "--recursive", action="store_true", help="search folders of images recursively")
    c.add_argument("--out", required=True, metavar="FILE.csv",
                   help="labels.csv to write (path,label of the labelled images); beside it *_all.csv (every "
                        "image, score, reason), *_report.json, *_report.md, *_validation.json")
    c.add_argument("--given", metavar="COLUMN", default=None,
                   help="each image's given label (e.g. a generator's prompt label): a column of the IMAGES CSV, "
                        "or 'label' for a data set's own labels; kept where the model is not confident, "
                        "rectified where it confidently disagrees")
    c.add_argument("--validation", metavar="DATA", default=None,
                   help="labelled data set the threshold is chosen on (FER+ root: its valid split), or the "
                        "*_validation.json of an earlier run (default: the shipped model's FER2013Valid record)")
    c.add_argument("--precision", type=_share, default=0.9, metavar="P",
                   help="precision the kept labels must reach on validation: the Wilson 95%% lower bound "
                        "(default 0.9)")
    c.add_argument("--rectify-precision", type=_share, default=RECTIFY, metavar="P",
                   help="with --given: the precision on validation a change of a given label needs (default "
                        f"{RECTIFY}: a higher threshold than --precision's; see docs/validation.md)")
    c.add_argument("--min-kept", type=_non_negative_int, default=50, metavar="N",
                   help="fewest validation images a threshold must keep (default 50)")
    c.add_argument("--drop-unconfirmed", action="store_true",
                   help="with --given: no label where the model is not confident (default: the given label stands)")
    c.add_argument("--format", choices=FORMATS, default=None, help="layout of a data set IMAGES (default: guessed)")
    c.add_argument("--faces", choices=("crops", "detect"), default=None,
                   help="crops: images are face crops (default for FER+); detect: photos, largest face (default)")
    c.add_argument("--model", default="fernet_s", help="expression model (shipped name or .onnx)")
    c.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: default)")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "dataset_command", None) is None:
        print("openfer dataset: give a tool (see openfer dataset --help)")
        return 2
    if args.dataset_command == "card":
        return _cmd_card(args)
    if args.dataset_command == "issues":
        return _cmd_issues(args)
    if args.dataset_command == "pseudolabel":
        return _cmd_pseudolabel(args)
    raise AssertionError(f"unknown dataset tool {args.dataset_command!r}")


class _Progress:
    """``step: done/total`` on one rewritten stderr line, only on a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def __call__(self, step: str, done: int, total: int) -> None:
        if self.enabled:
            print(f"\r{step}: {done}/{total}".ljust(50), end="", file=sys.stderr, flush=True)
            self.shown = True

    def close(self) -> None:
        if self.shown:
            print("\r" + " " * 50 + "\r", end="", file=sys.stderr, flush=True)


def _command_line(args: argparse.Namespace) -> str:
    """The command as given (options at their defaults left out), for the card's provenance."""
    parts = ["openfer", "dataset", "card", args.data]
    for flag, value, default in (("--format", args.format, None), ("--out", args.out, None),
                                 ("--model", args.model, "fernet_s"), ("--faces", args.faces, None),
                                 ("--sample", args.sample, 500), ("--seed", args.seed, 0),
                                 ("--near", args.near, None), ("--about", args.about, None),
                                 ("--threads", args.threads, 0)):
        if value is not None and value != default:
            parts += [flag, str(value)]
    for s in args.split or []:
        parts += ["--split", s]
    if args.no_pipeline:
        parts.append("--no-pipeline")
    return " ".join(shlex.quote(p) for p in parts)


def _cmd_card(args: argparse.Namespace) -> int:
    from ..extras import require
    from .card import CardOptions, build_card
    from .datasheet import read_about
    from .hashing import NEAR_DISTANCE
    from .report import check_outputs, write_card
    from .sources import open_source

    require("matplotlib", "data", "openfer dataset card plots")  # before the work, not after it
    about = read_about(args.about) if args.about else None
    src = open_source(args.data, args.format, tuple(args.split) if args.split else None)
    out = Path(args.out)
    check_outputs(out, src.root, src.inputs() | ({Path(args.about).resolve()} if args.about else set()))
    command = _command_line(args)
    opts = CardOptions(faces=args.faces, model=args.model, sample=args.sample, seed=args.seed,
                       near_distance=NEAR_DISTANCE if args.near is None else args.near, threads=args.threads, pipeline=not args.no_pipeline)
    progress = _Progress()
    try:
        card = build_card(src, opts, data_arg=args.data, command=command, about=about,
                          about_source=Path(args.about).name if args.about else None, progress=progress)
    finally:
        progress.close()
    written = write_card(card, out, src.root, pixels=src.pixels())
    for line in card.doc["summary"]:
        print(f"  {line}")
    print(f"wrote {len(written)} files into {out}", file=sys.stderr)
    bad = sum(len(v) for v in card.doc["composition"]["unreadable"].values())
    if bad:
        print(f"error: {bad} image(s) could not be read (named above and in card.json)", file=sys.stderr)
        return EXIT_INPUT
    return EXIT_OK


def _issues_command_line(args: argparse.Namespace) -> str:
    parts = ["openfer", "dataset", "issues", args.data]
    for flag, value, default in (("--format", args.format, None), ("--out", args.out, None),
                                 ("--model", args.model, "fernet_s"), ("--faces", args.faces, None),
                                 ("--predictions", args.predictions, "auto"), ("--folds", args.folds, 5),
                                 ("--seed", args.seed, 0), ("--features-cache", args.features_cache, None),
                                 ("--filter", args.filter, "prune_by_noise_rate"),
                                 ("--rank", args.rank, "self_confidence"), ("--max-rows", args.max_rows, 0),
                                 ("--sheet", args.sheet, 40), ("--annotations", args.annotations, None),
                                 ("--threads", args.threads, 0)):
        if value is not None and value != default:
            parts += [flag, str(value)]
    for s in args.split or []:
        parts += ["--split", s]
    return " ".join(shlex.quote(p) for p in parts)


def _cmd_issues(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from .issues import IssuesOptions, find_issues
    from .issues_report import check_outputs, write_issues
    from .sources import open_source

    src = open_source(args.data, args.format, tuple(args.split) if args.split else None)
    out = Path(args.out)
    annotations = Path(args.annotations) if args.annotations else None
    if annotations is not None and not annotations.is_file():
        raise InputError(f"{annotations}: annotations file not found")
    check_outputs(out, src.root, src.inputs() | ({annotations.resolve()} if annotations else set()))
    cache = Path(args.features_cache) if args.features_cache else None
    if cache is not None and cache.exists() and not cache.is_dir():
        raise InputError(f"{cache}: --features-cache must be a folder")
    opts = IssuesOptions(predictions=args.predictions, model=args.model, faces=args.faces, k=args.folds,
                         seed=args.seed, filter=args.filter, ranking=args.rank, features_cache=cache,
                         threads=args.threads, annotations=annotations)
    progress = _Progress()
    try:
        report = find_issues(src, opts, data_arg=args.data, command=_issues_command_line(args), progress=progress)
    finally:
        progress.close()
    written = write_issues(report, out, src.root, max_rows=args.max_rows, sheet=args.sheet, pixels=src.pixels())
    for line in report.doc["summary"]:
        print(f"  {line}")
    print(f"wrote {len(written)} files into {out}", file=sys.stderr)
    return EXIT_OK


def _pseudolabel_command_line(args: argparse.Namespace) -> str:
    from .pseudolabel import RECTIFY

    parts = ["openfer", "dataset", "pseudolabel", *args.images]
    for flag, value, default in (("--out", args.out, None), ("--given", args.given, None),
                                 ("--validation", args.validation, None), ("--precision", args.precision, 0.9),
                                 ("--rectify-precision", args.rectify_precision, RECTIFY),
                                 ("--min-kept", args.min_kept, 50), ("--format", args.format, None),
                                 ("--faces", args.faces, None), ("--model", args.model, "fernet_s"),
                                 ("--threads", args.threads, 0)):
        if value is not None and value != default:
            parts += [flag, str(value)]
    if args.drop_unconfirmed:
        parts.append("--drop-unconfirmed")
    if args.recursive:
        parts.append("--recursive")
    return " ".join(shlex.quote(p) for p in parts)


def _cmd_pseudolabel(args: argparse.Namespace) -> int:
    from ..components.expression import ExpressionSpec
    from ..runtime import as_model
    from .pseudolabel import PseudoOptions, label_images, load_validation
    from .pseudolabel_inputs import read_images
    from .pseudolabel_report import check_outputs, write_pseudolabels

    classes = ExpressionSpec.from_dict(as_model(args.model, args.threads).spec).classes
    images = read_images(args.images, classes, args.given, args.format, args.faces, args.recursive)
    out = Path(args.out)
    check_outputs(out, images.inputs | ({Path(args.validation).resolve()} if args.validation else set()))
    opts = PseudoOptions(model=args.model, precision=args.precision, rectify=args.rectify_precision,
                         min_kept=args.min_kept,
                         drop_unconfirmed=args.drop_unconfirmed, threads=args.threads)
    progress = _Progress()
    try:
        validation, val_inputs = load_validation(args.validation, args.model, images.faces, None, args.threads,
                                                 lambda d, t: progress("validation", d, t))
        check_outputs(out, images.inputs | val_inputs)
        result = label_images(images, validation, opts, command=_pseudolabel_command_line(args),
                              progress=progress, base=out.resolve().parent)
    finally:
        progress.close()
    written = write_pseudolabels(result, out)
    for line in result.doc["summary"]:
        print(f"  {line}")
    print(f"wrote {len(written)} files beside {out}", file=sys.stderr)
    if not result.doc["threshold"]["met"]:
        print(f"error: {result.doc['summary'][0]}", file=sys.stderr)
        return EXIT_INPUT
    return EXIT_OK
