"""How much a shorter window inflates overlaps: the same predictions judged on [-10000, 130] M and on
[-4000, 100] M (the issue's warning, measured on a shipped model's test predictions).

    python bench/window_inflation.py runs/rb-chi-small/report-test/per_waveform.npz [N]
"""

from __future__ import annotations

import sys

import numpy as np

from gwinfer.data.generate import compute_waveforms
from gwinfer.evaluation.overlap import overlap_batch
from gwinfer.physics import TimeGrid


def main(path: str, n: int = 300) -> None:
    d = np.load(path)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(d["truth"]), size=min(n, len(d["truth"])), replace=False)
    truth = d["truth"][idx]
    pred = np.column_stack([np.clip(d["prediction"][idx, 0], 1, 18), np.clip(d["prediction"][idx, 1:], -0.99, 0.99)])
    print("| window (M) | median overlap | Q1 | below 0.97 |\n|---|---|---|---|")
    for grid in (TimeGrid(-10000.0, 130.0, 2.0), TimeGrid(-4000.0, 100.0, 2.0)):
        opts = {"total_mass": 20.0, "max_generation_dt": 0.5}
        h, _ = compute_waveforms(truth, "IMRPhenomT", grid, options=opts)
        r, _ = compute_waveforms(pred, "IMRPhenomT", grid, options=opts)
        ov = overlap_batch(h, r, grid.dt)
        print(
            f"| [{grid.t_start:.0f}, {grid.t_end:.0f}] | {np.median(ov):.5f} | {np.percentile(ov, 25):.5f} | "
            f"{np.mean(ov <= 0.97):.2%} |"
        )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300)
