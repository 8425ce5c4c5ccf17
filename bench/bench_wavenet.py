"""Training-step throughput of gwinfer's point estimators on CPU (not run by the tests).

For each model variant, in a fresh subprocess, time one optimisation step (forward + per-sample loss +
backward + Adam) at batch 32 on T = 5066 samples (the [-10000, 130] M grid at dt = 2 M), with and without
the glibc malloc tuning ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=10000000000`` that the Makefile exports.

Variants: the default WaveNet (32 channels, dilations 1..512) with ``downsample`` 1, 2, 4 and
``representation`` reim / ampphase, the suggested ``wavenet-small``, and the reduced-basis MLP.

    .venv/bin/python bench/bench_wavenet.py                 # all variants, 3 timed steps each
    .venv/bin/python bench/bench_wavenet.py --steps 5 --only wavenet-small reduced_basis
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

TUNED_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "10000000000"}

# the suggested CPU configuration: 4x strided input, 16 channels, dilations 1..512 on the 1267-step grid
WAVENET_SMALL: dict[str, Any] = {
    "channels": 16,
    "skip_channels": 32,
    "out_channels": 8,
    "kernel_size": 3,
    "max_dilation": 512,
    "n_stacks": 1,
    "last_n": 32,
    "leaf_hidden": [128, 64],
    "dropout": 0.0,
    "representation": "reim",
    "downsample": 4,
    "head": "physics",
}


def variants() -> dict[str, dict[str, Any]]:
    """name -> model spec {"kind", "config"}."""
    out: dict[str, dict[str, Any]] = {}
    for rep in ("reim", "ampphase"):
        for ds in (1, 2, 4):
            out[f"wavenet-{rep}-ds{ds}"] = {"kind": "wavenet", "config": {"representation": rep, "downsample": ds}}
    out["wavenet-small"] = {"kind": "wavenet", "config": WAVENET_SMALL}
    out["reduced_basis"] = {"kind": "reduced_basis", "config": {}}
    return out


def worker(name: str, steps: int, batch: int, n_samples: int) -> dict[str, Any]:
    """Time ``steps`` training steps of variant ``name`` in this process; returns a JSON-able record."""
    import torch

    from gwinfer.models import build_model

    torch.manual_seed(0)
    model = build_model(variants()[name], n_samples=n_samples)
    n_fit = 96
    t = torch.linspace(0.0, 1.0, n_samples)
    freq = 20.0 + 40.0 * torch.rand(n_fit, 1)
    x = torch.stack([torch.cos(freq * t * (1 + t)), -torch.sin(freq * t * (1 + t))], dim=1) * (0.1 + t)
    theta = torch.cat([1 + 7 * torch.rand(n_fit, 1), 1.6 * torch.rand(n_fit, 2) - 0.8], dim=1)
    model.fit_standardization(theta, x)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    reps = -(-batch // n_fit)
    xb, tb = x.repeat(reps, 1, 1)[:batch], theta.repeat(reps, 1)[:batch]
    times = []
    for i in range(steps + 1):  # the first step warms up allocator and oneDNN primitives
        t0 = time.perf_counter()
        opt.zero_grad()
        model.loss(tb, xb).mean().backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return {
        "name": name,
        "params": sum(p.numel() for p in model.parameters()),
        "steps_per_s": 1.0 / statistics.median(times),
        "threads": torch.get_num_threads(),
    }


def run_variant(
    name: str, tuned: bool, steps: int, batch: int, n_samples: int, timeout: float, threads: int = 0
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in TUNED_ENV}
    if tuned:
        env.update(TUNED_ENV)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--steps",
        str(steps),
        "--batch",
        str(batch),
        "--n-samples",
        str(n_samples),
    ]
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"timeout after {timeout:.0f} s"}
    if out.returncode != 0:
        return {"name": name, "error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant (after one warm-up)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--n-samples", type=int, default=5066)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per variant subprocess")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="OMP_NUM_THREADS of the workers (0: torch's default); 1 wins on a shared, busy machine",
    )
    ap.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.batch, args.n_samples)))
        return 0
    names = args.only or list(variants())
    threads = args.threads or "default"
    print(
        f"training steps/s, batch {args.batch}, T = {args.n_samples}, median of {args.steps} steps, "
        f"threads {threads}; columns: without / with the malloc tuning"
    )
    print(f"{'variant':<24}{'params':>10}{'default':>10}{'tuned':>10}")
    for name in names:
        row = [
            run_variant(name, tuned, args.steps, args.batch, args.n_samples, args.timeout, args.threads)
            for tuned in (False, True)
        ]
        params = next((r["params"] for r in row if "params" in r), 0)
        cells = [f"{r['steps_per_s']:10.3f}" if "steps_per_s" in r else f"{'ERR':>10}" for r in row]
        print(f"{name:<24}{params:>10d}{cells[0]}{cells[1]}", flush=True)
        for r in row:
            if "error" in r:
                print(f"  {name}: {r['error']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
