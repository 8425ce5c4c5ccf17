"""Loaded model versions: one :class:`ModelVersion` per version folder of a repository.

A version that fails to load is kept with state ``UNAVAILABLE`` and a one-line reason (it never stops
the others). Models whose config has ``sequence_batching`` and whose ``gwinfer.json`` has a ``streaming``
entry are *streaming* versions: each request carries ``stride`` new samples of one sequence and the
version keeps the last ``kernel`` samples per sequence in its :class:`~.sequences.SequenceStore`.
A posterior version exported with its training prior gets a :class:`~.prior.ServedPrior` (a recorded prior
that is missing, altered or unreadable makes the version UNAVAILABLE: it is never served without it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.serving.repository.config import read_config
from gwinfer.serving.repository.layout import list_models, list_versions, model_filename, runtime_platform
from gwinfer.serving.repository.specs import TensorSpec, config_specs
from gwinfer.serving.runtime.batching import Batcher
from gwinfer.serving.runtime.prior import ServedPrior, load_served_prior
from gwinfer.serving.runtime.runners import RUNNERS, Runner
from gwinfer.serving.runtime.sequences import SequenceStore, snapshot_state

log = logging.getLogger(__name__)

DEFAULT_SEQUENCE_IDLE_US = 60_000_000  # microseconds, when sequence_batching names no idle time


@dataclass
class ModelVersion:
    """One loaded version of a model (``config``: the model's config dict, :mod:`~gwinfer.serving.repository.config`)."""

    name: str
    version: int
    platform: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    max_batch_size: int
    config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)  # gwinfer.json
    runner: Runner | None = None
    state: str = "READY"
    reason: str = ""
    max_queue_delay_us: int = 0  # dynamic batching window, microseconds (-1: no dynamic batching)
    streaming: dict[str, Any] | None = None  # gwinfer.json's streaming entry
    sequences: SequenceStore | None = None  # live sequences of a streaming version
    prior: ServedPrior | None = None  # a posterior's training prior: served draws lie inside it (.prior)
    batcher: Batcher | None = None  # made by the server on first use

    @property
    def key(self) -> tuple[str, int]:
        """(name, version): the metrics key."""
        return self.name, self.version

    def full_shape(self, spec: TensorSpec) -> list[int]:
        """The request shape of a tensor: ``-1`` (batch) first when the model batches, then its dims."""
        return ([-1] if self.max_batch_size > 0 else []) + list(spec.dims)


def load_version(model_dir: Path, cfg: dict[str, Any], version: int, threads: int, max_sequences: int) -> ModelVersion:
    """Load one version folder (never raises: a failure gives state UNAVAILABLE and a reason).

    ``threads``: intra-op threads of the runner; ``max_sequences``: live sequences of a streaming version.
    """
    inputs, outputs = config_specs(cfg, str(model_dir / "config.pbtxt"))
    platform = runtime_platform(cfg)  # the runner; metadata reports the config's platform or backend (Triton's way)
    batching = cfg.get("dynamic_batching")
    delay = int(batching.get("max_queue_delay_microseconds", 0)) if isinstance(batching, dict) else 0
    reported = cfg.get("platform") or cfg["backend"]
    mv = ModelVersion(
        cfg["name"],
        version,
        reported,
        inputs,
        outputs,
        int(cfg.get("max_batch_size", 0)),
        cfg,
        max_queue_delay_us=delay if batching is not None else -1,
    )
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
            mv.runner = RUNNERS[platform](
                path,
                [streaming["graph_input"], *streaming["forwarded_inputs"]],
                list(streaming["graph_outputs"]),
                threads,
            )
            idle = cfg["sequence_batching"].get("max_sequence_idle_microseconds", DEFAULT_SEQUENCE_IDLE_US) / 1e6
            shape = (int(streaming["channels"]), int(streaming["kernel"]), int(streaming["stride"]))
            mv.sequences = SequenceStore(lambda: snapshot_state(*shape), max_sequences, idle)
            known = {streaming["graph_input"], *streaming["forwarded_inputs"], *streaming["graph_outputs"]}
        else:
            mv.runner = RUNNERS[platform](path, [t.name for t in inputs], [t.name for t in outputs], threads)
            known = {t.name for t in inputs} | {t.name for t in outputs}
        mv.prior = load_served_prior(vdir, mv.info, known)
    except Exception as err:  # noqa: BLE001 (a broken version must not stop the others)
        mv.state, mv.reason = "UNAVAILABLE", " ".join(str(err).split())[:300] or type(err).__name__
        log.warning("%s version %d unavailable: %s", cfg["name"], version, mv.reason)
    return mv


