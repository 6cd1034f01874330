"""Smoothing filters on synthetic signals with known answers: constants pass through, exact
exponential response at irregular times, step lag and noise reduction (the numbers in the
``openfer.core.filters`` docstring), streaming == batch, gaps, NaN, misuse."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openfer.core.filters import (
    ExponentialFilter,
    OneEuroFilter,
    ema,
    moving_average,
    one_euro,
    segments,
    smooth,
    smooth_tracks,
    step_lag,
)
from openfer.errors import InputError, ShapeError

STEP = 4.0  # s


def noisy_step(fps: float, seed: int, noise: float = 0.1, height: float = 1.0):
    """8 s at ``fps``: 0 before STEP, ``height`` after, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, 8.0, 1.0 / fps)
    clean = height * (t >= STEP)
    return t, clean, clean + rng.normal(0.0, noise, t.size)


def lag_and_noise(f, fps: float, seeds=range(20)) -> tuple[float, float]:
    """Mean time to cross half the step, mean noise std reduction on the settled constant parts."""
    lags, red = [], []
    for s in seeds:
        t, clean, x = noisy_step(fps, s)
        y = f(x, t)
        lags.append(step_lag(y, t, STEP))
        m = ((t > 1.5) & (t < STEP - 0.4)) | (t > STEP + 1.5)
        red.append(np.std((x - clean)[m]) / np.std((y - clean)[m]))
    return float(np.mean(lags)), float(np.mean(red))


# --- smoke and known answers ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.floats(-100, 100),
    st.lists(st.floats(0.001, 2.0), min_size=1, max_size=40),
    st.sampled_from(["ema", "window", "one_euro"]),
)
def test_constant_in_constant_out_at_any_times(c, steps, method):
    t = np.concatenate([[0.0], np.cumsum(steps)])
    x = np.full((t.size, 4), c)
    np.testing.assert_allclose(smooth(x, t, method, max_gap=1.0), x, rtol=1e-12, atol=1e-9)


def test_ema_is_exact_at_irregular_times():
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(0.01, 0.2, 60))
    x = (t >= t[10]).astype(float)
    y = ema(x, t, tau=0.3)
    np.testing.assert_allclose(y[:10], 0.0)
    np.testing.assert_allclose(y[10:], 1.0 - np.exp(-(t[10:] - t[9]) / 0.3), rtol=1e-12)
    # independent of the frame rate: after the step, 10 and 30 fps decay alike between shared times
    t30 = np.arange(0, 90) / 30
    t10 = t30[::3]
    y30, y10 = ema((t30 >= 1).astype(float), t30, 0.3), ema((t10 >= 1).astype(float), t10, 0.3)
    ratio = np.exp(-0.1 / 0.3)
    np.testing.assert_allclose((1 - y30[33::3]) / (1 - y30[30:-3:3]), ratio, rtol=1e-9)
    np.testing.assert_allclose((1 - y10[11:]) / (1 - y10[10:-1]), ratio, rtol=1e-9)


def test_one_euro_without_beta_is_a_first_order_low_pass():
    t = np.cumsum(np.random.default_rng(2).uniform(0.02, 0.1, 50))
    x = np.random.default_rng(3).normal(size=(50, 2))
    y = one_euro(x, t, min_cutoff=1.0, beta=0.0)
    want = [x[0]]
    for i in range(1, 50):
        a = 1.0 / (1.0 + 1.0 / (2 * np.pi * (t[i] - t[i - 1])))
        want.append(want[-1] + a * (x[i] - want[-1]))
    np.testing.assert_allclose(y, want, rtol=1e-12)


def test_moving_average_is_centered_and_time_based():
    t = np.array([0.0, 0.1, 0.2, 0.5, 0.6])
    x = np.array([1.0, 2.0, 3.0, 10.0, np.nan])
    # window 0.25: neighbours within 0.125 s; the NaN is ignored
    np.testing.assert_allclose(moving_average(x, t, 0.25), [1.5, 2.0, 2.5, 10.0, 10.0])
    np.testing.assert_allclose(moving_average(x[:4], t[:4], 0.0), x[:4])
    # a gap longer than max_gap is not bridged
    np.testing.assert_allclose(moving_average(x, t, 10.0, max_gap=0.2)[:3], 2.0)
    assert segments(t, 0.2) == [slice(0, 3), slice(3, 5)]


# --- feature: lag and noise (the docstring's table) ----------------------------------------------


def test_ema_lag_and_noise_reduction():
    lag, red = lag_and_noise(lambda x, t: ema(x, t, 0.3), 30)
    assert 0.15 < lag < 0.25 and red > 4.0  # measured 0.20 s, 4.7x
    lag, red = lag_and_noise(lambda x, t: ema(x, t, 0.3), 10)
    assert lag < 0.35 and red > 2.0  # measured 0.16 s, 2.6x


