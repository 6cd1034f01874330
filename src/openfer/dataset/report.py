"""Writing a :class:`~openfer.dataset.card.DatasetCard`: ``card.json``, ``card.md``, ``duplicates.csv`` and
``plots/*.png`` into one folder, each file atomically (:mod:`openfer.io.tables`)."""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import InputError
from ..io.tables import atomic_open, check_folders, write_csv, write_json
from .card import DatasetCard
from .datasheet import SECTIONS, TO_FILL

PAIR_COLUMNS = ("kind", "distance", "split_a", "path_a", "label_a", "split_b", "path_b", "label_b")
OUTPUT_NAMES = ("card.md", "card.json", "duplicates.csv", "plots")


def check_outputs(out: Path, data_root: Path, inputs: set[Path]) -> None:
    """Refuse an output folder that is (inside) the data set, or whose files would replace an input."""
    o, r = out.resolve(), data_root.resolve()
    if o == r or r in o.parents:
        raise InputError(f"{out}: the card folder must be outside the data set {data_root} "
                         "(its plots would become images of the data set)")
    check_folders(out / "card.json")
    for name in OUTPUT_NAMES:
        if (o / name).resolve() in inputs:
            raise InputError(f"{out / name}: is an input of the data set; choose another --out")


def _fmt(x: object, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _q(q: dict, digits: int = 1) -> str:
    if not q["n"]:
        return "n/a"
    return (f"median {_fmt(q['median'], digits)} (5-95%: {_fmt(q['p5'], digits)} to {_fmt(q['p95'], digits)}; "
            f"min {_fmt(q['min'], digits)}, max {_fmt(q['max'], digits)})")


def _table(head: list[str], rows: list[list[object]]) -> list[str]:
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows])


def _human(doc: dict, section: str) -> list[str]:
    lines = []
    for key, f in doc["human"][section].items():
        if f["value"]:
            lines.append(f"- **{key}** ({f['prompt']}): {f['value']} *(from {f['source']})*")
        else:
            lines.append(f"- **{key}**: {TO_FILL}{f['prompt']}")
    return lines


