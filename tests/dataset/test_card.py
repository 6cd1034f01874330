"""``openfer dataset card`` end to end on a small real FER+ sample (tests/assets/dataset/ferplus_mini).

The sample: 16 FER2013Train, 6 FER2013Valid and 10 FER2013Test images with their label.csv rows, chosen
so that none has a duplicate in all of FER+ (nearest pHash >= 14 bits), plus two planted test images:
``fer9000001.png``, a byte copy of train ``fer0001124.png``, and ``fer9000002.png``, train
``fer0002461.png`` brightened by 25 grey levels and re-encoded through JPEG (quality 80) as PNG.
"""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from openfer.cli import main
from openfer.dataset.datasheet import HUMAN_FIELDS
from openfer.eval.datasets import read_ferplus

MINI = Path(__file__).parents[1] / "assets" / "dataset" / "ferplus_mini"
PLANTED = {("bytes", "train/fer0001124.png", "test/fer9000001.png"),
           ("near", "train/fer0002461.png", "test/fer9000002.png")}


def _rows(split: str) -> list[list[str]]:
    with open(MINI / f"FER2013{split}" / "label.csv", newline="") as fh:
        return [r for r in csv.reader(fh) if r]


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    out = tmp_path_factory.mktemp("card") / "out"
    code = main(["dataset", "card", str(MINI), "--out", str(out), "--no-pipeline"])
    assert code == 0
    return out, json.loads((out / "card.json").read_text())


def test_counts_match_the_label_files(card):
    _, doc = card
    comp = doc["composition"]
    assert comp["splits"] == ["train", "valid", "test"]
    for split, folder in (("train", "Train"), ("valid", "Valid"), ("test", "Test")):
        rows = _rows(folder)
        assert comp["images"][split] == len(rows) > 0
        kept = read_ferplus(MINI, split)  # the majority protocol openfer evaluate uses
        assert comp["labelled"][split] == len(kept)
        assert comp["per_class"][split] == kept.counts()
        assert comp["formats"][split] == {"PNG": len(rows)}
        assert comp["sizes"][split] == {"48x48": len(rows)}
        assert sum(comp["unlabelled"][split].values()) == len(rows) - len(kept)


def test_duplicates_finds_the_planted_pairs_and_nothing_else(card):
    out, doc = card
    with open(out / "duplicates.csv", newline="") as fh:
        pairs = list(csv.DictReader(fh))
    found = {(p["kind"], f"{p['split_a']}/{Path(p['path_a']).name}", f"{p['split_b']}/{Path(p['path_b']).name}")
             for p in pairs}
    assert found == PLANTED
    assert doc["duplicates"]["pairs"] == {"total": 2, "listed_twice": 0, "bytes": 1, "pixels": 0, "near": 1}
    assert doc["duplicates"]["across"]["test in train"]["images"] == 2
    assert doc["duplicates"]["across"]["valid in train"]["images"] == 0
    assert any("train/test leak" in s and "2 of 12 test images" in s for s in doc["summary"])
    # paths in the CSV are relative to the data set: the card can be committed and moved
    assert all(not Path(p["path_a"]).is_absolute() for p in pairs)


def test_agreement_from_the_votes(card):
    _, doc = card
    rows = _rows("Test")
    votes = np.array([[float(x) for x in r[2:]] for r in rows])
    ag = doc["agreement"]["test"]
    assert ag["all_images"]["items"] == len(rows)
    assert ag["unknown_vote_share"] == pytest.approx(votes[:, 8].sum() / votes.sum())
    top = votes.max(1) / votes.sum(1)
    assert ag["all_images"]["majority_share_mean"] == pytest.approx(top.mean())
    assert -1 <= ag["all_images"]["fleiss_kappa"] <= 1


def test_human_fields_are_prompts_not_values(card):
    out, doc = card
    md = (out / "card.md").read_text()
    for section, fields in HUMAN_FIELDS.items():
        for key, prompt in fields.items():
            f = doc["human"][section][key]
            assert f["value"] is None and f["source"] is None
            assert f"**{key}**: TO FILL: {prompt}" in md


def test_about_file_is_merged(tmp_path):
    about = tmp_path / "about.toml"
    about.write_text('[distribution]\nlicence = "Labels MIT; images research use only"\n')
    out = tmp_path / "out"
    assert main(["dataset", "card", str(MINI), "--out", str(out), "--no-pipeline", "--split", "test",
                 "--about", str(about)]) == 0
    doc = json.loads((out / "card.json").read_text())
    assert doc["human"]["distribution"]["licence"] == {
        "prompt": HUMAN_FIELDS["distribution"]["licence"], "value": "Labels MIT; images research use only",
        "source": "about.toml"}
    assert doc["human"]["distribution"]["access"]["value"] is None
    assert "Labels MIT; images research use only *(from about.toml)*" in (out / "card.md").read_text()
    assert doc["composition"]["splits"] == ["test"]


