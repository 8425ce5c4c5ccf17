"""Knowledge distillation of a posterior estimator (teacher) into a smaller, faster one (student).

After "Efficient Gravitational Wave Parameter Estimation via Knowledge Distillation: A ResNet1D-IAF
Approach": a frozen teacher (ResNet1D embedding + IAF) and a narrower/shallower student trained on

    loss_i = (1 - alpha) * NLL_i + alpha * KD_i            (per training example i; "none": loss_i = NLL_i)

* ``NLL_i`` = the student's own training loss on the simulated pair (theta_i, x_i) (``student.loss``: the
  negative log-likelihood in the student's standardised space for flows and the Gaussian).
* ``KD_i`` = the teacher-matching term, by ``matching``:

  - ``forward_kl``: KL(teacher || student) at x_i, estimated with ``teacher_samples`` = K draws
    theta'_k ~ teacher(. | x_i):  KL = -1/K sum_k log q_student(theta'_k | x_i) - H[teacher(. | x_i)].
    The teacher's entropy does not depend on the student, so it is DROPPED: KD_i is the cross-entropy,
    whose gradient is the KL's (its value is the KL plus a per-x constant). Both densities are taken in
    the standardised space of the STUDENT: teacher draws are mapped teacher-standardised -> physical ->
    student-standardised. :meth:`Distiller.fit_standardization` copies the teacher's fitted theta and x
    standardisation into the student, so the mapping is the identity and the student's NLL is in the same
    units as the teacher's validation loss. The forward KL is mass-covering: the student is pushed to put
    density wherever the teacher does (as maximum likelihood on the data does), not to collapse on a mode.
    Teacher draws are made in ``eval`` mode under ``no_grad`` (they are targets, never differentiated).
  - ``features``: FitNets-style hint loss (Romero et al. 2015) between context vectors,
    ``mean_k (P c_student - (c_teacher - m) / s)_k^2`` with a learned linear map P (student context_dim ->
    teacher context_dim) and m, s the per-dimension mean and spread of the teacher's context on the fit
    samples (fixed buffers). The projection acts on the STUDENT's side: the target is frozen and unit-scaled,
    so the loss cannot be lowered by shrinking both sides to zero, which projecting the teacher's context
    onto the student's (both sides trainable) would allow. P is trained with the student and discarded.
  - ``both``: forward_kl + feature_weight * features; ``features`` alone: feature_weight * features.
  - ``none``: no teacher term, loss = NLL (alpha is ignored): the same student trained directly, the
    ablation baseline.

Temperature. In classification KD the teacher's soft targets are softmax(z / T) = p^(1/T) / Z: the teacher
distribution raised to the power 1/T, broader for T > 1 ("dark knowledge" in the tails), plain KD at T = 1.
The same definition for a density, p_T(theta | x) proportional to p(theta | x)^(1/T), is what we target:

* Gaussian teacher: N(mu, Sigma)^(1/T) is exactly N(mu, T Sigma), i.e. the standard deviation scaled by
  sqrt(T) - implemented exactly (mu + sqrt(T) (theta - mu)).
* flow teacher (``maf``, ``nsf``, ``iaf``): the base N(0, I) is tempered, N(0, I)^(1/T) = N(0, T I)
  (base draws scaled by sqrt(T)), then pushed through the flow, one pass for an IAF. This equals
  p^(1/T) up to the Jacobian factor |det df/dtheta|^(1 - 1/T) - exact for affine / volume-preserving maps
  and otherwise the standard temperature sampling of flows (Kingma & Dhariwal 2018, Glow, who scale the
  base std by T; we use sqrt(T) so that T is the exponent, as in the softmax). Exact tempering of a
  general flow would need MCMC, defeating one-pass sampling. CVAE teachers are only usable at T = 1.

T is annealed linearly from ``temperature_start`` (epoch 0) to ``temperature_end`` (epoch
``anneal_epochs - 1``, default the last epoch of ``train.epochs``: extending ``epochs`` on a resume then
stretches the schedule - set ``anneal_epochs`` to pin it) and held afterwards; the trainer's
per-epoch ``set_epoch`` call reaches :meth:`Distiller.set_epoch` through :class:`EpochHook`. No T^2 factor
multiplies the KD term: in classification it compensates the 1/T^2 shrinkage of soft-target gradients
through the logits / T, which has no analogue here (the student's log density is not divided by T).
CAVEAT: for T > 1 the KD target is the BROADENED posterior, not the posterior; only the NLL term
(weight 1 - alpha) pulls the student back to calibrated widths. The paper's 1 -> 4 schedule is available,
but ``temperature_end: 1`` is the unbiased choice; measure calibration (``gwinfer pp``) either way.

Validation (the trainer's ``eval``-mode ``loss`` calls) returns the student's NLL alone: deterministic,
comparable across temperatures and epochs and with the teacher's validation loss, so ``best.pt`` is the
student with the best held-out likelihood.

:func:`distill` is the entry point (``gwinfer distill --teacher T --config C --out DIR``): YAML sections
``data`` (:class:`~gwinfer.training.posterior.PosteriorDataConfig`), ``student`` (a posterior spec
without shapes, or ``{ratio: {width, depth}, config: {overrides}}`` applied to the teacher's spec by
:func:`scaled_spec`), ``distill`` (:class:`DistillConfig`) and ``train`` (:class:`TrainConfig`); see
``configs/distill-hl-student.yaml``. ``out_dir/model.pt`` holds the student alone (a
:func:`~gwinfer.models.save_estimator` file for ``gwinfer sample`` / ``pp``); the trainer's
``checkpoint.pt`` / ``best.pt`` hold the whole :class:`Distiller` and make the run resumable.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from gwinfer.checks import number
from gwinfer.config import Settings, deep_merge, from_dict, to_dict
from gwinfer.errors import GwinferError
from gwinfer.models.builder import spec_class
from gwinfer.models.posterior.base import PosteriorEstimator
from gwinfer.models.posterior.gaussian import GaussianPosterior
from gwinfer.models.posterior.svd_embedding import SVDEmbedding
from gwinfer.models.standardize import Standardizer
from gwinfer.training.checkpoint import seed_everything
from gwinfer.training.run import (
    Run,
    Source,
    announced,
    fit_and_save,
    fitting,
    load_sections,
    run_metadata,
    train_settings,
)

log = logging.getLogger(__name__)

MATCHINGS = ("forward_kl", "features", "both", "none")
#: Kinds whose ``_log_prob`` is an exact density (the forward-KL term needs one on the student side).
EXACT_DENSITY_KINDS = ("gaussian", "maf", "nsf", "iaf")
#: Kinds :func:`tempered_sample` can temper (the teacher side at T != 1).
TEMPERABLE_KINDS = ("gaussian", "maf", "nsf", "iaf")
FLOW_KINDS = ("maf", "nsf", "iaf")


@dataclass(frozen=True)
class DistillConfig:
    """``distill:`` section (module docstring for the loss and the temperature).

    alpha: weight of the teacher term, [0, 1]: loss = (1 - alpha) * NLL + alpha * KD.
    matching: "forward_kl", "features", "both" or "none" (plain training of the student; alpha ignored).
    teacher_samples: teacher draws per training example for the forward-KL estimate, 1 .. 4096.
    temperature_start, temperature_end: teacher temperature at the first epoch and at epoch
        anneal_epochs - 1 (linear in between, constant afterwards), each in (0, 100]; 1 = plain KD.
    anneal_epochs: epochs of the annealing, >= 1 (None: the train section's epochs).
    feature_weight: weight of the feature-matching term inside KD, [0, 1e6].
    """

    alpha: float = 0.5
    matching: str = "forward_kl"
    teacher_samples: int = 8
    temperature_start: float = 1.0
    temperature_end: float = 1.0
    anneal_epochs: int | None = None
    feature_weight: float = 1.0

    def __post_init__(self) -> None:
        number("distill.alpha", self.alpha, 0.0, 1.0)
        if self.matching not in MATCHINGS:
            raise GwinferError(f"distill.matching = {self.matching!r} must be one of {', '.join(MATCHINGS)}")
        n = self.teacher_samples
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 4096:
            raise GwinferError(f"distill.teacher_samples = {n!r} must be an integer in [1, 4096]")
        number("distill.temperature_start", self.temperature_start, 0.0, 100.0, open_low=True)
        number("distill.temperature_end", self.temperature_end, 0.0, 100.0, open_low=True)
        a = self.anneal_epochs
        if a is not None and (isinstance(a, bool) or not isinstance(a, int) or a < 1):
            raise GwinferError(f"distill.anneal_epochs = {a!r} must be an integer >= 1 (or null: train.epochs)")
        number("distill.feature_weight", self.feature_weight, 0.0, 1e6)

    @property
    def uses_forward_kl(self) -> bool:
        return self.matching in ("forward_kl", "both") and self.alpha > 0

    @property
    def uses_features(self) -> bool:
        return self.matching in ("features", "both") and self.alpha > 0

    @property
    def tempered(self) -> bool:
        return self.temperature_start != 1.0 or self.temperature_end != 1.0

    def temperature_at(self, epoch: int, epochs: int) -> float:
        """T of (0-based) ``epoch``: linear from start (epoch 0) to end (epoch ``anneal - 1``), then held;
        ``anneal`` = ``anneal_epochs`` or else ``epochs``."""
        n = self.anneal_epochs or max(1, int(epochs))
        frac = min(1.0, max(0, int(epoch)) / (n - 1)) if n > 1 else 1.0
        return self.temperature_start + (self.temperature_end - self.temperature_start) * frac


# ------------------------------------------------------------------------------------------ student spec
def _scaled(n: int, factor: float) -> int:
    return max(1, int(math.floor(n * factor + 0.5)))  # round half up, at least 1


def _keep(values: list[int], depth: float) -> list[int]:
    """``round(depth * len)`` (>= 1) entries, evenly spaced, always keeping the last (widest) one."""
    n = len(values)
    k = min(n, _scaled(n, depth))
    if k == n:
        return list(values)
    if k == 1:
        return [values[-1]]
    return [values[int(math.floor(i * (n - 1) / (k - 1) + 0.5))] for i in range(k)]


def _check_ratio(width: Any, depth: Any) -> tuple[float, float]:
    return (
        number("student.ratio.width", width, 0.0, 1.0, open_low=True),
        number("student.ratio.depth", depth, 0.0, 1.0, open_low=True),
    )


def scaled_spec(teacher_spec: dict[str, Any], width: float = 0.5, depth: float = 0.5) -> dict[str, Any]:
    """The teacher's posterior spec with every width scaled by ``width`` and every depth by ``depth``.

    Both ratios lie in (0, 1]; scaled counts are rounded half up and kept >= 1.

    * width: ResNet channels, MLP hidden sizes of the ``mlp``/``svd`` embeddings, MADE hidden sizes of the
      flows, the Gaussian head's and the CVAE's hidden sizes (and its ``flow_hidden``);
    * depth: the number of ResNet blocks (``len(channels)``), of hidden layers of those MLPs, of flow
      ``transforms`` (and a CVAE+'s ``flow_transforms``). Dropped ResNet blocks / MLP layers are chosen
      evenly spaced, always keeping the last (widest) one. The number of layers INSIDE each MADE is kept:
      a flow's depth is its number of transformations.
    * unchanged: ``context_dim`` (the information bottleneck between data and flow), SVD ``components``,
      kernel size, stride, pooling, latent size and every non-size option.

    The result is a complete spec (defaults filled in, shapes copied from the teacher's spec if present)
    whose config has been validated.
    """
    width, depth = _check_ratio(width, depth)
    cls = spec_class(teacher_spec, "teacher spec")
    kind = cls.kind
    cfg = to_dict(from_dict(cls.config_class, teacher_spec.get("config") or {}, f"posterior.{kind}"))

    def widths(values: list[int], keep_depth: bool = True) -> list[int]:
        kept = _keep(list(values), depth) if keep_depth else list(values)
        return [_scaled(v, width) for v in kept]

    emb = cfg["embedding"]
    emb["hidden"] = widths(emb["hidden"])
    emb["resnet"]["channels"] = widths(emb["resnet"]["channels"])
    if kind in FLOW_KINDS:
        cfg["transforms"] = _scaled(cfg["transforms"], depth)
        cfg["hidden"] = widths(cfg["hidden"], keep_depth=False)
    elif kind == "gaussian":
        cfg["hidden"] = widths(cfg["hidden"])
    elif kind in ("cvae", "cvae_plus"):
        cfg["hidden"] = widths(cfg["hidden"])
        cfg["flow_hidden"] = widths(cfg["flow_hidden"], keep_depth=False)
        cfg["flow_transforms"] = _scaled(cfg["flow_transforms"], depth)
    else:  # a kind added later: refuse rather than return an unscaled "student"
        raise GwinferError(f"scaled_spec does not know how to scale a {kind!r} estimator")
    from_dict(cls.config_class, cfg, f"student.{kind}")  # validates
    out = {"kind": kind, "config": cfg}
    for key in ("theta_dim", "x_shape"):
        if key in teacher_spec:
            out[key] = copy.deepcopy(teacher_spec[key])
    return out


def check_student_section(section: Any) -> None:
    """Validate the ``student:`` section's form (and a ratio's range) without the teacher."""
    if not isinstance(section, dict) or not section:
        raise GwinferError("student must be a posterior spec {kind, config} or {ratio: {width, depth}, config}")
    if "ratio" in section:
        unknown = sorted(set(section) - {"ratio", "config"})
        if unknown:
            raise GwinferError(f"student: unknown key(s) {unknown} next to ratio; accepted: ['config', 'ratio']")
        ratio = section["ratio"]
        if not isinstance(ratio, dict) or not ratio or set(ratio) - {"width", "depth"}:
            raise GwinferError(f"student.ratio = {ratio!r} must be a mapping with width and/or depth in (0, 1]")
        _check_ratio(ratio.get("width", 1.0), ratio.get("depth", 1.0))
        if not isinstance(section.get("config") or {}, dict):
            raise GwinferError("student.config (overrides of the scaled spec) must be a mapping")
    elif "kind" not in section:
        raise GwinferError(f"student needs a kind (a full spec) or a ratio (got keys {sorted(section)})")


def student_spec(section: dict[str, Any], teacher_spec: dict[str, Any]) -> dict[str, Any]:
    """The student's spec from the ``student:`` section: a full spec as given (shapes dropped, the
    teacher's apply), or ``scaled_spec(teacher, **ratio)`` deep-merged with ``config`` overrides."""
    check_student_section(section)
    if "ratio" not in section:
        return {k: copy.deepcopy(v) for k, v in section.items() if k not in ("theta_dim", "x_shape")}
    ratio = section["ratio"]
    spec = scaled_spec(teacher_spec, ratio.get("width", 1.0), ratio.get("depth", 1.0))
    spec["config"] = deep_merge(spec["config"], section.get("config"))
    return {k: v for k, v in spec.items() if k not in ("theta_dim", "x_shape")}


def n_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------ the loss
@torch.no_grad()
def tempered_sample(estimator: PosteriorEstimator, c: Tensor, n: int, temperature: float = 1.0) -> Tensor:
    """``n`` draws (batch, n, D) of the estimator's STANDARDISED posterior at context c, tempered to
    p^(1/T) (module docstring): exact for the Gaussian, base tempering for flows; T = 1 is ``_sample``."""
    if temperature == 1.0:
        return estimator._sample(c, n)
    scale = math.sqrt(temperature)
    if isinstance(estimator, GaussianPosterior):
        dist = estimator.distribution(c)
        u = dist.sample((n,))  # (n, B, D)
        return (dist.loc + scale * (u - dist.loc)).transpose(0, 1)
    if estimator.kind in FLOW_KINDS:
        flow = estimator.flow(c)  # type: ignore[operator]
        z = flow.base.sample((n,))
        mean = flow.base.mean
        return flow.transform.inv(mean + scale * (z - mean)).transpose(0, 1)
    raise GwinferError(
        f"a {estimator.kind!r} teacher cannot be tempered (temperature {temperature}); "
        f"use temperature 1 or a teacher of kind {', '.join(TEMPERABLE_KINDS)}"
    )


class Distiller(nn.Module):
    """A frozen ``teacher`` and a trainable ``student`` (posterior estimators) behind one ``loss``.

    ``loss(theta, x) -> (batch,)`` is the distillation loss in training mode and the student's NLL in
    eval mode (module docstring). Only the student (and the feature projection, if any) has trainable
    parameters: the constructor sets ``requires_grad = False`` on the teacher's (it is frozen for good) and
    the teacher stays in eval mode whatever ``train()`` is called with. ``epochs`` (the
    training length) sets the annealing length when ``config.anneal_epochs`` is None. ``teacher_id``
    (e.g. the teacher file's sha256) enters :meth:`spec`, so a checkpoint only resumes with the same
    teacher, student and distillation settings.
    """

    def __init__(
        self,
        teacher: PosteriorEstimator,
        student: PosteriorEstimator,
        config: DistillConfig,
        *,
        epochs: int | None = None,
        teacher_id: str | None = None,
    ) -> None:
        super().__init__()
        for name, m in (("teacher", teacher), ("student", student)):
            if not isinstance(m, PosteriorEstimator):
                raise GwinferError(f"the {name} must be a gwinfer posterior estimator, got {type(m).__name__}")
        if not isinstance(config, DistillConfig):
            raise GwinferError(f"config must be a DistillConfig, got {type(config).__name__}")
        if teacher.theta_dim != student.theta_dim or teacher.x_shape != student.x_shape:
            raise GwinferError(
                f"teacher (theta_dim {teacher.theta_dim}, x_shape {list(teacher.x_shape)}) and student (theta_dim "
                f"{student.theta_dim}, x_shape {list(student.x_shape)}) must infer the same parameters from the "
                "same data"
            )
        teacher._check_ready()
        if config.uses_forward_kl and student.kind not in EXACT_DENSITY_KINDS:
            raise GwinferError(
                f"matching {config.matching!r} needs a student with an exact density "
                f"({', '.join(EXACT_DENSITY_KINDS)}), not {student.kind!r}"
            )
        if config.uses_forward_kl and config.tempered and teacher.kind not in TEMPERABLE_KINDS:
            raise GwinferError(
                f"a {teacher.kind!r} teacher cannot be tempered: set distill.temperature_start and temperature_end to 1"
            )
        self.config = config
        self.teacher = teacher.eval().requires_grad_(False)
        self.student = student
        self.epochs = max(1, int(epochs or 1))
        self.teacher_id = teacher_id
        if config.uses_features:
            self.projection: nn.Module | None = nn.Linear(student.context_dim, teacher.context_dim)
            self.teacher_context: Standardizer | None = Standardizer(teacher.context_dim)
        else:
            self.projection = self.teacher_context = None
        self.epoch = 0
        self.temperature = config.temperature_at(0, self.epochs)

    # ------------------------------------------------------------------ state
    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        self.teacher.eval()  # dropout / batch-norm of the teacher never switch to training behaviour
        return self

    def set_epoch(self, epoch: int) -> None:
        """Select the temperature of (0-based) ``epoch`` (called before every training epoch)."""
        self.epoch = int(epoch)
        self.temperature = self.config.temperature_at(self.epoch, self.epochs)

    def spec(self) -> dict[str, Any]:
        """Plain data identifying this distillation (checked by the trainer when resuming)."""
        return {
            "kind": "distiller",
            "teacher": self.teacher.spec(),
            "teacher_id": self.teacher_id,
            "student": self.student.spec(),
            "distill": to_dict(self.config),
        }

    @torch.no_grad()
    def fit_standardization(self, theta: Tensor, x: Tensor, signals: Tensor | None = None, chunk: int = 256) -> None:
        """Give the student the teacher's fitted theta/x standardisation (so both work in one space), fit a
        student ``svd`` embedding's basis on the (teacher-)standardised ``signals`` (default ``x``) and,
        for feature matching, the teacher-context standardisation on the contexts of ``x``."""
        s = self.student
        s._check_x(x)
        s._check_theta(theta, x.shape[0])
        if signals is not None:
            s._check_x(signals)
        if x.shape[0] < 2:
            raise GwinferError("fit_standardization needs at least 2 training examples")
        s.theta_scale.load_state_dict(self.teacher.theta_scale.state_dict())
        s.x_scale.load_state_dict(self.teacher.x_scale.state_dict())
        if isinstance(s.embedding, SVDEmbedding):
            s.embedding.fit(s.x_scale(x), None if signals is None else s.x_scale(signals))
        if self.teacher_context is not None:
            self.teacher.eval()
            contexts = torch.cat([self.teacher.context(part) for part in x.split(chunk)])
            self.teacher_context.fit(contexts)

    # ------------------------------------------------------------------ loss
    def terms(self, theta: Tensor, x: Tensor) -> dict[str, Tensor]:
        """Per-example terms (batch,): ``nll`` always; ``forward_kl`` (cross-entropy: teacher entropy
        dropped) and ``features`` when the config uses them."""
        s = self.student
        s._check_x(x)
        s._check_theta(theta, x.shape[0])
        s._check_ready()
        c_s = s.context(x)
        out = {"nll": s._loss(s.theta_scale(theta), c_s)}
        if not (self.config.uses_forward_kl or self.config.uses_features):
            return out
        with torch.no_grad():
            c_t = self.teacher.context(x)
        if self.config.uses_forward_kl:
            out["forward_kl"] = self.forward_kl(c_t, c_s)
        if self.config.uses_features:
            if self.teacher_context is None or not bool(self.teacher_context.fitted):
                raise GwinferError("feature matching needs Distiller.fit_standardization(theta, x) first")
            target = self.teacher_context(c_t)
            out["features"] = (self.projection(c_s) - target).pow(2).mean(dim=1)  # type: ignore[misc]
        return out

    def forward_kl(self, c_teacher: Tensor, c_student: Tensor) -> Tensor:
        """-1/K sum_k log q_student(u'_k | c_student), u'_k ~ teacher(. | c_teacher) tempered at the current
        temperature, both in the student's standardised space: KL(teacher || student) minus the teacher's
        entropy (constant in the student). Shape (batch,)."""
        b, k = c_teacher.shape[0], self.config.teacher_samples
        with torch.no_grad():
            u_t = tempered_sample(self.teacher, c_teacher, k, self.temperature)  # (B, K, D) teacher units
            u_s = self.student.theta_scale(self.teacher.theta_scale.inverse(u_t))
        lp = self.student._log_prob(u_s.reshape(b * k, -1), c_student.repeat_interleave(k, dim=0))
        return -lp.view(b, k).mean(dim=1)

    def loss(self, theta: Tensor, x: Tensor) -> Tensor:
        """Training mode: (1 - alpha) NLL + alpha KD (NLL alone for ``none`` / alpha = 0); eval: NLL."""
        cfg = self.config
        if not self.training or not (cfg.uses_forward_kl or cfg.uses_features):
            s = self.student
            s._check_x(x)
            s._check_theta(theta, x.shape[0])
            s._check_ready()
            return s._loss(s.theta_scale(theta), s.context(x))
        t = self.terms(theta, x)
        kd = t.get("forward_kl", 0.0) + cfg.feature_weight * t.get("features", 0.0)
        return (1.0 - cfg.alpha) * t["nll"] + cfg.alpha * kd

    def forward(self, theta: Tensor, x: Tensor) -> Tensor:
        """Same as :meth:`loss`."""
        return self.loss(theta, x)


class EpochHook(Dataset):
    """A dataset forwarding the trainer's ``set_epoch(e)`` to itself (fresh noise) and to ``listeners``
    (the :class:`Distiller`'s temperature), so the shared trainer needs no change. Items and length are the
    wrapped dataset's; listeners are not pickled into DataLoader workers."""

    def __init__(self, dataset: Dataset, *listeners: Any) -> None:
        self.dataset, self.listeners = dataset, list(listeners)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        return self.dataset[i]

    def set_epoch(self, epoch: int) -> None:
        if callable(getattr(self.dataset, "set_epoch", None)):
            self.dataset.set_epoch(epoch)  # type: ignore[attr-defined]
        for listener in self.listeners:
            listener.set_epoch(epoch)

    def __getstate__(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "listeners": []}


# ------------------------------------------------------------------------------------------ entry point
def _check_teacher_data(
    teacher: PosteriorEstimator, tmeta: dict[str, Any], sim: Any, x_shape: tuple[int, ...], teacher_path: Path
) -> None:
    names = tmeta.get("names")
    if names is not None and list(names) != list(sim.names):
        raise GwinferError(f"{sim.path} holds parameters {list(sim.names)}; the teacher {teacher_path} infers {names}")
    if teacher.theta_dim != len(sim.names) or tuple(teacher.x_shape) != tuple(x_shape):
        raise GwinferError(
            f"the teacher {teacher_path} takes x of shape {list(teacher.x_shape)} and "
            f"{teacher.theta_dim} parameters; {sim.path} has {list(x_shape)} and {len(sim.names)}"
        )
    t_psd, d_psd = tmeta.get("psd_sha256"), sim.attrs.get("psd_sha256")
    if t_psd not in (None, "None") and d_psd is not None and str(t_psd) != str(d_psd):
        raise GwinferError(
            f"the teacher {teacher_path} was trained on data whitened with another PSD "
            f"(sha256 {str(t_psd)[:12]}... vs {str(d_psd)[:12]}... in {sim.path})"
        )
    t_sim = tmeta.get("simulation") or {}
    d_sim = json.loads(sim.config.to_json())
    diff = [
        f"{k}: {t_sim[k]!r} vs {d_sim.get(k)!r}"
        for k in ("detectors", "fs", "duration", "f_min", "f_max")
        if k in t_sim and t_sim[k] != d_sim.get(k)
    ]
    if diff:
        raise GwinferError(f"the teacher {teacher_path} was trained on other data than {sim.path} ({'; '.join(diff)})")


def distill(
    teacher_path: str | Path,
    source: Source,
    out_dir: str | Path,
    resume: bool = True,
    settings: Settings = (),
) -> Path:
    """Distil the teacher ``teacher_path`` (a model file or its folder) into a student described by
    ``source`` (YAML or dict with data/student/distill/train); return ``out_dir/model.pt`` (the student, a
    ``save_estimator`` file).

    Resumable: re-running with the same ``out_dir`` continues from ``checkpoint.pt`` (same teacher file,
    student, distill and train settings). ``settings`` override values of the config: ``["train.epochs=3"]``
    (as ``--set``) or ``{"train": {"epochs": 3}}``, as in ``train_posterior``.
    """
    from gwinfer.models import build_estimator, load_estimator, resolve_model_path, save_estimator
    from gwinfer.provenance import sha256_file
    from gwinfer.training.posterior import PosteriorDataConfig, data_metadata, fit_examples, training_datasets

    raw = load_sections(source, ("data", "student"), ("distill", "train"), "a distillation config", settings)
    data = from_dict(PosteriorDataConfig, raw["data"], "data")
    dcfg = from_dict(DistillConfig, raw.get("distill") or {}, "distill")
    train_cfg = train_settings(raw)
    check_student_section(raw["student"])
    try:
        tpath = resolve_model_path(teacher_path)
    except GwinferError:
        raise GwinferError(
            f"teacher model {teacher_path} does not exist (train one with gwinfer train-posterior)"
        ) from None
    teacher, tmeta = load_estimator(tpath)
    teacher_sha = sha256_file(tpath)

    sim, train_set, val_set = training_datasets(data)
    _check_teacher_data(teacher, tmeta, sim, train_set.x_shape, tpath)

    spec = student_spec(raw["student"], teacher.spec())
    seed_everything(train_cfg.seed)  # student and projection initialisation
    student = build_estimator(spec, theta_dim=len(sim.names), x_shape=train_set.x_shape)
    distiller = Distiller(teacher, student, dcfg, epochs=train_cfg.epochs, teacher_id=teacher_sha)

    with announced(fitting(min(len(train_set), data.fit_samples))):
        distiller.fit_standardization(*fit_examples(train_set, data.fit_samples))

    n_teacher, n_student = n_parameters(teacher), n_parameters(student)
    experiment = {
        "data": to_dict(data),
        "student": raw["student"],
        "model": spec,
        "distill": to_dict(dcfg),
        "train": to_dict(train_cfg),
    }
    metadata: dict[str, Any] = {
        **data_metadata(sim),
        "distillation": {
            "teacher_path": str(tpath),
            "teacher_sha256": teacher_sha,
            "teacher_spec": teacher.spec(),
            "teacher_training": tmeta.get("training"),
            "teacher_experiment": tmeta.get("experiment"),
            "config": to_dict(dcfg),
            "temperature_schedule": [dcfg.temperature_at(e, train_cfg.epochs) for e in range(train_cfg.epochs)],
            "n_parameters": {"teacher": n_teacher, "student": n_student},
        },
        **run_metadata(
            "distilled-posterior-model",
            source,
            experiment,
            parents=[data.simulation, tpath],
            libraries=("torch", "numpy", "zuko"),
            teacher=str(tpath),
        ),
    }
    log.info(
        "distilling %s (%d parameters) into a %s student (%d parameters), matching %s, alpha %g",
        tpath,
        n_teacher,
        student.kind,
        n_student,
        dcfg.matching,
        dcfg.alpha,
    )
    return fit_and_save(
        Run(
            distiller,
            EpochHook(train_set, distiller),
            val_set,
            train_cfg,
            metadata,
            lambda path: save_estimator(path, student.cpu(), metadata=metadata),
            "student (val loss = its NLL)",
        ),
        out_dir,
        resume,
    )
