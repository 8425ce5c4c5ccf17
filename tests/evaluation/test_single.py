"""``gwinfer predict --waveform``: a user's own (2,2) mode in, parameters out, whatever its clock, step and
phase; checked against the lalsimulation waveform the file was written from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support import ROOT

from gwinfer.physics.timegrid import TimeGrid

MODEL = ROOT / "models" / "rb-chi-random80k"
Q, S1, S2 = 3.3, 0.4, -0.3


def _nr_file(path: Path, dt: float, shift: float, phase: float) -> Path:
    """An NR-format file of IMRPhenomT (Q, S1, S2) sampled every dt M on a clock whose origin is off by
    1234.5 + shift M, rotated by a constant phase."""
    from gwinfer.data.waveform_file import write_nr_hdf5
    from gwinfer.waveforms import get_backend

    grid = TimeGrid(-10100.0 - shift, 200.0 - shift, dt)
    h = get_backend("IMRPhenomT").h22(Q, S1, S2, grid) * np.exp(1j * phase)
    return write_nr_hdf5(path, grid.times() + shift + 1234.5, h, Q, S1, S2)


def test_same_answer_for_any_clock_phase_and_step(tmp_path):
    from gwinfer.evaluation.single import predict_waveform

    ref = predict_waveform(MODEL, _nr_file(tmp_path / "ref.h5", 0.5, 0.0, 0.0))
    assert ref["stated"] == pytest.approx({"q": Q, "s1z": S1, "s2z": S2}, abs=1e-12)
    assert abs(ref["error"]["q"]) < 0.02 and abs(ref["error"]["s1z"]) < 0.02 and abs(ref["error"]["s2z"]) < 0.02
    assert ref["overlap"] > 0.999 and not ref["warnings"] and ref["coverage"] == 1.0
    for i, (dt, shift, phase) in enumerate([(0.5, 0.37, 1.0), (1.0, -0.21, 2.5), (0.25, 0.41, 0.3)]):
        r = predict_waveform(MODEL, _nr_file(tmp_path / f"w{i}.h5", dt, shift, phase))
        assert abs(r["q"] - ref["q"]) / ref["q"] < 1e-3, (dt, shift, phase, r["q"], ref["q"])
        assert abs(r["s1z"] - ref["s1z"]) < 2e-3 and abs(r["s2z"] - ref["s2z"]) < 2e-3, (dt, shift, phase, r)
        assert abs(r["peak_time"] - (1234.5 + shift)) < 0.01


def test_cli_text_file_and_refusals(tmp_path, capsys):
    from gwinfer.cli import main
    from gwinfer.waveforms import get_backend

    grid = TimeGrid(-10100.0, 200.0, 1.0)
    h = get_backend("IMRPhenomT").h22(Q, S1, S2, grid)
    np.savetxt(tmp_path / "h.txt", np.column_stack([grid.times() + 50.0, h.real, h.imag]))
    assert main(["predict", "--model", str(MODEL), "--waveform", str(tmp_path / "h.txt"),
                 "--out", str(tmp_path / "p.json")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "q = m1/m2 = 3.3" in out and "overlap" in out
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["provenance"]["kind"] == "prediction" and 1.0 <= saved["q"] <= 8.0

    np.savetxt(tmp_path / "zero.txt", np.column_stack([grid.times(), 0 * h.real, 0 * h.imag]))
    np.savetxt(tmp_path / "seconds.txt", np.column_stack([grid.times() * 1e-4, h.real, h.imag]))
    for name in ("zero.txt", "seconds.txt"):
        assert main(["predict", "--model", str(MODEL), "--waveform", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("gwinfer: error: ") and err.count("\n") == 1, err


def test_foreign_input_is_flagged_not_answered_silently(tmp_path):
    """White noise is not a BBH (2,2) mode: the answer stays in the domain and says so."""
    from gwinfer.evaluation.single import predict_waveform

    rng = np.random.default_rng(0)
    t = np.arange(-10100.0, 200.0, 1.0)
    h = (rng.standard_normal(t.size) + 1j * rng.standard_normal(t.size)) * 0.1
    h[np.argmin(np.abs(t))] = 1.0  # a single loud sample as its "peak"
    np.save(tmp_path / "noise.npy", np.column_stack([t, h.real, h.imag]))
    r = predict_waveform(MODEL, tmp_path / "noise.npy")
    assert 1.0 <= r["q"] <= 8.0 and abs(r["s1z"]) <= 0.8 and abs(r["s2z"]) <= 0.8
    assert r["warnings"] and r["overlap"] < 0.97


@pytest.mark.parametrize("bad", ["missing.h5", "file.csv"])
def test_unreadable_files_are_one_line(tmp_path, bad):
    from gwinfer.errors import GwinferError
    from gwinfer.evaluation.single import predict_waveform

    (tmp_path / "file.csv").write_text("1,2,3\n")
    with pytest.raises(GwinferError):
        predict_waveform(MODEL, tmp_path / bad)
