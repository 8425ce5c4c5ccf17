"""``gwinfer prepare`` writes the whitened segment ``analyze`` reads; ``sample --strain`` on it gives the same
draws as ``analyze`` (same model, seed and data), with geocent_time in GPS seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import ROOT

from gwinfer.external import external_dir

STRAIN = external_dir() / "strain"
H1, L1 = STRAIN / "H-H1_LOSC_4_V2-1126259446-32.hdf5", STRAIN / "L-L1_LOSC_4_V2-1126259446-32.hdf5"
GPS = 1126259462.44  # GW150914 (BBH_events_v3.json)
MODEL = ROOT / "models" / "hl-gw150914" / "model.pt"
pytestmark = pytest.mark.skipif(not H1.is_file(), reason="GWOSC strain of shared/external not here")


def test_prepare_then_sample_equals_analyze(tmp_path, capsys):
    from gwinfer.cli import main

    seg = tmp_path / "seg.npy"
    assert main(["prepare", "--model", str(MODEL), "--h1", str(H1), "--l1", str(L1), "--gps", str(GPS),
                 "--out", str(seg)]) == 0  # fmt: skip
    record = json.loads(seg.with_suffix(".json").read_text())
    x = np.load(seg)
    assert x.dtype == np.float32 and list(x.shape) == record["shape"] and x.shape[0] == 2
    assert abs(record["segment_start"] - GPS) < 4 and record["files"]["H1"]["sha256"]
    assert (tmp_path / "seg-H1-psd.txt").is_file() and (tmp_path / "seg-L1-psd.txt").is_file()
    from gwinfer.cli.main import describe  # gwinfer info knows the segment and its PSD files

    assert describe(seg)["kind"] == "whitened-segment" and describe(seg)["shape"] == record["shape"]
    assert describe(tmp_path / "seg-H1-psd.txt")["kind"] == "psd"
    common = ["--model", str(MODEL), "--n", "300", "--seed", "5", "--no-corner"]
    assert main(["sample", "--strain", str(seg), "--out", str(tmp_path / "s.json"), *common]) == 0
    assert main(["analyze", "--h1", str(H1), "--l1", str(L1), "--gps", str(GPS), "--out", str(tmp_path / "a.json"),
                 *common]) == 0  # fmt: skip
    capsys.readouterr()
    s = json.loads((tmp_path / "s.json").read_text())["posterior"]["content"]
    a = json.loads((tmp_path / "a.json").read_text())["posterior"]["content"]
    assert s["chirp_mass"] == pytest.approx(a["chirp_mass"], rel=1e-6)
    assert np.all(np.abs(np.array(s["geocent_time"]) - GPS) < 1.0)  # GPS seconds, not seconds from the start
    # the result records the strain and the PSDs that whitened it, in bilby's place (CBCResult.interferometers)
    from bilby.gw.result import CBCResult

    from gwinfer.provenance import sha256_file

    back = CBCResult.from_json(str(tmp_path / "s.json"))
    ifos = back.meta_data["likelihood"]["interferometers"]
    assert sorted(ifos) == ["H1", "L1"] and back.meta_data["likelihood"]["start_time"] == record["segment_start"]
    assert ifos["H1"]["strain"]["sha256"] == sha256_file(seg)
    assert ifos["L1"]["psd"]["sha256"] == sha256_file(tmp_path / "seg-L1-psd.txt")
    assert ifos["L1"]["gwosc_file"]["sha256"] == sha256_file(L1)
    assert back.priors["geocent_time"].minimum > GPS - 4  # the prior in GPS seconds, as the samples


@pytest.mark.parametrize("content", [b"", b"x y z\n1 2\n", None])
def test_unreadable_strain_is_one_line(tmp_path, content, capsys):
    from gwinfer.cli import main

    path = tmp_path / ("s.npy" if content is None else "s.txt")
    if content is None:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        path.write_bytes(content)
    assert main(["sample", "--model", str(MODEL), "--strain", str(path), "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gwinfer: error: ") and err.count("\n") == 1, err


def test_analyze_says_when_the_event_is_outside_the_models_conditions(tmp_path):
    """hl-gw150914 was trained on GW150914's own PSDs: on GW150914 no warning, on GW151226's data (other
    noise) a warning naming the PSD mismatch, recorded in the result."""
    from gwinfer.detectors.psd import PSD
    from gwinfer.evaluation.analyze import analyze, psd_distance

    own = analyze(MODEL, {"H1": H1, "L1": L1}, GPS, tmp_path / "a.json", n=300, corner=False)
    assert not [w for w in own["warnings"] if "training PSD" in w]
    h1, l1 = STRAIN / "H-H1_LOSC_4_V2-1135136334-32.hdf5", STRAIN / "L-L1_LOSC_4_V2-1135136334-32.hdf5"
    other = analyze(MODEL, {"H1": h1, "L1": l1}, 1135136350.65, tmp_path / "b.json", n=300, corner=False)
    assert sum("training PSD" in w for w in other["warnings"]) == 2
    meta = json.loads((tmp_path / "b.json").read_text())["meta_data"]["gwinfer"]["coverage"]
    assert (
        meta["psd"]["L1"]["median_abs_log_ratio"] > 0.1
        and abs(meta["gps_offset_days"] - (1135136350.65 - 1126259460.94) / 86400) < 1e-6
    )
    # the distance itself: a PSD twice another is ln 2 away everywhere
    f = np.geomspace(10, 1000, 50)
    d = psd_distance(PSD.from_arrays(f, 2 * f**-2.0), PSD.from_arrays(f, f**-2.0), 20, 500)
    assert d["median_abs_log_ratio"] == pytest.approx(np.log(2)) and d["mean_log_ratio"] == pytest.approx(np.log(2))


def test_analyze_result_prior_is_in_gps_seconds(tmp_path):
    import bilby

    from gwinfer.evaluation.analyze import analyze

    out = analyze(MODEL, {"H1": H1, "L1": L1}, GPS, tmp_path / "a.json", n=200, corner=False)
    res = bilby.core.result.read_in_result(str(out["result"]))
    prior = res.priors["geocent_time"]
    assert (
        prior.minimum <= np.min(res.posterior["geocent_time"])
        and np.max(res.posterior["geocent_time"]) <= prior.maximum
    )
    assert abs(prior.minimum - GPS) < 1 and prior.maximum - prior.minimum < 1
    assert "chirp_mass" in res.priors and np.isfinite(res.priors["chirp_mass"].maximum)
