"""Repository entries: the config of a (streaming) entry, Triton's sequence controls, and installing one
version folder (graph, ``model.py`` for the Python backend, ``gwinfer.json``) plus the ``config.pbtxt``.

Triton backend: ``backend="native"`` writes ``platform: "onnxruntime_onnx"`` / ``"pytorch_libtorch"``
(Triton's C++ backends, present in NVIDIA's containers). ``backend="python"`` (ONNX only) writes
``backend: "python"`` and a ``<version>/model.py`` (:mod:`gwinfer.serving.triton.python_model`, copied
verbatim) that runs ``model.onnx`` with onnxruntime inside Triton's Python backend -- for Triton builds
that only have that backend, like the one bundled with ``nvidia-pytriton``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gwinfer.errors import GwinferError
from gwinfer.provenance import CORE_LIBRARIES, provenance, read_json, sha256_file, write_json
from gwinfer.serving.export.graph import check_onnx
from gwinfer.serving.export.prior import PRIOR_PARAMETERS
from gwinfer.serving.repository.config import (
    config_parameters,
    make_config,
    read_config,
    version_policy_versions,
    with_version_policy,
    write_config,
)
from gwinfer.serving.repository.layout import CONFIG_FILE, FORMAT_PLATFORMS, check_name, list_versions
from gwinfer.serving.repository.specs import TensorSpec, config_specs
from gwinfer.serving.triton import PYTHON_MODEL, STREAM_MODEL

log = logging.getLogger(__name__)

BACKENDS = ("native", "python")
SERVING_LIBRARIES = (*CORE_LIBRARIES, "onnx", "onnxruntime")
MAX_CANDIDATE_SEQUENCES = 1024  # Triton's oldest-first sequence batcher: live sequences sharing the instance
MAX_BATCH_LIMIT = 1 << 16  # largest max_batch_size accepted

Build = Callable[[Path, int], tuple[dict[str, Any], float]]  # (folder, version) -> (gwinfer.json record, max abs diff)


def check_export_options(fmt: str, backend: str | None) -> str:
    """The backend (``None`` -> "native"); one-line GwinferError for an unknown format or backend, or the
    python backend with TorchScript."""
    if fmt not in FORMAT_PLATFORMS:
        raise GwinferError(f"export format {fmt!r}; choose one of {sorted(FORMAT_PLATFORMS)}")
    backend = "native" if backend is None else backend
    if backend not in BACKENDS:
        raise GwinferError(f"backend {backend!r}; choose one of {list(BACKENDS)}")
    if backend == "python" and fmt != "onnx":
        raise GwinferError("the python backend runs ONNX graphs; export with format 'onnx'")
    return backend


def check_max_batch_size(max_batch_size: Any) -> int:
    """``max_batch_size`` if it is an integer in [1, 65536] (events per request), else a one-line error."""
    if (
        isinstance(max_batch_size, bool)
        or not isinstance(max_batch_size, int)
        or not 1 <= max_batch_size <= MAX_BATCH_LIMIT
    ):
        raise GwinferError(f"max_batch_size = {max_batch_size!r} must be an integer in [1, {MAX_BATCH_LIMIT}]")
    return max_batch_size


def default_name(src: Path, streaming: bool) -> str:
    """The entry name of a model file: its folder's name for ``<folder>/model.pt``, else its stem;
    ``-stream`` appended for streaming entries."""
    base = src.parent.name if src.name == "model.pt" and src.parent.name else src.stem
    return check_name(base + ("-stream" if streaming else ""))


def triton_sequence_controls(config: dict[str, Any]) -> None:
    """Add to a streaming config's ``sequence_batching`` what Triton's Python backend needs (in place).

    The oldest-first strategy (many live sequences share one instance) and the control tensors START /
    END (CONTROL_SEQUENCE_START / _END, INT32 0/1) and CORRID (CONTROL_SEQUENCE_CORRID, UINT64) that
    :mod:`gwinfer.serving.triton.stream_model` keys its per-sequence snapshots on. Implicit state
    (``state [...]``) is not used: the 2.51 Python backend never stores the state output (see there).
    """
    seq = config["sequence_batching"]
    seq["oldest"] = {"max_candidate_sequences": MAX_CANDIDATE_SEQUENCES}
    seq["control_input"] = [
        {"name": "START", "control": [{"kind": "CONTROL_SEQUENCE_START", "int32_false_true": [0, 1]}]},
        {"name": "END", "control": [{"kind": "CONTROL_SEQUENCE_END", "int32_false_true": [0, 1]}]},
        {"name": "CORRID", "control": [{"kind": "CONTROL_SEQUENCE_CORRID", "data_type": "TYPE_UINT64"}]},
    ]


def check_stride(stride: Any, window: int) -> None:
    """One-line GwinferError unless ``stride`` is a whole number of samples in [1, window]."""
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= window:
        raise GwinferError(f"stream_stride = {stride!r} must be an integer in [1, {window}] (the window length)")


def stream_entry(
    name: str,
    platform: str,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    window: int,
    stride: Any,
    sequence_idle_s: float,
    backend: str,
    parameters: dict[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[TensorSpec], list[TensorSpec]]:
    """(config, gwinfer.json ``streaming`` record, input specs, output specs) of a streaming entry whose
    graph reads ``window`` samples and whose first input ``inputs[0]`` brings ``stride`` new ones per
    request; the other inputs are forwarded to the graph unchanged. ``sequence_idle_s``: seconds a
    sequence may stay idle. One-line GwinferError for a bad stride or idle time."""
    check_stride(stride, window)
    if not sequence_idle_s > 0:
        raise GwinferError(f"sequence_idle_s = {sequence_idle_s!r} must be > 0")
    update = inputs[0]
    inputs = [TensorSpec(update.name, update.datatype, (update.dims[0], stride)), *inputs[1:]]
    outputs = [*outputs, TensorSpec("ready", "BOOL", (1,))]
    config = make_config(
        name,
        platform,
        inputs,
        outputs,
        1,
        sequence_idle_us=int(sequence_idle_s * 1e6),
        backend="python" if backend == "python" else None,
        parameters=parameters,
    )
    if backend == "python":
        triton_sequence_controls(config)
    streaming = {
        "kernel": window,
        "stride": stride,
        "channels": int(update.dims[0]),
        "state_input": update.name,
        "forwarded_inputs": [t.name for t in inputs[1:]],
        "ready_output": "ready",
    }
    return config, streaming, inputs, outputs


def finish_graph(out_file: Path, fmt: str, backend: str, streaming: bool) -> None:
    """Check a written ONNX graph, and put the Python-backend ``model.py`` next to it when asked."""
    if fmt == "onnx":
        check_onnx(out_file)
    if backend == "python":
        shutil.copyfile(STREAM_MODEL if streaming else PYTHON_MODEL, out_file.parent / "model.py")


def export_settings(
    name: str, version: int, fmt: str, platform: str, backend: str, max_batch_size: int, stream_stride: int | None
) -> dict[str, Any]:
    """The export settings recorded in gwinfer.json (the provenance's config), the same for every kind."""
    return {
        "name": name,
        "version": version,
        "format": fmt,
        "platform": platform,
        "backend": backend,
        "max_batch_size": max_batch_size,
        "stream_stride": stream_stride,
    }


def export_record(
    src: Path,
    out_file: Path,
    settings: dict[str, Any],
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    streaming: dict[str, Any] | None,
    libraries: tuple[str, ...],
    **fields: Any,
) -> dict[str, Any]:
    """The gwinfer.json provenance of an exported version: ``settings`` (name, version, format, ...), the
    source and graph files' sha256, the tensors, the streaming record and the ``fields`` of the kind."""
    return provenance(
        "serving-export",
        settings,
        parents=[src],
        libraries=libraries,
        source_sha256=sha256_file(src),
        model_file=out_file.name,
        model_sha256=sha256_file(out_file),
        **fields,
        inputs=[t.__dict__ | {"dims": list(t.dims)} for t in inputs],
        outputs=[t.__dict__ | {"dims": list(t.dims)} for t in outputs],
        **({"streaming": streaming} if streaming else {}),
    )


def check_compatible(
    model_dir: Path, config: dict[str, Any], inputs: list[TensorSpec], outputs: list[TensorSpec]
) -> None:
    """One-line GwinferError unless an existing entry has the same platform/backend, tensors and
    parameter names as the one being exported."""
    old = read_config(model_dir)
    kind = (config.get("platform"), config.get("backend"))
    if (old.get("platform"), old.get("backend")) != kind or config_specs(old) != (inputs, outputs):
        raise GwinferError(
            f"{model_dir} already holds a {old.get('platform') or old.get('backend')} model "
            f"or one with other tensors; export under another --name"
        )
    names = [config_parameters(c).get("parameter_names") for c in (old, config)]
    if names[0] != names[1]:
        raise GwinferError(
            f"{model_dir} already holds a posterior with parameter_names {names[0]!r} (this one: "
            f"{names[1]!r}); export under another --name"
        )
    priors = [tuple(config_parameters(c).get(k) for k in PRIOR_PARAMETERS) for c in (old, config)]
    if priors[0] != priors[1]:
        if priors[0][0] and priors[1][0]:
            have = "another training prior"
        else:
            have = "a training prior (this one has none)" if priors[0][0] else "no training prior (this one has one)"
        raise GwinferError(
            f"{model_dir} already holds a posterior with {have} (config parameters prior, prior_time_offset); "
            f"every version of a model is served with one prior: export under another --name"
        )


def install_version(
    repo: Path,
    name: str,
    version: int | None,
    config: dict[str, Any],
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    build: Build,
) -> Path:
    """Write ``REPO/<name>/<version>`` (files and gwinfer.json from ``build(tmp, version)``) in one rename,
    then the config.pbtxt (keeping a promoted version_policy); returns the version folder.

    ``version`` None: one more than the highest existing version.
    """
    model_dir = repo / name
    existing = list_versions(model_dir)
    had_config = (model_dir / CONFIG_FILE).is_file()
    if had_config:
        check_compatible(model_dir, config, inputs, outputs)
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
    kept = version_policy_versions(read_config(model_dir)) if had_config else None
    write_config(model_dir, with_version_policy(config, kept) if kept else config)  # keep a promoted policy
    log.info("exported %s version %d to %s (max abs diff %.2g)", name, version, dest, diff)
    return dest


def export_info(version_dir: str | Path) -> dict[str, Any]:
    """The gwinfer.json of an exported version folder (empty dict if absent)."""
    p = Path(version_dir) / "gwinfer.json"
    return read_json(p) if p.is_file() else {}
