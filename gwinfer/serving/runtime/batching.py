"""Dynamic batching: concurrent requests of one model version collected for a short window, run as one.

Like Triton's dynamic batcher (``dynamic_batching { max_queue_delay_microseconds: D }``): the first
request waits up to ``delay_s`` seconds for others; requests are concatenated along the batch axis up to
``max_batch_size`` items (a request that would overflow, or whose per-item shapes differ, starts the next
batch), the batch runs once on the inference executor and each request gets its own slice back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import numpy as np

from gwinfer.serving.runtime.runners import Runner

Item = tuple[dict[str, np.ndarray], "asyncio.Future[dict[str, np.ndarray]]"]


def timed(fn: Callable[[Any], Any], arg: Any) -> tuple[Any, float]:
    """(fn(arg), seconds it took) -- run on the inference thread."""
    t0 = time.perf_counter()
    out = fn(arg)
    return out, time.perf_counter() - t0


def batch_size(inputs: dict[str, np.ndarray]) -> int:
    """Items in a request (the leading axis of its inputs)."""
    return next(iter(inputs.values())).shape[0]


class Batcher:
    """Collects concurrent requests for up to ``delay_s`` seconds and runs them as one batch.

    ``record(items, seconds)`` is called after each execution (items in the batch, seconds the runner took).
    """

    def __init__(
        self,
        runner: Runner,
        max_batch_size: int,
        delay_s: float,
        executor: Executor,
        record: Callable[[int, float], None],
    ) -> None:
        self.runner, self.max_batch_size, self.delay = runner, max_batch_size, max(delay_s, 0.0)
        self.executor, self.record = executor, record
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.carry: Item | None = None
        self.task: asyncio.Task | None = None

    async def submit(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs of ``inputs`` (one request), run in a batch with whatever arrives meanwhile."""
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((inputs, fut))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.loop())
        return await fut

    @staticmethod
    def compatible(a: Item, b: Item) -> bool:
        """True if two requests have the same per-item shapes (they can share a batch)."""
        return all(a[0][k].shape[1:] == b[0][k].shape[1:] for k in a[0])

    async def collect(self) -> tuple[list[Item], int]:
        """(requests of the next batch, their items): waits for the first, then up to ``delay`` s for more."""
        loop = asyncio.get_running_loop()
        first = self.carry if self.carry is not None else await self.queue.get()
        self.carry = None
        items, n = [first], batch_size(first[0])
        deadline = loop.time() + self.delay
        while n < self.max_batch_size:
            try:
                nxt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
            if n + batch_size(nxt[0]) > self.max_batch_size or not self.compatible(first, nxt):
                self.carry = nxt
                break
            items.append(nxt)
            n += batch_size(nxt[0])
        return items, n

    async def loop(self) -> None:
        """Run batches for as long as requests come (one task per batcher)."""
        loop = asyncio.get_running_loop()
        while True:
            items, n = await self.collect()
            live = [it for it in items if not it[1].cancelled()]
            if not live:
                continue
            try:
                names = live[0][0]
                batch = {
                    k: np.concatenate([it[0][k] for it in live]) if len(live) > 1 else live[0][0][k] for k in names
                }
                out, seconds = await loop.run_in_executor(self.executor, timed, self.runner, batch)
                self.record(n, seconds)
                start = 0
                for inputs, fut in live:
                    m = batch_size(inputs)
                    if not fut.done():
                        fut.set_result({k: v[start : start + m] for k, v in out.items()})
                    start += m
            except Exception as err:  # noqa: BLE001 (reported to every waiting request)
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(err)
