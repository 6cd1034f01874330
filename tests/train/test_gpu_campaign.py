"""scripts/gpu_campaign.py: the FER+ pack unpacked into the layout openfer reads, weights returned
within the device tool's limits and joined back at home, plans checked (needs the [train] extra)."""

import importlib.util
import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_campaign.py"


@pytest.fixture()
def campaign(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_campaign", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pack(path, n_train=6, n_valid=3):
    rng = np.random.default_rng(0)
    blobs, votes, names = [], [], []
    for i in range(n_train + n_valid):
        img = rng.integers(0, 255, (48, 48), dtype=np.uint8)
        blobs.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].reshape(-1))
        v = np.zeros(10, np.uint8)
        v[i % 3] = 8  # a clear majority for class i % 3
        v[9] = 2
        votes.append(v)
        names.append(f"fer{i:07d}.png")
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])])
    np.savez(path, jpeg_bytes=np.concatenate(blobs), offsets=offsets, votes=np.stack(votes),
             split=np.array([0] * n_train + [1] * n_valid, np.uint8), names=np.array(names))
    return path


def test_unpack_writes_the_ferplus_layout_with_the_votes(campaign, tmp_path):
    from openfer.eval.datasets import read_ferplus

    campaign.unpack(_pack(tmp_path / "pack.npz"), tmp_path / "ferplus")
    tr, va = read_ferplus(tmp_path / "ferplus", "train"), read_ferplus(tmp_path / "ferplus", "valid")
    assert (len(tr), len(va)) == (6, 3)
    assert list(tr.labels) == [0, 1, 2, 0, 1, 2] and list(va.labels) == [0, 1, 2]
    img = cv2.imread(str(tmp_path / "ferplus" / "FER2013Valid" / "fer0000007.png"), cv2.IMREAD_GRAYSCALE)
    assert img.shape == (48, 48)


def _run(folder, mb, arch="fernet_s"):
    folder.mkdir(parents=True)
    n = mb * 2**20 // 4 // 3
    torch.save({"model": {"a": torch.zeros(n), "b": torch.ones(n), "c": torch.full((n,), 2.0)}, "epoch": 3},
               folder / "best.pt")
    (folder / "config.json").write_text(json.dumps({"arch": arch, "epochs": 4}))
    (folder / "log.csv").write_text("epoch,valid_acc\n1,0.5\n")


def test_sync_splits_large_weights_and_keeps_to_the_return_limit(campaign, tmp_path, monkeypatch):
    runs, out = tmp_path / "runs", tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(campaign, "RUNS", {"big": (1, []), "s1": (1, []), "s2": (1, []), "small": (1, [])})
    monkeypatch.setattr(campaign, "SMALL_IN_TAR", ("small",))
    monkeypatch.setattr(campaign, "NOT_RETURNED", ())
    monkeypatch.setattr(campaign, "RETURN_BYTES", 45 * 2**20)
    _run(runs / "big", 24)  # over the 15 MiB a file may have: split
    _run(runs / "s1", 10)
    _run(runs / "s2", 10)  # 6 (logs) + 24 + 10 fit in 45 MiB, + 10 more do not: stays behind
    _run(runs / "small", 1)  # in logs.tar
    campaign.sync(runs, out, {})
    names = sorted(p.name for p in out.iterdir())
    assert names == ["big.a.pt", "big.b.pt", "big.c.pt", "logs.tar", "s1.pt"]  # 8 MiB tensors: one a file
    assert all(p.stat().st_size <= 16 * 2**20 for p in out.iterdir())
    with tarfile.open(out / "logs.tar") as tar:
        assert "small/best.pt" in tar.getnames() and "big/config.json" in tar.getnames()
    # at home: the halves joined into the state dict that was trained
    home = tmp_path / "home"
    campaign.bring_home(out, home)
    st = torch.load(home / "big" / "best.pt", weights_only=False)
    ref = torch.load(runs / "big" / "best.pt", weights_only=False)
    assert list(st["model"]) == list(ref["model"]) and st["epoch"] == 3
    for k in ref["model"]:
        torch.testing.assert_close(st["model"][k], ref["model"][k], rtol=0, atol=0)
    assert (home / "small" / "best.pt").is_file() and not (home / "s2" / "best.pt").exists()


def test_plans_are_checked(campaign, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"runs": {"s_long": [1, ["--arch", "fernet_s"]]}, "teachers": []}))
    campaign.load_plan(good)
    assert campaign.RUNS == {"s_long": (1, ["--arch", "fernet_s"])} and campaign.TEACHERS == ()
    for bad, why in (({}, "a plan needs 'runs'"), ({"runs": {"x": [3, []]}}, "run 'x' is not"),
                     ({"runs": {"x": [1, ["--epochs", 5]]}}, "run 'x' is not")):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(SystemExit, match=why):
            campaign.load_plan(tmp_path / "bad.json")


def test_tree_size_counts_what_travels_and_names_the_models_that_can_stay(campaign, tmp_path, monkeypatch, capsys):
    import subprocess

    repo = tmp_path / "repo"
    (repo / "src" / "models").mkdir(parents=True)
    (repo / "src" / "models" / "net.onnx").write_bytes(b"\0" * 3 * 2**20)
    (repo / "code.py").write_text("print(1)\n")
    (repo / ".gitignore").write_text("/gpu/\n")
    (repo / "gpu").mkdir()
    pack = repo / "gpu" / "pack.npz"
    pack.write_bytes(b"\0" * 2 * 2**20)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    monkeypatch.setattr(campaign, "TRAVEL_LIMIT", 4 * 2**20)  # 3 MiB of models + 2 MiB of pack: over
    assert campaign.tree_size(repo, pack) == 0  # fits once the model stays behind
    out = capsys.readouterr().out
    assert "= 5.0 MiB (limit 4 MiB)" in out and "git rm -q --cached src/models/net.onnx" in out
    monkeypatch.setattr(campaign, "TRAVEL_LIMIT", 1 * 2**20)
    assert campaign.tree_size(repo, pack) == 1  # the pack alone is over
