"""A process pool for CPU-bound waveform work: spawned workers with one BLAS/OpenMP thread each."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from multiprocessing.pool import Pool
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@contextlib.contextmanager
def pinned_pool(workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> Iterator[Pool]:
    """A ``spawn`` pool whose workers inherit one-thread settings (set before spawning, restored after)."""
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: "1" for k in THREAD_VARS})
    try:
        with mp.get_context("spawn").Pool(workers, initializer=initializer, initargs=initargs) as pool:
            yield pool
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
