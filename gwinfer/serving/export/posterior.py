"""Posterior estimators as served graphs: embedding + flow sampling with the noise as an input.

:func:`gwinfer.serving.export.model.export_model` hands estimator files (``save_estimator`` files, format
``gwinfer-posterior``, or trainer checkpoints of an estimator) to this module. ONE graph is exported:

====================  =====================  ==============================================================
tensor                shape                  meaning
====================  =====================  ==============================================================
``strain`` (input)    (B, n_det, n_samples)  whitened strain as the estimator takes it (``features`` (B, F)
                                             for estimators on flat features), FP32
``noise`` (input)     (B, N, D)              standard-normal base draws, one row per wanted sample; N free
``samples`` (output)  (B, N, D)              posterior samples in physical units (theta standardisation
                                             undone), columns in the order of ``parameter_names``
``log_prob`` (output) (B, N)                 physical log density of each sample (log q(theta | x))
====================  =====================  ==============================================================

:class:`NoiseSampler` is the torch module that is exported: context c = ``estimator.context(strain)``,
then the base draws z (laid out (N, B, D), as the estimator draws them itself) go through the flow's
sampling direction ``flow(c).transform.inv`` with its log-Jacobian (``call_and_ladj``), exactly what
zuko's ``NormalizingFlow.rsample_and_log_prob`` does after its internal ``randn``:
``log_prob = base.log_prob(z) - ladj``; finally ``theta = theta_scale.inverse(u)`` and
``log_prob -= sum(log theta_scale.std)``. So with the same z the graph returns the numbers of
``estimator.sample_and_log_prob`` -- checked at export time by seeding torch, which makes the estimator
draw exactly that z (:func:`compare_posterior`).

Kinds: ``iaf`` (one pass per transformation), ``maf`` and ``nsf`` (``passes`` sequential passes, D by
default; the Python loop is unrolled when the graph is traced, so the graph holds passes x transforms
MADE evaluations), ``gaussian`` (mean + L z with the Cholesky factor L; written with einsum and a
constant selection matrix because ``torch.diag_embed`` / ``MultivariateNormal.log_prob`` do not export
to ONNX -- the export check against ``sample_and_log_prob`` guards this re-implementation). ``cvae`` and
``cvae_plus`` are refused: their log density is an importance-sampled estimate (``is_samples`` more
draws), not a deterministic function of the sample's noise.

Why the noise is an input rather than drawn in the graph (an ONNX ``RandomNormal`` op, the alternative
not taken): the graph stays a pure function, so it is checked against torch number for number, gives
the same samples in onnxruntime, TorchScript, gwinfer serve and Triton, on CPU or GPU (random ops have
no common generator or seed semantics across runtimes; onnxruntime's are not reproducible between
versions and providers), and the client owns the seed (``gwinfer.serving.client.sample_posterior``
draws it with ``numpy.random.default_rng(seed)``). The price is bandwidth: the request carries
B x N x D x 4 bytes of noise, as much as the samples coming back (10^4 samples of 5 parameters: 200 kB
each way per event).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gwinfer.errors import GwinferError
from gwinfer.serving.export.entry import (
    SERVING_LIBRARIES,
    check_stride,
    default_name,
    export_record,
    export_settings,
    finish_graph,
    install_version,
    stream_entry,
)
from gwinfer.serving.export.graph import export_onnx, export_torchscript, first_line, run_exported_all
from gwinfer.serving.export.prior import exported_prior, prior_parameters, write_prior
from gwinfer.serving.repository.config import make_config
from gwinfer.serving.repository.layout import FORMAT_PLATFORMS, PLATFORM_FILES, check_name
from gwinfer.serving.repository.specs import TensorSpec

KINDS = ("iaf", "maf", "nsf", "gaussian")
REFUSED = {
    "cvae": "its log density is an importance-sampled estimate, not a function of the sample's noise",
    "cvae_plus": "its log density is an importance-sampled estimate, not a function of the sample's noise",
}
DEFAULT_MAX_BATCH_SIZE = 8  # events per request: each carries N samples, which multiply the memory
TRACE_SHAPE = (2, 5)  # (B, N) of the traced example; the checks use other shapes
CHECK_SHAPES = ((1, 3), (3, 17))
NAMES = {
    "onnx": (("strain", "noise"), ("samples", "log_prob")),
    "torchscript": (("strain__0", "noise__1"), ("samples__0", "log_prob__1")),
}


def input_name(estimator: nn.Module) -> str:
    """``strain`` for (n_detectors, n_samples) data, ``features`` for flat data."""
    return "strain" if len(estimator.x_shape) == 2 else "features"


def check_kind(estimator: nn.Module) -> None:
    """One-line GwinferError unless the estimator's kind can be exported."""
    kind = getattr(estimator, "kind", "?")
    if kind in REFUSED:
        raise GwinferError(f"{kind} posteriors cannot be exported: {REFUSED[kind]}; export one of {list(KINDS)}")
    if kind not in KINDS:
        raise GwinferError(f"posterior kind {kind!r} cannot be exported; export one of {list(KINDS)}")
    if not estimator.is_fitted:
        raise GwinferError(f"the {kind} estimator is not standardised (fit_standardization never ran)")


