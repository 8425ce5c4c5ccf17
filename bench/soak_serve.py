"""Soak test of ``gwinfer serve``: valid, malformed and slow clients at once, for minutes (not run by the tests).

    OMP_NUM_THREADS=1 python bench/soak_serve.py --out docs/results/soak [--duration 600] [--model models/rb-chi-random80k]

1. Exports ``--model`` (a shipped point model) into a temporary model repository (``gwinfer export``) and
   starts ``gwinfer serve`` on it (127.0.0.1, a free port, HTTP only, the server's default limits unless
   ``--header-timeout`` / ``--body-timeout`` are given) as a subprocess.
2. Unloaded: ``--baseline-requests`` valid KServe-v2 infer requests one after the other (tritonclient.http,
   binary tensors, batch 1, real IMRPhenomT waveforms on the model's grid): p50/p99 latency, and each input's
   answer as the reference.
3. Loaded, for ``--duration`` s, all at once:

   * ``--valid-clients`` threads (this process; one tritonclient.http client each) sending valid requests at
     ``--valid-rate`` requests/s each; every latency is kept; an error is any exception, a non-finite answer
     or an answer differing from the unloaded one by more than ``--tolerance``;
   * ``--malformed-clients`` threads (a separate process, so their JSON building does not hold this
     process's GIL) cycling through malformed requests: bad JSON, wrong shape, wrong datatype, NaN/inf (JSON
     and binary), an all-zero waveform, a batch above max_batch_size, an unknown model, a claimed 1 GB body,
     a 100k-deep JSON body, a 2 MB JSON body of the wrong size, a binary header length past the body, garbage
     bytes instead of HTTP, and a body cut off by the client (``--skip KIND ...`` leaves kinds out); every
     status is counted (each should be 4xx or, for a body cut short, a closed connection);
   * ``--slow-clients`` threads (the same separate process) holding connections the server must drop:
     silent after connecting, request headers trickled one byte a second, and complete headers followed by a
     body trickled one byte a second. Each connection's lifetime is measured until the server closes it or
     answers 408; a connection not dropped within its deadline + ``--slack`` s counts against the run.
   * the server's RSS, open file descriptors and threads (``/proc/PID``) and the load average every
     ``--sample-every`` s.
4. Writes ``soak.json`` (everything), ``soak.md`` (summary) and ``soak.png`` (latency and RSS over time) to
   ``--out`` and prints PASS or FAIL (exit status 0 / 1) against:

   * valid p99 under load < 5 x unloaded p99;
   * zero errors on valid requests;
   * RSS growth over the last 80 % of the run < 10 % (median RSS of the last 5 % of the samples against the
     median of those between 20 % and 25 % of the run);
   * every slow connection dropped within its deadline + slack;
   * no malformed request answered 5xx or left without an answer until the client's timeout (15 s).

Every client is bounded: fixed thread counts, socket timeouts on every connection, and the run's threads
and processes are joined with timeouts.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def export(model: Path, repo: Path) -> str:
    """``gwinfer export`` of ``model`` into ``repo``; returns the model name."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "gwinfer.cli", "export", "--model", str(model), "--repo", str(repo)]
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True, timeout=600)
    (name,) = [p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file()]
    return name


