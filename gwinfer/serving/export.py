"""Export a gwinfer point or posterior estimator into a Triton-style model repository (ONNX or TorchScript).

``export_model(model_path, repo)`` writes ``REPO/<name>/<version>/model.onnx`` (or ``model.pt``), the
``REPO/<name>/config.pbtxt`` generated from the in-memory model, and ``REPO/<name>/<version>/gwinfer.json``
(source model sha256, gwinfer version, time grid, approximant, and the max abs difference between the
exported graph and the torch model on seeded waveform-like inputs, which must be below
``max(1e-4 + 1e-4 max|ref|, 2 x the torch model's own float32 error)`` -- see :func:`compare`).

Tensor names: ONNX ``waveform`` (batch, 2, T) -> ``theta`` (batch, 3). TorchScript follows Triton's
``<name>__<index>`` convention of the pytorch_libtorch backend: ``waveform__0`` -> ``theta__0``.

Posterior estimators (``gwinfer-posterior`` files) are exported as one sampling graph instead:
``strain`` (batch, n_det, n_samples) and ``noise`` (batch, N, D) -> ``samples`` (batch, N, D) and
``log_prob`` (batch, N), the parameter names in the config's ``parameters { key: "parameter_names" }``;
see :mod:`gwinfer.serving.posterior_export` (what is exported and why, and its check against torch).

Triton backend: ``backend="native"`` (default) writes ``platform: "onnxruntime_onnx"`` /
``"pytorch_libtorch"`` (Triton's C++ backends, present in NVIDIA's containers). ``backend="python"`` (ONNX
only) writes ``backend: "python"`` and a ``<version>/model.py`` (:mod:`gwinfer.serving.triton_python_model`,
copied verbatim) that runs ``model.onnx`` with onnxruntime inside Triton's Python backend -- for Triton
builds that only have that backend, like the one bundled with ``nvidia-pytriton``.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gwinfer.errors import GwinferError
from gwinfer.provenance import CORE_LIBRARIES, atomic_path, provenance, sha256_file, write_json
from gwinfer.serving.repository import (
    FORMAT_PLATFORMS,
    PLATFORM_FILES,
    TensorSpec,
    check_name,
    config_parameters,
    config_specs,
    format_config,
    list_versions,
    make_config,
    read_config,
)

log = logging.getLogger(__name__)

NAMES = {"onnx": ("waveform", "theta"), "torchscript": ("waveform__0", "theta__0")}
BACKENDS = ("native", "python")
PYTHON_MODEL = Path(__file__).with_name("triton_python_model.py")  # becomes <version>/model.py
STREAM_MODEL = Path(__file__).with_name("triton_stream_model.py")  # <version>/model.py of python streaming entries
MAX_CANDIDATE_SEQUENCES = 1024  # Triton's oldest-first sequence batcher: live sequences sharing the instance


def triton_sequence_controls(config: dict[str, Any]) -> None:
    """Add to a streaming config's ``sequence_batching`` what Triton's Python backend needs (in place).

    The oldest-first strategy (many live sequences share one instance) and the control tensors START /
    END (CONTROL_SEQUENCE_START / _END, INT32 0/1) and CORRID (CONTROL_SEQUENCE_CORRID, UINT64) that
    :mod:`gwinfer.serving.triton_stream_model` keys its per-sequence snapshots on. Implicit state
    (``state [...]``) is not used: the 2.51 Python backend never stores the state output (see there).
    """
    seq = config["sequence_batching"]
    seq["oldest"] = {"max_candidate_sequences": MAX_CANDIDATE_SEQUENCES}
    seq["control_input"] = [
        {"name": "START", "control": [{"kind": "CONTROL_SEQUENCE_START", "int32_false_true": [0, 1]}]},
        {"name": "END", "control": [{"kind": "CONTROL_SEQUENCE_END", "int32_false_true": [0, 1]}]},
        {"name": "CORRID", "control": [{"kind": "CONTROL_SEQUENCE_CORRID", "data_type": "TYPE_UINT64"}]},
    ]
SERVING_LIBRARIES = (*CORE_LIBRARIES, "onnx", "onnxruntime")


def check_stride(stride: Any, window: int) -> None:
    """One-line GwinferError unless ``stride`` is a whole number of samples in [1, window]."""
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= window:
        raise GwinferError(f"stream_stride = {stride!r} must be an integer in [1, {window}] (the window length)")


def stream_entry(name: str, platform: str, inputs: list[TensorSpec], outputs: list[TensorSpec], window: int,
                 stride: Any, sequence_idle_s: float, backend: str, parameters: dict[str, str] | None = None,
                 ) -> tuple[dict[str, Any], dict[str, Any], list[TensorSpec], list[TensorSpec]]:
    """(config, gwinfer.json ``streaming`` record, input specs, output specs) of a streaming entry whose graph reads ``window``
    samples and whose first input ``inputs[0]`` brings ``stride`` new ones per request; the other inputs
    are forwarded to the graph unchanged. One-line GwinferError for a bad stride or idle time."""
    check_stride(stride, window)
    if not sequence_idle_s > 0:
        raise GwinferError(f"sequence_idle_s = {sequence_idle_s!r} must be > 0")
    update = inputs[0]
    inputs = [TensorSpec(update.name, update.datatype, (update.dims[0], stride)), *inputs[1:]]
    outputs = [*outputs, TensorSpec("ready", "BOOL", (1,))]
    config = make_config(name, platform, inputs, outputs, 1,
                         sequence_idle_us=int(sequence_idle_s * 1e6),
                         backend="python" if backend == "python" else None, parameters=parameters)
    if backend == "python":
        triton_sequence_controls(config)
    streaming = {"kernel": window, "stride": stride, "channels": int(update.dims[0]), "state_input": update.name,
                 "forwarded_inputs": [t.name for t in inputs[1:]], "ready_output": "ready"}
    return config, streaming, inputs, outputs


def example_inputs(n_samples: int, batch: int, seed: int, model: torch.nn.Module | None = None) -> torch.Tensor:
    """Seeded waveform-like inputs, float32 (batch, 2, T).

    For models with fitted waveform features (reduced basis) the examples follow the training
    distribution: amplitude and instantaneous frequency are the fitted per-sample means shifted by a
    random fraction of the per-sample spread (one draw per example), integrated into a phase. Otherwise
    they are random-phase chirps with noise.
    """
    g = torch.Generator().manual_seed(seed)
    feats = getattr(model, "features", None)
    amp_std, freq_std = getattr(feats, "amp_std", None), getattr(feats, "freq_std", None)
    if amp_std is not None and freq_std is not None and bool(amp_std.fitted) and bool(freq_std.fitted):
        za = torch.randn(batch, 1, generator=g, dtype=torch.float64)
        zf = torch.randn(batch, 1, generator=g, dtype=torch.float64)
        a = amp_std.mean.double() + 0.5 * za * amp_std.std.double()
        amp = torch.exp(a) if feats.log_amp else a.clamp_min(0.0)
        omega = freq_std.mean.double() + 0.5 * zf * freq_std.std.double()
        phase = 2 * torch.pi * torch.rand(batch, 1, generator=g, dtype=torch.float64)
        phase = torch.cat([phase, phase + feats.dt * torch.cumsum(omega, dim=-1)], dim=-1)
        return torch.stack([amp * torch.cos(phase), amp * torch.sin(phase)], dim=1).to(torch.float32)
    t = torch.linspace(0.0, 1.0, n_samples, dtype=torch.float64)
    f0 = 5.0 + 20.0 * torch.rand(batch, 1, generator=g, dtype=torch.float64)
    phase = 2 * torch.pi * (f0 * t + 30.0 * t**3) + torch.rand(batch, 1, generator=g, dtype=torch.float64)
    amp = 0.5 + t**2
    x = torch.stack([amp * torch.cos(phase), -amp * torch.sin(phase)], dim=1)
    x = x + 0.01 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    return x.to(torch.float32)


def _export_onnx(model: torch.nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], path: Path,
                 opset: int = 17, input_names: tuple[str, ...] | None = None,
                 output_names: tuple[str, ...] | None = None,
                 dynamic_axes: dict[str, dict[int, str]] | None = None) -> str:
    """Write ONNX with dynamic axes; legacy (TorchScript-based) exporter first, then dynamo.

    Defaults: the point estimators' ``waveform`` -> ``theta`` with a dynamic batch axis. ``dynamic_axes``
    maps tensor names to ``{axis: label}``; the dynamo exporter gets one ``torch.export.Dim`` per label.
    """
    args = example if isinstance(example, tuple) else (example,)
    if input_names is None:
        input_names, output_names = (NAMES["onnx"][0],), (NAMES["onnx"][1],)
        dynamic_axes = {input_names[0]: {0: "batch"}, output_names[0]: {0: "batch"}}
    dynamic_axes = dynamic_axes or {}
    errors = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, args, str(path), input_names=list(input_names), output_names=list(output_names),
                              dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False)
            return "torchscript-onnx"
        except Exception as err:  # noqa: BLE001 (fall back to the other exporter)
            errors.append(f"legacy: {str(err).splitlines()[0][:200] if str(err) else type(err).__name__}")
        try:
            dims: dict[str, Any] = {}
            shapes = tuple({axis: dims.setdefault(label, torch.export.Dim(label, min=1, max=1 << 24))
                            for axis, label in dynamic_axes.get(name, {}).items()} for name in input_names)
            prog = torch.onnx.export(model, args, input_names=list(input_names), output_names=list(output_names),
                                     dynamic_shapes=shapes, dynamo=True, opset_version=max(opset, 18))
            prog.save(str(path))
            return "dynamo-onnx"
        except Exception as err:  # noqa: BLE001
            errors.append(f"dynamo: {str(err).splitlines()[0][:200] if str(err) else type(err).__name__}")
    raise GwinferError("ONNX export failed (" + "; ".join(errors) + ")")


def _export_torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (example,), check_trace=False)
    traced.save(str(path))
    return "torch.jit.trace"


def run_exported_all(path: str | Path, inputs: list[np.ndarray], threads: int = 1,
                     output_names: list[str] | None = None) -> list[np.ndarray]:
    """Every output of an exported model file (``.onnx`` with onnxruntime, ``.pt`` with torch.jit) on
    ``inputs``, given in the graph's input order (ONNX: ``output_names`` picks and orders the outputs)."""
    p = Path(path)
    if p.suffix == ".onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
        feed = {spec.name: value for spec, value in zip(sess.get_inputs(), inputs)}
        return list(sess.run(output_names, feed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but is Triton's format
        module = torch.jit.load(str(p), map_location="cpu")
    with torch.inference_mode():
        out = module(*(torch.from_numpy(v) for v in inputs))
    return [t.numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]


def run_exported(path: str | Path, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """Run an exported single-input model file (``.onnx`` with onnxruntime, ``.pt`` with torch.jit) on x."""
    return run_exported_all(path, [x], threads)[0]


def float32_error(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Max abs difference between the float32 torch model and the same weights in float64 on x.

    This is the model's own sensitivity to float32 rounding (large when, e.g., a standardisation divides
    by a tiny spread); no exported float32 graph can be expected to agree with torch much better.
    """
    m64 = copy.deepcopy(model).double()
    with torch.inference_mode():
        ref = model(x).double()
        a, b = m64.leaves(x.double())
        exact = m64.head.predict(a, b)
    return float((ref - exact).abs().max())


def compare(model: torch.nn.Module, path: Path, n_samples: int, seed: int = 0) -> dict[str, float]:
    """Max abs difference between the torch model and the exported file on seeded inputs (batches 1 and 5).

    Fails unless it is below ``max(1e-4 + 1e-4 max|ref|, 2 x float32_error)``; returns
    ``{"max_abs_diff", "float32_error", "limit"}``.
    """
    diff = f32 = limit = 0.0
    for batch in (1, 5):
        x = example_inputs(n_samples, batch, seed + batch, model)
        with torch.inference_mode():
            ref = model(x).numpy()
        got = run_exported(path, x.numpy())
        if got.shape != ref.shape:
            raise GwinferError(f"exported model returns shape {got.shape} for batch {batch}; torch gives {ref.shape}")
        diff = max(diff, float(np.max(np.abs(got - ref))))
        try:
            f32 = max(f32, float32_error(model, x))
        except Exception:  # noqa: BLE001 (models without leaves/head: no float64 reference)
            pass
        limit = max(limit, 1e-4 + 1e-4 * float(np.max(np.abs(ref))), 2 * f32)
        if not np.isfinite(diff) or diff > limit:
            raise GwinferError(f"exported model differs from torch by {diff:.3g} (limit {limit:.3g}; the torch "
                               f"model's own float32 error is {f32:.3g})")
    return {"max_abs_diff": diff, "float32_error": f32, "limit": limit}


def export_model(model_path: str | Path, repo: str | Path, name: str | None = None, fmt: str = "onnx",
                 version: int | None = None, max_batch_size: int | None = None, max_queue_delay_us: int = 2000,
                 seed: int = 0, stream_stride: int | None = None, sequence_idle_s: float = 60.0,
                 backend: str | None = "native") -> Path:
    """Export a gwinfer model file into repository ``repo``; returns the version folder written.

    ``name`` defaults to the model file's folder name (or stem for a bare file); ``version`` to one more
    than the highest existing version. An existing name must have the same platform (or backend) and
    tensor specs. ``max_batch_size`` defaults to 64 (point estimators) or 8 (posteriors: each event of
    a batch carries N samples).

    ``backend``: ``"native"`` (or None; Triton's onnxruntime / libtorch backend, ``platform:`` in the
    config) or ``"python"`` (ONNX only: ``backend: "python"`` and ``<version>/model.py`` running the
    version's model.onnx with onnxruntime in Triton's Python backend).

    With ``stream_stride = S`` the entry is a *streaming* model (default name ``<name>-stream``): input
    ``update`` (1, 2, S) of new samples per request of a sequence, outputs ``theta`` (1, 3) of the last
    T-sample window and ``ready`` (1, 1) (False while the window still holds initial zeros); the server
    keeps each sequence's window (``sequence_batching``, idle expiry after ``sequence_idle_s``). Served by
    gwinfer with either backend; with ``backend="python"`` also by a real Triton: ``model.py`` is
    :mod:`gwinfer.serving.triton_stream_model` (per-correlation-id snapshots, sequence control inputs).
    Posterior estimators stream too: ``update`` (1, n_det, S) and ``noise`` (1, N, D) -> ``samples``,
    ``log_prob``, ``ready`` (ONNX only).

    A posterior estimator file (``gwinfer-posterior`` format, or a trainer checkpoint of one) is exported
    as one sampling graph ``strain`` (B, n_det, n_samples), ``noise`` (B, N, D) -> ``samples`` (B, N, D),
    ``log_prob`` (B, N), with the parameter names in the config's ``parameters``
    (:mod:`gwinfer.serving.posterior_export`).
    """
    from gwinfer.models import resolve_model_path
    from gwinfer.models import is_posterior_file

    if fmt not in FORMAT_PLATFORMS:
        raise GwinferError(f"export format {fmt!r}; choose one of {sorted(FORMAT_PLATFORMS)}")
    backend = "native" if backend is None else backend
    if backend not in BACKENDS:
        raise GwinferError(f"backend {backend!r}; choose one of {list(BACKENDS)}")
    if backend == "python" and fmt != "onnx":
        raise GwinferError("the python backend runs ONNX graphs; export with format 'onnx'")
    src = resolve_model_path(model_path)
    posterior = is_posterior_file(src)
    if max_batch_size is None:
        from gwinfer.serving.posterior_export import DEFAULT_MAX_BATCH_SIZE

        max_batch_size = DEFAULT_MAX_BATCH_SIZE if posterior else 64
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or not 1 <= max_batch_size <= 1 << 16:
        raise GwinferError(f"max_batch_size = {max_batch_size!r} must be an integer in [1, 65536]")
    if posterior:
        return _export_posterior(src, repo, name, fmt, version, max_batch_size, max_queue_delay_us, seed, backend,
                                 stream_stride, sequence_idle_s)
    return _export_point(src, repo, name, fmt, version, max_batch_size, max_queue_delay_us, seed, stream_stride,
                         sequence_idle_s, backend)


def _default_name(src: Path) -> str:
    return src.parent.name if src.name == "model.pt" and src.parent.name else src.stem


def _export_point(src: Path, repo: str | Path, name: str | None, fmt: str, version: int | None, max_batch_size: int,
                  max_queue_delay_us: int, seed: int, stream_stride: int | None, sequence_idle_s: float,
                  backend: str) -> Path:
    from gwinfer.models import load_model

    model, meta = load_model(src)
    if not hasattr(model, "n_samples") or not hasattr(model, "predict"):
        raise GwinferError(f"{src}: only point estimators (predict(x) -> (batch, 3)) can be exported")
    if name is None:
        name = _default_name(src) + ("-stream" if stream_stride is not None else "")
    check_name(name)
    platform = FORMAT_PLATFORMS[fmt]
    n = int(model.n_samples)
    in_name, out_name = NAMES[fmt]
    streaming = None
    if stream_stride is None:
        inputs = [TensorSpec(in_name, "FP32", (2, n))]
        outputs = [TensorSpec(out_name, "FP32", (3,))]
        config = make_config(name, platform, inputs, outputs, max_batch_size, max_queue_delay_us,
                             backend="python" if backend == "python" else None)
    else:
        config, streaming, inputs, outputs = stream_entry(name, platform, [TensorSpec("update", "FP32", (2, n))],
                                         [TensorSpec("theta", "FP32", (3,))], n, stream_stride, sequence_idle_s,
                                         backend)
        streaming.update(graph_input=in_name, graph_outputs=[out_name])

    def build(tmp: Path, version: int) -> tuple[dict[str, Any], float]:
        out_file = tmp / PLATFORM_FILES[platform]
        example = example_inputs(n, 2, seed, model)
        with torch.no_grad():
            exporter = _export_onnx(model, example, out_file) if fmt == "onnx" else _export_torchscript(
                model, example, out_file)
        if fmt == "onnx":
            import onnx

            onnx.checker.check_model(str(out_file))
        if backend == "python":
            shutil.copyfile(STREAM_MODEL if streaming else PYTHON_MODEL, tmp / "model.py")
        check = compare(model, out_file, n, seed)
        diff = check["max_abs_diff"]
        record = provenance(
            "serving-export",
            {"name": name, "version": version, "format": fmt, "platform": platform, "backend": backend,
             "max_batch_size": config["max_batch_size"], "stream_stride": stream_stride},
            parents=[src], libraries=SERVING_LIBRARIES,
            source_sha256=sha256_file(src), model_spec=model.spec(), time_grid=meta.get("time_grid"),
            approximant=meta.get("approximant"), exporter=exporter, model_file=out_file.name,
            model_sha256=sha256_file(out_file), max_abs_diff=diff,
            check={"inputs": "seeded waveform-like inputs (see example_inputs), batches 1 and 5",
                   "float32_error": check["float32_error"], "limit": check["limit"],
                   "rule": "max_abs_diff <= max(1e-4 + 1e-4 max|ref|, 2 x float32_error)"},
            inputs=[t.__dict__ | {"dims": list(t.dims)} for t in inputs],
            outputs=[t.__dict__ | {"dims": list(t.dims)} for t in outputs],
            **({"streaming": streaming} if streaming else {}),
        )
        return record, diff

    return _install(Path(repo), name, version, fmt, backend, config, inputs, outputs, build)


def _export_posterior(src: Path, repo: str | Path, name: str | None, fmt: str, version: int | None,
                      max_batch_size: int, max_queue_delay_us: int, seed: int, backend: str,
                      stream_stride: int | None = None, sequence_idle_s: float = 60.0) -> Path:
    from gwinfer.models import load_estimator
    from gwinfer.serving import posterior_export as pe

    estimator, meta = load_estimator(src)
    sampler = pe.NoiseSampler(estimator)  # refuses cvae/cvae_plus and unfitted estimators
    names, names_source = pe.parameter_names(estimator, meta)
    name = _default_name(src) + ("-stream" if stream_stride is not None else "") if name is None else name
    check_name(name)
    platform = FORMAT_PLATFORMS[fmt]
    (x_name, z_name), (s_name, lp_name) = pe.NAMES[fmt]
    if fmt == "onnx":
        x_name = pe.input_name(estimator)
    d = estimator.theta_dim
    parameters = {"parameter_names": ",".join(names)}
    streaming = None
    if stream_stride is None:
        inputs = [TensorSpec(x_name, "FP32", tuple(estimator.x_shape)), TensorSpec(z_name, "FP32", (-1, d))]
        outputs = [TensorSpec(s_name, "FP32", (-1, d)), TensorSpec(lp_name, "FP32", (-1,))]
        config = make_config(name, platform, inputs, outputs, max_batch_size, max_queue_delay_us,
                             backend="python" if backend == "python" else None, parameters=parameters)
    else:
        if fmt != "onnx" or len(estimator.x_shape) != 2:
            raise GwinferError("streaming posterior entries are ONNX graphs of estimators on strain "
                               "(n_detectors, n_samples); export with format 'onnx'")
        n_det, n = (int(v) for v in estimator.x_shape)
        check_stride(stream_stride, n)
        parameters.update(pe.stream_parameters(meta, n, stream_stride))
        config, streaming, inputs, outputs = stream_entry(
            name, platform, [TensorSpec("update", "FP32", (n_det, n)), TensorSpec(z_name, "FP32", (-1, d))],
            [TensorSpec(s_name, "FP32", (-1, d)), TensorSpec(lp_name, "FP32", (-1,))], n, stream_stride,
            sequence_idle_s, backend, parameters)
        streaming.update(graph_input=x_name, graph_outputs=[s_name, lp_name])

    def build(tmp: Path, version: int) -> tuple[dict[str, Any], float]:
        out_file = tmp / PLATFORM_FILES[platform]
        exporter = pe.export_graph(sampler, fmt, out_file)
        if fmt == "onnx":
            import onnx

            onnx.checker.check_model(str(out_file))
        if backend == "python":
            shutil.copyfile(STREAM_MODEL if streaming else PYTHON_MODEL, tmp / "model.py")
        check = pe.compare_posterior(sampler, out_file, seed)
        record = provenance(
            "serving-export",
            {"name": name, "version": version, "format": fmt, "platform": platform, "backend": backend,
             "max_batch_size": config["max_batch_size"], "stream_stride": stream_stride},
            parents=[src], libraries=(*SERVING_LIBRARIES, "zuko"),
            source_sha256=sha256_file(src), model_spec=estimator.spec(),
            posterior={"kind": estimator.kind, "theta_dim": d, "x_shape": list(estimator.x_shape),
                       "parameter_names": names, "parameter_names_source": names_source,
                       "noise": "standard normal base draws (B, N, D) supplied by the caller",
                       "log_prob": "physical log density of each sample"},
            source_metadata={k: meta[k] for k in pe.SOURCE_METADATA if k in meta},
            exporter=exporter, model_file=out_file.name, model_sha256=sha256_file(out_file),
            max_abs_diff=check["max_abs_diff"],
            check={"inputs": f"seeded strain at the fitted scale and N(0, 1) noise, (batch, samples) = "
                             f"{[list(s) for s in pe.CHECK_SHAPES]} (traced at {list(pe.TRACE_SHAPE)})",
                   **{k: v for k, v in check.items() if k != "max_abs_diff"},
                   "rule": "samples (in theta-standardisation units) and log_prob each within "
                           "max(1e-4 + 1e-4 max|ref|, 2 x float32_error) of torch; the torch sampler within the "
                           "same limits of the estimator's sample_and_log_prob on the same noise"},
            inputs=[t.__dict__ | {"dims": list(t.dims)} for t in inputs],
            outputs=[t.__dict__ | {"dims": list(t.dims)} for t in outputs],
            **({"streaming": streaming} if streaming else {}),
        )
        return record, check["max_abs_diff"]

    return _install(Path(repo), name, version, fmt, backend, config, inputs, outputs, build)


def _install(repo: Path, name: str, version: int | None, fmt: str, backend: str, config: dict[str, Any],
             inputs: list[TensorSpec], outputs: list[TensorSpec], build: Any) -> Path:
    """Write ``REPO/<name>/<version>`` (files and gwinfer.json from ``build(tmp, version)``) in one rename,
    then the config.pbtxt (keeping a promoted version_policy); returns the version folder."""
    model_dir = repo / name
    existing = list_versions(model_dir)
    if (model_dir / "config.pbtxt").is_file():
        old = read_config(model_dir)
        kind = (config.get("platform"), config.get("backend"))
        if (old.get("platform"), old.get("backend")) != kind or config_specs(old) != (inputs, outputs):
            raise GwinferError(f"{model_dir} already holds a {old.get('platform') or old.get('backend')} model "
                               f"or one with other tensors; export under another --name")
        names = [config_parameters(c).get("parameter_names") for c in (old, config)]
        if names[0] != names[1]:
            raise GwinferError(f"{model_dir} already holds a posterior with parameter_names {names[0]!r} (this one: "
                               f"{names[1]!r}); export under another --name")
    if version is None:
        version = (existing[-1] + 1) if existing else 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise GwinferError(f"version = {version!r} must be an integer >= 1")
    dest = model_dir / str(version)
    if dest.exists():
        raise GwinferError(f"{dest} already exists; choose another --version (existing: {existing})")

    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=model_dir))
    try:
        record, diff = build(tmp, version)
        write_json(tmp / "gwinfer.json", record)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; versions get the usual permissions
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    text = format_config(config)
    if (model_dir / "config.pbtxt").is_file():  # keep a promoted version_policy (gwinfer promote)
        from gwinfer.serving.promotion import set_version_policy, version_policy_versions

        kept = version_policy_versions(read_config(model_dir))
        if kept:
            text = set_version_policy(text, kept)
    with atomic_path(model_dir / "config.pbtxt") as p:
        p.write_text(text)
    log.info("exported %s version %d (%s, %s backend, max abs diff %.2g) to %s", name, version, fmt, backend,
             diff, dest)
    return dest


def export_info(version_dir: str | Path) -> dict[str, Any]:
    """The gwinfer.json of an exported version folder (empty dict if absent)."""
    from gwinfer.provenance import read_json

    p = Path(version_dir) / "gwinfer.json"
    return read_json(p) if p.is_file() else {}
