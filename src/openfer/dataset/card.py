"""``openfer dataset card``: a datasheet of a labelled expression data set, every measurable field measured.

:func:`build_card` returns a :class:`DatasetCard`: the card as one JSON-ready document with a fixed set
of keys (``card.json``), the duplicate pairs (``duplicates.csv``) and the arrays the plots draw. Writing
the files is :func:`openfer.dataset.report.write_card`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..eval.attributes import CROP_PAD, CROP_UPSCALE
from ..eval.datasets import label_coverage
from ..eval.labels import FERPLUS_CLASSES, FERPLUS_VOTE_COLUMNS
from .agreement import majority_share as _majority_share
from .agreement import summarize, vote_entropy
from .datasheet import human_fields
from .hashing import NEAR_DISTANCE, near_pairs
from .profile import FaceStats, profile_split, sample_indices, wilson
from .scan import BLANK_STD, ImageScan, scan_images
from .sources import DataSource, Split

log = logging.getLogger("openfer")
SCHEMA = "openfer.dataset_card/1"
SPLIT_ORDER = {"train": 0, "valid": 1, "test": 2, "all": 3}


@dataclass(frozen=True)
class CardOptions:
    faces: str | None = None  # "crops" / "detect"; None: crops for ferplus and fer2013, detect otherwise
    model: str = "fernet_s"
    sample: int = 500  # images per split for the pipeline and the model (0: all)
    seed: int = 0
    near_distance: int = NEAR_DISTANCE
    threads: int = 0
    pipeline: bool = True  # False: skip the pipeline and model (no face statistics, no accuracy)


@dataclass(frozen=True)
class DatasetCard:
    doc: dict  # card.json
    pairs: list[dict]  # duplicates.csv rows
    scans: dict[str, ImageScan] = field(repr=False)
    faces: dict[str, FaceStats] = field(repr=False)
    nearest: dict[str, np.ndarray] = field(repr=False)  # nearest-neighbour hash distance per split
    reports: dict[str, dict] = field(repr=False)


def quantiles(x: np.ndarray) -> dict:
    """n, mean and the 0/5/25/50/75/95/100th percentiles of the finite values (NaN when none)."""
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    keys = ("min", "p5", "p25", "median", "p75", "p95", "max")
    if not len(v):
        return {"n": 0, "mean": math.nan, **dict.fromkeys(keys, math.nan)}
    q = np.percentile(v, [0, 5, 25, 50, 75, 95, 100])
    return {"n": int(len(v)), "mean": float(v.mean()), **{k: float(a) for k, a in zip(keys, q, strict=True)}}


def _rel(p: Path, root: Path) -> str:
    try:
        return Path(p).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(p)


def _tally(values) -> dict[str, int]:  # noqa: ANN001
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _composition(src: DataSource, scans: dict[str, ImageScan]) -> dict:
    comp: dict = {"classes": list(src.splits[0].classes), "splits": [s.name for s in src.splits],
                  "images": {}, "labelled": {}, "per_class": {}, "unlabelled": {}, "unreadable": {},
                  "unlisted_files": {}, "formats": {}, "sizes": {}, "width": {}, "height": {}, "colour": {},
                  "file_kib": {}}
    for s in src.splits:
        sc = scans[s.name]
        ok = sc.ok
        comp["images"][s.name] = len(s.paths)
        comp["labelled"][s.name] = int((s.labels >= 0).sum())
        counts = np.bincount(s.labels[s.labels >= 0], minlength=len(s.classes))
        comp["per_class"][s.name] = {c: int(counts[i]) for i, c in enumerate(s.classes)}
        if s.votes is not None:
            v = np.where(s.votes <= 1, 0.0, s.votes)
            top = v.argmax(axis=1)
            no_votes = v.sum(axis=1) == 0
            unk = (s.labels < 0) & ~no_votes & (top >= len(FERPLUS_CLASSES)) & (v.max(1) > v.sum(1) / 2)
            comp["unlabelled"][s.name] = {
                "unknown_or_NF_majority": int(unk.sum()),
                "no_majority": int(((s.labels < 0) & ~unk & ~no_votes).sum()),
                "no_counted_votes": int(((s.labels < 0) & no_votes).sum()),
            }
        else:
            comp["unlabelled"][s.name] = {"label_outside_classes_or_empty": int((s.labels < 0).sum())}
        comp["unreadable"][s.name] = [{"path": _rel(p, src.root), "error": e}
                                      for p, e in zip(s.paths, sc.error, strict=True) if e]
        comp["unlisted_files"][s.name] = len(s.unlisted)
        comp["formats"][s.name] = _tally(f for f, k in zip(sc.file_format, ok, strict=True) if k)
        comp["sizes"][s.name] = dict(list(_tally(f"{w}x{h}" for w, h, k in
                                                  zip(sc.width, sc.height, ok, strict=True) if k).items())[:10])
        comp["width"][s.name] = quantiles(sc.width[ok])
        comp["height"][s.name] = quantiles(sc.height[ok])
        comp["colour"][s.name] = {"grey": int((sc.grey & ok).sum()), "colour": int((~sc.grey & ok).sum())}
        comp["file_kib"][s.name] = quantiles(np.where(sc.file_bytes >= 0, sc.file_bytes / 1024, np.nan)[ok])
    return comp


def _duplicates(src: DataSource, scans: dict[str, ImageScan], max_distance: int) -> tuple[dict, list[dict], dict]:
    split_of, local, flat_paths, flat_labels = [], [], [], []
    for s in src.splits:
        n = len(s.paths)
        split_of += [s.name] * n
        local += list(range(n))
        flat_paths += list(s.paths)
        flat_labels += [s.classes[k] if k >= 0 else "" for k in s.labels]
    ok = np.concatenate([scans[s.name].ok for s in src.splits])
    bytes_d = sum((list(scans[s.name].byte_digest) for s in src.splits), [])
    pix_d = sum((list(scans[s.name].pixel_digest) for s in src.splits), [])
    hashes = np.concatenate([scans[s.name].phash for s in src.splits])
    idx = np.flatnonzero(ok)
    hp = near_pairs(hashes[idx], max_distance)
    nearest_all = np.full(len(ok), 65, np.int64)
    nearest_all[idx] = hp.nearest
    pairs: list[dict] = []
    dup_in: list[set[str]] = [set() for _ in range(len(ok))]
    kinds = {"listed_twice": 0, "bytes": 0, "pixels": 0, "near": 0}
    conflicts = 0
    for a, b, d in zip(idx[hp.i], idx[hp.j], hp.distance, strict=True):
        same_file = Path(flat_paths[a]).resolve() == Path(flat_paths[b]).resolve()
        kind = ("listed_twice" if same_file else "bytes" if bytes_d[a] == bytes_d[b]
                else "pixels" if pix_d[a] == pix_d[b] else "near")
        kinds[kind] += 1
        dup_in[a].add(split_of[b])
        dup_in[b].add(split_of[a])
        la, lb = flat_labels[a], flat_labels[b]
        conflicts += bool(la and lb and la != lb)
        pairs.append({"kind": kind, "distance": int(d), "split_a": split_of[a], "path_a": _rel(flat_paths[a], src.root),
                      "label_a": la, "split_b": split_of[b], "path_b": _rel(flat_paths[b], src.root), "label_b": lb})
    names = [s.name for s in src.splits]
    within = {}
    for s in names:
        members = [k for k in range(len(ok)) if split_of[k] == s]
        within[s] = {"images_with_duplicate_in_split": int(sum(s in dup_in[k] for k in members)),
                     "images": len(members),
                     "near_constant_images": int((scans[s].contrast < BLANK_STD).sum())}
    across = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            later, earlier = (b, a) if SPLIT_ORDER.get(b, 9) >= SPLIT_ORDER.get(a, 9) else (a, b)
            members = [k for k in range(len(ok)) if split_of[k] == later]
            hit = int(sum(earlier in dup_in[k] for k in members))
            n_pairs = sum(1 for p in pairs if {p["split_a"], p["split_b"]} == {a, b})
            across[f"{later} in {earlier}"] = {"images": hit, "of": len(members),
                                              "share": hit / len(members) if members else math.nan,
                                              "pairs": n_pairs}
    doc = {
        "method": {"exact": "sha256 of the file bytes; of the decoded pixels",
                   "near": "64-bit DCT perceptual hash (grey, 32x32 area resize, 8x8 lowest frequencies vs their "
                           "median); a pair is a near-duplicate within max_distance bits (Hamming)",
                   "max_distance": int(max_distance), "compared": "every pair of readable images, all splits together"},
        "pairs": {"total": len(pairs), **kinds},
        "label_conflicts": conflicts,
        "within": within,
        "across": across,
        "pairs_csv": "duplicates.csv",
    }
    near = {s.name: nearest_all[[k for k in range(len(ok)) if split_of[k] == s.name]] for s in src.splits}
    return doc, pairs, near


def _agreement(split: Split) -> dict | None:
    if split.votes is None:
        return None
    v = split.votes
    cats = FERPLUS_VOTE_COLUMNS
    total = v.sum()
    ag = summarize(v, cats).to_dict()
    ms, h = _majority_share(v), vote_entropy(v)
    per_class = {}
    for k, c in enumerate(split.classes):
        m = split.labels == k
        per_class[c] = {
            "images": int(m.sum()),
            "majority_share_mean": float(ms[m].mean()) if m.any() else math.nan,
            "entropy_mean_bits": float(h[m].mean()) if m.any() else math.nan,
            "unknown_NF_vote_share": float(v[m][:, len(FERPLUS_CLASSES):].sum() / v[m].sum()) if m.any() else math.nan,
            "kappa": ag["category_kappa"][c],
        }
    return {
        "categories": list(cats),
        "all_images": ag,
        "unknown_vote_share": float(v[:, cats.index("unknown")].sum() / total),
        "NF_vote_share": float(v[:, cats.index("NF")].sum() / total),
        "per_class": per_class,
        "note": "raw votes (all 10 columns, before the protocol's removal of single votes); per class: images "
                "with that majority label; kappa per class: Fleiss' category kappa over all images",
    }


def _pipeline_doc(split: Split, stats: FaceStats) -> dict:
    analysed = stats.faces >= 0
    found = int((stats.faces > 0).sum())
    n = int(analysed.sum())
    lo, hi = wilson(found, n)
    return {
        "sampled": int(len(stats.index)), "analysed": n, "face_found": found,
        "face_found_rate": found / n if n else math.nan, "face_found_rate_ci95": [lo, hi],
        "more_than_one_face": int((stats.faces > 1).sum()),
        "face_height_px": quantiles(stats.face_height), "face_height_fraction": quantiles(stats.face_fraction),
        "yaw_deg": quantiles(stats.yaw), "pitch_deg": quantiles(stats.pitch), "roll_deg": quantiles(stats.roll),
        "abs_yaw_over_30_share": float(np.mean(np.abs(stats.yaw[np.isfinite(stats.yaw)]) > 30))
        if np.isfinite(stats.yaw).any() else math.nan,
    }


def _model_doc(rep: dict, coverage: dict) -> dict:
    n = int(rep["n"])
    acc = rep["accuracy"]
    k = int(round(acc * n)) if n and np.isfinite(acc) else 0
    out = {key: rep[key] for key in ("n", "accuracy", "uar", "macro_f1", "ece") if key in rep}
    out["accuracy_ci95"] = list(wilson(k, n))
    for key in ("face_found_rate", "accuracy_on_found"):
        if key in rep:
            out[key] = rep[key]
    out["per_class"] = {c: {"recall": m["recall"], "precision": m["precision"], "support": m["support"]}
                        for c, m in rep["per_class"].items()}
    out["confusion"] = rep["confusion"]
    out["coverage"] = coverage
    return out


def build_card(src: DataSource, options: CardOptions, *, data_arg: str, command: str,
               about: dict | None = None, about_source: str | None = None,
               progress: Callable[[str, int, int], None] | None = None) -> DatasetCard:
    """Measure everything a card reports about ``src``."""
    t0 = time.monotonic()
    faces = options.faces or ("crops" if src.format in ("ferplus", "fer2013") else "detect")

    def step(name: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda done, total: progress(name, done, total))

    scans = {s.name: scan_images(s.paths, s.images, step(f"scan {s.name}")) for s in src.splits}
    t_scan = time.monotonic() - t0
    comp = _composition(src, scans)
    dups, pairs, nearest = _duplicates(src, scans, options.near_distance)
    quality = {s.name: {"brightness": quantiles(scans[s.name].brightness), "contrast": quantiles(scans[s.name].contrast),
                        "blur_laplacian_var": quantiles(scans[s.name].blur)} for s in src.splits}
    agreement = {s.name: _agreement(s) for s in src.splits} if any(s.votes is not None for s in src.splits) else None
    t_pipe = time.monotonic()
    pipeline_doc: dict | None = None
    model_doc: dict | None = None
    stats_by: dict[str, FaceStats] = {}
    reports: dict[str, dict] = {}
    if options.pipeline:
        from ..components.expression import ExpressionClassifier
        from ..pipeline import Analyzer

        base = dict(expression_model=options.model, threads=options.threads, blendshapes=False, aus=False,
                    explain=False)
        # crops: one short-range pass and one mesh pass on the upscaled crop, as the shipped cards were made
        # (the face fills the view: the short-range model's range); photos: the default pipeline
        analyzer = (Analyzer(**base, min_face=None, flip=False, detector="blazeface_short", mesh_passes=1)
                    if faces == "crops" else Analyzer(**base))
        clf = ExpressionClassifier(options.model, threads=options.threads) if faces == "crops" else None
        model_name = analyzer.expression.model.name
        pipeline_doc = {"faces": faces, "sample_per_split": options.sample, "seed": options.seed,
                        "options": {k: getattr(analyzer.options, k)
                                    for k in ("min_face", "detector", "detect_threshold", "mesh", "mesh_passes")},
                        "crop_view": {"upscale": CROP_UPSCALE, "border": CROP_PAD} if faces == "crops" else None,
                        "splits": {}}
        model_doc = {"name": model_name, "sha256": analyzer.expression.model.sha256,
                     "mode": faces, "splits": {}}
        for k, s in enumerate(src.splits):
            sc = scans[s.name]
            sample = sample_indices(np.flatnonzero(sc.ok), options.sample, options.seed + k)
            stats, rep = profile_split(s.paths, sc.height, sample, s.labelled, faces, analyzer, clf,
                                       images=s.images, progress=step(f"pipeline {s.name}"))
            stats_by[s.name], reports[s.name] = stats, rep
            pipeline_doc["splits"][s.name] = _pipeline_doc(s, stats)
            model_doc["splits"][s.name] = _model_doc(rep, label_coverage(s.labelled, analyzer.classes))
    doc = {
        "schema": SCHEMA,
        "data": {"path": data_arg, "format": src.format, "splits": [s.name for s in src.splits],
                 "label_files": [_rel(s.label_file, src.root) if s.label_file else None for s in src.splits]},
        "generated_by": {"openfer": __version__, "command": command, "seconds": {}},
        "summary": [],
        "composition": comp,
        "duplicates": dups,
        "quality": quality,
        "agreement": agreement,
        "pipeline": pipeline_doc,
        "model": model_doc,
        "human": human_fields(about, about_source),
        "plots": [],
    }
    doc["generated_by"]["seconds"] = {"scan_and_hash": round(t_scan, 1),
                                      "duplicates_agreement": round(t_pipe - t0 - t_scan, 1),
                                      "pipeline_and_model": round(time.monotonic() - t_pipe, 1),
                                      "total": round(time.monotonic() - t0, 1)}
    doc["summary"] = findings(doc)
    return DatasetCard(doc, pairs, scans, stats_by, nearest, reports)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if np.isfinite(x) else "n/a"


def findings(doc: dict) -> list[str]:
    """The card's headline findings, each a sentence with its numbers and where they come from."""
    c, d = doc["composition"], doc["duplicates"]
    out = []
    parts = ", ".join(f"{s} {c['images'][s]:,} ({c['labelled'][s]:,} labelled)" for s in c["splits"])
    out.append(f"{sum(c['images'].values()):,} images: {parts}.")
    for key, a in d["across"].items():
        later, earlier = key.split(" in ")
        if a["images"]:
            leak = (f" — a {earlier}/test leak" if later == "test" else
                    " — a leak into model selection" if later == "valid" else "")
            out.append(f"{a['images']:,} of {a['of']:,} {later} images ({_pct(a['share'])}) have an exact or "
                       f"near-duplicate (pHash within {d['method']['max_distance']} bits) in {earlier}{leak} "
                       f"({a['pairs']:,} pairs in duplicates.csv).")
        else:
            out.append(f"No {later} image has an exact or near-duplicate in {earlier} "
                       f"(pHash within {d['method']['max_distance']} bits).")
    for s, w in d["within"].items():
        if w["images_with_duplicate_in_split"]:
            out.append(f"{s}: {w['images_with_duplicate_in_split']:,} images ({_pct(w['images_with_duplicate_in_split'] / max(w['images'], 1))}) "
                       "have a duplicate in the same split.")
        if w["near_constant_images"]:
            out.append(f"{s}: {w['near_constant_images']} near-constant images (grey-level std < {BLANK_STD:g}).")
    if d["pairs"]["listed_twice"]:
        out.append(f"{d['pairs']['listed_twice']} file(s) are listed more than once in the label file(s) "
                   "(kind listed_twice in duplicates.csv).")
    if d["label_conflicts"]:
        out.append(f"{d['label_conflicts']:,} duplicate pairs carry different labels.")
    bad = sum(len(v) for v in c["unreadable"].values())
    if bad:
        out.append(f"{bad} image file(s) cannot be read (listed in card.json, composition.unreadable).")
    if doc["agreement"]:
        ks = ", ".join(f"{s} {a['all_images']['fleiss_kappa']:.3f}" for s, a in doc["agreement"].items() if a)
        ms = ", ".join(f"{s} {a['all_images']['majority_share_mean']:.2f}" for s, a in doc["agreement"].items() if a)
        out.append(f"Annotator agreement (10 votes per image, 10 categories incl. unknown/NF): Fleiss' kappa {ks}; "
                   f"mean share of votes for the top category {ms}.")
    if doc["pipeline"]:
        p = doc["pipeline"]
        fr = ", ".join(f"{s} {_pct(v['face_found_rate'])}" for s, v in p["splits"].items())
        on = (f"random sample of up to {p['sample_per_split']} images per split, seed {p['seed']}"
              if p["sample_per_split"] else "all readable images")
        out.append(f"The openfer pipeline finds a face in: {fr} ({on}, faces={p['faces']}).")
        m = doc["model"]
        acc = ", ".join(f"{s} {v['accuracy']:.3f} (n={v['n']}, UAR {v['uar']:.3f})" for s, v in m["splits"].items())
        out.append(f"Shipped model {m['name']} accuracy ({'face crops' if m['mode'] == 'crops' else 'full pipeline, no face = error'}"
                   f", same images, labelled ones): {acc}.")
    return out
