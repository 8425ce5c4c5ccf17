"""Parallel, sharded, resumable catalogue generation (process pool on one node, MPI across nodes).

``generate_catalogue(cfg, out_dir, workers=N)`` computes every waveform of every split with the
configured backend and writes fixed-size HDF5 shards (:mod:`gwinfer.data.store`). Work is owned by
shard: a shard that exists (with its checksum file) is finished and skipped, so re-running the same
command after an interruption completes only the missing shards, and the result is byte-identical to an
uninterrupted run. Under MPI, rank r owns the shards whose global index is r mod size; ranks need no
communication until a final barrier, after which rank 0 writes the completed manifest.

A waveform that fails is reported with its parameters (``failures.json`` and a non-zero exit); its shard
is not written (never zero-filled) and is retried by the next run.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer._version import __version__
from gwinfer.config import to_dict
from gwinfer.data.grid import COLUMNS, SPLITS, CatalogueConfig, split_parameters
from gwinfer.data.store import FORMAT, FORMAT_VERSION, read_manifest, shard_name, write_manifest, write_shard
from gwinfer.errors import GwinferError
from gwinfer.parallel import pinned_pool
from gwinfer.physics.timegrid import TimeGrid
from gwinfer.provenance import library_versions, write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardPlan:
    """Rows ``start:stop`` of ``split``'s parameters, stored in shard number ``index`` (global ``gid``)."""

    split: str
    index: int
    gid: int
    start: int
    stop: int

    @property
    def file(self) -> str:
        return shard_name(self.split, self.index)


def plan_shards(cfg: CatalogueConfig, params: dict[str, np.ndarray]) -> list[ShardPlan]:
    plans, gid = [], 0
    for split in SPLITS:
        n = len(params[split])
        for index, start in enumerate(range(0, n, cfg.shard_size)):
            plans.append(ShardPlan(split, index, gid, start, min(start + cfg.shard_size, n)))
            gid += 1
    return plans


def backend_options(cfg: CatalogueConfig) -> dict[str, float]:
    if cfg.backend in ("IMRPhenomT", "IMRPhenomXAS", "SEOBNRv4_opt"):
        return {"total_mass": cfg.total_mass, "max_generation_dt": cfg.max_generation_dt}
    return {}


# --- worker side -------------------------------------------------------------------------------------
_STATE: dict[str, Any] = {}


def _init_worker(backend: str, options: dict[str, float], grid: tuple[float, float, float]) -> None:
    from gwinfer.waveforms import get_backend

    _STATE["backend"] = get_backend(backend, **options)
    _STATE["grid"] = TimeGrid(*grid)


def _compute(task: tuple[int, float, float, float]) -> tuple[int, np.ndarray | None, str | None]:
    i, q, s1, s2 = task
    try:
        h = _STATE["backend"].h22(q, s1, s2, _STATE["grid"])
        return i, h.astype(np.complex64), None
    except Exception as err:  # reported with its parameters by the caller, never dropped
        return i, None, f"{type(err).__name__}: {err}"


# --- driver side -------------------------------------------------------------------------------------
def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".gwinfer-write-test-"):
            pass  # a unique name: MPI ranks probe the same folder at once
    except OSError as err:
        raise GwinferError(f"cannot write the catalogue to {out}: {err.strerror}") from None


def _manifest(
    cfg: CatalogueConfig,
    plans: list[ShardPlan],
    params: dict[str, np.ndarray],
    backend_versions: dict[str, str],
    checksums: dict[str, str | None],
) -> dict[str, Any]:
    splits = {
        split: {
            "count": int(len(params[split])),
            "shards": [
                {"file": p.file, "count": p.stop - p.start, "sha256": checksums.get(p.file)}
                for p in plans
                if p.split == split
            ],
        }
        for split in SPLITS
    }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gwinfer_version": __version__,
        "kind": "catalogue",
        "complete": all(v is not None for v in checksums.values()) and len(checksums) == len(plans),
        "config": to_dict(cfg),
        "grid": {**cfg.grid.to_dict(), "n": cfg.grid.n},
        "columns": list(COLUMNS),
        "backend": {"name": cfg.backend, "options": backend_options(cfg), "versions": backend_versions},
        "libraries": library_versions(("numpy", "scipy", "h5py", "lalsuite")),
        "splits": splits,
        "parents": [],
    }