class NoiseSampler(nn.Module):
    """``(strain (B, *x_shape), noise (B, N, D)) -> (samples (B, N, D), log_prob (B, N))`` (module docstring)."""

    def __init__(self, estimator: nn.Module) -> None:
        super().__init__()
        check_kind(estimator)
        self.estimator = estimator.eval()
        self.kind = estimator.kind
        d = estimator.theta_dim
        if self.kind == "gaussian":
            # off-diagonal entries k of the Cholesky factor go to (tril_rows[k], tril_cols[k]): a constant
            # (n_tril, D*D) selection matrix replaces the index_put of GaussianPosterior.distribution
            select = torch.zeros(estimator.n_tril, d * d)
            if estimator.n_tril:
                select[torch.arange(estimator.n_tril), estimator.tril_rows * d + estimator.tril_cols] = 1.0
            self.register_buffer("select", select, persistent=False)
            self.register_buffer("eye", torch.eye(d), persistent=False)

    def _gaussian(self, c: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """GaussianPosterior.distribution(c) applied to z: u = mean + L z, log N(u; mean, L L^T)."""
        est, d = self.estimator, self.estimator.theta_dim
        out = est.net(c)
        mean, raw_diag, off = out[:, :d], out[:, d : 2 * d], out[:, 2 * d :]
        diag = nn.functional.softplus(raw_diag + 0.5413) + est.config.min_scale  # as GaussianPosterior
        tril = diag.unsqueeze(-1) * self.eye + (off @ self.select).reshape(-1, d, d)  # (B, D, D)
        u = mean + torch.matmul(tril, z.unsqueeze(-1)).squeeze(-1)  # (N, B, D)
        lp = -0.5 * (z * z).sum(-1) - 0.5 * d * math.log(2 * math.pi) - torch.log(diag).sum(-1)
        return u, lp

    def _flow(self, c: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """zuko's NormalizingFlow.rsample_and_log_prob with the base draws z given."""
        dist = self.estimator.flow(c)
        u, ladj = dist.transform.inv.call_and_ladj(z)
        if dist.reinterpreted:
            ladj = ladj.reshape(*ladj.shape[: ladj.ndim - dist.reinterpreted], -1).sum(-1)
        return u, dist.base.log_prob(z) - ladj

    def forward(self, strain: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        est = self.estimator
        c = est.context(strain)
        z = noise.transpose(0, 1)  # (N, B, D): the layout of the estimator's own base draws
        u, lp = self._gaussian(c, z) if self.kind == "gaussian" else self._flow(c, z)
        theta = est.theta_scale.inverse(u.transpose(0, 1))
        return theta, lp.transpose(0, 1) - est.log_jacobian


def example_inputs(estimator: nn.Module, batch: int, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded (x, noise): x at the fitted data scale (x_scale mean + std x N(0, 1)), noise N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *estimator.x_shape, generator=g)
    x = estimator.x_scale.mean + estimator.x_scale.std * x
    return x.to(torch.float32), torch.randn(batch, n, estimator.theta_dim, generator=g)


def export_graph(sampler: NoiseSampler, fmt: str, path: Path) -> str:
    """Write the sampler as ONNX (dynamic B and N) or traced TorchScript; returns the exporter used."""
    x, z = example_inputs(sampler.estimator, *TRACE_SHAPE, seed=12345)
    (x_name, z_name), (s_name, lp_name) = NAMES[fmt]
    if fmt == "onnx":
        x_name = input_name(sampler.estimator)
        axes = {
            x_name: {0: "batch"},
            z_name: {0: "batch", 1: "n"},
            s_name: {0: "batch", 1: "n"},
            lp_name: {0: "batch", 1: "n"},
        }
        with torch.no_grad():
            return export_onnx(sampler, (x, z), path, (x_name, z_name), (s_name, lp_name), axes)
    try:
        with torch.no_grad():
            return export_torchscript(sampler, (x, z), path)
    except Exception as err:  # noqa: BLE001
        raise GwinferError(
            f"TorchScript tracing of the {sampler.kind} posterior failed ({first_line(err)}); export ONNX"
        ) from None


def run_graph(path: str | Path, x: np.ndarray, noise: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(samples, log_prob) of an exported posterior file (``.onnx`` with onnxruntime, ``.pt`` with torch.jit)."""
    samples, log_prob = run_exported_all(path, [x, noise], threads, output_names=["samples", "log_prob"])
    return samples, log_prob


def max_diffs(a: tuple[Any, Any], b: tuple[Any, Any], std: np.ndarray) -> tuple[float, float]:
    """(max |samples diff| in units of the theta standardisation's std, max |log_prob diff|)."""
    ds = np.abs(np.asarray(a[0], dtype=np.float64) - np.asarray(b[0], dtype=np.float64)) / std
    dl = np.abs(np.asarray(a[1], dtype=np.float64) - np.asarray(b[1], dtype=np.float64))
    return float(np.max(ds)), float(np.max(dl))


def compare_posterior(sampler: NoiseSampler, path: Path, seed: int = 0) -> dict[str, Any]:
    """Check the exported graph against torch on seeded inputs at two (B, N) other than the traced one.

    1. graph vs the torch :class:`NoiseSampler` on the same (x, noise): samples (in units of the theta
       standardisation's std per column) and log_prob must each be within
       ``max(1e-4 + 1e-4 max|ref|, 2 x float32_error)``, float32_error being the torch sampler's own
       float32-vs-float64 difference on the same inputs;
    2. the torch sampler vs the estimator's own ``sample_and_log_prob`` with torch seeded so that it draws
       the same noise (same limits): the graph maps noise as the estimator samples.

    Returns the numbers recorded in gwinfer.json; one-line GwinferError if a limit is exceeded.
    """
    est = sampler.estimator
    std = est.theta_scale.std.detach().double().numpy()
    s64 = copy.deepcopy(sampler).double()
    out = {
        "samples_max_abs_diff": 0.0,
        "log_prob_max_abs_diff": 0.0,
        "samples_float32_error": 0.0,
        "log_prob_float32_error": 0.0,
        "samples_limit": 0.0,
        "log_prob_limit": 0.0,
        "sampler_samples_max_abs_diff": 0.0,
        "sampler_log_prob_max_abs_diff": 0.0,
    }
    for i, (batch, n) in enumerate(CHECK_SHAPES):
        x, z = example_inputs(est, batch, n, seed + 1 + i)
        with torch.no_grad():
            ref = tuple(t.numpy() for t in sampler(x, z))
            exact = tuple(t.numpy() for t in s64(x.double(), z.double()))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 100 + i)
                z_own = torch.randn(n, batch, est.theta_dim).transpose(0, 1).contiguous()
                torch.manual_seed(seed + 100 + i)
                own = tuple(t.numpy() for t in est.sample_and_log_prob(x, n))
            mapped = tuple(t.numpy() for t in sampler(x, z_own))
        got = run_graph(path, x.numpy(), z.numpy())
        shapes = ((batch, n, est.theta_dim), (batch, n))
        if tuple(got[0].shape) != shapes[0] or tuple(got[1].shape) != shapes[1]:
            raise GwinferError(
                f"exported posterior returns shapes {got[0].shape}, {got[1].shape} for batch {batch}, "
                f"{n} samples; expected {shapes[0]}, {shapes[1]}"
            )
        d_s, d_lp = max_diffs(got, ref, std)
        f_s, f_lp = max_diffs(ref, exact, std)
        m_s, m_lp = max_diffs(mapped, own, std)
        u_ref = (ref[0] - est.theta_scale.mean.double().numpy()) / std
        lim_s = max(1e-4 + 1e-4 * float(np.max(np.abs(u_ref))), 2 * f_s)
        lim_lp = max(1e-4 + 1e-4 * float(np.max(np.abs(ref[1]))), 2 * f_lp)
        for key, value in (
            ("samples_max_abs_diff", d_s),
            ("log_prob_max_abs_diff", d_lp),
            ("samples_float32_error", f_s),
            ("log_prob_float32_error", f_lp),
            ("samples_limit", lim_s),
            ("log_prob_limit", lim_lp),
            ("sampler_samples_max_abs_diff", m_s),
            ("sampler_log_prob_max_abs_diff", m_lp),
        ):
            out[key] = max(out[key], value)
        for what, diff, lim in (("samples", d_s, lim_s), ("log_prob", d_lp, lim_lp)):
            if not np.isfinite(diff) or diff > lim:
                raise GwinferError(
                    f"exported posterior differs from torch: {what} by {diff:.3g} (limit {lim:.3g}; "
                    f"the torch model's own float32 error is {f_s if what == 'samples' else f_lp:.3g})"
                )
        for what, diff, lim in (("samples", m_s, lim_s), ("log_prob", m_lp, lim_lp)):
            if not np.isfinite(diff) or diff > lim:
                raise GwinferError(
                    f"the serving sampler disagrees with {est.kind}.sample_and_log_prob on the same "
                    f"noise: {what} by {diff:.3g} (limit {lim:.3g}); gwinfer.serving.export.posterior "
                    f"no longer matches the model code"
                )
    out["max_abs_diff"] = max(out["samples_max_abs_diff"], out["log_prob_max_abs_diff"])
    return out


def parameter_names(estimator: nn.Module, metadata: dict[str, Any]) -> tuple[list[str], str]:
    """(column names, where they came from): metadata ``names`` if it fits, else theta_0 ... theta_{D-1}."""
    d = estimator.theta_dim
    names = metadata.get("names")
    if names is None:
        return [f"theta_{i}" for i in range(d)], "default (the model's metadata has no names)"
    if not isinstance(names, (list, tuple)) or len(names) != d or not all(isinstance(n, str) and n for n in names):
        raise GwinferError(f"the model's metadata names {names!r} are not {d} parameter names")
    bad = [n for n in names if "," in n or n != n.strip()]
    if bad or len(set(names)) != d:
        raise GwinferError(f"parameter names {names!r} must be distinct, without commas or surrounding spaces")
    return list(names), "metadata"


SOURCE_METADATA = ("names", "provenance", "training", "simulation", "noise_std", "gwinfer_version")


# --- streaming entries --------------------------------------------------------------------------------
#: Simulation settings a streaming client needs to prepare its strain, copied into the config ``parameters``.
STREAM_SIMULATION_KEYS = ("detectors", "fs", "duration", "f_min", "f_max", "time_offset")


def stream_parameters(metadata: dict[str, Any], kernel: int, stride: int) -> dict[str, str]:
    """Config parameters of a streaming posterior entry (strings, Triton's free-form ``parameters``).

    ``stream_kernel`` / ``stream_stride`` (samples per window / per request) and, when the estimator file
    has its ``simulation`` settings: ``detectors`` (comma-separated, the order of the strain rows),
    ``sample_rate`` (Hz), ``duration`` (s), ``f_min`` / ``f_max`` (whitening band, Hz) and
    ``time_offset`` (s of the trigger into the window) -- what a client needs to whiten and chunk its data
    (:func:`gwinfer.serving.replay.stream_strain`).
    """
    out = {"stream_kernel": str(int(kernel)), "stream_stride": str(int(stride))}
    sim = metadata.get("simulation")
    if isinstance(sim, dict):
        for key in STREAM_SIMULATION_KEYS:
            value = sim.get(key)
            if value is None:
                continue
            name = "sample_rate" if key == "fs" else key
            out[name] = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else repr(float(value))
    return out


def export_posterior(
    src: Path,
    repo: str | Path,
    name: str | None,
    fmt: str,
    version: int | None,
    max_batch_size: int,
    max_queue_delay_us: int,
    seed: int,
    backend: str,
    stream_stride: int | None = None,
    sequence_idle_s: float = 60.0,
) -> Path:
    """Export the posterior estimator file ``src`` (see :func:`gwinfer.serving.export.model.export_model`)."""
    from gwinfer.models import load_estimator

    estimator, meta = load_estimator(src)
    sampler = NoiseSampler(estimator)  # refuses cvae/cvae_plus and unfitted estimators
    names, names_source = parameter_names(estimator, meta)
    name = default_name(src, stream_stride is not None) if name is None else check_name(name)
    platform = FORMAT_PLATFORMS[fmt]
    (x_name, z_name), (s_name, lp_name) = NAMES[fmt]
    if fmt == "onnx":
        x_name = input_name(estimator)
    d = estimator.theta_dim
    prior = exported_prior(meta, names)  # the training prior, served beside the graph (export/prior.py)
    tensors = {"input": x_name, "noise": z_name, "samples": s_name, "log_prob": lp_name}
    parameters = {"parameter_names": ",".join(names), **prior_parameters(prior)}
    streaming = None
    if stream_stride is None:
        inputs = [TensorSpec(x_name, "FP32", tuple(estimator.x_shape)), TensorSpec(z_name, "FP32", (-1, d))]
        outputs = [TensorSpec(s_name, "FP32", (-1, d)), TensorSpec(lp_name, "FP32", (-1,))]
        config = make_config(
            name,
            platform,
            inputs,
            outputs,
            max_batch_size,
            max_queue_delay_us,
            backend="python" if backend == "python" else None,
            parameters=parameters,
        )
    else:
        if fmt != "onnx" or len(estimator.x_shape) != 2:
            raise GwinferError(
                "streaming posterior entries are ONNX graphs of estimators on strain "
                "(n_detectors, n_samples); export with format 'onnx'"
            )
        n_det, n = (int(v) for v in estimator.x_shape)
        check_stride(stream_stride, n)
        parameters.update(stream_parameters(meta, n, stream_stride))
        config, streaming, inputs, outputs = stream_entry(
            name,
            platform,
            [TensorSpec("update", "FP32", (n_det, n)), TensorSpec(z_name, "FP32", (-1, d))],
            [TensorSpec(s_name, "FP32", (-1, d)), TensorSpec(lp_name, "FP32", (-1,))],
            n,
            stream_stride,
            sequence_idle_s,
            backend,
            parameters,
        )
        streaming.update(graph_input=x_name, graph_outputs=[s_name, lp_name])

    def build(tmp: Path, version: int) -> tuple[dict[str, Any], float]:
        out_file = tmp / PLATFORM_FILES[platform]
        exporter = export_graph(sampler, fmt, out_file)
        finish_graph(out_file, fmt, backend, streaming is not None)
        prior_record = write_prior(tmp, prior, names, tensors)
        check = compare_posterior(sampler, out_file, seed)
        settings = export_settings(name, version, fmt, platform, backend, config["max_batch_size"], stream_stride)
        record = export_record(
            src,
            out_file,
            settings,
            inputs,
            outputs,
            streaming,
            (*SERVING_LIBRARIES, "zuko"),
            model_spec=estimator.spec(),
            posterior={
                "kind": estimator.kind,
                "theta_dim": d,
                "x_shape": list(estimator.x_shape),
                "parameter_names": names,
                "parameter_names_source": names_source,
                "noise": "standard normal base draws (B, N, D) supplied by the caller",
                "log_prob": "physical log density of each sample",
                "prior": prior_record,
            },
            source_metadata={k: meta[k] for k in SOURCE_METADATA if k in meta},
            exporter=exporter,
            max_abs_diff=check["max_abs_diff"],
            check={
                "inputs": f"seeded strain at the fitted scale and N(0, 1) noise, (batch, samples) = "
                f"{[list(s) for s in CHECK_SHAPES]} (traced at {list(TRACE_SHAPE)})",
                **{k: v for k, v in check.items() if k != "max_abs_diff"},
                "rule": "samples (in theta-standardisation units) and log_prob each within "
                "max(1e-4 + 1e-4 max|ref|, 2 x float32_error) of torch; the torch sampler within the "
                "same limits of the estimator's sample_and_log_prob on the same noise",
            },
        )
        return record, check["max_abs_diff"]

    return install_version(Path(repo), name, version, config, inputs, outputs, build)
