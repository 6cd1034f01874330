"""Writing :class:`~openfer.dataset.pseudolabel.PseudoLabels`: ``labels.csv`` (the labelled images, ``path,label``
first: what ``openfer train`` and :func:`openfer.eval.datasets.read_csv_labels` read), ``labels_all.csv`` (every
image), ``labels_report.json`` / ``labels_report.md`` and ``labels_validation.json``, each file atomically."""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import InputError
from ..io.tables import atomic_open, check_folders, write_csv, write_json
from .pseudolabel import ALL_COLUMNS, LABEL_COLUMNS, PseudoLabels

MAX_CHANGES_MD = 50  # changes listed in the Markdown report (the JSON and labels_all.csv have all)


def output_paths(out: Path) -> dict[str, Path]:
    """``labels.csv`` -> itself, ``labels_all.csv``, ``labels_report.json``, ``labels_report.md``,
    ``labels_validation.json`` beside it."""
    out = Path(out)
    stem = out.with_suffix("")
    return {"labels": out, "all": Path(f"{stem}_all.csv"), "json": Path(f"{stem}_report.json"),
            "md": Path(f"{stem}_report.md"), "validation": Path(f"{stem}_validation.json")}


def check_outputs(out: Path, inputs: set[Path] | frozenset[Path]) -> None:
    """Refuse an output that is not a .csv, cannot be written, or would replace an input."""
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise InputError(f"{out}: --out must be a .csv file (the path,label file openfer train reads)")
    check_folders(out)
    for p in output_paths(out).values():
        if p.resolve() in inputs:
            raise InputError(f"{p}: is an input; choose another --out")
        if p.is_dir():
            raise InputError(f"{p}: is a folder; choose another --out")


def write_pseudolabels(result: PseudoLabels, out: Path, write_validation: bool = True) -> list[Path]:
    """``out`` (path,label,status,score of the labelled images), ``*_all.csv`` (every image), the report
    (``*_report.json``, ``*_report.md``) and, when the validation came from data, ``*_validation.json`` (the
    record ``--validation`` reads again without rerunning the model)."""
    names = output_paths(out)
    written = [write_csv([r for r in result.rows if r["label"]], names["labels"], columns=LABEL_COLUMNS),
               write_csv(result.rows, names["all"], columns=ALL_COLUMNS)]
    doc = dict(result.doc)
    doc["files"] = {k: p.name for k, p in names.items() if k != "validation"}
    if write_validation and result.validation.record is None:
        written.append(write_json(result.validation.to_record(doc["generated_by"]["command"]), names["validation"]))
        doc["files"]["validation"] = names["validation"].name
    written.append(write_json(doc, names["json"]))
    with atomic_open(names["md"]) as fh:
        fh.write(markdown(doc))
    written.append(names["md"])
    return written


def _f(x: object, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}" if math.isfinite(x) else "n/a"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _interval(d: dict) -> str:
    lo, hi = d["precision_95"] if "precision_95" in d else (d["low"], d["high"])
    return "n/a" if lo is None else f"{_f(lo)}-{_f(hi)}"


def markdown(doc: dict) -> str:
    """The report for people: summary, threshold, per class on validation, given-label changes."""
    v, t = doc["validation"], doc["threshold"]
    r = t["rectify"]
    lines = ["# Pseudo-labels", "", f"`{doc['generated_by']['command']}`" if doc["generated_by"]["command"] else "",
             "", *[f"- {s}" for s in doc["summary"]], "",
             "## Threshold", "",
             f"Score: {doc['score']['definition']}; weights "
             + ", ".join(f"{k} {w:+.3f}" for k, w in doc["score"]["weights"].items()) + ".",
             "",
             f"Chosen on {v['source']}" + (f" (record {v['record']})" if v["record"] else "")
             + f", {v['faces']}: the lowest score whose kept validation images (at least {t['min_kept']}) have a "
             f"Wilson 95% lower bound of precision >= the target.", "",
             "| for | target | threshold | validation images | kept | precision | 95% interval | coverage |",
             "|---|---|---|---|---|---|---|---|",
             f"| label | {_f(t['target_precision'], 2)} | {_f(t['value'], 4)} | {_f(v['n'])} | {_f(v['kept'])} | "
             f"{_f(v['precision'])} | {_interval(v)} | {_f(v['coverage'])} |",
             f"| change a given label | {_f(r['target_precision'], 2)} | {_f(r['value'], 4)} | {_f(v['n'])} | "
             f"{_f(r['kept'])} | {_f(r['precision'])} | {_interval(r)} | {_f(r['coverage'])} |", "",
             "Per class on validation (kept: labels assigned to the class; coverage: share of the class's images "
             "that get a label):", "",
             "| class | images | kept | precision | 95% interval | coverage |", "|---|---|---|---|---|---|"]
    for c, d in v["per_class"].items():
        lines.append(f"| {c} | {_f(d['images'])} | {_f(d['kept'])} | {_f(d['precision'])} | {_interval(d)} | "
                     f"{_f(d['coverage'])} |")
    lines += ["", "## Labels", "", "| status | images |", "|---|---|"]
    lines += [f"| {k} | {_f(n)} |" for k, n in doc["counts"].items()]
    lines += ["", "| label | written |", "|---|---|"] + [f"| {c} | {_f(n)} |" for c, n in doc["assigned"].items()]
    g = doc["given"]
    if g is not None:
        conf = g["confusion"]
        lines += ["", "## Given labels", "",
                  f"{_f(g['with_given'])} images with a given label ({g['column']}): confirmed {_f(g['confirmed'])}, "
                  f"rectified {_f(g['rectified'])}, kept unconfirmed {_f(g['kept_as_given'])}.", "",
                  "Given (rows) -> label written (columns):", "",
                  "| given | " + " | ".join(conf["classes"]) + " |", "|---|" + "---|" * len(conf["classes"])]
        for c, row in zip(conf["classes"], conf["counts"], strict=False):
            lines.append(f"| {c} | " + " | ".join(str(x) for x in row) + " |")
        if g["changes"]:
            lines += ["", f"Changes ({len(g['changes'])}" + (f", the first {MAX_CHANGES_MD}" if len(g["changes"])
                                                               > MAX_CHANGES_MD else "") + "):", ""]
            lines += [f"- `{ch['path']}`: {ch['reason']}" for ch in g["changes"][:MAX_CHANGES_MD]]
    return "\n".join(lines) + "\n"