def test_window_has_no_lag():
    lag, red = lag_and_noise(lambda x, t: moving_average(x, t, 0.5), 30)
    assert lag < 0.02 and red > 3.5  # measured 0.00 s, 4.2x


def test_one_euro_lags_less_than_ema_for_the_same_noise_reduction():
    ema_lag, ema_red = lag_and_noise(lambda x, t: ema(x, t, 0.3), 30)
    lag, red = lag_and_noise(lambda x, t: one_euro(x, t, min_cutoff=0.1, beta=0.5), 30)
    assert red >= 0.95 * ema_red and lag < 0.3 * ema_lag  # measured 4.8x in 0.04 s vs 4.7x in 0.20 s
    lag, red = lag_and_noise(one_euro, 30)  # defaults
    assert lag < 0.06 and red > 3.5  # measured 0.04 s, 4.0x
    # a smaller step (0.3) moves slower: still faster than ema
    t, _, x = noisy_step(30, 0, height=0.3)
    assert step_lag(one_euro(x, t), t, STEP, 0.15) < step_lag(ema(x, t, 0.3), t, STEP, 0.15)


# --- cardinality: streaming == batch, any trailing shape ---------------------------------------


@pytest.mark.parametrize(
    ("make", "batch"),
    [(lambda: ExponentialFilter(0.2), lambda x, t: ema(x, t, 0.2)), (OneEuroFilter, one_euro)],
)
def test_streaming_equals_batch_and_shapes_are_elementwise(make, batch):
    rng = np.random.default_rng(4)
    t = np.cumsum(rng.uniform(0.02, 0.06, 30))
    x = rng.normal(size=(30, 478, 3)) + np.linspace(0, 5, 30)[:, None, None]
    f = make()
    stream = np.stack([f(xi, ti) for xi, ti in zip(x, t, strict=True)])
    np.testing.assert_allclose(stream, batch(x, t))
    np.testing.assert_allclose(stream[:, 17, 2], batch(x[:, 17, 2], t))  # element-wise
    f.reset()
    np.testing.assert_array_equal(f(x[5], 0.0), x[5])  # after reset: passes through


def test_gap_restarts_and_nan_holds_state():
    t = np.array([0.0, 0.1, 0.2, 2.0, 2.1])
    x = np.array([0.0, 0.0, 0.0, 1.0, 1.0])
    for y in (ema(x, t, 0.3, max_gap=1.0), one_euro(x, t, max_gap=1.0)):
        assert y[3] == 1.0 and y[4] == 1.0
    assert ema(x, t, 0.3)[3] < 1.0  # without max_gap the pause is just a long step
    f = ExponentialFilter(0.3)
    f(np.array([0.0, 0.0]), 0.0)
    out = f(np.array([np.nan, 1.0]), 0.1)
    assert np.isnan(out[0]) and 0 < out[1] < 1
    np.testing.assert_allclose(f(np.array([0.0, 1.0]), 0.2)[0], 0.0)  # the NaN left the state at 0
    tracks = np.array([1, 2, 1, 2, 1, 2])
    tt = np.array([0.0, 0.0, 0.1, 0.1, 0.2, 0.2])
    xx = np.arange(6.0)
    got = smooth_tracks(xx, tt, tracks, "ema", tau=0.1)
    np.testing.assert_allclose(got[::2], ema(xx[::2], tt[::2], 0.1))
    np.testing.assert_allclose(got[1::2], ema(xx[1::2], tt[1::2], 0.1))


# --- exceptions -----------------------------------------------------------------------------------


def test_misuse():
    with pytest.raises(InputError, match="increase"):
        ema(np.zeros(3), np.array([0.0, 0.1, 0.1]))
    f = OneEuroFilter()
    f(np.zeros(4), 0.0)
    with pytest.raises(InputError, match="increase"):
        f(np.zeros(4), 0.0)
    with pytest.raises(ShapeError, match="x"):
        f(np.zeros(3), 1.0)
    with pytest.raises(ShapeError):
        ema(np.zeros(3), np.zeros(4))
    with pytest.raises(InputError, match="tau"):
        ExponentialFilter(-1.0)
    with pytest.raises(InputError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0.0)
    with pytest.raises(InputError, match="smoothing method 'median'"):
        smooth(np.zeros(2), np.arange(2.0), "median")
    with pytest.raises(InputError, match="track 3"):
        smooth_tracks(np.zeros(2), np.zeros(2), np.array([3, 3]))
