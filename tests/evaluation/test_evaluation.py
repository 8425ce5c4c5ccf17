"""Train -> predict -> evaluate -> report on the micro catalogue, degeneracy maps, and the bad-input paths."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from gwinfer.errors import GwinferError

GWINFER = [sys.executable, "-m", "gwinfer.cli"]


def test_model_file_records_its_grid_and_approximant(trained: Path) -> None:
    r = subprocess.run([*GWINFER, "info", "--json", str(trained)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["t_start"], info["t_end"], info["dt"]) == (-4000.0, 100.0, 4.0)
    assert info["approximant"] == "IMRPhenomT" and info["model_kind"] == "reduced_basis"
    assert info["catalogue"]["manifest_sha256"] and info["gwinfer_version"]


def test_evaluate_writes_the_paper_table(trained: Path, micro_catalogue: Path, tmp_path: Path) -> None:
    from gwinfer.evaluation.overlap import overlap
    from gwinfer.physics import TimeGrid
    from gwinfer.physics.parameters import sigma_eff
    from gwinfer.waveforms import get_backend

    res_path, report = tmp_path / "results.json", tmp_path / "report"
    r = subprocess.run(
        [
            *GWINFER,
            "evaluate",
            "--model",
            str(trained),
            "--data",
            str(micro_catalogue),
            "--split",
            "test",
            "--json",
            str(res_path),
            "--report",
            str(report),
            "--quiet",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(res_path.read_text())
    assert set(res["table"]) == {"q", "s1", "s2", "sigma_eff", "S_eff", "overlap"}
    assert set(res["overlap_fraction_below"]) == {"0.97", "0.90", "0.85"} and res["n"] == 4
    assert {"min", "q1", "median", "q3", "max"} == set(res["table"]["q"])
    # independent recomputation from the per-waveform file: numpy percentiles and a direct overlap
    d = np.load(report / "per_waveform.npz")
    truth, pred, ov = d["truth"], d["prediction"], d["overlap"]
    err = sigma_eff(pred[:, 0], pred[:, 1], pred[:, 2]) - sigma_eff(truth[:, 0], truth[:, 1], truth[:, 2])
    assert res["table"]["sigma_eff"]["q1"] == pytest.approx(np.percentile(err, 25))
    assert res["table"]["q"]["max"] == pytest.approx(np.max(pred[:, 0] - truth[:, 0]))
    grid = TimeGrid(-10000.0, 130.0, 2.0)  # the catalogue's full window, not the model's [-4000, 100]
    backend = get_backend("IMRPhenomT")
    h_true = backend.h22(*truth[1], grid)
    h_pred = backend.h22(max(pred[1, 0], 1.0), *np.clip(pred[1, 1:], -0.99, 0.99), grid)
    assert ov[1] == pytest.approx(overlap(h_true, h_pred, grid.dt), abs=1e-5)
    html = (report / "index.html").read_text()
    assert "overlap_by_q.png" in html and "paper" in html and res["provenance"]["gwinfer_version"]
    for png in ("overlap_by_q", "errors_manifold", "overlap_maps", "examples"):
        assert (report / f"{png}.png").stat().st_size > 10_000


def test_predict_and_bare_catalogue(trained: Path, micro_catalogue: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(micro_catalogue / "val", bare / "val")
    out = tmp_path / "preds.h5"
    r = subprocess.run(
        [*GWINFER, "predict", "--model", str(trained), "--data", str(bare), "--split", "val", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    with h5py.File(out) as f:
        assert f["prediction"].shape == (4, 3) and "provenance" in f.attrs
        np.testing.assert_array_equal(f["truth"][:], h5py.File(bare / "val/shard-00000.h5")["params"][:])


def test_bad_inputs_one_line(trained: Path, micro_catalogue: Path, tmp_path: Path) -> None:
    from gwinfer.evaluation.evaluate import run_split
    from gwinfer.models import load_model

    with pytest.raises(GwinferError, match="no split"):
        run_split(trained, micro_catalogue, "holdout")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(GwinferError, match="not a gwinfer model"):
        load_model(junk)
    # a catalogue that does not cover the model's window is refused
    short = tmp_path / "short"
    (short / "test").mkdir(parents=True)
    with h5py.File(micro_catalogue / "test/shard-00000.h5") as src, h5py.File(short / "test/s.h5", "w") as dst:
        keep = src["times"][:] >= -2000.0
        dst["params"], dst["times"], dst["h22"] = src["params"][:], src["times"][keep], src["h22"][:, keep]
    r = subprocess.run(
        [*GWINFER, "evaluate", "--model", str(trained), "--data", str(short)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "cannot provide" in r.stderr and "Traceback" not in r.stderr


def test_degeneracy_maps(tmp_path: Path) -> None:
    from gwinfer.evaluation.degeneracy import degeneracy_maps
    from gwinfer.physics import TimeGrid

    res = degeneracy_maps(
        4.5,
        0.0,
        0.0,
        tmp_path,
        grid=TimeGrid(-2000.0, 100.0, 2.0),
        n=5,
        workers=1,
        progress=False,
        q_range=(1.0, 8.0),
        spin_range=(-0.8, 0.8),
    )
    maps = np.load(tmp_path / "maps.npz")
    # the reference itself sits at the centre of every slice: overlap 1 there, lower elsewhere
    for name in ("q_s1z", "q_s2z", "s1z_s2z"):
        assert maps[name][2, 2] == pytest.approx(1.0, abs=1e-6)
        assert maps[name].min() < 0.9
    # a known degeneracy: along constant effective spin the overlap stays higher than across it
    s = maps["s1z_s2z"]
    assert s[1, 3] > s[1, 1] or s[3, 1] > s[3, 3]
    assert (tmp_path / "maps.png").exists() and res["provenance"]["config"]["n"] == 5


def test_degeneracy_slices_pass_through_an_off_lattice_reference(tmp_path: Path) -> None:
    from gwinfer.evaluation.degeneracy import degeneracy_maps
    from gwinfer.physics import TimeGrid

    degeneracy_maps(6.0, 0.4, -0.4, tmp_path, grid=TimeGrid(-1000.0, 100.0, 2.0), n=4, workers=1, progress=False,
                    q_range=(2.0, 8.0), spin_range=(-0.6, 0.6))  # fmt: skip
    maps = np.load(tmp_path / "maps.npz")
    ref = {"q": 6.0, "s1z": 0.4, "s2z": -0.4}
    for a, b in (("q", "s1z"), ("q", "s2z"), ("s1z", "s2z")):
        i, j = int(np.argmin(abs(maps[a] - ref[a]))), int(np.argmin(abs(maps[b] - ref[b])))
        assert maps[a][i] == ref[a] and maps[b][j] == ref[b]
        assert maps[f"{a}_{b}"][i, j] == pytest.approx(1.0, abs=1e-6)
        assert maps[a][0] == (2.0 if a == "q" else -0.6)
    with pytest.raises(GwinferError, match="outside the q range"):
        degeneracy_maps(6.0, 0.4, -0.4, tmp_path, n=4, workers=1, progress=False, q_range=(1.0, 5.0))


def test_out_of_domain_predictions_are_flagged_in_the_console_and_the_files(tmp_path, trained, micro_catalogue,
                                                                           capsys, caplog):  # fmt: skip
    """A model whose answers leave its domain (here: the domain recorded in the file shrunk to a corner) is
    never written silently: predict's file holds the clamped prediction, the raw output and per-row flags,
    evaluate's results.json counts them, and both warn on the console."""
    import logging

    from gwinfer.cli import main
    from gwinfer.models import OUT_OF_DOMAIN, load_model, save_model

    model, meta = load_model(trained)
    meta["domain"] = {"q_min": 1.0, "q_max": 1.1, "spin_max": 0.05}
    save_model(tmp_path / "corner" / "model.pt", model, metadata=meta)
    caplog.set_level(logging.WARNING)
    out = tmp_path / "pred.h5"
    argv = ["predict", "--model", str(tmp_path / "corner"), "--data", str(micro_catalogue), "--out", str(out)]
    assert main(argv) == 0
    with h5py.File(out) as f:
        pred, raw, flags = f["prediction"][:], f["raw_prediction"][:], f["flags"][:]
    assert np.any(flags & OUT_OF_DOMAIN) and np.all(pred[:, 0] <= 1.1 + 1e-9) and np.all(np.abs(pred[:, 1:]) <= 0.05)
    assert np.any(raw != pred)
    assert "outside the model's domain" in caplog.text
    caplog.clear()
    argv = ["evaluate", "--model", str(tmp_path / "corner"), "--data", str(micro_catalogue), "--json",
            str(tmp_path / "r.json"), "--workers", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["n_out_of_domain_predictions"] == int(np.count_nonzero(flags & OUT_OF_DOMAIN)) > 0
    assert "outside the model's domain" in caplog.text
    capsys.readouterr()


def test_report_figures_have_labels_colour_bars_data_scales_and_aligned_examples(trained, micro_catalogue, tmp_path,
                                                                                 monkeypatch):  # fmt: skip
    """The report a person would show: every panel labelled, a colour bar wherever colour carries a value,
    a colour scale spanning the data (a weak model is not all one colour), examples aligned as the overlap
    aligns them, and the title naming the model's own folder."""
    from gwinfer.evaluation import plots
    from gwinfer.evaluation.evaluate import evaluate_model

    figures, real = {}, plots.save_png
    monkeypatch.setattr(
        plots, "save_png", lambda fig, path, dpi: figures.setdefault(path.name, fig) and real(fig, path, dpi)
    )
    report = tmp_path / "report"
    evaluate_model(trained, micro_catalogue, "test", report_dir=report, workers=1, progress=False)
    assert set(figures) == {"overlap_by_q.png", "errors_manifold.png", "overlap_maps.png", "examples.png"}
    for name, fig in figures.items():  # the histograms share their x axis: labelled on the bottom row
        for ax in fig.axes:
            if ax.axison and ax.get_label() != "<colorbar>" and name != "overlap_by_q.png":
                assert ax.get_xlabel() and ax.get_ylabel(), (name, ax.get_title())
    hist = figures["overlap_by_q.png"]
    cols = len(hist.axes) // 2
    assert all(ax.get_ylabel() == "waveforms" for ax in hist.axes[::cols])
    assert all("overlap" in ax.get_xlabel() for ax in hist.axes[cols:])
    for name in ("errors_manifold.png", "overlap_maps.png"):
        bars = [ax for ax in figures[name].axes if ax.get_label() == "<colorbar>"]
        assert bars and all("overlap" in ax.get_ylabel() for ax in bars), name
    mismatch = np.log10(np.clip(1 - np.load(report / "per_waveform.npz")["overlap"], 1e-7, 1))
    for ax in figures["overlap_maps.png"].axes:
        if ax.collections and ax.get_label() != "<colorbar>":
            lo, hi = ax.collections[0].get_clim()
            assert lo <= np.quantile(mismatch, 0.02) and hi >= np.quantile(mismatch, 0.98) and hi - lo <= 8
    assert "aligned" in figures["examples.png"].axes[0].get_lines()[1].get_label()
    overlaps = np.load(report / "per_waveform.npz")["overlap"]
    for row, overlap in zip((0, 2, 4), np.sort(overlaps)[[0, len(overlaps) // 2, -1]]):
        # aligned as the overlap aligns it, the plotted Re h22 correlates with the truth as the overlap says
        true, rec = (
            np.asarray(line.get_data()[1], float) for line in figures["examples.png"].axes[row].get_lines()[:2]
        )
        match = np.dot(true, rec) / np.sqrt(np.dot(true, true) * np.dot(rec, rec))
        assert match == pytest.approx(overlap, abs=0.05), (row, match, overlap)
    page = (report / "index.html").read_text()
    assert f"<h1>{trained.parent.name}: test of {micro_catalogue.name}</h1>" in page
