"""Server metrics in the Prometheus text format (``GET /metrics``): Triton's ``nv_inference_*`` names plus
``gwinfer_*`` extras.

The exposition is written here rather than with ``prometheus_client``: Triton's counters are named
without the ``_total`` suffix that ``prometheus_client`` always adds to counters, and the label order of
each series (``route`` before ``code``, ``method`` before ``code``, as Triton and the tests read them) is
kept, where ``prometheus_client`` sorts labels. :func:`header`, :func:`sample` and :func:`histogram` are
the building blocks shared with the shadow monitor's metrics (:mod:`.shadow`).
"""

from __future__ import annotations

import math
import threading
from typing import Any

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # items per model execution
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)  # seconds

Key = tuple[str, int]  # (model name, version)


def label_value(v: Any) -> str:
    """A label value escaped for the text format (backslash, double quote, newline)."""
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def header(name: str, kind: str, help_: str) -> list[str]:
    """The ``# HELP`` and ``# TYPE`` lines of a metric family (``kind``: counter, gauge, histogram, summary)."""
    return [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]


def sample(name: str, labels: dict[str, Any] | None, value: str) -> str:
    """One sample line, labels in the given order; ``value`` already formatted."""
    if not labels:
        return f"{name} {value}"
    text = ",".join(f'{k}="{label_value(v)}"' for k, v in labels.items())
    return f"{name}{{{text}}} {value}"


def bucket_index(bounds: tuple[float, ...], value: float) -> int:
    """The histogram bucket of ``value``: the first upper bound >= value (len(bounds): +Inf)."""
    return next((i for i, b in enumerate(bounds) if value <= b), len(bounds))


def histogram(name: str, help_: str, bounds: tuple[float, ...], counts: list[int], total: str) -> list[str]:
    """A histogram family from per-bucket ``counts`` (the last one: above every bound) and its ``total``."""
    lines = header(name, "histogram", help_)
    cum = 0
    for b, n in zip((*bounds, math.inf), counts):
        cum += n
        lines.append(sample(f"{name}_bucket", {"le": "+Inf" if b == math.inf else b}, str(cum)))
    return lines + [sample(f"{name}_sum", None, total), sample(f"{name}_count", None, str(sum(counts)))]


