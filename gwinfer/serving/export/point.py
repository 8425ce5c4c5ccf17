"""Point estimators (``predict(x) -> (batch, 3)``) as served graphs, checked against torch.

Tensor names: ONNX ``waveform`` (batch, 2, T) -> ``theta`` (batch, 3). TorchScript follows Triton's
``<name>__<index>`` convention of the pytorch_libtorch backend: ``waveform__0`` -> ``theta__0``.

The version's ``gwinfer.json`` records the source model's sha256, the time grid, the approximant and
the max abs difference between the exported graph and the torch model on seeded waveform-like inputs,
which must be below ``max(1e-4 + 1e-4 max|ref|, 2 x the torch model's own float32 error)`` (:func:`compare`).

Streaming entries (``stream_stride = S``): input ``update`` (1, 2, S) of new samples per request of a
sequence, outputs ``theta`` (1, 3) of the last T-sample window and ``ready`` (1, 1) (False while the
window still holds initial zeros); the server keeps each sequence's window.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gwinfer.errors import GwinferError
from gwinfer.serving.export.entry import (
    SERVING_LIBRARIES,
    default_name,
    export_record,
    export_settings,
    finish_graph,
    install_version,
    stream_entry,
)
from gwinfer.serving.export.graph import export_onnx, export_torchscript, run_exported
from gwinfer.serving.repository.config import make_config
from gwinfer.serving.repository.layout import FORMAT_PLATFORMS, PLATFORM_FILES, check_name
from gwinfer.serving.repository.specs import TensorSpec

NAMES = {"onnx": ("waveform", "theta"), "torchscript": ("waveform__0", "theta__0")}
DEFAULT_MAX_BATCH_SIZE = 64  # waveforms per request


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
            raise GwinferError(
                f"exported model differs from torch by {diff:.3g} (limit {limit:.3g}; the torch "
                f"model's own float32 error is {f32:.3g})"
            )
    return {"max_abs_diff": diff, "float32_error": f32, "limit": limit}


def export_graph(model: torch.nn.Module, fmt: str, path: Path, example: torch.Tensor) -> str:
    """Write a point estimator as ONNX (dynamic batch axis) or traced TorchScript; returns the exporter used."""
    if fmt != "onnx":
        return export_torchscript(model, (example,), path)
    x_name, theta_name = NAMES["onnx"]
    return export_onnx(
        model, (example,), path, (x_name,), (theta_name,), {x_name: {0: "batch"}, theta_name: {0: "batch"}}
    )


def export_point(
    src: Path,
    repo: str | Path,
    name: str | None,
    fmt: str,
    version: int | None,
    max_batch_size: int,
    max_queue_delay_us: int,
    seed: int,
    stream_stride: int | None,
    sequence_idle_s: float,
    backend: str,
) -> Path:
    """Export the point estimator file ``src`` (see :func:`gwinfer.serving.export.model.export_model`)."""
    from gwinfer.models import load_model

    model, meta = load_model(src)
    if not hasattr(model, "n_samples") or not hasattr(model, "predict"):
        raise GwinferError(f"{src}: only point estimators (predict(x) -> (batch, 3)) can be exported")
    name = default_name(src, stream_stride is not None) if name is None else check_name(name)
    platform = FORMAT_PLATFORMS[fmt]
    n = int(model.n_samples)
    in_name, out_name = NAMES[fmt]
    streaming = None
    if stream_stride is None:
        inputs = [TensorSpec(in_name, "FP32", (2, n))]
        outputs = [TensorSpec(out_name, "FP32", (3,))]
        config = make_config(
            name,
            platform,
            inputs,
            outputs,
            max_batch_size,
            max_queue_delay_us,
            backend="python" if backend == "python" else None,
        )
    else:
        config, streaming, inputs, outputs = stream_entry(
            name,
            platform,
            [TensorSpec("update", "FP32", (2, n))],
            [TensorSpec("theta", "FP32", (3,))],
            n,
            stream_stride,
            sequence_idle_s,
            backend,
        )
        streaming.update(graph_input=in_name, graph_outputs=[out_name])

    def build(tmp: Path, version: int) -> tuple[dict[str, Any], float]:
        out_file = tmp / PLATFORM_FILES[platform]
        with torch.no_grad():
            exporter = export_graph(model, fmt, out_file, example_inputs(n, 2, seed, model))
        finish_graph(out_file, fmt, backend, streaming is not None)
        check = compare(model, out_file, n, seed)
        settings = export_settings(name, version, fmt, platform, backend, config["max_batch_size"], stream_stride)
        record = export_record(
            src,
            out_file,
            settings,
            inputs,
            outputs,
            streaming,
            SERVING_LIBRARIES,
            model_spec=model.spec(),
            time_grid=meta.get("time_grid"),
            approximant=meta.get("approximant"),
            exporter=exporter,
            max_abs_diff=check["max_abs_diff"],
            check={
                "inputs": "seeded waveform-like inputs (see example_inputs), batches 1 and 5",
                "float32_error": check["float32_error"],
                "limit": check["limit"],
                "rule": "max_abs_diff <= max(1e-4 + 1e-4 max|ref|, 2 x float32_error)",
            },
        )
        return record, check["max_abs_diff"]

    return install_version(Path(repo), name, version, config, inputs, outputs, build)
