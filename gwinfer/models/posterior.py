"""Posterior estimators q(theta | x) behind one interface (Green, Simpson & Gair 2020; DINGO/sbi style).

Contract of every :class:`PosteriorEstimator` (``D`` = ``theta_dim``, ``S`` = ``x_shape``):

* data ``x``: float32 (batch, *S) with S = (n_detectors, n_samples) (whitened strain; embedded by a
  :class:`~gwinfer.models.resnet1d.ResNet1D`) or S = (F,) (flat features; embedded by an MLP);
* parameters ``theta``: float32 (batch, D) in physical units;
* ``fit_standardization(theta, x)`` once on a training sample: fits the affine theta standardisation
  (per column) and the x standardisation (per feature for flat x; one RMS scale for strain), both stored
  as buffers so a saved model carries its own units;
* ``log_prob(theta, x) -> (batch,)``: log density in the PHYSICAL parameter space, i.e. the density of
  the standardised u = (theta - mean) / std minus ``sum(log std)`` (the log-Jacobian);
* ``sample(x, n) -> (batch, n, D)`` physical samples; a single x of shape S gives (n, D). Runs under
  ``torch.no_grad`` and does not change train/eval mode (call ``eval()`` first: dropout/batch-norm);
* ``sample_and_log_prob(x, n) -> ((batch, n, D), (batch, n))``: samples and their physical log density;
* ``loss(theta, x) -> (batch,)``: per-sample training loss for :mod:`gwinfer.training`, computed in the
  standardised space (it differs from the physical one by the constant ``sum(log std)``): the negative
  log-likelihood for flows and the Gaussian, the negative (annealed) ELBO for the CVAEs;
* ``spec() -> {"kind", "config", "theta_dim", "x_shape"}`` (plain data) and a class attribute ``kind``.

Shapes and dtypes are checked at the boundary; a mismatch raises a one-line :class:`GwinferError`
naming the expected shape. Estimators are built by :func:`build_estimator` and written/read as single
files by :func:`save_estimator` / :func:`load_estimator` (loadable with ``torch.load(weights_only=True)``;
a trainer checkpoint holding ``model_spec``/``model_state`` also loads). They are not registered in
:data:`gwinfer.models.registry.MODEL_KINDS`, whose constructor signature (``n_samples`` only) and payload
check are specific to the point estimators.

Kinds: ``gaussian`` (this module), ``maf``, ``nsf``, ``iaf`` (:mod:`gwinfer.models.flows`), ``cvae``,
``cvae_plus`` (:mod:`gwinfer.models.cvae`). This package never imports lalsimulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gwinfer.config import from_dict, to_dict
from gwinfer.errors import GwinferError
from gwinfer.models.heads import mlp
from gwinfer.models.resnet1d import ResNet1D, ResNet1DConfig
from gwinfer.models.standardize import Standardizer
from gwinfer.models.svd_embedding import SVDEmbedding

FILE_FORMAT = "gwinfer-posterior"
FORMAT_VERSION = 1
EMBEDDINGS = ("auto", "mlp", "resnet", "svd")


def _positive_ints(values: tuple[int, ...], where: str) -> None:
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise GwinferError(f"{where} = {list(values)} must hold integers >= 1")


def _positive_int(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GwinferError(f"{where} = {value!r} must be an integer >= 1")


@dataclass(frozen=True)
class EmbeddingConfig:
    """The network compressing x into a context vector of ``context_dim`` numbers.

    ``kind``: ``"resnet"`` (x of shape (n_detectors, n_samples)), ``"svd"`` (same x; projection on the
    leading ``components`` singular vectors of the training data, then an MLP:
    :class:`~gwinfer.models.svd_embedding.SVDEmbedding`), ``"mlp"`` (x flattened) or ``"auto"`` (resnet for
    2-D x shapes, mlp for flat ones). ``hidden`` sizes the MLP of ``mlp`` and ``svd`` (GELU between layers).
    """

    kind: str = "auto"
    context_dim: int = 32
    hidden: tuple[int, ...] = (128, 128)
    resnet: ResNet1DConfig = field(default_factory=ResNet1DConfig)
    components: int = 128  # svd only

    def __post_init__(self) -> None:
        if self.kind not in EMBEDDINGS:
            raise GwinferError(f"embedding.kind = {self.kind!r}; choose one of {list(EMBEDDINGS)}")
        _positive_int(self.context_dim, "embedding.context_dim")
        _positive_ints(self.hidden, "embedding.hidden")
        _positive_int(self.components, "embedding.components")


def build_embedding(config: EmbeddingConfig, x_shape: tuple[int, ...]) -> nn.Module:
    """The embedding network (batch, *x_shape) -> (batch, context_dim) described by ``config``."""
    kind = config.kind
    if kind == "auto":
        kind = "resnet" if len(x_shape) == 2 else "mlp"
    if kind in ("resnet", "svd") and len(x_shape) != 2:
        raise GwinferError(f"embedding.kind = {kind!r} needs x of shape (n_detectors, n_samples), got {x_shape}")
    if kind == "resnet":
        return ResNet1D(x_shape[0], x_shape[1], config.context_dim, config.resnet)
    if kind == "svd":
        return SVDEmbedding(x_shape[0], x_shape[1], config.components, config.hidden, config.context_dim)
    n_in = math.prod(x_shape)
    return nn.Sequential(nn.Flatten(1), mlp([n_in, *config.hidden, config.context_dim], nn.GELU))


def _checking() -> bool:
    return not (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling())


class PosteriorEstimator(nn.Module):
    """Base class: standardisation, embedding, boundary checks and the public API (module docstring).

    Subclasses implement, in the standardised parameter space u and on the context c (batch, C):
    ``_log_prob(u, c) -> (batch,)`` and ``_sample(c, n) -> (batch, n, D)``; optionally ``_loss`` (default
    ``-_log_prob``) and ``_sample_and_log_prob(c, n)`` (default: sample, then evaluate).
    """

    kind = ""
    config_class: type = object

    def __init__(self, config: Any, theta_dim: int, x_shape: int | tuple[int, ...] | list[int]) -> None:
        super().__init__()
        _positive_int(theta_dim, "theta_dim")
        shape = (x_shape,) if isinstance(x_shape, int) else tuple(x_shape)
        if len(shape) not in (1, 2):
            raise GwinferError(f"x_shape = {list(shape)} must be (n_features,) or (n_detectors, n_samples)")
        _positive_ints(shape, "x_shape")
        self.config = config
        self.theta_dim = int(theta_dim)
        self.x_shape: tuple[int, ...] = shape
        self.theta_scale = Standardizer(self.theta_dim)
        self.x_scale = Standardizer(shape if len(shape) == 1 else ())
        self.embedding = build_embedding(config.embedding, shape)
        self.context_dim = config.embedding.context_dim

    # --- boundary checks ---------------------------------------------------------------------------
    def _shape_text(self, batch: str = "batch") -> str:
        return "(" + ", ".join([batch, *map(str, self.x_shape)]) + ")"

    def _check_x(self, x: Any, single_ok: bool = False) -> bool:
        """Validate x; returns True if it is a single example of shape x_shape (only when single_ok)."""
        if not isinstance(x, Tensor):
            raise GwinferError(f"x must be a torch tensor of shape {self._shape_text()}, got {type(x).__name__}")
        if single_ok and tuple(x.shape) == self.x_shape:
            single = True
        elif x.ndim == len(self.x_shape) + 1 and tuple(x.shape[1:]) == self.x_shape and x.shape[0] >= 1:
            single = False
        else:
            extra = f" or {tuple(self.x_shape)}" if single_ok else ""
            raise GwinferError(f"x has shape {tuple(x.shape)}; expected {self._shape_text()}{extra}")
        if x.dtype != torch.float32:
            raise GwinferError(f"x has dtype {x.dtype}; expected torch.float32")
        return single

    def _check_theta(self, theta: Any, batch: int) -> None:
        d = self.theta_dim
        if not isinstance(theta, Tensor):
            raise GwinferError(f"theta must be a torch tensor of shape ({batch}, {d}), got {type(theta).__name__}")
        if theta.ndim != 2 or theta.shape[0] != batch or theta.shape[1] != d:
            raise GwinferError(f"theta has shape {tuple(theta.shape)}; expected ({batch}, {d})")
        if theta.dtype != torch.float32:
            raise GwinferError(f"theta has dtype {theta.dtype}; expected torch.float32")

    @property
    def is_fitted(self) -> bool:
        """True once ``fit_standardization`` has run (or a fitted state was loaded)."""
        return bool(self.theta_scale.fitted)

    def _check_ready(self) -> None:
        if not self.is_fitted:
            raise GwinferError(f"{self.kind} estimator is not standardised: call fit_standardization(theta, x) first")

    # --- standardisation ---------------------------------------------------------------------------
    @torch.no_grad()
    def fit_standardization(self, theta: Tensor, x: Tensor, signals: Tensor | None = None) -> None:
        """Fit the theta standardisation on ``theta`` (N, D), the x one on ``x`` (N, *x_shape) and, for the
        ``svd`` embedding, its projection basis on the standardised noise-free ``signals`` (same shape as
        x; default: x itself)."""
        self._check_x(x)
        if signals is not None:
            self._check_x(signals)
        self._check_theta(theta, x.shape[0])
        if x.shape[0] < 2:
            raise GwinferError("fit_standardization needs at least 2 training examples")
        self.theta_scale.fit(theta)
        self.x_scale.fit(x, center=len(self.x_shape) == 1)
        if isinstance(self.embedding, SVDEmbedding):
            self.embedding.fit(self.x_scale(x), None if signals is None else self.x_scale(signals))

    @property
    def log_jacobian(self) -> Tensor:
        """``sum(log std)``: log p_physical(theta) = log p_standardised(u) - log_jacobian."""
        return torch.log(self.theta_scale.std).sum()

    def context(self, x: Tensor) -> Tensor:
        """Context vector (batch, context_dim) of validated x (batch, *x_shape)."""
        return self.embedding(self.x_scale(x))

    # --- to implement ------------------------------------------------------------------------------
    def _log_prob(self, u: Tensor, c: Tensor) -> Tensor:
        raise NotImplementedError

    def _sample(self, c: Tensor, n: int) -> Tensor:
        raise NotImplementedError

    def _loss(self, u: Tensor, c: Tensor) -> Tensor:
        return -self._log_prob(u, c)

    def _sample_and_log_prob(self, c: Tensor, n: int) -> tuple[Tensor, Tensor]:
        u = self._sample(c, n)  # (B, n, D)
        b = c.shape[0]
        lp = self._log_prob(u.reshape(b * n, -1), c.repeat_interleave(n, dim=0))
        return u, lp.reshape(b, n)

    # --- public API --------------------------------------------------------------------------------
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """Log posterior density (batch,) of physical ``theta`` (batch, D) given ``x`` (batch, *x_shape)."""
        if _checking():
            self._check_x(x)
            self._check_theta(theta, x.shape[0])
            self._check_ready()
        return self._log_prob(self.theta_scale(theta), self.context(x)) - self.log_jacobian

    def loss(self, theta: Tensor, x: Tensor) -> Tensor:
        """Per-sample training loss (batch,) in the standardised space (see the module docstring)."""
        self._check_x(x)
        self._check_theta(theta, x.shape[0])
        self._check_ready()
        return self._loss(self.theta_scale(theta), self.context(x))

    def _prepare_sample(self, x: Tensor, n: int) -> tuple[Tensor, bool]:
        single = self._check_x(x, single_ok=True)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise GwinferError(f"number of samples n = {n!r} must be an integer >= 1")
        self._check_ready()
        return (x[None] if single else x), single

    @torch.no_grad()
    def sample(self, x: Tensor, n: int) -> Tensor:
        """``n`` physical posterior samples per x: (batch, n, D), or (n, D) for a single x of shape x_shape."""
        xb, single = self._prepare_sample(x, n)
        theta = self.theta_scale.inverse(self._sample(self.context(xb), n))
        return theta[0] if single else theta

    @torch.no_grad()
    def sample_and_log_prob(self, x: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """Samples as :meth:`sample` and their physical log density ((batch, n) or (n,))."""
        xb, single = self._prepare_sample(x, n)
        u, lp = self._sample_and_log_prob(self.context(xb), n)
        theta, lp = self.theta_scale.inverse(u), lp - self.log_jacobian
        return (theta[0], lp[0]) if single else (theta, lp)

    def forward(self, theta: Tensor, x: Tensor) -> Tensor:
        """Same as :meth:`log_prob`."""
        return self.log_prob(theta, x)

    def spec(self) -> dict[str, Any]:
        """JSON-friendly description that rebuilds this estimator."""
        return {"kind": self.kind, "config": to_dict(self.config), "theta_dim": self.theta_dim,
                "x_shape": list(self.x_shape)}


# --- Gaussian ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GaussianConfig:
    """:class:`GaussianPosterior`: an MLP (GELU) on the context emits the mean and a Cholesky factor."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    hidden: tuple[int, ...] = (64, 64)
    min_scale: float = 1e-4  # floor of the Cholesky diagonal (standardised units)

    def __post_init__(self) -> None:
        _positive_ints(self.hidden, "gaussian.hidden")
        if not self.min_scale >= 0.0:
            raise GwinferError(f"gaussian.min_scale = {self.min_scale} must be >= 0")


