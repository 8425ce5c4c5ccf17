"""Tests of gwinfer.evaluation.overlap against exact shifts and an independent brute-force overlap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import CubicSpline
from scipy.optimize import minimize_scalar

from gwinfer.errors import GwinferError
from gwinfer.evaluation.overlap import (
    fft_length,
    overlap,
    overlap_batch,
    overlap_batch_with_shift,
    overlap_with_shift,
)

# ---------------------------------------------------------------------------------------------
# test signals


def tapered_chirp(
    T: int, f0: float = 0.01, f1: float = 0.2, p: float = 3.0, phi0: float = 0.3, margin: int = 200
) -> np.ndarray:
    """Complex chirp (frequency f0 -> f1 cycles/sample), growing amplitude, Hann edges, zero margins."""
    n = T - 2 * margin
    x = np.arange(n) / n
    phase = 2 * np.pi * np.cumsum(f0 + (f1 - f0) * x**p) + phi0
    w = np.ones(n)
    m = n // 8
    w[:m] = 0.5 - 0.5 * np.cos(np.pi * np.arange(m) / m)
    w[-m:] = w[:m][::-1]
    out = np.zeros(T, dtype=complex)
    out[margin : margin + n] = (0.3 + x) ** 2 * w * np.exp(1j * phase)
    return out


def fd_shift(h: np.ndarray, tau: float, phi: float) -> np.ndarray:
    """Exact band-limited delay: s(t) = e^{i phi} h(t - tau), tau in samples (frequency-domain ramp)."""
    f = np.fft.fftfreq(h.size)
    return np.fft.ifft(np.fft.fft(h) * np.exp(-2j * np.pi * f * tau)) * np.exp(1j * phi)


def chirp_params(rng: np.random.Generator, T: int, like: dict | None = None, spread: float = 1.0) -> dict:
    """Random chirp parameters; with ``like``, a perturbation of those (``spread`` ~ its relative size)."""
    p = {
        "a": rng.uniform(0.05, 0.25) * T,
        "b": rng.uniform(0.75, 0.95) * T,
        "f0": rng.uniform(0.01, 0.08),
        "k": rng.uniform(0.0, 0.12) / T,
        "c": rng.uniform(-0.5, 0.5) / T**2,
        "phi0": rng.uniform(-np.pi, np.pi),
        "amp_slope": rng.uniform(0.0, 2.0),
    }
    if like is None:
        return p
    return {key: like[key] + spread * 0.1 * (p[key] - like[key]) if key != "phi0" else p[key] for key in p}


def analytic_chirp(params: dict):
    """A smooth chirp as a function of continuous time t (in samples), band-limited to < ~0.25/sample."""
    a, b, f0, k, c = params["a"], params["b"], params["f0"], params["k"], params["c"]
    phi0, amp_slope = params["phi0"], params["amp_slope"]

    def fun(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        u = np.clip((t - a) / (b - a), 0.0, 1.0)
        env = np.sin(np.pi * u) ** 4 * (1.0 + amp_slope * u)
        phase = 2 * np.pi * (f0 * t + 0.5 * k * t**2 + c * t**3 / 3.0) + phi0
        return env * np.exp(1j * phase)

    return fun


def random_pair(rng: np.random.Generator, T: int):
    """Two chirps with related random parameters: overlaps spread over roughly 0.1 .. 1."""
    ph = chirp_params(rng, T)
    ps = chirp_params(rng, T, like=ph, spread=rng.uniform(0.0, 3.0))
    return analytic_chirp(ph), analytic_chirp(ps)


def brute_force_overlap(h_fun, s_fun, T: int) -> tuple[float, float, float]:
    """Independent overlap: O(T^2) integer-lag search, then a cubic-spline fine search of the shift.

    Returns (overlap, tau in samples, phi in rad) with s(t) ~ e^{i phi} h(t - tau).
    """
    n = np.arange(T)
    h = h_fun(n)
    s = s_fun(n)
    norm = np.sqrt(np.sum(np.abs(h) ** 2) * np.sum(np.abs(s) ** 2))
    # direct linear correlation c[k] = sum_n conj(h[n]) s[n + k] at every integer lag
    lags = np.arange(-(T - 1), T)
    c = np.array([np.vdot(h[max(0, -k) : T - max(0, k)], s[max(0, k) : T - max(0, -k)]) for k in lags])
    k_best = lags[np.argmax(np.abs(c))]
    # s on a fine axis -> cubic splines of the real and imaginary parts
    t_fine = np.linspace(0.0, T - 1.0, 16 * (T - 1) + 1)
    s_fine = s_fun(t_fine)
    re = CubicSpline(t_fine, s_fine.real, extrapolate=False)
    im = CubicSpline(t_fine, s_fine.imag, extrapolate=False)

    def corr(tau: float) -> complex:
        x = n + tau
        val = np.nan_to_num(re(x)) + 1j * np.nan_to_num(im(x))  # zero outside the series
        return complex(np.vdot(h, val))

    grid = k_best + np.arange(-1.0, 1.0 + 1e-9, 0.01)
    vals = np.array([abs(corr(t)) for t in grid])
    i = int(np.argmax(vals))
    res = minimize_scalar(
        lambda t: -abs(corr(t)),
        bounds=(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]),
        method="bounded",
        options={"xatol": 1e-7},
    )
    tau = float(res.x) if -res.fun > vals[i] else float(grid[i])
    C = corr(tau)
    return abs(C) / norm, tau, float(np.angle(C))


# ---------------------------------------------------------------------------------------------
# exact cases


def test_identical_signals_give_one():
    h = tapered_chirp(1500)
    assert overlap(h, h) == pytest.approx(1.0, abs=1e-12)
    o, tau, phi = overlap_with_shift(h, h, dt=0.7)
    assert o == pytest.approx(1.0, abs=1e-12)
    assert abs(tau) < 1e-9 and abs(phi) < 1e-9
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(333) + 1j * rng.standard_normal(333)
    assert overlap(noise, 5.0 * noise) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("tau0,phi0", [(37.37, 1.1), (-120.5, -2.0), (0.25, 3.0), (-0.731, -0.4)])
def test_fractional_shift_and_phase_recovered(tau0, phi0):
    dt = 0.5
    h = tapered_chirp(2000)
    s = fd_shift(h, tau0, phi0)
    o, tau, phi = overlap_with_shift(h, s, dt=dt)
    assert o == pytest.approx(1.0, abs=1e-6)
    assert tau == pytest.approx(tau0 * dt, abs=1e-6)
    assert np.angle(np.exp(1j * (phi - phi0))) == pytest.approx(0.0, abs=1e-6)
    # the optimum is genuinely off-grid: the integer-lag value is lower
    if abs(tau0 - round(tau0)) > 0.2:
        assert overlap(h, s, refine=False) < 1.0 - 1e-4


def test_integer_only_maximisation_is_biased_low_for_half_sample_shift():
    h = tapered_chirp(2000, f1=0.3)
    s = fd_shift(h, 10.5, 0.0)
    refined = overlap(h, s)
    integer = overlap(h, s, refine=False)
    assert refined == pytest.approx(1.0, abs=1e-9)
    assert integer < refined - 1e-3  # half a sample at f up to 0.3 cycles/sample costs ~1%
    # the bias shrinks for slower signals (less power at high frequency)
    slow = tapered_chirp(2000, f1=0.05)
    bias_slow = 1.0 - overlap(slow, fd_shift(slow, 10.5, 0.0), refine=False)
    assert 0.0 < bias_slow < 1.0 - integer


def test_refined_value_matches_direct_phase_ramp():
    """Internal consistency: the returned overlap equals |sum_f conj(H) S exp(2 pi i f tau)| at tau."""
    rng = np.random.default_rng(5)
    T = 300
    h = rng.standard_normal(T) + 1j * rng.standard_normal(T)
    s = np.roll(h, 7) + 0.8 * (rng.standard_normal(T) + 1j * rng.standard_normal(T))
    o, tau, phi = overlap_with_shift(h, s)
    L = fft_length(T)
    f = np.fft.fftfreq(L) * L
    P = np.conj(np.fft.fft(h, L)) * np.fft.fft(s, L)
    ramp = np.exp(2j * np.pi * f * tau / L)
    if L % 2 == 0:  # Nyquist bin split symmetrically, as documented
        ramp[L // 2] = np.cos(np.pi * tau)
    C = np.sum(P * ramp) / L
    norm = np.linalg.norm(h) * np.linalg.norm(s)
    assert o == pytest.approx(abs(C) / norm, abs=1e-12)
    assert phi == pytest.approx(np.angle(C), abs=1e-9)
    # and it is a local maximum of that function
    for eps in (-1e-3, 1e-3):
        r = np.exp(2j * np.pi * f * (tau + eps) / L)
        if L % 2 == 0:
            r[L // 2] = np.cos(np.pi * (tau + eps))
        assert abs(np.sum(P * r) / L) / norm <= o + 1e-15


def test_linear_not_circular_correlation():
    """A copy shifted circularly by half the length must not be found at full overlap."""
    T = 1000
    h = tapered_chirp(T, margin=0)
    s = np.roll(h, T // 2)  # circular shift: only half of each signal overlaps linearly
    assert overlap(h, s) < 0.9


# ---------------------------------------------------------------------------------------------
# near-orthogonal cases


def test_orthogonal_exponentials():
    T = 4096
    n = np.arange(T)
    f1, f2 = 100, 700  # integer cycles, well separated
    h = np.exp(2j * np.pi * f1 * n / T)
    s = np.exp(2j * np.pi * f2 * n / T)
    # partial overlaps at non-zero lag are bounded by 1 / (T sin(pi df / T)) ~ 1 / (pi df)
    assert overlap(h, s) < 2.0 / (np.pi * (f2 - f1))
    assert overlap(h, s, refine=False) <= overlap(h, s) + 1e-15


def test_white_noise_pairs_scale_as_inverse_sqrt_T():
    rng = np.random.default_rng(11)
    for T in (1024, 4096):
        H = rng.standard_normal((6, T)) + 1j * rng.standard_normal((6, T))
        S = rng.standard_normal((6, T)) + 1j * rng.standard_normal((6, T))
        o = overlap_batch(H, S)
        scaled = o * np.sqrt(T)
        # max over ~2T lags of a unit complex Gaussian: ~sqrt(ln 2T) ~ 3
        assert np.all(scaled > 1.0) and np.all(scaled < 6.0), scaled


# ---------------------------------------------------------------------------------------------
# independent brute force


def test_agrees_with_brute_force_spline_search():
    rng = np.random.default_rng(2024)
    T = 256
    n = np.arange(T)
    worst = max_int_bias = 0.0
    for _ in range(8):
        h_fun, s_fun = random_pair(rng, T)
        ob, taub, phib = brute_force_overlap(h_fun, s_fun, T)
        o, tau, phi = overlap_with_shift(h_fun(n), s_fun(n))
        worst = max(worst, abs(o - ob))
        assert o == pytest.approx(ob, abs=1e-4)
        max_int_bias = max(max_int_bias, ob - overlap(h_fun(n), s_fun(n), refine=False))
        if ob > 0.2:  # a well-defined peak: the shift and phase agree too
            assert tau == pytest.approx(taub, abs=0.02)
            assert np.angle(np.exp(1j * (phi - phib))) == pytest.approx(0.0, abs=0.02)
    # also a shifted, rephased copy of the same chirp with a different phase law
    h_fun = analytic_chirp(chirp_params(rng, T))
    s_fun = lambda t: 0.5 * np.exp(0.9j) * h_fun(np.asarray(t) - 13.37)  # noqa: E731
    ob, taub, phib = brute_force_overlap(h_fun, s_fun, T)
    o, tau, phi = overlap_with_shift(h_fun(n), s_fun(n))
    assert ob > 0.999 and o == pytest.approx(ob, abs=1e-4)
    assert tau == pytest.approx(13.37, abs=1e-3) and phi == pytest.approx(0.9, abs=1e-3)
    assert worst < 1e-5  # measured ~1e-8 (spline error of the brute force)
    assert max_int_bias > 1e-4  # the integer-lag maximum alone would fail this comparison


# ---------------------------------------------------------------------------------------------
# batch, backends


def _random_batch(rng: np.random.Generator, N: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    n = np.arange(T)
    pairs = [random_pair(rng, T) for _ in range(N)]
    H = np.stack([h(n) for h, _ in pairs])
    S = np.stack([s(n) for _, s in pairs])
    S[0] = fd_shift(H[0], 3.3, 0.2)  # one near-1 pair
    return H, S


def test_batch_equals_scalar_and_chunking_is_invisible():
    rng = np.random.default_rng(3)
    H, S = _random_batch(rng, 7, 300)
    ob, tb, pb = overlap_batch_with_shift(H, S, dt=2.0, chunk=3)
    scalar = np.array([overlap_with_shift(h, s, dt=2.0) for h, s in zip(H, S)])
    np.testing.assert_allclose(ob, scalar[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tb, scalar[:, 1], rtol=0, atol=1e-7)
    np.testing.assert_allclose(overlap_batch(H, S, chunk=256), ob, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        overlap_batch(H, S, refine=False), [overlap(h, s, refine=False) for h, s in zip(H, S)], rtol=0, atol=1e-12
    )
    assert np.all(overlap_batch(H, S, refine=False) <= ob + 1e-12)


def test_torch_backend_matches_numpy():
    pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    H, S = _random_batch(rng, 5, 400)
    o_np, t_np, p_np = overlap_batch_with_shift(H, S, chunk=2)
    o_t, t_t, p_t = overlap_batch_with_shift(H, S, chunk=2, backend="torch")
    np.testing.assert_allclose(o_t, o_np, rtol=0, atol=1e-12)
    np.testing.assert_allclose(t_t, t_np, rtol=0, atol=1e-7)
    np.testing.assert_allclose(
        overlap_batch(H, S, refine=False, backend="torch"), overlap_batch(H, S, refine=False), rtol=0, atol=1e-12
    )


def test_real_input_and_short_series():
    assert overlap([1.0], [2.0]) == pytest.approx(1.0, abs=1e-12)
    assert overlap([1.0, 0.0], [0.0, 3.0]) == pytest.approx(1.0, abs=1e-12)  # shift by one sample


def test_fft_length_is_5_smooth_and_long_enough():
    for T in (1, 2, 3, 256, 5066, 101301):
        L = fft_length(T)
        assert L >= 2 * T - 1
        x = L
        for p in (2, 3, 5):
            while x % p == 0:
                x //= p
        assert x == 1


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "h,s,match",
    [
        (np.ones(10), np.ones(11), "different lengths"),
        (np.ones(0), np.ones(0), "empty"),
        (np.array([1.0, np.nan, 2.0]), np.ones(3), "NaN or inf"),
        (np.ones(3), np.array([1.0, np.inf, 2.0]), "NaN or inf"),
        (np.zeros(5), np.ones(5), "zero norm"),
        (np.ones(5), np.zeros(5, dtype=complex), "zero norm"),
        (np.ones((2, 5)), np.ones((2, 5)), "1-D"),
        (np.array(["a", "b"]), np.ones(2), "numeric"),
    ],
)
def test_bad_scalar_input(h, s, match):
    with pytest.raises(GwinferError, match=match) as info:
        overlap(h, s)
    assert "\n" not in str(info.value)


def test_bad_batch_input():
    good = np.ones((3, 8), dtype=complex)
    cases = [
        (good, np.ones((3, 9)), "different shapes"),
        (good, np.ones((2, 8)), "different shapes"),
        (np.ones(8), np.ones(8), "2-D"),
        (np.ones((0, 8)), np.ones((0, 8)), "empty"),
    ]
    for H, S, match in cases:
        with pytest.raises(GwinferError, match=match):
            overlap_batch(H, S)
    S = good.copy()
    S[2, 4] = np.nan
    with pytest.raises(GwinferError, match=r"S\[2\] contains NaN"):
        overlap_batch(good, S)
    H = good.copy()
    H[1] = 0.0
    with pytest.raises(GwinferError, match=r"H\[1\] has zero norm"):
        overlap_batch(H, good, chunk=1)
    with pytest.raises(GwinferError, match="dt"):
        overlap_batch(good, good, dt=0.0)
    with pytest.raises(GwinferError, match="dt"):
        overlap_batch(good, good, dt=float("nan"))
    with pytest.raises(GwinferError, match="chunk"):
        overlap_batch(good, good, chunk=0)
    with pytest.raises(GwinferError, match="backend"):
        overlap_batch(good, good, backend="jax")


def test_tiny_and_huge_amplitudes_are_handled():
    h = tapered_chirp(600)
    s = fd_shift(h, 4.4, 0.3) + 0.1 * tapered_chirp(600, f1=0.1)
    ref = overlap(h, s)
    assert 0.9 < ref < 1.0
    for a, b in ((1e-170, 1.0), (1e-170, 1e-170), (1e160, 1e-160), (1e200, 3.0)):
        assert overlap(a * h, b * s) == pytest.approx(ref, abs=1e-12)
    H = np.stack([h, 1e-200 * h])
    np.testing.assert_allclose(overlap_batch(H, np.stack([s, s])), [ref, ref], rtol=0, atol=1e-12)
