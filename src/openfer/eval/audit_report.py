"""Subgroup audits end to end (groups from a column, a side CSV or the images) and their report files:
``subgroups.md``, ``subgroups.json`` and one ``subgroups_<by>.png`` per grouping, written atomically.

The plots need ``openfer[plots]`` (matplotlib, imported inside the functions)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.tables import atomic_open, write_json
from .attributes import ATTRIBUTES, attribute_grouping
from .datasets import LabeledImages
from .evaluate import Evaluation
from .subgroups import (
    METRICS,
    MIN_GROUP,
    RESAMPLES,
    GroupAudit,
    ResultRecorder,
    audit_groups,
    column_grouping,
    sample_scores,
    side_grouping,
)

METRIC_NAMES = {"accuracy": "accuracy", "uar": "UAR", "macro_f1": "macro-F1", "ece": "ECE"}


def data_csv(data: LabeledImages) -> Path | None:
    """The CSV whose rows are the data set's images (the csv and affectnet formats), else None."""
    p = Path(data.name)
    return p if data.name and p.suffix.lower() == ".csv" and p.is_file() and "#" not in str(data.paths[:1]) else None


def data_root(data: LabeledImages) -> Path | None:
    try:
        return Path(os.path.commonpath([str(Path(p).resolve().parent) for p in data.paths])) if len(data) else None
    except ValueError:
        return None


def subgroup_audits(data: LabeledImages, ev: Evaluation, faces: str, by: Sequence[str] = (),
                    groups_file: str | Path | None = None, recorder: ResultRecorder | None = None,
                    resamples: int = RESAMPLES, seed: int = 0, min_group: int = MIN_GROUP, bins: int = 4,
                    analyzer=None,  # noqa: ANN001 - for face_size/yaw of crops (default: the fast preset)
                    progress: Callable[[int, int], None] | None = None) -> list[GroupAudit]:
    """One :class:`GroupAudit` per ``by`` entry (an image attribute or a column of the data's CSV) and
    for ``groups_file``; ``ev`` is the :class:`Evaluation` of ``data`` (and ``recorder`` the
    :class:`ResultRecorder` ``score_detect`` ran on, in the detect mode)."""
    scores = sample_scores(data, ev, recorder if faces == "detect" else None)
    if not len(scores):
        raise InputError(f"{data.name}: no labelled image the model can score")
    # check every grouping's source before the slow ones run
    columns = [b for b in by if b not in ATTRIBUTES]
    csv_path = data_csv(data)
    if columns and csv_path is None:
        raise InputError(f"{data.name}: has no CSV of named columns for --by {columns[0]!r} "
                         f"(use --groups FILE, a side CSV path,group, or --by {'|'.join(ATTRIBUTES)})")
    groupings = {}
    for b in columns:
        groupings[b] = column_grouping(data, scores, b, csv_path)
    if groups_file is not None:
        groupings["--groups"] = side_grouping(scores, groups_file, data_root(data))
    cache: dict = {}
    for b in by:
        if b in ATTRIBUTES:
            groupings[b] = attribute_grouping(b, scores, faces, bins, analyzer, progress, cache)
    order = list(by) + (["--groups"] if groups_file is not None else [])
    return [audit_groups(scores, groupings[b], resamples, seed, min_group) for b in order]


THIN = 5


def thin_classes(doc: dict, below: int = THIN) -> dict[str, dict[str, int]]:
    """Per group, the classes present with fewer than ``below`` images (they swing UAR and macro-F1)."""
    out = {}
    for g in doc["groups"]:
        cs = {c: k for c, k in g["counts"].items() if 0 < k < below}
        if cs:
            out[g["group"]] = cs
    return out