def start_server(repo: Path, port: int, log: Path, limits: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "gwinfer.cli", "serve", "--repo", str(repo), "--port", str(port), "--grpc-port", "0"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd + limits, env=env, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gwinfer serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/v2/health/ready")
            if c.getresponse().status == 200:
                c.close()
                return proc
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("gwinfer serve did not become ready within 120 s")


def proc_stats(pid: int) -> dict[str, float]:
    """RSS (MiB), threads and open file descriptors of process ``pid`` from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            out["rss_mib"] = int(line.split()[1]) / 1024
        elif line.startswith("Threads:"):
            out["threads"] = int(line.split()[1])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


# ------------------------------------------------------------------------------------------ valid clients
def valid_inputs(repo: Path, name: str, n: int, seed: int) -> list[tuple[tuple[float, float, float], np.ndarray]]:
    """``n`` real waveforms (x float32 (1, 2, T): Re, Im of h22 on the model's grid) with their parameters."""
    from gwinfer.physics.timegrid import TimeGrid
    from gwinfer.waveforms import get_backend

    meta = json.loads(next((repo / name).glob("*/gwinfer.json")).read_text())
    grid, backend = TimeGrid(**meta["time_grid"]), get_backend(meta.get("approximant", "IMRPhenomT"))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        q, s1, s2 = float(rng.uniform(1.5, 7.5)), float(rng.uniform(-0.7, 0.7)), float(rng.uniform(-0.7, 0.7))
        h = backend.h22(q, s1, s2, grid)
        out.append(((q, s1, s2), np.stack([h.real, h.imag])[None].astype(np.float32)))
    return out


class ValidClient(threading.Thread):
    """Sends valid requests at ``rate``/s until ``stop``; records (t, latency s) and errors."""

    def __init__(self, url, name, inputs, reference, rate, tolerance, stop, t0, seed):
        super().__init__(daemon=True)
        self.url, self.name, self.inputs, self.reference = url, name, inputs, reference
        self.period, self.tolerance, self.stop, self.t0 = 1.0 / rate, tolerance, stop, t0
        self.rng = np.random.default_rng(seed)
        self.times: list[float] = []
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.max_diff = 0.0

    def run(self) -> None:
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(self.url, connection_timeout=10.0, network_timeout=30.0)
        next_t = time.monotonic()
        while not self.stop.is_set():
            i = int(self.rng.integers(len(self.inputs)))
            x = self.inputs[i][1]
            t = httpclient.InferInput("waveform", list(x.shape), "FP32")
            t.set_data_from_numpy(x, binary_data=True)
            start = time.perf_counter()
            try:
                theta = client.infer(self.name, [t]).as_numpy("theta")
                lat = time.perf_counter() - start
                diff = float(np.max(np.abs(theta - self.reference[i]))) if np.all(np.isfinite(theta)) else np.inf
                self.max_diff = max(self.max_diff, diff)
                if diff > self.tolerance:
                    self.errors.append(f"{time.monotonic() - self.t0:.1f}s: answer differs by {diff:.3g}")
            except Exception as err:  # noqa: BLE001 - every failure of a valid request is a finding
                lat = time.perf_counter() - start
                self.errors.append(f"{time.monotonic() - self.t0:.1f}s: {type(err).__name__}: {str(err)[:200]}")
                client.close()
                client = httpclient.InferenceServerClient(self.url, connection_timeout=10.0, network_timeout=30.0)
            self.times.append(time.monotonic() - self.t0)
            self.latencies.append(lat)
            next_t = max(next_t + self.period, time.monotonic())  # no burst after a slow answer
            self.stop.wait(max(0.0, next_t - time.monotonic()))
        client.close()


def baseline(url: str, name: str, inputs, n: int, rate: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unloaded latencies (s) of ``n`` sequential requests (paced like the valid clients) and the answer to
    each input (the reference of the loaded phase)."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url, connection_timeout=10.0, network_timeout=30.0)
    answers, lat = [], []

    def one(x):
        t = httpclient.InferInput("waveform", list(x.shape), "FP32")
        t.set_data_from_numpy(x, binary_data=True)
        return client.infer(name, [t]).as_numpy("theta")

    for _, x in inputs:
        answers.append(one(x))
    for _ in range(5):  # warm-up
        one(inputs[0][1])
    for k in range(n):
        start = time.perf_counter()
        one(inputs[k % len(inputs)][1])
        lat.append(time.perf_counter() - start)
        time.sleep(max(0.0, 1.0 / rate - lat[-1]))
    client.close()
    return np.array(lat), answers


# ------------------------------------------------------------------------------------------ adversaries
def _send(port: int, payload: bytes, timeout: float = 15.0, cut: bool = False) -> str:
    """Send raw ``payload`` on a new connection; the response's status code, ``closed`` or ``timeout``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(payload)
            if cut:
                s.shutdown(socket.SHUT_WR)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except socket.timeout:
        return "timeout"
    except OSError as err:
        return f"closed ({type(err).__name__})"
    if not data:
        return "closed"
    parts = data.split(b" ", 2)
    return parts[1].decode(errors="replace") if len(parts) > 1 else "garbage"


def _request(name: str, body: bytes, path: str | None = None, extra: str = "", length: int | None = None) -> bytes:
    path = path or f"/v2/models/{name}/infer"
    n = len(body) if length is None else length
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n{extra}"
    return (head + "Connection: close\r\n\r\n").encode() + body


def malformed_requests(name: str, shape: tuple[int, int]) -> dict[str, tuple[bytes, bool]]:
    """{kind: (raw request bytes, whether the client cuts the body short)}."""
    c, t = shape
    rng = np.random.default_rng(0)
    good = rng.normal(size=c * t).astype(np.float32)

    def infer_json(data, shp, dtype="FP32", model=name, nan_ok=False):
        doc = {"inputs": [{"name": "waveform", "shape": list(shp), "datatype": dtype, "data": data}]}
        return _request(model, json.dumps(doc, allow_nan=nan_ok).encode())

    def binary(x: np.ndarray, claimed: int | None = None):
        hdr = json.dumps(
            {
                "inputs": [
                    {
                        "name": "waveform",
                        "shape": list(x.shape),
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": x.nbytes},
                    }
                ]
            }  # fmt: skip
        ).encode()
        n = len(hdr) if claimed is None else claimed
        return _request(name, hdr + x.tobytes(), extra=f"Inference-Header-Content-Length: {n}\r\n")

    nan = good.copy()
    nan[17] = np.nan
    inf = good.copy()
    inf[5] = np.inf
    return {
        "bad-json": (_request(name, b'{"inputs": [{"name": "waveform", "shape": [1, 2'), False),
        "wrong-shape": (infer_json(good[: c * 100].tolist(), (1, c, 100)), False),
        "wrong-datatype": (infer_json(good.tolist(), (1, c, t), dtype="FP64"), False),
        "nan-json": (infer_json(nan.tolist(), (1, c, t), nan_ok=True), False),
        "inf-binary": (binary(inf.reshape(1, c, t)), False),
        "all-zero": (binary(np.zeros((1, c, t), np.float32)), False),
        "batch-too-big": (binary(np.tile(good.reshape(1, c, t), (65, 1, 1))), False),
        "unknown-model": (infer_json(good.tolist(), (1, c, t), model="no-such-model"), False),
        "claimed-1GB": (_request(name, b"{}", length=10**9), True),
        "deep-json": (_request(name, b"[" * 100_000 + b"]" * 100_000), False),
        "2MB-wrong-size": (infer_json([0.5] * 500_000, (1, c, t)), False),
        "header-length-past-body": (binary(good.reshape(1, c, t), claimed=10**7), False),
        "garbage": (rng.integers(0, 256, 4096, dtype=np.uint8).tobytes() + b"\r\n\r\n", False),
        "body-cut-short": (_request(name, b'{"inputs": [', length=5000), True),
    }


def malformed_client(port, name, shape, stop, t0, rate, seed, out, skip=()):
    reqs = {k: v for k, v in malformed_requests(name, shape).items() if k not in skip}
    kinds = sorted(reqs)
    rng = np.random.default_rng(seed)
    counts: Counter = Counter()
    slowest = 0.0
    while not stop.is_set():
        kind = kinds[int(rng.integers(len(kinds)))]
        payload, cut = reqs[kind]
        start = time.perf_counter()
        status = _send(port, payload, cut=cut)
        slowest = max(slowest, time.perf_counter() - start)
        counts[f"{kind} -> {status}"] += 1
        stop.wait(1.0 / rate)
    out.put(("malformed", {"counts": dict(counts), "slowest_s": slowest}))


def slow_client(port, name, kind, deadline, slack, stop, t0, out):
    """Hold connections of ``kind`` (silent, header, body) until the server drops each; record lifetimes."""
    records = []
    while not stop.is_set():
        start = time.monotonic()
        how = "kept"
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError as err:
            records.append({"t": start - t0, "lifetime_s": 0.0, "how": f"connect failed: {err}"})
            stop.wait(1.0)
            continue
        try:
            if kind == "body":
                s.sendall(
                    f"POST /v2/models/{name}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode()
                )
            elif kind == "header":
                s.sendall(f"POST /v2/models/{name}/infer HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())
            limit = start + deadline + slack + 5.0  # give up on this connection after this (bounded)
            while time.monotonic() < limit:
                ready, _, _ = select.select([s], [], [], 1.0)
                if ready:
                    data = s.recv(4096)
                    how = "closed" if not data else "answered " + data.split(b" ", 2)[1].decode(errors="replace")
                    break
                if kind != "silent":
                    s.sendall(b"a")
        except OSError as err:
            how = f"closed ({type(err).__name__})"
        finally:
            s.close()
        records.append({"t": round(start - t0, 2), "lifetime_s": round(time.monotonic() - start, 2), "how": how})
    out.put(("slow", {"kind": kind, "deadline_s": deadline, "records": records}))


def adversaries(port, name, shape, args, t0, queue, stop):
    """The malformed and slow clients, in their own process (``t0``: the load's start on the system-wide
    monotonic clock); results go to ``queue``."""
    threads = [
        threading.Thread(
            target=malformed_client,
            args=(port, name, shape, stop, t0, args["malformed_rate"], k, queue, args["skip"]),
            daemon=True,
        )
        for k in range(args["malformed_clients"])
    ]
    kinds = ["silent", "header", "body"]
    for k in range(args["slow_clients"]):
        kind = kinds[k % 3]
        deadline = args["body_timeout"] if kind == "body" else args["header_timeout"]
        threads.append(
            threading.Thread(
                target=slow_client, args=(port, name, kind, deadline, args["slack"], stop, t0, queue), daemon=True
            )
        )
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=args["duration"] + args["body_timeout"] + args["slack"] + 60)


# ------------------------------------------------------------------------------------------ report
def clean(obj):
    """``obj`` with numpy scalars as Python numbers and NaN/inf as None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def percentile_ms(x, q: float) -> float:
    return float(np.percentile(np.asarray(x) * 1e3, q)) if len(x) else float("nan")


def rss_growth(samples: list[dict], duration: float) -> dict[str, float]:
    t = np.array([s["t"] for s in samples])
    rss = np.array([s["rss_mib"] for s in samples])
    early = rss[(t >= 0.20 * duration) & (t <= 0.25 * duration)]
    late = rss[t >= 0.95 * t.max()] if len(t) else rss
    if not len(early) or not len(late):
        return {"growth": float("nan"), "early_mib": float("nan"), "late_mib": float("nan")}
    e, l_ = float(np.median(early)), float(np.median(late))
    return {"growth": l_ / e - 1.0, "early_mib": e, "late_mib": l_, "max_mib": float(rss.max())}


def plot(path: Path, valid_t, valid_lat, base_p99, samples) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    a.scatter(valid_t, np.asarray(valid_lat) * 1e3, s=2, alpha=0.4, label="valid request")
    a.axhline(base_p99 * 1e3, color="C2", label=f"unloaded p99 {base_p99 * 1e3:.1f} ms")
    a.axhline(5 * base_p99 * 1e3, color="C3", ls="--", label="5 x unloaded p99 (limit of the p99)")
    if len(valid_t):
        edges = np.arange(0.0, max(valid_t) + 10.0, 10.0)
        idx = np.digitize(valid_t, edges)
        lat = np.asarray(valid_lat) * 1e3
        mids = [
            (edges[k - 1] + 5.0, np.percentile(lat[idx == k], 99)) for k in range(1, len(edges)) if (idx == k).any()
        ]
        a.plot(*zip(*mids), color="k", lw=1.2, label="p99 of each 10 s")
    a.set_yscale("log")
    a.set_ylabel("latency [ms]")
    a.legend(loc="upper right", fontsize=8)
    a.set_title("gwinfer serve under valid, malformed and slow clients")
    t = [s["t"] for s in samples]
    b.plot(t, [s["rss_mib"] for s in samples], color="C1")
    b.set_ylabel("server RSS [MiB]")
    b.set_xlabel("time since the load started [s]")
    b2 = b.twinx()
    b2.plot(t, [s["fds"] for s in samples], color="C4", lw=0.8)
    b2.set_ylabel("open file descriptors", color="C4")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(r: dict) -> str:
    v, b, m, s = r["valid"], r["baseline"], r["malformed"], r["slow"]
    lines = [
        f"# Soak test of gwinfer serve ({r['started']})",
        "",
        f"`{r['command']}`",
        "",
        f"Machine: {r['machine']['cpus']} cores ({r['machine']['cpu']}), load average "
        f"{r['machine']['loadavg_start']} at the start and {r['machine']['loadavg_end']} at the end. "
        f"Model `{r['model']}` (exported ONNX, batch 1 requests, binary tensors, tritonclient.http).",
        "",
        "| check | measured | limit | |",
        "|---|---|---|---|",
    ]
    for c in r["checks"]:
        lines.append(f"| {c['name']} | {c['measured']} | {c['limit']} | {'PASS' if c['ok'] else 'FAIL'} |")
    lines += [
        "",
        f"Unloaded: {b['n']} requests, p50 {b['p50_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms. Under load: {v['n']} "
        f"valid requests from {v['clients']} clients at {v['rate']} /s each, p50 {v['p50_ms']:.2f} ms, p99 "
        f"{v['p99_ms']:.2f} ms, max {v['max_ms']:.1f} ms, {v['n_errors']} errors, largest answer difference from "
        f"the unloaded answer {v['max_diff']:.2g}.",
        "",
        f"Malformed: {sum(m['counts'].values())} requests from {m['clients']} clients, statuses:",
        "",
    ]
    lines += [f"* {k}: {n}" for k, n in sorted(m["counts"].items())]
    lines += ["", f"Slow connections ({s['clients']} clients):", ""]
    for kind, st in s["by_kind"].items():
        lines.append(
            f"* {kind}: {st['n']} connections, lifetime {st['min_s']:.1f}-{st['max_s']:.1f} s (deadline "
            f"{st['deadline_s']:g} s), ended by: {st['how']}"
        )
    g = r["rss"]
    lines += [
        "",
        f"Server RSS: {g['early_mib']:.1f} MiB at 20-25 % of the run, {g['late_mib']:.1f} MiB in the last 5 % "
        f"({100 * g['growth']:+.2f} %), max {g['max_mib']:.1f} MiB; open fds {r['fds']['min']}-{r['fds']['max']}, "
        f"threads {r['threads']['min']}-{r['threads']['max']}.",
        "",
        f"Result: **{'PASS' if r['pass'] else 'FAIL'}**",
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models/rb-chi-random80k"), help="shipped point model folder")
    ap.add_argument("--out", required=True, help="folder for soak.json, soak.md and soak.png")
    ap.add_argument("--duration", type=float, default=600.0, help="s of load (default: 600)")
    ap.add_argument("--baseline-requests", type=int, default=300, help="unloaded requests (default: 300)")
    ap.add_argument("--valid-clients", type=int, default=2, help="threads of valid requests (default: 2)")
    ap.add_argument("--valid-rate", type=float, default=20.0, help="requests/s of each valid client (default: 20)")
    ap.add_argument("--malformed-clients", type=int, default=2, help="threads of malformed requests (default: 2)")
    ap.add_argument("--malformed-rate", type=float, default=10.0, help="requests/s of each (at most; default: 10)")
    ap.add_argument("--skip", nargs="*", default=[], metavar="KIND", help="malformed kinds left out (default: none)")
    ap.add_argument("--slow-clients", type=int, default=6, help="silent/header/body tricklers, in turn (default: 6)")
    ap.add_argument("--header-timeout", type=float, default=10.0, help="server --header-timeout (default: 10)")
    ap.add_argument("--body-timeout", type=float, default=60.0, help="server --body-timeout (default: 60)")
    ap.add_argument("--slack", type=float, default=5.0, help="s a slow connection may outlive its deadline")
    ap.add_argument("--tolerance", type=float, default=1e-3, help="largest |answer - unloaded answer| (default: 1e-3)")
    ap.add_argument("--sample-every", type=float, default=2.0, help="s between RSS samples (default: 2)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    machine = {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }

    with tempfile.TemporaryDirectory(prefix="gwinfer-soak-") as tmp:
        repo, log = Path(tmp) / "repo", Path(tmp) / "server.log"
        name = export(Path(args.model), repo)
        port = free_port()
        limits = ["--header-timeout", str(args.header_timeout), "--body-timeout", str(args.body_timeout)]
        server = start_server(repo, port, log, limits)
        url = f"127.0.0.1:{port}"
        try:
            inputs = valid_inputs(repo, name, 16, args.seed)
            base_lat, reference = baseline(url, name, inputs, args.baseline_requests, args.valid_rate)
            print(f"unloaded: p50 {percentile_ms(base_lat, 50):.2f} ms, p99 {percentile_ms(base_lat, 99):.2f} ms")

            ctx = mp.get_context("spawn")
            queue, adv_stop = ctx.Queue(), ctx.Event()
            stop = threading.Event()
            t0 = time.monotonic()
            adv_args = {k: getattr(args, k) for k in ("malformed_clients", "malformed_rate", "slow_clients",
                                                      "header_timeout", "body_timeout", "slack", "duration", "skip")}  # fmt: skip
            shape = tuple(inputs[0][1].shape[1:])
            adv = ctx.Process(target=adversaries, args=(port, name, shape, adv_args, t0, queue, adv_stop))
            adv.start()
            clients = [
                ValidClient(url, name, inputs, reference, args.valid_rate, args.tolerance, stop, t0, args.seed + k)
                for k in range(args.valid_clients)
            ]
            for c in clients:
                c.start()
            samples = []
            while time.monotonic() - t0 < args.duration:
                if server.poll() is not None:
                    print(f"the server exited with {server.returncode}")
                    break
                samples.append({"t": round(time.monotonic() - t0, 2), **proc_stats(server.pid),
                                "loadavg": os.getloadavg()[0]})  # fmt: skip
                time.sleep(args.sample_every)
            stop.set()
            adv_stop.set()
            for c in clients:
                c.join(timeout=60)
            results = []
            deadline = time.monotonic() + args.body_timeout + args.slack + 60
            n_adv = args.malformed_clients + args.slow_clients
            while len(results) < n_adv and time.monotonic() < deadline:
                try:
                    results.append(queue.get(timeout=5))
                except Exception:  # noqa: BLE001 - queue.Empty: keep waiting until the deadline
                    pass
            adv.join(timeout=30)
            if adv.is_alive():
                adv.kill()
            samples.append(
                {"t": round(time.monotonic() - t0, 2), **proc_stats(server.pid), "loadavg": os.getloadavg()[0]}
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        log_text = log.read_text(errors="replace")

    machine["loadavg_end"] = os.getloadavg()
    valid_t = [t for c in clients for t in c.times]
    valid_lat = [x for c in clients for x in c.latencies]
    errors = [e for c in clients for e in c.errors]
    malformed_counts: Counter = Counter()
    slowest_malformed = 0.0
    slow_records: dict[str, list] = {}
    slow_deadline: dict[str, float] = {}
    for kind, res in results:
        if kind == "malformed":
            malformed_counts.update(res["counts"])
            slowest_malformed = max(slowest_malformed, res["slowest_s"])
        else:
            slow_records.setdefault(res["kind"], []).extend(res["records"])
            slow_deadline[res["kind"]] = res["deadline_s"]
    n_5xx = sum(n for k, n in malformed_counts.items() if k.split(" -> ")[1].startswith("5"))
    n_bad = n_5xx + sum(n for k, n in malformed_counts.items() if k.endswith("-> timeout"))
    by_kind, late = {}, []
    for kind, recs in slow_records.items():
        life = [r["lifetime_s"] for r in recs]
        finished = [r for r in recs if r["how"] != "kept"]
        late += [
            r | {"kind": kind} for r in recs if r["how"] == "kept" or r["lifetime_s"] > slow_deadline[kind] + args.slack
        ]
        by_kind[kind] = {
            "n": len(recs), "deadline_s": slow_deadline[kind], "min_s": min(life, default=np.nan),
            "max_s": max(life, default=np.nan), "median_s": float(np.median(life)) if life else np.nan,
            "how": dict(Counter(r["how"] for r in finished)), "not_dropped": len(recs) - len(finished),
        }  # fmt: skip
    growth = rss_growth(samples, args.duration)
    base_p99 = float(np.percentile(base_lat, 99))
    p99 = percentile_ms(valid_lat, 99)
    checks = [
        {"name": "valid p99 under load", "measured": f"{p99:.2f} ms", "limit": f"< 5 x {base_p99 * 1e3:.2f} ms",
         "ok": bool(p99 < 5 * base_p99 * 1e3)},
        {"name": "errors on valid requests", "measured": str(len(errors)), "limit": "0", "ok": not errors},
        {"name": "RSS growth, last 80 % of the run", "measured": f"{100 * growth['growth']:+.2f} %",
         "limit": "< 10 %", "ok": bool(growth["growth"] < 0.10)},
        {"name": "slow connections not dropped in time", "measured": str(len(late)),
         "limit": f"0 (deadline + {args.slack:g} s)", "ok": not late and bool(slow_records)},
        {"name": "malformed requests answered 5xx or left hanging", "measured": str(n_bad),
         "limit": "0", "ok": n_bad == 0 and bool(malformed_counts)},
    ]  # fmt: skip
    report = {
        "started": started,
        "command": "python bench/soak_serve.py " + " ".join(sys.argv[1:]),
        "machine": machine,
        "model": os.path.relpath(args.model, ROOT) if Path(args.model).is_absolute() else args.model,
        "config": vars(args),
        "baseline": {"n": len(base_lat), "p50_ms": percentile_ms(base_lat, 50), "p99_ms": base_p99 * 1e3},
        "valid": {
            "clients": args.valid_clients,
            "rate": args.valid_rate,
            "n": len(valid_lat),
            "p50_ms": percentile_ms(valid_lat, 50),
            "p99_ms": p99,
            "max_ms": percentile_ms(valid_lat, 100),
            "n_errors": len(errors),
            "errors": errors[:50],
            "max_diff": max((c.max_diff for c in clients), default=0),
            "per_minute": [
                {
                    "minute": m,
                    "n": int(sum(1 for t in valid_t if m * 60 <= t < (m + 1) * 60)),
                    "p99_ms": percentile_ms([x for t, x in zip(valid_t, valid_lat) if m * 60 <= t < (m + 1) * 60], 99),
                }
                for m in range(int(np.ceil(args.duration / 60)))
            ],
        },  # fmt: skip
        "malformed": {
            "clients": args.malformed_clients,
            "counts": dict(malformed_counts),
            "n_5xx": n_5xx,
            "slowest_s": slowest_malformed,
        },  # fmt: skip
        "slow": {"clients": args.slow_clients, "by_kind": by_kind, "late": late[:50]},
        "rss": growth,
        "fds": {"min": min(s["fds"] for s in samples), "max": max(s["fds"] for s in samples)},
        "threads": {"min": min(s["threads"] for s in samples), "max": max(s["threads"] for s in samples)},
        "samples": samples,
        "server_log": {
            "lines": log_text.count("\n"),
            "header_deadline_closes": log_text.count("did not arrive within"),
            "tracebacks": log_text.count("Traceback"),
            "tail": log_text.splitlines()[-20:],
        },
        "checks": checks,
    }
    report["pass"] = all(c["ok"] for c in checks)
    (out / "soak.json").write_text(json.dumps(clean(report), indent=1, allow_nan=False) + "\n")
    (out / "soak.md").write_text(markdown(report))
    plot(out / "soak.png", valid_t, valid_lat, base_p99, samples)
    for c in checks:
        print(f"{'PASS' if c['ok'] else 'FAIL'}  {c['name']}: {c['measured']} (limit {c['limit']})")
    print(f"{'PASS' if report['pass'] else 'FAIL'}: written to {out}/soak.json, soak.md, soak.png")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
