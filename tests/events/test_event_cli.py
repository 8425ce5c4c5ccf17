"""Event models end to end on the GWOSC GW150914 files: training on a tiny bank, analyze (network draws, the
noise-coverage warning), importance-sampling refusals, and gwinfer compare against the published release."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gwinfer.cli import main
from gwinfer.external import external_dir

STRAIN = external_dir() / "strain"
H1 = STRAIN / "H-H1_LOSC_4_V2-1126259446-32.hdf5"
L1 = STRAIN / "L-L1_LOSC_4_V2-1126259446-32.hdf5"
GPS = 1126259462.42

pytestmark = pytest.mark.skipif(not H1.is_file(), reason=f"GWOSC strain not found in {STRAIN}")


@pytest.fixture(scope="module")
def tiny_model(tiny_bank, tmp_path_factory):
    """One short epoch on the tiny bank (design curves only: O1 noise is OUTSIDE its family)."""
    from gwinfer.training.posterior import train_posterior

    experiment = {
        "data": {"bank": str(tiny_bank), "val_size": 50, "fit_samples": 200, "bands": 16},
        "model": {
            "kind": "nsf",
            "config": {
                "embedding": {"kind": "fd", "components": 32, "bands": 16, "hidden": [32], "context_dim": 8},
                "transforms": 2,
                "hidden": [16],
            },
        },
        "train": {"epochs": 1, "batch_size": 64, "lr": 1e-3, "seed": 0, "device": "cpu"},
    }
    return train_posterior(experiment, tmp_path_factory.mktemp("event-model"), resume=False)


def test_trained_event_model_records_what_analyze_needs(tiny_model) -> None:
    from gwinfer.models import load_estimator

    _, meta = load_estimator(tiny_model)
    info = meta["event_model"]
    assert info["detectors"] == ["H1", "L1"] and info["bands"] == 16 and len(info["family_features"]) == 2
    assert meta["names"][6] == "geocent_time" and meta["svd_kept_power"]["median"] > 0.8  # 32 components only


def test_analyze_event_model_warns_about_noise_and_writes_gps_times(tiny_model, tmp_path, capsys) -> None:
    from bilby.core.result import read_in_result

    out = tmp_path / "gw150914.json"
    rc = main(["analyze", "--model", str(tiny_model), "--h1", str(H1), "--l1", str(L1), "--gps", str(GPS)]
              + ["--out", str(out), "--n", "300", "--no-corner"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "warning: H1 noise is" in text and "from the nearest training noise curve" in text
    post = read_in_result(filename=str(out)).posterior
    assert np.all(np.abs(post["geocent_time"] - GPS) <= 0.1 + 1e-6)  # GPS seconds, inside the prior
    assert post["ra"].between(0, 2 * np.pi).all() and len(post) == 300
    rc = main(["analyze", "--model", str(tiny_model), "--h1", str(H1), "--l1", str(L1), "--gps", str(GPS)]
              + ["--out", str(tmp_path / "x.json"), "--strict-coverage"])  # fmt: skip
    assert rc == 2 and "not trained for it" in capsys.readouterr().err


def test_analyze_dynesty_reference_on_the_same_likelihood(tiny_model, tmp_path, capsys) -> None:
    """--dynesty: bilby + dynesty on the event's likelihood (a tiny run): finite evidence and Bayes factor,
    geocent_time reconstructed in GPS seconds inside the prior, the sampler recorded; with
    --importance-sample it is refused in one line."""
    from bilby.core.result import read_in_result

    out = tmp_path / "dynesty.json"
    args = ["analyze", "--model", str(tiny_model), "--h1", str(H1), "--l1", str(L1), "--gps", str(GPS)]
    rc = main([*args, "--out", str(out), "--dynesty", "--nlive", "20", "--naccept", "2", "--workers", "1",
               "--no-corner"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    res = read_in_result(filename=str(out))
    assert np.isfinite(res.log_evidence) and np.isfinite(res.log_bayes_factor) and res.log_bayes_factor > 0
    assert np.all(np.abs(res.posterior["geocent_time"] - GPS) <= 0.1 + 1e-6)
    assert res.meta_data["gwinfer"]["dynesty"]["nlive"] == 20
    capsys.readouterr()
    rc = main([*args, "--out", str(tmp_path / "x.json"), "--dynesty", "--importance-sample"])
    assert rc == 2 and capsys.readouterr().err.count("\n") == 1


def test_importance_sample_needs_an_event_model(tmp_path, capsys) -> None:
    from pathlib import Path

    model = Path(__file__).resolve().parents[2] / "models/hl-gw150914/model.pt"
    if not model.is_file():
        pytest.skip("models/hl-gw150914 not shipped")
    rc = main(["analyze", "--model", str(model), "--h1", str(H1), "--l1", str(L1), "--gps", str(GPS)]
              + ["--out", str(tmp_path / "r.json"), "--importance-sample"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not an event model" in err[0]


def test_compare_with_the_published_release(tmp_path, capsys) -> None:
    """The published samples written as our result compare as identical (inside, width ratio 1, JSD ~ 0)."""
    from gwinfer.evaluation.posterior import make_result, save_result
    from gwinfer.evaluation.published import published_samples

    pub = published_samples("GW150914")
    keys = ["chirp_mass", "mass_ratio", "luminosity_distance", "theta_jn"]
    samples = {k: np.asarray(pub[k]) for k in keys} | {"chi_1": pub["chi_eff"], "chi_2": pub["chi_eff"]}
    res = save_result(make_result(samples, search_parameter_keys=keys), tmp_path / "pub.json", corner=False)
    rc = main(["compare", "--result", str(res["result"]), "--event", "GW150914", "--out", str(tmp_path / "cmp")])
    assert rc == 0
    rows = {r["parameter"]: r for r in json.loads((tmp_path / "cmp/comparison.json").read_text())["rows"]}
    assert rows["chirp_mass"]["inside"] and rows["chirp_mass"]["width_ratio"] == pytest.approx(1.0)
    assert rows["chirp_mass"]["jsd"] < 1e-3 and rows["chi_eff"]["jsd"] < 1e-3
    assert (tmp_path / "cmp/overlay.png").stat().st_size > 10000
    rc = main(
        ["compare", "--result", str(tmp_path / "none.json"), "--event", "GW150914", "--out", str(tmp_path / "c2")]
    )
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    # --against another result (gwinfer analyze --dynesty): every searched parameter; itself: identical
    rc = main(
        ["compare", "--result", str(res["result"]), "--against", str(res["result"]), "--out", str(tmp_path / "c3")]
    )
    assert rc == 0
    rows = {r["parameter"]: r for r in json.loads((tmp_path / "c3/comparison.json").read_text())["rows"]}
    assert set(keys) <= set(rows) and all(r["jsd"] < 1e-3 and r["width_ratio"] == 1.0 for r in rows.values())
    rc = main(["compare", "--result", str(res["result"]), "--out", str(tmp_path / "c4")])
    assert rc == 2 and "--against" in capsys.readouterr().err
