"""The state of one server and its protocol-independent handlers, shared by HTTP (:mod:`.http`) and gRPC
(:mod:`.grpc`): loaded model versions and their labels, the inference executor, metrics, shared-memory
regions, the shadow monitor.

Versions: a model's ``labels.json`` (:mod:`gwinfer.serving.repository.labels`) names its production
version, which answers requests without a version (otherwise the highest ready version does), and
optionally a development version, to which the :class:`~.shadow.ShadowMonitor` mirrors answered
production requests. :meth:`App.load_model` (Triton's repository "load") re-reads them and loads new
version folders, then switches routing in one step of the event loop: every request is answered by the
old or by the new production version, none fails.

Inference (:meth:`App.execute`): streaming versions step their sequence; versions with dynamic batching
go through their :class:`~gwinfer.serving.runtime.batching.Batcher`; others run directly on the one
inference thread. A posterior version with a training prior then replaces its draws outside the prior
(:mod:`gwinfer.serving.runtime.prior`; 422 when too few are inside).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer._version import __version__
from gwinfer.errors import GwinferError
from gwinfer.evaluation.prior_support import OutsidePrior
from gwinfer.serving.protocol.errors import ServingError
from gwinfer.serving.protocol.shm import Regions, is_shared
from gwinfer.serving.protocol.tensors import sequence_id
from gwinfer.serving.repository.config import version_policy_versions
from gwinfer.serving.repository.labels import STAGES, Labels, check_labels, read_labels
from gwinfer.serving.repository.layout import CONFIG_FILE, check_name
from gwinfer.serving.runtime.batching import Batcher, timed
from gwinfer.serving.runtime.prior import apply_prior, response_parameters
from gwinfer.serving.runtime.sequences import SnapshotState, snapshotter
from gwinfer.serving.runtime.versions import ModelVersion, load_model_versions, load_repository
from gwinfer.serving.server.metrics import Metrics
from gwinfer.serving.server.options import ServerOptions, server_options
from gwinfer.serving.server.shadow import ShadowMonitor

log = logging.getLogger(__name__)

EXTENSIONS = ["binary_tensor_data", "model_configuration", "model_repository", "sequence", "system_shared_memory"]

Versions = dict[int, ModelVersion]
After = list[Callable[[], Any]]  # work to do once the response is sent (shadow offers)


def checked_labels(name: str, versions: Versions, labels: Labels | None) -> Labels | None:
    """``labels`` if every labelled version is loaded and ready; else a one-line GwinferError."""
    if labels is None:
        return None
    where = f"{name}/labels.json"
    check_labels(labels, versions, where)
    for stage in STAGES:
        v = getattr(labels, stage)
        if v is not None and versions[v].state != "READY":
            raise GwinferError(f"{where}: {stage} version {v} is {versions[v].state}: {versions[v].reason}")
    return labels


def warn_policy(name: str, cfg: dict[str, Any], labels: Labels) -> None:
    """Warn when a real Triton would serve another version than production for unversioned requests."""
    policy = version_policy_versions(cfg)
    if policy != [labels.production]:
        log.warning(
            "model %s: labels.json says production is version %d but config.pbtxt's version_policy "
            "is %s; a real Triton would not serve the same version (gwinfer promote sets it)",
            name,
            labels.production,
            f"specific {policy}" if policy else "not 'specific'",
        )


def check_ready(mv: ModelVersion) -> None:
    """ServingError(503) if ``mv`` failed to load."""
    if mv.state != "READY":
        raise ServingError(503, f"model {mv.name!r} version {mv.version} is unavailable: {mv.reason}")


class App:
    """State and handlers of one server: repository, executor, metrics, limits.

    ``options``: the server's :class:`~.options.ServerOptions` (default: their defaults), with keyword
    ``changes`` applied (``App(repo, token="...")``). Of them the App uses ``token`` (bearer token every
    request but health checks must carry; None: open), ``max_body_bytes`` / ``max_json_bytes`` (bytes; 413
    beyond them), ``body_timeout`` (s; 408 beyond it), ``threads`` and ``max_sequences`` (per model),
    ``dynamic_batching`` and ``shadow_fraction``; the listening options are the :mod:`.run` layer's.
    """

    def __init__(self, repo: str | Path, options: ServerOptions | None = None, **changes: Any) -> None:
        self.options = opts = server_options(options, **changes)
        self.token, self.max_body_bytes, self.max_json_bytes = opts.token, opts.max_body_bytes, opts.max_json_bytes
        self.body_timeout, self.dynamic_batching = float(opts.body_timeout), opts.dynamic_batching
        self.threads, self.max_sequences = opts.threads, opts.max_sequences
        self.shadow = ShadowMonitor(opts.shadow_fraction)
        self.repo = Path(repo)
        self.models = load_repository(repo, threads=self.threads, max_sequences=self.max_sequences)
        # labels.json per model; a model whose labels are unusable answers unversioned requests with 503
        # (never silently with another version than the labelled production one)
        self.labels: dict[str, Labels] = {}
        self.label_errors: dict[str, str] = {}
        for name, versions in self.models.items():
            try:
                labels = checked_labels(name, versions, read_labels(self.repo / name, check_versions=False))
            except GwinferError as err:
                self.label_errors[name] = str(err)
                log.warning("model %s: unversioned requests refused: %s", name, err)
                continue
            if labels is not None:
                self.labels[name] = labels
                warn_policy(name, next(iter(versions.values())).config, labels)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwinfer-infer")
        self.metrics = Metrics()
        self.shm = Regions()  # registered system shared-memory regions (HTTP and gRPC)
        self.ready = True
        self.load_lock = asyncio.Lock()

    # --- the disk
    def follow_disk(self, names: Any = None) -> None:
        """Mark versions of ``names`` (default every model) whose folder was deleted from the repository
        UNAVAILABLE (they no longer answer); a folder that comes back needs
        ``POST /v2/repository/models/NAME/load``, as in Triton."""
        for name in self.models if names is None else [n for n in names if n in self.models]:
            for v, mv in self.models[name].items():
                if mv.state == "READY" and not (self.repo / name / str(v)).is_dir():
                    mv.state, mv.reason = "UNAVAILABLE", "its folder was removed from the repository"
                    log.warning("model %s version %d: folder removed from the repository, unavailable", name, v)

    def on_disk_only(self) -> list[dict[str, Any]]:
        """Index entries of model versions present on disk but not loaded."""
        from gwinfer.serving.repository.layout import list_models, list_versions

        out = []
        for name in list_models(self.repo):
            for v in list_versions(self.repo / name):
                if v not in self.models.get(name, {}):
                    out.append({"name": name, "version": str(v), "state": "UNAVAILABLE",
                                "reason": "on disk, not loaded (POST /v2/repository/models/NAME/load)"})  # fmt: skip
        return out

    # --- lookups
    def model(self, name: str, version: str | None = None) -> ModelVersion:
        """The version answering a request for ``name`` (``version`` None, "" or "-1": the routed one)."""
        self.follow_disk([name])  # a request stats only its own model's folders
        versions = self.models.get(name)
        if not versions:
            raise ServingError(404, f"unknown model {name!r}; available: {sorted(self.models)}")
        if version in (None, "", "-1"):
            if name in self.label_errors:
                raise ServingError(
                    503,
                    f"model {name!r} has no usable production label "
                    f"({self.label_errors[name]}); ask for an explicit version, or fix "
                    f"labels.json and load the model again",
                )
            labels = self.labels.get(name)
            if labels is not None:
                mv = versions[labels.production]
                check_ready(mv)
                return mv
            ready = [v for v, mv in versions.items() if mv.state == "READY"]
            if not ready:
                raise ServingError(503, f"model {name!r} has no ready version")
            return versions[max(ready)]
        if not version.isdigit() or int(version) not in versions:
            raise ServingError(404, f"unknown version {version!r} of model {name!r}; available: {sorted(versions)}")
        return versions[int(version)]

    def check_token(self, headers: Mapping[str, str]) -> None:
        """ServingError(401) unless ``headers`` carry ``authorization: Bearer <token>`` (when a token is set)."""
        if self.token is None:
            return
        got = headers.get("authorization", "")
        if not hmac.compare_digest(got.encode(), f"Bearer {self.token}".encode()):
            raise ServingError(401, "missing or wrong bearer token")

    def close(self) -> None:
        """Stop the inference executor and the shadow thread (in-flight work is abandoned)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.shadow.close()

    def live_sequences(self) -> int:
        """Live streaming sequences over every loaded version."""
        return sum(len(mv.sequences) for vs in self.models.values() for mv in vs.values() if mv.sequences is not None)

    # --- payloads
    def server_metadata(self) -> dict[str, Any]:
        """KServe v2 server metadata: name, version, extensions."""
        return {"name": "gwinfer", "version": __version__, "extensions": list(EXTENSIONS)}

    def model_metadata(self, mv: ModelVersion, version: str | None) -> dict[str, Any]:
        """KServe v2 model metadata, plus ``labels`` ({"production": "2", "development": "3"}) if labelled."""
        versions = (
            [str(mv.version)]
            if version
            else [str(v) for v, m in sorted(self.models[mv.name].items()) if m.state == "READY"]
        )
        meta = {
            "name": mv.name,
            "versions": versions,
            "platform": mv.platform,
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": mv.full_shape(t)} for t in mv.inputs],
            "outputs": [{"name": t.name, "datatype": t.datatype, "shape": mv.full_shape(t)} for t in mv.outputs],
        }
        labels = self.labels.get(mv.name)
        if labels is not None:
            meta["labels"] = labels.as_strings()
        return meta

    def repository_index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """[{name, version, state, reason?, label?}] (``label``: "production" or "development"), following
        the disk: removed versions are UNAVAILABLE, versions on disk that are not loaded are listed."""
        self.follow_disk()
        out = [] if ready_only else self.on_disk_only()
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
        return sorted(out, key=lambda e: (e["name"], int(e["version"])))

    def monitor(self, name: str) -> dict[str, Any]:
        """The shadow comparison of ``name``'s development version against its production version."""
        if name not in self.models:
            raise ServingError(404, f"unknown model {name!r}; available: {sorted(self.models)}")
        labels = self.labels.get(name)
        return self.shadow.snapshot(name, labels.production if labels else None, labels.development if labels else None)

    # --- the repository "load" verb
    async def load_model(self, name: str, parameters: Any = None) -> dict[str, Any]:
        """Triton's repository "load" for a model: load new (or previously failed) version folders, re-read
        labels.json, then switch versions and labels in one step; refused (nothing changes) if the labels
        are invalid or name a version that is not ready. Loaded versions stay loaded (in-flight and
        explicitly versioned requests keep working); a model folder not served yet is loaded too.
        """
        if parameters:
            raise ServingError(
                400, "load parameters (config override, files) are not supported; edit the repository and load again"
            )
        check_name(name)
        model_dir = self.repo / name
        if not (model_dir / CONFIG_FILE).is_file():
            raise ServingError(404, f"no model {name!r} in the repository {self.repo}")
        async with self.load_lock:
            old = self.models.get(name, {})
            keep = {v for v, mv in old.items() if mv.state == "READY"}

            def prepare() -> tuple[dict[str, Any], Versions, Labels | None]:
                cfg, fresh = load_model_versions(model_dir, self.threads, self.max_sequences, skip=keep)
                return cfg, fresh, read_labels(model_dir, check_versions=False)

            try:
                cfg, fresh, labels = await asyncio.get_running_loop().run_in_executor(None, prepare)
                merged = dict(sorted({**{v: old[v] for v in keep}, **fresh}.items()))
                labels = checked_labels(name, merged, labels)
            except GwinferError as err:
                raise ServingError(400, f"model {name!r} not (re)loaded: {err}") from None
            note = self.adopt_config([mv for v, mv in merged.items() if v in keep], cfg)
            # the switch: no await between these assignments, so each request sees old or new routing
            self.models[name] = merged
            if labels is None:
                self.labels.pop(name, None)
            else:
                self.labels[name] = labels
            self.label_errors.pop(name, None)
        if labels is not None:
            warn_policy(name, cfg, labels)
        log.info(
            "model %s loaded: versions %s%s%s",
            name,
            sorted(merged),
            f", labels {labels.to_json()}" if labels else "",
            f"; {note}" if note else "",
        )
        out: dict[str, Any] = {
            "name": name,
            "versions": [str(v) for v in merged],
            "new_versions": [str(v) for v in fresh],
            "state": {str(v): mv.state for v, mv in merged.items()},
        }
        if labels is not None:
            out["labels"] = labels.as_strings()
        if note:
            out["note"] = note
        return out

    @staticmethod
    def adopt_config(loaded: list[ModelVersion], cfg: dict[str, Any]) -> str:
        """Give versions already loaded the re-read config if only its version_policy changed (promote
        rewrites it); other config changes apply to newly loaded versions only. Returns a note ("" if none)."""

        def strip(c: dict[str, Any]) -> dict[str, Any]:
            return {k: x for k, x in c.items() if k != "version_policy"}

        note = ""
        for mv in loaded:
            if strip(mv.config) == strip(cfg):
                mv.config = cfg
            else:
                note = "config.pbtxt changed: loaded versions keep their config until the server restarts"
        return note

    # --- inference
    def route(self, mv: ModelVersion, params: dict[str, Any], routed: bool) -> ModelVersion:
        """Sequence affinity across a promotion: a request without a version (``routed``) that continues a
        sequence live on another version of a streaming model goes to that version (a new sequence starts
        on the production version); requests naming a version are never redirected."""
        if not routed or mv.streaming is None or mv.sequences is None or params.get("sequence_start"):
            return mv
        seq = params.get("sequence_id")
        if isinstance(seq, bool) or not isinstance(seq, (int, str)) or seq in (0, "") or seq in mv.sequences:
            return mv
        for other in self.models.get(mv.name, {}).values():
            if other is not mv and other.sequences is not None and other.state == "READY" and seq in other.sequences:
                return other
        return mv

    async def execute(
        self,
        mv: ModelVersion,
        arrays: dict[str, np.ndarray],
        batch: int,
        params: dict[str, Any],
        after: After | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any] | None, int]:
        """(outputs, response parameters or None, batch items) of validated inputs, whatever the protocol.

        Streaming models step their sequence (``params``: sequence_id/sequence_start/sequence_end); models
        with dynamic batching go through their :class:`Batcher`; others run directly on the executor.

        If ``mv`` is the production version of a model with a development label, the request is offered
        to the shadow monitor: the offer (cheap, never raising) is appended to ``after`` for the caller to
        run once the response is sent, or made at once when ``after`` is None.
        """
        if mv.streaming is not None:
            outputs, extra = await self.stream(mv, params, arrays)
            return outputs, extra, 1
        if self.dynamic_batching and mv.max_batch_size > 0 and mv.max_queue_delay_us >= 0:
            if mv.batcher is None:
                mv.batcher = Batcher(
                    mv.runner,
                    mv.max_batch_size,
                    mv.max_queue_delay_us / 1e6,
                    self.executor,
                    lambda n, seconds, key=mv.key: self.metrics.execution(key, n, seconds),
                )
            outputs = await mv.batcher.submit(arrays)
        else:
            outputs, seconds = await asyncio.get_running_loop().run_in_executor(self.executor, timed, mv.runner, arrays)
            self.metrics.execution(mv.key, batch, seconds)
        answer, extra = (outputs, None) if mv.prior is None else await self.within_prior(mv, arrays, outputs)
        self.mirror(mv, arrays, outputs, batch, after)  # the graph's own outputs: the shadow compares graphs
        return answer, extra, batch

    async def within_prior(
        self, mv: ModelVersion, arrays: dict[str, np.ndarray], outputs: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(outputs with every draw inside ``mv``'s training prior, response parameters) of a posterior
        request (:mod:`gwinfer.serving.runtime.prior`); ServingError(422) if too few draws are inside."""
        try:
            fixed, res = await asyncio.get_running_loop().run_in_executor(
                self.executor, apply_prior, mv.prior, mv.runner, arrays, outputs
            )
        except OutsidePrior as err:
            self.metrics.prior_refusal(mv.key)
            raise ServingError(422, f"model {mv.name!r}: {err}") from None
        self.metrics.prior(mv.key, int(res.drawn.sum()), int(res.inside.sum()))
        return fixed, response_parameters(res)

    def mirror(
        self,
        mv: ModelVersion,
        arrays: dict[str, np.ndarray],
        outputs: dict[str, np.ndarray],
        batch: int,
        after: After | None,
    ) -> None:
        """Offer an answered production request to the shadow monitor (see :meth:`execute`)."""
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
        try:
            result, items = await run()
        except Exception:
            self.metrics.infer(mv.key, False, time.perf_counter() - t0, 0)
            raise
        self.metrics.infer(mv.key, True, time.perf_counter() - t0, items)
        return result

    async def stream(
        self, mv: ModelVersion, params: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(outputs, response parameters) of one request of a streaming entry (``mv.streaming``: gwinfer.json).

        Only the streaming input ``state_input`` (``update`` (1, channels, stride)) goes through the
        sequence's snapshotter; the window it returns is fed to the graph as ``graph_input`` together with
        the request's ``forwarded_inputs`` unchanged (e.g. a posterior's ``noise`` (1, N, D)). The graph
        outputs ``graph_outputs`` are returned under the config's non-``ready`` output names, in order,
        plus ``ready_output`` (1, 1) BOOL.

        A posterior entry with a training prior answers a ready window with draws inside it, as a plain
        entry does (:meth:`within_prior`); windows still holding initial zeros (``ready`` False) get the
        graph's draws. Too few inside: the window still advances (the stream goes on) and the request is
        answered 422.
        """
        seq = sequence_id(params, mv.name)
        if any(a.shape[0] != 1 for a in arrays.values()):
            raise ServingError(400, "streaming requests carry one sequence (batch 1)")
        spec, runner, sequences, prior = mv.streaming, mv.runner, mv.sequences, mv.prior
        update = arrays[spec["state_input"]]
        forwarded = {k: arrays[k] for k in spec["forwarded_inputs"]}
        out_names = [o.name for o in mv.outputs if o.name != spec["ready_output"]]

        def step(state: SnapshotState) -> tuple[tuple[Any, ...], SnapshotState]:
            window, new = snapshotter(update[0], state)
            graph_in = {spec["graph_input"]: np.ascontiguousarray(window[None], dtype=np.float32), **forwarded}
            out = runner(graph_in)
            res = refusal = None
            if prior is not None and new.ready:
                try:
                    out, res = apply_prior(prior, runner, graph_in, out)
                except OutsidePrior as err:
                    refusal = err
            outputs = {name: out[g] for name, g in zip(out_names, spec["graph_outputs"])}
            outputs[spec["ready_output"]] = np.array([[new.ready]])
            return (outputs, new.filled, res, refusal), new

        outputs, filled, res, refusal = await asyncio.get_running_loop().run_in_executor(
            self.executor,
            lambda: sequences.step(
                seq, step, start=bool(params.get("sequence_start")), end=bool(params.get("sequence_end"))
            ),
        )
        self.metrics.execution(mv.key, 1)
        if refusal is not None:
            self.metrics.prior_refusal(mv.key)
            raise ServingError(422, f"model {mv.name!r}, sequence {seq!r}: {refusal}")
        extra = {"sequence_id": seq, "samples": filled}
        if res is not None:
            self.metrics.prior(mv.key, int(res.drawn.sum()), int(res.inside.sum()))
            extra.update(response_parameters(res))
        return outputs, extra
