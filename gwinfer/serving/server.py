"""A small KServe v2 / Open Inference Protocol HTTP server for a Triton-style model repository.

It implements the endpoints ``tritonclient.http`` uses, so the standard client works unchanged:

========================================================  ==================================================
``GET  /v2/health/live``, ``/v2/health/ready``            liveness / readiness (200 or 503)
``GET  /v2``                                              server metadata
``GET  /v2/models/{m}[/versions/{v}]``                    model metadata (inputs/outputs: name, datatype, shape)
``GET  /v2/models/{m}[/versions/{v}]/ready``              model readiness
``GET  /v2/models/{m}[/versions/{v}]/config``             the parsed config.pbtxt as JSON
``POST /v2/repository/index``                             model list with version and state
``POST /v2/models/{m}[/versions/{v}]/infer``              inference: JSON tensors and the binary tensor extension
``GET  /v2/models/{m}/monitor``                           shadow comparison of development vs production (JSON)
``POST /v2/repository/models/{m}/load``                   (re)load a model: new version folders, labels.json
``POST /v2/systemsharedmemory/region/{r}/register``       system shared memory (:mod:`gwinfer.serving.shm`):
``POST /v2/systemsharedmemory[/region/{r}]/unregister``   register ``{"key", "offset", "byte_size"}``,
``GET  /v2/systemsharedmemory[/region/{r}]/status``       unregister, status; tensors placed in regions
``GET  /metrics``                                         Prometheus text format
========================================================  ==================================================

ONNX models run with onnxruntime (CPU), TorchScript models with ``torch.jit.load``. Concurrent requests to
a model with ``max_batch_size > 0`` are collected for up to ``max_queue_delay_microseconds`` (its
config's ``dynamic_batching``) and run as one batch. Models whose config has ``sequence_batching`` and
whose gwinfer.json has a ``streaming`` entry are *streaming* models: each request carries ``stride`` new
samples of one sequence (``sequence_id``/``sequence_start``/``sequence_end`` request parameters) and the
server keeps the last ``kernel`` samples per sequence (:mod:`gwinfer.serving.streaming`).

Versions: a model's ``labels.json`` (:mod:`gwinfer.serving.promotion`) names its production version, which
answers requests without a version (otherwise the highest ready version does), and optionally a
development version, to which :class:`~gwinfer.serving.shadow.ShadowMonitor` mirrors answered production
requests. ``POST /v2/repository/models/{m}/load`` (Triton's repository-extension verb, also gRPC
``RepositoryModelLoad``) re-reads them and loads new version folders, then switches routing in one step
of the event loop: every request is answered by the old or by the new production version, none fails.

Errors are 4xx with ``{"error": "..."}`` (unknown model/version, wrong tensor name/shape/dtype, malformed
JSON or binary header, oversized body, bad token) and never stop the server.

The KServe v2 gRPC protocol (:mod:`gwinfer.serving.grpc_server`) runs in the same event loop on the
same :class:`App` when asked (``Server(..., grpc_port=0)``, ``serve(..., grpc_port=8001)``); the
protocol-independent pieces it shares are :func:`check_input`, :func:`check_output`, :meth:`App.execute`
and :meth:`App.counted`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from gwinfer._version import __version__
from gwinfer.errors import GwinferError
from gwinfer.serving.promotion import Labels, check_labels, read_labels, version_policy_versions
from gwinfer.serving.repository import (
    TensorSpec,
    check_name,
    config_specs,
    list_models,
    list_versions,
    model_filename,
    read_config,
    runtime_platform,
)
from gwinfer.serving.shadow import ShadowMonitor
from gwinfer.serving.shm import Placement, Regions, SharedMemoryError, is_shared, placement

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 64 << 20  # 64 MiB
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServingError(Exception):
    """An HTTP error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(str(message).split())


# --- runners ----------------------------------------------------------------------------------------
class OnnxRunner:
    def __init__(self, path: Path, input_names: list[str], output_names: list[str], threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        graph_in = [i.name for i in self.session.get_inputs()]
        graph_out = [o.name for o in self.session.get_outputs()]
        if sorted(graph_in) != sorted(input_names) or not set(output_names) <= set(graph_out):
            raise GwinferError(f"{path}: graph tensors {graph_in} -> {graph_out} do not match the config "
                               f"{input_names} -> {output_names}")
        self.output_names = output_names

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, inputs)))


class TorchScriptRunner:
    def __init__(self, path: Path, input_names: list[str], output_names: list[str], threads: int) -> None:
        import torch  # intra-op threads: the process's (serve() sets them; threads is unused here)

        self.torch = torch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but is Triton's format
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        self.input_names, self.output_names = input_names, output_names

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            out = self.module(*[torch.from_numpy(_writable(inputs[n])) for n in self.input_names])
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if len(outs) != len(self.output_names):
            raise GwinferError(f"TorchScript model returned {len(outs)} outputs; config has {len(self.output_names)}")
        return {n: o.numpy() for n, o in zip(self.output_names, outs)}


