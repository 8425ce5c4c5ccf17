"""The one trainer of every gwinfer model: data-parallel, exactly resumable, interruptible.

Contract: ``model.loss(*batch)`` returns per-sample losses of shape (batch,); the trainer minimises their
mean. Dataset items are tuples of tensors, so a batch is a tuple. ``model.spec()`` (optional, plain data)
is stored in checkpoints so the model can be rebuilt. Under torchrun each process builds the same model
and datasets and calls :meth:`Trainer.fit`; the caller calls :func:`~gwinfer.training.distributed.cleanup`.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from gwinfer._version import __version__
from gwinfer.config import to_dict
from gwinfer.errors import GwinferError
from gwinfer.models.base import check_plain
from gwinfer.provenance import atomic_path, provenance
from gwinfer.training import distributed as D
from gwinfer.training.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
)
from gwinfer.training.config import RESUMABLE_CHANGES, TrainConfig
from gwinfer.training.optim import build_optimizer, build_scheduler

log = logging.getLogger(__name__)
#: A second SIGINT this many seconds after the first aborts at once (earlier ones are duplicates).
ABORT_AFTER_SECONDS = 3.0
LOG_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "lr", "epoch_seconds", "samples_per_second")


class LossModule(nn.Module):
    """``forward(*batch) = model.loss(*batch)``: what DDP wraps, so its gradient all-reduce hooks fire."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        return self.model.loss(*batch)


