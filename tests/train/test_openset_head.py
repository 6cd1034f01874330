"""The ONNX open-set head computes the same Mahalanobis distance as the numpy reference."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from openfer.core.openset import Mahalanobis  # noqa: E402
from openfer.runtime.onnx import OnnxModel  # noqa: E402
from openfer.train.export import export_onnx  # noqa: E402
from openfer.train.nets import build  # noqa: E402
from openfer.train.openset import WithDistance  # noqa: E402


def test_exported_distance_equals_numpy_mahalanobis(tmp_path):
    torch.manual_seed(0)
    net = build("fernet_xs", 3, 0.0).eval()
    for m in net.modules():  # non-trivial BN statistics so features vary
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
    x = torch.randn(60, 1, 48, 48)
    with torch.no_grad():
        f = net.features(x).numpy()
    maha = Mahalanobis.fit(f, np.arange(60) % 3, shrinkage=0.1)
    with torch.no_grad():
        logits, dist = WithDistance(net, maha)(x)
    np.testing.assert_allclose(dist.numpy(), maha.score(f), rtol=1e-3, atol=1e-3)
    torch.save({"model": net.state_dict()}, tmp_path / "w.pt")
    spec = {"arch": "fernet_xs", "classes": ["a", "b", "c"], "size": 48}
    path = export_onnx(tmp_path / "w.pt", spec, tmp_path / "m.onnx", openset=maha)
    model = OnnxModel.load(str(path))
    assert [o.name for o in model.session.get_outputs()] == ["logits", "mahalanobis"]
    out_logits, out_dist = model.run(x.numpy())
    np.testing.assert_allclose(out_logits, logits.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out_dist, maha.score(f), rtol=1e-3, atol=1e-3)


def test_ensemble_averages_member_logits_and_exports(tmp_path):
    from openfer.train.nets import Ensemble

    torch.manual_seed(1)
    a, b = build("fernet_xs", 3, 0.0).eval(), build("fernet_xs", 3, 0.0).eval()
    for net in (a, b):
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.data.uniform_(0.5, 1.5)
    ens = Ensemble([a, b]).eval()
    x = torch.randn(8, 1, 48, 48)
    with torch.no_grad():
        want = (a(x) + b(x)) / 2
        np.testing.assert_allclose(ens(x).numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
        f = ens.features(x).numpy()
    assert f.shape == (8, a.num_features + b.num_features)
    maha = Mahalanobis.fit(f, np.arange(8) % 2, shrinkage=0.5)
    spec = {"arch": "ensemble:fernet_xs+fernet_xs", "classes": ["a", "b", "c"], "size": 48}
    out = OnnxModel.load(str(export_onnx(ens, spec, tmp_path / "e.onnx", openset=maha))).run(x.numpy())
    np.testing.assert_allclose(out[0], want.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[1], maha.score(f), rtol=1e-3, atol=1e-3)
