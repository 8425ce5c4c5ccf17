"""The paper's evaluation figures (Khan, Huerta & Das 2020, Figs. 8-11), written as PNG files.

Each function draws one figure of an :class:`~gwinfer.evaluation.predictions.Evaluation` (q = m1/m2 >= 1,
dimensionless spins, times in M) and returns the path it wrote.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gwinfer.evaluation.figures import pyplot, save_png
from gwinfer.evaluation.predictions import Evaluation
from gwinfer.physics.parameters import sigma_eff, symmetric_mass_ratio


def overlap_histograms(ev: Evaluation, path: Path) -> Path:
    """Fig. 9: overlap distribution in mass-ratio slices (log-scaled mismatch axis)."""
    plt = pyplot()
    q = ev.truth[:, 0]
    edges = np.arange(np.floor(q.min()), max(np.ceil(q.max()), np.floor(q.min()) + 1.0))  # unit slices of q
    cols = max(1, int(np.ceil(len(edges) / 2)))
    fig, axes = plt.subplots(2, cols, figsize=(max(3.5 * cols, 9.0), 6), sharex=True, squeeze=False)
    mismatch = np.clip(1.0 - ev.overlaps, 1e-7, 1.0)
    bins = np.logspace(-7, 0, 36)
    for ax in axes.ravel()[len(edges) :]:
        ax.axis("off")
    for ax, lo in zip(axes.ravel(), edges):
        sel = (q >= lo) & ((q < lo + 1) if lo + 1 < q.max() else (q <= lo + 1))  # the last slice keeps q_max
        ax.hist(mismatch[sel], bins=bins, color="C0")
        ax.set_xscale("log")
        med = np.median(ev.overlaps[sel]) if sel.any() else np.nan
        ax.set_title(f"q in [{lo:.0f}, {lo + 1:.0f}]: n={sel.sum()}, median O={med:.4f}", fontsize=9)
        ax.axvline(0.03, color="C3", lw=0.8, ls="--")
    for ax in axes[1]:
        ax.set_xlabel("1 - overlap  (dashed: overlap = 0.97)")
    for ax in axes[:, 0]:
        ax.set_ylabel("waveforms")
    fig.suptitle("Overlap between true and reconstructed h22 over the full window, by mass ratio")
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def errors_across_manifold(ev: Evaluation, path: Path) -> Path:
    """Fig. 8: prediction errors of q, s1z, s2z across the (q, s1z, s2z) manifold."""
    plt = pyplot()
    err = ev.errors()
    fig, axes = plt.subplots(3, 3, figsize=(13, 10), layout="constrained")
    labels = ("q", "s1z", "s2z")
    colour = None if ev.overlaps is None else np.log10(np.clip(1.0 - ev.overlaps, 1e-7, 1.0))
    sc = None
    for r, name in enumerate(("q", "s1", "s2")):
        for c in range(3):
            ax = axes[r, c]
            sc = ax.scatter(ev.truth[:, c], err[name], s=2, alpha=0.5, c=colour, cmap="viridis")
            ax.axhline(0, color="k", lw=0.5)
            ax.set_xlabel(f"true {labels[c]}")
            ax.set_ylabel(f"predicted - true {labels[r]}")
    fig.suptitle(
        "Errors across the manifold" + ("" if colour is None else " (colour: log10 of the mismatch 1 - overlap)")
    )
    if colour is not None:
        fig.colorbar(sc, ax=axes, label="log10(1 - overlap)", shrink=0.6)
    return save_png(fig, path, dpi=100)


def overlap_maps(ev: Evaluation, path: Path) -> Path:
    """Fig. 10: overlap over (q, s1z) and over (eta, sigma_eff)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    q, s1, s2 = ev.truth.T
    mismatch = np.log10(np.clip(1 - ev.overlaps, 1e-7, 1))
    # the colour scale follows the data (a weak model is not one colour), at least one decade wide
    lo, hi = float(np.floor(np.quantile(mismatch, 0.02))), float(np.ceil(np.quantile(mismatch, 0.98)))
    hi = max(hi, lo + 1.0)
    for ax, (x, y, xl, yl) in zip(
        axes, [(q, s1, "q", "s1z"), (symmetric_mass_ratio(q), sigma_eff(q, s1, s2), "eta", "sigma_eff")]
    ):
        sc = ax.scatter(x, y, c=mismatch, s=6, cmap="magma_r", vmin=lo, vmax=hi)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        fig.colorbar(sc, ax=ax, label="log10(1 - overlap)")
    fig.suptitle("Where the reconstructions are worst")
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def reconstruction_examples(ev: Evaluation, path: Path) -> Path:
    """Fig. 11: true vs reconstructed Re h22 for the highest-, median- and lowest-overlap test waveforms,
    the reconstruction shifted in time and phase as the overlap maximises it."""
    from gwinfer.data.generate import compute_waveforms
    from gwinfer.evaluation.overlap import overlap_with_shift

    plt = pyplot()
    order = np.argsort(ev.overlaps)
    picks = {"lowest": order[0], "median": order[len(order) // 2], "highest": order[-1]}
    pred = np.column_stack([np.clip(ev.pred[:, 0], 1.0, None), ev.pred[:, 1:]])
    idx = list(picks.values())
    h, _ = compute_waveforms(
        np.concatenate([ev.truth[idx], pred[idx]]), ev.backend, ev.grid, options=ev.backend_options
    )
    t = ev.grid.times()
    fig, axes = plt.subplots(3, 2, figsize=(14, 9), gridspec_kw={"width_ratios": [2, 1]})
    for r, (name, i) in enumerate(picks.items()):
        _, tau, phi = overlap_with_shift(h[r + 3], h[r], ev.grid.dt)  # true(t) ~ e^{i phi} rec(t - tau)
        amp, ph = np.abs(h[r + 3]), np.unwrap(np.angle(h[r + 3]))
        aligned = np.interp(t - tau, t, amp) * np.exp(1j * (np.interp(t - tau, t, ph) + phi))
        for c, window in enumerate([(t[0], t[-1]), (-400.0, t[-1])]):
            ax = axes[r, c]
            sel = (t >= window[0]) & (t <= window[1])
            ax.plot(t[sel], h[r, sel].real, "k", lw=0.8, label="true")
            ax.plot(t[sel], aligned[sel].real, "C1--", lw=0.8, label="reconstructed (aligned as in the overlap)")
            if c == 0:
                tq, ts1, ts2 = ev.truth[i]
                pq, ps1, ps2 = ev.pred[i]
                ax.set_title(
                    f"{name} overlap {ev.overlaps[i]:.4f}: true (q, s1, s2) = ({tq:.2f}, {ts1:.2f}, {ts2:.2f}), "
                    f"predicted ({pq:.2f}, {ps1:.2f}, {ps2:.2f})",
                    fontsize=9,
                )
                ax.legend(loc="upper left", fontsize=8)
            ax.set_xlabel("t / M")
            ax.set_ylabel("Re h22 (geometric units)" if c == 0 else "Re h22, merger")
    fig.tight_layout()
    return save_png(fig, path, dpi=100)
