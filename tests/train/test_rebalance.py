"""Last-layer rebalancing: logit adjustment, tau-normalisation, cRT heads and ONNX head surgery."""

import json

import numpy as np
import pytest

from openfer.train.rebalance import (
    LinearHead,
    adjust_logits,
    adjusted_bias,
    balanced_objective,
    class_prior,
    fit_linear_head,
    pick_one_se,
    tau_normalize,
    uar_standard_error,
)


def _imbalanced(seed=0, n=(900, 300, 30), d=6, sep=1.3):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, sep, (len(n), d))
    x = np.concatenate([rng.normal(means[c], 1.0, (k, d)) for c, k in enumerate(n)])
    y = np.concatenate([np.full(k, c) for c, k in enumerate(n)])
    return x, y, np.eye(len(n))[y]


def _recall(pred, y):
    return np.array([(pred[y == c] == c).mean() for c in np.unique(y)])


def test_class_prior_from_labels_and_soft_targets_agree():
    y = np.array([0, 0, 0, 1, 2, 2])
    p = class_prior(y, 4)  # class 3 absent: half a sample, still finite in log
    assert p.sum() == pytest.approx(1.0)
    assert p[0] > p[2] > p[1] > p[3] > 0
    np.testing.assert_allclose(class_prior(np.eye(4)[y]), p)


def test_adjusted_bias_gives_the_adjusted_logits():
    rng = np.random.default_rng(1)
    head = LinearHead(rng.normal(size=(3, 5)), rng.normal(size=3))
    f, prior = rng.normal(size=(10, 5)), np.array([0.7, 0.25, 0.05])
    moved = LinearHead(head.weight, adjusted_bias(head.bias, prior, 0.8))
    np.testing.assert_allclose(moved(f), adjust_logits(head(f), prior, 0.8))
    # tau 1 moves every logit gap by the log prior ratio
    d = adjust_logits(head(f), prior, 1.0) - head(f)
    np.testing.assert_allclose(d[:, 2] - d[:, 0], np.log(0.7 / 0.05))


