"""``export_model(model_path, repo)``: a gwinfer point or posterior estimator file into a Triton-style
model repository (``gwinfer export``).

It writes ``REPO/<name>/<version>/model.onnx`` (or ``model.pt``), ``REPO/<name>/<version>/gwinfer.json``
(provenance and the check of the graph against torch) and ``REPO/<name>/config.pbtxt`` generated from the
in-memory model. Point estimators: :mod:`.point`; posterior estimators (``gwinfer-posterior`` files):
one sampling graph, :mod:`.posterior`; Triton backends and streaming entries: :mod:`.entry`.
"""

from __future__ import annotations

from pathlib import Path

from gwinfer.serving.export.entry import check_export_options, check_max_batch_size
from gwinfer.serving.export.point import DEFAULT_MAX_BATCH_SIZE as POINT_MAX_BATCH_SIZE
from gwinfer.serving.export.point import export_point
from gwinfer.serving.export.posterior import DEFAULT_MAX_BATCH_SIZE as POSTERIOR_MAX_BATCH_SIZE
from gwinfer.serving.export.posterior import export_posterior


def export_model(
    model_path: str | Path,
    repo: str | Path,
    name: str | None = None,
    fmt: str = "onnx",
    version: int | None = None,
    max_batch_size: int | None = None,
    max_queue_delay_us: int = 2000,
    seed: int = 0,
    stream_stride: int | None = None,
    sequence_idle_s: float = 60.0,
    backend: str | None = "native",
) -> Path:
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
    :mod:`gwinfer.serving.triton.stream_model` (per-correlation-id snapshots, sequence control inputs).
    Posterior estimators stream too: ``update`` (1, n_det, S) and ``noise`` (1, N, D) -> ``samples``,
    ``log_prob``, ``ready`` (ONNX only).

    A posterior estimator file (``gwinfer-posterior`` format, or a trainer checkpoint of one) is exported
    as one sampling graph ``strain`` (B, n_det, n_samples), ``noise`` (B, N, D) -> ``samples`` (B, N, D),
    ``log_prob`` (B, N), with the parameter names in the config's ``parameters``
    (:mod:`gwinfer.serving.export.posterior`).
    """
    from gwinfer.models import is_posterior_file, resolve_model_path

    backend = check_export_options(fmt, backend)
    src = resolve_model_path(model_path)
    posterior = is_posterior_file(src)
    if max_batch_size is None:
        max_batch_size = POSTERIOR_MAX_BATCH_SIZE if posterior else POINT_MAX_BATCH_SIZE
    check_max_batch_size(max_batch_size)
    if posterior:
        return export_posterior(
            src,
            repo,
            name,
            fmt,
            version,
            max_batch_size,
            max_queue_delay_us,
            seed,
            backend,
            stream_stride,
            sequence_idle_s,
        )
    return export_point(
        src, repo, name, fmt, version, max_batch_size, max_queue_delay_us, seed, stream_stride, sequence_idle_s, backend
    )
