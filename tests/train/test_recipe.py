"""Training recipe: exact resume, soft-label loss, temperature fit (needs the [train] extra)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from openfer.train.config import TrainConfig  # noqa: E402
from openfer.train.export import fit_temperature  # noqa: E402
from openfer.train.recipe import soft_cross_entropy, train  # noqa: E402


def _data(n=96, size=24, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
    for i, c in enumerate(y):  # class-dependent bright band so the task is learnable
        x[i, c * 8 : c * 8 + 8] += 150
    soft = np.eye(3, dtype=np.float32)[y]
    return x, soft, y


def _cfg(epochs):
    return TrainConfig(
        arch="fernet_xs",
        classes=("a", "b", "c"),
        size=24,
        epochs=epochs,
        batch_size=32,
        lr=0.05,
        warmup_epochs=0.5,
        bf16=False,
        threads=1,
        seed=3,
    )


def test_resume_after_interruption_is_exact(tmp_path):
    x, soft, y = _data()
    full = train(_cfg(2), x, soft, x[:32], y[:32], tmp_path / "full")
    # the same run "killed" after epoch 1: train 1 epoch of a 2-epoch schedule, then resume
    part_dir = tmp_path / "part"
    cfg = _cfg(2)
    cfg1 = TrainConfig(**{**cfg.__dict__, "epochs": 2})
    import openfer.train.recipe as recipe

    calls = {"n": 0}
    real_save = recipe._atomic_torch_save

    def save_then_die(obj, path):
        real_save(obj, path)
        if path.name == "last.pt":
            calls["n"] += 1
            if calls["n"] == 1:
                raise KeyboardInterrupt  # killed right after the first checkpoint

    recipe._atomic_torch_save = save_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg1, x, soft, x[:32], y[:32], part_dir)
    finally:
        recipe._atomic_torch_save = real_save
    resumed = train(cfg1, x, soft, x[:32], y[:32], part_dir)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)["model"]
    b = torch.load(part_dir / "last.pt", weights_only=False)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    assert (part_dir / "log.csv").read_text().count("\n") == 3


def test_soft_cross_entropy_matches_hard_ce_for_one_hot():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    y = torch.tensor([0, 2])
    ref = torch.nn.functional.cross_entropy(logits, y)
    assert torch.allclose(soft_cross_entropy(logits, torch.eye(3)[y]), ref)


def test_fit_temperature_recovers_scaling():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 4)) * 2
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p])
    t = fit_temperature(true_logits * 3.0, y)  # over-confident by 3x
    assert t == pytest.approx(3.0, rel=0.15)


def test_degrade_touches_about_p_of_the_images_reproducibly():
    from openfer.train.config import TrainConfig
    from openfer.train.recipe import degrade

    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (400, 1, 48, 48)).astype(np.uint8))
    assert degrade(x, TrainConfig(degrade_p=0.0), torch.Generator().manual_seed(0)) is x
    cfg = TrainConfig(degrade_p=0.25)
    a = degrade(x, cfg, torch.Generator().manual_seed(3))
    b = degrade(x, cfg, torch.Generator().manual_seed(3))
    assert a.dtype == torch.uint8 and a.shape == x.shape and torch.equal(a, b)
    changed = (a != x).flatten(1).any(1).float().mean().item()
    assert 0.18 < changed < 0.32  # 25% chosen; a degradation almost always changes pixels
    assert torch.equal(
        x, torch.from_numpy(np.random.default_rng(0).integers(0, 256, (400, 1, 48, 48)).astype(np.uint8))
    )


def test_logit_adjusted_loss_is_the_cross_entropy_of_prior_shifted_logits():
    from openfer.train.objectives import Classification, log_prior, objective_for

    targets = np.eye(3, dtype=np.float32)[[0] * 8 + [1] * 2]  # class 2 absent: floored, not -inf
    lp = log_prior(targets)
    assert np.isfinite(lp).all() and np.isclose(np.exp(lp).sum(), 1, atol=1e-6)
    assert lp[0] > lp[1] > lp[2]
    logits = torch.tensor([[1.0, 0.5, -0.2], [0.1, 0.2, 0.3]])
    target = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    plain = objective_for("expression", TrainConfig(), targets)
    assert plain.loss(logits, target) == soft_cross_entropy(logits, target)
    adjusted = objective_for("expression", TrainConfig(logit_adjust=1.0), targets)
    expect = soft_cross_entropy(logits + torch.from_numpy(lp), target)
    assert torch.isclose(adjusted.loss(logits, target), expect)
    # a rare-class target costs more under the adjusted loss, so training pushes its logit further
    rare = torch.tensor([[0.0, 1.0, 0.0]])
    assert adjusted.loss(logits[:1], rare) > plain.loss(logits[:1], rare)
    with pytest.raises(ValueError, match="training targets"):
        objective_for("expression", TrainConfig(logit_adjust=1.0))
    acc, extra = Classification().score(np.array([[1, 0], [1, 0], [0, 1]]), np.array([0, 1, 1]))
    assert acc == pytest.approx(2 / 3) and extra["valid_uar"] == pytest.approx(0.75)
    # logit-adjusted: accuracy of the re-adjusted (ordinary) posterior, UAR of the balanced logits
    balanced = np.array([[0.0, 0.1], [0.0, 0.1], [0.0, 0.1]])  # argmax 1 everywhere
    la = Classification(1.0, (np.log(0.9), np.log(0.1)))
    acc, extra = la.score(balanced, np.array([0, 0, 1]))
    assert acc == pytest.approx(2 / 3) and extra["valid_uar"] == pytest.approx(0.5)