class GaussianPosterior(PosteriorEstimator):
    """Multivariate normal with full covariance Sigma = L L^T, L lower-triangular with softplus diagonal."""

    kind = "gaussian"
    config_class = GaussianConfig

    def __init__(self, config: GaussianConfig | None = None, theta_dim: int = 2,
                 x_shape: int | tuple[int, ...] = (2,)) -> None:
        config = config or GaussianConfig()
        super().__init__(config, theta_dim, x_shape)
        d = self.theta_dim
        self.n_tril = d * (d - 1) // 2
        self.net = mlp([self.context_dim, *config.hidden, 2 * d + self.n_tril], nn.GELU)
        rows, cols = torch.tril_indices(d, d, offset=-1)
        self.register_buffer("tril_rows", rows, persistent=False)
        self.register_buffer("tril_cols", cols, persistent=False)

    def distribution(self, c: Tensor) -> torch.distributions.MultivariateNormal:
        """N(mean, L L^T) in the standardised space for context c (batch, C)."""
        d = self.theta_dim
        out = self.net(c)
        mean, raw_diag, off = out[:, :d], out[:, d:2 * d], out[:, 2 * d:]
        diag = nn.functional.softplus(raw_diag + 0.5413) + self.config.min_scale  # softplus(0.5413) = 1
        tril = torch.diag_embed(diag)
        if self.n_tril:
            tril[:, self.tril_rows, self.tril_cols] = off
        return torch.distributions.MultivariateNormal(mean, scale_tril=tril, validate_args=False)

    def _log_prob(self, u: Tensor, c: Tensor) -> Tensor:
        return self.distribution(c).log_prob(u)

    def _sample(self, c: Tensor, n: int) -> Tensor:
        return self.distribution(c).rsample((n,)).transpose(0, 1)

    def _sample_and_log_prob(self, c: Tensor, n: int) -> tuple[Tensor, Tensor]:
        dist = self.distribution(c)
        u = dist.rsample((n,))
        return u.transpose(0, 1), dist.log_prob(u).transpose(0, 1)