def _config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _read_checksum(out: Path, plan: ShardPlan) -> str | None:
    side = out / (plan.file + ".sha256")
    if (out / plan.file).exists() and side.exists():
        return side.read_text().strip()
    return None


def _adopt(out: Path, plan: ShardPlan, cfg: CatalogueConfig, params: np.ndarray) -> bool:
    """True if the finished shard of ``plan`` in ``out`` can be kept; False if it is still to be generated.

    A shard is kept only when its checksum file matches its bytes and the shard records this catalogue's
    config and parameters. A shard file without a checksum file is nobody's finished work that gwinfer can
    vouch for and is never overwritten (one-line error); a shard of another config is refused the same way;
    a damaged one (checksum mismatch: truncated, bit-flipped) is moved aside to ``*.damaged`` and redone.
    """
    import h5py

    from gwinfer.provenance import sha256_file

    path, side = out / plan.file, out / (plan.file + ".sha256")
    if not path.exists():
        return False
    if not side.exists():
        raise GwinferError(
            f"{path} exists but was not finished by gwinfer here (no checksum file): move it away or use another --out"
        )
    if sha256_file(path) != side.read_text().strip():
        aside = path.with_name(path.name + ".damaged")
        path.rename(aside)
        side.unlink()
        log.warning("%s does not match its checksum (damaged): moved to %s and generated again", path, aside)
        return False
    try:
        with h5py.File(path, "r") as f:
            stored = json.loads(f.attrs["config"])
            same_params = np.array_equal(f["params"][:], params[plan.start : plan.stop])
    except (OSError, KeyError, ValueError) as err:
        raise GwinferError(f"{path} is not a readable gwinfer shard ({type(err).__name__}): move it away") from None
    if stored != to_dict(cfg) or not same_params:
        diff = _config_diff(stored, to_dict(cfg)) or ["params"]
        raise GwinferError(f"{path} belongs to another catalogue (differs in {diff}): use another --out")
    return True


def waveform_stream(
    tasks: list[tuple[int, float, float, float]], backend: str, options: dict[str, float], grid: TimeGrid, workers: int
) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    """Yield ``(i, h22 complex64 | None, error | None)`` for tasks ``(i, q, s1z, s2z)``, in task order.

    ``workers > 1`` computes in a spawned process pool with one BLAS/OpenMP thread per worker.
    """
    init_args = (backend, options, (grid.t_start, grid.t_end, grid.dt))
    if workers <= 1:
        _init_worker(*init_args)
        yield from map(_compute, tasks)
        return
    with pinned_pool(workers, _init_worker, init_args) as pool:
        yield from pool.imap(_compute, tasks, chunksize=4)


