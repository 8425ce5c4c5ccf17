"""Posterior estimators q(theta | x) behind one interface (Green, Simpson & Gair 2020; DINGO/sbi style).

Contract of every :class:`PosteriorEstimator` (``D`` = ``theta_dim``, ``S`` = ``x_shape``):

* data ``x``: float32 (batch, *S) with S = (n_detectors, n_samples) (whitened strain; embedded by a
  :class:`~gwinfer.models.posterior.resnet1d.ResNet1D`) or S = (F,) (flat features; embedded by an MLP);
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
naming the expected shape. Estimators are built by :func:`gwinfer.models.builder.build_estimator` and written/read as single
files by :func:`~gwinfer.models.builder.save_estimator` / :func:`~gwinfer.models.builder.load_estimator` (loadable with ``torch.load(weights_only=True)``;
a trainer checkpoint holding ``model_spec``/``model_state`` also loads). Their kinds are listed in
:data:`gwinfer.models.registry.POSTERIOR_ESTIMATORS`.

Kinds: ``gaussian`` (:mod:`gwinfer.models.posterior.gaussian`), ``maf``, ``nsf``, ``iaf`` (:mod:`gwinfer.models.posterior.flows`), ``cvae``,
``cvae_plus`` (:mod:`gwinfer.models.posterior.cvae`). This package never imports lalsimulation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gwinfer.checks import positive_int, positive_ints
from gwinfer.config import to_dict
from gwinfer.errors import GwinferError
from gwinfer.models.base import checking
from gwinfer.models.posterior.embedding import build_embedding
from gwinfer.models.posterior.fd_embedding import FDEmbedding
from gwinfer.models.posterior.svd_embedding import SVDEmbedding
from gwinfer.models.standardize import Standardizer

FILE_FORMAT = "gwinfer-posterior"
FORMAT_VERSION = 1


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
        positive_int(theta_dim, "theta_dim")
        shape = (x_shape,) if isinstance(x_shape, int) else tuple(x_shape)
        if len(shape) not in (1, 2):
            raise GwinferError(f"x_shape = {list(shape)} must be (n_features,) or (n_detectors, n_samples)")
        positive_ints(shape, "x_shape")
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
        if isinstance(self.embedding, (SVDEmbedding, FDEmbedding)):
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
        if checking():
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
        positive_int(n, "number of samples n")
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
        return {
            "kind": self.kind,
            "config": to_dict(self.config),
            "theta_dim": self.theta_dim,
            "x_shape": list(self.x_shape),
        }
