"""gwinfer.physics against hand-worked values, numpy's linear solver and bilby's conversions."""

from __future__ import annotations

import numpy as np
import pytest

from gwinfer.errors import GwinferError
from gwinfer.physics import (
    S_eff,
    TimeGrid,
    bilby_mass_ratio_from_q,
    chirp_mass,
    component_masses,
    q_from_bilby_mass_ratio,
    sigma_eff,
    spins_from_effective,
    symmetric_mass_ratio,
)


def test_effective_spins_hand_values() -> None:
    # q = 3, s1 = 0.5, s2 = -0.2: sigma = (1.5 - 0.2)/4 = 0.325; S = (1 + 0.25) 0.5 + (1 + 2.25)(-0.2) = -0.025
    assert sigma_eff(3.0, 0.5, -0.2) == pytest.approx(0.325)
    assert S_eff(3.0, 0.5, -0.2) == pytest.approx(-0.025)


def test_spin_inverse_matches_linear_solve_away_from_q1() -> None:
    rng = np.random.default_rng(0)
    q = rng.uniform(1.2, 8.0, 500)
    s1, s2 = rng.uniform(-0.8, 0.8, (2, 500))
    r1, r2 = spins_from_effective(q, sigma_eff(q, s1, s2), S_eff(q, s1, s2))
    for i in range(0, 500, 50):  # independent reference: numpy's 2x2 solve
        A = np.array([[q[i] / (1 + q[i]), 1 / (1 + q[i])], [1 + 0.75 / q[i], 1 + 0.75 * q[i]]])
        ref = np.linalg.solve(A, [sigma_eff(q[i], s1[i], s2[i]), S_eff(q[i], s1[i], s2[i])])
        np.testing.assert_allclose([r1[i], r2[i]], ref, atol=2e-4)
    np.testing.assert_allclose(r1, s1, atol=2e-4)
    np.testing.assert_allclose(r2, s2, atol=2e-4)


def test_spin_inverse_is_stable_at_and_near_q1() -> None:
    s1, s2 = 0.6, -0.2
    # exactly at q = 1: the equal-spin, minimum-norm solution s1 = s2 = sigma_eff
    r1, r2 = spins_from_effective(1.0, sigma_eff(1.0, s1, s2), S_eff(1.0, s1, s2))
    assert r1 == pytest.approx(0.2) and r2 == pytest.approx(0.2)
    # approaching q = 1 the result is finite, keeps sigma_eff exactly and moves continuously
    qs = 1.0 + np.logspace(-8, -1, 30)
    r1, r2 = spins_from_effective(qs, sigma_eff(qs, s1, s2), S_eff(qs, s1, s2))
    assert np.all(np.isfinite(r1)) and np.all(np.isfinite(r2))
    np.testing.assert_allclose(sigma_eff(qs, r1, r2), sigma_eff(qs, s1, s2), atol=1e-12)
    assert abs(r1[0] - 0.2) < 1e-3 and abs(r2[0] - 0.2) < 1e-3
    assert abs(r1[-1] - s1) < 1e-3 and abs(r2[-1] - s2) < 1e-3
    # noise in S_eff is not amplified without bound near q = 1 (the exact inverse would give ~1/(q-1))
    r1n, _ = spins_from_effective(1.0 + 1e-6, sigma_eff(1.0, s1, s2), S_eff(1.0, s1, s2) + 0.01)
    assert abs(r1n) < 1.0


def test_masses_against_bilby() -> None:
    from bilby.gw import conversion

    m1, m2 = component_masses(60.0, 3.0)
    assert (m1, m2) == pytest.approx((45.0, 15.0))
    assert chirp_mass(m1, m2) == pytest.approx(conversion.component_masses_to_chirp_mass(m1, m2))
    assert symmetric_mass_ratio(3.0) == pytest.approx(conversion.component_masses_to_symmetric_mass_ratio(m1, m2))
    # bilby's mass_ratio is m2/m1 <= 1: the paper's q is its inverse
    assert bilby_mass_ratio_from_q(3.0) == pytest.approx(conversion.component_masses_to_mass_ratio(m1, m2))
    assert q_from_bilby_mass_ratio(0.25) == pytest.approx(4.0)
    mc = conversion.component_masses_to_chirp_mass(m1, m2)
    b1, b2 = conversion.chirp_mass_and_mass_ratio_to_component_masses(mc, bilby_mass_ratio_from_q(3.0))
    assert (b1, b2) == pytest.approx((m1, m2))


def test_sigma_eff_is_bilby_chi_eff() -> None:
    from bilby.gw import conversion

    m1, m2 = component_masses(50.0, 2.5)
    chi_eff = conversion.generate_spin_parameters(
        {"mass_1": m1, "mass_2": m2, "mass_ratio": m2 / m1, "a_1": 0.4, "a_2": 0.3, "tilt_1": 0.0, "tilt_2": np.pi,
         "phi_12": 0.0, "phi_jl": 0.0, "theta_jn": 0.0, "phase": 0.0, "reference_frequency": 20.0}
    )["chi_eff"]  # fmt: skip
    assert sigma_eff(2.5, 0.4, -0.3) == pytest.approx(chi_eff)


@pytest.mark.parametrize("bad", [1.5, 0.0, -0.2, np.nan])
def test_bilby_mass_ratio_range(bad: float) -> None:
    with pytest.raises(GwinferError, match="mass_ratio"):
        q_from_bilby_mass_ratio(bad)


def test_timegrid() -> None:
    g = TimeGrid(-10000.0, 130.0, 0.1)
    assert g.n == 101301 and g.times()[-1] == pytest.approx(130.0)
    assert TimeGrid.from_times(g.times()) == g
    for args in [(-100.0, 10.0, 0.0), (10.0, 100.0, 1.0), (-100.0, 10.0, 0.3)]:
        with pytest.raises(GwinferError):
            TimeGrid(*args)
