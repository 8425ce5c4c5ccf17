"""A thin client over ``tritonclient.http`` that learns a model's tensors from the server's metadata.

    model = ServedModel("127.0.0.1:8000", "rb-small")
    theta = model(x)                       # x float32 (batch, 2, T) -> (batch, 3)
    out = model.infer({"waveform": x})     # all outputs by name

Nothing is hand-written: input/output names, shapes and datatypes come from
``GET /v2/models/<name>``. Works against the gwinfer server and a real Triton server alike.

Exported posterior estimators (:mod:`gwinfer.serving.export.posterior`)::

    cols = sample_posterior("127.0.0.1:8000", "gw5d-iaf", strain, n=10_000, seed=1)
    cols["mass_1"]                          # (10000,) physical samples; one key per parameter

The noise is drawn here (``numpy.random.default_rng(seed)``), so the same seed gives the same raw draws
from any server; the column names come from the model configuration's ``parameter_names`` parameter. A
model exported with its training prior returns draws inside it only: ``gwinfer serve`` replaces the others
itself (and reports it), for a server that runs only the graph (a real Triton) this client does
(:func:`posterior_draws`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError

MAX_REQUEST_VALUES = 1 << 22  # noise values per request (16 MiB of FP32): larger draws are split


def tensor_specs(entries: list[dict[str, Any]]) -> dict[str, tuple[str, list[int]]]:
    """``{name: (datatype, shape)}`` of the ``inputs`` or ``outputs`` of KServe v2 model metadata (-1: any)."""
    return {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in entries}


def make_input(
    module: Any, np_dtype: Any, specs: dict[str, tuple[str, list[int]]], name: str, value: Any, binary: bool = True
) -> Any:
    """A ``module.InferInput`` (tritonclient.http or .http.aio) of ``value`` for input ``name`` of ``specs``,
    cast to its datatype; one-line GwinferError if the shape does not fit."""
    datatype, shape = specs[name]
    arr = np.ascontiguousarray(value, dtype=np_dtype(datatype))
    if arr.ndim != len(shape) or any(s != -1 and s != a for s, a in zip(shape, arr.shape)):
        raise GwinferError(f"input {name!r} has shape {arr.shape}; the server expects {shape} (-1: any)")
    t = module.InferInput(name, list(arr.shape), datatype)
    t.set_data_from_numpy(arr, binary_data=binary)
    return t


Specs = dict[str, tuple[str, list[int]]]  # {name: (datatype, shape)} of a model's inputs or outputs


def request_tensors(
    module: Any, np_dtype: Any, model: str, in_specs: Specs, out_specs: Specs, inputs: dict[str, Any], binary: bool
) -> tuple[list[Any], list[Any]]:
    """(InferInputs, InferRequestedOutputs) of ``module`` (tritonclient.http or .http.aio) for ``inputs``
    {name: array}, exactly the model's inputs; every output requested."""
    if set(inputs) != set(in_specs):
        raise GwinferError(f"model {model!r} takes inputs {sorted(in_specs)}; got {sorted(inputs)}")
    tensors = [make_input(module, np_dtype, in_specs, n, inputs[n], binary) for n in in_specs]
    return tensors, [module.InferRequestedOutput(n, binary_data=binary) for n in out_specs]


class InferenceFailed(GwinferError):
    """An inference request the server refused: the one-line message and the server's ``status`` (HTTP
    status as a string, e.g. ``"422"``: too few posterior draws inside the training prior; None if unknown)."""

    def __init__(self, message: str, status: Any = None) -> None:
        super().__init__(message)
        self.status = None if status is None else str(status)