# --- building, saving, loading -------------------------------------------------------------------------
def estimator_kinds() -> dict[str, type[PosteriorEstimator]]:
    """``{kind: class}`` of every posterior estimator (imports the flow and CVAE modules on first use)."""
    from gwinfer.models.cvae import CVAEPlus, CVAEPosterior
    from gwinfer.models.flows import IAFPosterior, MAFPosterior, NSFPosterior

    classes = (GaussianPosterior, MAFPosterior, NSFPosterior, IAFPosterior, CVAEPosterior, CVAEPlus)
    return {cls.kind: cls for cls in classes}


def spec_class(spec: Any, what: str = "posterior spec") -> type[PosteriorEstimator]:
    """The estimator class named by ``spec["kind"]``; one-line errors for a non-mapping or unknown kind."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise GwinferError(f'{what} must be a mapping with a "kind" (and optional "config")')
    kinds = estimator_kinds()
    if spec["kind"] not in kinds:
        raise GwinferError(f"unknown posterior kind {spec['kind']!r}; choose one of {sorted(kinds)}")
    return kinds[spec["kind"]]


def build_estimator(spec: dict[str, Any], theta_dim: int | None = None,
                    x_shape: int | tuple[int, ...] | None = None) -> PosteriorEstimator:
    """A fresh (unfitted) estimator from ``spec = {"kind", "config", "theta_dim", "x_shape"}``.

    ``theta_dim``/``x_shape`` arguments fill in (or must agree with) the spec's entries.
    """
    cls = spec_class(spec)
    kind = cls.kind
    unknown = sorted(set(spec) - {"kind", "config", "theta_dim", "x_shape"})
    if unknown:
        raise GwinferError(
            f"posterior spec: unknown key(s) {unknown}; accepted: ['config', 'kind', 'theta_dim', 'x_shape']"
        )
    d = spec.get("theta_dim", theta_dim)
    s = spec.get("x_shape", x_shape)
    if d is None or s is None:
        raise GwinferError("posterior spec: theta_dim and x_shape are needed (in the spec or as arguments)")
    if theta_dim is not None and theta_dim != d:
        raise GwinferError(f"posterior spec has theta_dim = {d} but {theta_dim} was requested")
    if x_shape is not None and list(_as_shape(x_shape)) != list(_as_shape(s)):
        raise GwinferError(
            f"posterior spec has x_shape = {list(_as_shape(s))} but {list(_as_shape(x_shape))} was requested"
        )
    config = from_dict(cls.config_class, spec.get("config") or {}, where=f"posterior.{kind}")
    return cls(config, theta_dim=d, x_shape=_as_shape(s))


def _as_shape(s: Any) -> tuple[int, ...]:
    if isinstance(s, int) and not isinstance(s, bool):
        return (s,)
    if isinstance(s, (list, tuple)):
        return tuple(s)
    raise GwinferError(f"x_shape = {s!r} must be an integer or a list of integers")


def estimator_payload(model: PosteriorEstimator, metadata: dict[str, Any]) -> dict[str, Any]:
    """The dict :func:`save_estimator` writes."""
    from gwinfer.models.registry import file_payload

    if not isinstance(model, PosteriorEstimator):
        raise GwinferError(f"cannot save a {type(model).__name__}: not a gwinfer posterior estimator")
    return file_payload(model, metadata, FILE_FORMAT, FORMAT_VERSION)


def save_estimator(path: str | Path, model: PosteriorEstimator, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (spec + state_dict, including fitted standardisation) and metadata atomically."""
    from gwinfer.models.registry import write_payload

    return write_payload(path, estimator_payload(model, dict(metadata or {})))


