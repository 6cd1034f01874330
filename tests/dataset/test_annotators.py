"""The multi-annotator route of ``openfer dataset issues --annotations``: consensus, leave-one-out annotator quality
and kappa against hand-computed cases, a planted careless annotator found on a synthetic set, one-line errors, and
the command end to end on the real FER+ sample."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from openfer.cli import main
from openfer.dataset.annotators import (
    annotator_summary,
    annotator_table,
    cohen_kappa,
    consensus,
    read_annotations,
)
from openfer.errors import InputError
from openfer.eval.datasets import FERPLUS_CLASSES, read_ferplus

MINI = Path(__file__).parents[1] / "assets" / "dataset" / "ferplus_mini"
CLASSES = tuple(FERPLUS_CLASSES)


def _write(path: Path, rows: list[tuple[str, str, str]], header: str = "path,annotator,label") -> Path:
    path.write_text(header + "\n" + "".join(f"{p},{a},{lab}\n" for p, a, lab in rows))
    return path


def test_consensus_breaks_ties_by_the_model_and_skips_unannotated_rows():
    votes = np.array([[2, 1, 0], [1, 1, 0], [0, 0, 0]])
    probs = np.array([[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.0, 0.0, 1.0]])
    assert consensus(votes, probs).tolist() == [0, 1, -1]


def test_cohen_kappa_matches_a_hand_computed_case():
    a = np.array([0, 0, 1, 1, 0, 1])
    b = np.array([0, 1, 1, 1, 0, 0])
    # po = 4/6; a has 3/3, b has 3/3 -> pe = (3*3 + 3*3)/36 = 0.5; kappa = (2/3 - 1/2) / (1/2) = 1/3
    assert cohen_kappa(a, b, 2) == pytest.approx(1 / 3)


def test_leave_one_out_agreement_by_hand(tmp_path):
    # three images, annotators x, y, z; z disagrees on image 2, image 3 has only x
    for name in ("i1.png", "i2.png", "i3.png"):
        (tmp_path / name).write_bytes(b"")
    f = _write(tmp_path / "ann.csv", [("i1.png", "x", "happiness"), ("i1.png", "y", "happiness"),
                                      ("i1.png", "z", "happiness"), ("i2.png", "x", "sadness"),
                                      ("i2.png", "y", "sadness"), ("i2.png", "z", "anger"), ("i3.png", "x", "fear")])
    ann = read_annotations(f, CLASSES, tmp_path)
    paths = tuple(tmp_path / n for n in ("i1.png", "i2.png", "i3.png"))
    votes, by = ann.counts(paths)
    assert votes.sum(1).tolist() == [3, 3, 1]
    probs = np.full((3, len(CLASSES)), 1 / len(CLASSES))
    table = {r["annotator"]: r for r in annotator_table(ann, votes, by, probs)}
    # x: image 1 others {y,z} happiness -> agree; image 2 others {y sadness, z anger} tie, uniform probs -> the
    # lower index wins (sadness, 3 < anger, 4) -> agree; image 3 has no other annotator -> not counted
    assert table["x"]["shared_with_others"] == 2 and table["x"]["agreement_with_others"] == 1.0
    assert table["z"]["shared_with_others"] == 2 and table["z"]["agreement_with_others"] == 0.5
    assert table["x"]["images"] == 3
    summary = annotator_summary(ann, votes, np.array([1, 3, 6]), probs, list(table.values()), 0)
    assert summary["annotations"] == 7 and summary["images_with_two_or_more"] == 2
    assert summary["consensus_differs_from_label"] == 0


def test_a_careless_annotator_ranks_last_on_a_synthetic_set(tmp_path):
    rng = np.random.default_rng(0)
    n, c = 400, len(CLASSES)
    truth = rng.integers(0, c, n)
    rows = []
    for k, who in enumerate(("a", "b", "c", "d", "careless")):
        for i in range(n):
            if who == "careless":
                lab = int(rng.integers(0, c))
            else:
                lab = int(truth[i]) if rng.random() < 0.85 else int(rng.integers(0, c))
            if rng.random() < 0.8 or k == 0:
                rows.append((f"img{i}.png", who, CLASSES[lab]))
    ann = read_annotations(_write(tmp_path / "ann.csv", rows), CLASSES, tmp_path)
    paths = tuple(tmp_path / f"img{i}.png" for i in range(n))
    probs = np.full((n, c), 0.02)
    probs[np.arange(n), truth] = 0.86  # a model that is right: ties then go to the truth
    votes, by = ann.counts(paths)
    table = annotator_table(ann, votes, by, probs)
    assert table[0]["annotator"] == "careless"
    assert table[0]["agreement_with_others"] < 0.25 < 0.75 < min(r["agreement_with_others"] for r in table[1:])
    assert abs(table[0]["kappa_with_others"]) < 0.1 and table[-1]["kappa_with_others"] > 0.7
    summary = annotator_summary(ann, votes, truth, probs, table, 0)
    assert summary["below_the_median_annotator"] == ["careless"]
    assert (consensus(votes, probs) == truth).mean() > 0.97
    assert 0.3 < summary["fleiss_kappa"] < 0.8


def test_bad_annotation_files_are_one_line_naming_file_and_line(tmp_path):
    bad = _write(tmp_path / "a.csv", [("x.png", "ann1", "happiness"), ("y.png", "ann1", "joyful")])
    with pytest.raises(InputError, match=r"a\.csv:3: unknown label 'joyful'"):
        read_annotations(bad, CLASSES, tmp_path)
    cols = _write(tmp_path / "b.csv", [("x.png", "ann1", "happiness")], header="path,rater,label")
    with pytest.raises(InputError, match=r"b\.csv: .*missing annotator"):
        read_annotations(cols, CLASSES, tmp_path)
    (tmp_path / "c.csv").write_bytes(b"path,annotator,label\nx.png,\xff,happiness\n")
    with pytest.raises(InputError, match=r"c\.csv: not UTF-8"):
        read_annotations(tmp_path / "c.csv", CLASSES, tmp_path)
    again = _write(tmp_path / "d.csv", [("x.png", "ann1", "happiness"), ("x.png", "ann1", "Sad")])
    ann = read_annotations(again, CLASSES, tmp_path)
    assert ann.replaced == 1 and ann.label.tolist() == [CLASSES.index("sadness")]  # the last label counts


def test_the_command_writes_consensus_and_annotator_quality(tmp_path, capsys):
    data = read_ferplus(MINI, "test")
    rows = []
    for p, y in zip(data.paths, data.labels, strict=True):
        rel = Path(p).resolve().relative_to(MINI.resolve()).as_posix()
        if y < 0:
            continue
        for who in ("ann1", "ann2", "ann3"):
            rows.append((rel, who, CLASSES[y]))
        rows.append((rel, "ann4", "contempt" if CLASSES[y] != "contempt" else "fear"))
    ann = _write(tmp_path / "annotations.csv", rows)
    out = tmp_path / "out"
    code = main(["dataset", "issues", str(MINI), "--split", "test", "--out", str(out), "--predictions", "model",
                 "--annotations", str(ann), "--threads", "1"])
    assert code == 0
    doc = json.loads((out / "issues.json").read_text())["annotators"]
    n = len(rows) // 4
    assert doc["annotators"] == 4 and doc["annotations"] == 4 * n and doc["images_annotated"] == n
    assert doc["consensus_differs_from_label"] == 0 and doc["annotations_not_in_data"] == 0
    with open(out / "annotators.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert table[0]["annotator"] == "ann4" and float(table[0]["agreement_with_others"]) == 0.0
    assert all(float(r["agreement_with_others"]) == 1.0 for r in table[1:])
    assert "annotators: 4 gave" in capsys.readouterr().out


def test_annotations_of_other_images_only_is_one_line(tmp_path, capsys):
    ann = _write(tmp_path / "annotations.csv", [("elsewhere/none.png", "ann1", "happiness")])
    code = main(["dataset", "issues", str(MINI), "--split", "test", "--out", str(tmp_path / "out"),
                 "--predictions", "model", "--annotations", str(ann), "--threads", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1 and "annotations.csv" in err[0] and "none of its 1 annotations" in err[0]
    assert not (tmp_path / "out" / "issues.json").exists()
