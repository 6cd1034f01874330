"""Short, factual reasons for an expression label, grounded in the measured action units.

For the top class the text names the EMFACS prototype AUs (``openfer.core.au.PROTOTYPE_AUS``) with
their measured intensities, says whether they support the label, and says so when another
expression's prototype is clearly more present than the predicted one's (classifier and AU evidence
disagree). Close top-two classes are reported as a compound ("happily surprised"). Nothing is
invented: every number in the text is a measured value passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .au import AU_DESCRIPTIONS, PROTOTYPE_AUS

ADVERBS: dict[str, str] = {
    "happiness": "happily",
    "sadness": "sadly",
    "anger": "angrily",
    "fear": "fearfully",
    "disgust": "disgustedly",
    "contempt": "contemptuously",
    "surprise": "surprisedly",
    "neutral": "calmly",
}
ADJECTIVES: dict[str, str] = {
    "happiness": "happy",
    "sadness": "sad",
    "anger": "angry",
    "fear": "fearful",
    "disgust": "disgusted",
    "contempt": "contemptuous",
    "surprise": "surprised",
    "neutral": "neutral",
}
COMPOUND_ORDER = ("happiness", "sadness", "fear", "anger", "disgust", "contempt", "surprise")
SUPPORT = 1.0  # intensity (0-5) from which an AU counts as present (calibrated: neutral p95 = 1)
CLEAR = 2.5  # mean intensity at which another prototype counts as clearly present
COMPOUND_MARGIN = 0.15  # top-two probability gap below which the face is reported as a compound


def compound_label(probs: np.ndarray, classes: Sequence[str], margin: float = COMPOUND_MARGIN) -> str | None:
    """ "happily surprised"-style name when the top two classes are within ``margin``, else None."""
    order = np.argsort(-np.asarray(probs))
    a, b = classes[order[0]], classes[order[1]]
    if probs[order[0]] - probs[order[1]] >= margin or "neutral" in (a, b):
        return None
    # Du, Tao & Martinez (2014) naming: the class earlier in COMPOUND_ORDER is the adverb
    rank = {c: i for i, c in enumerate(COMPOUND_ORDER)}
    first, second = sorted((a, b), key=lambda c: rank.get(c, len(rank)))
    return f"{ADVERBS.get(first, first)} {ADJECTIVES.get(second, second)}"


def prototype_strength(aus: np.ndarray, au_names: Sequence[str]) -> dict[str, float]:
    """Per class of :data:`~openfer.core.au.PROTOTYPE_AUS`, the mean intensity of its prototype AUs
    in one face's ``aus`` (what the reasons and ``openfer dataset pseudolabel``'s agreement read)."""
    idx = {n: i for i, n in enumerate(au_names)}
    out = {}
    for cls, proto in PROTOTYPE_AUS.items():
        vals = [float(aus[idx[a]]) for a in proto if a in idx]
        if vals:  # the sum in order over the count: np.mean's value for these few AUs, ~10x faster
            out[cls] = sum(vals) / len(vals)
    return out


def explain(
    probs: np.ndarray, classes: Sequence[str], aus: np.ndarray | None = None, au_names: Sequence[str] = ()
) -> str:
    """One face's reason text from its probabilities and (optionally) AU intensities."""
    p = np.asarray(probs, dtype=np.float64)
    top = int(p.argmax())
    label = classes[top]
    head = f"{label} ({p[top]:.2f})"
    comp = compound_label(p, classes)
    if comp is not None:
        nd = int(np.argsort(-p)[1])
        head = f"{comp} ({label} {p[top]:.2f}, {classes[nd]} {p[nd]:.2f})"
    if aus is None or not len(au_names):
        return head
    idx = {n: i for i, n in enumerate(au_names)}
    strength = prototype_strength(np.asarray(aus), au_names)
    parts = [head]
    if label in PROTOTYPE_AUS:
        proto = [a for a in PROTOTYPE_AUS[label] if a in idx]

        def shown(names: list[str]) -> str:
            return ", ".join(f"{a} {AU_DESCRIPTIONS.get(a, a).split(' (')[0]} {aus[idx[a]]:.1f}" for a in names)

        # an AU is present from 1.0 (FACS A: beyond 95% of neutral faces); a match is claimed only
        # for the prototype AUs that are present, and only when they are at least half of them
        present = [a for a in proto if aus[idx[a]] >= SUPPORT]
        absent = [a for a in proto if a not in present]
        if present and 2 * len(present) >= len(proto):
            verb = "match" if len(present) > 1 else "matches"
            text = f"{shown(present)} {verb} the {label} prototype"
            if absent:
                text += f" ({shown(absent)} not shown)"
            parts.append(text)
        else:
            parts.append(f"but the {label} prototype AUs are weak ({shown(proto)})")
    elif label == "neutral":
        active = [(a, aus[i]) for a, i in idx.items() if aus[i] >= CLEAR]
        if active:
            shown = ", ".join(f"{a} {v:.1f}" for a, v in sorted(active, key=lambda t: -t[1])[:3])
            parts.append(f"though some AUs are active ({shown})")
        else:
            parts.append("no action unit is strongly active")
    # contempt's prototype is one-sided (unilateral AU12/AU14); its bilateral mean rises with every
    # smile, so it is never used as a rival
    rival = max(
        ((c, s) for c, s in strength.items() if c not in (label, "contempt")),
        key=lambda t: t[1],
        default=None,
    )
    if rival and rival[1] >= CLEAR and rival[1] > strength.get(label, 0.0) + 1.0:
        proto = ", ".join(f"{a} {aus[idx[a]]:.1f}" for a in PROTOTYPE_AUS[rival[0]] if a in idx)
        parts.append(f"the AUs look more like {rival[0]} ({proto}): classifier and AU evidence disagree")
    return ": ".join(parts[:2]) + ("; " + "; ".join(parts[2:]) if len(parts) > 2 else "")
