"""Ship a trained expression model: copy its ONNX into the package, pin its sha256, evaluate it and
write its model card.

    python scripts/release_model.py RUN_DIR [--ferplus ../shared/datasets/ferplus]
        [--photos ../shared/datasets/photos_dev] [--name fernet_s]

RUN_DIR is an ``openfer train`` run folder (config.json, log.csv, summary.json, <arch>.onnx), or a
folder written by ``scripts/rebalance_head.py`` (the same files of the network's training run, the
ONNX with a rebalanced last layer, and ``rebalance.json`` saying how that layer was made).
Evaluations (each written to docs/models/<name>_*.json):
  * FER+ FER2013Valid and FER2013Test, majority protocol, face crops (the reported numbers);
  * FER+ test accuracy with uncalibrated probabilities (ECE before calibration);
  * photos_dev (2,260 in-the-wild photos, detect mode: the full pipeline) and the 12 labelled
    fixture photos.
The FER+ test split is read once here, for the shipped model only.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np

from openfer.components.expression import ExpressionClassifier
from openfer.eval.datasets import read_ferplus
from openfer.eval.evaluate import evaluate_crops, evaluate_detect, read_dataset
from openfer.io.tables import write_json
from openfer.pipeline import Analyzer
from openfer.runtime.onnx import write_registry_block

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "src" / "openfer" / "models"
DOCS = ROOT / "docs" / "models"


def install(onnx: Path, name: str, source: str, license_: str) -> str:
    dst = MODELS / f"{name}.onnx"
    shutil.copyfile(onnx, dst)
    digest = hashlib.sha256(dst.read_bytes()).hexdigest()
    write_registry_block(name, {"file": f"{name}.onnx", "sha256": digest, "source": source, "license": license_,
                                "card": f"cards/{name}.md"}, toml=MODELS / "models.toml")
    return digest


def confusion_md(rep: dict) -> str:
    labels = rep["confusion"]["labels"]
    head = "| true \\ pred | " + " | ".join(labels) + " | recall |\n|---|" + "---|" * (len(labels) + 1) + "\n"
    rows = []
    for c, row in zip(labels, rep["confusion"]["matrix"], strict=True):
        rows.append(
            f"| **{c}** | " + " | ".join(str(v) for v in row) + f" | {rep['per_class'][c]['recall']:.3f} |"
        )
    return head + "\n".join(rows) + "\n"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def speed(name: str) -> dict:
    clf = ExpressionClassifier(name, threads=2)
    crops = np.random.default_rng(0).integers(0, 255, (256, 48, 48)).astype(np.uint8)
    out = {}
    for flip in (False, True):
        clf.flip = flip
        clf.predict_crops(crops)
        ts = []
        for _ in range(7):
            t = time.perf_counter()
            clf.predict_crops(crops)
            ts.append(time.perf_counter() - t)
        out["with_flip" if flip else "single"] = round(256 / float(np.median(ts)), 1)
    return out


def _teacher_origin(teacher: str) -> str:
    """Where a teacher came from, when it is an ensemble built by scripts/build_ensemble.py."""
    ens = Path(teacher).parent / "ensemble.json"
    if not ens.is_file():
        return ""
    e = json.loads(ens.read_text())
    members = ", ".join(Path(m).name for m in e["members"])
    return (
        f"; teacher `{Path(teacher).name}`: the ensemble of runs {members} "
        f"(FER2013Train only, FER2013Valid accuracy {e['valid_accuracy']['ensemble']:.2%}), built by `{e['command']}`"
    )


def recipe(run: Path, cfg: dict) -> str:
    deg = cfg.get("degrade_p", 0.0)
    notes = cfg.get("notes") or {}
    teachers, tw = notes.get("teachers", []), notes.get("teacher_weight", 0.0)
    return (
        f"`openfer train ../shared/datasets/ferplus --out {run} --arch {cfg['arch']} --epochs {cfg['epochs']} "
        f"--seed {cfg['seed']}"
        + (f" --lr {cfg['lr']:g}" if cfg["lr"] != 0.1 else "")
        + (f" --init-from {cfg['init_from']}" if cfg.get("init_from") else "")
        + (f" --freeze {cfg['freeze']}" if cfg.get("freeze") else "")
        + (f" --logit-adjust {cfg['logit_adjust']:g}" if cfg.get("logit_adjust") else "")
        + (f" --scale {cfg['scale'][0]:g} {cfg['scale'][1]:g}" if list(cfg["scale"]) != [0.85, 1.15] else "")
        + (f" --degrade-p {deg:g}" if deg else "")
        + (f" --teacher {' '.join(teachers)} --teacher-weight {tw:g}" if teachers else "")
        + f"` (run with --threads {cfg['threads'] or 0}): "
        + (
            f"fine-tuned from `{cfg['init_from']}`"
            + (f" (sha256 {notes['init_sha256'][:12]}…)" if notes.get("init_sha256") else "")
            + " (weights read back from its ONNX, BatchNorm "
            f"unfolded: `openfer.train.export.weights_from_onnx`) with `{cfg['freeze']}` fixed; "
            if cfg.get("init_from")
            else ""
        )
        + (
            f"distilled: the targets are {1 - tw:g} x the FER+ vote distribution + {tw:g} x the teachers' "
            "mirror-averaged softmax (temperature 1) on each training crop, computed once before training "
            "(`openfer.train.distill`)" + "".join(_teacher_origin(t) for t in teachers) + "; "
            if teachers
            else ""
        )
        + f"SGD (Nesterov, momentum {cfg['momentum']}, lr {cfg['lr']}, weight decay {cfg['weight_decay']}), batch {cfg['batch_size']}, "
        f"{cfg['warmup_epochs']:g} warm-up epochs then cosine decay, {cfg['epochs']} epochs; "
        + (
            f"logit-adjusted soft-label cross-entropy (cross-entropy of logits + {cfg['logit_adjust']:g} x log train prior, "
            "Menon et al. 2021)"
            if cfg.get("logit_adjust")
            else "soft-label cross-entropy"
        )
        + "; augmentation: "
        f"rotation ±{cfg['rotate_deg']:g}°, scale {cfg['scale']}, translation ±{cfg['translate']:g}, horizontal flip, random erasing "
        f"p={cfg['erase_p']}, mixup/CutMix on {cfg['mix_p']:.0%} of batches"
        + (f", blur/noise/JPEG/low-resolution degradation of {deg:.0%} of images" if deg else "")
        + f"; EMA of weights (decay {cfg['ema_decay']}), {'bf16 autocast' if cfg.get('bf16', True) else 'fp32'}, channels-last."
    )


PIPELINE_NOTE = ("<!-- pipeline re-measure -->", "<!-- /pipeline re-measure -->")


def remeasure_pipeline(name: str, photos: Path) -> None:
    """photos_dev and the labelled fixtures through today's default pipeline, for the installed model
    ``name`` (its FER+ numbers do not depend on the pipeline and are not re-read): rewrites
    ``docs/models/<name>_{photos_dev,fixtures_labeled}.json`` and a dated block at the top of the
    card, which keeps its release-time tables below."""
    an = Analyzer(expression_model=name)
    digest = an.expression.model.sha256
    o = an.options
    pipeline = {"detector": o.detector, "mesh": o.mesh, "mesh_passes": o.mesh_passes, "min_face": o.min_face,
                "date": time.strftime("%Y-%m-%d")}
    reps = {
        "photos_dev": evaluate_detect(read_dataset(photos, "csv"), an),
        "fixtures_labeled": evaluate_detect(read_dataset(ROOT / "tests" / "assets" / "photos" / "labeled", "csv"), an),
    }
    old = {k: json.loads((DOCS / f"{name}_{k}.json").read_text()) for k in reps}
    for k, r in reps.items():
        write_json({"model": name, "sha256": digest, "pipeline": pipeline, **r}, DOCS / f"{name}_{k}.json")
    rows = "\n".join(
        f"| {k} | {r['n']} | {r['face_found_rate']:.3f} ({old[k]['face_found_rate']:.3f}) | "
        f"{r['accuracy']:.4f} ({old[k]['accuracy']:.4f}) | {r['uar']:.4f} ({old[k]['uar']:.4f}) |"
        for k, r in reps.items())
    block = (
        f"{PIPELINE_NOTE[0]}\n**Re-measured {pipeline['date']} through the current pipeline** (detector "
        f"`{o.detector}`, `{o.mesh}`, {o.mesh_passes} mesh passes; `python scripts/release_model.py {name} "
        "--pipeline-only`). The model is unchanged; the photo numbers in the tables below are from its "
        "release-time pipeline (in brackets here):\n\n| data | n | faces found | accuracy | UAR |\n|---|---|---|---|---|\n"
        f"{rows}\n{PIPELINE_NOTE[1]}\n\n")
    card = MODELS / "cards" / f"{name}.md"
    text = re.sub(rf"{re.escape(PIPELINE_NOTE[0])}.*?{re.escape(PIPELINE_NOTE[1])}\n\n", "", card.read_text(), flags=re.S)
    head, _, rest = text.partition("\n\n")  # after the title line
    card.write_text(f"{head}\n\n{block}{rest}")
    for k, r in reps.items():
        print(f"{k}: faces found {r['face_found_rate']:.3f}, accuracy {r['accuracy']:.4f}, UAR {r['uar']:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--name", default=None)
    ap.add_argument("--ferplus", type=Path, default=ROOT.parent / "shared" / "datasets" / "ferplus")
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "datasets" / "photos_dev")
    ap.add_argument("--pipeline-only", action="store_true",
                    help="RUN is the shipped model's name: re-measure only photos_dev and the labelled fixtures "
                    "through today's pipeline (after a detector or mesh change; FER+ is not read) and note it in the card")
    a = ap.parse_args()
    if a.pipeline_only:
        remeasure_pipeline(str(a.run), a.photos)
        return
    ens_path = a.run / "ensemble.json"  # written by scripts/build_ensemble.py
    ensemble = json.loads(ens_path.read_text()) if ens_path.exists() else None
    members = [Path(m) for m in ensemble["members"]] if ensemble else [a.run]
    cfgs = [json.loads((m / "config.json").read_text()) for m in members]
    cfg = cfgs[0]
    name = a.name or (ensemble["name"] if ensemble else cfg["arch"])
    lic = "MIT (openfer weights); trained on FER2013 images (research use only) with FER+ labels (MIT)"
    reb_path = a.run / "rebalance.json"  # written by scripts/rebalance_head.py
    rebalance = json.loads(reb_path.read_text()) if reb_path.exists() else None
    digest = install(
        a.run / f"{name if ensemble else cfg['arch']}.onnx",
        name,
        "openfer: trained from scratch on FER2013Train, "
        + (f"ensemble of runs {', '.join(m.name for m in members)}" if ensemble else f"run {Path(rebalance['base_run']).name if rebalance else a.run.name}")
        + (f"; last layer rebalanced ({rebalance['lever']}, scripts/rebalance_head.py)" if rebalance else ""),
        lic,
    )
    DOCS.mkdir(parents=True, exist_ok=True)
    clf = ExpressionClassifier(name)
    reps = {}
    for split in ("valid", "test"):
        reps[split] = evaluate_crops(read_ferplus(a.ferplus, split), clf)
    clf.temperature = 1.0
    reps["test_uncalibrated"] = evaluate_crops(read_ferplus(a.ferplus, "test"), clf)
    clf.flip = False
    reps["test_noflip"] = evaluate_crops(read_ferplus(a.ferplus, "test"), clf)
    an = Analyzer(expression_model=name)
    reps["photos_dev"] = evaluate_detect(read_dataset(a.photos, "csv"), an)
    reps["fixtures_labeled"] = evaluate_detect(
        read_dataset(ROOT / "tests" / "assets" / "photos" / "labeled", "csv"), an
    )
    for k, r in reps.items():
        write_json({"model": name, "sha256": digest, **r}, DOCS / f"{name}_{k}.json")
    sp = speed(name)
    size_mb = (MODELS / f"{name}.onnx").stat().st_size / 2**20
    hours = 0.0
    for m in members:
        with open(m / "log.csv") as fh:
            hours += sum(float(r["seconds"]) for r in csv.DictReader(fh)) / 3600
    n_train = len(read_ferplus(a.ferplus, "train"))
    t, v = reps["test"], reps["valid"]
    pd_ = reps["photos_dev"]
    framing_md = ""
    fpath = DOCS / f"{name}_framing.json"
    if fpath.exists():  # written by scripts/check_framing.py --json
        fr = json.loads(fpath.read_text())
        rows = "\n".join(
            f"| {k} | {v['accuracy']:.4f} | {v['uar']:.4f} | {v['macro_f1']:.4f} |"
            for k, v in fr["factors"].items()
        )
        framing_md = (
            "## Framing check\n`scripts/check_framing.py` classifies the photos_dev faces "
            f"({fr['n_found']} found) with the crop template scaled about its centre (1.0 = shipped; <1 "
            "tighter, >1 looser). The shipped framing should be at or near the best:\n\n"
            "| crop scale | accuracy | UAR | macro F1 |\n|---|---|---|---|\n" + rows + "\n"
        )
    robust_path = ROOT / "docs" / "framing_robustness_test.json"  # scripts/framing_robustness.py --split test
    if robust_path.exists():
        rob = json.loads(robust_path.read_text())
        mine = [k for k, m in rob["models"].items() if m["sha256"] == digest]
        if mine:
            framing_md = ""  # supersedes the photos_dev crop-scale check, measured on an earlier file
            others = [k for k in rob["models"] if k not in mine]
            cols = mine + others
            rows = "\n".join(
                f"| {c} | {rob['results'][cols[0]][c]['n']} | "
                + " | ".join(
                    f"{rob['results'][k][c]['accuracy']:.4f} / {rob['results'][k][c]['uar']:.4f} / "
                    f"{rob['results'][k][c]['ece']:.3f}" for k in cols)
                + " |"
                for c in rob["results"][cols[0]]
            )
            framing_md += (
                "## Framing robustness\n`scripts/framing_robustness.py --split test`: FER2013Test crops re-framed "
                "about their centre (tight: the central 85% / 75% upscaled; loose: 15% of the side added on each "
                "side, border replicated) and photos_dev through the full pipeline. Accuracy / UAR / ECE "
                f"(this model: {', '.join(mine)}):\n\n| condition | n | " + " | ".join(cols) + " |\n|---|---|"
                + "---|" * len(cols) + "\n" + rows + "\n"
            )
    recall_md = (
        "| split | " + " | ".join(cfg["classes"]) + " |\n|---|" + "---|" * len(cfg["classes"]) + "\n"
        + "\n".join(
            f"| {label} | " + " | ".join(
                f"{r['per_class'][c]['recall']:.3f} ({r['confusion']['matrix'][i][i]}/{r['per_class'][c]['support']})"
                for i, c in enumerate(cfg["classes"]))
            + " |"
            for label, r in (("FER2013Valid", v), ("FER2013Test", t), ("photos_dev (faces found)", pd_))
        )
        + "\n"
    )
    rebalance_md = ""
    if rebalance:
        rv = rebalance["valid"]
        rebalance_md = (
            "\n\n## Last layer: rebalanced for the rare classes\n"
            f"The network is run {Path(rebalance['base_run']).name}'s, unchanged; its last linear layer was replaced by "
            f"`{rebalance['spec_head']['command']}` (lever `{rebalance['lever']}`, parameter {rebalance['param']:g}; "
            "`openfer.train.rebalance`, `docs/experiments.md`): fitted on the frozen network's FER2013Train "
            "features, the parameter picked on FER2013Valid (among the values whose valid accuracy stays within "
            "0.2 points of the original head's, the most accurate one whose UAR is within one bootstrap standard "
            "error of the best), the temperature and the open-set calibration re-fitted on "
            f"FER2013Valid. FER2013Valid with this layer: accuracy {rv['accuracy']:.4f}, UAR {rv['uar']:.4f}, "
            f"ECE {rv['ece']:.4f}."
        )
    openset_md = ""
    if clf.openset is not None:
        op = DOCS.parent / "openset_shipped.json"
        shipped = json.loads(op.read_text()) if op.exists() else None
        if shipped is not None and shipped.get("sha256") != digest:
            shipped = None  # measured on another file: rerun scripts/validate_openset.py
        w = " + ".join(("" if v == 1 else f"{v:g} ") + f"z({k})" for k, v in clf.openset.weights.items())
        openset_md = (
            "## Open-set head\n"
            "A second output, `mahalanobis`: the squared Mahalanobis distance of the penultimate features "
            "to the nearest class mean (shared covariance, fitted on FER2013Train features of the face and "
            "its mirror image). `unknown_score` = the share of known-expression FER2013Valid faces with a "
            f"lower {w} (scores standardised on those faces): 0.95 (the default threshold) flags the 5% "
            "most atypical known faces. Hold-one-class-out protocol and baselines: `docs/validation.md`."
        )
        if shipped:
            rows = "\n".join(
                f"| {k} | {g['n']} | {g['auroc_unknown_score']:.3f} | {g['auroc_msp']:.3f} | {g['flagged']:.3f} |"
                for k, g in shipped["groups"].items()
            )
            kn = shipped["known"]
            openset_md += (
                f"\n\n`scripts/validate_openset.py` (known: {kn['n']} FER2013Test faces without unknown/NF votes, "
                f"{kn['flagged']:.1%} flagged; accuracy {kn['accuracy_all']:.4f} on all, {kn['accuracy_kept']:.4f} on "
                "those kept):\n\n| inputs | n | AUROC unknown_score | AUROC max-softmax | flagged at 0.95 |\n"
                "|---|---|---|---|---|\n" + rows
            )
        openset_md += "\n"
    arch_md = (
        f"`{name}`: {len(cfgs)} `{cfg['arch']}` networks (residual CNN, `openfer/train/nets.py`) as one graph, "
        "logits averaged (`openfer.train.nets.Ensemble`)"
        if ensemble
        else f"`{cfg['arch']}` (residual CNN, `openfer/train/nets.py`)"
    )
    trained = [Path(rebalance["base_run"])] if rebalance else members  # where the network was trained
    recipe_md = "\n\n".join(recipe(m, c) for m, c in zip(trained, cfgs, strict=True))
    if ensemble:
        recipe_md += (
            f"\n\nJoined by `{ensemble['command']}`: the members' logits are averaged, one temperature "
            "and the open-set statistics are fitted for the whole."
        )
    card = f"""# Model card: `{name}` (expression classifier, FER+ 8 classes)

