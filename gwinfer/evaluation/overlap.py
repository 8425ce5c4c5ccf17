"""Overlap of two complex (2,2)-mode series, maximised over a time shift and a phase shift.

The overlap of Khan, Huerta & Das (2020), Eq. (4): with the inner product of two series sampled on
the same uniform grid of step ``dt`` (in M, or any time unit)

    <h, s>(tau) = sum_t conj(h(t)) s(t + tau) dt,

the overlap is

    O = max_{tau, phi} Re[e^{-i phi} <h, s>(tau)] / sqrt(<h, h> <s, s>)
      = max_tau |<h, s>(tau)| / sqrt(<h, h> <s, s>),

the phase maximisation of a complex series being the modulus. ``O`` lies in [0, 1] and is 1 when
``s(t) = A e^{i phi} h(t - tau)`` for a constant A > 0.

Method
------
1. Both series are zero-padded to a 5-smooth length ``L >= 2T - 1``, so the FFT correlation
   ``c[k] = sum_n conj(h[n]) s[n + k]`` is the *linear* one (no circular wrap-around) for every lag
   ``|k| <= T - 1``; the best integer lag ``k0`` is the argmax of ``|c|``.
2. Sub-sample refinement: the correlation at a fractional lag is the frequency-domain phase ramp

       C(tau) = (1/L) sum_f conj(H_f) S_f exp(2 pi i f tau / L),

   the band-limited (trigonometric) interpolant of ``c`` — exact for band-limited signals. It equals
   ``C(k0 + delta) = sum_j c[k0 + j] D(delta - j)`` with the (real) Dirichlet kernel ``D`` of length
   ``L`` (Nyquist bin split symmetrically). Expanding ``D`` in a Taylor series in ``delta`` about each
   sample gives ``C(k0 + delta) = sum_{m <= M} a_m delta^m`` for ``|delta| <= 1``; the coefficients
   ``a_m`` are one real matrix product of the rolled correlation with a cached ``(L, M + 1)`` table,
   vectorised over the batch. With ``M = 28`` the truncation error on the normalised overlap is below
   ``pi^29 / 29! ~ 3e-17``. ``|C|^2`` is then maximised on ``[-1, 1]`` by a 65-point grid followed by
   safeguarded Newton steps on the polynomial (cost independent of ``L``).
   Without this refinement (``refine=False``) the overlap is that of the best integer lag, biased low
   by about ``2 pi^2 sigma_f^2 delta^2`` for a true offset of ``delta`` samples (``pi^2 sigma_f^2 / 2``
   at half a sample), ``sigma_f`` being the spread of the signal's frequency in cycles per sample.
3. The norms are computed once per series and divide ``|C|`` at the end (rows whose sum of squares
   would under/overflow are rescaled first).

The returned shift convention: ``tau`` (in the unit of ``dt``) and ``phi`` (rad) are those for which
``s(t) ~ e^{i phi} h(t - tau)``, i.e. ``s`` lags ``h`` by ``tau``.

Pure numpy. ``backend="torch"`` runs the FFTs and the matrix product in torch (imported lazily); it
gives the same numbers to round-off but was not faster than numpy on the 2-core CPU it was measured on
(see ``bench/bench_overlap.py``).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError

__all__ = ["overlap", "overlap_with_shift", "overlap_batch", "overlap_batch_with_shift", "fft_length"]

#: Degree of the Taylor expansion of the correlation in the sub-sample shift (|shift| <= 1 sample).
TAYLOR_DEGREE = 28
#: Grid used to bracket the sub-sample maximum before Newton steps (spacing 1/32 sample).
_GRID = np.linspace(-1.0, 1.0, 65)
_GRID_STEP = 2.0 / 64
#: Largest number of complex samples (pairs x padded length) processed in one chunk (~64 MB each array).
_MAX_CHUNK_ELEMENTS = 1 << 22
_BACKENDS = ("numpy", "torch")


def fft_length(n_samples: int) -> int:
    """Smallest 5-smooth length ``L >= 2 n_samples - 1``: the zero-padded length for a linear correlation."""
    m = max(1, 2 * int(n_samples) - 1)
    while True:
        x = m
        for p in (2, 3, 5):
            while x % p == 0:
                x //= p
        if x == 1:
            return m
        m += 1


@functools.lru_cache(maxsize=2)
def _taylor_table(L: int, degree: int = TAYLOR_DEGREE) -> np.ndarray:
    """Real ``(L, degree + 1)`` table ``T[j, m] = D^(m)(-j) / m!`` of the length-``L`` Dirichlet kernel.

    ``D(x) = (1/L) sum_f exp(i w_f x)``, ``w_f = 2 pi f / L`` over the signed frequencies, with the
    Nyquist term (even ``L``) taken as ``cos(pi x)``; so ``C(k0 + d) = sum_m d^m sum_j c[k0 + j] T[j, m]``.
    """
    f = np.fft.fftfreq(L) * L  # signed integer frequencies
    iw = 1j * 2.0 * np.pi * f / L
    W = np.empty((L, degree + 1), dtype=complex)
    W[:, 0] = 1.0
    for m in range(1, degree + 1):
        W[:, m] = W[:, m - 1] * iw / m
    if L % 2 == 0:  # split the Nyquist bin between +pi and -pi: keep even powers only
        nyq = L // 2
        for m in range(degree + 1):
            W[nyq, m] = ((1j * np.pi) ** m + (-1j * np.pi) ** m) / 2.0 / math.factorial(m)
    table = np.fft.fft(W, axis=0) / L
    table = np.ascontiguousarray(table.real)
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=2)
def _taylor_table_torch(L: int) -> Any:
    """:func:`_taylor_table` as a (cached) torch tensor."""
    import torch

    return torch.from_numpy(_taylor_table(L).copy())


# --------------------------------------------------------------------------------------------------
# input checking


def _as_batch(x: Any, name: str) -> np.ndarray:
    """``x`` as a complex128 array; a one-line GwinferError naming ``name`` if it is not numeric."""
    try:
        a = np.asarray(x)
    except Exception:  # noqa: BLE001 - anything numpy cannot convert is bad input
        raise GwinferError(f"{name} cannot be converted to a numeric array") from None
    if a.dtype.kind not in "biufc":
        raise GwinferError(f"{name} must be numeric (real or complex), got dtype {a.dtype}")
    return a.astype(np.complex128, copy=False)


def _check_pair(H: np.ndarray, S: np.ndarray, names: tuple[str, str], dt: float) -> None:
    """One-line GwinferErrors for pairs that are not equal-shape, non-empty 2-D arrays or a bad ``dt``."""
    hn, sn = names
    if H.ndim != 2 or S.ndim != 2:
        raise GwinferError(f"{hn} and {sn} must be 2-D (pairs, samples), got shapes {H.shape} and {S.shape}")
    if H.shape != S.shape:
        raise GwinferError(f"{hn} and {sn} have different shapes {H.shape} and {S.shape}")
    if H.shape[0] == 0 or H.shape[1] == 0:
        raise GwinferError(f"{hn} and {sn} are empty (shape {H.shape})")
    if not (isinstance(dt, (int, float, np.floating, np.integer)) and math.isfinite(dt) and dt > 0):
        raise GwinferError(f"dt = {dt!r} must be a finite positive time step")


def _prepare(A: np.ndarray, name: str, batched: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(A', norm)``: rows of ``A`` (rescaled only where the sum of squares would under/overflow) and
    their Euclidean norms. A one-line GwinferError names the first row holding NaN/inf or all zeros."""
    A = np.ascontiguousarray(A)
    v = A.view(np.float64)
    ss = np.einsum("ij,ij->i", v, v)
    bad = ~np.isfinite(ss) | (ss < 1e-150) | (ss > 1e150)
    if bad.any():  # rare: find NaN/inf and zero rows, rescale the merely tiny or huge ones
        rows = np.flatnonzero(bad)
        sub = A[rows]
        finite = np.isfinite(sub).all(axis=1)
        if not finite.all():
            i = int(rows[np.flatnonzero(~finite)[0]])
            raise GwinferError(f"{name}[{i}] contains NaN or inf" if batched else f"{name} contains NaN or inf")
        scale = np.abs(sub).max(axis=1)
        if not (scale > 0).all():
            i = int(rows[np.flatnonzero(~(scale > 0))[0]])
            where = f"{name}[{i}]" if batched else name
            raise GwinferError(f"{where} has zero norm: the overlap is undefined")
        A = A.copy()
        A[rows] = sub / scale[:, None]
        w = A[rows].view(np.float64)
        ss[rows] = np.einsum("ij,ij->i", w, w)
    return A, np.sqrt(ss)


