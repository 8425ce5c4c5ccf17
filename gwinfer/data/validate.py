"""``gwinfer validate``: re-check a catalogue's checksums, shapes, parameters, grid design and peaks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gwinfer.config import from_dict
from gwinfer.data.grid import SPLITS, CatalogueConfig, on_training_grid, split_parameters
from gwinfer.data.store import read_manifest
from gwinfer.errors import GwinferError
from gwinfer.provenance import sha256_file


def validate_catalogue(root: str | Path, progress: bool = False) -> dict[str, Any]:
    """Check everything a manifest promises; return ``{"ok": bool, "problems": [...], "checked": n}``.

    Checks: every shard exists and matches its sha256; shapes and counts; times equal the configured grid;
    parameters equal the ones the config defines; training points on the grid, validation/test points off
    it and disjoint; h22 finite and peaking at t = 0 (within one sample).
    """
    from tqdm import tqdm

    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None:
        raise GwinferError(
            f"{root} has no manifest.json: not a gwinfer catalogue (bare shards can be read, not validated)"
        )
    cfg = from_dict(CatalogueConfig, manifest["config"], "manifest config")
    expected = split_parameters(cfg)
    times = cfg.grid.times()
    i0 = int(np.argmin(np.abs(times)))
    problems: list[str] = []
    if not manifest.get("complete"):
        problems.append("the manifest says the catalogue is incomplete: re-run the generate command")
    n_checked = 0
    shards = [(split, s) for split in SPLITS for s in manifest["splits"][split]["shards"]]
    for split, entry in tqdm(shards, disable=not progress, desc="validating", unit="shard"):
        path = root / entry["file"]
        if not path.exists():
            problems.append(f"{entry['file']}: missing")
            continue
        if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['file']}: checksum mismatch (corrupt or modified)")
            continue
        try:
            with h5py.File(path, "r") as f:
                params, t, h = f["params"][:], f["times"][:], f["h22"][:]
        except (OSError, KeyError) as err:
            problems.append(f"{entry['file']}: unreadable ({err})")
            continue
        k = int(Path(entry["file"]).stem.split("-")[1])
        want = expected[split][k * cfg.shard_size : k * cfg.shard_size + entry["count"]]
        if params.shape != want.shape or not np.array_equal(params, want):
            problems.append(f"{entry['file']}: parameters differ from the ones the config defines")
        if t.shape != times.shape or not np.allclose(t, times, rtol=0, atol=1e-9):
            problems.append(f"{entry['file']}: times differ from the configured grid")
        if h.shape != (entry["count"], times.size):
            problems.append(f"{entry['file']}: h22 has shape {h.shape}, expected {(entry['count'], times.size)}")
            continue
        if not np.all(np.isfinite(h.view(np.float32))):
            problems.append(f"{entry['file']}: h22 contains NaN or inf")
        peaks = np.argmax(np.abs(h), axis=1)
        if np.any(np.abs(peaks - i0) > 1):
            problems.append(f"{entry['file']}: {(np.abs(peaks - i0) > 1).sum()} waveform(s) do not peak at t = 0")
        n_checked += len(params)
    if cfg.mode == "grid":
        if not on_training_grid(cfg, expected["train"]).all():
            problems.append("training points off the training grid")
        for split in ("val", "test"):
            if on_training_grid(cfg, expected[split]).any():
                problems.append(f"{split} points lie on the training grid")
        both = {tuple(r) for r in np.round(expected["val"], 9)} & {tuple(r) for r in np.round(expected["test"], 9)}
        if both:
            problems.append(f"{len(both)} point(s) are in both validation and test")
    return {"ok": not problems, "problems": problems, "checked": n_checked}


def summary(manifest: dict[str, Any]) -> str:
    """Human-readable summary of a catalogue manifest."""
    cfg, grid = manifest["config"], manifest["grid"]
    lines = [
        f"catalogue '{cfg['name']}' ({'complete' if manifest.get('complete') else 'INCOMPLETE'}), "
        f"gwinfer {manifest['gwinfer_version']}",
        f"backend   {manifest['backend']['name']} "
        + " ".join(f"{k}={v}" for k, v in manifest["backend"].get("versions", {}).items()),
        f"grid      t in [{grid['t_start']}, {grid['t_end']}] M, dt = {grid['dt']} M, {grid['n']} samples",
        f"design    {cfg['mode']}: q in [{cfg['q_min']}, {cfg['q_max']}] step {cfg['dq']}, "
        f"spins in [{cfg['spin_min']}, {cfg['spin_max']}] step {cfg['ds']}",
    ]
    for split, s in manifest["splits"].items():
        done = sum(1 for x in s["shards"] if x.get("sha256"))
        lines.append(f"{split:<9} {s['count']:>9,} waveforms in {len(s['shards'])} shard(s), {done} finished")
    return "\n".join(lines)