Generated by `scripts/release_model.py {a.run}`; every number below comes from that command.

| | |
|---|---|
| task | facial expression, 8 FER+ classes: {", ".join(cfg["classes"])} |
| architecture | {arch_md}, input 1x48x48 grayscale, {size_mb:.1f} MiB ONNX |
| weights | trained from scratch by openfer (no pretrained weights), seed{"s" if len(cfgs) > 1 else ""} {", ".join(str(c["seed"]) for c in cfgs)} |
| sha256 | `{digest}` |
| licence | {lic} |
| framing | similarity-aligned crop: {len(clf.spec.template_index)} rigid face-mesh points mapped to their median position in FER2013Train crops |
| calibration | temperature {clf.model.spec.get("temperature", 1.0):.3f}, fitted on FER2013Valid (NLL) |
| last layer | {f"rebalanced: {rebalance['lever']} ({rebalance['param']:g}), see below" if rebalance else "as trained"} |

## Data
FER+ (Barsoum et al. 2016): FER2013 images with 10 crowd votes each. Trained on FER2013Train
({n_train} images with a majority label, vote distributions as soft targets); epoch
selected on FER2013Valid (majority protocol, {v["n"]} images); reported on FER2013Test, majority protocol,
**{t["n"]} images**, read once for this card.

