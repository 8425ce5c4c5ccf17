"""``gwinfer info`` describes every kind of file gwinfer writes, refuses others with one line, and ends
quietly when its reader goes away."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from support import ROOT

GWINFER = [sys.executable, "-m", "gwinfer.cli"]


def test_info_on_every_kind(tmp_path, micro_catalogue, capsys):
    from gwinfer.cli import main
    from gwinfer.cli.main import describe

    assert describe(micro_catalogue)["kind"] == "catalogue"
    assert describe(ROOT / "models" / "gw5d-iaf")["kind"] == "posterior-model"
    point = describe(ROOT / "models" / "rb-chi-random80k" / "model.pt")
    assert point["kind"] == "model" and point["approximant"] == "IMRPhenomT"
    shard = next((micro_catalogue / "test").glob("*.h5"))
    assert describe(shard)["kind"] == "catalogue-shard"
    assert main(["info", str(ROOT / "models" / "gw5d-iaf")]) == 0
    out = capsys.readouterr().out
    assert "kind: posterior-model" in out and "n_parameters:" in out and not out.startswith("{")
    for name, content in (("notes.txt", "hello\n"), ("weights.pt", "not a zip"), ("x.h5", "not hdf5")):
        (tmp_path / name).write_text(content)
        assert main(["info", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("gwinfer: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    np.savetxt(tmp_path / "psd.txt", np.ones((3, 2)), header=json.dumps({"detector": "H1"}))
    assert describe(tmp_path / "psd.txt") == {"kind": "psd", "detector": "H1"}


def test_info_into_a_closed_pipe_is_not_an_error():
    cmd = " ".join([*GWINFER, "info", "--json", str(ROOT / "models" / "gw5d-iaf")]) + " | head -c 10"
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_info_on_results_tables_and_data_files(tmp_path, micro_catalogue, capsys):
    """Simulation, prediction, stream-table and bilby result files (JSON and HDF5) are described, a result
    by its summary (not its samples)."""
    from gwinfer.cli import main
    from gwinfer.cli.main import describe
    from gwinfer.evaluation.posterior import make_result, save_result
    from gwinfer.serving.replay import write_stream_table

    (tmp_path / "sim.yaml").write_text("prior: gw5d\nn: 3\nseed: 0\ndetectors: [plus]\n")
    assert main(["simulate", "--config", str(tmp_path / "sim.yaml"), "--out", str(tmp_path / "sim.h5"), "--quiet",
                 "--workers", "1"]) == 0  # fmt: skip
    assert describe(tmp_path / "sim.h5")["kind"] == "simulation" and describe(tmp_path / "sim.h5")["rows"] == 3
    point = ROOT / "models" / "rb-chi-random80k"
    argv = ["predict", "--model", str(point), "--data", str(micro_catalogue), "--out", str(tmp_path / "p.h5")]
    assert main(argv) == 0
    info = describe(tmp_path / "p.h5")
    assert info["kind"] == "predictions" and info["rows"] == 4 and info["provenance"]["kind"] == "predictions"
    rows = [{"gps_end": 1.0 + k, "ready": k > 0, "q_median": 2.0} for k in range(3)]
    for suffix in ("csv", "h5"):
        write_stream_table(rows, tmp_path / f"t.{suffix}", {"kind": "stream", "model": "m"})
        info = describe(tmp_path / f"t.{suffix}")
        assert info["kind"] == "stream-table" and info["rows"] == 3, info
    rng = np.random.default_rng(0)
    samples = {"mass_1": rng.uniform(30, 40, 50), "mass_2": rng.uniform(20, 30, 50)}
    result = make_result(samples, label="r", meta_data={"gwinfer": {"model": "m.pt"}}, derived=False)
    for suffix in ("json", "hdf5"):
        path = save_result(result, tmp_path / f"r.{suffix}", corner=False)["result"]
        info = describe(path)
        assert info["kind"] == "posterior-result" and info["n_samples"] == 50, info
        assert {"mass_1", "mass_2"} <= set(info["columns"]) and info["meta_data"]["gwinfer"]["model"] == "m.pt"
        assert main(["info", str(path)]) == 0 and len(capsys.readouterr().out) < 5000  # a summary, not 50 rows
