"""Shadow monitoring: production requests mirrored to the development version, compared on the live stream.

When a model has a development label (:mod:`gwinfer.serving.repository.labels`), :class:`ShadowMonitor` receives
each answered production request (inputs and production outputs) *after* the response has gone out,
keeps a deterministic ``fraction`` of them (every request at 1.0, every second one at 0.5, ...), and runs
the development version on the same inputs in its own low-priority thread (``nice`` +10 on Linux), never
on the production inference thread. Production responses never wait for it and never see its errors:
a development failure is counted (``errors``, ``last_error``), and when ``max_pending`` mirrored
requests are already waiting, new ones are dropped (``dropped``) rather than queued without bound.

Per (model, production version, development version) it keeps, for each output (float64 accumulators
over all elements compared, batch items x output elements):

* ``mean_abs_diff`` = sum |dev - prod| / elements, ``max_abs_diff`` = max |dev - prod|
* ``rel_rms_diff`` = sqrt(sum (dev - prod)^2 / sum prod^2) (0 when both are 0, inf when prod is all 0)
* ``nonfinite``: elements whose difference is NaN/inf (left out of the sums above)

plus ``requests`` (mirrored requests compared), ``count`` (batch items compared), ``errors``, ``dropped``
and the development version's latency p50/p99 over the last ``latency_window`` mirrored requests (the
time of its model execution, seconds). Streaming (sequence) requests are not mirrored.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.serving.server.metrics import header, sample

log = logging.getLogger(__name__)


@dataclass
class OutputStats:
    elements: int = 0
    sum_abs: float = 0.0
    max_abs: float = 0.0
    sum_sq_diff: float = 0.0
    sum_sq_ref: float = 0.0
    nonfinite: int = 0

    def snapshot(self) -> dict[str, Any]:
        n = self.elements - self.nonfinite
        if self.sum_sq_ref > 0:
            rel = math.sqrt(self.sum_sq_diff / self.sum_sq_ref)
        else:
            rel = 0.0 if self.sum_sq_diff == 0 else math.inf
        return {
            "elements": self.elements,
            "mean_abs_diff": self.sum_abs / n if n else None,
            "max_abs_diff": self.max_abs if n else None,
            "rel_rms_diff": rel if n else None,
            "nonfinite": self.nonfinite,
        }


@dataclass
class PairStats:
    """Running comparison of one development version against one production version of a model."""

    model: str
    production: int
    development: int
    latency_window: int = 1024
    requests: int = 0
    count: int = 0
    errors: int = 0
    dropped: int = 0
    last_error: str = ""
    outputs: dict[str, OutputStats] = field(default_factory=dict)
    latencies: deque = field(default_factory=deque)
    since: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.latencies = deque(maxlen=self.latency_window)

    @staticmethod
    def compare(prod: dict[str, np.ndarray], dev: dict[str, np.ndarray]) -> dict[str, tuple]:
        """Per output (elements, sum |d|, max |d|, sum d^2, sum prod^2, non-finite) of one request."""
        out = {}
        for name, a in prod.items():
            if name not in dev:
                raise ValueError(f"the development version returned no output {name!r}")
            a = np.asarray(a, dtype=np.float64)
            b = np.asarray(dev[name], dtype=np.float64)
            if a.shape != b.shape:
                raise ValueError(f"output {name!r} has shape {list(b.shape)}; production gave {list(a.shape)}")
            d = b - a
            ok = np.isfinite(d)
            dd, ref = d[ok], a[ok]
            out[name] = (
                d.size,
                float(np.abs(dd).sum()),
                float(np.abs(dd).max()) if dd.size else 0.0,
                float((dd * dd).sum()),
                float((ref * ref).sum()),
                int(d.size - dd.size),
            )
        return out

    def add(self, parts: dict[str, tuple], items: int, seconds: float) -> None:
        self.requests += 1
        self.count += items
        self.latencies.append(seconds)
        for name, (n, s_abs, m_abs, s_dd, s_ref, bad) in parts.items():
            o = self.outputs.setdefault(name, OutputStats())
            o.elements += n
            o.sum_abs += s_abs
            o.max_abs = max(o.max_abs, m_abs)
            o.sum_sq_diff += s_dd
            o.sum_sq_ref += s_ref
            o.nonfinite += bad

    def snapshot(self) -> dict[str, Any]:
        lat = np.array(self.latencies, dtype=np.float64)
        return {
            "requests": self.requests,
            "count": self.count,
            "errors": self.errors,
            "dropped": self.dropped,
            "last_error": self.last_error,
            "since": self.since,
            "outputs": {k: v.snapshot() for k, v in sorted(self.outputs.items())},
            "development_latency_s": {
                "p50": float(np.quantile(lat, 0.5)) if lat.size else None,
                "p99": float(np.quantile(lat, 0.99)) if lat.size else None,
                "samples": int(lat.size),
                "window": self.latency_window,
            },
        }


class ShadowMonitor:
    """Mirrors production requests to development versions in a background thread and keeps the stats."""

    def __init__(
        self, fraction: float = 1.0, max_pending: int = 16, latency_window: int = 1024, nice: int = 10
    ) -> None:
        if not (isinstance(fraction, (int, float)) and 0.0 <= fraction <= 1.0):
            raise GwinferError(f"shadow fraction = {fraction!r} must be in [0, 1] (0 disables shadowing)")
        if not (isinstance(max_pending, int) and max_pending >= 1):
            raise GwinferError(f"max_pending = {max_pending!r} must be an integer >= 1")
        self.fraction = float(fraction)
        self.max_pending = max_pending
        self.latency_window = latency_window
        self.nice = nice
        self.lock = threading.Lock()
        self.stats: dict[tuple[str, int, int], PairStats] = {}
        self.pending = 0
        self._credit: dict[str, float] = {}
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def pair(self, model: str, production: int, development: int) -> PairStats:
        key = (model, production, development)
        with self.lock:
            st = self.stats.get(key)
            if st is None:
                st = self.stats[key] = PairStats(model, production, development, self.latency_window)
            return st

    def offer(
        self, dev: Any, production: int, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray], items: int
    ) -> bool:
        """Mirror one answered production request to ``dev`` (a ModelVersion) if sampled; True if queued.

        Cheap and non-blocking (call it after the response is sent); never raises.
        """
        try:
            if self.fraction <= 0 or self._closed:
                return False
            st = self.pair(dev.name, production, dev.version)
            with self.lock:
                credit = self._credit.get(dev.name, 0.0) + self.fraction
                if credit < 1.0 - 1e-9:
                    self._credit[dev.name] = credit
                    return False
                self._credit[dev.name] = credit - 1.0
                if self.pending >= self.max_pending:
                    st.dropped += 1
                    return False
                self.pending += 1
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, daemon=True, name="gwinfer-shadow")
                    self._thread.start()
            self._queue.put((st, dev, inputs, outputs, items))
            return True
        except Exception:  # noqa: BLE001 (shadowing must never fail a production request)
            log.exception("shadow: could not mirror a request")
            return False

    def _work(self) -> None:
        if self.nice and hasattr(os, "setpriority"):
            try:  # Linux: a thread's nice value is its own
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError:
                pass
        while True:
            job = self._queue.get()
            if job is None:
                return
            st, dev, inputs, prod_out, items = job
            t0 = time.perf_counter()
            try:
                dev_out = dev.runner(inputs)
                seconds = time.perf_counter() - t0
                parts = PairStats.compare(prod_out, dev_out)
                with self.lock:
                    st.add(parts, items, seconds)
            except Exception as err:  # noqa: BLE001 (counted; production is not affected)
                with self.lock:
                    st.errors += 1
                    st.last_error = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
            finally:
                with self.lock:
                    self.pending -= 1

    def snapshot(self, model: str, production: int | None, development: int | None) -> dict[str, Any]:
        """JSON of the current comparison of ``model`` (zeros when nothing was compared yet)."""
        out: dict[str, Any] = {
            "model": model,
            "production": None if production is None else str(production),
            "development": None if development is None else str(development),
            "fraction": self.fraction if development is not None else 0.0,
        }
        with self.lock:
            st = self.stats.get((model, production, development)) if development is not None else None
            out["pending"] = self.pending
            snap = st.snapshot() if st is not None else PairStats(model, production or 0, 0).snapshot()
        out.update(snap)
        return out

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once no mirrored request is waiting or running (for tests)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with self.lock:
                if self.pending == 0:
                    return True
            time.sleep(0.005)
        return False

    def render(self) -> str:
        """Prometheus text of every (model, production, development) pair seen."""
        counters = (
            ("requests", "mirrored requests compared"),
            ("count", "mirrored inferences (batch items) compared"),
            ("errors", "mirrored requests the development version failed"),
            ("dropped", "mirrored requests dropped because too many were pending"),
        )
        gauges = (
            ("mean_abs_diff", "mean |development - production| per output element"),
            ("max_abs_diff", "max |development - production| per output"),
            ("rel_rms_diff", "rms(development - production) / rms(production) per output"),
        )
        with self.lock:
            pairs = [
                ({"model": m, "production": p, "development": d}, st.snapshot())
                for (m, p, d), st in sorted(self.stats.items())
            ]
        lines: list[str] = []
        for name, help_ in counters:
            metric = f"gwinfer_shadow_{name}_total"
            lines += header(metric, "counter", f"Shadow monitor: {help_}.")
            lines += [sample(metric, pair, str(snap[name])) for pair, snap in pairs]
        for name, help_ in gauges:
            metric = f"gwinfer_shadow_{name}"
            lines += header(metric, "gauge", f"Shadow monitor: {help_}.")
            for pair, snap in pairs:
                lines += [
                    sample(
                        metric,
                        {
                            "model": pair["model"],
                            "output": out,
                            "production": pair["production"],
                            "development": pair["development"],
                        },
                        f"{o[name]:.9g}",
                    )
                    for out, o in snap["outputs"].items()
                    if o[name] is not None
                ]
        metric = "gwinfer_shadow_development_latency_seconds"
        lines += header(
            metric, "summary", "Shadow monitor: development model execution time over the recent mirrored requests."
        )
        for pair, snap in pairs:
            lat = snap["development_latency_s"]
            lines += [
                sample(metric, {**pair, "quantile": quantile}, f"{lat[q]:.6g}")
                for q, quantile in (("p50", "0.5"), ("p99", "0.99"))
                if lat[q] is not None
            ]
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
