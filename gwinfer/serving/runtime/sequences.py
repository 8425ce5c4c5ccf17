"""Streaming inference with server-side state, as pure functions (state in, state out; ml4gw style).

* :func:`snapshotter` keeps the last ``kernel`` samples of each channel: a client sends only the
  ``stride`` new samples per request and the model sees the full ``kernel``-sample window.
* :func:`online_average` averages overlapping predictions: each call brings a prediction covering the
  last ``length`` positions of the stream (advanced by ``stride``); it returns the ``stride`` positions
  no later prediction will overlap, each the mean of every prediction that covered it.
* :class:`SequenceStore` holds one state per ``sequence_id`` with Triton's sequence-batching convention
  (``sequence_start`` creates/resets a sequence, ``sequence_end`` releases it after the request),
  idle-timeout expiry and a maximum number of live sequences. A request that fails leaves every state,
  including its own, untouched.

Arrays may be numpy arrays or torch tensors (not mixed within one state).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError


def _cat(a: Any, b: Any) -> Any:
    if isinstance(a, np.ndarray):
        return np.concatenate([a, np.asarray(b, dtype=a.dtype)], axis=-1)
    import torch

    return torch.cat([a, b.to(a.dtype)], dim=-1)


def _zeros_like(a: Any, n: int) -> Any:
    if isinstance(a, np.ndarray):
        return np.zeros((*a.shape[:-1], n), dtype=a.dtype)
    import torch

    return torch.zeros((*a.shape[:-1], n), dtype=a.dtype, device=a.device)


# --- snapshotter ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SnapshotState:
    """The last ``kernel - stride`` samples of each channel, and how many real samples have arrived."""

    buffer: Any  # (..., channels, kernel - stride)
    kernel: int
    stride: int
    filled: int = 0  # real samples received so far (capped at kernel)

    @property
    def ready(self) -> bool:
        """True once the window holds ``kernel`` real samples (no initial zero padding)."""
        return self.filled >= self.kernel


def snapshot_state(
    channels: int, kernel: int, stride: int, dtype: Any = np.float32, batch: tuple[int, ...] = ()
) -> SnapshotState:
    """Initial (zero) snapshot for windows of ``kernel`` samples advanced by ``stride``."""
    if not (isinstance(kernel, int) and isinstance(stride, int) and 1 <= stride <= kernel):
        raise GwinferError(f"stride = {stride!r} must be an integer in [1, kernel = {kernel!r}]")
    if not (isinstance(channels, int) and channels >= 1):
        raise GwinferError(f"channels = {channels!r} must be an integer >= 1")
    return SnapshotState(np.zeros((*batch, channels, kernel - stride), dtype=dtype), kernel, stride)


def snapshotter(update: Any, state: SnapshotState) -> tuple[Any, SnapshotState]:
    """(window (..., channels, kernel), new state) from ``stride`` new samples ``update`` (..., channels, stride).

    The window is the previous ``kernel - stride`` samples followed by the update; until ``state.ready``
    its oldest samples are the initial zeros.
    """
    expected = (*state.buffer.shape[:-1], state.stride)
    if tuple(update.shape) != expected:
        raise GwinferError(
            f"stream update has shape {tuple(update.shape)}; expected {expected} (channels x stride new samples)"
        )
    buffer = state.buffer
    if not isinstance(update, np.ndarray) and isinstance(buffer, np.ndarray):
        import torch

        buffer = torch.from_numpy(buffer)
    window = _cat(buffer, update)
    new = replace(state, buffer=window[..., state.stride :], filled=min(state.filled + state.stride, state.kernel))
    return window, new


# --- online averaging ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AverageState:
    """Running sums and counts of the ``length - stride`` positions later predictions will still cover."""

    total: Any  # (..., length - stride)
    count: np.ndarray  # (length - stride,)
    length: int
    stride: int


def average_state(length: int, stride: int, shape: tuple[int, ...] = (), dtype: Any = np.float64) -> AverageState:
    """Initial state for predictions of shape (*shape, length) advanced by ``stride`` positions per call."""
    if not (isinstance(length, int) and isinstance(stride, int) and 1 <= stride <= length):
        raise GwinferError(f"stride = {stride!r} must be an integer in [1, length = {length!r}]")
    return AverageState(np.zeros((*shape, length - stride), dtype=dtype), np.zeros(length - stride), length, stride)


def online_average(predictions: Any, state: AverageState) -> tuple[Any, AverageState]:
    """(averaged update (..., stride), new state) of a prediction (..., length) over the last ``length`` positions.

    Position p of the update is the mean of all predictions so far that covered it; no later prediction
    covers it. Call :func:`flush_average` at the end of a stream for the remaining ``length - stride``.
    """
    expected = (*state.total.shape[:-1], state.length)
    if tuple(predictions.shape) != expected:
        raise GwinferError(f"predictions have shape {tuple(predictions.shape)}; expected {expected}")
    s = state.stride
    total = _cat(state.total, _zeros_like(state.total, s)) + predictions
    count = np.concatenate([state.count, np.zeros(s)]) + 1.0
    done = count[:s] if isinstance(total, np.ndarray) else _as_torch(count[:s], total)
    out = total[..., :s] / done
    return out, replace(state, total=total[..., s:], count=count[s:])


def flush_average(state: AverageState) -> Any:
    """Averages of the positions still pending at the end of a stream (..., length - stride)."""
    count = np.maximum(state.count, 1.0)
    return state.total / (count if isinstance(state.total, np.ndarray) else _as_torch(count, state.total))


def _as_torch(a: np.ndarray, like: Any) -> Any:
    import torch

    return torch.as_tensor(a, dtype=like.dtype, device=like.device)


# --- sequences -------------------------------------------------------------------------------------
class SequenceStore:
    """States of live sequences keyed by ``sequence_id`` (Triton's sequence-batching convention).

    ``step(seq_id, fn, start=, end=)`` runs ``result, new_state = fn(state)`` and stores ``new_state``:

    * ``start=True`` begins the sequence with ``init_state()`` (restarting it if already live);
    * otherwise the sequence must be live (started and not expired/ended);
    * ``end=True`` releases the state after the request;
    * sequences idle for longer than ``idle_timeout`` seconds are dropped;
    * starting a new sequence while ``max_sequences`` are live is refused;
    * if ``fn`` raises, nothing changes (the failing sequence keeps its previous state).

    Thread-safe; requests of one sequence are expected in order (as with Triton).
    """

    def __init__(
        self,
        init_state: Callable[[], Any],
        max_sequences: int = 1024,
        idle_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (isinstance(max_sequences, int) and max_sequences >= 1):
            raise GwinferError(f"max_sequences = {max_sequences!r} must be an integer >= 1")
        if not idle_timeout > 0:
            raise GwinferError(f"idle_timeout = {idle_timeout!r} s must be > 0")
        self.init_state = init_state
        self.max_sequences = max_sequences
        self.idle_timeout = float(idle_timeout)
        self.clock = clock
        self._states: dict[Hashable, tuple[Any, float]] = {}
        self._lock = threading.Lock()
        self.expired_total = 0

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._states)

    def __contains__(self, seq_id: Hashable) -> bool:
        with self._lock:
            self._expire()
            return seq_id in self._states

    def state(self, seq_id: Hashable) -> Any:
        """Current state of a live sequence (KeyError if not live)."""
        with self._lock:
            self._expire()
            return self._states[seq_id][0]

    def _expire(self) -> list[Hashable]:
        now = self.clock()
        old = [k for k, (_, t) in self._states.items() if now - t > self.idle_timeout]
        for k in old:
            del self._states[k]
        self.expired_total += len(old)
        return old

    def expire(self) -> list[Hashable]:
        """Drop idle sequences now; returns their ids."""
        with self._lock:
            return self._expire()

    def end(self, seq_id: Hashable) -> bool:
        """Release a sequence; True if it was live."""
        with self._lock:
            return self._states.pop(seq_id, None) is not None

    def step(
        self, seq_id: Hashable, fn: Callable[[Any], tuple[Any, Any]], *, start: bool = False, end: bool = False
    ) -> Any:
        if seq_id is None or seq_id == 0 or seq_id == "":
            raise GwinferError("streaming requests need a non-zero sequence_id")
        with self._lock:
            self._expire()
            if start:
                if seq_id not in self._states and len(self._states) >= self.max_sequences:
                    raise GwinferError(
                        f"too many live sequences (max {self.max_sequences}); end one with sequence_end "
                        f"or wait {self.idle_timeout:g} s for idle ones to expire"
                    )
                state = self.init_state()
            elif seq_id in self._states:
                state = self._states[seq_id][0]
            else:
                raise GwinferError(
                    f"sequence {seq_id!r} is not live: start it with sequence_start "
                    f"(idle sequences expire after {self.idle_timeout:g} s)"
                )
        result, new_state = fn(state)  # may raise: nothing stored yet
        with self._lock:
            if end:
                self._states.pop(seq_id, None)
            else:
                if start and seq_id not in self._states and len(self._states) >= self.max_sequences:
                    raise GwinferError(f"too many live sequences (max {self.max_sequences})")
                self._states[seq_id] = (new_state, self.clock())
        return result
