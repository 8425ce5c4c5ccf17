"""Streaming vs full-window requests: bytes on the wire, latency and predictions (HERMES Fig. 4).

    OMP_NUM_THREADS=1 python bench/bench_streaming.py [--model models/rb-chi-random80k/model.pt] [--tiny 4096]

For each kernel/stride ratio r in 4, 16, 64 a point model is exported twice into one repository -- as the
ordinary entry (``waveform`` (1, 2, K) per request, no batching window) and as a streaming entry
(``export_model(..., stream_stride=S)``: ``update`` (1, 2, S) per request, the server keeps the window) --
and served by :class:`gwinfer.serving.server.run.Server` on 127.0.0.1. A continuous stream is then sent both
ways with ``tritonclient.http`` (binary tensors):

* **bytes**: every request goes through :class:`CountingProxy`, a TCP relay between client and server that
  counts the bytes the client sends and splits them into HTTP requests (request line + headers, then
  ``Content-Length`` body bytes, of which the first ``Inference-Header-Content-Length`` are the JSON
  header). ``wire`` = all bytes of one inference request, ``tensor`` = its binary tensor bytes,
  ``overhead`` = wire - tensor (HTTP headers + JSON header: the fixed per-request cost);
* **latency**: p50/p99 of the same requests sent directly (no proxy), sequentially;
* **predictions**: every streamed ``theta`` of a ready window vs onnxruntime in-process on the same full
  windows cut from the stream (max abs difference).

Models: ``--model`` (default ``models/rb-chi-random80k/model.pt``, K = 5066 = 2 x 17 x 149, which 4, 16 and 64
do not divide: the stride is round(K / r) and the row shows the exact K / S) and a tiny fitted
reduced-basis model with a power-of-two kernel (``--tiny 4096``: S = K / r exactly). ``--tiny 0`` or
``--model none`` leave one out.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RATIOS = (4, 16, 64)


# --- wire counting ------------------------------------------------------------------------------------
@dataclass
class RequestBytes:
    """One HTTP request as seen on the wire (client -> server), bytes."""

    method: str
    path: str
    wire: int  # request line + headers + body
    body: int  # Content-Length
    json_header: int  # Inference-Header-Content-Length (0 if absent: a JSON-only body)

    @property
    def tensor(self) -> int:
        """Binary tensor bytes (body after the JSON header)."""
        return self.body - self.json_header if self.json_header else 0

    @property
    def overhead(self) -> int:
        """Everything but the tensor bytes: request line, HTTP headers, JSON inference header."""
        return self.wire - self.tensor


class _RequestParser:
    """Splits the client->server byte stream of one connection into HTTP/1.1 requests (Content-Length bodies)."""

    def __init__(self, sink: list[RequestBytes], lock: threading.Lock) -> None:
        self.buf = b""
        self.need: tuple[str, str, int, int, int] | None = None  # method, path, head, body, json
        self.sink, self.lock = sink, lock

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buf[:end].decode("latin-1")
                self.buf = self.buf[end + 4 :]
                method, path = head.split(" ", 2)[:2]
                fields = {
                    k.strip().lower(): v.strip()
                    for k, v in (line.split(":", 1) for line in head.split("\r\n")[1:] if ":" in line)
                }
                if "chunked" in fields.get("transfer-encoding", ""):
                    raise RuntimeError("chunked request bodies are not counted")
                self.need = (
                    method,
                    path,
                    end + 4,
                    int(fields.get("content-length", 0)),
                    int(fields.get("inference-header-content-length", 0)),
                )
            method, path, head_len, body, json_len = self.need
            if len(self.buf) < body:
                return
            self.buf = self.buf[body:]
            self.need = None
            with self.lock:
                self.sink.append(RequestBytes(method, path, head_len + body, body, json_len))


class CountingProxy:
    """A TCP relay on 127.0.0.1 in front of ``target`` ("host:port") that records every HTTP request's bytes.

    ``proxy.url`` is what the client connects to; ``proxy.requests`` the :class:`RequestBytes` seen so far
    (``proxy.take()`` returns and clears them). Bytes are counted as they are relayed, not computed.
    """

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[RequestBytes] = []
        self.lock = threading.Lock()
        self.down_bytes = 0
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            parser = _RequestParser(self.requests, self.lock)
            threading.Thread(target=self._pipe, args=(client, upstream, parser), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, None), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, parser: _RequestParser | None) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if parser is not None:
                    parser.feed(data)
                else:
                    with self.lock:
                        self.down_bytes += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def take(self, infer_only: bool = True) -> list[RequestBytes]:
        """The requests recorded since the last call (only ``POST .../infer`` ones by default)."""
        with self.lock:
            out, self.requests[:] = list(self.requests), []
        return [r for r in out if not infer_only or (r.method == "POST" and r.path.endswith("/infer"))]

    def close(self) -> None:
        self._stop = True
        self.sock.close()


# --- one ratio ---------------------------------------------------------------------------------------
@dataclass
class RatioResult:
    """Numbers of one kernel/stride ratio (bytes per inference request; latency in seconds)."""

    kernel: int
    stride: int
    stream: list[RequestBytes] = field(default_factory=list)
    full: list[RequestBytes] = field(default_factory=list)
    stream_latency: np.ndarray | None = None
    full_latency: np.ndarray | None = None
    max_abs_diff_stream: float = float("nan")  # streamed theta vs onnxruntime on the full windows
    max_abs_diff_full: float = float("nan")  # full-window requests vs onnxruntime
    n_predictions: int = 0
    n_nonfinite: int = 0  # offline predictions that are NaN/inf (the served ones must be too, same places)

    def wire_ratio(self) -> float:
        return float(np.mean([r.wire for r in self.full]) / np.mean([r.wire for r in self.stream]))

    def tensor_ratio(self) -> float:
        return float(np.mean([r.tensor for r in self.full]) / np.mean([r.tensor for r in self.stream]))


def max_abs_diff(got: dict[int, np.ndarray], ref: dict[int, np.ndarray]) -> float:
    """Max |got - ref| over all windows; non-finite values must sit in the same places (else inf)."""
    out = 0.0
    for e, r in ref.items():
        g = got[e]
        bad_r, bad_g = ~np.isfinite(r), ~np.isfinite(g)
        if np.any(bad_r != bad_g):
            return float("inf")
        if np.any(~bad_r):
            out = max(out, float(np.max(np.abs(g[~bad_r] - r[~bad_r]))))
    return out


def make_stream(kernel: int, stride: int, n_windows: int, seed: int, model: Any = None) -> np.ndarray:
    """float32 (2, kernel + (n_windows - 1) * stride): waveform-like windows (export.example_inputs) laid end to end."""
    from gwinfer.serving.export.point import example_inputs

    total = kernel + (n_windows - 1) * stride
    pieces = example_inputs(kernel, -(-total // kernel), seed, model).numpy()  # (m, 2, K)
    return np.ascontiguousarray(np.concatenate(list(pieces), axis=-1)[:, :total], dtype=np.float32)


def _http_inputs(name: str, x: np.ndarray) -> list[Any]:
    import tritonclient.http as httpclient

    inp = httpclient.InferInput(name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    return [inp]


def run_ratio(
    url: str,
    full_name: str,
    stream_name: str,
    onnx_path: Path,
    kernel: int,
    stride: int,
    n_ready: int,
    seed: int = 0,
    model: Any = None,
    latency: bool = True,
    seq_id: int = 1,
) -> RatioResult:
    """Send one stream to both entries (counted through a proxy, then timed directly) and compare predictions.

    The stream holds ``n_ready`` full windows (the sequence sends kernel/stride - 1 warm-up updates before
    the first); each full window is also sent whole to ``full_name`` at batch 1.
    """
    import onnxruntime as ort
    import tritonclient.http as httpclient

    warm = -(-kernel // stride)  # updates until the window is full
    stream = make_stream(kernel, stride, n_ready, seed, model)
    ends = [(i + 1) * stride for i in range(stream.shape[1] // stride)]
    windows_at = {e: stream[:, e - kernel : e] for e in ends if e >= kernel}
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    offline = {e: sess.run(None, {"waveform": w[None]})[0][0] for e, w in windows_at.items()}
    res = RatioResult(kernel, stride)
    outs_t = [httpclient.InferRequestedOutput("theta", binary_data=True)]
    outs_s = outs_t + [httpclient.InferRequestedOutput("ready", binary_data=True)]

    def send_stream(client: Any, sid: int) -> tuple[dict[int, np.ndarray], list[float]]:
        got, lat = {}, []
        for i, e in enumerate(ends):
            upd = np.ascontiguousarray(stream[None, :, e - stride : e])
            t0 = time.perf_counter()
            r = client.infer(
                stream_name,
                _http_inputs("update", upd),
                outputs=outs_s,
                sequence_id=sid,
                sequence_start=i == 0,
                sequence_end=i == len(ends) - 1,
            )
            theta, ready = r.as_numpy("theta"), r.as_numpy("ready")
            lat.append(time.perf_counter() - t0)
            if bool(ready[0, 0]) != (e >= kernel):
                raise RuntimeError(f"ready = {ready} after {e} samples (kernel {kernel})")
            if e >= kernel:
                got[e] = theta[0]
        return got, lat

    def send_full(client: Any) -> tuple[dict[int, np.ndarray], list[float]]:
        got, lat = {}, []
        for e, w in windows_at.items():
            x = np.ascontiguousarray(w[None])
            t0 = time.perf_counter()
            got[e] = client.infer(full_name, _http_inputs("waveform", x), outputs=outs_t).as_numpy("theta")[0]
            lat.append(time.perf_counter() - t0)
        return got, lat

    proxy = CountingProxy(url)
    client = httpclient.InferenceServerClient(proxy.url)
    try:
        proxy.take()
        got_s, _ = send_stream(client, seq_id)
        res.stream = proxy.take()
        got_f, _ = send_full(client)
        res.full = proxy.take()
    finally:
        client.close()
        proxy.close()
    if len(res.stream) != len(ends) or len(res.full) != len(windows_at):
        raise RuntimeError(
            f"counted {len(res.stream)} / {len(res.full)} requests; sent {len(ends)} / {len(windows_at)}"
        )
    res.max_abs_diff_stream = max_abs_diff(got_s, offline)
    res.max_abs_diff_full = max_abs_diff(got_f, offline)
    res.n_predictions = len(offline)
    res.n_nonfinite = sum(int(not np.all(np.isfinite(v))) for v in offline.values())
    if latency:
        client = httpclient.InferenceServerClient(url)
        try:
            got_s2, lat_s = send_stream(client, seq_id + 1)
            _, lat_f = send_full(client)
        finally:
            client.close()
        res.max_abs_diff_stream = max(res.max_abs_diff_stream, max_abs_diff(got_s2, offline))
        res.stream_latency = np.asarray(lat_s[warm:])  # ready windows, like the full-window requests
        res.full_latency = np.asarray(lat_f)
    return res


def export_pair(
    model_path: Path, repo: Path, name: str, strides: list[int], seeds: tuple[int, ...] = (0,)
) -> tuple[str, dict[int, str], Path]:
    """Export the full-window entry (no batching window) and one streaming entry per stride.

    ``seeds``: export-check seeds tried in turn (the check compares ONNX with torch on seeded synthetic
    windows; a model whose float32 sensitivity exceeds the limit on some seeds -- rb-chi-small -- is
    exported with the first seed that passes, and every refusal is printed). The bench itself compares
    the served graph with the same graph in onnxruntime, which the check does not affect.
    """
    from gwinfer.errors import GwinferError
    from gwinfer.serving.export.model import export_model

    for i, seed in enumerate(seeds):
        try:
            dest = export_model(model_path, repo, name=name, max_queue_delay_us=0, seed=seed)
            break
        except GwinferError as err:
            print(f"# {name}: export check with seed {seed} refused: {err}")
            if i == len(seeds) - 1:
                raise
    streams = {
        s: export_model(model_path, repo, name=f"{name}-s{s}", stream_stride=s, seed=seed).parent.name for s in strides
    }
    if seed != seeds[0]:
        print(f"# {name}: exported with export-check seed {seed}")
    return name, streams, dest / "model.onnx"


def format_rows(label: str, results: list[RatioResult]) -> list[str]:
    rows = []
    for r in results:
        sw, fw = np.mean([q.wire for q in r.stream]), np.mean([q.wire for q in r.full])
        st, ft = np.mean([q.tensor for q in r.stream]), np.mean([q.tensor for q in r.full])
        so, fo = np.mean([q.overhead for q in r.stream]), np.mean([q.overhead for q in r.full])
        lat = ""
        if r.stream_latency is not None:
            lat = (
                f" {1e3 * np.percentile(r.stream_latency, 50):8.3f} {1e3 * np.percentile(r.stream_latency, 99):8.3f}"
                f" {1e3 * np.percentile(r.full_latency, 50):8.3f} {1e3 * np.percentile(r.full_latency, 99):8.3f}"
            )
        rows.append(
            f"{label:<14} {r.kernel:6d} {r.stride:6d} {r.kernel / r.stride:7.3f} {sw:9.0f} {fw:9.0f} "
            f"{st:8.0f} {ft:8.0f} {so:6.0f} {fo:6.0f} {fw / sw:7.3f} {ft / st:7.3f}{lat} "
            f"{r.max_abs_diff_stream:9.2e} {r.n_predictions:5d} {r.n_nonfinite:5d}"
        )
    return rows


HEADER = (
    f"{'model':<14} {'K':>6} {'S':>6} {'K/S':>7} {'wire_s':>9} {'wire_f':>9} {'tens_s':>8} {'tens_f':>8} "
    f"{'ovh_s':>6} {'ovh_f':>6} {'wire_r':>7} {'tens_r':>7} {'s_p50':>8} {'s_p99':>8} {'f_p50':>8} "
    f"{'f_p99':>8} {'maxdiff':>9} {'n':>5} {'nan':>5}"
)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/rb-chi-random80k/model.pt", help="point model file ('none': skip)")
    ap.add_argument("--tiny", type=int, default=4096, help="kernel of the tiny power-of-two test model (0: skip)")
    ap.add_argument("--windows", type=int, default=200, help="ready windows per ratio (latency samples)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from gwinfer.models import build_model, load_model, save_model
    from gwinfer.serving.server.run import Server

    torch.manual_seed(args.seed)
    root = Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    repo = root / "repo"
    jobs: list[tuple[str, Path, Any, list[int]]] = []
    if args.tiny:
        k = args.tiny
        g = torch.Generator().manual_seed(args.seed)
        m = build_model(
            {"kind": "reduced_basis", "config": {"n_components": 8, "hidden": 32, "depth": 2, "dt": 2.0}}, n_samples=k
        )
        x = torch.randn(32, 2, k, generator=g)
        theta = torch.stack(
            [1 + 3 * torch.rand(32, generator=g), torch.rand(32, generator=g) - 0.5, torch.rand(32, generator=g) - 0.5],
            1,
        )
        m.fit_standardization(theta, x)
        path = save_model(
            root / f"tiny{k}" / "model.pt",
            m.eval(),
            metadata={"time_grid": {"t_start": 0.0, "t_end": 2.0 * (k - 1), "dt": 2.0}},
        )
        if any(k % r for r in RATIOS):
            raise SystemExit(f"--tiny {k}: 4, 16 and 64 must divide the kernel")
        jobs.append((f"tiny{k}", Path(path), None, [k // r for r in RATIOS]))
    if args.model != "none":
        model, _ = load_model(args.model)
        k = int(model.n_samples)
        jobs.append((Path(args.model).parent.name, Path(args.model), model, [round(k / r) for r in RATIOS]))
    exported = {
        label: export_pair(path, repo, label, strides, seeds=(0, 1, 2, 3, 4)) for label, path, _, strides in jobs
    }
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  python {sys.version.split()[0]}  repo {repo}")
    print(
        "# bytes per inference request client->server (wire = HTTP request line + headers + body, tens = binary"
        " tensor bytes, ovh = wire - tens); latency ms (s_: streaming, f_: full window, ready windows only);"
        " maxdiff: streamed theta vs onnxruntime on the full windows (n windows; nan: windows where onnxruntime"
        " itself gives NaN/inf, which the served answers must reproduce)"
    )
    print(HEADER)
    with Server(repo) as server:
        for label, path, model, strides in jobs:
            full, streams, onnx_path = exported[label]
            results = []
            for i, s in enumerate(strides):
                r = run_ratio(
                    server.url,
                    full,
                    streams[s],
                    onnx_path,
                    _kernel(onnx_path),
                    s,
                    args.windows,
                    seed=args.seed + i,
                    model=model,
                    seq_id=100 * (i + 1),
                )
                results.append(r)
                print(format_rows(label, [r])[0], flush=True)


def _kernel(onnx_path: Path) -> int:
    """The window length T of an exported point model (its waveform input's last dim)."""
    import onnx

    dims = onnx.load(str(onnx_path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return int(dims[-1].dim_value)


if __name__ == "__main__":
    main()