def compute_waveforms(
    params: np.ndarray,
    backend: str,
    grid: TimeGrid,
    workers: int = 1,
    options: dict[str, float] | None = None,
    progress: bool = False,
    desc: str = "waveforms",
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """h22 (N, T) complex64 for (N, 3) parameters (q, s1z, s2z); failed rows are NaN and listed in failures."""
    from tqdm import tqdm

    p = np.asarray(params, dtype=float)
    out = np.full((len(p), grid.n), np.nan, dtype=np.complex64)
    failures = []
    tasks = [(i, *map(float, row)) for i, row in enumerate(p)]
    stream = waveform_stream(tasks, backend, options or {}, grid, workers)
    for i, h, err in tqdm(stream, total=len(tasks), disable=not progress, unit="wf", desc=desc):
        if err is None:
            out[i] = h
        else:
            failures.append({"q": p[i, 0], "s1z": p[i, 1], "s2z": p[i, 2], "error": err})
    return out, failures


def generate_catalogue(
    cfg: CatalogueConfig, out_dir: str | Path, workers: int | None = None, use_mpi: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Generate (or finish) the catalogue of ``cfg`` in ``out_dir``; return its manifest.

    ``workers`` processes compute waveforms (default: all usable cores; 1 per rank under MPI). Raises
    :class:`GwinferError` for a folder holding another config's catalogue, an unwritable folder, or
    waveforms that failed (after writing every shard that could be finished).
    """
    from gwinfer.waveforms import get_backend

    out = Path(out_dir)
    rank, size, comm = 0, 1, None
    if use_mpi:
        try:
            from mpi4py import MPI
        except ImportError as err:
            raise GwinferError(f"--mpi needs mpi4py and a system MPI library: {err}") from None
        comm = MPI.COMM_WORLD
        rank, size = comm.Get_rank(), comm.Get_size()
    if workers is None:
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
        workers = 1 if use_mpi else max(1, len(usable))
    if workers < 1:
        raise GwinferError(f"--workers = {workers} must be >= 1")

    _check_writable(out)
    backend = get_backend(cfg.backend, **backend_options(cfg))
    for q in (cfg.q_min, cfg.q_max):
        backend.validity.check(cfg.backend, q, cfg.spin_min, cfg.spin_max)
        backend.validity.check(cfg.backend, q, cfg.spin_max, cfg.spin_min)
    existing = read_manifest(out)
    if existing is not None and existing["config"] != to_dict(cfg):
        diff = _config_diff(existing["config"], to_dict(cfg))
        raise GwinferError(
            f"{out} holds a catalogue made with another config (differs in {diff}); "
            "use another --out or the same config"
        )

    if comm is None:  # leftovers of a killed run (under MPI another rank may be writing its own)
        for stale in out.glob("*/.shard-*.tmp"):
            stale.unlink()
    params = split_parameters(cfg)
    plans = plan_shards(cfg, params)
    if rank == 0 and existing is None:
        write_manifest(out, _manifest(cfg, plans, params, backend.versions(), {}))
    todo = [p for p in plans if p.gid % size == rank and not _adopt(out, p, cfg, params[p.split])]
    tasks = [(k, *map(float, params[p.split][i])) for k, p in enumerate(todo) for i in range(p.start, p.stop)]
    failures: list[dict[str, Any]] = []
    if tasks:
        log.info(
            "rank %d: %d shard(s), %d waveform(s) to generate with %d worker(s)", rank, len(todo), len(tasks), workers
        )
        try:
            _run(out, cfg, todo, tasks, params, workers, failures, progress and rank == 0)
        except BaseException as err:
            if comm is not None and size > 1:  # the other ranks would wait at the barrier for ever
                log.error(
                    "rank %d failed (%s: %s); aborting all ranks, finished shards are kept",
                    rank,
                    type(err).__name__,
                    err,
                )
                comm.Abort(1)
            raise

    if comm is not None:
        all_failures = comm.gather(failures, root=0)
        comm.Barrier()
        failures = [f for part in (all_failures or []) for f in part] if rank == 0 else failures
    manifest = _manifest(cfg, plans, params, backend.versions(), {p.file: _read_checksum(out, p) for p in plans})
    if rank == 0:
        write_manifest(out, manifest)
        if failures:
            write_json(out / "failures.json", {"failures": failures})
        elif (out / "failures.json").exists():
            (out / "failures.json").unlink()
    if failures:
        f0 = failures[0]
        raise GwinferError(
            f"{len(failures)} waveform(s) failed to generate (first: q={f0['q']}, s1z={f0['s1z']}, s2z={f0['s2z']}: "
            f"{f0['error']}); their shards were not written, see {out / 'failures.json'}; re-run to retry"
        )
    return manifest


def _run(
    out: Path,
    cfg: CatalogueConfig,
    todo: list[ShardPlan],
    tasks: list[tuple],
    params: dict[str, np.ndarray],
    workers: int,
    failures: list[dict[str, Any]],
    progress: bool,
) -> None:
    from tqdm import tqdm

    times = cfg.grid.times()
    attrs = {"gwinfer_version": __version__, "backend": cfg.backend, "config": json.dumps(to_dict(cfg), sort_keys=True)}
    bar = tqdm(total=len(tasks), unit="wf", disable=not progress, smoothing=0.05, desc="generating")
    current, rows = -1, []
    results = waveform_stream(tasks, cfg.backend, backend_options(cfg), cfg.grid, workers)
    try:
        for (k, q, s1, s2), (_, h, err) in zip(tasks, results):
            if k != current:
                current, rows = k, []
            plan = todo[k]
            if err is not None:
                failures.append({"split": plan.split, "shard": plan.file, "q": q, "s1z": s1, "s2z": s2, "error": err})
                log.error("waveform q=%s s1z=%s s2z=%s failed: %s", q, s1, s2, err)
            else:
                rows.append(h)
            bar.update(1)
            if len(rows) == plan.stop - plan.start:  # complete and without failures
                write_shard(
                    out / plan.file,
                    params[plan.split][plan.start : plan.stop],
                    times,
                    np.stack(rows),
                    {**attrs, "split": plan.split, "shard": plan.index},
                )
    finally:
        bar.close()
        if hasattr(results, "close"):
            results.close()