def _md(text: str) -> str:
    """A value as one Markdown table cell (pipes escaped, one line)."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _cell(m: dict) -> str:
    if m["value"] is None:
        return "n/a"
    lo, hi = m["low"], m["high"]
    return f"{m['value']:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{m['value']:.3f}"


def audit_markdown(audit: GroupAudit) -> list[str]:
    d = audit.doc
    detect = any("face_found_rate" in g for g in d["groups"])
    head = ["group", "n"] + [METRIC_NAMES[m] + " [95% CI]" for m in METRICS] + (["face found"] if detect else [])
    lines = [f"### By {d['by']}", "", f"Groups: {d['definition']}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in d["groups"]:
        mark = " (!)" if g["warning"] else ""
        row = [f"{_md(g['group'])}{mark}", str(g["n"])] + [_cell(g["metrics"][m]) for m in METRICS]
        if detect:
            row.append(_cell(g["face_found_rate"]))
        lines.append("| " + " | ".join(row) + " |")
    ov = d["overall"]
    lines.append("| **all** | " + str(d["n"]) + " | " + " | ".join(
        "n/a" if ov[m] is None else f"{ov[m]:.3f}" for m in METRICS) + (" | |" if detect else " |"))
    thin = thin_classes(d)
    if thin:
        lines += ["", f"UAR and macro-F1 average the classes present in a group, so a class with under {THIN} images "
                  "in it swings them (one image: its recall is 0 or 1); such classes: "
                  + "; ".join(f"{_md(g)}: " + ", ".join(f"{c} {k}" for c, k in cs.items()) for g, cs in thin.items())
                  + ". Compare such groups on accuracy first."]
    lines += ["", f"Largest gap between groups with at least {d['min_group']} images (highest minus lowest; "
              "the range among groups; simultaneous 95% interval over all pairs of groups, which allows for the pair "
              "having been picked as highest and lowest):", ""]
    any_gap = False
    for m in METRICS:
        gp = d["gaps"][m]
        if gp is None:
            continue
        any_gap = True
        ci = (f" [{gp['gap_low']:.3f}, {gp['gap_high']:.3f}]" if gp["gap_low"] is not None else "")
        ratio = (f"; ratio {gp['ratio']:.3f} [{gp['ratio_low']:.3f}, {gp['ratio_high']:.3f}]"
                 if gp["ratio"] is not None and gp["ratio_low"] is not None else "")
        lines.append(f"- {METRIC_NAMES[m]}: {gp['gap']:.3f}{ci} ({_md(gp['highest'])} vs {_md(gp['lowest'])}; "
                     f"worse: {_md(gp['worst'])}){ratio}")
    if not any_gap:
        lines.append("- none (fewer than two groups large enough)")
    if d["warnings"]:
        lines += ["", "Warnings:", ""] + [f"- {w}" for w in d["warnings"]]
    return lines + [""]


def report_markdown(audits: Sequence[GroupAudit], meta: dict) -> str:
    b = audits[0].doc["bootstrap"] if audits else {}
    lines = ["# Subgroup audit", "",
             f"`{meta.get('command', 'openfer evaluate')}`", "",
             f"Model `{meta.get('model')}` (sha256 `{str(meta.get('sha256'))[:12]}…`), data `{meta.get('data')}`"
             + (f", split {meta['split']}" if meta.get("split") else "") + f", faces: {meta.get('faces')}.",
             "",
             f"Intervals: {b.get('interval')} over {b.get('resamples')} bootstrap resamples of the images of each "
             f"group, stratified by class (seed {b.get('seed')}). Groups under {audits[0].doc['min_group'] if audits else MIN_GROUP} "
             "images are marked (!) and left out of the gaps. "
             + ("As in `openfer evaluate`: an image without a found face counts as an error in accuracy and "
                "UAR; macro-F1 and ECE are over found faces. " if meta.get("faces") == "detect" else "")
             + "UAR and macro-F1 average the classes present in each group.", ""]
    for a in audits:
        lines += audit_markdown(a)
    return "\n".join(lines)


def plot_groups(audit: GroupAudit, path: str | Path) -> Path:
    """Per-group accuracy, UAR, macro-F1 and ECE with their 95% intervals (one panel each); groups under
    the size rule drawn hollow, the overall value as a dashed line."""
    from .plots import _figure

    d = audit.doc
    groups = d["groups"]
    k = len(groups)
    fig = _figure(max(7.0, 2.0 + 1.1 * k * 2), 5.6)
    axes = fig.subplots(2, 2, sharex=True).ravel()
    x = np.arange(k)
    for ax, m in zip(axes, METRICS, strict=True):
        for i, g in enumerate(groups):
            v = g["metrics"][m]
            if v["value"] is None:
                continue
            lo = v["low"] if v["low"] is not None else v["value"]
            hi = v["high"] if v["high"] is not None else v["value"]
            small = g["warning"] is not None
            ax.errorbar([i], [v["value"]], yerr=[[v["value"] - lo], [hi - v["value"]]], fmt="o", capsize=4,
                        color="tab:gray" if small else "tab:blue", mfc="white" if small else "tab:blue")
        if d["overall"][m] is not None:
            ax.axhline(d["overall"][m], ls="--", color="tab:red", lw=1, label=f"all: {d['overall'][m]:.3f}")
            ax.legend(loc="best", fontsize=8)
        ax.set_title(METRIC_NAMES[m] + (" (lower is better; biased up on small groups)" if m == "ece" else ""),
                     fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if m != "ece":  # the range of the large groups' intervals (and the overall line), at least 0.2 tall
            big = [g for g in groups if g["warning"] is None] or groups
            vals = [v for g in big for v in (g["metrics"][m]["low"], g["metrics"][m]["high"],
                                             g["metrics"][m]["value"]) if v is not None]
            vals += [d["overall"][m]] if d["overall"][m] is not None else []
            if vals:
                lo, hi = min(vals), max(vals)
                pad = max(0.03, (0.2 - (hi - lo)) / 2)
                y0, y1 = max(0.0, lo - pad), min(1.02, hi + pad)
                ax.set_ylim(y0, y1)
                for i, g in enumerate(groups):  # a small group's value off the axis: an arrow at the edge
                    val = g["metrics"][m]["value"]
                    if val is not None and not y0 <= val <= y1:
                        edge = y0 if val < y0 else y1
                        ax.plot([i], [edge], marker="v" if val < y0 else "^", color="tab:gray", clip_on=False)
                        ax.annotate(f"{val:.3f}", (i, edge), textcoords="offset points",
                                    xytext=(0, 8 if val < y0 else -14), ha="center", fontsize=8, color="tab:gray")
        ax.set_xlim(-0.5, k - 0.5)
    for ax in axes[2:]:
        ax.set_xticks(x, [f"{g['group']}\nn={g['n']}" for g in groups], fontsize=8, rotation=30 if k > 4 else 0,
                      ha="right" if k > 4 else "center")
    fig.suptitle(f"by {d['by']}: per-group metric with 95% bootstrap interval ({d['bootstrap']['resamples']} "
                 f"resamples); hollow: n < {d['min_group']}", fontsize=10)
    return _save_small_png(fig, path)


def _save_small_png(fig, path: str | Path) -> Path:  # noqa: ANN001
    """A figure as a 256-colour palette PNG (Pillow, which matplotlib requires), written atomically:
    a third to a half of the bytes of the RGBA PNG, for reports that are committed."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    img = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        img.save(fh, format="PNG", optimize=True)
    return path


