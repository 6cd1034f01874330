"""`openfer train` end to end on a tiny ImageFolder with a new label set (needs the [train] extra)."""

import hashlib
import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from openfer.cli import main  # noqa: E402


def _image_folder(root, names, n, seed, axis):
    """One folder of ``n`` noisy 48x48 images per class, class k with a bright band (rows or
    columns, ``axis`` 0 or 1) at position k: a cue a tiny network learns in an epoch or two."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 80, (48, 48)).astype(np.uint8)
            band = np.moveaxis(img, axis, 0)  # a view: writes go to img
            band[k * 16 : k * 16 + 16] += 150
            cv2.imwrite(str(root / name / f"{i}.png"), img)
    return root


def test_train_imagefolder_new_labels_exports_working_onnx(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = _image_folder(tmp_path / "data", ["engagement", "boredom", "confusion"], 12, seed=0, axis=0)
    out = tmp_path / "run"
    rc = main(["train", str(root), "--out", str(out), "--arch", "fernet_xs", "--epochs", "2",
               "--batch-size", "8", "--threads", "1", "--template-images", "10"])
    assert rc == 0
    err = capsys.readouterr().err  # a long run shows each epoch's line
    assert "INFO: epoch 1: loss" in err and "INFO: epoch 2: loss" in err, err
    onnx_path = out / "fernet_xs.onnx"
    assert onnx_path.is_file() and (out / "last.pt").is_file() and (out / "log.csv").is_file()
    from openfer.components.expression import ExpressionClassifier

    clf = ExpressionClassifier(str(onnx_path))
    assert clf.classes == ("boredom", "confusion", "engagement")
    assert json.loads((out / "template.json").read_text())["source"] == "default model"
    crops = rng.integers(0, 255, (4, 48, 48)).astype(np.uint8)
    p = clf.predict_crops(crops)
    assert p.shape == (4, 3)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    # the open-set head: scores in [0, 1]; a calibration that is a percentile of known faces
    assert clf.openset is not None
    probs, unknown = clf.predict_open(crops)
    np.testing.assert_allclose(probs, p, atol=1e-6)
    assert unknown.shape == (4,) and ((unknown >= 0) & (unknown <= 1)).all()


def test_train_distills_from_a_teacher_and_caches_its_predictions(tmp_path, monkeypatch):
    root = _image_folder(tmp_path / "data", ["happy", "sad", "neutral"], 10, seed=1, axis=1)
    valid = tmp_path / "valid"
    for name in ["happy", "sad", "neutral"]:
        (valid / name).mkdir(parents=True)
        cv2.imwrite(str(valid / name / "0.png"), cv2.imread(str(root / name / "0.png"), cv2.IMREAD_GRAYSCALE))
    out = tmp_path / "student"
    args = ["train", str(root), "--valid", str(valid), "--out", str(out), "--arch", "fernet_xs", "--epochs", "1",
            "--batch-size", "8", "--threads", "1", "--template-images", "10", "--teacher", "fernet_s",
            "--teacher-weight", "0.5"]
    assert main(args) == 0
    from openfer.components.expression import ExpressionClassifier
    from openfer.eval.datasets import load_gray_stack
    from openfer.eval.evaluate import read_dataset
    from openfer.train import distill

    # the cached predictions are the shipped model's mirror-averaged softmax at temperature 1 on the
    # training crops, restricted to the student's classes and renormalised
    config = json.loads((out / "config.json").read_text())
    data = read_dataset(root, "imagefolder", split="train", classes=None)
    assert tuple(config["classes"]) == data.classes and len(data) == 30
    cached = np.load(out / "teacher.npz")["probs"]
    clf = ExpressionClassifier("fernet_s")
    clf.temperature = 1.0
    full = clf.predict_crops(load_gray_stack(data, 48))
    sub = full[:, [clf.classes.index(c) for c in data.classes]]
    np.testing.assert_allclose(cached, sub / sub.sum(1, keepdims=True), atol=1e-5)
    config = json.loads((out / "config.json").read_text())
    assert config["notes"] == {"teachers": ["fernet_s"], "teacher_weight": 0.5}
    spec = ExpressionClassifier(str(out / "fernet_xs.onnx")).model.spec
    assert spec["distilled_from"] == ["fernet_s"]

    # a second run in the same folder (resume) reads the cache instead of running the teacher again
    def fail(*a, **k):
        raise AssertionError("teacher recomputed")

    monkeypatch.setattr(distill, "teacher_probabilities", fail)
    assert main(args) == 0


def test_train_cli_passes_the_balanced_loss_and_zoom_range_to_the_recipe(tmp_path):
    root = _image_folder(tmp_path / "data", ["a", "b"], 10, seed=1, axis=1)
    out = tmp_path / "run"
    rc = main(["train", str(root), "--out", str(out), "--arch", "fernet_xs", "--epochs", "1",
               "--batch-size", "8", "--threads", "1", "--template-images", "10",
               "--logit-adjust", "1", "--scale", "0.75", "1.35"])
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["logit_adjust"] == 1.0 and cfg["scale"] == [0.75, 1.35]
    assert "valid_uar" in (out / "log.csv").read_text().splitlines()[0]


def test_a_logit_adjusted_run_exports_the_posterior_its_accuracy_was_selected_on(tmp_path):
    # the adjusted loss trains balanced logits; the exported model must carry + tau * log prior,
    # or its accuracy is not the selected one (run 13: 87.06% in training, 77.84% from the ONNX)
    from openfer.runtime.onnx import OnnxModel
    from openfer.train.nets import build

    root = tmp_path / "data"
    for name, n in (("a", 18), ("b", 6)):  # unequal classes: a non-uniform prior
        (root / name).mkdir(parents=True)
        rng = np.random.default_rng(len(name) + n)
        for i in range(n):
            cv2.imwrite(str(root / name / f"{i}.png"), rng.integers(0, 255, (48, 48), dtype=np.uint8))
    out = tmp_path / "run"
    assert main(["train", str(root), "--out", str(out), "--arch", "fernet_xs", "--epochs", "1",
                 "--batch-size", "8", "--threads", "1", "--template-images", "10",
                 "--logit-adjust", "1", "--valid-fraction", "0.25"]) == 0
    model = build("fernet_xs", 2, 0.0)
    model.load_state_dict(torch.load(out / "best.pt", map_location="cpu", weights_only=False)["model"])
    model.eval()
    x = np.random.default_rng(0).normal(size=(4, 1, 48, 48)).astype(np.float32)
    with torch.no_grad():
        balanced = model(torch.from_numpy(x)).numpy()
    onnx_model = OnnxModel.load(out / "fernet_xs.onnx")
    exported = onnx_model.run(x)[0]
    spec = onnx_model.spec
    assert spec["logit_adjust"]["tau"] == 1.0
    prior = np.asarray(spec["logit_adjust"]["log_prior"], np.float32)
    assert prior[0] > prior[1]  # 'a' is the common class
    np.testing.assert_allclose(exported - balanced, np.broadcast_to(prior, balanced.shape), atol=1e-4)


def test_blend_targets_is_the_weighted_mean_and_checks_its_inputs():
    from openfer.train.distill import blend_targets

    t = np.array([[1.0, 0.0], [0.5, 0.5]])
    s = np.array([[0.6, 0.4], [0.0, 1.0]])
    np.testing.assert_allclose(blend_targets(t, s, 0.25), [[0.9, 0.1], [0.375, 0.625]], atol=1e-7)
    np.testing.assert_allclose(blend_targets(t, s, 0.0), t)
    with pytest.raises(ValueError, match="weight"):
        blend_targets(t, s, 1.5)
    with pytest.raises(ValueError, match="shape"):
        blend_targets(t, s[:1], 0.5)


def test_bad_teachers_are_clear_errors_before_anything_is_written(tmp_path, capsys):
    from openfer.errors import ModelError
    from openfer.train.distill import load_teachers

    with pytest.raises(ModelError, match="lacks the classes"):
        load_teachers(["fernet_s"], ["happiness", "boredom"])
    root = tmp_path / "data"
    for name in ("happy", "sad"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(root / name / f"{i}.png"), np.full((48, 48), 40 * i, np.uint8))
    out = tmp_path / "run"
    base = ["train", str(root), "--out", str(out), "--epochs", "1", "--threads", "1"]
    assert main([*base, "--teacher", str(tmp_path / "missing.onnx")]) == 4
    assert "missing.onnx: model file not found" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit) as e:
        main([*base, "--teacher", "fernet_s", "--teacher-weight", "1.5"])
    assert e.value.code == 2 and "must be in [0, 1]" in capsys.readouterr().err


def test_fine_tune_from_an_exported_onnx_with_frozen_layers(tmp_path):
    import onnxruntime as ort

    from openfer.train.export import weights_from_onnx

    root = _image_folder(tmp_path / "data", ["a", "b", "c"], 10, seed=2, axis=0)
    base = tmp_path / "base"
    assert main(["train", str(root), "--out", str(base), "--arch", "fernet_xs", "--epochs", "1",
                 "--batch-size", "8", "--threads", "1", "--template-images", "10", "--bf16", "off"]) == 0
    onnx_path = base / "fernet_xs.onnx"
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 1, (16, 1, 48, 48)).astype(np.float32))
    net, spec = weights_from_onnx(onnx_path, calib=x)
    ref = ort.InferenceSession(str(onnx_path)).run(["logits"], {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), ref, atol=1e-4)
        net.train()  # BatchNorm unfolded on the same batch: training mode starts from the same function
        np.testing.assert_allclose(net(x).numpy(), ref, atol=1e-4)
    assert spec["arch"] == "fernet_xs"
    # fine-tune only the last stage and the head from the exported model
    ft = tmp_path / "ft"
    assert main(["train", str(root), "--out", str(ft), "--arch", "fernet_xs", "--epochs", "1", "--batch-size", "8",
                 "--threads", "1", "--template-images", "10", "--bf16", "off", "--init-from", str(onnx_path),
                 "--freeze", "stem,stages.0,stages.1"]) == 0
    before = weights_from_onnx(onnx_path)[0].state_dict()
    after = torch.load(ft / "best.pt", weights_only=False)["model"]
    assert torch.equal(after["stem.0.0.weight"], before["stem.0.0.weight"])  # frozen
    assert not torch.equal(after["stages.2.1.c1.0.weight"], before["stages.2.1.c1.0.weight"])  # trained
    cfg = json.loads((ft / "config.json").read_text())
    assert cfg["freeze"] == "stem,stages.0,stages.1"
    assert cfg["notes"]["init_sha256"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="freeze: no module 'stage9'"):
        from openfer.train.nets import build
        from openfer.train.recipe import freeze_modules

        freeze_modules(build("fernet_xs", 3), "stage9")


def test_train_only_then_export_only_gives_the_one_shot_model(tmp_path, capsys):
    # training on a GPU machine (--train-only), exporting where the models and data are (--export-only):
    # the same ONNX outputs as one command doing both (same seed, data and CPU)
    from openfer.runtime.onnx import OnnxModel

    root = _image_folder(tmp_path / "data", ["a", "b", "c"], 10, seed=2, axis=0)
    common = ["--arch", "fernet_xs", "--epochs", "2", "--batch-size", "8", "--threads", "1",
              "--template-images", "10", "--logit-adjust", "1", "--device", "cpu"]
    assert main(["train", str(root), "--out", str(tmp_path / "one"), *common]) == 0
    split = tmp_path / "split"
    assert main(["train", str(root), "--out", str(split), *common, "--train-only"]) == 0
    assert "export with --export-only" in capsys.readouterr().out
    assert (split / "best.pt").is_file() and not (split / "fernet_xs.onnx").exists()
    # the export reads the run's own config.json: training arguments given again are not needed
    assert main(["train", str(root), "--out", str(split), "--export-only", "--threads", "1",
                 "--template-images", "10"]) == 0
    x = np.random.default_rng(0).normal(size=(3, 1, 48, 48)).astype(np.float32)
    a, b = OnnxModel.load(tmp_path / "one" / "fernet_xs.onnx"), OnnxModel.load(split / "fernet_xs.onnx")
    for u, v in zip(a.run(x), b.run(x), strict=True):
        np.testing.assert_allclose(u, v, atol=1e-5)
    assert a.spec["logit_adjust"] == b.spec["logit_adjust"] and a.spec["epochs"] == b.spec["epochs"] == 2
    assert b.spec["best_valid_acc"] == pytest.approx(a.spec["best_valid_acc"])


def test_export_only_and_device_errors_are_one_line(tmp_path, capsys):
    root = _image_folder(tmp_path / "data", ["a", "b"], 6, seed=3, axis=0)
    assert main(["train", str(root), "--out", str(tmp_path / "none"), "--export-only"]) != 0
    err = capsys.readouterr().err
    assert "config.json: not found" in err and "Traceback" not in err
    if not torch.cuda.is_available():
        assert main(["train", str(root), "--out", str(tmp_path / "r"), "--device", "cuda"]) != 0
        assert "PyTorch sees no CUDA GPU" in capsys.readouterr().err
    assert main(["train", str(root), "--out", str(tmp_path / "r"), "--device", "tpu9"]) != 0
    assert "--device tpu9: not a device" in capsys.readouterr().err


def test_time_budget_fixes_the_epoch_count_after_epoch_one(tmp_path):
    from openfer.train.config import TrainConfig
    from openfer.train.recipe import train

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (64, 24, 24)).astype(np.uint8)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 64)]
    cfg = TrainConfig(arch="fernet_xs", classes=("a", "b"), size=24, epochs=50, batch_size=16, bf16=False,
                      threads=1, time_budget=1e-3)
    out = train(cfg, x, y, x[:16], y[:16].argmax(1), tmp_path / "run")
    # an epoch takes longer than the budget: the fewest epochs a schedule has (2), recorded
    assert out["epochs"] == 2 and cfg.epochs == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 2
    # a resumed run keeps the count it fixed (here: nothing left to train)
    again = train(TrainConfig(**{**cfg.__dict__, "epochs": 50}), x, y, x[:16], y[:16].argmax(1), tmp_path / "run")
    assert again["epochs"] == 2


def test_online_teachers_blend_their_mirror_averaged_posterior(tmp_path):
    from openfer.train.config import TrainConfig
    from openfer.train.nets import build
    from openfer.train.objectives import log_prior
    from openfer.train.recipe import _load_teachers, _teach

    net = build("fernet_xs", 3, 0.0).eval()
    (tmp_path / "t").mkdir()
    torch.save({"model": net.state_dict()}, tmp_path / "t" / "best.pt")
    (tmp_path / "t" / "config.json").write_text(json.dumps({"arch": "fernet_xs", "classes": ["a", "b", "c"],
                                                            "logit_adjust": 1.0}))
    y = np.array([[0.6, 0.3, 0.1]] * 5 + [[0.1, 0.1, 0.8]] * 3, np.float32)
    cfg = TrainConfig(classes=("a", "b", "c"), bf16=False, channels_last=False, teacher_runs=(str(tmp_path / "t"),),
                      teacher_weight=0.25)
    teachers, shifts = _load_teachers(cfg, y, torch.device("cpu"))
    xb = torch.randn(4, 1, 48, 48)
    yb = torch.from_numpy(y[:4])
    got = _teach(teachers, shifts, xb, yb, cfg)
    with torch.no_grad():  # the teacher trained with the adjusted loss: its posterior adds tau * log prior
        lo = (net(xb) + net(torch.flip(xb, dims=[3]))) / 2 + torch.from_numpy(log_prior(y))
    torch.testing.assert_close(got, 0.75 * yb + 0.25 * torch.softmax(lo, 1))
    torch.testing.assert_close(got.sum(1), torch.ones(4))
    bad = TrainConfig(classes=("a", "b"), teacher_runs=(str(tmp_path / "t"),))
    with pytest.raises(ValueError, match="classes"):
        _load_teachers(bad, y[:, :2], torch.device("cpu"))


@pytest.mark.parametrize("value", ["-5", "nan", "soon"])
def test_time_budget_must_be_seconds(tmp_path, capsys, value):
    with pytest.raises(SystemExit):
        main(["train", str(tmp_path), "--out", str(tmp_path / "r"), "--time-budget", value])
    err = capsys.readouterr().err
    assert "--time-budget" in err and "Traceback" not in err
