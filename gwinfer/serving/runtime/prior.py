"""Served posterior draws inside the training prior: what ``gwinfer serve`` adds to the graph.

An exported posterior version with a training prior (``prior.prior`` beside the graph, described in
gwinfer.json ``posterior.prior``; :mod:`gwinfer.serving.export.prior`) answers every request with draws
inside that prior, as ``gwinfer sample``, ``analyze`` and ``pp`` do
(:func:`gwinfer.evaluation.prior_support.reject_and_replace`):

1. the graph runs on the request's own noise (B, N, D), as for any model;
2. draws outside the prior are dropped; the draws inside are kept in their order;
3. for each event still short of N, the graph runs again on that event's strain with fresh standard-normal
   noise, until N are inside. The fresh noise comes from ``numpy.random.default_rng`` seeded with the
   sha256 of the event's strain and noise bytes (:func:`replacement_rng`): the answer is a function of the
   request alone (the same request gives the same draws, whatever else is batched with it);
4. at most ``max(DRAW_FACTOR x N, MIN_BUDGET)`` draws per event and :data:`~gwinfer.evaluation.prior_support.MAX_ROUNDS`
   rounds: beyond, :class:`~gwinfer.evaluation.prior_support.OutsidePrior` (the server answers 422).

``log_prob`` rides along with its sample. The response parameters ``prior_acceptance`` (draws inside over
draws made), ``prior_draws`` and ``prior_inside`` report the work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.evaluation.prior_support import (
    MAX_ROUNDS,
    InPrior,
    LogPrior,
    TrainingPrior,
    padded,
    reject_and_replace,
)
from gwinfer.provenance import sha256_file

DRAW_FACTOR = 100  # draws per event at most, in units of the draws asked for (acceptance < ~1 %: refused)
MIN_BUDGET = 1000  # ... but at least this many
MAX_CALL_DRAWS = 1 << 17  # draws (events x samples) per graph call while replacing (bounds the activations)

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class ServedPrior:
    """The training prior of a served version: the parameter ``keys`` (the graph's output columns, in
    order), their ``log_prior``, the graph's tensor names and the prior file's sha256."""

    keys: list[str]
    log_prior: LogPrior
    input: str
    noise: str
    samples: str
    log_prob: str
    sha256: str
    max_rounds: int = MAX_ROUNDS

    def budget(self, n: int) -> int:
        """Draws allowed per event for ``n`` wanted (:func:`draw_budget`)."""
        return draw_budget(n)


def draw_budget(n: int) -> int:
    """Draws allowed per event for ``n`` wanted: ``max(DRAW_FACTOR n, MIN_BUDGET)`` (the server's and the
    client's bound: an acceptance below ~1 % is refused rather than paid for)."""
    return max(DRAW_FACTOR * n, MIN_BUDGET)


def load_served_prior(version_dir: Path, info: dict[str, Any], known: set[str]) -> ServedPrior | None:
    """The :class:`ServedPrior` of a version folder (its gwinfer.json is ``info``; ``known``: the tensor
    names its runner takes and returns); None if it has no prior. One-line GwinferError if the prior is
    recorded but missing, altered or unusable: the version is then unavailable rather than served without it."""
    record = (info.get("posterior") or {}).get("prior") if isinstance(info.get("posterior"), dict) else None
    if not record:
        return None
    try:
        name, keys, tensors = str(record["file"]), [str(k) for k in record["parameters"]], dict(record["tensors"])
        sha, offset = str(record["sha256"]), float(record.get("time_offset") or 0.0)
    except (KeyError, TypeError, ValueError):
        raise GwinferError("gwinfer.json: posterior.prior needs file, sha256, parameters and tensors") from None
    path = version_dir / name
    if Path(name).name != name or not path.is_file():
        raise GwinferError(f"the training prior {path} of this version does not exist")
    if sha256_file(path) != sha:
        raise GwinferError(f"the training prior {path} does not match the sha256 recorded in gwinfer.json")
    missing = [t for t in (tensors.get(k) for k in ("input", "noise", "samples", "log_prob")) if t not in known]
    if missing:
        raise GwinferError(f"gwinfer.json: posterior.prior names tensors {missing} the graph does not have")
    prior = TrainingPrior(path.read_text(), offset, str(path))
    return ServedPrior(
        keys,
        prior.log_prior(keys),
        tensors["input"],
        tensors["noise"],
        tensors["samples"],
        tensors["log_prob"],
        sha,
    )


def replacement_rng(x: np.ndarray, noise: np.ndarray) -> np.random.Generator:
    """The generator of one event's replacement noise: seeded with the sha256 of its strain and noise."""
    h = hashlib.sha256()
    for a in (x, noise):
        h.update(np.ascontiguousarray(a).tobytes())
    return np.random.default_rng(int.from_bytes(h.digest()[:16], "little"))


def run_in_chunks(
    runner: Runner, prior: ServedPrior, x: np.ndarray, noise: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(samples, log_prob) of the graph on ``x`` (E, ...) and ``noise`` (E, M, D), in calls of at most
    :data:`MAX_CALL_DRAWS` draws along the sample axis."""
    e, m, _ = noise.shape
    step = max(1, MAX_CALL_DRAWS // max(e, 1))
    parts = []
    for s0 in range(0, m, step):
        out = runner({prior.input: x, prior.noise: np.ascontiguousarray(noise[:, s0 : s0 + step])})
        parts.append((out[prior.samples], out[prior.log_prob]))
    return np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=1)


def in_prior(
    prior: ServedPrior, runner: Runner, x: np.ndarray, noise: np.ndarray, samples: np.ndarray, log_prob: np.ndarray
) -> InPrior:
    """The request's draws (``samples`` (B, N, D), ``log_prob`` (B, N) of the graph on ``x``, ``noise``)
    made to lie inside the prior (module docstring); ``draws`` (B, N, D + 1): samples then log_prob."""
    b, n, d = noise.shape
    rngs: dict[int, np.random.Generator] = {}

    def draw(events: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        fresh = []
        for j, i in enumerate(events):
            rng = rngs.setdefault(int(i), replacement_rng(x[i], noise[i]))
            fresh.append(rng.standard_normal((int(sizes[j]), d)).astype(np.float32))
        xs = np.ascontiguousarray(x[events], dtype=np.float32)
        s, lp = run_in_chunks(runner, prior, xs, padded(fresh, int(sizes.max()), d))
        return np.concatenate([s, lp[..., None]], axis=-1)

    first = np.concatenate([samples, log_prob[..., None]], axis=-1)
    return reject_and_replace(
        draw, n, b, prior.keys, prior.log_prior, first=first, max_rounds=prior.max_rounds, max_drawn=prior.budget(n)
    )


def apply_prior(
    prior: ServedPrior, runner: Runner, arrays: dict[str, np.ndarray], outputs: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], InPrior]:
    """(outputs with every draw inside the prior, the :class:`InPrior` record) of one answered request
    (``arrays``: its inputs; ``outputs``: the graph's raw answer). Raises OutsidePrior."""
    samples, log_prob = outputs[prior.samples], outputs[prior.log_prob]
    res = in_prior(prior, runner, arrays[prior.input], arrays[prior.noise], samples, log_prob)
    d = samples.shape[-1]
    fixed = dict(outputs)
    fixed[prior.samples] = np.ascontiguousarray(res.draws[..., :d], dtype=samples.dtype)
    fixed[prior.log_prob] = np.ascontiguousarray(res.draws[..., d], dtype=log_prob.dtype)
    return fixed, res


def response_parameters(res: InPrior) -> dict[str, Any]:
    """The response parameters reporting the prior's work on one request."""
    return {
        "prior_acceptance": res.fraction,
        "prior_draws": int(res.drawn.sum()),
        "prior_inside": int(res.inside.sum()),
    }
