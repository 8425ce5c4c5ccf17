"""Throughput of gwinfer.evaluation.overlap_batch (pairs per second), numpy vs torch, with/without refinement.

Usage: ``.venv/bin/python bench/bench_overlap.py [--quick]``. Runtime well under 2 minutes on 2 cores.
The lengths are those of the paper's h22 series: T = 5066 and T = 101301 samples.
Tip: torch on these VMs is faster with ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=10000000000``
(the Makefile exports them); they must be set before Python starts.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from gwinfer.evaluation.overlap import fft_length, overlap_batch


def make_pairs(rng: np.random.Generator, n: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Random chirp-like complex pairs of length T (frequencies up to ~0.2 cycles/sample)."""
    x = np.linspace(0.0, 1.0, T)
    f0 = rng.uniform(0.005, 0.02, (n, 1))
    f1 = rng.uniform(0.05, 0.2, (n, 1))
    env = np.sin(np.pi * x) ** 2
    H = env * np.exp(2j * np.pi * np.cumsum(f0 + (f1 - f0) * x**3, axis=1))
    f1s = f1 * rng.uniform(0.97, 1.03, (n, 1))
    S = env * np.exp(2j * np.pi * np.cumsum(f0 + (f1s - f0) * x**3, axis=1) + 1j * rng.uniform(0, 6.28, (n, 1)))
    return H, S


def rate(H: np.ndarray, S: np.ndarray, repeats: int, **kw) -> tuple[float, float]:
    """Best-of-``repeats`` (pairs per wall second, pairs per CPU second) of overlap_batch(H, S, **kw).

    The CPU-second figure (process time, all threads) is the one to quote on a shared, loaded machine.
    """
    overlap_batch(H[:2], S[:2], **kw)  # warm-up (Taylor table, torch init)
    wall = cpu = np.inf
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        overlap_batch(H, S, **kw)
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return H.shape[0] / wall, H.shape[0] / cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer pairs (smoke test)")
    args = ap.parse_args()
    try:
        import torch  # noqa: F401

        backends = ["numpy", "torch"]
        threads = f", torch threads {torch.get_num_threads()}"
    except ImportError:
        backends, threads = ["numpy"], ""
    rng = np.random.default_rng(0)
    cases = [(5066, 256 if args.quick else 1024), (101301, 8 if args.quick else 40)]
    print(f"overlap_batch throughput (best of 2{threads})")
    print("| T | L (padded) | pairs | backend | refine | pairs/s (wall) | pairs/CPU-s |")
    print("|---|---|---|---|---|---|---|")
    t_start = time.perf_counter()
    for T, n in cases:
        H, S = make_pairs(rng, n, T)
        for backend in backends:
            for refine in (True, False):
                r, rc = rate(H, S, repeats=2, backend=backend, refine=refine)
                print(f"| {T} | {fft_length(T)} | {n} | {backend} | {refine} | {r:,.0f} | {rc:,.0f} |", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\ntotal {time.perf_counter() - t_start:.1f} s; load average {load:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
