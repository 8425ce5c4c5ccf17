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
