"""Degeneracy maps (Khan, Huerta & Das 2020, Figs. 5-6): overlap of one reference h22 with 2-D manifold slices.

For a reference (q, s1z, s2z) three slices are computed: (q, s1z) at the reference s2z, (q, s2z) at the
reference s1z and (s1z, s2z) at the reference q; every point's waveform is generated with the backend
(in a process pool) and its overlap with the reference, maximised over time and phase, is mapped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.physics.timegrid import TimeGrid
from gwinfer.provenance import atomic_path, provenance, write_json

SLICES = (("q", "s1z"), ("q", "s2z"), ("s1z", "s2z"))
AXES = {"q": 0, "s1z": 1, "s2z": 2}


def _axis(bounds: tuple[float, float], n: int, ref: float) -> np.ndarray:
    """``n`` evenly spaced values over ``bounds`` with the reference value added: every slice passes
    through the reference point (where the overlap is 1)."""
    return np.unique(np.append(np.linspace(bounds[0], bounds[1], n), ref))


def degeneracy_maps(
    q: float,
    s1: float,
    s2: float,
    out_dir: str | Path,
    *,
    backend: str = "IMRPhenomT",
    grid: TimeGrid | None = None,
    n: int = 31,
    q_range: tuple[float, float] = (1.0, 8.0),
    spin_range: tuple[float, float] = (-0.8, 0.8),
    workers: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """Compute the three slices on ``n x n`` points (plus the reference's own values on each axis), write
    ``maps.npz``, ``maps.json`` and ``maps.png``.

    The reference is (q = m1/m2 >= 1, s1z, s2z) = (``q``, ``s1``, ``s2``); ``grid`` is the time grid (M) of
    the waveforms (default [-10000, 130] M at 2 M); ``q_range`` and ``spin_range`` span the slices' axes.
    Returns the per-slice summary (fraction of points with overlap >= 0.97, min, max) and provenance.
    """
    from gwinfer.data.generate import compute_waveforms
    from gwinfer.evaluation.overlap import overlap_batch
    from gwinfer.waveforms import get_backend

    grid = grid or TimeGrid(-10000.0, 130.0, 2.0)
    if n < 3:
        raise GwinferError(f"--n = {n} must be >= 3 points per axis")
    get_backend(backend).validity.check(backend, q, s1, s2)
    ref, failures = compute_waveforms(np.array([[q, s1, s2]]), backend, grid)
    if failures:
        raise GwinferError(f"reference waveform failed: {failures[0]['error']}")
    for name, (lo, hi), value in (("q", q_range, q), ("spin", spin_range, s1), ("spin", spin_range, s2)):
        if not lo < hi:
            raise GwinferError(f"{name} range [{lo}, {hi}] must have its lower bound below the upper one")
        if not lo <= value <= hi:
            raise GwinferError(f"the reference {name} {value} lies outside the {name} range [{lo}, {hi}]")
    get_backend(backend).validity.check(backend, q_range[0], spin_range[0], spin_range[1])
    get_backend(backend).validity.check(backend, q_range[1], spin_range[1], spin_range[0])
    ranges = {"q": _axis(q_range, n, q), "s1z": _axis(spin_range, n, s1), "s2z": _axis(spin_range, n, s2)}
    maps, summary = {}, {}
    for a, b in SLICES:
        A, B = np.meshgrid(ranges[a], ranges[b], indexing="ij")
        pts = np.tile([q, s1, s2], (A.size, 1)).astype(float)
        pts[:, AXES[a]], pts[:, AXES[b]] = A.ravel(), B.ravel()
        h, failures = compute_waveforms(pts, backend, grid, workers=workers, progress=progress, desc=f"{a}-{b} slice")
        if failures:
            raise GwinferError(f"{len(failures)} slice waveform(s) failed, first: {failures[0]}")
        ov = overlap_batch(np.repeat(ref, len(pts), axis=0), h, grid.dt).reshape(A.shape)
        maps[f"{a}_{b}"] = ov
        summary[f"{a}_{b}"] = {
            "fraction_above_0.97": float((ov >= 0.97).mean()),
            "max": float(ov.max()),
            "min": float(ov.min()),
        }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "maps.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **maps, **{k: v for k, v in ranges.items()})
    cfg = {
        "reference": {"q": q, "s1z": s1, "s2z": s2},
        "backend": backend,
        "grid": grid.to_dict(),
        "n": n,
        "q_range": list(q_range),
        "spin_range": list(spin_range),
    }
    result = {"summary": summary, "provenance": provenance("degeneracy", cfg, libraries=("numpy", "lalsuite"))}
    write_json(out / "maps.json", result)
    _plot(maps, ranges, (q, s1, s2), out / "maps.png")
    return result


def _plot(
    maps: dict[str, np.ndarray], ranges: dict[str, np.ndarray], ref: tuple[float, float, float], path: Path
) -> None:
    """The three slices side by side (colour: overlap; contours at 0.97 and 0.99; star: the reference)."""
    from gwinfer.evaluation.figures import pyplot, save_png

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, (a, b) in zip(axes, SLICES):
        m = maps[f"{a}_{b}"]
        im = ax.pcolormesh(ranges[a], ranges[b], m.T, shading="nearest", cmap="viridis", vmin=max(0.5, m.min()), vmax=1)
        ax.contour(ranges[a], ranges[b], m.T, levels=[0.97, 0.99], colors=["w", "r"], linewidths=0.8)
        ax.plot(ref[AXES[a]], ref[AXES[b]], "r*", ms=10)
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        fig.colorbar(im, ax=ax, label="overlap")
    fig.suptitle(f"Overlap with the reference (q, s1z, s2z) = {ref}; contours at 0.97 (white) and 0.99 (red)")
    fig.tight_layout()
    save_png(fig, path, dpi=110)
