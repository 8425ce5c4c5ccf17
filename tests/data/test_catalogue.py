"""Catalogue design, sharded generation (resume, failures, MPI), validation and loaders."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import MICRO, ROOT

from gwinfer.config import from_dict, load_yaml
from gwinfer.data.generate import generate_catalogue
from gwinfer.data.grid import CatalogueConfig, midpoint_grid, on_training_grid, split_parameters, training_grid
from gwinfer.data.loaders import CatalogueDataset, load_split
from gwinfer.data.validate import validate_catalogue
from gwinfer.errors import GwinferError
from gwinfer.physics import TimeGrid

GWINFER = [sys.executable, "-m", "gwinfer.cli"]


def checksums(root: Path) -> dict[str, str]:
    m = json.loads((root / "manifest.json").read_text())
    return {s["file"]: s["sha256"] for split in m["splits"].values() for s in split["shards"]}


def test_paper_preset_sizes() -> None:
    cfg = from_dict(CatalogueConfig, load_yaml(ROOT / "configs/paper.yaml"))
    assert len(training_grid(cfg)) == 88 * 134 * 134 == 1_580_128  # "~1.5 million" in the paper
    mid = midpoint_grid(cfg)
    assert len(mid) == 87 * 67 * 67
    assert abs(len(mid) // 2 - 197_000) < 5_000  # the paper's ~197k test waveforms
    assert cfg.grid.n == 101_301


def test_grid_design_properties() -> None:
    cfg = from_dict(CatalogueConfig, load_yaml(ROOT / "configs/small.yaml"))
    p = split_parameters(cfg)
    assert on_training_grid(cfg, p["train"]).all()
    assert not on_training_grid(cfg, p["val"]).any() and not on_training_grid(cfg, p["test"]).any()
    # alternate assignment of the midpoints: val and test interleave and are disjoint
    mid = midpoint_grid(cfg)
    np.testing.assert_array_equal(p["val"], mid[0::2])
    np.testing.assert_array_equal(p["test"], mid[1::2])
    assert not set(map(tuple, p["val"])) & set(map(tuple, p["test"]))
    # midpoints are half a step away from the training values on every axis
    dq = np.abs((p["test"][:, 0] - 1.0) / cfg.dq % 1 - 0.5)
    assert np.all(dq < 1e-9)
    for split in p.values():
        assert split[:, 0].min() >= 1.0 and split[:, 0].max() <= 8.0
        assert np.abs(split[:, 1:]).max() <= 0.8 + 1e-12


def test_random_mode_is_seeded_and_off_grid() -> None:
    cfg = from_dict(CatalogueConfig, load_yaml(ROOT / "configs/offgrid.yaml"))
    a, b = split_parameters(cfg)["test"], split_parameters(cfg)["test"]
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1000, 3) and not on_training_grid(cfg, a).any()
    c = split_parameters(dataclasses.replace(cfg, seed=cfg.seed + 1))["test"]
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"dq": 0.0}, "dq"),
        ({"ds": -0.1}, "ds"),
        ({"dt": -1.0}, "dt"),
        ({"q_min": 0.5}, "q range"),
        ({"spin_max": 1.2}, "spin range"),
        ({"t_end": -5.0}, "peak"),
        ({"colour": 1}, "unknown"),
    ],
)
def test_bad_config_values(bad: dict, match: str) -> None:
    with pytest.raises(GwinferError, match=match):
        from_dict(CatalogueConfig, {**MICRO, **bad})


def test_catalogue_schema_and_validation(micro_catalogue: Path, micro_config: CatalogueConfig) -> None:
    m = json.loads((micro_catalogue / "manifest.json").read_text())
    assert m["complete"] and m["gwinfer_version"] and m["backend"]["versions"]["lalsimulation"]
    assert {k: m["splits"][k]["count"] for k in m["splits"]} == {"train": 27, "val": 4, "test": 4}
    with h5py.File(micro_catalogue / "train/shard-00000.h5") as f:
        assert f["params"].dtype == np.float64 and f["params"].shape == (8, 3)
        assert [c.decode() for c in f["params"].attrs["columns"]] == ["q", "s1z", "s2z"]
        assert f["times"].dtype == np.float64 and f["times"].shape == (5066,)
        assert f["h22"].dtype == np.complex64 and f["h22"].chunks == (1, 5066)
        assert f["h22"].compression == "gzip"
        assert json.loads(f.attrs["config"])["name"] == "micro"
    report = validate_catalogue(micro_catalogue)
    assert report["ok"], report["problems"]
    assert report["checked"] == 35


def test_catalogue_waveforms_equal_the_backend(micro_catalogue: Path) -> None:
    from gwinfer.waveforms import get_backend

    params, h22, grid = load_split(micro_catalogue, "test")
    direct = get_backend("IMRPhenomT").h22(*params[2], grid)
    np.testing.assert_allclose(h22[2], direct, atol=1e-6)


def test_interrupted_generation_resumes_to_identical_checksums(tmp_path: Path, micro_catalogue: Path) -> None:
    cfg_path = tmp_path / "micro.yaml"
    cfg_path.write_text(json.dumps(MICRO))  # JSON is YAML
    out = tmp_path / "cat"
    proc = subprocess.Popen(
        [*GWINFER, "generate", "--config", str(cfg_path), "--out", str(out), "--workers", "1", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "train/shard-00001.h5.sha256").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # a hard kill mid-run: no chance to clean up
    proc.wait()
    done = sorted(p.name for p in (out / "train").glob("*.h5"))
    assert 1 <= len(done) < 4, done
    r = subprocess.run(
        [*GWINFER, "generate", "--config", str(cfg_path), "--out", str(out), "--workers", "2", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert checksums(out) == checksums(micro_catalogue)
    assert validate_catalogue(out)["ok"]
    assert not list(out.rglob("*.tmp"))  # temp files a kill left behind are cleared by the re-run


def test_failed_waveform_is_reported_not_dropped(tmp_path: Path, micro_config: CatalogueConfig, monkeypatch) -> None:
    from gwinfer.waveforms.lal import LALBackend

    original = LALBackend.raw_h22

    def flaky(self, q, s1z, s2z, grid):
        if q == 4.5 and s1z == 0.0 and s2z == 0.8:
            raise RuntimeError("XLAL Error - injected failure")
        return original(self, q, s1z, s2z, grid)

    monkeypatch.setattr(LALBackend, "raw_h22", flaky)
    out = tmp_path / "cat"
    with pytest.raises(GwinferError, match=r"1 waveform\(s\) failed.*q=4.5, s1z=0.0, s2z=0.8"):
        generate_catalogue(micro_config, out, workers=1, progress=False)
    failures = json.loads((out / "failures.json").read_text())["failures"]
    assert failures[0]["shard"] == "train/shard-00001.h5" and "injected" in failures[0]["error"]
    assert not (out / "train/shard-00001.h5").exists()  # never zero-filled
    assert (out / "train/shard-00000.h5").exists() and (out / "test/shard-00000.h5").exists()
    assert not json.loads((out / "manifest.json").read_text())["complete"]
    monkeypatch.setattr(LALBackend, "raw_h22", original)
    generate_catalogue(micro_config, out, workers=1, progress=False)  # the retry finishes it
    assert validate_catalogue(out)["ok"] and not (out / "failures.json").exists()


def test_validate_detects_corrupt_and_truncated_shards(tmp_path: Path, micro_catalogue: Path) -> None:
    cat = tmp_path / "cat"
    shutil.copytree(micro_catalogue, cat)
    with open(cat / "train/shard-00002.h5", "r+b") as f:  # flip bytes inside the data
        f.seek(4000)
        f.write(b"\x00\x01\x02\x03")
    report = validate_catalogue(cat)
    assert not report["ok"] and any("checksum" in p for p in report["problems"])
    size = (cat / "test/shard-00000.h5").stat().st_size
    with open(cat / "test/shard-00000.h5", "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(GwinferError, match="corrupt or truncated"):
        CatalogueDataset(cat, "test")


def test_cli_errors_are_one_line(tmp_path: Path, micro_catalogue: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({**MICRO, "dq": 0.5}))
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    cases = [
        (["generate", "--config", str(cfg), "--out", str(micro_catalogue)], "another config"),
        (["generate", "--config", str(cfg), "--out", str(blocked / "x")], "cannot write"),
        (["generate", "--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")], "does not exist"),
        (["info", str(tmp_path)], "no manifest"),
    ]
    for argv, match in cases:
        r = subprocess.run([*GWINFER, *argv], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (argv, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("gwinfer: error")]
        assert len(lines) == 1 and match in lines[0], r.stderr
        assert "Traceback" not in r.stderr
    # nothing already written was lost
    assert validate_catalogue(micro_catalogue)["ok"]


def test_info_and_validate_commands(micro_catalogue: Path) -> None:
    r = subprocess.run([*GWINFER, "info", "--json", str(micro_catalogue)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["config"]["name"] == "micro"
    r = subprocess.run(
        [*GWINFER, "validate", "--quiet", str(micro_catalogue)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "OK: 35 waveforms" in r.stdout


def test_dataset_streams_crops_and_decimates(micro_catalogue: Path) -> None:
    ds = CatalogueDataset(micro_catalogue, "train")
    assert len(ds) == 27
    theta, x = ds[9]
    assert theta.shape == (3,) and x.shape == (2, 5066)
    params, h22, grid = load_split(micro_catalogue, "train")
    np.testing.assert_allclose(theta.numpy(), params[9].astype(np.float32))
    np.testing.assert_allclose(x[0].numpy(), h22[9].real)
    # a model grid: a shorter window at twice the step
    target = TimeGrid(-4000.0, 100.0, 4.0)
    sub = CatalogueDataset(micro_catalogue, "train", grid=target, in_memory=True)
    _, xs = sub[9]
    t = grid.times()
    keep = np.nonzero((t >= -4000.0) & (t <= 100.0))[0][::2]
    np.testing.assert_allclose(xs[1].numpy(), h22[9, keep].imag)
    assert xs.shape[1] == target.n
    with pytest.raises(GwinferError, match="cannot provide"):
        CatalogueDataset(micro_catalogue, "train", grid=TimeGrid(-20000.0, 100.0, 2.0))
    with pytest.raises(GwinferError, match="cannot provide"):
        CatalogueDataset(micro_catalogue, "train", grid=TimeGrid(-4000.0, 100.0, 1.0))
    with pytest.raises(GwinferError, match="no split 'holdout'"):
        CatalogueDataset(micro_catalogue, "holdout")


def test_bare_shards_without_manifest_are_readable(tmp_path: Path, micro_catalogue: Path) -> None:
    cat = tmp_path / "elsewhere"
    shutil.copytree(micro_catalogue / "test", cat / "test")
    params, h22, grid = load_split(cat, "test")
    assert params.shape == (4, 3) and grid.dt == 2.0


def test_nan_waveform_is_refused(tmp_path: Path, micro_catalogue: Path) -> None:
    cat = tmp_path / "nan"
    shutil.copytree(micro_catalogue / "val", cat / "val")
    with h5py.File(cat / "val/shard-00000.h5", "r+") as f:
        f["h22"][1, 100] = np.nan
    ds = CatalogueDataset(cat, "val")
    with pytest.raises(GwinferError, match="NaN"):
        ds[1]


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="mpirun not found (install openmpi-bin)")
def test_mpi_generation_matches_pool(tmp_path: Path, micro_catalogue: Path) -> None:
    pytest.importorskip("mpi4py.MPI", reason="mpi4py cannot load an MPI library")
    cfg_path = tmp_path / "micro.yaml"
    cfg_path.write_text(json.dumps(MICRO))
    out = tmp_path / "mpi"
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    r = subprocess.run(
        [
            "mpirun",
            "--allow-run-as-root",
            "--oversubscribe",
            "-n",
            "2",
            *GWINFER,
            "generate",
            "--mpi",
            "--config",
            str(cfg_path),
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert checksums(out) == checksums(micro_catalogue)


def test_generate_adopts_only_shards_it_can_vouch_for(tmp_path: Path, micro_config: CatalogueConfig,
                                                     micro_catalogue: Path) -> None:  # fmt: skip
    """Bare shards are never overwritten, another config's shards are refused, a damaged shard is moved
    aside and made again: the result is byte-identical to a clean run."""
    bare = tmp_path / "bare"
    shutil.copytree(micro_catalogue, bare)
    (bare / "manifest.json").unlink()
    for side in bare.rglob("*.sha256"):
        side.unlink()
    before = (bare / "train" / "shard-00000.h5").read_bytes()
    with pytest.raises(GwinferError, match="not finished by gwinfer here"):
        generate_catalogue(micro_config, bare, workers=1, progress=False)
    assert (bare / "train" / "shard-00000.h5").read_bytes() == before

    foreign = tmp_path / "foreign"
    shutil.copytree(micro_catalogue, foreign)
    (foreign / "manifest.json").unlink()
    other = dataclasses.replace(micro_config, seed=micro_config.seed + 1, name="other")
    with pytest.raises(GwinferError, match="belongs to another catalogue"):
        generate_catalogue(other, foreign, workers=1, progress=False)

    damaged = tmp_path / "damaged"
    shutil.copytree(micro_catalogue, damaged)
    shard = damaged / "train" / "shard-00001.h5"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    shard.write_bytes(bytes(data))
    generate_catalogue(micro_config, damaged, workers=1, progress=False)
    assert (damaged / "train" / "shard-00001.h5.damaged").exists()
    assert checksums(damaged) == checksums(micro_catalogue)
    assert validate_catalogue(damaged)["ok"]


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_shard_is_one_line_for_evaluate_predict_and_train(
    tmp_path: Path, micro_catalogue: Path, micro_config: CatalogueConfig, damage: str
) -> None:
    """A truncated or bit-flipped shard: evaluate, predict and train end with one line naming the shard (no
    h5py traceback), and a re-run of generate notices it, moves it aside and makes it again."""
    cat = tmp_path / "cat"
    shutil.copytree(micro_catalogue, cat)
    for shard in (cat / "test" / "shard-00000.h5", cat / "train" / "shard-00000.h5"):
        data = bytearray(shard.read_bytes())
        if damage == "truncate":
            data = data[: len(data) // 2]
        else:
            for k in range(int(len(data) * 0.6), int(len(data) * 0.9), 97):
                data[k] ^= 0xFF
        shard.write_bytes(bytes(data))
    model = str(ROOT / "models" / "rb-chi-random80k")
    exp = tmp_path / "exp.yaml"
    exp.write_text(json.dumps({
        "data": {"catalogue": str(cat), "t_start": -4000.0, "t_end": 100.0, "dt": 4.0},
        "model": {"kind": "reduced_basis", "config": {"n_components": 4, "hidden": 8, "depth": 1, "dt": 4.0}},
        "train": {"epochs": 1, "batch_size": 9, "tensorboard": False},
    }))  # fmt: skip
    for argv in (
        ["evaluate", "--model", model, "--data", str(cat), "--quiet"],
        ["predict", "--model", model, "--data", str(cat), "--out", str(tmp_path / "p.h5")],
        ["train", "--config", str(exp), "--out", str(tmp_path / "run")],
    ):
        r = subprocess.run([*GWINFER, *argv], capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (argv[0], r.stderr)
        assert r.stderr.strip().splitlines()[-1].startswith("gwinfer: error: shard "), (argv[0], r.stderr)
    assert not (tmp_path / "p.h5").exists()
    generate_catalogue(micro_config, cat, workers=1, progress=False)  # the re-run notices and redoes them
    assert (cat / "test" / "shard-00000.h5.damaged").exists() and (cat / "train" / "shard-00000.h5.damaged").exists()
    assert checksums(cat) == checksums(micro_catalogue) and validate_catalogue(cat)["ok"]


#: ``gwinfer generate`` in a process whose files may not grow beyond 200 kB (``ulimit -f``: the kernel
#: refuses the write with EFBIG, as a full disk refuses it with ENOSPC); a shard is ~300 kB.
_FILE_LIMIT = (
    "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000)); "
    "from gwinfer.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _mount_small_tmpfs(where: Path, size: str) -> bool:
    """A tmpfs of ``size`` at ``where`` (a real full disk), where this process may mount one (root)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return r.returncode == 0