def test_tau_normalize():
    w = np.array([[3.0, 4.0], [0.0, 0.5]])
    np.testing.assert_allclose(tau_normalize(w, 0.0), w)
    np.testing.assert_allclose(np.linalg.norm(tau_normalize(w, 1.0), axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(tau_normalize(w, 0.5), axis=1), [5**0.5, 0.5**0.5])


def test_logit_adjustment_raises_the_rare_class_recall():
    x, y, t = _imbalanced()
    head = fit_linear_head(x, t, balance="none")
    lo = head(x)
    r0 = _recall(lo.argmax(1), y)
    r1 = _recall(adjust_logits(lo, class_prior(y), 1.0).argmax(1), y)
    assert r1[2] > r0[2]
    assert r1.mean() > r0.mean()


def test_balanced_heads_beat_the_plain_head_on_the_rare_class():
    x, y, t = _imbalanced(seed=2)
    plain = fit_linear_head(x, t, balance="none")
    acc = (plain(x).argmax(1) == y).mean()
    assert acc > 0.8  # the plain fit is a working classifier
    for balance in ("reweight", "logit_adjusted"):
        r = _recall(fit_linear_head(x, t, balance=balance)(x).argmax(1), y)
        assert r[2] > _recall(plain(x).argmax(1), y)[2], balance
        assert r.mean() > _recall(plain(x).argmax(1), y).mean(), balance


def test_fit_linear_head_is_deterministic_and_applies_to_raw_features():
    x, y, t = _imbalanced(seed=3)
    x = x * 50 + 100  # badly scaled raw features: standardised inside
    a = fit_linear_head(x, t, balance="reweight", steps=100)
    b = fit_linear_head(x, t, balance="reweight", steps=100)
    np.testing.assert_array_equal(a.weight, b.weight)
    assert (a(x).argmax(1) == y).mean() > 0.7
    # starting from a good head keeps it good
    c = fit_linear_head(x, t, balance="none", steps=5, init=a)
    assert abs((c(x).argmax(1) == y).mean() - (a(x).argmax(1) == y).mean()) < 0.05


def test_fit_linear_head_rejects_bad_input():
    with pytest.raises(ValueError, match="balance"):
        fit_linear_head(np.zeros((4, 2)), np.eye(2)[[0, 1, 0, 1]], balance="sampled")
    from openfer.errors import ShapeError

    with pytest.raises(ShapeError):
        fit_linear_head(np.zeros((4, 2)), np.eye(2)[[0, 1, 0]])


def test_balanced_objective_prefers_uar_above_the_floor():
    y = np.array([0, 0, 0, 0, 1])
    majority = np.eye(2)[[0, 0, 0, 0, 0]]
    balanced = np.eye(2)[[0, 0, 0, 1, 1]]
    assert balanced_objective(balanced, y, 0.7) == pytest.approx(0.875)
    assert balanced_objective(majority, y, 0.7) == pytest.approx(0.5)
    assert balanced_objective(balanced, y, 0.9) < balanced_objective(majority, y, 0.7)  # below the floor


def _tiny_model(weight, bias, spec):
    """input (N, 4) -> Relu -> features; logits = Gemm(features); 'other' = ReduceSum(features)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Relu", ["input"], ["feat"]),
        helper.make_node("Gemm", ["feat", "W", "B"], ["logits"], transB=1),
        helper.make_node("ReduceSum", ["feat"], ["other"], keepdims=0),
    ]
    g = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("other", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(weight.astype(np.float32), "W"), numpy_helper.from_array(bias.astype(np.float32), "B")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    p = m.metadata_props.add()
    p.key, p.value = "openfer.spec", json.dumps(spec)
    onnx.checker.check_model(m)
    return m


def test_replace_head_changes_only_the_logits_and_the_spec(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from openfer.runtime.onnx import OnnxModel
    from openfer.train.rebalance import features_model, head_of, replace_head, save_model

    rng = np.random.default_rng(4)
    w, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    m = _tiny_model(w, b, {"arch": "tiny", "temperature": 1.0})
    h = head_of(m)
    np.testing.assert_allclose(h.weight, w, rtol=1e-6)
    np.testing.assert_allclose(h.bias, b, rtol=1e-6)
    new = LinearHead(tau_normalize(w, 1.0), adjusted_bias(b, np.array([0.6, 0.3, 0.1]), 1.0))
    out = save_model(replace_head(m, new, {"arch": "tiny", "temperature": 0.5}), tmp_path / "m.onnx")
    x = rng.normal(size=(7, 4)).astype(np.float32)
    before = ort.InferenceSession(m.SerializeToString()).run(None, {"input": x})
    loaded = OnnxModel.load(str(out))
    after = loaded.run(x)
    np.testing.assert_allclose(after[0], new(np.maximum(x, 0)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(after[1], before[1])  # the other output is untouched
    assert loaded.spec == {"arch": "tiny", "temperature": 0.5}
    assert [o.name for o in loaded.session.get_outputs()] == ["logits", "other"]
    # the original model object is not modified
    np.testing.assert_allclose(head_of(m).weight, w, rtol=1e-6)
    # features_model exposes the Gemm input
    fm = ort.InferenceSession(features_model(m).SerializeToString())
    feats = fm.run(["features"], {"input": x})[0]
    np.testing.assert_allclose(feats, np.maximum(x, 0))
    with pytest.raises(Exception, match="shape|head"):
        replace_head(m, LinearHead(np.zeros((2, 4)), np.zeros(2)))


def test_pick_one_se_trades_noise_sized_uar_for_accuracy():
    uar = np.array([0.70, 0.75, 0.76, 0.80])
    acc = np.array([0.88, 0.87, 0.86, 0.80])
    assert pick_one_se(uar, acc, 0.85, 0.0) == 2  # plain rule: best UAR above the floor
    assert pick_one_se(uar, acc, 0.85, 0.02) == 1  # 0.75 is within noise of 0.76 and more accurate
    assert pick_one_se(uar, acc, 0.85, 0.10) == 0
    assert pick_one_se(uar, acc, 0.95, 0.02) == 0  # nothing feasible: the most accurate


def test_uar_standard_error_shrinks_with_more_samples():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 4000)
    pred = np.where(rng.random(4000) < 0.7, y, (y + 1) % 3)
    small, large = uar_standard_error(pred[:200], y[:200]), uar_standard_error(pred, y)
    assert 0 < large < small
    # three recalls over ~4000/3 images each: the SE of their mean is that of one rate over 4000
    assert large == pytest.approx(np.sqrt(0.7 * 0.3 / 4000), rel=0.35)