class Metrics:
    """The counters of one server, shared by HTTP and gRPC (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.http: dict[tuple[str, int], int] = {}  # (route, status)
        self.grpc: dict[tuple[str, str], int] = {}  # (method, status code name)
        self.success: dict[Key, int] = {}
        self.failure: dict[Key, int] = {}
        self.count: dict[Key, int] = {}  # inferences (batch items)
        self.exec_count: dict[Key, int] = {}  # model executions (batches)
        self.duration_us: dict[Key, float] = {}
        self.compute_us: dict[Key, float] = {}  # time inside the model runner
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0  # seconds
        self.batch = [0] * (len(BATCH_BUCKETS) + 1)
        self.batch_sum = 0
        self.prior_draws: dict[Key, int] = {}  # posterior draws made by versions with a training prior
        self.prior_inside: dict[Key, int] = {}  # ... of them inside the prior
        self.prior_refusals: dict[Key, int] = {}  # requests refused: too few draws inside (422)

    @staticmethod
    def add(d: dict, key: Any, v: float = 1) -> None:
        d[key] = d.get(key, 0) + v

    def http_request(self, route: str, status: int) -> None:
        """Count one HTTP request of ``route`` (see :func:`~.middleware.route_label`) answered with ``status``."""
        with self.lock:
            self.add(self.http, (route, status))

    def grpc_request(self, method: str, code: str) -> None:
        """Count one gRPC call of ``method`` ("ModelInfer") that ended with status ``code`` ("OK")."""
        with self.lock:
            self.add(self.grpc, (method, code))

    def infer(self, key: Key, ok: bool, seconds: float, items: int) -> None:
        """Count one inference request of ``items`` batch items that took ``seconds`` end to end."""
        with self.lock:
            self.add(self.success if ok else self.failure, key)
            if ok:
                self.add(self.count, key, items)
            self.add(self.duration_us, key, seconds * 1e6)
            self.latency[bucket_index(LATENCY_BUCKETS, seconds)] += 1
            self.latency_sum += seconds

    def execution(self, key: Key, batch: int, seconds: float = 0.0) -> None:
        """Count one model execution of ``batch`` items that took ``seconds`` (0: not timed)."""
        with self.lock:
            self.add(self.exec_count, key)
            self.add(self.compute_us, key, seconds * 1e6)
            self.batch[bucket_index(BATCH_BUCKETS, batch)] += 1
            self.batch_sum += batch

    def prior(self, key: Key, drawn: int, inside: int) -> None:
        """Count the posterior draws of one request of a version with a training prior: ``drawn`` made
        (the request's own noise and replacements), ``inside`` of them inside the prior."""
        with self.lock:
            self.add(self.prior_draws, key, drawn)
            self.add(self.prior_inside, key, inside)

    def prior_refusal(self, key: Key) -> None:
        """Count one request refused because too few of its draws were inside the training prior."""
        with self.lock:
            self.add(self.prior_refusals, key)

    def render(self, live_sequences: int = 0) -> str:
        """The text exposition of every counter (``live_sequences``: the streaming sequences gauge)."""
        out: list[str] = []
        with self.lock:
            out += header("gwinfer_http_requests_total", "counter", "HTTP requests by route and status.")
            out += [
                sample("gwinfer_http_requests_total", {"route": r, "code": c}, str(n))
                for (r, c), n in sorted(self.http.items())
            ]
            out += header("gwinfer_grpc_requests_total", "counter", "gRPC calls by method and status code.")
            out += [
                sample("gwinfer_grpc_requests_total", {"method": m, "code": c}, str(n))
                for (m, c), n in sorted(self.grpc.items())
            ]
            for metric, d, help_ in (
                ("nv_inference_request_success", self.success, "successful inference requests"),
                ("nv_inference_request_failure", self.failure, "failed inference requests"),
                ("nv_inference_count", self.count, "inferences (batch items) performed"),
                ("nv_inference_exec_count", self.exec_count, "model executions (batches) performed"),
                ("nv_inference_request_duration_us", self.duration_us, "cumulative request duration, us"),
                ("nv_inference_compute_infer_duration_us", self.compute_us, "cumulative model execution time, us"),
            ):
                out += header(metric, "counter", f"{help_}.")
                out += [sample(metric, {"model": m, "version": v}, f"{n:.15g}") for (m, v), n in sorted(d.items())]
            for metric, d, help_ in (
                ("gwinfer_prior_draws_total", self.prior_draws, "posterior draws made by versions with a training "
                 "prior (the requests' noise and replacements)"),
                ("gwinfer_prior_inside_total", self.prior_inside, "of those draws, the ones inside the prior"),
                ("gwinfer_prior_refusals_total", self.prior_refusals, "requests refused (422): too few draws "
                 "inside the training prior"),
            ):  # fmt: skip
                out += header(metric, "counter", f"{help_}.")
                out += [sample(metric, {"model": m, "version": v}, str(n)) for (m, v), n in sorted(d.items())]
            out += histogram(
                "gwinfer_request_latency_seconds",
                "Inference request latency.",
                LATENCY_BUCKETS,
                self.latency,
                f"{self.latency_sum:.6f}",
            )
            out += histogram(
                "gwinfer_batch_size",
                "Batch size of each model execution.",
                BATCH_BUCKETS,
                self.batch,
                str(self.batch_sum),
            )
        out += header("gwinfer_live_sequences", "gauge", "Live streaming sequences.")
        out.append(sample("gwinfer_live_sequences", None, str(live_sequences)))
        return "\n".join(out) + "\n"
