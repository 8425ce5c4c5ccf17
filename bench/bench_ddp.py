"""Data-parallel throughput on CPU: samples/s with 1 vs 2 processes, with and without glibc malloc tuning.

Runs ``tests/_ddp_toy.py --model conv`` (a small 1-D conv net) under torchrun (gloo, one thread per
process) four ways and prints a table plus

    scaling efficiency = (samples/s at 2 processes) / (2 * samples/s at 1 process)
    malloc ratio       = samples/s with MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=10000000000 / without

Throughput is the mean over epochs after the first (warm-up). Usage::

    .venv/bin/python bench/bench_ddp.py [--n-train 4096] [--batch-size 128] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from gwinfer.training.distributed import torchrun_command  # noqa: E402

TOY = REPO / "tests" / "_ddp_toy.py"
MALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "10000000000"}


def run(nproc: int, malloc: bool, args: argparse.Namespace) -> float:
    """Samples/s (global) of one toy run."""
    env = {k: v for k, v in os.environ.items() if k not in MALLOC and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    if malloc:
        env.update(MALLOC)
    with tempfile.TemporaryDirectory() as out:
        toy_args = [
            str(TOY),
            "--out",
            out,
            "--model",
            "conv",
            "--n-train",
            str(args.n_train),
            "--batch-size",
            str(args.batch_size),
            "--epochs",
            str(args.epochs),
            "--optimizer",
            "adamw",
        ]
        proc = subprocess.run(
            torchrun_command(nproc, toy_args, module=False),
            env=env,
            capture_output=True,
            text=True,
            timeout=args.timeout,
        )
        if proc.returncode != 0:
            raise SystemExit(f"toy run failed (nproc={nproc}, malloc={malloc}):\n{proc.stderr[-2000:]}")
        history = json.loads((Path(out) / "result.json").read_text())["history"]
    rates = [h["samples_per_second"] for h in history[1:] or history]
    return sum(rates) / len(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--timeout", type=float, default=900.0)
    args = p.parse_args()
    rates = {(n, m): run(n, m, args) for m in (False, True) for n in (1, 2)}
    print(
        f"conv toy, {args.n_train} samples, global batch {args.batch_size}, {args.epochs} epochs, "
        f"{os.cpu_count()} CPUs, 1 thread per process"
    )
    print(f"{'malloc tuning':<14} {'1 proc [sa/s]':>14} {'2 procs [sa/s]':>15} {'efficiency':>11}")
    for m in (False, True):
        one, two = rates[(1, m)], rates[(2, m)]
        print(f"{'on' if m else 'off':<14} {one:>14.0f} {two:>15.0f} {two / (2 * one):>11.2f}")
    for n in (1, 2):
        print(f"malloc ratio (on / off) at {n} proc{'s' if n > 1 else ''}: {rates[(n, True)] / rates[(n, False)]:.2f}")


if __name__ == "__main__":
    main()
