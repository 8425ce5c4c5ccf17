"""Streaming state as pure functions: snapshotter, online averaging, the sequence store."""

from __future__ import annotations

import numpy as np
import pytest

from gwinfer.errors import GwinferError
from gwinfer.serving.runtime.sequences import (
    SequenceStore,
    average_state,
    flush_average,
    online_average,
    snapshot_state,
    snapshotter,
)


def test_snapshotter_windows_equal_offline_windows():
    rng = np.random.default_rng(0)
    kernel, stride, n_updates = 40, 8, 12
    stream = rng.standard_normal((2, stride * n_updates)).astype(np.float32)
    state = snapshot_state(2, kernel, stride)
    for i in range(n_updates):
        update = stream[:, i * stride : (i + 1) * stride]
        window, state = snapshotter(update, state)
        end = (i + 1) * stride
        assert window.shape == (2, kernel) and state.buffer.shape == (2, kernel - stride)
        assert state.ready == (end >= kernel)
        if state.ready:
            np.testing.assert_array_equal(window, stream[:, end - kernel : end])
        else:  # zero padding before the first samples
            np.testing.assert_array_equal(window[:, kernel - end :], stream[:, :end])
            assert not window[:, : kernel - end].any()


def test_streaming_predictions_equal_offline_model():
    torch = pytest.importorskip("torch")
    from gwinfer.models import build_model

    g = torch.Generator().manual_seed(0)
    kernel, stride = 64, 16
    model = build_model(
        {"kind": "reduced_basis", "config": {"n_components": 4, "hidden": 16, "depth": 1}}, n_samples=kernel
    )
    x = torch.randn(16, 2, kernel, generator=g)
    theta = torch.stack(
        [1 + 3 * torch.rand(16, generator=g), torch.rand(16, generator=g) - 0.5, torch.rand(16, generator=g) - 0.5], 1
    )
    model.fit_standardization(theta, x)
    model.eval()
    stream = torch.randn(2, stride * 10, generator=g)
    state = snapshot_state(2, kernel, stride)
    online, sent = [], 0
    for i in range(10):
        window, state = snapshotter(stream[:, i * stride : (i + 1) * stride], state)  # torch update
        sent += stride
        if state.ready:
            with torch.inference_mode():
                online.append(model(window[None])[0])
    assert sent == stream.shape[1]  # exactly the new samples were sent
    ends = range(kernel, stream.shape[1] + 1, stride)
    offline_windows = torch.stack([stream[:, e - kernel : e] for e in ends])
    with torch.inference_mode():
        offline = model(offline_windows)
    assert len(online) == len(offline) == 7
    torch.testing.assert_close(torch.stack(online), offline, rtol=1e-5, atol=1e-6)


def test_snapshotter_rejects_bad_update_and_stride():
    state = snapshot_state(2, 10, 5)
    with pytest.raises(GwinferError, match="expected"):
        snapshotter(np.zeros((2, 4), np.float32), state)
    with pytest.raises(GwinferError, match="expected"):
        snapshotter(np.zeros((1, 5), np.float32), state)
    with pytest.raises(GwinferError, match="stride"):
        snapshot_state(2, 10, 11)
    with pytest.raises(GwinferError, match="stride"):
        snapshot_state(2, 10, 0)


def test_online_average_equals_brute_force():
    rng = np.random.default_rng(1)
    length, stride, steps = 12, 4, 9
    preds = rng.standard_normal((steps, 3, length))
    state = average_state(length, stride, shape=(3,))
    outs = []
    for k in range(steps):
        out, state = online_average(preds[k], state)
        assert out.shape == (3, stride)
        outs.append(out)
    outs.append(flush_average(state))
    got = np.concatenate(outs, axis=-1)
    # brute force: prediction k covers positions [(k + 1) stride - length, (k + 1) stride)
    first = stride - length
    total = np.zeros((3, steps * stride - first))
    count = np.zeros(steps * stride - first)
    for k in range(steps):
        a = (k + 1) * stride - length - first
        total[:, a : a + length] += preds[k]
        count[a : a + length] += 1
    np.testing.assert_allclose(got, total / count, rtol=1e-12, atol=1e-12)
    with pytest.raises(GwinferError, match="expected"):
        online_average(np.zeros((3, length + 1)), state)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _store(**kw):
    return SequenceStore(lambda: snapshot_state(2, 6, 2), **kw)


