"""``gwinfer robustness``: a point estimator on inputs it was not made from, beside the clean numbers.

Every row predicts the parameters of 1000 (by default) off-grid test binaries from a perturbed or foreign
input, regenerates the prediction and reports the overlap (maximised over time and phase, full window)
with the unperturbed waveform of the input's own code:

* ``clean``: the test waveforms of the model's own code, as stored (peak at t = 0, h22(0) real);
* ``jitter``: the same binaries regenerated on a clock whose origin is off by a uniform +-``jitter`` M and
  rotated by a uniform constant phase, then brought to the model's convention by
  :func:`gwinfer.waveforms.canonical.canonical_h22` (what ``predict --waveform`` does with a user's file);
* ``noise <level>``: complex white noise of ``level`` times the peak |h22| per real component added to the
  clean (aligned) waveform; the overlap is with the noise-free waveform. ``noise <largest>, re-aligned``:
  the same input brought to the convention again from its own noisy amplitude peak, as ``predict
  --waveform`` does with a file (the flat peak of |h22| then wanders by ~1 M at 1e-3: the row measures it);
* ``<code>``: the test binaries made by another waveform code (another catalogue with the same
  parameters), the prediction regenerated with that code.

Predictions go through :func:`gwinfer.models.guard`: non-finite answers are counted as failures (and
their overlap as 0), out-of-domain ones are counted and clamped. Nothing aborts the table.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.data.loaders import grid_slice
from gwinfer.data.store import catalogue_grid, read_manifest, read_rows, split_shards
from gwinfer.errors import GwinferError
from gwinfer.evaluation.evaluate import load_point_model, predict_rows
from gwinfer.physics.timegrid import TimeGrid
from gwinfer.provenance import atomic_path, provenance, sha256_file, write_json

log = logging.getLogger(__name__)
NOISE_LEVELS = (1e-5, 1e-4, 1e-3)


def _read_test(root: Path, split: str, n: int) -> tuple[np.ndarray, np.ndarray, TimeGrid, str, dict[str, float]]:
    """(params (n, 3), h22 (n, T) complex128, grid, backend name, backend options) of a catalogue split."""
    manifest = read_manifest(root)
    if manifest is None:
        raise GwinferError(f"{root} has no manifest.json: not a gwinfer catalogue")
    params, waves = [], []
    for path in split_shards(root, split):
        p, h = read_rows(path)
        params.append(p)
        waves.append(h.astype(np.complex128))
        if sum(len(p) for p in params) >= n:
            break
    if not params:
        raise GwinferError(f"{root} has no {split} split")
    backend = manifest["backend"]
    return (
        np.concatenate(params)[:n],
        np.concatenate(waves)[:n],
        catalogue_grid(root, split),
        backend["name"],
        dict(backend.get("options") or {}),
    )


def _summary(overlaps: np.ndarray, flags: np.ndarray) -> dict[str, Any]:
    from gwinfer.models import NON_FINITE, OUT_OF_DOMAIN

    ov = np.where(flags & NON_FINITE, 0.0, overlaps)
    return {
        "n": int(len(ov)),
        "median": float(np.median(ov)),
        "q1": float(np.quantile(ov, 0.25)),
        "min": float(ov.min()),
        "fraction_below_0.97": float(np.mean(ov <= 0.97)),
        "n_non_finite": int(np.count_nonzero(flags & NON_FINITE)),
        "n_out_of_domain": int(np.count_nonzero(flags & OUT_OF_DOMAIN)),
    }


class _Judge:
    """Predicts (guarded) and scores against a reference waveform set with one code's regenerations."""

    def __init__(self, model: Any, meta: dict[str, Any], model_grid: TimeGrid, workers: int) -> None:
        from gwinfer.models import domain_of

        self.model, self.grid, self.workers = model, model_grid, workers
        self.domain = domain_of(meta)

    def __call__(
        self, inputs: np.ndarray, truth: np.ndarray, full: TimeGrid, code: str, options: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(overlaps (N,), guard flags (N,)) of model inputs (N, T_model) against ``truth`` (N, T_full)."""
        from gwinfer.data.generate import compute_waveforms
        from gwinfer.evaluation.overlap import overlap_batch
        from gwinfer.models import guard

        pred, flags = guard(predict_rows(self.model, inputs), self.domain)
        rec, failures = compute_waveforms(pred, code, full, workers=self.workers, options=options)
        if failures:
            raise GwinferError(f"regenerating {len(failures)} prediction(s) with {code} failed, first: {failures[0]}")
        return overlap_batch(truth, rec, full.dt), flags


def _canonical_rows(times: np.ndarray, rows: np.ndarray, grid: TimeGrid) -> np.ndarray:
    """Each input row (on its own clock ``times``) brought to the model's convention on ``grid``."""
    from gwinfer.waveforms.canonical import canonical_h22

    return np.stack([canonical_h22(times, h, grid).h for h in rows])


def robustness_table(
    model_path: str | Path,
    test_sets: list[str | Path],
    *,
    n: int = 1000,
    split: str = "test",
    seed: int = 0,
    jitter: float = 0.5,
    noise_levels: tuple[float, ...] = NOISE_LEVELS,
    workers: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """The robustness rows (module docstring) of the point model ``model_path``.

    ``test_sets``: catalogue folders with a ``split`` of the same binaries made by different codes; the
    one made with the model's own code (its metadata's ``approximant``) gives the clean, jitter and noise
    rows, each other one a row of its own. ``seed`` fixes the jitter, phases and noise.
    """
    from tqdm import tqdm

    from gwinfer.waveforms import get_backend

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GwinferError(f"n = {n!r} must be a positive integer (test binaries per row)")
    if not 0.0 <= jitter <= 10.0:
        raise GwinferError(f"jitter = {jitter} M must lie in [0, 10] M")
    model, meta, model_grid = load_point_model(model_path)
    own = meta.get("approximant", "IMRPhenomT")
    sets = {}
    for root in map(Path, test_sets):
        params, waves, full, code, options = _read_test(root, split, n)
        sets[code] = (root, params, waves, full, options)
    if own not in sets:
        raise GwinferError(f"none of the test sets is made with the model's own code {own} (got {sorted(sets)})")
    judge = _Judge(model, meta, model_grid, workers)
    rng = np.random.default_rng(seed)
    root, params, waves, full, options = sets[own]
    sl = grid_slice(full, model_grid)
    rows: dict[str, dict[str, Any]] = {}
    mismatches: dict[str, list[float]] = {}
    steps = ["clean", "jitter", *[f"noise {lv:g}" for lv in noise_levels]]
    steps += [f"noise {max(noise_levels):g}, re-aligned"] if noise_levels else []
    steps += [c for c in sets if c != own]
    bar = tqdm(steps, disable=not progress, desc="robustness", unit="row")
    for step in bar:
        bar.set_postfix_str(step)
        if step == "clean":
            ov, flags = judge(waves[:, sl], waves, full, own, options)
        elif step == "jitter":
            backend = get_backend(own, **options)
            pad = model_grid.dt * np.ceil((4.0 + jitter) / model_grid.dt)
            clock = TimeGrid(model_grid.t_start - pad, model_grid.t_end + pad, model_grid.dt)
            shifts = rng.uniform(-jitter, jitter, len(params))
            phases = rng.uniform(0.0, 2.0 * np.pi, len(params))
            inputs = np.stack([
                backend.h22(q, s1, s2, TimeGrid(clock.t_start - d, clock.t_end - d, clock.dt)) * np.exp(1j * ph)
                for (q, s1, s2), d, ph in zip(params, shifts, phases)
            ])  # fmt: skip
            ov, flags = judge(_canonical_rows(clock.times(), inputs, model_grid), waves, full, own, options)
        elif step.startswith("noise"):
            level = float(step.split()[1].rstrip(","))
            peak = np.abs(waves[:, sl]).max(axis=1, keepdims=True)
            noise = rng.standard_normal(waves[:, sl].shape) + 1j * rng.standard_normal(waves[:, sl].shape)
            inputs = waves[:, sl] + level * peak * noise
            if step.endswith("re-aligned"):  # as predict --waveform would: the noisy amplitude peak located again
                inputs = _canonical_rows(model_grid.times(), inputs, model_grid)
            ov, flags = judge(inputs, waves, full, own, options)
        else:
            o_root, o_params, o_waves, o_full, o_options = sets[step]
            ov, flags = judge(o_waves[:, grid_slice(o_full, model_grid)], o_waves, o_full, step, o_options)
        rows[step] = _summary(ov, flags)
        mismatches[step] = [float(v) for v in np.clip(1.0 - ov, 0.0, 1.0)]
    model_file = Path(model_path) / "model.pt" if Path(model_path).is_dir() else Path(model_path)
    info = {
        "model": {"path": str(model_file), "sha256": sha256_file(model_file), "approximant": own,
                  "approximants": meta.get("approximants", [own])},
        "test_sets": {c: {"path": str(v[0]), "split": split} for c, v in sets.items()},
        "n": n, "seed": seed, "jitter": jitter, "noise_levels": list(noise_levels),
    }  # fmt: skip
    return {"rows": rows, "mismatches": mismatches, "provenance": provenance("robustness", info, parents=[model_file])}


def format_robustness(result: dict[str, Any], title: str = "") -> str:
    """The rows as a markdown table."""
    lines = [f"### {title}" if title else "", "",
             "| input | median overlap | Q1 | min | <= 0.97 | non-finite | out of domain |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in result["rows"].items():
        lines.append(
            f"| {name} | {r['median']:.5f} | {r['q1']:.5f} | {r['min']:.4f} | {100 * r['fraction_below_0.97']:.2f} % "
            f"| {r['n_non_finite']} | {r['n_out_of_domain']} |"
        )
    return "\n".join(lines).strip() + "\n"


def plot_robustness(result: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Box plot of the mismatch 1 - overlap of every row (log scale), the 0.97 line marked."""
    from gwinfer.evaluation.figures import pyplot, save_png

    plt = pyplot()
    names = list(result["mismatches"])
    data = [np.maximum(np.asarray(result["mismatches"][k]), 1e-7) for k in names]
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2.5, 4.2))
    ax.boxplot(data, whis=(5, 95), showfliers=True, flierprops={"markersize": 2, "alpha": 0.4})
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20)
    ax.set_yscale("log")
    ax.axhline(0.03, color="tab:red", lw=1, ls="--", label="overlap 0.97")
    ax.set_ylabel("mismatch 1 - overlap (max over t, phi)")
    ax.set_title(title or "robustness", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def write_robustness(result: dict[str, Any], out: str | Path, title: str = "") -> Path:
    """``OUT/robustness.json``, ``OUT/robustness.md`` and ``OUT/robustness.png``; returns the folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "robustness.json", result)
    with atomic_path(out / "robustness.md") as tmp:
        Path(tmp).write_text(format_robustness(result, title))
    plot_robustness(result, out / "robustness.png", title)
    return out