## Recipe
{recipe_md}
Training took {hours:.1f} h on 2 shared CPU cores ({cpu_name()}). Best epoch by validation accuracy (EMA weights).{rebalance_md}

## Results (FER+ majority protocol, face crops, mirror-averaged)
| split | n | accuracy | UAR | macro F1 | ECE (15 bins) |
|---|---|---|---|---|---|
| FER2013Valid | {v["n"]} | {v["accuracy"]:.4f} | {v["uar"]:.4f} | {v["macro_f1"]:.4f} | {v["ece"]:.4f} |
| **FER2013Test** | {t["n"]} | **{t["accuracy"]:.4f}** | {t["uar"]:.4f} | {t["macro_f1"]:.4f} | {t["ece"]:.4f} |
| FER2013Test, no mirror averaging | {reps["test_noflip"]["n"]} | {reps["test_noflip"]["accuracy"]:.4f} | {reps["test_noflip"]["uar"]:.4f} | {reps["test_noflip"]["macro_f1"]:.4f} | {reps["test_noflip"]["ece"]:.4f} |

ECE on FER2013Test before temperature calibration: {reps["test_uncalibrated"]["ece"]:.4f}; after: {t["ece"]:.4f}.

Recall per class (correct/support):

{recall_md}
Confusion matrix, FER2013Test:

{confusion_md(t)}
## Beyond FER+: real photos through the full pipeline (detect, mesh, align, classify)
| data | n | face found | accuracy | UAR | macro F1 |
|---|---|---|---|---|---|
| photos_dev (LFW-style news photos, noisy student labels, skewed classes) | {pd_["n"]} | {pd_["face_found_rate"]:.3f} | {pd_["accuracy"]:.4f} | {pd_["uar"]:.4f} | {pd_["macro_f1"]:.4f} |
| labelled fixture photos | {reps["fixtures_labeled"]["n"]} | {reps["fixtures_labeled"]["face_found_rate"]:.3f} | {reps["fixtures_labeled"]["accuracy"]:.4f} | {reps["fixtures_labeled"]["uar"]:.4f} | {reps["fixtures_labeled"]["macro_f1"]:.4f} |

photos_dev confusion (faces found):

{confusion_md(pd_)}
{framing_md}
{openset_md}
## Speed
Classification of a batch of 256 aligned crops on 2 threads (ONNX Runtime, this machine):
{sp["single"]:.0f} faces/s single pass, {sp["with_flip"]:.0f} faces/s with mirror averaging (the default).

## Limitations
FER2013 faces are low-resolution web images, mostly frontal, of mixed demographics that were never
audited; the crowd labels are noisy (the majority protocol drops ambiguous images, so accuracy on
real, ambiguous faces is lower — see photos_dev). Contempt and disgust have few training examples
(and few test examples: per-class numbers for them are unstable). Expressions are posed or
spontaneous web photos, not clinical data: do not use for diagnosis or decisions about people.
"""
    cards = MODELS / "cards"
    cards.mkdir(exist_ok=True)
    (cards / f"{name}.md").write_text(card)
    print(
        json.dumps(
            {
                "test_accuracy": t["accuracy"],
                "valid_accuracy": v["accuracy"],
                "ece": t["ece"],
                "photos_dev_accuracy": pd_["accuracy"],
                "photos_dev_uar": pd_["uar"],
                "speed": sp,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