def _slug(by: str) -> str:
    s = "".join(c if c.isalnum() or c in "-_" else "_" for c in by.strip("-"))
    return s or "groups"


def write_subgroup_report(audits: Sequence[GroupAudit], out: str | Path, meta: dict,
                          plots: bool = True) -> list[Path]:
    """``subgroups.md``, ``subgroups.json`` (``meta`` plus one document per grouping) and, with
    ``plots``, ``subgroups_<by>.png`` into ``out``; returns the paths written."""
    out = Path(out)
    written = [write_json({**meta, "audits": [a.doc for a in audits]}, out / "subgroups.json")]
    with atomic_open(out / "subgroups.md", "w", encoding="utf-8") as fh:
        fh.write(report_markdown(audits, meta))
    written.append(out / "subgroups.md")
    if plots:
        for a in audits:
            written.append(plot_groups(a, out / f"subgroups_{_slug(a.doc['by'])}.png"))
    return written


def print_audit(audit: GroupAudit, echo: Callable[[str], None] = print) -> None:
    """The per-group table and the gaps in a few terminal lines."""
    d = audit.doc
    echo(f"  by {d['by']}:")
    for g in d["groups"]:
        m = g["metrics"]
        ff = g.get("face_found_rate")
        echo(f"    {g['group'][:28]:<28} n={g['n']:<5} " + " ".join(
            f"{METRIC_NAMES[k]}={_cell(m[k])}" for k in ("accuracy", "uar"))
            + (f" found={ff['value']:.3f}" if ff and ff["value"] is not None else ""))
    gp = d["gaps"]["accuracy"]
    if gp:
        echo(f"    accuracy gap {gp['gap']:.3f} [{gp['gap_low']:.3f}, {gp['gap_high']:.3f}] "
             f"({gp['highest']} vs {gp['lowest']})")


