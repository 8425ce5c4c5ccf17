"""``gwinfer sample``: seeded (same seed, same draws), draws outside the training prior dropped as in
``analyze``, and nonsense strain refused in one line instead of NaN samples."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import ROOT

MODEL = ROOT / "models" / "gw5d-iaf-ft" / "model.pt"
#: the PSD the model's simulation.yaml names, relative to it: the shared data beside the repository
PSD = (ROOT / "models" / "gw5d-iaf-ft" / "../../../shared/external/psd/aLIGO_ZERO_DET_high_P_psd.txt").resolve()

pytestmark = pytest.mark.skipif(not PSD.is_file(), reason=f"{PSD} (shared external data) is absent")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from gwinfer.cli import main

    out = tmp_path_factory.mktemp("sim") / "sim.h5"
    cfg = str(ROOT / "models" / "gw5d-iaf-ft" / "simulation.yaml")
    assert main(["simulate", "--config", cfg, "--n", "2", "--seed", "4", "--out", str(out), "--quiet"]) == 0
    return out


def _posterior(path):
    return json.loads(path.read_text())["posterior"]["content"]


def test_seeded_and_inside_the_prior(sim, tmp_path, capsys):
    from gwinfer.cli import main

    base = ["sample", "--model", str(MODEL), "--data", str(sim), "--injection", "1", "--n", "400", "--no-corner"]
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        assert main([*base, "--seed", seed, "--out", str(tmp_path / f"{name}.json")]) == 0
    a, b, c = (_posterior(tmp_path / f"{n}.json") for n in "abc")
    assert a["mass_1"] == b["mass_1"] and a["mass_1"] != c["mass_1"]
    m1, m2 = np.array(a["mass_1"]), np.array(a["mass_2"])
    assert len(m1) == 400 and np.all(m2 <= m1)  # gw5d's prior: mass_2 <= mass_1
    capsys.readouterr()


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e30, 0.0])
def test_nonsense_strain_is_refused(tmp_path, value, capsys):
    """NaN, inf, 1e30 in otherwise quiet strain, or strain all zeros: one line, exit 2, nothing written."""
    from gwinfer.cli import main

    x = np.zeros((1, 1024), dtype=np.float32)
    x[0, 10] = value
    np.save(tmp_path / "x.npy", x)
    rc = main(["sample", "--model", str(MODEL), "--strain", str(tmp_path / "x.npy"), "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("gwinfer: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "r.json").exists()