def load_estimator(path: str | Path,
                   map_location: str | torch.device = "cpu") -> tuple[PosteriorEstimator, dict[str, Any]]:
    """Load an estimator file (or a trainer checkpoint of one); returns (estimator in eval mode, metadata)."""
    p = Path(path)
    if not p.is_file():
        raise GwinferError(f"estimator file {p} does not exist")
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 (the unpickler raises many kinds on foreign bytes)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GwinferError(f"{p} is not a gwinfer estimator file (torch.load failed: {first[:200]})") from None
    if not isinstance(payload, dict) or not {"model_state", "model_spec"} <= set(payload):
        raise GwinferError(f'{p} is not a gwinfer estimator file (no "model_spec"/"model_state" entries)')
    spec, state = payload["model_spec"], payload["model_state"]
    metadata = payload.get("metadata") or {}
    if not isinstance(spec, dict) or not isinstance(state, dict) or not isinstance(metadata, dict):
        raise GwinferError(f"{p} is not a gwinfer estimator file (malformed spec, state or metadata)")
    model = build_estimator(spec)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise GwinferError(
            f"{p}: state_dict does not match a {model.kind} estimator built from its spec "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for k, v in expected.items():
        if not isinstance(state[k], Tensor) or tuple(state[k].shape) != tuple(v.shape):
            raise GwinferError(
                f"{p}: state_dict entry {k} does not match the shape {tuple(v.shape)} of the spec's model"
            )
    model.load_state_dict(state, strict=True)
    model.eval()
    metadata = dict(metadata)
    metadata.setdefault("gwinfer_version", payload.get("gwinfer_version", "unknown"))
    return model, metadata