def render_markdown(doc: dict) -> str:
    c, d, splits = doc["composition"], doc["duplicates"], doc["composition"]["splits"]
    g = doc["generated_by"]
    title = {s: n for s, n in SECTIONS}
    L = [f"# Dataset card: `{doc['data']['path']}`", "",
         f"Written by `{g['command']}` (openfer {g['openfer']}, {g['seconds']['total']:.0f} s). "
         "Measured fields come from the data; fields marked **TO FILL** can only be answered by the people "
         "who made the data set (pass them with `--about FILE`). Structure: Gebru et al., *Datasheets for "
         "Datasets* (2021). Every number below is in `card.json`.", "",
         "## Summary", ""] + [f"- {f}" for f in doc["summary"]]
    L += ["", f"## 1. {title['motivation']}", ""] + _human(doc, "motivation")
    # composition
    L += ["", f"## 2. {title['composition']}", "",
          f"Format `{doc['data']['format']}` (read as `openfer evaluate` reads it), splits: {', '.join(splits)}. "
          "Labelled = with a label under the format's protocol"
          + (" (FER+ majority protocol: votes <= 1 set to 0, a class must hold more than half of the rest; "
             "`unknown`/`NF` majorities and ties are dropped)." if doc["agreement"] else "."), ""]
    L += _table(["split", "images", "labelled", *c["classes"]],
                [[s, c["images"][s], c["labelled"][s], *[c["per_class"][s][k] for k in c["classes"]]] for s in splits])
    L += ["", "Not labelled, by reason: " + "; ".join(
        f"{s}: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in c["unlabelled"][s].items()) for s in splits) + ".",
          "", "![images per class](plots/class_counts.png)", ""] + _human(doc, "composition") + [""]
    rows = []
    for s in splits:
        rows.append([s, ", ".join(f"{k} {v:,}" for k, v in c["formats"][s].items()),
                     ", ".join(f"{k} {v:,}" for k, v in list(c["sizes"][s].items())[:3]),
                     f"grey {c['colour'][s]['grey']:,}, colour {c['colour'][s]['colour']:,}",
                     len(c["unreadable"][s]), c["unlisted_files"][s]])
    L += _table(["split", "file formats", "most common sizes (w x h)", "colour (grey: R=G=B)", "unreadable",
                 "image files not in the label file"], rows)
    bad = [u for s in splits for u in c["unreadable"][s]]
    if bad:
        L += ["", "Unreadable files:"] + [f"- `{u['path']}`: {u['error']}" for u in bad[:20]]
        if len(bad) > 20:
            L.append(f"- ... {len(bad) - 20} more in card.json")
    L += ["", "### Duplicates", "",
          f"Every pair of readable images (all splits together) was compared: exact duplicates by the sha256 of the "
          f"file bytes or of the decoded pixels; near-duplicates by a 64-bit DCT perceptual hash (pHash) within "
          f"**{d['method']['max_distance']} bits** (Hamming distance). Pairs found: {d['pairs']['total']:,} "
          f"(the same file listed twice {d['pairs']['listed_twice']:,}, identical files {d['pairs']['bytes']:,}, "
          f"identical pixels {d['pairs']['pixels']:,}, near {d['pairs']['near']:,}), "
          f"of which {d['label_conflicts']:,} carry different labels; all are listed in "
          f"[`duplicates.csv`](duplicates.csv).", ""]
    L += _table(["split", "images", "with a duplicate in the same split", "near-constant (std < 2)"],
                [[s, w["images"], w["images_with_duplicate_in_split"], w["near_constant_images"]]
                 for s, w in d["within"].items()])
    if d["across"]:
        L += [""] + _table(["split", "has a duplicate in", "images", "share", "pairs"],
                           [[k.split(" in ")[0], k.split(" in ")[1], a["images"], f"{100 * a['share']:.2f}%", a["pairs"]]
                            for k, a in d["across"].items()])
    L += ["", "![nearest hash distance](plots/nearest_hash_distance.png)", ""]
    if doc["plots"] and "plots/duplicate_examples.png" in doc["plots"]:
        L += ["Examples (random, cross-split pairs first; label: kind, distance, splits):", "",
              "![duplicate examples](plots/duplicate_examples.png)", ""]
    L += ["### Image quality (all readable images)", "",
          "Brightness: mean grey level (0-255); contrast: its standard deviation; blur: variance of the "
          "Laplacian of the grey image at its stored size (higher = sharper; depends on resolution).", ""]
    L += _table(["split", "brightness", "contrast", "blur (Laplacian variance)"],
                [[s, _q(q["brightness"]), _q(q["contrast"]), _q(q["blur_laplacian_var"])] for s, q in doc["quality"].items()])
    L += ["", "![image quality](plots/image_quality.png)", ""]
    if doc["pipeline"]:
        p = doc["pipeline"]
        how = ("each 48x48 crop upscaled 4x (cubic) with a 25% replicated border, one detector pass over the "
               "whole image" if p["faces"] == "crops" else
               f"each photo as `openfer analyze` sees it (detector with tiling down to {p['options']['min_face']} px faces)")
        on = (f"On a random sample of up to {p['sample_per_split']} readable images per split "
              f"(numpy `default_rng(seed + split index)`, seed {p['seed']})" if p["sample_per_split"]
              else "On every readable image")
        L += ["### What the openfer pipeline sees", "",
              f"{on}: {how}, then Face Mesh ({p['options']['mesh']}); the largest face per image is measured. "
              "Face height: detector box, pixels of the stored image; pose: yaw/pitch/roll in degrees from the "
              "mesh. 95% intervals: Wilson.", ""]
        L += _table(["split", "sampled", "face found", "more than one face", "face height px", "abs(yaw) > 30 deg",
                     "yaw", "pitch", "roll"],
                    [[s, v["analysed"], f"{100 * v['face_found_rate']:.1f}% ({100 * v['face_found_rate_ci95'][0]:.1f}-"
                      f"{100 * v['face_found_rate_ci95'][1]:.1f})", v["more_than_one_face"], _q(v["face_height_px"]),
                      f"{100 * v['abs_yaw_over_30_share']:.1f}%" if math.isfinite(v["abs_yaw_over_30_share"]) else "n/a",
                      _q(v["yaw_deg"]), _q(v["pitch_deg"]), _q(v["roll_deg"])] for s, v in p["splits"].items()])
        L += ["", "![faces](plots/faces.png)", ""]
    # collection, preprocessing
    L += [f"## 3. {title['collection']}", ""] + _human(doc, "collection")
    L += ["", f"## 4. {title['preprocessing']}", ""]
    if doc["agreement"]:
        L += ["### Annotator agreement (measured from the vote counts)", "",
              "Raw votes over 10 categories (8 expressions, `unknown`, `NF` = not a face). Fleiss' kappa over all "
              "images of the split; majority share = votes of the top category / all votes; entropy of the vote "
              "distribution in bits (0 = unanimous, log2(10) = 3.32 at most).", ""]
        L += _table(["split", "images", "votes per image", "Fleiss' kappa", "mean majority share", "unanimous",
                     "mean entropy (bits)", "unknown votes", "NF votes"],
                    [[s, a["all_images"]["items"], "/".join(map(str, a["all_images"]["raters_per_item"])),
                      a["all_images"]["fleiss_kappa"], a["all_images"]["majority_share_mean"],
                      f"{100 * a['all_images']['unanimous_share']:.1f}%", a["all_images"]["entropy_mean_bits"],
                      f"{100 * a['unknown_vote_share']:.2f}%", f"{100 * a['NF_vote_share']:.2f}%"]
                     for s, a in doc["agreement"].items() if a])
        L += ["", "Per majority class (images with that label under the protocol; kappa: Fleiss' kappa of that "
              "category against all others, over all images):", ""]
        for s, a in doc["agreement"].items():
            if not a:
                continue
            L += [f"**{s}**", ""] + _table(
                ["class", "images", "mean majority share", "mean entropy (bits)", "unknown+NF vote share", "kappa"],
                [[k, v["images"], v["majority_share_mean"], v["entropy_mean_bits"], v["unknown_NF_vote_share"], v["kappa"]]
                 for k, v in a["per_class"].items()]) + [""]
        L += ["![agreement](plots/agreement.png)", ""]
    else:
        L += ["No vote counts in this format: annotator agreement cannot be measured.", ""]
    L += _human(doc, "preprocessing")
    # uses
    L += ["", f"## 5. {title['uses']}", ""]
    if doc["model"]:
        m = doc["model"]
        L += [f"### Shipped model on this data: `{m['name']}` (sha256 `{m['sha256'][:12]}`)", "",
              ("Face crops resized to the model input, no detection (`openfer evaluate --faces crops`)"
               if m["mode"] == "crops" else
               "Full pipeline, largest face scored, no face found counts as an error (`openfer evaluate --faces detect`)")
              + ", on the same images as the face statistics above, labelled ones only. Accuracy interval: Wilson 95%. A split "
              "the model was trained or tuned on says nothing about generalisation: see the model's card "
              "(`openfer models`).", ""]
        cls = list(next(iter(m["splits"].values()))["per_class"])
        L += _table(["split", "n", "accuracy (95% CI)", "UAR", "macro F1", "ECE",
                     *[f"recall {k}" for k in cls]],
                    [[s, r["n"], f"{r['accuracy']:.3f} ({r['accuracy_ci95'][0]:.3f}-{r['accuracy_ci95'][1]:.3f})",
                      r["uar"], r["macro_f1"], r["ece"],
                      *[f"{r['per_class'][k]['recall']:.2f} ({r['per_class'][k]['support']})" if r["per_class"][k]["support"]
                        else "-" for k in cls]] for s, r in m["splits"].items()])
        skipped = {s: r["coverage"] for s, r in m["splits"].items() if r["coverage"]["not_in_model"]}
        for s, cov in skipped.items():
            L.append(f"\n{s}: classes the model does not have (not scored): "
                     + ", ".join(f"{k} ({v})" for k, v in cov["not_in_model"].items()))
        L += ["", "![recall](plots/recall.png)", ""]
    L += _human(doc, "uses")
    L += ["", f"## 6. {title['distribution']}", ""] + _human(doc, "distribution")
    L += ["", f"## 7. {title['maintenance']}", ""] + _human(doc, "maintenance")
    L += ["", "## How this card was made", "",
          f"`{g['command']}`; run time: " + ", ".join(f"{k.replace('_', ' ')} {v} s" for k, v in g["seconds"].items())
          + ". Thresholds: near-duplicate pHash distance <= "
          f"{d['method']['max_distance']} bits; near-constant image: grey-level std < 2.", ""]
    return "\n".join(L)


def json_ready(x: object) -> object:
    """``x`` with every NaN or infinite float as ``None`` (JSON has no NaN)."""
    if isinstance(x, dict):
        return {k: json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_ready(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_card(card: DatasetCard, out: Path, data_root: Path, plots: bool = True,
               pixels: dict | None = None) -> list[Path]:
    """Write every file of ``card`` into ``out``; returns the paths written. ``pixels``: the images whose
    pixels the label file holds, by resolved path (:meth:`DataSource.pixels`), for the duplicate sheet."""
    from . import plots as P

    out = Path(out)
    written: list[Path] = []
    doc = card.doc
    if plots:
        pl = out / "plots"
        drawn = [P.plot_classes(doc, pl / "class_counts.png"), P.plot_quality(card, pl / "image_quality.png"),
                 P.plot_nearest(card, pl / "nearest_hash_distance.png")]
        sheet = P.duplicate_sheet(card.pairs, data_root, pl / "duplicate_examples.png", pixels=pixels)
        drawn += [sheet] if sheet else []
        if doc["agreement"]:
            drawn.append(P.plot_agreement(doc, pl / "agreement.png"))
        if doc["pipeline"]:
            drawn += [P.plot_faces(card, pl / "faces.png"), P.plot_recall(doc, pl / "recall.png")]
        doc["plots"] = [p.relative_to(out).as_posix() for p in drawn]
        written += drawn
    written.append(write_csv(card.pairs, out / "duplicates.csv", columns=PAIR_COLUMNS))
    written.append(write_json(json_ready(doc), out / "card.json"))
    with atomic_open(out / "card.md", encoding="utf-8") as fh:
        fh.write(render_markdown(doc))
    written.append(out / "card.md")
    return written
