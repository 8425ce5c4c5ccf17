"""Draws outside the training prior: one rule for ``sample``, ``analyze``, ``pp``, ``gwinfer serve`` and the client.

A flow leaks a little probability mass outside the prior it was trained on (mass_ratio > 1, spins beyond
0.99, distances past the edge, ...). Those draws have zero prior probability: they are rejected and
replaced by further draws of the same model on the same observation, as DINGO does, until ``n`` draws per
observation lie inside the prior (:func:`reject_and_replace`). Too few inside after ``max_rounds`` rounds
means the data are unlike anything the model was trained on: :class:`OutsidePrior`, one line.

* :func:`training_prior` - the prior a posterior model was trained on, from its file's metadata
  (``prior_text``, else the simulation's prior file), with the ``geocent_time`` offset of its simulation;
* :func:`log_prior_of` - the joint log prior density of some keys of a bilby ``PriorDict`` (constraints on
  derivable keys applied), ``-inf`` outside the support;
* :func:`reject_and_replace` - the rejection loop on any draw function (an estimator in-process, a served
  graph, a remote server), for a batch of observations at once.

Units are those of the prior file (Msun, Mpc, s, rad).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError

#: Vectorised log density: ``f(samples: {name: (n,) array}) -> (n,) array`` (-inf outside the support).
LogPrior = Callable[[Mapping[str, np.ndarray]], np.ndarray]
#: ``draw(events, sizes) -> (len(events), max(sizes), C)``: fresh draws of observations ``events`` (indices
#: into the batch); only the first ``sizes[j]`` rows of row j are used.
Draw = Callable[[np.ndarray, np.ndarray], np.ndarray]

MAX_ROUNDS = 20  # rounds of replacement draws before giving up
MIN_RATE = 1e-3  # acceptance assumed at least this when sizing a round
MAX_ROUND_FACTOR = 100  # a round draws at most this many times the wanted number per observation


class OutsidePrior(GwinferError):
    """Too few draws of an observation inside the training prior (the data are unlike the training set)."""

    def __init__(self, inside: int, drawn: int, needed: int, rounds: int, event: int | None = None) -> None:
        which = "" if event is None else f" of observation {event}"
        super().__init__(
            f"only {inside} of {drawn} posterior draws{which} lie inside the training prior after {rounds} "
            f"round{'' if rounds == 1 else 's'} of replacements ({needed} needed): the data are probably outside "
            "what the model was trained on"
        )
        self.inside, self.drawn, self.needed, self.rounds, self.event = inside, drawn, needed, rounds, event


# ------------------------------------------------------------------------------------------ the prior
def is_constraint(prior: Any) -> bool:
    """Whether ``prior`` is a bilby ``Constraint`` prior."""
    from bilby.core.prior import Constraint

    return isinstance(prior, Constraint)


def log_prior_of(prior: Any, keys: Sequence[str], where: str = "the prior") -> LogPrior:
    """``f(samples: {name: (n,)}) -> (n,)``: the joint log prior density of ``keys`` under the bilby
    ``PriorDict`` ``prior``, with its constraints on keys derivable from ``keys`` (bilby normalises
    constrained priors by Monte Carlo, once). One line if a key is not in the prior (``where`` names it)."""
    keys = list(keys)
    missing = [k for k in keys if k not in prior]
    if missing:
        raise GwinferError(f"parameters {missing} are not in {where}")
    derivable = set(prior.conversion_function({k: 1.0 for k in keys}))  # constraints on derived keys apply
    parts = {k: prior[k] for k in keys}
    parts.update({k: p for k, p in prior.items() if is_constraint(p) and k in derivable})
    sub = type(prior)(parts, conversion_function=prior.conversion_function)

    def f(samples: Mapping[str, np.ndarray]) -> np.ndarray:
        s = {k: np.asarray(samples[k], dtype=float) for k in keys}
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # bilby: log(0) = -inf outside
            return np.asarray(sub.ln_prob(s, axis=0), dtype=float).reshape(-1)

    return f


@dataclass(frozen=True)
class TrainingPrior:
    """The prior a posterior model was trained on: bilby prior-file ``text``, ``time_offset`` (s, added to
    the ``geocent_time`` bounds: the model's coordinates) and where the text came from (``source``)."""

    text: str
    time_offset: float = 0.0
    source: str = "metadata prior_text"

    def load(self) -> Any:
        """The bilby ``PriorDict`` (one line if bilby cannot read the text)."""
        from gwinfer.data.fd_bank import prior_from_text

        return prior_from_text(self.text, time_offset=self.time_offset)

    def log_prior(self, keys: Sequence[str]) -> LogPrior:
        """:func:`log_prior_of` the keys, evaluated once so that bilby's constraint normalisation is done."""
        f = log_prior_of(self.load(), keys, "the model's training prior")
        f({k: np.zeros(1) for k in keys})
        return f


def training_prior(meta: Mapping[str, Any]) -> TrainingPrior | None:
    """The training prior recorded in a posterior model file's metadata, or None if it records none.

    The text is the metadata's ``prior_text`` (the prior file as the training data were drawn), else the
    file the ``simulation`` names (a named prior or a path: as ``gwinfer sample`` reads it); the offset is
    the simulation's ``time_offset`` (0 without a simulation: frequency-domain event models are in their
    own coordinates). A simulation whose prior can be found nowhere is one line.
    """
    text = meta.get("prior_text")
    sim = meta.get("simulation") if isinstance(meta.get("simulation"), Mapping) else None
    offset = float(sim.get("time_offset") or 0.0) if sim is not None else 0.0
    if isinstance(text, str) and text.strip() and text != "None":
        return TrainingPrior(text, offset, "metadata prior_text")
    if sim is None or not sim.get("prior"):
        return None
    from gwinfer.physics.priors import prior_path

    try:
        path = prior_path(sim["prior"])
    except GwinferError as err:
        raise GwinferError(f"the model records no prior_text and its simulation's prior is unreadable: {err}") from None
    return TrainingPrior(path.read_text(), offset, str(path))


def model_log_prior(meta: Mapping[str, Any], keys: Sequence[str] | None) -> LogPrior | None:
    """The log prior of ``keys`` under a model's :func:`training_prior`; None without a prior or keys."""
    prior = training_prior(meta)
    if prior is None or not keys:
        return None
    return prior.log_prior(list(keys))


# ------------------------------------------------------------------------------------------ rejection
def inside_prior(draws: np.ndarray, keys: Sequence[str], log_prior: LogPrior) -> np.ndarray:
    """Boolean mask (...) of draws (..., C) inside the prior: the first ``len(keys)`` columns are the
    parameters ``keys``; further columns (e.g. a log density) ride along unchecked."""
    d = np.asarray(draws)
    flat = d.reshape(-1, d.shape[-1]).astype(np.float64)
    if flat.shape[0] == 0:
        return np.zeros(d.shape[:-1], dtype=bool)
    lp = log_prior({k: flat[:, i] for i, k in enumerate(keys)})
    return np.isfinite(lp).reshape(d.shape[:-1])


def round_sizes(needed: np.ndarray, inside: np.ndarray, drawn: np.ndarray, n: int, min_round: int) -> np.ndarray:
    """Draws per observation in the next round: 1.2 x the missing ones over the acceptance so far (at least
    :data:`MIN_RATE`) plus 10, at least ``min_round``, at most ``max(MAX_ROUND_FACTOR n, min_round)``."""
    rate = np.maximum(inside / np.maximum(drawn, 1), MIN_RATE)
    m = np.ceil(1.2 * needed / rate).astype(np.int64) + 10
    return np.clip(m, min_round, max(MAX_ROUND_FACTOR * n, min_round))


@dataclass
class InPrior:
    """Result of :func:`reject_and_replace`: ``draws`` (B, n, C) all inside the prior, and per observation
    the draws found ``inside`` and ``drawn`` in all (B,) (the acceptance: inside / drawn)."""

    draws: np.ndarray
    inside: np.ndarray
    drawn: np.ndarray
    rounds: int

    @property
    def fraction(self) -> float:
        """Draws inside the prior over draws made, over every observation (1.0 when nothing was drawn)."""
        total = int(self.drawn.sum())
        return float(self.inside.sum()) / total if total else 1.0


def reject_and_replace(
    draw: Draw,
    n: int,
    batch: int,
    keys: Sequence[str],
    log_prior: LogPrior,
    *,
    first: np.ndarray | None = None,
    max_rounds: int = MAX_ROUNDS,
    min_round: int = 0,
    max_drawn: int | None = None,
) -> InPrior:
    """``n`` draws per observation of a batch of ``batch``, all inside the prior, kept in the order drawn.

    ``first`` (batch, n0, C): draws already made (a request's own); else the first round draws
    ``max(n, min_round)`` per observation. Each further round draws :func:`round_sizes` more for the
    observations still short (``draw(events, sizes)``); at most ``max_rounds`` rounds after the first and,
    with ``max_drawn``, at most that many draws per observation in all; then :class:`OutsidePrior` for the
    observation with fewest inside. Columns: see :func:`inside_prior`.
    """
    if first is None:
        first = draw(np.arange(batch), np.full(batch, max(n, min_round), dtype=np.int64))
    first = np.asarray(first)
    kept: list[list[np.ndarray]] = [[] for _ in range(batch)]
    inside = np.zeros(batch, dtype=np.int64)
    drawn = np.zeros(batch, dtype=np.int64)

    def take(events: np.ndarray, sizes: np.ndarray, draws: np.ndarray) -> None:
        ok = inside_prior(draws, keys, log_prior)
        for j, i in enumerate(events):
            m = int(sizes[j])
            kept[i].append(draws[j, :m][ok[j, :m]])
            inside[i] += int(ok[j, :m].sum())
            drawn[i] += m

    take(np.arange(batch), np.full(batch, first.shape[1], dtype=np.int64), first)
    rounds = 0
    while rounds < max_rounds:
        short = np.flatnonzero(inside < n)
        if short.size == 0:
            break
        sizes = round_sizes(n - inside[short], inside[short], drawn[short], n, min_round)
        if max_drawn is not None:
            sizes = np.minimum(sizes, max_drawn - drawn[short])
            if np.any(sizes <= 0):
                break
        take(short, sizes, np.asarray(draw(short, sizes)))
        rounds += 1
    if np.any(inside < n):
        worst = int(np.argmin(np.where(inside < n, inside, np.iinfo(np.int64).max)))
        raise OutsidePrior(int(inside[worst]), int(drawn[worst]), n, rounds, worst if batch > 1 else None)
    out = np.stack([np.concatenate(k, axis=0)[:n] for k in kept]) if batch else first[:, :n]
    return InPrior(out, inside, drawn, rounds)


def padded(parts: Sequence[np.ndarray], width: int, d: int, dtype: Any = np.float32) -> np.ndarray:
    """Rows (m_j, d) stacked into (len(parts), width, d), zero-padded (for graphs taking rectangular input)."""
    out = np.zeros((len(parts), width, d), dtype=dtype)
    for j, p in enumerate(parts):
        out[j, : len(p)] = p
    return out