# ---------------------------------------------------------------- robustness audit files


def robustness_markdown(audit, meta: dict) -> str:  # noqa: ANN001 - robustness.RobustnessAudit
    d = audit.doc
    classes = [c for c in d["classes"] if c in d["clean"]["per_class"]]
    detect = d["faces"] == "detect" and "face_found_rate" in d["clean"]
    lines = ["# Robustness audit", "", f"`{meta.get('command', 'openfer audit robustness')}`", "",
             f"Model `{meta.get('model')}` (sha256 `{str(meta.get('sha256'))[:12]}…`), data `{d['data']}`"
             + (f", split {d['split']}" if d.get("split") else "") + f", faces: {d['faces']}; {d['sample']}.",
             "",
             f"Each variation alone on every sampled image; change = varied minus clean (the same images), "
             f"with its paired percentile bootstrap 95% interval over {d['bootstrap']['resamples']} resamples "
             f"(seed {d['bootstrap']['seed']}). Per class: recall change, the class's images resampled; "
             "UAR change: the mean of those. Variations and patch placement: `openfer.eval.robustness`. "
             "Changed: share of images whose predicted class changed.", "",
             f"Clean accuracy {d['clean']['accuracy']:.3f} (n={d['n']}"
             + (f", face found {d['clean']['face_found_rate']:.3f}; an image without a found face is an error"
                if detect else "") + "); clean recall per class: "
             + ", ".join(f"{c} {d['clean']['per_class'][c]['recall']:.3f} (n={d['clean']['per_class'][c]['n']})"
                         for c in classes) + ".", "",
             "| variation | accuracy | change [95% CI] | UAR change [95% CI] | changed | "
             + ("face found | " if detect else "") + " | ".join(classes) + " |",
             "|" + "---|" * (5 + detect + len(classes))]
    for r in d["variations"]:
        pc = r["per_class"]
        found = f"{r['face_found_rate']:.3f} | " if detect else ""
        lines.append(
            f"| {r['variation']} | {r['accuracy']:.3f} | {r['change']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] | "
            f"{r['uar_change']:+.3f} [{r['uar_low']:+.3f}, {r['uar_high']:+.3f}] | {r['changed_predictions']:.3f} | "
            + found
            + " | ".join(f"{pc[c]['change']:+.3f} [{pc[c]['low']:+.2f}, {pc[c]['high']:+.2f}]" for c in classes)
            + " |")
    if d["occlusion_placed_by"]:
        lines += ["", "Occlusion patches placed by: " + "; ".join(
            f"{k}: " + ", ".join(f"{how} {c}" for how, c in v.items() if c) for k, v in d["occlusion_placed_by"].items())
            + "."]
    return "\n".join(lines) + "\n"


