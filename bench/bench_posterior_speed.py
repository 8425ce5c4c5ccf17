"""Time to draw 10^4 posterior samples of one event (embedding + flow + phase folding), side by side.

    python bench/bench_posterior_speed.py --model models/gw5d-iaf/model.pt [--threads 1 2] [--repeats 30]

Warm-up first, then the median and minimum of ``--repeats`` calls of ``model.sample(x, 10000)`` on
whitened-noise input (sampling cost does not depend on the data), per torch thread count.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    from gwinfer.models.builder import load_estimator
    from gwinfer.models.posterior.symmetry import symmetrised

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=30)
    a = ap.parse_args()
    model, meta = load_estimator(a.model)
    model = symmetrised(model, meta)
    x = torch.randn(*model.x_shape, generator=torch.Generator().manual_seed(0))
    for threads in a.threads:
        torch.set_num_threads(threads)
        for _ in range(3):
            model.sample(x, a.n)
        runs = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            model.sample(x, a.n)
            runs.append(time.perf_counter() - t0)
        print(
            f"{a.model}: {a.n} samples, {threads} thread(s): median {statistics.median(runs) * 1e3:.1f} ms, "
            f"min {min(runs) * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    main()