# --------------------------------------------------------------------------------------------------
# heavy part: correlation, best integer lag, Taylor coefficients


def _core_numpy(h: np.ndarray, s: np.ndarray, L: int, refine: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Best integer lag index ``k0`` (0..L-1), ``c[k0]`` and the Taylor coefficients (or None)."""
    n, T = h.shape
    Hf = np.fft.fft(h, n=L, axis=1)
    Sf = np.fft.fft(s, n=L, axis=1)
    np.conjugate(Hf, out=Hf)
    Hf *= Sf
    del Sf
    c = np.fft.ifft(Hf, axis=1)
    del Hf
    mag = np.abs(c)
    if L > 2 * T - 1:  # lags T..L-T can only hold round-off: never pick them
        mag[:, T : L - T + 1] = -1.0
    k0 = mag.argmax(axis=1)
    c0 = c[np.arange(n), k0]
    if not refine:
        return k0, c0, None
    table = _taylor_table(L)
    R = np.empty((2 * n, L))
    for i, k in enumerate(k0.tolist()):
        R[i, : L - k] = c[i, k:].real
        R[i, L - k :] = c[i, :k].real
        R[n + i, : L - k] = c[i, k:].imag
        R[n + i, L - k :] = c[i, :k].imag
    A = R @ table
    return k0, c0, A[:n] + 1j * A[n:]


def _core_torch(h: np.ndarray, s: np.ndarray, L: int, refine: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """As :func:`_core_numpy`, with the FFTs, roll and matrix product in torch (CPU)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a project dependency
        raise GwinferError("backend='torch' needs torch, which is not installed") from None
    n, T = h.shape
    with torch.no_grad():
        Hf = torch.fft.fft(torch.from_numpy(h), n=L, dim=1)
        Sf = torch.fft.fft(torch.from_numpy(s), n=L, dim=1)
        c = torch.fft.ifft(Hf.conj_physical_() * Sf, dim=1)
        del Hf, Sf
        mag = c.abs()
        if L > 2 * T - 1:
            mag[:, T : L - T + 1] = -1.0
        k0 = mag.argmax(dim=1)
        c0 = c[torch.arange(n), k0]
        if not refine:
            return k0.numpy(), c0.numpy(), None
        idx = (k0[:, None] + torch.arange(L)[None, :]) % L
        cr = torch.view_as_real(torch.gather(c, 1, idx))  # (n, L, 2)
        R = torch.cat([cr[..., 0], cr[..., 1]], dim=0)
        A = (R @ _taylor_table_torch(L)).numpy()
    return k0.numpy(), c0.numpy(), A[:n] + 1j * A[n:]


# --------------------------------------------------------------------------------------------------
# sub-sample maximisation of |sum_m a_m d^m|^2 on [-1, 1]


def _poly(a: np.ndarray, d: np.ndarray, derivs: bool) -> tuple[np.ndarray, ...]:
    """``C(d) = sum_m a_m d^m`` per row (and its first two derivatives in ``d`` with ``derivs``)."""
    M = a.shape[1] - 1
    m = np.arange(M + 1)
    P = np.empty(a.shape)  # powers d^m, (n, M + 1)
    P[:, 0] = 1.0
    for j in range(1, M + 1):
        np.multiply(P[:, j - 1], d, out=P[:, j])
    C = np.einsum("nm,nm->n", a, P)
    if not derivs:
        return (C,)
    C1 = np.einsum("nm,nm->n", a[:, 1:] * m[1:], P[:, :-1])
    C2 = np.einsum("nm,nm->n", a[:, 2:] * (m[2:] * (m[2:] - 1)), P[:, :-2])
    return C, C1, C2


def _refine(a: np.ndarray, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Sub-sample shift ``d`` in [-1, 1] maximising ``|C(d)|`` and the value ``C(d)``, per row of ``a``."""
    n, M1 = a.shape
    V = _GRID[:, None] ** np.arange(M1)[None, :]  # (G, M + 1)
    G = a @ V.T  # (n, G)
    ib = np.abs(G).argmax(axis=1)
    d = _GRID[ib].copy()
    best_C = G[np.arange(n), ib]
    best_F = np.abs(best_C) ** 2
    best_d = d.copy()
    for _ in range(iterations):
        C, C1, C2 = _poly(a, d, True)
        F1 = 2.0 * (C.conj() * C1).real
        F2 = 2.0 * (np.abs(C1) ** 2 + (C.conj() * C2).real)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(F2 < 0, -F1 / F2, np.sign(F1) * _GRID_STEP)
        step = np.nan_to_num(np.clip(step, -_GRID_STEP, _GRID_STEP))
        d_new = np.clip(d + step, -1.0, 1.0)
        (C_new,) = _poly(a, d_new, False)
        F_new = np.abs(C_new) ** 2
        better = F_new > best_F
        best_F = np.where(better, F_new, best_F)
        best_C = np.where(better, C_new, best_C)
        best_d = np.where(better, d_new, best_d)
        d = d_new
        if np.all(np.abs(step) < 1e-9):  # |C| is flat to round-off within ~sqrt(eps) of the peak
            break
    return best_d, best_C


# --------------------------------------------------------------------------------------------------
# public API


def _compute(
    H: np.ndarray,
    S: np.ndarray,
    dt: float,
    chunk: int,
    refine: bool,
    backend: str,
    names: tuple[str, str],
    batched: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(overlap, tau [unit of dt], phi [rad]) of every pair, computed in chunks (module docstring, Method)."""
    if backend not in _BACKENDS:
        raise GwinferError(f"backend = {backend!r} is not one of {', '.join(_BACKENDS)}")
    if not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool) or chunk < 1:
        raise GwinferError(f"chunk = {chunk!r} must be a positive integer")
    _check_pair(H, S, names, dt)
    N, T = H.shape
    L = fft_length(T)
    step = int(max(1, min(int(chunk), _MAX_CHUNK_ELEMENTS // L)))
    core = _core_numpy if backend == "numpy" else _core_torch
    H, norm_h = _prepare(H, names[0], batched)
    S, norm_s = _prepare(S, names[1], batched)
    ov = np.empty(N)
    tau = np.empty(N)
    phi = np.empty(N)
    for lo in range(0, N, step):
        hi = min(N, lo + step)
        k0, c0, a = core(H[lo:hi], S[lo:hi], L, refine)
        lag = np.where(k0 > L // 2, k0 - L, k0).astype(float)
        if a is None:
            d, C = np.zeros(hi - lo), c0
        else:
            d, C = _refine(a)
            # the grid contains d = 0, so |C| >= |c[k0]| up to round-off; keep the integer value if not
            worse = np.abs(C) < np.abs(c0)
            d, C = np.where(worse, 0.0, d), np.where(worse, c0, C)
        ov[lo:hi] = np.abs(C) / (norm_h[lo:hi] * norm_s[lo:hi])
        tau[lo:hi] = (lag + d) * float(dt)
        phi[lo:hi] = np.angle(C)
    return ov, tau, phi


def overlap_batch_with_shift(
    H: Any, S: Any, dt: float = 1.0, *, chunk: int = 256, refine: bool = True, backend: str = "numpy"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overlaps of the pairs ``(H[i], S[i])`` with the maximising time and phase shifts.

    Parameters
    ----------
    H, S : array_like, shape (N, T)
        Complex (or real) series on a common uniform grid of step ``dt``.
    dt : float
        Sampling step (M, or any time unit); only scales the returned ``tau``.
    chunk : int
        Pairs per FFT batch (also capped so a chunk holds at most 2**22 padded samples).
    refine : bool
        Sub-sample refinement of the time shift (exact for band-limited signals). ``False`` gives the
        integer-lag maximum, which is biased low.
    backend : {"numpy", "torch"}
        Where the FFTs run; results agree to round-off.

    Returns
    -------
    overlap : ndarray (N,), dimensionless in [0, 1]
    tau : ndarray (N,), in the unit of ``dt``; ``s(t) ~ e^{i phi} h(t - tau)``
    phi : ndarray (N,), rad in (-pi, pi]
    """
    return _compute(_as_batch(H, "H"), _as_batch(S, "S"), dt, chunk, refine, backend, ("H", "S"), True)


def overlap_batch(
    H: Any, S: Any, dt: float = 1.0, *, chunk: int = 256, refine: bool = True, backend: str = "numpy"
) -> np.ndarray:
    """Overlaps (dimensionless, in [0, 1]) of the pairs ``(H[i], S[i])``, shapes (N, T); see
    :func:`overlap_batch_with_shift` for the parameters."""
    return overlap_batch_with_shift(H, S, dt, chunk=chunk, refine=refine, backend=backend)[0]


def overlap_with_shift(
    h: Any, s: Any, dt: float = 1.0, *, refine: bool = True, backend: str = "numpy"
) -> tuple[float, float, float]:
    """Overlap of two 1-D series with the maximising shifts: ``(overlap, tau [unit of dt], phi [rad])``.

    ``s(t) ~ e^{i phi} h(t - tau)`` at the maximum.
    """
    ha, sa = _as_batch(h, "h"), _as_batch(s, "s")
    if ha.ndim != 1 or sa.ndim != 1:
        raise GwinferError(f"h and s must be 1-D series, got shapes {ha.shape} and {sa.shape}")
    if ha.shape != sa.shape:
        raise GwinferError(f"h and s have different lengths {ha.size} and {sa.size}")
    if ha.size == 0:
        raise GwinferError("h and s are empty")
    ov, tau, phi = _compute(ha[None, :], sa[None, :], dt, 1, refine, backend, ("h", "s"), False)
    return float(ov[0]), float(tau[0]), float(phi[0])


def overlap(h: Any, s: Any, dt: float = 1.0, *, refine: bool = True, backend: str = "numpy") -> float:
    """Overlap (dimensionless, in [0, 1]) of two complex series on the same grid of step ``dt`` (in M),
    maximised over time and phase shifts (Khan, Huerta & Das 2020, Eq. 4)."""
    return overlap_with_shift(h, s, dt, refine=refine, backend=backend)[0]