def plot_robustness(audit, path: str | Path) -> Path:  # noqa: ANN001
    """Left: accuracy change per variation with its paired 95% interval; right: recall change per class
    and variation (colour, value in the cell)."""
    from .plots import _figure

    d = audit.doc
    rows = d["variations"]
    classes = [c for c in d["classes"] if c in d["clean"]["per_class"]]
    k = len(rows)
    fig = _figure(6.0 + 0.75 * len(classes), 1.4 + 0.36 * k)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 0.25 + 0.12 * len(classes)]})
    yy = np.arange(k)
    ch = np.array([r["change"] for r in rows])
    err = np.array([[r["change"] - r["low"], r["high"] - r["change"]] for r in rows]).T
    left.barh(yy, ch, xerr=err, color=np.where(ch < 0, "tab:red", "tab:blue"), alpha=0.8, capsize=3)
    left.axvline(0, color="black", lw=0.8)
    left.set_yticks(yy, [r["variation"] for r in rows], fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("accuracy change vs clean (95% paired interval)")
    left.set_title(f"clean accuracy {d['clean']['accuracy']:.3f}, n={d['n']}", fontsize=10)
    left.grid(axis="x", alpha=0.3)
    m = np.array([[r["per_class"][c]["change"] for c in classes] for r in rows])
    lim = max(0.05, float(np.nanmax(np.abs(m)))) if m.size else 1.0
    im = right.imshow(m, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    right.set_xticks(range(len(classes)), [f"{c} ({d['clean']['per_class'][c]['n']})" for c in classes],
                     fontsize=7, rotation=45, ha="right")
    right.set_yticks(yy, [""] * k)
    for i in range(k):
        for j in range(len(classes)):
            right.text(j, i, f"{m[i, j]:+.2f}", ha="center", va="center", fontsize=7,
                       color="white" if abs(m[i, j]) > 0.6 * lim else "black")
    right.set_title("recall change per class", fontsize=10)
    fig.colorbar(im, ax=right, shrink=0.8)
    return _save_small_png(fig, path)


def plot_variation_examples(audit, path: str | Path, side: int = 96) -> Path:  # noqa: ANN001
    """The first sampled images clean and under each variation (one row per image), as the model's input
    stage sees them before resizing; thumbnails at most ``side`` pixels."""
    import cv2

    from .plots import _figure

    names = list(audit.examples)
    rows = len(audit.examples["clean"])
    fig = _figure(0.78 * len(names), 0.3 + 0.85 * rows)
    axes = np.asarray(fig.subplots(rows, len(names), squeeze=False))
    for j, name in enumerate(names):
        for i, img in enumerate(audit.examples[name]):
            ax = axes[i, j]
            h, w = img.shape[:2]
            f = min(1.0, side / max(h, w))
            thumb = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA) \
                if f < 1 else img
            ax.imshow(thumb, cmap="gray" if thumb.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name.replace(" ", "\n", 1), fontsize=6)
    return _save_small_png(fig, path)


def write_robustness_report(audit, out: str | Path, meta: dict, plots: bool = True) -> list[Path]:  # noqa: ANN001
    """``robustness.md``, ``robustness.json`` and (with ``plots``) ``robustness.png`` and
    ``robustness_examples.png`` (when the audit kept examples) into ``out``."""
    out = Path(out)
    written = [write_json({**meta, **audit.doc}, out / "robustness.json")]
    with atomic_open(out / "robustness.md", "w", encoding="utf-8") as fh:
        fh.write(robustness_markdown(audit, meta))
    written.append(out / "robustness.md")
    if plots:
        written.append(plot_robustness(audit, out / "robustness.png"))
        if getattr(audit, "examples", None) and audit.examples.get("clean"):
            written.append(plot_variation_examples(audit, out / "robustness_examples.png"))
    return written