@pytest.mark.parametrize("room", ["file-size-limit", "full-disk"])
def test_no_room_is_one_line_and_loses_nothing(room, tmp_path: Path, micro_catalogue: Path) -> None:
    """A write that runs out of room ends ``generate`` with one line and exit 2 (it crashed the process in
    HDF5 before); the finished shards stay valid, nothing half-written is left, and the same command
    finishes the catalogue with the checksums of an uninterrupted run."""
    cfg = tmp_path / "micro.yaml"
    cfg.write_text(json.dumps(MICRO))
    argv = ["generate", "--config", str(cfg), "--workers", "1", "--quiet"]
    if room == "file-size-limit":
        out = tmp_path / "cat"
        r = subprocess.run([sys.executable, "-c", _FILE_LIMIT, *argv, "--out", str(out)], capture_output=True,
                           text=True, timeout=300)  # fmt: skip
        reason = "File too large"
    else:
        disk = tmp_path / "disk"
        if not _mount_small_tmpfs(disk, "700k"):
            pytest.skip("cannot mount a small tmpfs here (needs root): the file-size limit case stands in")
        try:
            r = subprocess.run(
                [*GWINFER, *argv, "--out", str(disk / "cat")], capture_output=True, text=True, timeout=300
            )
            shutil.copytree(disk / "cat", tmp_path / "cat")  # what the full disk holds, to finish elsewhere
        finally:
            subprocess.run(["umount", str(disk)], check=True)
        out, reason = tmp_path / "cat", "No space left on device"
    errors = [line for line in r.stderr.splitlines() if not line.startswith("INFO ")]
    assert r.returncode == 2 and len(errors) == 1, r.stderr
    assert errors[0].startswith("gwinfer: error: cannot write ") and reason in errors[0], errors
    assert not list(out.rglob("*.tmp")) and (out / "manifest.json").is_file()
    kept = sorted(out.rglob("*.h5"))
    assert all(Path(f"{p}.sha256").is_file() for p in kept)  # a kept shard always has its checksum
    assert room == "file-size-limit" or len(kept) >= 1
    want = checksums(micro_catalogue)
    assert all(Path(f"{p}.sha256").read_text().strip() == want[str(p.relative_to(out))] for p in kept)
    r = subprocess.run([*GWINFER, *argv, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert checksums(out) == checksums(micro_catalogue) and validate_catalogue(out)["ok"]


def test_mpi_without_an_mpi_library_is_one_line(tmp_path: Path) -> None:
    """``generate --mpi`` where mpi4py cannot load libmpi (a stand-in mpi4py whose MPI module fails to
    load as the real one does without the system library): one line, exit 2, nothing written."""
    fake = tmp_path / "site" / "mpi4py"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "MPI.py").write_text(
        'raise ImportError("libmpi.so.40: cannot open shared object file: No such file or directory")\n'
    )
    cfg = tmp_path / "micro.yaml"
    cfg.write_text(json.dumps(MICRO))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])}
    argv = ["generate", "--config", str(cfg), "--out", str(tmp_path / "cat"), "--mpi", "--quiet"]
    r = subprocess.run([*GWINFER, *argv], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [
        "gwinfer: error: --mpi needs mpi4py and a system MPI library: libmpi.so.40: cannot open shared object "
        "file: No such file or directory"
    ]
    assert not (tmp_path / "cat").exists()
