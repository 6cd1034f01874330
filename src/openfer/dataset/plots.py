"""The card's figures as PNG (matplotlib, imported when drawn; the ``[data]`` extra), drawn on bare
Figures and written atomically like :mod:`openfer.eval.plots`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..extras import require
from ..io.tables import atomic_open

COLOURS = {"train": "tab:blue", "valid": "tab:orange", "test": "tab:green", "all": "tab:blue"}


def _figure(width: float, height: float):  # noqa: ANN202
    Figure = require("matplotlib.figure", "data", "openfer dataset card plots").Figure
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save_png(fig, path: Path) -> Path:  # noqa: ANN001
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png")
    return Path(path)


def _colour(split: str) -> str:
    return COLOURS.get(split, "tab:gray")


def plot_classes(doc: dict, path: Path) -> Path:
    comp = doc["composition"]
    classes, splits = comp["classes"], comp["splits"]
    fig = _figure(1.5 + 0.8 * len(classes), 3.8)
    ax = fig.add_subplot()
    width = 0.8 / len(splits)
    for k, s in enumerate(splits):
        counts = [comp["per_class"][s][c] for c in classes]
        x = np.arange(len(classes)) + (k - (len(splits) - 1) / 2) * width
        bars = ax.bar(x, counts, width, label=f"{s} (n={sum(counts):,})", color=_colour(s))
        ax.bar_label(bars, labels=[f"{v:,}" for v in counts], fontsize=6, rotation=90, padding=2)
    ax.set_yscale("log")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_ylabel("images (log scale)")
    ax.set_title("labelled images per class and split")
    ax.legend(fontsize=8)
    return _save_png(fig, path)


def _hist(ax, values: dict[str, np.ndarray], bins, xlabel: str, title: str, log_x: bool = False) -> None:  # noqa: ANN001
    for s, v in values.items():
        v = np.asarray(v, dtype=np.float64)
        v = v[np.isfinite(v)]
        if log_x:
            v = np.log10(np.maximum(v, 1e-3))
        if len(v):
            ax.hist(v, bins=bins, density=True, histtype="step", linewidth=1.5, color=_colour(s),
                    label=f"{s} (n={len(v):,})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)


def plot_quality(card, path: Path) -> Path:  # noqa: ANN001
    """Brightness, contrast and blur of every readable image, per split."""
    fig = _figure(12, 3.4)
    axes = fig.subplots(1, 3)
    ok = {s: sc.ok for s, sc in card.scans.items()}
    _hist(axes[0], {s: sc.brightness[ok[s]] for s, sc in card.scans.items()}, np.linspace(0, 255, 52),
          "mean grey level (0-255)", "brightness (all images)")
    _hist(axes[1], {s: sc.contrast[ok[s]] for s, sc in card.scans.items()}, np.linspace(0, 128, 52),
          "grey-level std", "contrast (all images)")
    _hist(axes[2], {s: sc.blur[ok[s]] for s, sc in card.scans.items()}, 50,
          "log10 Laplacian variance (higher: sharper)", "blur (all images, native size)", log_x=True)
    return _save_png(fig, path)


def plot_nearest(card, path: Path) -> Path:  # noqa: ANN001
    """Distance from each image's perceptual hash to its nearest other image's, with the threshold."""
    t = card.doc["duplicates"]["method"]["max_distance"]
    fig = _figure(6.5, 3.6)
    ax = fig.add_subplot()
    bins = np.arange(-0.5, 33.5, 1.0)
    for s, d in card.nearest.items():
        d = d[d <= 64]
        if len(d):
            ax.hist(d, bins=bins, histtype="step", linewidth=1.5, color=_colour(s), label=f"{s} (n={len(d):,})")
    ax.axvline(t + 0.5, color="red", linestyle="--", label=f"near-duplicate: <= {t} bits")
    ax.set_yscale("log")
    ax.set_xlabel("Hamming distance to the nearest other image (64-bit pHash, all splits)")
    ax.set_ylabel("images (log scale)")
    ax.set_title("nearest-neighbour hash distance", fontsize=10)
    ax.legend(fontsize=7)
    return _save_png(fig, path)


def plot_agreement(doc: dict, path: Path) -> Path:
    """Per class: mean majority share, category kappa and the share of unknown/NF votes."""
    ag = {s: a for s, a in doc["agreement"].items() if a}
    classes = doc["composition"]["classes"]
    fig = _figure(13, 3.6)
    axes = fig.subplots(1, 3)
    width = 0.8 / len(ag)
    for key, ax, title in (("majority_share_mean", axes[0], "mean share of votes for the majority class"),
                           ("kappa", axes[1], "Fleiss' category kappa"),
                           ("unknown_NF_vote_share", axes[2], "share of unknown + NF votes")):
        for k, (s, a) in enumerate(ag.items()):
            vals = [a["per_class"][c][key] for c in classes]
            x = np.arange(len(classes)) + (k - (len(ag) - 1) / 2) * width
            ax.bar(x, np.nan_to_num(vals), width, color=_colour(s), label=s)
        ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1 if key != "unknown_NF_vote_share" else None)
        ax.legend(fontsize=7)
    fig.suptitle("annotator agreement per majority class (FER+ votes, all images of each split)", fontsize=10)
    return _save_png(fig, path)


def plot_faces(card, path: Path) -> Path:  # noqa: ANN001
    """Largest face's height and head pose on the sampled images, per split."""
    fig = _figure(13, 3.4)
    axes = fig.subplots(1, 4)
    st = card.faces
    crops = card.doc["pipeline"]["faces"] == "crops"
    _hist(axes[0], {s: f.face_height for s, f in st.items()}, 40,
          "face height (px of the stored image)", "detected face size")
    for ax, key, name in ((axes[1], "yaw", "yaw"), (axes[2], "pitch", "pitch"), (axes[3], "roll", "roll")):
        _hist(ax, {s: getattr(f, key) for s, f in st.items()}, np.linspace(-60, 60, 41), f"{name} (degrees)",
              f"head {name}")
    n = card.doc["pipeline"]["sample_per_split"]
    fig.suptitle((f"openfer pipeline on a random sample ({n} per split, seed {card.doc['pipeline']['seed']})" if n
                  else "openfer pipeline on every image")
                 + ("; crops upscaled 4x with a border" if crops else ""), fontsize=10)
    return _save_png(fig, path)