def load_model_versions(
    model_dir: Path, threads: int = 1, max_sequences: int = 1024, skip: set[int] | frozenset[int] = frozenset()
) -> tuple[dict[str, Any], dict[int, ModelVersion]]:
    """(config dict, {version: ModelVersion}) of a model folder, leaving out the versions in ``skip``."""
    cfg = read_config(model_dir)
    cfg["name"] = model_dir.name  # Triton requires the folder name
    versions = {
        v: load_version(model_dir, cfg, v, threads, max_sequences) for v in list_versions(model_dir) if v not in skip
    }
    return cfg, versions


def load_repository(
    repo: str | Path, threads: int = 1, max_sequences: int = 1024
) -> dict[str, dict[int, ModelVersion]]:
    """All versions of all models of a repository: {name: {version: ModelVersion}}.

    A model whose folder cannot be read (a bad ``config.pbtxt``, ...) is listed with its versions
    UNAVAILABLE and the one-line reason; it never stops the other models from being served.
    """
    out: dict[str, dict[int, ModelVersion]] = {}
    for name in list_models(repo):
        try:
            out[name] = load_model_versions(Path(repo) / name, threads, max_sequences)[1]
        except GwinferError as err:
            reason = " ".join(str(err).split())[:300]
            log.warning("model %s unavailable: %s", name, reason)
            out[name] = {
                v: ModelVersion(name, v, "", [], [], 0, {}, state="UNAVAILABLE", reason=reason)
                for v in (list_versions(Path(repo) / name) or [1])
            }
    return out


def check_version_runs(model_dir: Path, cfg: dict[str, Any], version: int) -> None:
    """One-line error unless ``version`` loads and answers a test inference on zeros with the config's shapes."""
    mv = load_version(model_dir, dict(cfg, name=model_dir.name), version, threads=1, max_sequences=1)
    if mv.state != "READY" or mv.runner is None:
        raise GwinferError(f"version {version} of model {model_dir.name!r} does not load: {mv.reason}")
    lead = [1] if mv.max_batch_size > 0 else []
    inputs = {t.name: np.zeros(lead + [d if d > 0 else 1 for d in t.dims], t.numpy_dtype) for t in mv.inputs}
    expected: dict[str, list[int] | None]
    if mv.streaming is not None:  # the graph reads the window instead of the update
        s = mv.streaming
        inputs = {
            s["graph_input"]: np.zeros((1, int(s["channels"]), int(s["kernel"])), np.float32),
            **{k: inputs[k] for k in s["forwarded_inputs"]},
        }
        expected = {g: None for g in s["graph_outputs"]}
    else:
        expected = {t.name: lead + list(t.dims) for t in mv.outputs}
    try:
        out = mv.runner(inputs)
    except Exception as err:  # noqa: BLE001 (reported as one line)
        raise GwinferError(
            f"version {version} of model {model_dir.name!r} fails a test inference on zeros: "
            f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
        ) from None
    for name, shape in expected.items():
        got = out.get(name)
        if got is None:
            raise GwinferError(f"version {version} of model {model_dir.name!r} returns no output {name!r}")
        if shape is not None and (
            len(got.shape) != len(shape) or any(s >= 0 and s != g for s, g in zip(shape, got.shape))
        ):
            raise GwinferError(
                f"version {version} of model {model_dir.name!r}: output {name!r} has shape "
                f"{list(got.shape)}; the config says {shape}"
            )
