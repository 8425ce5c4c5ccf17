"""The on-disk catalogue: HDF5 shards plus a JSON manifest, written atomically, validated on read.

Layout::

    DIR/manifest.json                   config, splits, shard list (counts, sha256), versions
    DIR/<split>/shard-XXXXX.h5          params (N, 3) float64 [q, s1z, s2z] with attr ``columns``,
                                        times (T,) float64 in M, h22 (N, T) complex64
    DIR/<split>/shard-XXXXX.h5.sha256   the shard's checksum, written right after it

Shards are byte-for-byte reproducible (no HDF5 timestamps), so an interrupted and resumed generation
ends with the same checksums as an uninterrupted one. A shard is built in memory and written as plain
bytes: a full disk is then a one-line error (HDF5 writing straight to a full disk crashed the process). A folder of ``<split>/*.h5`` shards without a
manifest (a catalogue made by other code in the same schema) is also readable.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.physics.timegrid import TimeGrid
from gwinfer.provenance import atomic_path, read_json, write_json

MANIFEST = "manifest.json"
FORMAT = "gwinfer-catalogue"
FORMAT_VERSION = 1


def shard_name(split: str, index: int) -> str:
    return f"{split}/shard-{index:05d}.h5"


_images = itertools.count()


def shard_image(params: np.ndarray, times: np.ndarray, h22: np.ndarray, attrs: dict[str, Any]) -> bytes:
    """The bytes of one shard file, built in memory (HDF5's core driver, the same bytes as on disk)."""
    f = h5py.File(f"shard-image-{next(_images)}", "w", driver="core", backing_store=False, track_order=False)
    try:
        d = f.create_dataset("params", data=np.asarray(params, dtype=np.float64), track_times=False)
        d.attrs["columns"] = np.array(["q", "s1z", "s2z"], dtype="S3")
        f.create_dataset("times", data=np.asarray(times, dtype=np.float64), track_times=False)
        f.create_dataset(
            "h22", data=np.asarray(h22, dtype=np.complex64), chunks=(1, h22.shape[1]),
            compression="gzip", compression_opts=4, shuffle=True, track_times=False,
        )  # fmt: skip
        for key, value in attrs.items():
            f.attrs[key] = value
        f.flush()
        return f.id.get_file_image()
    finally:
        f.close()


def write_shard(path: Path, params: np.ndarray, times: np.ndarray, h22: np.ndarray, attrs: dict[str, Any]) -> str:
    """Write one shard atomically and deterministically; return its sha256 (also written beside it).

    A full disk is a one-line :class:`GwinferError` (:func:`~gwinfer.provenance.atomic_path`); nothing
    half-written is left behind."""
    image = shard_image(params, times, h22, attrs)
    with atomic_path(path) as tmp:
        tmp.write_bytes(image)
    digest = hashlib.sha256(image).hexdigest()
    try:
        with atomic_path(Path(str(path) + ".sha256")) as tmp:
            tmp.write_text(digest + "\n")
    except GwinferError:
        Path(path).unlink()  # without its checksum the next run could not vouch for it (and would refuse it)
        raise
    return digest


@dataclass
class Shard:
    """A readable shard: its path, number of waveforms and time samples."""

    path: Path
    count: int
    times: np.ndarray

    @classmethod
    def open(cls, path: Path) -> "Shard":
        try:
            with h5py.File(path, "r") as f:
                for key in ("params", "times", "h22"):
                    if key not in f:
                        raise GwinferError(f"shard {path} has no '{key}' dataset: not a gwinfer catalogue shard")
                n, t = f["h22"].shape
                if f["params"].shape != (n, 3) or f["times"].shape != (t,):
                    raise GwinferError(f"shard {path}: params/times/h22 shapes disagree")
                return cls(Path(path), int(n), f["times"][:])
        except OSError as err:
            raise GwinferError(f"shard {path} is unreadable (corrupt or truncated): {err}") from None


def read_rows(path: Path, take: int | None = None, columns: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """(params (n, 3) float64, h22 (n, T') complex64) of the first ``take`` waveforms of a shard (all by
    default), time samples ``columns``; a damaged shard (unreadable chunk) is one line, not an h5py traceback."""
    try:
        with h5py.File(path, "r") as f:
            n = f["params"].shape[0] if take is None else min(f["params"].shape[0], take)
            return f["params"][:n], f["h22"][:n, columns]
    except (OSError, KeyError) as err:
        first = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise GwinferError(
            f"shard {path} is damaged ({first}): `gwinfer validate` the catalogue, re-run `gwinfer generate`"
        ) from None


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of ``root``, or None where the folder holds bare shards."""
    path = Path(root) / MANIFEST
    if not path.exists():
        return None
    m = read_json(path)
    if m.get("format") != FORMAT:
        raise GwinferError(f"{path} is not a gwinfer catalogue manifest")
    return m


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    write_json(Path(root) / MANIFEST, manifest)


def split_shards(root: Path, split: str) -> list[Path]:
    """The shard files of ``split`` (from the manifest when there is one, else by listing the folder)."""
    root = Path(root)
    if not root.is_dir():
        raise GwinferError(f"catalogue folder {root} does not exist")
    manifest = read_manifest(root)
    if manifest is not None:
        if split not in manifest["splits"]:
            raise GwinferError(f"catalogue {root} has no split {split!r}; it has {sorted(manifest['splits'])}")
        paths = [root / s["file"] for s in manifest["splits"][split]["shards"]]
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise GwinferError(
                f"catalogue {root} is incomplete: {len(missing)} shard(s) of {split!r} missing "
                f"(first: {missing[0].name}); re-run the generate command to finish it"
            )
        return paths
    paths = sorted((root / split).glob("*.h5"))
    if not paths:
        splits = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.h5")))
        raise GwinferError(f"catalogue {root} has no split {split!r}; it has {splits}")
    return paths


def catalogue_grid(root: Path, split: str) -> TimeGrid:
    """The time grid of a split (from its first shard)."""
    shards = split_shards(root, split)
    if not shards:
        raise GwinferError(f"{root} has no {split!r} split (no {split}/*.h5 shards)")
    return TimeGrid.from_times(Shard.open(shards[0]).times)