class Trainer:
    """Train ``model`` on ``train_set``, validate on ``val_set`` (None: the training loss stands in).

    Files in ``out_dir``: ``checkpoint.pt`` (end of every epoch, and on interruption), ``best.pt``
    (lowest validation loss), ``log.csv`` (one row per epoch) and ``tb/`` (TensorBoard, if enabled).
    ``metadata`` (plain data, e.g. the data's provenance) is stored in every checkpoint untouched.
    """

    def __init__(
        self,
        model: nn.Module,
        train_set: Dataset,
        val_set: Dataset | None,
        config: TrainConfig,
        out_dir: str | Path,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise GwinferError(f"config must be a TrainConfig, got {type(config).__name__}")
        if not isinstance(model, nn.Module) or not callable(getattr(model, "loss", None)):
            raise GwinferError("model must be an nn.Module with a loss(*batch) method returning per-sample losses")
        if len(train_set) == 0:  # type: ignore[arg-type]
            raise GwinferError("the training set is empty")
        if val_set is not None and len(val_set) == 0:  # type: ignore[arg-type]
            raise GwinferError("the validation set is empty (pass None to validate on the training loss)")
        self.metadata = dict(metadata or {})
        check_plain(self.metadata, "metadata")
        self.spec = model.spec() if callable(getattr(model, "spec", None)) else None
        check_plain(self.spec, "model.spec()")
        self.config, self.out_dir = config, Path(out_dir)
        self.train_set, self.val_set = train_set, val_set
        self.info = D.init_distributed(config.device)
        self.per_rank_batch = config.per_rank_batch(self.info.world_size)
        self.model = model.to(self.info.device)
        n_train = len(train_set)  # type: ignore[arg-type]
        self.steps_per_epoch = D.steps_per_epoch(n_train, self.info, self.per_rank_batch)
        self.optimizer = build_optimizer(self.model.parameters(), config, self.info.world_size)
        self.scheduler = build_scheduler(self.optimizer, config, self.steps_per_epoch)
        self.checkpoint_path, self.best_path = self.out_dir / "checkpoint.pt", self.out_dir / "best.pt"
        self._stop, self._stop_time = False, 0.0
        self._provenance = provenance("checkpoint", to_dict(config), libraries=("torch", "numpy", "pytorch-optimizer"))

    # ------------------------------------------------------------------ public
    def request_stop(self) -> None:
        """Ask a running :meth:`fit` to stop after the current step and write a checkpoint (as SIGINT/SIGTERM do)."""
        self._stop, self._stop_time = True, time.monotonic()

    def fit(self, resume: bool = True) -> dict[str, Any]:
        """Train until ``config.epochs``, early stopping, the time budget or a stop request.

        With ``resume`` and an existing ``checkpoint.pt`` (same config up to RESUMABLE_CHANGES) training
        continues exactly where it stopped; otherwise it starts over (removing an old ``best.pt`` and
        ``log.csv``; ``checkpoint.pt`` is overwritten at the end of the first epoch).
        Returns ``history`` (one dict per epoch), ``best_val_loss``, ``best_epoch``, ``epochs_completed``,
        ``global_step`` and ``stopped`` ("completed", "early_stopping", "time_budget" or "interrupted").
        """
        self._stop = False
        st = self._load(resume)
        module: nn.Module = LossModule(self.model)
        if self.info.distributed:
            ids = [self.info.device.index] if self.info.device.type == "cuda" else None
            module = DistributedDataParallel(module, device_ids=ids)
        previous = self._install_signal_handlers()
        tb = self._open_tensorboard(st["global_step"])
        t_start, cfg, stopped = time.monotonic(), self.config, None
        try:
            while stopped is None:
                if cfg.early_stopping_patience and st["epochs_without_improvement"] >= cfg.early_stopping_patience:
                    stopped = "early_stopping"
                    break
                if st["epoch"] >= cfg.epochs:
                    break
                interrupted, loss_sum, count, seconds = self._train_epoch(module, st, tb)
                if interrupted:
                    partial = D.all_reduce([loss_sum, count], self.info)
                    st["partial_epoch"] = {"loss_sum": partial[0], "count": int(partial[1]), "seconds": seconds}
                    stopped = "interrupted"
                    self._save(st, stopped, best=False)
                    break
                stopped = self._end_epoch(st, loss_sum, count, seconds, t_start, tb)
        finally:
            self._restore_signal_handlers(previous)
            if tb is not None:
                tb.close()
        D.barrier(self.info)
        return {
            "history": st["history"],
            "best_val_loss": st["best_val_loss"],
            "best_epoch": st["best_epoch"],
            "epochs_completed": st["epoch"],
            "global_step": st["global_step"],
            "stopped": stopped or "completed",
        }

    def restore_best(self) -> None:
        """Load the best (else the latest) checkpoint's weights into the model, e.g. before exporting it."""
        path = self.best_path if self.best_path.exists() else self.checkpoint_path
        self.model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model_state"])

    def fit_and_save(
        self, save: Callable[[Path], Any], metadata: dict[str, Any], resume: bool = True, what: str = "model"
    ) -> tuple[dict[str, Any], Path]:
        """:meth:`fit`, then on the main rank: the best weights back (:meth:`restore_best`), the training
        summary into ``metadata["training"]`` and ``save(out_dir / "model.pt")``, which writes the model
        file with that metadata (also after an interruption: the best model so far). Returns
        ``(fit result, path of model.pt)``; the caller decides what an interrupted run means."""
        result = self.fit(resume=resume)
        out = self.out_dir / "model.pt"
        if self.info.is_main:
            self.restore_best()
            metadata["training"] = {
                k: result[k] for k in ("best_val_loss", "best_epoch", "epochs_completed", "stopped")
            }
            save(out)
            log.info(
                "%s written to %s (best val loss %.5g at epoch %s)",
                what,
                out,
                result["best_val_loss"],
                result["best_epoch"],
            )
        return result, out

    # ------------------------------------------------------------------ one epoch
    def _train_epoch(self, module: nn.Module, st: dict[str, Any], tb: Any) -> tuple[bool, float, float, float]:
        cfg, info, epoch = self.config, self.info, st["epoch"]
        if callable(getattr(self.train_set, "set_epoch", None)):  # e.g. fresh noise per epoch
            self.train_set.set_epoch(epoch)
        skip = st["step_in_epoch"]
        partial = st.pop("partial_epoch", None) or {"loss_sum": 0.0, "count": 0, "seconds": 0.0}
        loss_sum = partial["loss_sum"] if info.is_main else 0.0
        count = partial["count"] if info.is_main else 0
        loader = D.train_loader(
            self.train_set,
            info,
            self.per_rank_batch,
            seed=cfg.seed,
            epoch=epoch,
            skip_batches=skip,
            num_workers=cfg.num_workers,
        )
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=skip,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            unit="step",
            leave=False,
            mininterval=1.0,
            disable=None if info.is_main else True,
        )
        module.train()
        t0, seen, interrupted = time.perf_counter(), 0, False
        # the loss stays on the device between checks: one host sync every log_every_steps (and at the end)
        running = torch.tensor(loss_sum, dtype=torch.float64, device=info.device)
        for batch in loader:
            batch = (batch,) if isinstance(batch, torch.Tensor) else tuple(batch)
            batch = tuple(b.to(info.device, non_blocking=True) for b in batch)
            n = int(batch[0].shape[0])
            losses = module(*batch)
            if losses.dim() != 1 or losses.shape[0] != n:
                raise GwinferError(
                    f"model.loss must return per-sample losses of shape ({n},), got {tuple(losses.shape)}"
                )
            loss = losses.mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            st["global_step"] += 1
            st["step_in_epoch"] += 1
            running += loss.detach().double() * n
            count, seen = count + n, seen + n
            bar.update(1)
            check = (
                st["global_step"] % cfg.log_every_steps == 0
                or st["step_in_epoch"] == self.steps_per_epoch
                or (info.world_size == 1 and self._stop)
            )
            if not check:
                continue
            loss_sum = float(running)
            stop, bad = D.all_reduce([float(self._stop), float(not math.isfinite(loss_sum))], info, op="max")
            if bad:
                raise GwinferError(
                    f"training loss became non-finite at epoch {epoch + 1} (checked at step {st['global_step']}); "
                    "lower lr or set grad_clip"
                )
            if info.is_main:
                rate = seen * info.world_size / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{loss_sum / max(count, 1):.4g}", samples_s=f"{rate:.0f}")
                if tb is not None:
                    tb.add_scalar("train/loss", float(loss.detach()), st["global_step"])
                    tb.add_scalar("train/lr", self.scheduler.get_last_lr()[0], st["global_step"])
            if stop:  # a stop on the last step just ends the epoch normally
                interrupted = st["step_in_epoch"] < self.steps_per_epoch
                break
        loss_sum = float(running)
        bar.close()
        return interrupted, loss_sum, count, partial["seconds"] + time.perf_counter() - t0

    def _validate(self) -> float | None:
        if self.val_set is None:
            return None
        loader = D.val_loader(self.val_set, self.info, self.per_rank_batch, self.config.num_workers)
        total, count = 0.0, 0
        self.model.eval()
        with torch.no_grad():
            for batch in loader:
                batch = (batch,) if isinstance(batch, torch.Tensor) else tuple(batch)
                losses = self.model.loss(*(b.to(self.info.device, non_blocking=True) for b in batch))
                total += float(losses.double().sum())
                count += int(losses.shape[0])
        self.model.train()
        total, count = D.all_reduce([total, count], self.info)
        return total / count

    def _end_epoch(
        self, st: dict[str, Any], loss_sum: float, count: float, seconds: float, t_start: float, tb: Any
    ) -> str | None:
        cfg, info = self.config, self.info
        val = self._validate()
        loss_sum, count = D.all_reduce([loss_sum, count], info)
        elapsed, stop = D.all_reduce([time.monotonic() - t_start, float(self._stop)], info, op="max")
        train_loss = loss_sum / count
        score = train_loss if val is None else val
        st["epoch"] += 1
        st["step_in_epoch"] = 0
        row = {
            "epoch": st["epoch"],
            "step": st["global_step"],
            "train_loss": train_loss,
            "val_loss": float("nan") if val is None else val,
            "lr": self.scheduler.get_last_lr()[0],
            "epoch_seconds": seconds,
            "samples_per_second": count / max(seconds, 1e-9),
        }
        st["history"].append(row)
        improved = math.isfinite(score) and score < st["best_val_loss"] - cfg.min_delta
        if improved:
            st["best_val_loss"], st["best_epoch"], st["epochs_without_improvement"] = score, st["epoch"], 0
        else:
            st["epochs_without_improvement"] += 1
        stopped = None
        if cfg.early_stopping_patience and st["epochs_without_improvement"] >= cfg.early_stopping_patience:
            stopped = "early_stopping"
        elif cfg.max_minutes > 0 and elapsed >= 60.0 * cfg.max_minutes and st["epoch"] < cfg.epochs:
            stopped = "time_budget"
        elif stop and st["epoch"] < cfg.epochs:
            stopped = "interrupted"
        if info.is_main:
            log.info(
                "epoch %d/%d: train %.6g, val %.6g, lr %.3g, %.1f s, %.0f samples/s%s",
                st["epoch"],
                cfg.epochs,
                train_loss,
                row["val_loss"],
                row["lr"],
                seconds,
                row["samples_per_second"],
                f" ({stopped})" if stopped else "",
            )
            self._write_csv(st["history"])
            if tb is not None:
                for key in ("train_loss", "val_loss", "lr", "samples_per_second"):
                    tb.add_scalar(f"epoch/{key}", row[key], st["epoch"])
                tb.flush()
        self._save(st, stopped, best=improved)
        return stopped

    # ------------------------------------------------------------------ state
    def _load(self, resume: bool) -> dict[str, Any]:
        fresh = {
            "epoch": 0,
            "step_in_epoch": 0,
            "global_step": 0,
            "best_val_loss": math.inf,
            "best_epoch": 0,
            "epochs_without_improvement": 0,
            "history": [],
            "partial_epoch": None,
        }
        if not (resume and self.checkpoint_path.is_file()):
            if self.info.is_main:  # starting over: an earlier run's files are moved aside, never deleted
                self._move_aside()
            D.barrier(self.info)
            seed_everything(self.config.seed + self.info.rank)
            return fresh
        ck = load_checkpoint(self.checkpoint_path, map_location=self.info.device)
        self._check_compatible(ck)
        try:
            self.model.load_state_dict(ck["model_state"])
            self.optimizer.load_state_dict(ck["optimizer_state"])
            self.scheduler.load_state_dict(ck["scheduler_state"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise GwinferError(
                f"checkpoint {self.checkpoint_path} does not fit this model: {str(err).strip().splitlines()[0][:200]}"
            ) from None
        rng = ck["rng_states"]
        if len(rng) == self.info.world_size:
            restore_rng_state(rng[self.info.rank])
        else:
            log.warning(
                "checkpoint written by %d processes, resuming with %d: random streams are reseeded",
                len(rng),
                self.info.world_size,
            )
            seed_everything(self.config.seed + self.info.rank + 7919 * ck["epoch"])
        st = {k: ck[k] for k in fresh}
        if self.info.is_main:
            log.info("resuming from %s at epoch %d, step %d", self.checkpoint_path, st["epoch"], st["global_step"])
        return st

    def _move_aside(self) -> None:
        """Move an earlier run's files (checkpoints, log, model, TensorBoard) into ``out_dir/previous-<time>/``."""
        names = ("checkpoint.pt", "best.pt", "log.csv", "model.pt", "tb")
        present = [self.out_dir / n for n in names if (self.out_dir / n).exists()]
        if not present:
            return
        aside = self.out_dir / time.strftime("previous-%Y%m%d-%H%M%S")
        k = 1
        while aside.exists():
            aside, k = aside.with_name(f"{aside.name.split('.')[0]}.{k}"), k + 1
        aside.mkdir()
        for p in present:
            p.rename(aside / p.name)
        log.warning("starting over in %s: the earlier run's files were moved to %s", self.out_dir, aside)

    def _check_compatible(self, ck: dict[str, Any]) -> None:
        where = f"checkpoint {self.checkpoint_path}"
        old, new = ck.get("config", {}), to_dict(self.config)
        diff = [
            f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in new if k not in RESUMABLE_CHANGES and old.get(k) != new[k]
        ]
        if diff:
            raise GwinferError(
                f"{where} was made with a different config ({'; '.join(diff)}); "
                "use another out_dir or fit(resume=False)"
            )
        if ck.get("model_class") != _class_name(self.model) or ck.get("model_spec") != self.spec:
            raise GwinferError(
                f"{where} holds a different model ({ck.get('model_class')}, spec {ck.get('model_spec')})"
            )
        if ck.get("n_train") != len(self.train_set):  # type: ignore[arg-type]
            raise GwinferError(
                f"{where} was trained on {ck.get('n_train')} samples, this training set has {len(self.train_set)}"
            )  # type: ignore[arg-type]

    def _save(self, st: dict[str, Any], stopped: str | None, *, best: bool) -> None:
        rng = D.gather_objects(capture_rng_state(), self.info)
        if not self.info.is_main:
            return
        state = {
            "checkpoint_format": FORMAT,
            "checkpoint_format_version": FORMAT_VERSION,
            "gwinfer_version": __version__,
            "provenance": self._provenance,
            "model_class": _class_name(self.model),
            "model_spec": self.spec,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict(),
            "rng_states": rng,
            "world_size": self.info.world_size,
            "n_train": len(self.train_set),  # type: ignore[arg-type]
            "data_position": {
                "seed": self.config.seed,
                "sampler_epoch": st["epoch"],
                "step_in_epoch": st["step_in_epoch"],
                "per_rank_batch": self.per_rank_batch,
            },
            "stopped": stopped,
            "config": to_dict(self.config),
            "metadata": self.metadata,
            **{
                k: st.get(k)
                for k in (
                    "epoch",
                    "step_in_epoch",
                    "global_step",
                    "best_val_loss",
                    "best_epoch",
                    "epochs_without_improvement",
                    "history",
                    "partial_epoch",
                )
            },
        }
        save_checkpoint(self.checkpoint_path, state)
        if best:
            save_checkpoint(self.best_path, state)

    # ------------------------------------------------------------------ outputs and signals
    def _write_csv(self, history: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        with atomic_path(self.out_dir / "log.csv") as tmp:
            tmp.write_text(buf.getvalue())

    def _open_tensorboard(self, global_step: int) -> Any:
        if not (self.config.tensorboard and self.info.is_main):
            return None
        from torch.utils.tensorboard import SummaryWriter  # slow import: only when asked for

        return SummaryWriter(log_dir=str(self.out_dir / "tb"), purge_step=global_step or None)

    def _on_signal(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if self._stop and signum == signal.SIGINT and now - self._stop_time > ABORT_AFTER_SECONDS:
            raise KeyboardInterrupt  # a second, later Ctrl-C: give up at once
        if self._stop:
            return  # the copy torchrun forwards of a Ctrl-C the terminal already delivered
        self._stop, self._stop_time = True, now
        log.warning("received %s: finishing the current step, then writing a checkpoint", signal.Signals(signum).name)

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _class_name(model: nn.Module) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"
