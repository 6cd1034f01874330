"""The human part of a datasheet (Gebru et al. 2021, "Datasheets for Datasets"): the questions only the
people behind a data set can answer, as prompts, and the ``--about`` file (TOML or JSON) that answers them.

An ``--about`` file has one table per section and one string per question, with the keys of
:data:`HUMAN_FIELDS`, e.g.::

    [distribution]
    licence = "FER+ labels: MIT (Microsoft). FER2013 images: research use."

Unknown sections or keys are an error naming the file (a typo must not silently drop an answer).
"""

from __future__ import annotations

import difflib
import json
import tomllib
from pathlib import Path

from ..errors import InputError

SECTIONS: tuple[tuple[str, str], ...] = (
    ("motivation", "Motivation"),
    ("composition", "Composition"),
    ("collection", "Collection process"),
    ("preprocessing", "Preprocessing, cleaning and labelling"),
    ("uses", "Uses"),
    ("distribution", "Distribution"),
    ("maintenance", "Maintenance"),
)
TO_FILL = "TO FILL: "

HUMAN_FIELDS: dict[str, dict[str, str]] = {
    "motivation": {
        "purpose": "For what purpose was the data set created? Was there a specific task or gap in mind?",
        "creators": "Who created the data set (team, research group) and on behalf of which entity?",
        "funding": "Who funded the creation of the data set (grant name and number)?",
    },
    "composition": {
        "instances": "What does each image show (posed or spontaneous expressions, actors, the public, "
                     "children)? How were the people chosen?",
        "sampling": "Is this all the data or a sample of a larger set? If a sample, how was it drawn?",
        "subpopulations": "Are age, gender, skin tone or other groups recorded? How are they distributed?",
        "identifiable": "Can individuals be identified from the images or other data? Are any images "
                        "of minors?",
        "sensitive": "Does the data contain anything confidential or sensitive (health, minors, "
                     "material people would find offensive)?",
    },
    "collection": {
        "method": "How were the images acquired (web search, lab recording, crowd upload, video frames)? "
                  "With which tools and queries?",
        "who": "Who collected the data (students, crowd workers, contractors) and how were they paid?",
        "timeframe": "Over what time frame were the images collected and created?",
        "consent": "Were the people shown notified and did they consent? How? Can consent be revoked?",
        "ethics_review": "Was an ethical review (IRB) carried out? By whom, with what outcome?",
    },
    "preprocessing": {
        "processing": "What was done to the images (face detection, cropping, alignment, greyscale, "
                      "resizing, filtering)? Is the raw data kept?",
        "labelling": "Who labelled the images, with which instructions and label set, and how were "
                     "disagreements resolved?",
    },
    "uses": {
        "used_for": "What has the data set been used for already (papers, products)?",
        "not_for": "What should it not be used for (e.g. inferring a person's inner state, hiring, "
                   "surveillance)?",
        "risks": "What about its composition or collection could harm people or bias a model trained "
                 "on it?",
    },
    "distribution": {
        "licence": "Under which licence or terms of use are the images and the labels distributed?",
        "access": "How is the data set distributed (URL, DOI) and to whom?",
        "restrictions": "Are there third-party rights, export controls or other restrictions?",
    },
    "maintenance": {
        "maintainer": "Who maintains the data set and how can they be contacted?",
        "updates": "Will it be updated (errata, removals on request)? Where are changes announced?",
    },
}


def read_about(path: str | Path) -> dict[str, dict[str, str]]:
    """Answers from a TOML (``.toml``) or JSON file: ``{section: {key: text}}``, checked against
    :data:`HUMAN_FIELDS`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: not found") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8-sig")
        doc = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise InputError(f"{path}: not valid {kind} ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a table of sections ({', '.join(HUMAN_FIELDS)})")
    out: dict[str, dict[str, str]] = {}
    for section, answers in doc.items():
        if section not in HUMAN_FIELDS:
            raise InputError(f"{path}: unknown section {section!r}{_did_you_mean(section, HUMAN_FIELDS)}; "
                             f"sections: {', '.join(HUMAN_FIELDS)}")
        if not isinstance(answers, dict):
            raise InputError(f"{path}: [{section}] must be a table of answers")
        for key, value in answers.items():
            if key not in HUMAN_FIELDS[section]:
                raise InputError(f"{path}: unknown key {section}.{key}{_did_you_mean(key, HUMAN_FIELDS[section])}; "
                                 f"keys of [{section}]: {', '.join(HUMAN_FIELDS[section])}")
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"{path}: {section}.{key} must be a non-empty string")
            out.setdefault(section, {})[key] = value.strip()
    return out


def _did_you_mean(word: str, choices) -> str:  # noqa: ANN001
    m = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {m[0]!r}?)" if m else ""


def human_fields(about: dict[str, dict[str, str]] | None, source: str | None) -> dict:
    """Every question of :data:`HUMAN_FIELDS` with its prompt and its answer (``None``: still to fill)."""
    about = about or {}
    return {
        section: {
            key: {"prompt": prompt, "value": about.get(section, {}).get(key),
                  "source": source if about.get(section, {}).get(key) else None}
            for key, prompt in fields.items()
        }
        for section, fields in HUMAN_FIELDS.items()
    }
