"""A thin client over ``tritonclient.http`` that learns a model's tensors from the server's metadata.

    model = ServedModel("127.0.0.1:8000", "rb-small")
    theta = model(x)                       # x float32 (batch, 2, T) -> (batch, 3)
    out = model.infer({"waveform": x})     # all outputs by name

Nothing is hand-written: input/output names, shapes and datatypes come from
``GET /v2/models/<name>``. Works against the gwinfer server and a real Triton server alike.

Exported posterior estimators (:mod:`gwinfer.serving.posterior_export`)::

    cols = sample_posterior("127.0.0.1:8000", "gw5d-iaf", strain, n=10_000, seed=1)
    cols["mass_1"]                          # (10000,) physical samples; one key per parameter

The noise is drawn here (``numpy.random.default_rng(seed)``), so the same seed gives the same samples
from any server; the column names come from the model configuration's ``parameter_names`` parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError

MAX_REQUEST_VALUES = 1 << 22  # noise values per request (16 MiB of FP32): larger draws are split


class ServedModel:
    """A model served over KServe v2 HTTP, called like a function on numpy arrays (binary tensors)."""

    def __init__(self, url: str, name: str, version: str = "", token: str | None = None,
                 binary: bool = True, timeout: float = 60.0) -> None:
        import tritonclient.http as httpclient
        from tritonclient.utils import InferenceServerException, triton_to_np_dtype

        self._http, self._exc, self._np_dtype = httpclient, InferenceServerException, triton_to_np_dtype
        url = url.split("://", 1)[-1].rstrip("/")
        self.url, self.name, self.version, self.binary = url, name, str(version or ""), binary
        self.headers = {"Authorization": f"Bearer {token}"} if token else None
        self.client = httpclient.InferenceServerClient(url, connection_timeout=timeout, network_timeout=timeout)
        try:
            meta = self.client.get_model_metadata(name, self.version, headers=self.headers)
        except InferenceServerException as err:
            raise GwinferError(f"cannot read metadata of model {name!r} from {url}: {err.message()}") from None
        except Exception as err:  # noqa: BLE001 (connection errors come in many types)
            raise GwinferError(f"cannot reach {url}: {type(err).__name__}: {err}") from None
        self.metadata = meta
        self._config: dict[str, Any] | None = None
        self.inputs = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in meta["inputs"]}
        self.outputs = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in meta["outputs"]}

    def close(self) -> None:
        self.client.close()

    def model_config(self) -> dict[str, Any]:
        """The model configuration as the server reports it (``GET /v2/models/<name>/config``; read once)."""
        if self._config is None:
            try:
                self._config = self.client.get_model_config(self.name, self.version, headers=self.headers)
            except self._exc as err:
                raise GwinferError(f"cannot read the configuration of model {self.name!r}: {err.message()}") from None
        return self._config

    @property
    def parameter_names(self) -> list[str] | None:
        """The ``parameter_names`` model parameter (columns of a posterior's samples), or None."""
        return _names(self.model_config())

    def __enter__(self) -> ServedModel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _input(self, name: str, value: Any) -> Any:
        datatype, shape = self.inputs[name]
        arr = np.ascontiguousarray(value, dtype=self._np_dtype(datatype))
        if arr.ndim != len(shape) or any(s != -1 and s != a for s, a in zip(shape, arr.shape)):
            raise GwinferError(f"input {name!r} has shape {arr.shape}; the server expects {shape} (-1: any)")
        t = self._http.InferInput(name, list(arr.shape), datatype)
        t.set_data_from_numpy(arr, binary_data=self.binary)
        return t

    def infer(self, inputs: dict[str, Any], *, sequence_id: int | str = 0, sequence_start: bool = False,
              sequence_end: bool = False) -> dict[str, np.ndarray]:
        """All outputs {name: array} for inputs {name: array} (names as in the server's metadata)."""
        unknown, missing = set(inputs) - set(self.inputs), set(self.inputs) - set(inputs)
        if unknown or missing:
            raise GwinferError(f"model {self.name!r} takes inputs {sorted(self.inputs)}; got {sorted(inputs)}")
        tensors = [self._input(n, inputs[n]) for n in self.inputs]
        outs = [self._http.InferRequestedOutput(n, binary_data=self.binary) for n in self.outputs]
        try:
            res = self.client.infer(self.name, tensors, model_version=self.version, outputs=outs,
                                    headers=self.headers, sequence_id=sequence_id,
                                    sequence_start=sequence_start, sequence_end=sequence_end)
        except self._exc as err:
            raise GwinferError(f"inference on {self.name!r} failed: {err.message()}") from None
        return {n: res.as_numpy(n) for n in self.outputs}

    def __call__(self, x: Any, **sequence: Any) -> np.ndarray:
        """The first output of the model on its single input ``x``."""
        if len(self.inputs) != 1:
            raise GwinferError(f"model {self.name!r} has {len(self.inputs)} inputs; use infer({{name: array}})")
        out = self.infer({next(iter(self.inputs)): x}, **sequence)
        return out[next(iter(self.outputs))]


def sample_posterior(url: str | ServedModel, name: str, strain: Any, n: int, seed: int | None = None, *,
                     version: str = "", token: str | None = None, return_log_prob: bool = False,
                     max_request_values: int = MAX_REQUEST_VALUES) -> Any:
    """``n`` posterior samples from an exported posterior model, as ``{parameter name: array}``.

    ``url``: the server (``"127.0.0.1:8000"``; a new connection, metadata and config requests each call)
    or an open :class:`ServedModel` of the model (reused: one inference request per call; ``name``,
    ``version`` and ``token`` are then its own).

    ``strain``: one event (the model's input shape, e.g. (n_det, n_samples)) -> arrays of shape (n,);
    or a batch (B, n_det, n_samples) -> arrays (B, n). The standard-normal noise (B, n, D) is drawn with
    ``numpy.random.default_rng(seed).standard_normal`` (float64, then cast to float32) before any
    request, so the result does not depend on how the work is split: requests carry at most the
    model's ``max_batch_size`` events and ``max_request_values`` noise values each (binary tensors over
    HTTP). ``return_log_prob=True`` returns ``(columns, log_prob)`` with log_prob (n,) or (B, n).
    Column names come from the model configuration's ``parameter_names`` (theta_0, ... if absent).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GwinferError(f"number of samples n = {n!r} must be an integer >= 1")
    own = not isinstance(url, ServedModel)
    model = ServedModel(url, name, version=version, token=token) if own else url
    try:
        if "noise" not in model.inputs or set(model.outputs) != {"samples", "log_prob"} or len(model.inputs) != 2:
            raise GwinferError(f"model {model.name!r} is not an exported posterior (inputs {sorted(model.inputs)}, "
                               f"outputs {sorted(model.outputs)})")
        x_name = next(k for k in model.inputs if k != "noise")
        x_shape = model.inputs[x_name][1][1:]
        d = model.inputs["noise"][1][-1]
        x = np.ascontiguousarray(strain, dtype=np.float32)
        single = list(x.shape) == x_shape
        if single:
            x = x[None]
        elif x.ndim != len(x_shape) + 1 or list(x.shape[1:]) != x_shape:
            raise GwinferError(f"strain has shape {x.shape}; model {model.name!r} takes {x_shape} or (batch, {x_shape})")
        cfg = model.model_config()
        names = _names(cfg) or [f"theta_{i}" for i in range(d)]
        if len(names) != d:
            raise GwinferError(f"model {model.name!r} has {len(names)} parameter_names for {d} parameters")
        b = x.shape[0]
        noise = np.random.default_rng(seed).standard_normal((b, n, d)).astype(np.float32)
        events = max(1, int(cfg.get("max_batch_size", 1) or 1))
        samples = np.empty((b, n, d), dtype=np.float32)
        log_prob = np.empty((b, n), dtype=np.float32)
        for e0 in range(0, b, events):
            e1 = min(b, e0 + events)
            step = max(1, max_request_values // ((e1 - e0) * d))
            for s0 in range(0, n, step):
                s1 = min(n, s0 + step)
                out = model.infer({x_name: x[e0:e1], "noise": noise[e0:e1, s0:s1]})
                samples[e0:e1, s0:s1], log_prob[e0:e1, s0:s1] = out["samples"], out["log_prob"]
    finally:
        if own:
            model.close()
    if single:
        samples, log_prob = samples[0], log_prob[0]
    columns = {k: samples[..., i] for i, k in enumerate(names)}
    return (columns, log_prob) if return_log_prob else columns


def _names(cfg: dict[str, Any]) -> list[str] | None:
    from gwinfer.serving.repository import config_parameters

    names = config_parameters(cfg).get("parameter_names")
    return names.split(",") if names else None


# --- async client and the strain replay pipeline -------------------------------------------------------
class AsyncServedModel:
    """The asyncio counterpart of :class:`ServedModel` on ``tritonclient.http.aio`` (binary tensors).

    ``model = await AsyncServedModel.open(url, name)`` reads the tensors (names, datatypes, shapes) from
    the server's metadata and the configuration once; ``await model.infer({name: array}, sequence_id=,
    sequence_start=, sequence_end=)`` returns every output; ``await model.close()`` (or ``async with``).
    """

    def __init__(self, url: str, name: str, version: str = "", token: str | None = None,
                 timeout: float = 60.0) -> None:
        import tritonclient.http.aio as aioclient
        from tritonclient.utils import InferenceServerException, triton_to_np_dtype

        self._http, self._exc, self._np_dtype = aioclient, InferenceServerException, triton_to_np_dtype
        self.url = url.split("://", 1)[-1].rstrip("/")
        self.name, self.version = name, str(version or "")
        self.headers = {"Authorization": f"Bearer {token}"} if token else None
        self.client = aioclient.InferenceServerClient(self.url, conn_timeout=timeout)
        self.metadata: dict[str, Any] = {}
        self.config: dict[str, Any] = {}
        self.inputs: dict[str, tuple[str, list[int]]] = {}
        self.outputs: dict[str, tuple[str, list[int]]] = {}

    @classmethod
    async def open(cls, url: str, name: str, version: str = "", token: str | None = None,
                   timeout: float = 60.0) -> AsyncServedModel:
        """Connect and read the model's metadata and configuration (one-line GwinferError on failure)."""
        self = cls(url, name, version, token, timeout)
        try:
            self.metadata = await self.client.get_model_metadata(name, self.version, headers=self.headers)
            self.config = await self.client.get_model_config(name, self.version, headers=self.headers)
        except self._exc as err:
            await self.close()
            raise GwinferError(f"cannot read metadata of model {name!r} from {self.url}: {err.message()}") from None
        except Exception as err:  # noqa: BLE001 (connection errors come in many types)
            await self.close()
            raise GwinferError(f"cannot reach {self.url}: {type(err).__name__}: {err}") from None
        self.inputs = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in self.metadata["inputs"]}
        self.outputs = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in self.metadata["outputs"]}
        return self

    @property
    def parameters(self) -> dict[str, str]:
        """The configuration's free-form ``parameters`` as ``{key: string}``."""
        from gwinfer.serving.repository import config_parameters

        return config_parameters(self.config)

    async def close(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> AsyncServedModel:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _input(self, name: str, value: Any) -> Any:
        datatype, shape = self.inputs[name]
        arr = np.ascontiguousarray(value, dtype=self._np_dtype(datatype))
        if arr.ndim != len(shape) or any(s != -1 and s != a for s, a in zip(shape, arr.shape)):
            raise GwinferError(f"input {name!r} has shape {arr.shape}; the server expects {shape} (-1: any)")
        t = self._http.InferInput(name, list(arr.shape), datatype)
        t.set_data_from_numpy(arr, binary_data=True)
        return t

    async def infer(self, inputs: dict[str, Any], *, sequence_id: int | str = 0, sequence_start: bool = False,
                    sequence_end: bool = False) -> dict[str, np.ndarray]:
        """All outputs {name: array} for inputs {name: array} (names as in the server's metadata)."""
        unknown, missing = set(inputs) - set(self.inputs), set(self.inputs) - set(inputs)
        if unknown or missing:
            raise GwinferError(f"model {self.name!r} takes inputs {sorted(self.inputs)}; got {sorted(inputs)}")
        tensors = [self._input(n, inputs[n]) for n in self.inputs]
        outs = [self._http.InferRequestedOutput(n, binary_data=True) for n in self.outputs]
        try:
            res = await self.client.infer(self.name, tensors, model_version=self.version, outputs=outs,
                                          headers=self.headers, sequence_id=sequence_id,
                                          sequence_start=sequence_start, sequence_end=sequence_end)
        except self._exc as err:
            raise GwinferError(f"inference on {self.name!r} failed: {err.message()}") from None
        return {n: res.as_numpy(n) for n in self.outputs}


@dataclass
class StreamSpec:
    """What a streaming posterior entry takes, read from the server (config ``parameters`` and metadata)."""

    detectors: list[str]
    sample_rate: float  # Hz
    kernel: int  # samples per window
    stride: int  # new samples per request
    f_min: float  # whitening band, Hz
    f_max: float | None
    parameter_names: list[str]
    theta_dim: int

    @classmethod
    def from_model(cls, model: AsyncServedModel) -> StreamSpec:
        params = model.parameters
        need = [k for k in ("stream_kernel", "stream_stride", "detectors", "sample_rate", "f_min") if k not in params]
        if need or set(model.inputs) != {"update", "noise"}:
            raise GwinferError(f"model {model.name!r} is not a streaming posterior entry with its data settings "
                               f"(inputs {sorted(model.inputs)}, missing config parameters {need}); export it with "
                               f"gwinfer export --stream-stride from an estimator trained by gwinfer")
        d = model.inputs["noise"][1][-1]
        names = (params.get("parameter_names") or "").split(",") if params.get("parameter_names") else [
            f"theta_{i}" for i in range(d)]
        f_max = params.get("f_max")
        return cls(params["detectors"].split(","), float(params["sample_rate"]), int(params["stream_kernel"]),
                   int(params["stream_stride"]), float(params["f_min"]), float(f_max) if f_max else None, names, d)


def prepare_strain(files: dict[str, str | Path], spec: StreamSpec, psd_gps: float | None = None,
                   psd_seglen: float = 1.0) -> tuple[np.ndarray, float, dict[str, Any]]:
    """(whitened float32 strain (n_det, n) in the model's detector order, GPS time of sample 0 (s), info).

    Each file is read and resampled to the model's rate as ``gwinfer analyze`` does
    (:func:`gwinfer.evaluation.analyze._load_series`); the PSD is its median-Welch off-source estimate
    (:func:`~gwinfer.evaluation.analyze.event_psd`, ``psd_seglen`` s segments, the longer side of
    ``psd_gps`` +- 2 s) when ``psd_gps`` is given, else the median-Welch PSD of the whole file; the WHOLE
    file is then whitened once (:func:`gwinfer.detectors.whitening.whiten` over [f_min, f_max], Tukey taper
    of 1 s at each end), so every window is cut from one whitened stretch rather than whitened with its own
    context as ``gwinfer analyze`` does (windows within ~1 s of the file ends see the taper).
    """
    from gwinfer.detectors.psd import welch_psd
    from gwinfer.detectors.strain import span
    from gwinfer.detectors.whitening import whiten
    from gwinfer.evaluation.analyze import _load_series, event_psd

    if sorted(files) != sorted(spec.detectors):
        raise GwinferError(f"the model takes strain of {spec.detectors}; got files for {sorted(files)}")
    fs = spec.sample_rate
    rows, spans, psds = [], {}, {}
    for det in spec.detectors:
        ts = _load_series(files[det], fs)
        spans[det] = span(ts)
        if psd_gps is not None:
            psd = event_psd(files[det], psd_gps, fs, psd_seglen, series=ts)
        else:
            psd = welch_psd(ts.value, fs, seglen=psd_seglen, average="median")
        duration = len(ts) / fs
        rows.append(whiten(ts.value, psd, fs, spec.f_min, spec.f_max, alpha=min(1.0, 2.0 / duration)))
        psds[det] = psd
    starts = {d: s[0] for d, s in spans.items()}
    if len({round(s[0] * fs) for s in spans.values()}) != 1 or len({r.size for r in rows}) != 1:
        raise GwinferError(f"the strain files cover different GPS spans: {spans}")
    return np.stack(rows).astype(np.float32), float(starts[spec.detectors[0]]), {"spans": spans, "psds": psds}


def chunk_noise(seed: int | None, chunk: int, n: int, d: int) -> np.ndarray:
    """float32 (1, n, d) standard-normal noise of replay chunk ``chunk``: ``default_rng([seed, chunk])``, so
    any chunk's draws can be reproduced alone (seed None: fresh entropy)."""
    rng = np.random.default_rng(None if seed is None else [int(seed), int(chunk)])
    return rng.standard_normal((1, n, d)).astype(np.float32)


def summarize(samples: np.ndarray, names: list[str], window_start: float) -> dict[str, float]:
    """Median and 5 / 95 % quantiles per parameter of (n, D) samples (``geocent_time`` shifted by the
    window's GPS start, s, as ``gwinfer analyze`` reports it)."""
    out: dict[str, float] = {}
    for i, name in enumerate(names):
        col = samples[:, i].astype(np.float64) + (window_start if name == "geocent_time" else 0.0)
        q05, q50, q95 = np.quantile(col, [0.05, 0.5, 0.95])
        out.update({f"{name}_median": float(q50), f"{name}_q05": float(q05), f"{name}_q95": float(q95)})
    return out


async def replay_strain(url: str, name: str, files: dict[str, str | Path], *, chunk: float = 1.0,
                        n_samples: int = 1000, seed: int | None = 0, start: float | None = None,
                        psd_gps: float | None = None, token: str | None = None, sequence_id: int | None = None,
                        keep_samples: bool = False) -> dict[str, Any]:
    """Replay GWOSC strain files through a streaming posterior entry in ``chunk``-second pieces.

    ``files``: {detector: GWOSC HDF5}, exactly the model's detectors. The strain is prepared once
    (:func:`prepare_strain`), then sent from GPS ``start`` (default: the file start) in pieces of ``chunk``
    s, which must be the entry's stride; the first request carries ``sequence_start``, the last
    ``sequence_end``. Each request carries ``n_samples`` noise draws (:func:`chunk_noise`). Returns
    ``{"rows": [per chunk: chunk, gps_end, ready, <param>_median/_q05/_q95 ...], "spec", "strain",
    "t0", "samples" (per chunk, with keep_samples)}``; the quantiles of chunks before the window is full
    (``ready`` False) are of a partly zero-padded window.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise GwinferError(f"n_samples = {n_samples!r} must be an integer >= 1")
    async with await AsyncServedModel.open(url, name, token=token) as model:
        spec = StreamSpec.from_model(model)
        step = chunk * spec.sample_rate
        if abs(step - spec.stride) > 1e-6:
            raise GwinferError(f"chunk {chunk:g} s = {step:g} samples at {spec.sample_rate:g} Hz does not match the "
                               f"stride of {name!r}, {spec.stride} samples ({spec.stride / spec.sample_rate:g} s)")
        strain, t0, info = prepare_strain(files, spec, psd_gps)
        i0 = 0 if start is None else int(round((start - t0) * spec.sample_rate))
        n_chunks = (strain.shape[1] - i0) // spec.stride
        if not 0 <= i0 or n_chunks < 1:
            raise GwinferError(f"start = {start} GPS s leaves no {chunk:g} s chunk in the data "
                               f"([{t0:.3f}, {t0 + strain.shape[1] / spec.sample_rate:.3f}])")
        seq = sequence_id if sequence_id is not None else int(np.random.default_rng().integers(1, 2**62))
        rows, kept = [], []
        for k in range(n_chunks):
            a = i0 + k * spec.stride
            z = chunk_noise(seed, k, n_samples, spec.theta_dim)
            out = await model.infer({"update": strain[None, :, a:a + spec.stride], "noise": z}, sequence_id=seq,
                                    sequence_start=k == 0, sequence_end=k == n_chunks - 1)
            gps_end = t0 + (a + spec.stride) / spec.sample_rate
            samples = out["samples"][0]
            rows.append({"chunk": k, "gps_end": gps_end, "ready": bool(out["ready"].reshape(-1)[0]),
                         **summarize(samples, spec.parameter_names, gps_end - spec.kernel / spec.sample_rate)})
            if keep_samples:
                kept.append(samples)
    return {"rows": rows, "spec": spec, "strain": strain, "t0": t0, "start_index": i0, "psds": info["psds"],
            "samples": kept}


def write_stream_table(rows: list[dict[str, Any]], out: str | Path, record: dict[str, Any]) -> Path:
    """Write the per-chunk rows atomically: ``.csv`` (a ``# {provenance JSON}`` first line, then a header
    row) or ``.h5`` / ``.hdf5`` (one dataset per column, the provenance JSON in the ``provenance`` attribute)."""
    import json

    from gwinfer.provenance import atomic_path

    p = Path(out)
    if not rows:
        raise GwinferError("no chunks to write")
    cols = list(rows[0])
    if p.suffix.lower() == ".csv":
        with atomic_path(p) as tmp, open(tmp, "w") as f:
            f.write("# " + json.dumps(record) + "\n")
            f.write(",".join(cols) + "\n")
            for r in rows:
                f.write(",".join(str(int(r[c])) if isinstance(r[c], bool) else repr(r[c]) for c in cols) + "\n")
    elif p.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        with atomic_path(p) as tmp, h5py.File(tmp, "w") as f:
            for c in cols:
                f.create_dataset(c, data=np.asarray([r[c] for r in rows]))
            f.attrs["provenance"] = json.dumps(record)
            f.attrs["columns"] = ",".join(cols)
    else:
        raise GwinferError(f"output {p}: use a .csv or .h5 file")
    return p


def stream_strain(url: str, name: str, files: dict[str, str | Path], out: str | Path, *, chunk: float = 1.0,
                  n_samples: int = 1000, seed: int | None = 0, start: float | None = None,
                  psd_gps: float | None = None, token: str | None = None) -> dict[str, Any]:
    """:func:`replay_strain` then :func:`write_stream_table` with provenance (``gwinfer stream``).

    The record holds the call's settings, the server's model name/version/config parameters, the input
    files' sha256 (``parents``), gwinfer and library versions. Returns replay_strain's dict plus ``out``.
    """
    import asyncio

    from gwinfer.provenance import provenance

    res = asyncio.run(replay_strain(url, name, files, chunk=chunk, n_samples=n_samples, seed=seed, start=start,
                                    psd_gps=psd_gps, token=token))
    spec = res["spec"]
    record = provenance(
        "stream-posterior",
        {"url": url, "model": name, "chunk_s": chunk, "n_samples": n_samples, "seed": seed, "start": start,
         "psd_gps": psd_gps, "files": {d: str(p) for d, p in files.items()}},
        parents=[files[d] for d in spec.detectors],
        model={"detectors": spec.detectors, "sample_rate": spec.sample_rate, "kernel": spec.kernel,
               "stride": spec.stride, "f_min": spec.f_min, "f_max": spec.f_max,
               "parameter_names": spec.parameter_names},
        whitening="whole file once on the client (median-Welch PSD; see gwinfer.serving.client.prepare_strain)",
        columns="gps_end: GPS s of the window end; <param>_median/_q05/_q95 over the request's samples; "
                "geocent_time in GPS s",
    )
    res["out"] = write_stream_table(res["rows"], out, record)
    return res