def _writable(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous writable array (torch.from_numpy refuses read-only views); copies only if needed."""
    a = np.ascontiguousarray(a)
    return a if a.flags.writeable else a.copy()


RUNNERS = {"onnxruntime_onnx": OnnxRunner, "pytorch_libtorch": TorchScriptRunner}


# --- repository ---------------------------------------------------------------------------------------
@dataclass
class ModelVersion:
    """One loaded version of a model."""

    name: str
    version: int
    platform: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    max_batch_size: int
    config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)  # gwinfer.json
    runner: Any = None
    state: str = "READY"
    reason: str = ""
    max_queue_delay_us: int = 0
    streaming: dict[str, Any] | None = None
    sequences: Any = None  # SequenceStore of a streaming model
    batcher: Any = None

    def full_shape(self, spec: TensorSpec) -> list[int]:
        return ([-1] if self.max_batch_size > 0 else []) + list(spec.dims)


def load_version(model_dir: Path, cfg: dict[str, Any], version: int, threads: int,
                 max_sequences: int) -> ModelVersion:
    """Load one version folder (never raises: a failure gives state UNAVAILABLE and a reason)."""
    inputs, outputs = config_specs(cfg, str(model_dir / "config.pbtxt"))
    platform = runtime_platform(cfg)  # the runner; metadata reports the config's platform or backend (Triton's way)
    batching = cfg.get("dynamic_batching")
    delay = int(batching.get("max_queue_delay_microseconds", 0)) if isinstance(batching, dict) else 0
    reported = cfg.get("platform") or cfg["backend"]
    mv = ModelVersion(cfg["name"], version, reported, inputs, outputs, int(cfg.get("max_batch_size", 0)), cfg,
                      max_queue_delay_us=delay if batching is not None else -1)
    vdir = model_dir / str(version)
    try:
        info_path = vdir / "gwinfer.json"
        mv.info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        path = vdir / model_filename(cfg)
        if not path.is_file():
            raise GwinferError(f"{path} does not exist")
        streaming = mv.info.get("streaming")
        if "sequence_batching" in cfg and isinstance(streaming, dict):
            mv.streaming = streaming
            mv.runner = RUNNERS[platform](path, [streaming["graph_input"], *streaming["forwarded_inputs"]],
                                          list(streaming["graph_outputs"]), threads)
            from gwinfer.serving.streaming import SequenceStore, snapshot_state

            idle = cfg["sequence_batching"].get("max_sequence_idle_microseconds", 60_000_000) / 1e6
            shape = (int(streaming["channels"]), int(streaming["kernel"]), int(streaming["stride"]))
            mv.sequences = SequenceStore(lambda: snapshot_state(*shape), max_sequences, idle)
        else:
            mv.runner = RUNNERS[platform](path, [t.name for t in inputs], [t.name for t in outputs], threads)
    except Exception as err:  # noqa: BLE001 (a broken version must not stop the others)
        mv.state, mv.reason = "UNAVAILABLE", " ".join(str(err).split())[:300] or type(err).__name__
        log.warning("%s version %d unavailable: %s", cfg["name"], version, mv.reason)
    return mv


def load_repository(repo: str | Path, threads: int = 1, max_sequences: int = 1024) -> dict[str, dict[int, ModelVersion]]:
    """All versions of all models of a repository: {name: {version: ModelVersion}}."""
    models: dict[str, dict[int, ModelVersion]] = {}
    for name in list_models(repo):
        model_dir = Path(repo) / name
        cfg = read_config(model_dir)
        cfg["name"] = name  # Triton requires the folder name
        models[name] = {v: load_version(model_dir, cfg, v, threads, max_sequences) for v in list_versions(model_dir)}
    return models


# --- metrics ----------------------------------------------------------------------------------------
class Metrics:
    """Counters in Prometheus text format (Triton's nv_inference_* names plus gwinfer_* extras)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.http: dict[tuple[str, int], int] = {}
        self.grpc: dict[tuple[str, str], int] = {}  # (method, status code name)
        self.success: dict[tuple[str, int], int] = {}
        self.failure: dict[tuple[str, int], int] = {}
        self.count: dict[tuple[str, int], int] = {}  # inferences (batch items)
        self.exec_count: dict[tuple[str, int], int] = {}  # model executions (batches)
        self.duration_us: dict[tuple[str, int], float] = {}
        self.compute_us: dict[tuple[str, int], float] = {}  # time inside the model runner
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.batch = [0] * (len(BATCH_BUCKETS) + 1)
        self.batch_sum = 0

    @staticmethod
    def _add(d: dict, key: Any, v: float = 1) -> None:
        d[key] = d.get(key, 0) + v

    def http_request(self, route: str, status: int) -> None:
        with self.lock:
            self._add(self.http, (route, status))

    def grpc_request(self, method: str, code: str) -> None:
        """Count one gRPC call of ``method`` ("ModelInfer") that ended with status ``code`` ("OK")."""
        with self.lock:
            self._add(self.grpc, (method, code))

    def infer(self, key: tuple[str, int], ok: bool, seconds: float, items: int) -> None:
        with self.lock:
            self._add(self.success if ok else self.failure, key)
            if ok:
                self._add(self.count, key, items)
            self._add(self.duration_us, key, seconds * 1e6)
            self.latency[next((i for i, b in enumerate(LATENCY_BUCKETS) if seconds <= b), len(LATENCY_BUCKETS))] += 1
            self.latency_sum += seconds

    def execution(self, key: tuple[str, int], batch: int, seconds: float = 0.0) -> None:
        """Count one model execution of ``batch`` items that took ``seconds`` (0: not timed)."""
        with self.lock:
            self._add(self.exec_count, key)
            self._add(self.compute_us, key, seconds * 1e6)
            self.batch[next((i for i, b in enumerate(BATCH_BUCKETS) if batch <= b), len(BATCH_BUCKETS))] += 1
            self.batch_sum += batch

    def render(self, live_sequences: int = 0) -> str:
        out: list[str] = []
        with self.lock:
            out += ["# HELP gwinfer_http_requests_total HTTP requests by route and status.",
                    "# TYPE gwinfer_http_requests_total counter"]
            out += [f'gwinfer_http_requests_total{{route="{r}",code="{c}"}} {n}' for (r, c), n in sorted(self.http.items())]
            out += ["# HELP gwinfer_grpc_requests_total gRPC calls by method and status code.",
                    "# TYPE gwinfer_grpc_requests_total counter"]
            out += [f'gwinfer_grpc_requests_total{{method="{m}",code="{c}"}} {n}' for (m, c), n in sorted(self.grpc.items())]
            for metric, d, help_ in (
                ("nv_inference_request_success", self.success, "successful inference requests"),
                ("nv_inference_request_failure", self.failure, "failed inference requests"),
                ("nv_inference_count", self.count, "inferences (batch items) performed"),
                ("nv_inference_exec_count", self.exec_count, "model executions (batches) performed"),
                ("nv_inference_request_duration_us", self.duration_us, "cumulative request duration, us"),
                ("nv_inference_compute_infer_duration_us", self.compute_us, "cumulative model execution time, us"),
            ):
                out += [f"# HELP {metric} {help_}.", f"# TYPE {metric} counter"]
                out += [f'{metric}{{model="{m}",version="{v}"}} {n:.15g}' for (m, v), n in sorted(d.items())]
            out += ["# HELP gwinfer_request_latency_seconds Inference request latency.",
                    "# TYPE gwinfer_request_latency_seconds histogram"]
            cum = 0
            for b, n in zip((*LATENCY_BUCKETS, math.inf), self.latency):
                cum += n
                out.append(f'gwinfer_request_latency_seconds_bucket{{le="{"+Inf" if b == math.inf else b}"}} {cum}')
            out += [f"gwinfer_request_latency_seconds_sum {self.latency_sum:.6f}",
                    f"gwinfer_request_latency_seconds_count {sum(self.latency)}"]
            out += ["# HELP gwinfer_batch_size Batch size of each model execution.", "# TYPE gwinfer_batch_size histogram"]
            cum = 0
            for b, n in zip((*BATCH_BUCKETS, math.inf), self.batch):
                cum += n
                out.append(f'gwinfer_batch_size_bucket{{le="{"+Inf" if b == math.inf else b}"}} {cum}')
            out += [f"gwinfer_batch_size_sum {self.batch_sum}", f"gwinfer_batch_size_count {sum(self.batch)}"]
        out += ["# HELP gwinfer_live_sequences Live streaming sequences.", "# TYPE gwinfer_live_sequences gauge",
                f"gwinfer_live_sequences {live_sequences}"]
        return "\n".join(out) + "\n"


# --- dynamic batching -------------------------------------------------------------------------------
def timed(fn: Callable[[Any], Any], arg: Any) -> tuple[Any, float]:
    """(fn(arg), seconds it took) — run on the inference thread."""
    t0 = time.perf_counter()
    out = fn(arg)
    return out, time.perf_counter() - t0


class Batcher:
    """Collects concurrent requests of one model version for up to ``delay`` s and runs them as one batch."""

    def __init__(self, mv: ModelVersion, executor: ThreadPoolExecutor, metrics: Metrics) -> None:
        self.mv, self.executor, self.metrics = mv, executor, metrics
        self.delay = max(mv.max_queue_delay_us, 0) / 1e6
        self.queue: asyncio.Queue = asyncio.Queue()
        self.carry: tuple | None = None
        self.task: asyncio.Task | None = None

    async def submit(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((inputs, fut))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._loop())
        return await fut

    @staticmethod
    def _n(item: tuple) -> int:
        return next(iter(item[0].values())).shape[0]

    @staticmethod
    def _compatible(a: tuple, b: tuple) -> bool:
        return all(a[0][k].shape[1:] == b[0][k].shape[1:] for k in a[0])

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = self.carry if self.carry is not None else await self.queue.get()
            self.carry = None
            items, n = [first], self._n(first)
            deadline = loop.time() + self.delay
            while n < self.mv.max_batch_size:
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
                if n + self._n(nxt) > self.mv.max_batch_size or not self._compatible(first, nxt):
                    self.carry = nxt
                    break
                items.append(nxt)
                n += self._n(nxt)
            live = [it for it in items if not it[1].cancelled()]
            if not live:
                continue
            try:
                batch = {k: np.concatenate([it[0][k] for it in live]) if len(live) > 1 else live[0][0][k] for k in first[0]}
                out, seconds = await loop.run_in_executor(self.executor, timed, self.mv.runner, batch)
                self.metrics.execution((self.mv.name, self.mv.version), n, seconds)
                start = 0
                for it in live:
                    m = self._n(it)
                    if not it[1].done():
                        it[1].set_result({k: v[start:start + m] for k, v in out.items()})
                    start += m
            except Exception as err:  # noqa: BLE001 (reported to every waiting request)
                for it in live:
                    if not it[1].done():
                        it[1].set_exception(err)


# --- request parsing --------------------------------------------------------------------------------
def header_length_of(header_length: str | None) -> int:
    """The integer value of an Inference-Header-Content-Length header (0 if absent or not an integer)."""
    try:
        return int(header_length) if header_length is not None else 0
    except ValueError:
        return 0


def _json_header(body: bytes | memoryview, header_length: str | None) -> tuple[dict[str, Any], bytes | memoryview]:
    """(the JSON inference header, the binary tensor data after it) of an HTTP inference body."""
    if header_length is None:
        head, blob = body, b""
    else:
        try:
            n = int(header_length)
        except ValueError:
            raise ServingError(400, f"Inference-Header-Content-Length {header_length!r} is not an integer") from None
        if not 0 < n <= len(body):
            raise ServingError(400, f"Inference-Header-Content-Length {n} is outside the body length {len(body)}")
        head, blob = body[:n], body[n:]
    try:
        req = json.loads(bytes(head) if isinstance(head, memoryview) else head)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ServingError(400, f"malformed JSON inference header: {err}") from None
    if not isinstance(req, dict):
        raise ServingError(400, "the inference request must be a JSON object")
    return req, blob


def check_input(mv: ModelVersion, name: Any, datatype: Any, shape: Any, seen: dict[str, np.ndarray],
                batch: int | None) -> tuple[TensorSpec, int | None]:
    """(spec, batch size so far) of one request input; ServingError(400) naming what is wrong.

    ``seen`` holds the inputs already parsed (duplicates are refused); ``batch`` is the batch size of
    the previous inputs (None before the first). Shared by the HTTP and gRPC front ends.
    """
    specs = {t.name: t for t in mv.inputs}
    if name not in specs:
        raise ServingError(400, f"unexpected input {name!r} for model {mv.name!r}; expected {sorted(specs)}")
    if name in seen:
        raise ServingError(400, f"input {name!r} given twice")
    spec = specs[name]
    if datatype != spec.datatype:
        raise ServingError(400, f"input {name!r} has datatype {datatype!r}; expected {spec.datatype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ServingError(400, f"input {name!r} needs a shape of non-negative integers, got {shape!r}")
    full = mv.full_shape(spec)
    ok = len(shape) == len(full) and all(f == -1 or f == s for f, s in zip(full, shape))
    if ok and mv.max_batch_size > 0:
        ok = 1 <= shape[0] <= mv.max_batch_size
    if not ok:
        batch_txt = f" with batch in [1, {mv.max_batch_size}]" if mv.max_batch_size > 0 else ""
        raise ServingError(400, f"input {name!r} has shape {shape}; expected {full}{batch_txt}")
    if mv.max_batch_size > 0:
        if batch is not None and shape[0] != batch:
            raise ServingError(400, "all inputs must have the same batch size")
        batch = shape[0]
    return spec, batch


def check_input_parameters(name: str, params: Any) -> None:
    """ServingError(400) unless an input's parameters are an object."""
    if not isinstance(params, dict):
        raise ServingError(400, f"input {name!r}: parameters must be an object")


def shm_input(regions: Regions | None, params: dict[str, Any], name: str, spec: TensorSpec,
              shape: list[int]) -> np.ndarray | None:
    """The input ``name`` read from the shared-memory region its parameters name (a view, no copy),
    or None if they name none; SharedMemoryError for a bad placement (both inference paths answer a
    GwinferError with 400 / INVALID_ARGUMENT)."""
    where = placement(params, f"input {name!r}")
    if where is None:
        return None
    if regions is None:
        raise SharedMemoryError("shared-memory inputs are not supported here")
    return regions.read(where, spec.numpy_dtype, shape, f"input {name!r}")


def output_placement(regions: Regions | None, mv: ModelVersion, name: str, params: dict[str, Any],
                     batch: int) -> Placement | None:
    """The shared-memory placement of requested output ``name`` (None: in the response), checked to
    hold the output of a batch of ``batch`` before the model runs; SharedMemoryError otherwise."""
    what = f"output {name!r}"
    where = placement(params, what)
    if where is None:
        return None
    if regions is None:
        raise SharedMemoryError("shared-memory outputs are not supported here")
    spec = next(t for t in mv.outputs if t.name == name)
    dims = ([batch] if mv.max_batch_size > 0 else []) + list(spec.dims)
    nbytes = int(np.prod(dims, dtype=np.int64)) * spec.numpy_dtype.itemsize if min(dims, default=0) >= 0 else None
    regions.check_room(where, nbytes, what)
    return where


def write_shm_output(regions: Regions, where: Placement, name: str, arr: np.ndarray) -> dict[str, Any]:
    """Write output ``name`` into its region (SharedMemoryError if it does not fit); the response
    parameters naming it."""
    regions.write(where, arr, f"output {name!r}")
    params: dict[str, Any] = {"shared_memory_region": where.region, "shared_memory_byte_size": where.byte_size}
    if where.offset:
        params["shared_memory_offset"] = where.offset
    return params


def check_complete(mv: ModelVersion, arrays: dict[str, np.ndarray]) -> None:
    """ServingError(400) unless every input of ``mv`` was given."""
    missing = sorted({t.name for t in mv.inputs} - set(arrays))
    if missing:
        raise ServingError(400, f"missing input(s) {missing} for model {mv.name!r}")


def parse_inputs(req: dict[str, Any], blob: bytes | memoryview, mv: ModelVersion,
                 regions: Regions | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Validated input arrays of an inference request and its batch size.

    Binary inputs are views of ``blob`` and shared-memory inputs views of their ``regions`` (no copies).
    """
    entries = req.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise ServingError(400, 'the request needs a non-empty "inputs" list')
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    batch = None
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise ServingError(400, 'each input needs a "name"')
        name, shape = e["name"], e.get("shape")
        spec, batch = check_input(mv, name, e.get("datatype"), shape, arrays, batch)
        count = int(np.prod(shape)) if shape else 1
        params = e.get("parameters") or {}
        check_input_parameters(name, params)
        dtype = spec.numpy_dtype
        shared = shm_input(regions, params, name, spec, shape)
        if shared is not None:
            if "binary_data_size" in params or "data" in e:
                raise ServingError(400, f"input {name!r} has both a shared-memory region and data; send one")
            arr = shared
        elif "binary_data_size" in params:
            size = params["binary_data_size"]
            if not isinstance(size, int) or size != count * dtype.itemsize:
                raise ServingError(400, f"input {name!r}: binary_data_size {size!r} != {count} x {dtype.itemsize} bytes")
            if offset + size > len(blob):
                raise ServingError(400, f"input {name!r}: binary data truncated ({len(blob) - offset} of {size} bytes)")
            arr = np.frombuffer(blob, dtype=dtype.newbyteorder("<"), count=count, offset=offset)  # a view
            if not arr.dtype.isnative:  # big-endian hosts only
                arr = arr.astype(dtype)
            offset += size
        else:
            if "data" not in e:
                raise ServingError(400, f"input {name!r} has neither data nor binary_data_size")
            try:
                arr = np.asarray(e["data"], dtype=dtype)
            except (TypeError, ValueError) as err:
                raise ServingError(400, f"input {name!r}: data are not {spec.datatype} numbers ({err})") from None
            if arr.size != count:
                raise ServingError(400, f"input {name!r}: {arr.size} data values for shape {shape}")
        arrays[name] = arr.reshape(shape)
    if offset != len(blob):
        raise ServingError(400, f"{len(blob) - offset} unexpected bytes after the binary input data")
    check_complete(mv, arrays)
    return arrays, batch or 1


def requested_outputs(req: dict[str, Any], mv: ModelVersion, regions: Regions | None = None,
                      batch: int = 1) -> list[tuple[str, bool, Placement | None]]:
    """[(output name, binary?, shared-memory placement or None)] of a request (all outputs when none
    are named); placements are checked to hold a batch of ``batch``."""
    params = req.get("parameters") or {}
    default_binary = bool(params.get("binary_data_output", False)) if isinstance(params, dict) else False
    names = [t.name for t in mv.outputs]
    outs = req.get("outputs")
    if outs is None:
        return [(n, default_binary, None) for n in names]
    if not isinstance(outs, list):
        raise ServingError(400, '"outputs" must be a list')
    result = []
    for o in outs:
        if not isinstance(o, dict):
            raise ServingError(400, f"unknown output {o!r} for model {mv.name!r}; expected {names}")
        p = o.get("parameters") or {}
        check_output(mv, o.get("name"), p)
        result.append((o["name"], bool(p.get("binary_data", default_binary)),
                       output_placement(regions, mv, o["name"], p, batch)))
    return result


def check_output(mv: ModelVersion, name: Any, params: Any) -> None:
    """ServingError(400) unless ``name`` is an output of ``mv`` requested without unsupported parameters."""
    names = [t.name for t in mv.outputs]
    if name not in names:
        raise ServingError(400, f"unknown output {name!r} for model {mv.name!r}; expected {names}")
    if not isinstance(params, dict):
        raise ServingError(400, "output parameters must be an object")
    if "classification" in params:
        raise ServingError(400, "classification outputs are not supported")


def encode_response(mv: ModelVersion, req: dict[str, Any], outputs: dict[str, np.ndarray],
                    wanted: list[tuple[str, bool, Placement | None]], extra: dict[str, Any] | None = None,
                    regions: Regions | None = None) -> tuple[bytes, int | None]:
    """(body, JSON header length or None) of an inference response; shared-memory outputs are written
    into their regions and answered without data."""
    specs = {t.name: t for t in mv.outputs}
    resp: dict[str, Any] = {"model_name": mv.name, "model_version": str(mv.version)}
    if "id" in req:
        resp["id"] = req["id"]
    if extra:
        resp["parameters"] = extra
    tensors, blobs = [], []
    for name, binary, where in wanted:
        arr = np.ascontiguousarray(outputs[name], dtype=specs[name].numpy_dtype)
        t: dict[str, Any] = {"name": name, "datatype": specs[name].datatype, "shape": list(arr.shape)}
        if where is not None and regions is not None:
            t["parameters"] = write_shm_output(regions, where, name, arr)
        elif binary:
            data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            t["parameters"] = {"binary_data_size": len(data)}
            blobs.append(data)
        else:
            t["data"] = arr.reshape(-1).tolist()
        tensors.append(t)
    resp["outputs"] = tensors
    head = json.dumps(resp, separators=(",", ":")).encode()
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)


async def _receive_chunks(request: Any) -> Any:
    """The body chunks of an ASGI request (ServingError(400) if the client disconnects first)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ServingError(400, "the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _receive_into(request: Any, length: int, align_at: int = 0) -> memoryview:
    """A body of Content-Length ``length`` bytes received into one buffer (byte ``align_at`` 64-byte
    aligned); ServingError(400) if the client sends more or fewer bytes."""
    pad = (-align_at) % 64 if 0 <= align_at <= length else 0
    raw = np.empty(length + pad + 64, dtype=np.uint8)
    start = pad + (-raw.ctypes.data) % 64  # the buffer itself 64-byte aligned
    view = memoryview(raw)[start:start + length]
    n = 0
    async for chunk in _receive_chunks(request):
        if n + len(chunk) > length:
            raise ServingError(400, f"the request body is longer than its Content-Length {length}")
        view[n:n + len(chunk)] = chunk
        n += len(chunk)
    if n != length:
        raise ServingError(400, f"the request body has {n} bytes; Content-Length says {length}")
    return view


# --- the application ---------------------------------------------------------------------------------
class App:
    """State and handlers of one server: repository, executor, metrics, limits."""

    def __init__(self, repo: str | Path, token: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
                 threads: int = 1, max_sequences: int = 1024, dynamic_batching: bool = True,
                 shadow_fraction: float = 1.0) -> None:
        if not isinstance(max_body_bytes, int) or max_body_bytes < 1024:
            raise GwinferError(f"max_body_bytes = {max_body_bytes!r} must be an integer >= 1024")
        self.shadow = ShadowMonitor(shadow_fraction)
        self.repo = Path(repo)
        self.threads, self.max_sequences = threads, max_sequences
        self.models = load_repository(repo, threads=threads, max_sequences=max_sequences)
        # labels.json per model; a model whose labels are unusable answers unversioned requests with 503
        # (never silently with another version than the labelled production one)
        self.labels: dict[str, Labels] = {}
        self.label_errors: dict[str, str] = {}
        for name, versions in self.models.items():
            try:
                labels = self._checked_labels(name, versions, read_labels(self.repo / name, check_versions=False))
            except GwinferError as err:
                self.label_errors[name] = str(err)
                log.warning("model %s: unversioned requests refused: %s", name, err)
                continue
            if labels is not None:
                self.labels[name] = labels
                self._check_policy(name, next(iter(versions.values())).config, labels)
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.dynamic_batching = dynamic_batching
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwinfer-infer")
        self.metrics = Metrics()
        self.shm = Regions()  # registered system shared-memory regions (HTTP and gRPC)
        self.ready = True
        self._load_lock = asyncio.Lock()

    @staticmethod
    def _checked_labels(name: str, versions: dict[int, ModelVersion], labels: Labels | None) -> Labels | None:
        """``labels`` if every labelled version is loaded and ready; else a one-line GwinferError."""
        if labels is None:
            return None
        where = f"{name}/labels.json"
        check_labels(labels, versions, where)
        for stage in ("production", "development"):
            v = getattr(labels, stage)
            if v is not None and versions[v].state != "READY":
                raise GwinferError(f"{where}: {stage} version {v} is {versions[v].state}: {versions[v].reason}")
        return labels

    @staticmethod
    def _check_policy(name: str, cfg: dict[str, Any], labels: Labels) -> None:
        """Warn when a real Triton would serve another version than production for unversioned requests."""
        policy = version_policy_versions(cfg)
        if policy != [labels.production]:
            log.warning("model %s: labels.json says production is version %d but config.pbtxt's version_policy "
                        "is %s; a real Triton would not serve the same version (gwinfer promote sets it)",
                        name, labels.production, f"specific {policy}" if policy else "not 'specific'")

    # --- lookups
    def model(self, name: str, version: str | None = None) -> ModelVersion:
        versions = self.models.get(name)
        if not versions:
            raise ServingError(404, f"unknown model {name!r}; available: {sorted(self.models)}")
        if version in (None, "", "-1"):
            if name in self.label_errors:
                raise ServingError(503, f"model {name!r} has no usable production label "
                                        f"({self.label_errors[name]}); ask for an explicit version, or fix "
                                        f"labels.json and load the model again")
            labels = self.labels.get(name)
            if labels is not None:
                mv = versions[labels.production]
                self.check_ready(mv)
                return mv
            ready = [v for v, mv in versions.items() if mv.state == "READY"]
            if not ready:
                raise ServingError(503, f"model {name!r} has no ready version")
            return versions[max(ready)]
        if not version.isdigit() or int(version) not in versions:
            raise ServingError(404, f"unknown version {version!r} of model {name!r}; available: {sorted(versions)}")
        return versions[int(version)]

    def close(self) -> None:
        """Stop the inference executor and the shadow thread (in-flight work is abandoned)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.shadow.close()

    def live_sequences(self) -> int:
        return sum(len(mv.sequences) for vs in self.models.values() for mv in vs.values() if mv.sequences is not None)

    # --- payloads
    def server_metadata(self) -> dict[str, Any]:
        return {"name": "gwinfer", "version": __version__,
                "extensions": ["binary_tensor_data", "model_configuration", "model_repository", "sequence",
                               "system_shared_memory"]}

    def model_metadata(self, mv: ModelVersion, version: str | None) -> dict[str, Any]:
        """KServe v2 model metadata, plus ``labels`` ({"production": "2", "development": "3"}) if labelled."""
        versions = [str(mv.version)] if version else [str(v) for v, m in sorted(self.models[mv.name].items())
                                                      if m.state == "READY"]
        meta = {
            "name": mv.name, "versions": versions, "platform": mv.platform,
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": mv.full_shape(t)} for t in mv.inputs],
            "outputs": [{"name": t.name, "datatype": t.datatype, "shape": mv.full_shape(t)} for t in mv.outputs],
        }
        labels = self.labels.get(mv.name)
        if labels is not None:
            meta["labels"] = labels.as_strings()
        return meta

    def repository_index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """[{name, version, state, reason?, label?}] (``label``: "production" or "development")."""
        out = []
        for name, versions in sorted(self.models.items()):
            labels = self.labels.get(name)
            for v, mv in sorted(versions.items()):
                if ready_only and mv.state != "READY":
                    continue
                entry = {"name": name, "version": str(v), "state": mv.state}
                if mv.reason:
                    entry["reason"] = mv.reason
                label = labels.label_of(v) if labels is not None else None
                if label:
                    entry["label"] = label
                out.append(entry)
        return out

    def monitor(self, name: str) -> dict[str, Any]:
        """The shadow comparison of ``name``'s development version against its production version."""
        if name not in self.models:
            raise ServingError(404, f"unknown model {name!r}; available: {sorted(self.models)}")
        labels = self.labels.get(name)
        return self.shadow.snapshot(name, labels.production if labels else None,
                                    labels.development if labels else None)

    async def load_model(self, name: str, parameters: Any = None) -> dict[str, Any]:
        """Triton's repository "load" for a model: load new (or previously failed) version folders, re-read
        labels.json, then switch versions and labels in one step; refused (nothing changes) if the labels
        are invalid or name a version that is not ready. Loaded versions stay loaded (in-flight and
        explicitly versioned requests keep working); a model folder not served yet is loaded too.
        """
        if parameters:
            raise ServingError(400, "load parameters (config override, files) are not supported; edit the "
                                    "repository and load again")
        try:
            check_name(name)
        except GwinferError as err:
            raise ServingError(400, str(err)) from None
        model_dir = self.repo / name
        if not (model_dir / "config.pbtxt").is_file():
            raise ServingError(404, f"no model {name!r} in the repository {self.repo}")
        async with self._load_lock:
            old = self.models.get(name, {})
            keep = {v for v, mv in old.items() if mv.state == "READY"}

            def prepare() -> tuple[dict[str, Any], dict[int, ModelVersion], Labels | None]:
                cfg = read_config(model_dir)
                cfg["name"] = name
                fresh = {v: load_version(model_dir, cfg, v, self.threads, self.max_sequences)
                         for v in list_versions(model_dir) if v not in keep}
                return cfg, fresh, read_labels(model_dir, check_versions=False)

            try:
                cfg, fresh, labels = await asyncio.get_running_loop().run_in_executor(None, prepare)
                merged = dict(sorted({**{v: old[v] for v in keep}, **fresh}.items()))
                labels = self._checked_labels(name, merged, labels)
            except GwinferError as err:
                raise ServingError(400, f"model {name!r} not (re)loaded: {err}") from None
            # Only the version policy may change for versions already loaded (promote rewrites it); other
            # config changes apply to newly loaded versions only
            unchanged = [mv for v, mv in merged.items() if v in keep]
            strip = lambda c: {k: x for k, x in c.items() if k != "version_policy"}  # noqa: E731
            note = ""
            for mv in unchanged:
                if strip(mv.config) == strip(cfg):
                    mv.config = cfg
                else:
                    note = "config.pbtxt changed: loaded versions keep their config until the server restarts"
            # the switch: no await between these assignments, so each request sees old or new routing
            self.models[name] = merged
            if labels is None:
                self.labels.pop(name, None)
            else:
                self.labels[name] = labels
            self.label_errors.pop(name, None)
        if labels is not None:
            self._check_policy(name, cfg, labels)
        log.info("model %s loaded: versions %s%s%s", name, sorted(merged),
                 f", labels {labels.to_json()}" if labels else "", f"; {note}" if note else "")
        out: dict[str, Any] = {"name": name, "versions": [str(v) for v in merged],
                               "new_versions": [str(v) for v in fresh],
                               "state": {str(v): mv.state for v, mv in merged.items()}}
        if labels is not None:
            out["labels"] = labels.as_strings()
        if note:
            out["note"] = note
        return out

    def check_token(self, headers: Any) -> None:
        if self.token is None:
            return
        got = headers.get("authorization", "")
        if not hmac.compare_digest(got.encode(), f"Bearer {self.token}".encode()):
            raise ServingError(401, "missing or wrong bearer token")

    async def read_body(self, request: Any, align_at: int = 0) -> bytes | memoryview:
        """The request body (decompressed), checked against ``max_body_bytes``.

        With a Content-Length and no Content-Encoding the body is received straight into one writable
        buffer (no joins) placed so that byte ``align_at`` of the body (the start of the binary tensors
        after a JSON header of that length) is 64-byte aligned; arrays viewing it need no copy.
        """
        length = request.headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise ServingError(400, f"bad Content-Length {length!r}")
            if int(length) > self.max_body_bytes:
                raise ServingError(413, f"request body of {int(length)} bytes exceeds the limit of {self.max_body_bytes}")
        encoding = request.headers.get("content-encoding")
        if length is not None and encoding in (None, "", "identity"):
            return await _receive_into(request, int(length), align_at)
        chunks, n = [], 0
        async for chunk in _receive_chunks(request):
            n += len(chunk)
            if n > self.max_body_bytes:
                raise ServingError(413, f"request body exceeds the limit of {self.max_body_bytes} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        if encoding in ("gzip", "deflate"):
            d = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
            try:
                body = d.decompress(body, self.max_body_bytes + 1)
            except zlib.error as err:
                raise ServingError(400, f"cannot decompress the {encoding} body: {err}") from None
            if len(body) > self.max_body_bytes or d.unconsumed_tail:
                raise ServingError(413, f"decompressed body exceeds the limit of {self.max_body_bytes} bytes")
        elif encoding not in (None, "", "identity"):
            raise ServingError(400, f"unsupported Content-Encoding {encoding!r}")
        return body

    @staticmethod
    def check_ready(mv: ModelVersion) -> None:
        """ServingError(503) if ``mv`` failed to load."""
        if mv.state != "READY":
            raise ServingError(503, f"model {mv.name!r} version {mv.version} is unavailable: {mv.reason}")

    async def infer(self, mv: ModelVersion, body: bytes | memoryview, header_length: str | None, routed: bool = False,
                    after: list[Callable[[], Any]] | None = None) -> tuple[bytes, int | None, int]:
        """(response body, JSON header length or None, batch size) of an HTTP inference request.

        ``routed``: the request named no version (see :meth:`route`); ``after``: see :meth:`execute`.
        """
        self.check_ready(mv)
        req, blob = _json_header(body, header_length)
        arrays, batch = parse_inputs(req, blob, mv, self.shm)
        wanted = requested_outputs(req, mv, self.shm, batch)
        params = req.get("parameters") or {}
        params = params if isinstance(params, dict) else {}
        mv = self.route(mv, params, routed)
        outputs, extra, items = await self.execute(mv, arrays, batch, params, after)
        return (*encode_response(mv, req, outputs, wanted, extra, self.shm), items)

    def route(self, mv: ModelVersion, params: dict[str, Any], routed: bool) -> ModelVersion:
        """Sequence affinity across a promotion: a request without a version that continues a sequence
        live on another version of a streaming model goes to that version (a new sequence starts on the
        production version); requests naming a version are never redirected."""
        if not routed or mv.streaming is None or params.get("sequence_start"):
            return mv
        seq = params.get("sequence_id")
        if isinstance(seq, bool) or not isinstance(seq, (int, str)) or seq in (0, "") or seq in mv.sequences:
            return mv
        for other in self.models.get(mv.name, {}).values():
            if other is not mv and other.sequences is not None and other.state == "READY" and seq in other.sequences:
                return other
        return mv

    async def execute(self, mv: ModelVersion, arrays: dict[str, np.ndarray], batch: int, params: dict[str, Any],
                      after: list[Callable[[], Any]] | None = None,
                      ) -> tuple[dict[str, np.ndarray], dict[str, Any] | None, int]:
        """(outputs, response parameters or None, batch items) of validated inputs, whatever the protocol.

        Streaming models step their sequence (``params``: sequence_id/sequence_start/sequence_end); models
        with dynamic batching go through their :class:`Batcher`; others run directly on the executor.

        If ``mv`` is the production version of a model with a development label, the request is offered
        to the shadow monitor: the offer (cheap, never raising) is appended to ``after`` for the caller to
        run once the response is sent, or made at once when ``after`` is None.
        """
        if mv.streaming is not None:
            outputs, extra = await self._stream(mv, params, arrays)
            return outputs, extra, 1
        if self.dynamic_batching and mv.max_batch_size > 0 and mv.max_queue_delay_us >= 0:
            if mv.batcher is None:
                mv.batcher = Batcher(mv, self.executor, self.metrics)
            outputs = await mv.batcher.submit(arrays)
        else:
            outputs, seconds = await asyncio.get_running_loop().run_in_executor(self.executor, timed, mv.runner, arrays)
            self.metrics.execution((mv.name, mv.version), batch, seconds)
        self._mirror(mv, arrays, outputs, batch, after)
        return outputs, None, batch

    def _mirror(self, mv: ModelVersion, arrays: dict[str, np.ndarray], outputs: dict[str, np.ndarray], batch: int,
                after: list[Callable[[], Any]] | None) -> None:
        labels = self.labels.get(mv.name)
        if labels is None or labels.development is None or labels.production != mv.version or self.shadow.fraction <= 0:
            return
        dev = self.models.get(mv.name, {}).get(labels.development)
        if dev is None or dev.state != "READY" or dev.streaming is not None:
            return

        if any(is_shared(a) for a in arrays.values()):  # the client may reuse its region after the answer
            arrays = {k: np.array(a) for k, a in arrays.items()}

        def offer() -> None:
            self.shadow.offer(dev, mv.version, arrays, outputs, batch)

        if after is None:
            offer()
        else:
            after.append(offer)

    async def counted(self, mv: ModelVersion, t0: float, run: Callable[[], Awaitable[tuple[Any, int]]]) -> Any:
        """The result of ``run()`` (which returns (result, batch items)), counted in the metrics.

        ``t0`` is the request's ``time.perf_counter()`` start (seconds); a failure counts with 0 items.
        """
        key = (mv.name, mv.version)
        try:
            result, items = await run()
        except Exception:
            self.metrics.infer(key, False, time.perf_counter() - t0, 0)
            raise
        self.metrics.infer(key, True, time.perf_counter() - t0, items)
        return result

    async def _stream(self, mv: ModelVersion, params: dict[str, Any], arrays: dict[str, np.ndarray]):
        """(outputs, response parameters) of one request of a streaming entry (``mv.streaming``: gwinfer.json).

        Only the streaming input ``state_input`` (``update`` (1, channels, stride)) goes through the
        sequence's snapshotter; the window it returns is fed to the graph as ``graph_input`` together with
        the request's ``forwarded_inputs`` unchanged (e.g. a posterior's ``noise`` (1, N, D)). The graph
        outputs ``graph_outputs`` are returned under the config's non-``ready`` output names, in order,
        plus ``ready_output`` (1, 1) BOOL.
        """
        from gwinfer.serving.streaming import snapshotter

        seq = params.get("sequence_id")
        if isinstance(seq, bool) or not isinstance(seq, (int, str)) or seq in (0, ""):
            raise ServingError(400, f"streaming model {mv.name!r} needs a non-zero sequence_id parameter")
        if any(a.shape[0] != 1 for a in arrays.values()):
            raise ServingError(400, "streaming requests carry one sequence (batch 1)")
        spec = mv.streaming
        update = arrays[spec["state_input"]]
        forwarded = {k: arrays[k] for k in spec["forwarded_inputs"]}
        out_names = [o.name for o in mv.outputs if o.name != spec["ready_output"]]
        loop = asyncio.get_running_loop()

        def step(state):
            window, new = snapshotter(update[0], state)
            out = mv.runner({spec["graph_input"]: np.ascontiguousarray(window[None], dtype=np.float32), **forwarded})
            outputs = {name: out[g] for name, g in zip(out_names, spec["graph_outputs"])}
            outputs[spec["ready_output"]] = np.array([[new.ready]])
            return (outputs, new.filled), new

        try:
            outputs, filled = await loop.run_in_executor(self.executor, lambda: mv.sequences.step(
                seq, step, start=bool(params.get("sequence_start")), end=bool(params.get("sequence_end"))))
        except GwinferError as err:
            raise ServingError(400, str(err)) from None
        self.metrics.execution((mv.name, mv.version), 1)
        return outputs, {"sequence_id": seq, "samples": filled}


async def _run_all(fns: list[Callable[[], Any]]) -> None:
    """Call each of ``fns`` (in the event loop; starlette runs this after the response is sent)."""
    for fn in fns:
        fn()


def route_label(path: str) -> str:
    """The ``route`` label of ``gwinfer_http_requests_total`` for a request path."""
    return ("infer" if path.endswith("/infer") else "health" if path.startswith("/v2/health")
            else "metrics" if path == "/metrics" else "monitor" if path.endswith("/monitor")
            else "load" if path.startswith("/v2/repository/models/")
            else "shm" if path.startswith("/v2/systemsharedmemory") else "metadata" if path.startswith("/v2")
            else "other")


class CountingMiddleware:
    """Plain ASGI middleware: the bearer-token check (not on ``/v2/health/*``), the one-line 500 of an
    unexpected exception, and ``gwinfer_http_requests_total{route,code}``.

    Unlike starlette's ``BaseHTTPMiddleware`` it passes ``receive``/``send`` through untouched (no
    per-chunk tasks or response re-streaming), which matters for multi-megabyte request bodies.
    """

    def __init__(self, app: Any, state: App) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        status = [0]

        async def counted_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        async def answer(code: int, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            await counted_send({"type": "http.response.start", "status": code,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        try:
            if not path.startswith("/v2/health"):
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())
                           if k == b"authorization"}
                self.state.check_token(headers)
            await self.app(scope, receive, counted_send)
        except ServingError as exc:
            if not status[0]:
                await answer(exc.status, exc.message)
        except Exception as exc:  # noqa: BLE001 (the server keeps serving)
            log.exception("internal error on %s", path)
            if not status[0]:
                await answer(500, f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        self.state.metrics.http_request(route_label(path), status[0] or 500)


def create_app(state: App) -> Any:
    """The FastAPI application serving ``state``."""
    api = FastAPI(title="gwinfer serving (KServe v2)", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @api.exception_handler(ServingError)
    async def _serving_error(request: Request, exc: ServingError):
        return error(exc.status, exc.message)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    api.add_middleware(CountingMiddleware, state=state)

    @api.get("/v2/health/live")
    async def live():
        return Response(status_code=200)

    @api.get("/v2/health/ready")
    async def ready():
        return Response(status_code=200 if state.ready else 503)

    @api.get("/v2")
    async def server_metadata():
        return JSONResponse(state.server_metadata())

    @api.post("/v2/repository/index")
    async def repository_index(request: Request):
        body = bytes(await state.read_body(request))
        ready_only = False
        if body.strip():
            try:
                ready_only = bool(json.loads(body).get("ready", False))
            except (ValueError, AttributeError):
                raise ServingError(400, "the repository index request must be a JSON object") from None
        return JSONResponse(state.repository_index(ready_only))

    @api.post("/v2/repository/models/{name}/load")
    async def load_model(request: Request, name: str):
        body = bytes(await state.read_body(request))
        params = None
        if body.strip():
            try:
                req = json.loads(body)
                params = req.get("parameters")
            except (ValueError, AttributeError):
                raise ServingError(400, "the load request must be a JSON object") from None
        return JSONResponse(await state.load_model(name, params))

    async def shm_register(request: Request, name: str):
        body = bytes(await state.read_body(request))
        try:
            req = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            req = None
        if not isinstance(req, dict):
            raise ServingError(400, 'the register request must be a JSON object {"key", "offset", "byte_size"}')
        try:
            state.shm.register(name, req.get("key"), req.get("offset", 0), req.get("byte_size"))
        except SharedMemoryError as err:
            raise ServingError(400, str(err)) from None
        return Response(status_code=200)

    async def shm_unregister(name: str = ""):
        state.shm.unregister(name)
        return Response(status_code=200)

    async def shm_status(name: str = ""):
        try:
            return JSONResponse(state.shm.status(name))
        except SharedMemoryError as err:
            raise ServingError(400, str(err)) from None

    api.add_api_route("/v2/systemsharedmemory/region/{name}/register", shm_register, methods=["POST"])
    api.add_api_route("/v2/systemsharedmemory/region/{name}/unregister", shm_unregister, methods=["POST"])
    api.add_api_route("/v2/systemsharedmemory/unregister", shm_unregister, methods=["POST"])
    api.add_api_route("/v2/systemsharedmemory/region/{name}/status", shm_status, methods=["GET"])
    api.add_api_route("/v2/systemsharedmemory/status", shm_status, methods=["GET"])

    @api.get("/v2/models/{name}/monitor")
    async def monitor(name: str):
        return JSONResponse(state.monitor(name))

    @api.get("/metrics")
    async def metrics():
        return Response(state.metrics.render(state.live_sequences()) + state.shadow.render(),
                        media_type="text/plain; version=0.0.4")

    def metadata_routes(prefix: str, with_version: bool) -> None:
        async def meta(name: str, version: str | None = None):
            mv = state.model(name, version)
            return JSONResponse(state.model_metadata(mv, version))

        async def model_ready(name: str, version: str | None = None):
            mv = state.model(name, version)
            return Response(status_code=200 if mv.state == "READY" else 400)

        async def config(name: str, version: str | None = None):
            return JSONResponse(state.model(name, version).config)

        async def infer(request: Request, name: str, version: str | None = None):
            t0 = time.perf_counter()
            mv = state.model(name, version)
            after: list[Callable[[], Any]] = []  # shadow offers, made once the response is sent

            async def run() -> tuple[tuple[bytes, int | None], int]:
                head_length = request.headers.get("inference-header-content-length")
                body = await state.read_body(request, align_at=header_length_of(head_length))
                payload, head_len, items = await state.infer(mv, body, head_length, routed=not version, after=after)
                return (payload, head_len), items

            try:
                payload, head_len = await state.counted(mv, t0, run)
            except GwinferError as err:
                raise ServingError(400, str(err)) from None
            background = BackgroundTask(_run_all, after) if after else None
            if head_len is None:
                return Response(payload, media_type="application/json", background=background)
            return Response(payload, media_type="application/octet-stream", background=background,
                            headers={"Inference-Header-Content-Length": str(head_len)})

        api.add_api_route(prefix, meta, methods=["GET"])
        api.add_api_route(prefix + "/ready", model_ready, methods=["GET"])
        api.add_api_route(prefix + "/config", config, methods=["GET"])
        api.add_api_route(prefix + "/infer", infer, methods=["POST"])

    metadata_routes("/v2/models/{name}/versions/{version}", True)
    metadata_routes("/v2/models/{name}", False)
    return api


# --- running ---------------------------------------------------------------------------------------------
def _check_host(host: str, token: str | None) -> None:
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        log.warning("serving on %s without --token: anyone who can reach this address can use the models", host)


def _uvicorn_server(config: Any) -> Any:
    """A uvicorn server whose shutdown first stops the gRPC server in ``.grpc`` (if any).

    Stopping gRPC inside uvicorn's shutdown, rather than after ``serve()`` returns, matters in the
    foreground: uvicorn re-raises a captured SIGTERM/SIGINT as soon as ``serve()`` ends.
    """
    import uvicorn

    class _HttpServer(uvicorn.Server):
        grpc: Any = None
        grpc_port: int | None = None

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await _stop_grpc(self)
            await super().shutdown(sockets=sockets)

    return _HttpServer(config)


async def _stop_grpc(http: Any) -> None:
    from gwinfer.serving.grpc_server import STOP_GRACE_S

    grpc_server, http.grpc = http.grpc, None
    if grpc_server is not None:
        await grpc_server.stop(STOP_GRACE_S)


async def _serve_both(http: Any, state: App, host: str, grpc_port: int | None,
                      sockets: list[socket.socket] | None = None) -> None:
    """Serve HTTP (uvicorn server ``http``) and, unless ``grpc_port`` is None, gRPC in this event loop.

    gRPC starts first (so a port in use fails before HTTP listens); its bound port is ``http.grpc_port``.
    """
    if grpc_port is not None:
        from gwinfer.serving.grpc_server import start_grpc

        http.grpc, http.grpc_port = await start_grpc(state, host, grpc_port)
    try:
        await http.serve(sockets=sockets)
    finally:
        await _stop_grpc(http)


def _run_loop(coro: Any, config: Any) -> None:
    """Run ``coro`` to completion in a new event loop of uvicorn's choice (``config.loop``), or asyncio's
    default loop with an older uvicorn (no ``get_loop_factory``) or Python 3.10 (no ``asyncio.Runner``)."""
    factory = config.get_loop_factory() if hasattr(config, "get_loop_factory") else None
    if factory is None or not hasattr(asyncio, "Runner"):
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)


class Server:
    """A server in a background thread, for tests and notebooks::

        with Server("repo", grpc_port=0) as s:         # free ports on 127.0.0.1
            client = tritonclient.http.InferenceServerClient(s.url)
            gclient = tritonclient.grpc.InferenceServerClient(s.grpc_url)

    ``grpc_port``: None (default) serves HTTP only; 0 picks a free port; HTTP and gRPC share one event
    loop and one :class:`App`. ``http``: uvicorn's HTTP parser, ``"auto"`` (httptools when installed, else
    pure-Python h11), ``"httptools"`` or ``"h11"``; ``loop``: ``"auto"`` (uvloop when installed, else
    asyncio), ``"uvloop"`` or ``"asyncio"`` (``pip install gwinfer[serving]`` brings httptools and uvloop).
    """

    def __init__(self, repo: str | Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 max_body_bytes: int = DEFAULT_MAX_BODY, threads: int = 1, max_sequences: int = 1024,
                 dynamic_batching: bool = True, grpc_port: int | None = None, shadow_fraction: float = 1.0,
                 http: str = "auto", loop: str = "auto") -> None:
        _check_host(host, token)
        self.http, self.loop = http, loop
        self.state = App(repo, token=token, max_body_bytes=max_body_bytes, threads=threads,
                         max_sequences=max_sequences, dynamic_batching=dynamic_batching,
                         shadow_fraction=shadow_fraction)
        self.host, self.port, self.grpc_port = host, port, grpc_port
        self._server = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """``host:port`` (tritonclient's url form, no scheme)."""
        return f"{self.host}:{self.port}"

    @property
    def grpc_url(self) -> str:
        """``host:port`` of the gRPC endpoint (``tritonclient.grpc``'s url form)."""
        if self.grpc_port is None:
            raise GwinferError("this server has no gRPC endpoint; create it with Server(..., grpc_port=0)")
        return f"[{self.host}]:{self.grpc_port}" if ":" in self.host else f"{self.host}:{self.grpc_port}"

    def _run(self, config: Any, sock: socket.socket) -> None:
        try:
            _run_loop(_serve_both(self._server, self.state, self.host, self.grpc_port, [sock]), config)
        except BaseException as err:  # noqa: BLE001 (reported by start())
            self._error = err

    def start(self, timeout: float = 20.0) -> Server:
        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as err:
            sock.close()
            raise GwinferError(f"cannot listen on {self.host}:{self.port}: {err.strerror}") from None
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(self.state), log_level="warning", access_log=False, lifespan="off",
                                timeout_keep_alive=30, http=self.http, loop=self.loop)
        self._server = _uvicorn_server(config)
        self._thread = threading.Thread(target=self._run, args=(config, sock), daemon=True,
                                        name=f"gwinfer-serve-{self.port}")
        self._thread.start()
        t0 = time.monotonic()
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() - t0 > timeout:
                error = self._error
                self.stop()
                if isinstance(error, GwinferError):
                    raise error
                raise GwinferError(f"server on {self.url} did not start within {timeout:g} s"
                                   + (f": {type(error).__name__}: {error}" if error else ""))
            time.sleep(0.01)
        if self.grpc_port is not None:
            self.grpc_port = self._server.grpc_port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self.state.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(repo: str | Path, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          max_body_bytes: int = DEFAULT_MAX_BODY, threads: int = 1, max_sequences: int = 1024,
          grpc_port: int | None = None, shadow_fraction: float = 1.0, http: str = "auto", loop: str = "auto") -> None:
    """Serve ``repo`` in the foreground until interrupted (``gwinfer serve``).

    HTTP on host:port; with ``grpc_port`` (not None) also the KServe v2 gRPC protocol on host:grpc_port,
    in the same process and event loop, sharing the models, batcher, sequences and metrics.
    ``shadow_fraction``: the share of production requests mirrored to a labelled development version
    (0 disables shadowing; see :mod:`gwinfer.serving.shadow`). ``http``/``loop``: uvicorn's HTTP parser
    and event loop (see :class:`Server`).
    """
    import uvicorn

    _check_host(host, token)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    state = App(repo, token=token, max_body_bytes=max_body_bytes, threads=threads, max_sequences=max_sequences,
                shadow_fraction=shadow_fraction)
    for entry in state.repository_index():
        log.info("model %s version %s: %s%s%s", entry["name"], entry["version"], entry["state"],
                 f" ({entry['label']})" if "label" in entry else "", f" {entry['reason']}" if "reason" in entry else "")
    log.info("serving %s on http://%s:%d (KServe v2)", repo, host, port)
    config = uvicorn.Config(create_app(state), host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", http=http, loop=loop)
    try:
        _run_loop(_serve_both(_uvicorn_server(config), state, host, grpc_port), config)
    except KeyboardInterrupt:
        pass