class ServedModel:
    """A model served over KServe v2 HTTP, called like a function on numpy arrays (binary tensors)."""

    def __init__(
        self,
        url: str,
        name: str,
        version: str = "",
        token: str | None = None,
        binary: bool = True,
        timeout: float = 60.0,
    ) -> None:
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
        self.inputs, self.outputs = tensor_specs(meta["inputs"]), tensor_specs(meta["outputs"])

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
        return parameter_names_of(self.model_config())

    def __enter__(self) -> ServedModel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def infer(
        self,
        inputs: dict[str, Any],
        *,
        sequence_id: int | str = 0,
        sequence_start: bool = False,
        sequence_end: bool = False,
    ) -> dict[str, np.ndarray]:
        """All outputs {name: array} for inputs {name: array} (names as in the server's metadata)."""
        return self.infer_response(
            inputs, sequence_id=sequence_id, sequence_start=sequence_start, sequence_end=sequence_end
        )[0]

    def infer_response(
        self,
        inputs: dict[str, Any],
        *,
        sequence_id: int | str = 0,
        sequence_start: bool = False,
        sequence_end: bool = False,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(all outputs {name: array}, the response's parameters {key: value}) for inputs {name: array}."""
        tensors, outs = request_tensors(
            self._http, self._np_dtype, self.name, self.inputs, self.outputs, inputs, self.binary
        )
        try:
            res = self.client.infer(
                self.name,
                tensors,
                model_version=self.version,
                outputs=outs,
                headers=self.headers,
                sequence_id=sequence_id,
                sequence_start=sequence_start,
                sequence_end=sequence_end,
            )
        except self._exc as err:
            raise InferenceFailed(f"inference on {self.name!r} failed: {err.message()}", err.status()) from None
        params = (res.get_response() or {}).get("parameters") or {}
        return {n: res.as_numpy(n) for n in self.outputs}, dict(params) if isinstance(params, dict) else {}

    def __call__(self, x: Any, **sequence: Any) -> np.ndarray:
        """The first output of the model on its single input ``x``."""
        if len(self.inputs) != 1:
            raise GwinferError(f"model {self.name!r} has {len(self.inputs)} inputs; use infer({{name: array}})")
        out = self.infer({next(iter(self.inputs)): x}, **sequence)
        return out[next(iter(self.outputs))]


@dataclass
class PosteriorDraws:
    """Posterior draws of a served model (:func:`posterior_draws`).

    ``columns`` {parameter name: (n,) or (B, n)}, ``log_prob`` (n,) or (B, n); ``acceptance``: draws inside
    the training prior over draws made (1.0 without a prior); ``prior``: who applied the model's training
    prior - ``"server"`` (gwinfer serve, reported in its response parameters), ``"client"`` (this client,
    for a server that runs only the graph: a real Triton) or ``"none"`` (the model carries no prior)."""

    columns: dict[str, np.ndarray]
    log_prob: np.ndarray
    acceptance: float
    prior: str


def posterior_draws(
    url: str | ServedModel,
    name: str,
    strain: Any,
    n: int,
    seed: int | None = None,
    *,
    version: str = "",
    token: str | None = None,
    max_request_values: int = MAX_REQUEST_VALUES,
) -> PosteriorDraws:
    """``n`` posterior draws from an exported posterior model, inside its training prior if it has one.

    Arguments as :func:`sample_posterior`. A model exported with its training prior carries it in its
    configuration (``prior``, ``prior_time_offset`` parameters, :mod:`gwinfer.serving.export.prior`).
    ``gwinfer serve`` applies it and says so in its response parameters (``prior_acceptance``,
    ``prior_draws``, ``prior_inside``); a server that does not (a real Triton runs only the graph) gets the
    same rule applied here (:func:`gwinfer.evaluation.prior_support.reject_and_replace`): draws outside are
    replaced by further draws with noise from the same ``default_rng(seed)`` (after the first (B, n, D)),
    at most :func:`gwinfer.serving.runtime.prior.draw_budget` per event; too few inside is one line.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GwinferError(f"number of samples n = {n!r} must be an integer >= 1")
    own = not isinstance(url, ServedModel)
    model = ServedModel(url, name, version=version, token=token) if own else url
    try:
        if "noise" not in model.inputs or set(model.outputs) != {"samples", "log_prob"} or len(model.inputs) != 2:
            raise GwinferError(
                f"model {model.name!r} is not an exported posterior (inputs {sorted(model.inputs)}, "
                f"outputs {sorted(model.outputs)})"
            )
        x_name = next(k for k in model.inputs if k != "noise")
        x_shape = model.inputs[x_name][1][1:]
        d = model.inputs["noise"][1][-1]
        x = np.ascontiguousarray(strain, dtype=np.float32)
        single = list(x.shape) == x_shape
        if single:
            x = x[None]
        elif x.ndim != len(x_shape) + 1 or list(x.shape[1:]) != x_shape:
            raise GwinferError(
                f"strain has shape {x.shape}; model {model.name!r} takes {x_shape} or (batch, {x_shape})"
            )
        cfg = model.model_config()
        names = parameter_names_of(cfg) or [f"theta_{i}" for i in range(d)]
        if len(names) != d:
            raise GwinferError(f"model {model.name!r} has {len(names)} parameter_names for {d} parameters")
        b = x.shape[0]
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((b, n, d)).astype(np.float32)
        requests = Requests(model, x_name, max(1, int(cfg.get("max_batch_size", 1) or 1)), max_request_values)
        samples, log_prob = requests.run(x, noise)
        samples, log_prob, acceptance, applied = in_training_prior(requests, cfg, names, x, rng, samples, log_prob)
    finally:
        if own:
            model.close()
    if single:
        samples, log_prob = samples[0], log_prob[0]
    columns = {k: samples[..., i] for i, k in enumerate(names)}
    return PosteriorDraws(columns, log_prob, acceptance, applied)


class Requests:
    """Inference requests of a posterior model: at most ``events`` events and ``max_values`` noise values
    each; remembers the prior work the server reported (``inside``, ``drawn``, ``reported``)."""

    def __init__(self, model: ServedModel, x_name: str, events: int, max_values: int) -> None:
        self.model, self.x_name, self.events, self.max_values = model, x_name, events, max_values
        self.inside = self.drawn = 0
        self.reported = True  # every response so far carried the server's prior parameters

    def run(self, x: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(samples (B, N, D), log_prob (B, N)) of strain ``x`` (B, ...) and ``noise`` (B, N, D)."""
        b, n, d = noise.shape
        samples = np.empty((b, n, d), dtype=np.float32)
        log_prob = np.empty((b, n), dtype=np.float32)
        for e0 in range(0, b, self.events):
            e1 = min(b, e0 + self.events)
            step = max(1, self.max_values // ((e1 - e0) * d))
            for s0 in range(0, n, step):
                s1 = min(n, s0 + step)
                out, params = self.model.infer_response({self.x_name: x[e0:e1], "noise": noise[e0:e1, s0:s1]})
                samples[e0:e1, s0:s1], log_prob[e0:e1, s0:s1] = out["samples"], out["log_prob"]
                if "prior_acceptance" in params:
                    self.inside += int(params.get("prior_inside", 0))
                    self.drawn += int(params.get("prior_draws", 0))
                else:
                    self.reported = False
        return samples, log_prob


def in_training_prior(
    requests: Requests,
    cfg: dict[str, Any],
    names: list[str],
    x: np.ndarray,
    rng: np.random.Generator,
    samples: np.ndarray,
    log_prob: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float, str]:
    """(samples, log_prob, acceptance, who applied the prior) of a model's first draws: as they are without
    a prior in the configuration or when the server applied it; else rejected and replaced here."""
    from gwinfer.serving.export.prior import prior_of_parameters
    from gwinfer.serving.repository.config import config_parameters

    prior = prior_of_parameters(config_parameters(cfg))
    if prior is None:
        return samples, log_prob, 1.0, "none"
    if requests.reported:
        return samples, log_prob, (requests.inside / requests.drawn if requests.drawn else 1.0), "server"
    from gwinfer.evaluation.prior_support import reject_and_replace
    from gwinfer.serving.runtime.prior import draw_budget

    b, n, d = samples.shape

    def draw(events: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        z = rng.standard_normal((len(events), int(sizes.max()), d)).astype(np.float32)
        s, lp = requests.run(np.ascontiguousarray(x[events]), z)
        return np.concatenate([s, lp[..., None]], axis=-1)

    try:
        res = reject_and_replace(
            draw,
            n,
            b,
            names,
            prior.log_prior(names),
            first=np.concatenate([samples, log_prob[..., None]], axis=-1),
            max_drawn=draw_budget(n),
        )
    except GwinferError as err:
        raise GwinferError(f"model {requests.model.name!r}: {err}") from None
    return res.draws[..., :d].astype(np.float32), res.draws[..., d].astype(np.float32), res.fraction, "client"


def sample_posterior(
    url: str | ServedModel,
    name: str,
    strain: Any,
    n: int,
    seed: int | None = None,
    *,
    version: str = "",
    token: str | None = None,
    return_log_prob: bool = False,
    max_request_values: int = MAX_REQUEST_VALUES,
) -> Any:
    """``n`` posterior samples from an exported posterior model, as ``{parameter name: array}``.

    ``url``: the server (``"127.0.0.1:8000"``; a new connection, metadata and config requests each call)
    or an open :class:`ServedModel` of the model (reused: one inference request per call; ``name``,
    ``version`` and ``token`` are then its own).

    ``strain``: one event (the model's input shape, e.g. (n_det, n_samples)) -> arrays of shape (n,);
    or a batch (B, n_det, n_samples) -> arrays (B, n). The standard-normal noise (B, n, D) is drawn with
    ``numpy.random.default_rng(seed).standard_normal`` (float64, then cast to float32) before any
    request, so the raw draws do not depend on how the work is split: requests carry at most the
    model's ``max_batch_size`` events and ``max_request_values`` noise values each (binary tensors over
    HTTP). ``return_log_prob=True`` returns ``(columns, log_prob)`` with log_prob (n,) or (B, n).
    Column names come from the model configuration's ``parameter_names`` (theta_0, ... if absent).

    A model exported with its training prior returns draws inside it only (by gwinfer serve, or here for
    a server that runs only the graph): see :func:`posterior_draws`, which also gives the acceptance.
    """
    draws = posterior_draws(
        url, name, strain, n, seed, version=version, token=token, max_request_values=max_request_values
    )
    return (draws.columns, draws.log_prob) if return_log_prob else draws.columns


def parameter_names_of(cfg: dict[str, Any]) -> list[str] | None:
    """The ``parameter_names`` model parameter of a configuration (columns of a posterior's samples), or None."""
    from gwinfer.serving.repository.config import config_parameters

    names = config_parameters(cfg).get("parameter_names")
    return names.split(",") if names else None


# --- async client -------------------------------------------------------
class AsyncServedModel:
    """The asyncio counterpart of :class:`ServedModel` on ``tritonclient.http.aio`` (binary tensors).

    ``model = await AsyncServedModel.open(url, name)`` reads the tensors (names, datatypes, shapes) from
    the server's metadata and the configuration once; ``await model.infer({name: array}, sequence_id=,
    sequence_start=, sequence_end=)`` returns every output; ``await model.close()`` (or ``async with``).
    """

    def __init__(self, url: str, name: str, version: str = "", token: str | None = None, timeout: float = 60.0) -> None:
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
    async def open(
        cls, url: str, name: str, version: str = "", token: str | None = None, timeout: float = 60.0
    ) -> AsyncServedModel:
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
        self.inputs, self.outputs = tensor_specs(self.metadata["inputs"]), tensor_specs(self.metadata["outputs"])
        return self

    @property
    def parameters(self) -> dict[str, str]:
        """The configuration's free-form ``parameters`` as ``{key: string}``."""
        from gwinfer.serving.repository.config import config_parameters

        return config_parameters(self.config)

    async def close(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> AsyncServedModel:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def infer(
        self,
        inputs: dict[str, Any],
        *,
        sequence_id: int | str = 0,
        sequence_start: bool = False,
        sequence_end: bool = False,
    ) -> dict[str, np.ndarray]:
        """All outputs {name: array} for inputs {name: array} (names as in the server's metadata)."""
        out, _ = await self.infer_response(
            inputs, sequence_id=sequence_id, sequence_start=sequence_start, sequence_end=sequence_end
        )
        return out

    async def infer_response(
        self,
        inputs: dict[str, Any],
        *,
        sequence_id: int | str = 0,
        sequence_start: bool = False,
        sequence_end: bool = False,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(all outputs {name: array}, the response's parameters); :class:`InferenceFailed` (with the
        server's status) if the server refuses the request."""
        tensors, outs = request_tensors(
            self._http, self._np_dtype, self.name, self.inputs, self.outputs, inputs, binary=True
        )
        try:
            res = await self.client.infer(
                self.name,
                tensors,
                model_version=self.version,
                outputs=outs,
                headers=self.headers,
                sequence_id=sequence_id,
                sequence_start=sequence_start,
                sequence_end=sequence_end,
            )
        except self._exc as err:
            raise InferenceFailed(f"inference on {self.name!r} failed: {err.message()}", err.status()) from None
        params = (res.get_response() or {}).get("parameters") or {}
        return {n: res.as_numpy(n) for n in self.outputs}, dict(params) if isinstance(params, dict) else {}
