"""``gwinfer robustness`` on the micro catalogue: every row is computed, the clean row equals ``evaluate``,
and a second code enters as a row of its own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def xas_test(tmp_path_factory, micro_config) -> Path:
    """The micro catalogue's binaries made by IMRPhenomXAS."""
    from dataclasses import replace

    from gwinfer.data.generate import generate_catalogue

    out = tmp_path_factory.mktemp("xas") / "catalogue"
    generate_catalogue(replace(micro_config, backend="IMRPhenomXAS", name="micro-xas"), out, workers=1, progress=False)
    return out


def test_robustness_rows(trained, micro_catalogue, xas_test, tmp_path):
    from gwinfer.evaluation.evaluate import run_split
    from gwinfer.evaluation.robustness import robustness_table, write_robustness

    res = robustness_table(trained, [micro_catalogue, xas_test], n=4, seed=1, workers=1, progress=False)
    rows = res["rows"]
    assert list(rows) == ["clean", "jitter", "noise 1e-05", "noise 0.0001", "noise 0.001", "noise 0.001, re-aligned",
                          "IMRPhenomXAS"]  # fmt: skip
    ev, _ = run_split(trained, micro_catalogue, "test", workers=1, progress=False)
    assert rows["clean"]["median"] == pytest.approx(float(np.median(ev.overlaps)), abs=1e-12)
    for r in rows.values():
        assert r["n"] == 4 and 0.0 <= r["min"] <= r["q1"] <= r["median"] <= 1.0 + 1e-9
    # noise at 1e-5 of the peak changes nothing
    assert rows["noise 1e-05"]["median"] == pytest.approx(rows["clean"]["median"], abs=2e-3)
    out = write_robustness(res, tmp_path / "rob")
    assert json.loads((out / "robustness.json").read_text())["provenance"]["kind"] == "robustness"
    assert "| jitter |" in (out / "robustness.md").read_text() and (out / "robustness.png").stat().st_size > 1000
    assert len(res["mismatches"]["clean"]) == 4


def test_robustness_needs_the_models_own_code(trained, xas_test):
    from gwinfer.errors import GwinferError
    from gwinfer.evaluation.robustness import robustness_table

    with pytest.raises(GwinferError, match="own code IMRPhenomT"):
        robustness_table(trained, [xas_test], n=2, progress=False)
