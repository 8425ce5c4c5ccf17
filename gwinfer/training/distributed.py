"""Data-parallel plumbing: process group from torchrun's environment, devices, data sharding, reductions.

Launch ``K`` processes on one machine with :func:`launch_torchrun` (what ``gwinfer train --nproc K``
does); each process calls :func:`init_distributed` (the :class:`~gwinfer.training.Trainer` does) and
:func:`cleanup` at the end. Without torchrun (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) no process group is
created and everything works with rank 0 of 1.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset

from gwinfer.errors import GwinferError

log = logging.getLogger(__name__)
#: Seconds :func:`launch_torchrun` waits for interrupted workers before killing them.
INTERRUPT_GRACE_S = 120.0


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` processes, ``local_rank`` on this machine."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group with more than one process is in use."""
        return self.world_size > 1


def select_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    """The device for ``spec`` ("auto", "cpu", "cuda", "cuda:N"); "auto"/"cuda" use GPU ``local_rank``."""
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if spec in ("auto", "cuda") or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise GwinferError(f"device = {spec!r} needs CUDA, which is not available; use 'cpu' or 'auto'")
        index = local_rank if spec in ("auto", "cuda") else int(spec.split(":", 1)[1])
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            raise GwinferError(f"CUDA device {index} requested but only devices 0 .. {count - 1} exist")
        return torch.device("cuda", index)
    raise GwinferError(f"device = {spec!r} must be 'auto', 'cpu', 'cuda' or 'cuda:N'")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise GwinferError(f"environment variable {name} = {raw!r} must be an integer") from None


def init_distributed(device: str = "auto", timeout_minutes: float = 30.0) -> DistInfo:
    """Join the process group described by torchrun's RANK / WORLD_SIZE / LOCAL_RANK (idempotent).

    Backend gloo on CPU, nccl on CUDA. With WORLD_SIZE unset or 1 no process group is created.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise GwinferError(f"RANK = {rank} must be in [0, WORLD_SIZE - 1] with WORLD_SIZE = {world} >= 1")
    if world > 1 and device.startswith("cuda:"):
        raise GwinferError(f"device = {device!r} would put all {world} processes on one GPU; use 'cuda' or 'auto'")
    dev = select_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_minutes))
        log.debug("rank %d/%d joined the %s process group on %s", rank, world, backend, dev)
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def cleanup() -> None:
    """Leave the process group, if one was created (safe to call always)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def torchrun_command(nproc: int, args: Sequence[str], *, module: bool = True) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node=K [-m] <module or script> args``."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or not 1 <= nproc <= 1024:
        raise GwinferError(f"nproc = {nproc!r} must be an integer in [1, 1024]")
    if not args:
        raise GwinferError("torchrun needs a module (or script) to run")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return cmd + (["-m"] if module else []) + [str(a) for a in args]


def launch_torchrun(
    nproc: int, module_args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None
) -> int:
    """Run ``module_args[0]`` as a module in ``nproc`` local processes under torchrun; return the exit code."""
    cmd = torchrun_command(nproc, module_args, module=True)
    full_env = dict(os.environ if env is None else env)
    # K processes share the machine's cores: one intra-op thread each unless the caller says otherwise.
    full_env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    log.info("launching: %s", " ".join(cmd))
    proc = subprocess.Popen(cmd, env=full_env)
    try:
        return proc.wait(timeout=timeout)
    except KeyboardInterrupt:
        # Ctrl-C reached torchrun and the workers too: give them time to write their checkpoint.
        log.warning("interrupted: waiting up to %.0f s for the workers to write a checkpoint", INTERRUPT_GRACE_S)
        try:
            return proc.wait(timeout=INTERRUPT_GRACE_S)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            proc.kill()
            raise KeyboardInterrupt from None
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


class SkipSampler(Sampler[int]):
    """The indices of ``sampler`` after skipping the first ``skip`` (resuming in the middle of an epoch)."""

    def __init__(self, sampler: DistributedSampler, skip: int = 0) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator[int]:
        it = iter(self.sampler)
        for _ in range(self.skip):
            next(it, None)
        return it

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


def train_loader(
    dataset: Dataset,
    info: DistInfo,
    per_rank_batch: int,
    *,
    seed: int,
    epoch: int,
    skip_batches: int = 0,
    num_workers: int = 0,
) -> DataLoader:
    """This rank's loader for ``epoch``: order fixed by (seed, epoch), first ``skip_batches`` left out.

    Rank r of W takes elements r, r + W, ... of one permutation of the whole set, so with equal
    per-rank batches the W local batches of a step together form the world-size-1 batch of that step.
    The loader has its own generator (seed, epoch), so iterating it never touches the global RNG.
    """
    sampler = DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed, drop_last=False
    )
    sampler.set_epoch(epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return DataLoader(
        dataset,
        batch_size=per_rank_batch,
        sampler=SkipSampler(sampler, skip_batches * per_rank_batch),
        num_workers=num_workers,
        generator=generator,
        pin_memory=info.device.type == "cuda",
    )


def steps_per_epoch(n_samples: int, info: DistInfo, per_rank_batch: int) -> int:
    """Optimizer steps in one epoch (the last batch may be short; DistributedSampler pads to equal shares)."""
    per_rank = -(-n_samples // info.world_size)
    return -(-per_rank // per_rank_batch)


def val_loader(dataset: Dataset, info: DistInfo, per_rank_batch: int, num_workers: int = 0) -> DataLoader:
    """This rank's share (elements rank, rank + W, ...) of the validation set, in order, no padding."""
    shard = Subset(dataset, range(info.rank, len(dataset), info.world_size))
    return DataLoader(
        shard, batch_size=per_rank_batch, shuffle=False, num_workers=num_workers, pin_memory=info.device.type == "cuda"
    )


def all_reduce(values: Sequence[float], info: DistInfo, op: str = "sum") -> list[float]:
    """Sum (or max) of ``values`` over all ranks, in float64; the identity for one process."""
    if not info.distributed:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t.tolist()


def gather_objects(obj: object, info: DistInfo) -> list[object]:
    """``obj`` of every rank, in rank order (a list of one for one process)."""
    if not info.distributed:
        return [obj]
    out: list[object] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    """Wait for all ranks (no-op for one process)."""
    if info.distributed:
        dist.barrier()