def plot_recall(doc: dict, path: Path) -> Path:
    m = doc["model"]
    classes = list(next(iter(m["splits"].values()))["per_class"])
    fig = _figure(1.5 + 0.8 * len(classes), 3.6)
    ax = fig.add_subplot()
    width = 0.8 / len(m["splits"])
    for k, (s, r) in enumerate(m["splits"].items()):
        vals = [r["per_class"][c]["recall"] if r["per_class"][c]["support"] else np.nan for c in classes]
        x = np.arange(len(classes)) + (k - (len(m["splits"]) - 1) / 2) * width
        ax.bar(x, np.nan_to_num(vals), width, color=_colour(s), label=f"{s} (n={r['n']}, acc {r['accuracy']:.3f})")
        for xi, c in zip(x, classes, strict=True):
            ax.text(xi, 0.01, str(r["per_class"][c]["support"]), ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_ylim(0, 1)
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_ylabel("recall (numbers: images)")
    ax.set_title(f"{m['name']} recall per class ({'face crops' if m['mode'] == 'crops' else 'full pipeline'}, sample)",
                 fontsize=10)
    ax.legend(fontsize=7)
    return _save_png(fig, path)


def duplicate_sheet(pairs: list[dict], root: Path, path: Path, per_kind: int = 8, seed: int = 0,
                    pixels: dict[str, np.ndarray] | None = None) -> Path | None:
    """Side-by-side examples of listed pairs (cross-split first), each row one kind, 96 px tiles."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind in ("bytes", "pixels", "near"):  # not listed_twice: one file beside itself shows nothing
        cand = [p for p in pairs if p["kind"] == kind]
        cross = [p for p in cand if p["split_a"] != p["split_b"]]
        pool = cross if len(cross) >= per_kind else cand
        if not pool:
            continue
        pick = [pool[i] for i in sorted(rng.choice(len(pool), size=min(per_kind, len(pool)), replace=False))]
        tiles = []
        for p in pick:
            pair = []
            for key in ("path_a", "path_b"):
                q = Path(p[key]) if Path(p[key]).is_absolute() else root / p[key]
                px = (pixels or {}).get(str(q.resolve()))  # pixels the label file holds (fer2013.csv)
                img = cv2.imread(str(q), cv2.IMREAD_GRAYSCALE) if px is None else np.asarray(px, np.uint8)
                if img is not None and img.ndim == 3:
                    img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
                pair.append(cv2.resize(img if img is not None else np.zeros((8, 8), np.uint8), (96, 96)))
            tile = np.hstack([pair[0], np.full((96, 2), 255, np.uint8), pair[1]])
            head = np.full((14, tile.shape[1]), 255, np.uint8)
            cv2.putText(head, f"{kind} d={p['distance']} {p['split_a'][:2]}/{p['split_b'][:2]}", (2, 11),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.33, 0, 1)
            tiles.append(np.vstack([head, tile, np.full((6, tile.shape[1]), 255, np.uint8)]))
        row = np.hstack([np.hstack([t, np.full((t.shape[0], 8), 255, np.uint8)]) for t in tiles])
        rows.append(row)
    if not rows:
        return None
    w = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 0), (0, w - r.shape[1])), constant_values=255) for r in rows])
    ok, buf = cv2.imencode(".png", sheet)
    with atomic_open(path, "wb") as fh:
        fh.write(buf.tobytes())
    return path
