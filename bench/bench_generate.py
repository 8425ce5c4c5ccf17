"""Waveform generation speed per backend, pool scaling on this machine, and peak memory vs catalogue size.

    python bench/bench_generate.py [--quick]

Prints (and writes bench/results/generate.json):
1. waveforms/s for each lalsimulation backend at dt = 1 M and 0.1 M over [-10000, 130] M (one process);
2. the catalogue rate with 1 and 2 pool workers, side by side, and the parallel efficiency;
3. peak resident memory of `gwinfer generate` for catalogues of N and 4N waveforms (it should stay flat);
4. the projected cost of the `paper` preset in core-hours from the dt = 0.1 M rate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gwinfer.config import from_dict  # noqa: E402
from gwinfer.data.grid import CatalogueConfig, split_parameters  # noqa: E402
from gwinfer.physics import TimeGrid  # noqa: E402
from gwinfer.waveforms import get_backend  # noqa: E402


def backend_rate(name: str, dt: float, n: int) -> float:
    backend = get_backend(name)
    grid = TimeGrid(-10000.0, 130.0, dt)
    rng = np.random.default_rng(0)
    params = np.column_stack([rng.uniform(1, 8, n), rng.uniform(-0.8, 0.8, (n, 2))])
    backend.h22(*params[0], grid)  # warm-up
    t0 = time.perf_counter()
    for p in params:
        backend.h22(*p, grid)
    return n / (time.perf_counter() - t0)


def run_generate(config: dict, workers: int) -> tuple[float, float]:
    """Wall time (s) of `gwinfer generate` in a subprocess, and that process's own peak RSS (MB)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "c.yaml"
        cfg.write_text(json.dumps(config))
        argv = ["generate", "--config", str(cfg), "--out", f"{tmp}/out", "--workers", str(workers), "--quiet"]
        code = (
            "import resource, sys; from gwinfer.cli import main; rc = main(sys.argv[1:]); "
            "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
        )
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak_kb = int([ln for ln in r.stdout.splitlines() if ln.startswith("PEAK")][-1].split()[1])
        return wall, peak_kb / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 20 if args.quick else 60
    out: dict = {"backend_rate_wf_per_s": {}}
    print("| backend | dt = 1 M (wf/s) | dt = 0.1 M (wf/s) |\n|---|---|---|")
    for name in ("IMRPhenomT", "IMRPhenomXAS", "SEOBNRv4_opt"):
        r1, r01 = backend_rate(name, 1.0, n), backend_rate(name, 0.1, max(n // 3, 5))
        out["backend_rate_wf_per_s"][name] = {"dt=1": r1, "dt=0.1": r01}
        print(f"| {name} | {r1:.1f} | {r01:.1f} |", flush=True)

    base = dict(
        name="bench",
        backend="IMRPhenomT",
        t_start=-10000.0,
        t_end=130.0,
        dt=1.0,
        q_min=1.0,
        q_max=8.0,
        dq=1.0,
        spin_min=-0.8,
        spin_max=0.8,
        ds=0.4 if args.quick else 0.2,
        shard_size=50,
    )
    n_wf = sum(len(v) for v in split_parameters(from_dict(CatalogueConfig, base)).values())
    t1, _ = run_generate(base, 1)
    t2, _ = run_generate(base, 2)
    eff = t1 / (2 * t2)
    out["pool"] = {"waveforms": n_wf, "seconds_1_worker": t1, "seconds_2_workers": t2, "efficiency": eff}
    print(
        f"\npool, {n_wf} waveforms at dt = 1 M (incl. ~3 s start-up): 1 worker {t1:.1f} s, 2 workers {t2:.1f} s, "
        f"speed-up {t1 / t2:.2f}x, parallel efficiency {eff:.0%}"
    )

    small = {**base, "ds": 0.4, "dq": 1.0}
    large = {**base, "ds": 0.2, "dq": 0.5}
    _, m_small = run_generate(small, 1)
    _, m_large = run_generate(large, 1)
    n_large = sum(len(v) for v in split_parameters(from_dict(CatalogueConfig, large)).values())
    out["peak_rss_mb"] = {"312 wf": m_small, f"{n_large} wf": m_large}
    print(
        f"peak RSS of generate: {m_small:.0f} MB for 312 waveforms, {m_large:.0f} MB for {n_large:,} (flat = streaming)"
    )

    rate01 = out["backend_rate_wf_per_s"]["IMRPhenomT"]["dt=0.1"]
    core_hours = 1_580_128 / rate01 / 3600
    total = (1_580_128 + 390_543) / rate01 / 3600
    out["paper_projection"] = {"train_core_hours": core_hours, "all_core_hours": total}
    print(
        f"paper preset (IMRPhenomT, dt = 0.1 M): {rate01:.1f} wf/s/core -> {core_hours:.0f} core-hours for the "
        f"1.58M training waveforms, {total:.0f} core-hours with validation/test; "
        f"{total / 2:.0f} h on this 2-core machine, {total / 64:.1f} h on a 64-core node"
    )
    (ROOT / "bench/results").mkdir(exist_ok=True)
    (ROOT / "bench/results/generate.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
