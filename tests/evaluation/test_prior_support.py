"""The one rule for draws outside the training prior (gwinfer.evaluation.prior_support), on exact toy draws."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bilby")

from gwinfer.errors import GwinferError  # noqa: E402
from gwinfer.evaluation.prior_support import (  # noqa: E402
    OutsidePrior,
    inside_prior,
    reject_and_replace,
    training_prior,
)
from gwinfer.physics.priors import prior_path  # noqa: E402


def half_line(s):
    """log prior of a >= 0 (b free)."""
    return np.where(np.asarray(s["a"]) >= 0, 0.0, -np.inf)


class Draws:
    """Draws of N(mu, 1) per observation from one generator, with the calls it got."""

    def __init__(self, mu: np.ndarray, seed: int = 0) -> None:
        self.mu, self.rng, self.calls = np.asarray(mu, float), np.random.default_rng(seed), []

    def __call__(self, events: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        self.calls.append((events.tolist(), sizes.tolist()))
        m = int(sizes.max())
        a = self.mu[events][:, None] + self.rng.standard_normal((len(events), m))
        return np.stack([a, np.arange(m)[None].repeat(len(events), 0)], axis=-1)  # column 2 rides along


def test_every_draw_inside_in_order_and_the_fraction():
    draw = Draws(np.array([0.5, -0.5, 2.0]))
    first = draw(np.arange(3), np.full(3, 400))
    res = reject_and_replace(draw, 400, 3, ["a"], half_line, first=first)
    assert res.draws.shape == (3, 400, 2) and np.all(res.draws[..., 0] >= 0)
    for i in range(3):  # the draws inside of the first round come first, in their order, riders included
        ok = first[i, :, 0] >= 0
        assert np.array_equal(res.draws[i, : ok.sum()], first[i][ok][:400])
    # the acceptance: inside / drawn, and near P(a >= 0) of each observation
    assert res.fraction == pytest.approx(res.inside.sum() / res.drawn.sum())
    from scipy.stats import norm

    expected = norm.cdf([0.5, -0.5, 2.0])
    assert np.all(np.abs(res.inside / res.drawn - expected) < 0.06)
    # only the observations still short are drawn again, each round sized from its acceptance so far
    assert res.rounds >= 1 and 1 in draw.calls[1][0]
    for events, sizes in draw.calls[1:]:
        assert all(s >= 10 for s in sizes) and len(events) == len(sizes) <= 3


def test_no_prior_rule_and_bounds_give_one_line():
    draw = Draws(np.array([-40.0]))  # never inside
    with pytest.raises(OutsidePrior, match=r"^only 0 of \d+ posterior draws lie inside the training prior") as err:
        reject_and_replace(draw, 50, 1, ["a"], half_line, max_drawn=1000)
    assert "\n" not in str(err.value) and err.value.drawn <= 1000 and isinstance(err.value, GwinferError)
    with pytest.raises(OutsidePrior, match="of observation 1 lie inside"):
        reject_and_replace(Draws(np.array([3.0, -40.0])), 20, 2, ["a"], half_line, max_rounds=2)
    # min_round: every round draws at least that many (sample's 1000)
    d = Draws(np.array([0.0]))
    reject_and_replace(d, 10, 1, ["a"], half_line, min_round=1000)
    assert all(s[0] >= 1000 for _, s in d.calls)


def test_inside_prior_checks_the_named_columns_only():
    d = np.array([[[1.0, -5.0], [-1.0, 5.0]]])
    assert inside_prior(d, ["a"], half_line).tolist() == [[True, False]]
    assert inside_prior(np.zeros((2, 0, 2)), ["a"], half_line).shape == (2, 0)


def test_training_prior_of_model_metadata():
    text = prior_path("gw5d").read_text()
    sim = {"prior": "gw5d", "time_offset": 0.5}
    assert training_prior({"names": ["a"]}) is None  # nothing recorded: no prior
    p = training_prior({"prior_text": "# recorded\n" + text, "simulation": sim})
    assert p.text.startswith("# recorded") and p.time_offset == 0.5 and p.source == "metadata prior_text"
    p = training_prior({"prior_text": "None", "simulation": sim})  # an old file's placeholder: the named file
    assert p.text == text and p.source.endswith("gw5d.prior")
    f = p.log_prior(["mass_1", "mass_2", "geocent_time"])
    lp = f({"mass_1": np.array([50.0, 40.0, 50.0]), "mass_2": np.array([40.0, 50.0, 40.0]),
            "geocent_time": np.array([1.2, 1.2, 0.7])})  # fmt: skip
    assert np.isfinite(lp).tolist() == [True, False, False]  # m2 > m1; geocent_time outside [1.15, 1.35]
    with pytest.raises(GwinferError, match="simulation's prior is unreadable"):
        training_prior({"simulation": {"prior": "/nowhere/x.prior"}})