def test_sequence_store_lifecycle_and_expiry():
    clock = FakeClock()
    store = _store(idle_timeout=10.0, clock=clock)
    ones = np.ones((2, 2), np.float32)
    w = store.step(1, lambda s: snapshotter(ones, s), start=True)
    assert w.shape == (2, 6) and 1 in store and len(store) == 1
    clock.t = 9.0
    store.step(1, lambda s: snapshotter(2 * ones, s))
    assert store.state(1).filled == 4
    clock.t = 18.9  # 9.9 s idle: still live
    assert 1 in store
    clock.t = 19.1
    assert 1 not in store and store.expired_total == 1
    with pytest.raises(GwinferError, match="not live"):
        store.step(1, lambda s: snapshotter(ones, s))
    store.step(1, lambda s: snapshotter(ones, s), start=True)  # restart
    assert store.state(1).filled == 2
    store.step(1, lambda s: snapshotter(ones, s), end=True)
    assert 1 not in store
    with pytest.raises(GwinferError, match="sequence_id"):
        store.step(0, lambda s: snapshotter(ones, s), start=True)


def test_sequence_store_max_sequences():
    clock = FakeClock()
    store = _store(max_sequences=2, idle_timeout=5.0, clock=clock)
    ones = np.ones((2, 2), np.float32)
    store.step("a", lambda s: snapshotter(ones, s), start=True)
    store.step("b", lambda s: snapshotter(ones, s), start=True)
    with pytest.raises(GwinferError, match="too many live sequences"):
        store.step("c", lambda s: snapshotter(ones, s), start=True)
    store.step("a", lambda s: snapshotter(ones, s), start=True)  # restarting a live one is fine
    store.end("b")
    store.step("c", lambda s: snapshotter(ones, s), start=True)
    clock.t = 6.0  # both expire, room again
    store.step("d", lambda s: snapshotter(ones, s), start=True)
    store.step("e", lambda s: snapshotter(ones, s), start=True)
    assert len(store) == 2


def test_bad_request_leaves_states_untouched():
    store = _store()
    rng = np.random.default_rng(2)
    for seq in (1, 2):
        store.step(seq, lambda s: snapshotter(rng.standard_normal((2, 2)).astype(np.float32), s), start=True)
    before = {seq: store.state(seq) for seq in (1, 2)}
    with pytest.raises(GwinferError, match="expected"):
        store.step(1, lambda s: snapshotter(np.zeros((2, 3), np.float32), s))
    with pytest.raises(GwinferError, match="expected"):
        store.step(3, lambda s: snapshotter(np.zeros((2, 3), np.float32), s), start=True)
    assert 3 not in store and len(store) == 2
    for seq in (1, 2):
        assert store.state(seq) is before[seq]
        np.testing.assert_array_equal(store.state(seq).buffer, before[seq].buffer)


# --- streaming vs full windows through a real server: bytes on the wire and predictions ------------------
def _bench_module():
    """bench/bench_streaming.py (CountingProxy, run_ratio), loaded from its file."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "bench_streaming.py"
    spec = importlib.util.spec_from_file_location("bench_streaming", path)
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = module  # dataclasses resolve their module
    spec.loader.exec_module(module)
    return module


def test_streaming_sends_only_new_samples_and_matches_offline(tmp_path):
    """Wire bytes counted by a TCP relay: streamed requests carry exactly 2 x S float32 values, full-window
    ones 2 x K, so the tensor-bytes ratio is K/S for K/S = 4, 16, 64; the rest of each request (HTTP
    headers + JSON header) is a fixed overhead of a few hundred bytes, which bounds the wire ratio; every
    streamed prediction equals onnxruntime in-process on the same full window."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("fastapi")
    pytest.importorskip("tritonclient.http")
    from support import tiny_point_model

    from gwinfer.models import save_model
    from gwinfer.serving.server.run import Server

    bench = _bench_module()
    kernel = 256
    path = save_model(
        tmp_path / "tiny" / "model.pt",
        tiny_point_model(kernel, seed=3),
        metadata={"time_grid": {"t_start": 0.0, "t_end": 2.0 * (kernel - 1), "dt": 2.0}},
    )
    strides = [kernel // r for r in (4, 16, 64)]
    full, streams, onnx_path = bench.export_pair(path, tmp_path / "repo", "tiny", strides)
    with Server(tmp_path / "repo") as server:
        for i, s in enumerate(strides):
            r = bench.run_ratio(
                server.url, full, streams[s], onnx_path, kernel, s, n_ready=5, seed=i, latency=False, seq_id=10 + i
            )
            assert [q.tensor for q in r.stream] == [2 * s * 4] * len(r.stream)  # exactly the new samples
            assert [q.tensor for q in r.full] == [2 * kernel * 4] * len(r.full)
            assert r.tensor_ratio() == kernel / s
            overhead = max(q.overhead for q in r.stream + r.full)
            assert overhead < 1024, f"per-request overhead {overhead} bytes"
            lo, hi = 8 * kernel / (8 * s + overhead), (8 * kernel + overhead) / (8 * s)
            assert lo <= r.wire_ratio() <= hi
            assert r.n_predictions == 5 and r.max_abs_diff_stream <= 1e-6 and r.max_abs_diff_full <= 1e-6