def test_pipeline_and_model_on_a_sample(tmp_path):
    out = tmp_path / "out"
    assert main(["dataset", "card", str(MINI), "--out", str(out), "--split", "test", "--sample", "4",
                 "--threads", "1"]) == 0
    doc = json.loads((out / "card.json").read_text())
    p = doc["pipeline"]["splits"]["test"]
    assert p["sampled"] == 4 and 0 <= p["face_found"] <= 4
    assert doc["pipeline"]["faces"] == "crops"
    m = doc["model"]["splits"]["test"]
    assert 1 <= m["n"] <= 4 and 0 <= m["accuracy"] <= 1
    assert sum(c["support"] for c in m["per_class"].values()) == m["n"]
    for name in doc["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"plots/faces.png", "plots/recall.png", "plots/agreement.png"} <= set(doc["plots"])
    # the same seed draws the same sample
    again = tmp_path / "again"
    assert main(["dataset", "card", str(MINI), "--out", str(again), "--split", "test", "--sample", "4",
                 "--threads", "1"]) == 0
    assert json.loads((again / "card.json").read_text())["model"] == doc["model"]


def _one_line_error(capsys, code: int, expected: int, *names: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == expected
    assert err and err[-1].startswith("error: ") and "Traceback" not in "\n".join(err)
    for n in names:
        assert n in err[-1]
    return err[-1]


def test_missing_folder(tmp_path, capsys):
    missing = tmp_path / "nope"
    code = main(["dataset", "card", str(missing), "--out", str(tmp_path / "out")])
    _one_line_error(capsys, code, 3, str(missing))
    assert not (tmp_path / "out").exists()


def test_unreadable_label_file(tmp_path, capsys):
    data = tmp_path / "fer"
    shutil.copytree(MINI, data)
    label = data / "FER2013Valid" / "label.csv"
    label.write_bytes(b"fer0000001.png,\xff\xfe,1,2\n")
    code = main(["dataset", "card", str(data), "--out", str(tmp_path / "out"), "--no-pipeline"])
    _one_line_error(capsys, code, 3, str(label))
    assert not (tmp_path / "out").exists()


def test_corrupt_image_is_listed_and_the_card_still_written(tmp_path, capsys):
    data = tmp_path / "fer"
    shutil.copytree(MINI, data)
    bad = data / "FER2013Test" / "fer9000001.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated PNG
    out = tmp_path / "out"
    code = main(["dataset", "card", str(data), "--out", str(out), "--no-pipeline"])
    err = capsys.readouterr().err
    assert code == 3 and "fer9000001.png" in err and "Traceback" not in err
    doc = json.loads((out / "card.json").read_text())
    assert [u["path"] for u in doc["composition"]["unreadable"]["test"]] == ["FER2013Test/fer9000001.png"]
    assert doc["duplicates"]["pairs"]["bytes"] == 0  # the broken copy is no longer a duplicate


def test_bad_about_file_names_it(tmp_path, capsys):
    about = tmp_path / "about.toml"
    about.write_text('[distribution]\nlicense = "MIT"\n')  # the key is 'licence'
    code = main(["dataset", "card", str(MINI), "--out", str(tmp_path / "out"), "--about", str(about)])
    line = _one_line_error(capsys, code, 3, str(about))
    assert "did you mean 'licence'" in line


def test_usage_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["dataset", "card", str(MINI)])  # --out is required
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["dataset", "card", str(MINI), "--out", str(tmp_path), "--sample", "-1"])
    assert e.value.code == 2


def test_never_writes_into_the_data_set(tmp_path, capsys):
    data = tmp_path / "fer"
    shutil.copytree(MINI, data)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    for out in (data, data / "FER2013Test", data / "cards"):
        code = main(["dataset", "card", str(data), "--out", str(out), "--no-pipeline"])
        _one_line_error(capsys, code, 3, "outside the data set")
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_writes_are_atomic(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["dataset", "card", str(MINI), "--out", str(out), "--no-pipeline", "--split", "valid"]) == 0
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert not [n for n in names if Path(n).name.startswith(".")]  # no temp file left behind
    # an output that cannot be written: one line naming it, exit 6, and the old card untouched
    old = (out / "card.json").read_bytes()
    (out / "card.md").unlink()
    (out / "card.md").mkdir()
    code = main(["dataset", "card", str(MINI), "--out", str(out), "--no-pipeline", "--split", "test"])
    _one_line_error(capsys, code, 6, "card.md")
    assert not [p for p in out.rglob(".*")]
    assert json.loads((out / "card.json").read_text())["composition"]["splits"] in (["valid"], ["test"])
    assert old  # the first card was complete


def test_csv_data_set_with_a_row_listed_twice(tmp_path):
    """A ``path,label`` CSV (the photos format): one file listed twice is reported as such, not as two images
    that happen to be equal."""
    data = tmp_path / "photos"
    (data / "images").mkdir(parents=True)
    names = [p.name for p in sorted((MINI / "FER2013Train").glob("*.png"))[:5]]
    for n in names:
        shutil.copy(MINI / "FER2013Train" / n, data / "images" / n)
    rows = [f"images/{n},happy" for n in names] + [f"images/{names[2]},sad"]
    (data / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"
    assert main(["dataset", "card", str(data), "--out", str(out), "--no-pipeline"]) == 0
    doc = json.loads((out / "card.json").read_text())
    assert doc["data"]["format"] == "csv" and doc["composition"]["splits"] == ["all"]
    assert doc["composition"]["images"] == {"all": 6}
    assert doc["composition"]["per_class"]["all"] == {"happiness": 5, "sadness": 1}
    assert doc["duplicates"]["pairs"] == {"total": 1, "listed_twice": 1, "bytes": 0, "pixels": 0, "near": 0}
    assert doc["duplicates"]["label_conflicts"] == 1
    assert doc["agreement"] is None and "No vote counts" in (out / "card.md").read_text()


def test_the_card_frames_crops_with_the_subgroup_audits_crop_view():
    # one framing of a crop for the face mesh (4x cubic, 25% border), shared with openfer.eval.attributes
    import openfer.dataset.card as card_mod
    import openfer.dataset.profile as profile
    import openfer.eval.attributes as attributes

    assert profile.crop_view is attributes.crop_view
    assert (card_mod.CROP_UPSCALE, card_mod.CROP_PAD) == (attributes.CROP_UPSCALE, attributes.CROP_PAD)
