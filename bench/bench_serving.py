"""Latency and throughput of serving paths, side by side (not run by the tests).

    OMP_NUM_THREADS=1 python bench/bench_serving.py [--model runs/rb-small/model.pt] [--threads 1]

Backends, each at batch 1 and 64 (sequential requests, after a warm-up):

* ``torch``        the model in-process (``torch.inference_mode``)
* ``onnxruntime``  the exported ONNX graph in-process (CPU provider)
* ``http-binary``  the gwinfer server (ONNX) in a subprocess, through tritonclient.http with binary tensors
* ``http-8clients`` the same with 8 concurrent client threads at batch 1 (dynamic batching at work)
* ``grpc``         the same server's gRPC endpoint (same process, same models), through tritonclient.grpc
                   (``raw_input_contents``)
* ``grpc-8clients`` 8 concurrent gRPC client threads at batch 1
* ``triton-http``, ``triton-grpc`` (and ``-8clients``) the real NVIDIA Triton server
                   (:mod:`gwinfer.serving.triton`: ``$GWINFER_TRITON_ENV``, ``.triton-env``, ``/work/tritonenv``
                   or ``tritonserver`` on PATH) on the ``--backend python`` export of the same model
                   (``model.py`` running the same model.onnx with onnxruntime in Triton's Python backend),
                   same batching window; skipped with a note when no Triton is found (``--no-triton``: always)

Prints p50/p99 latency per request (ms) and throughput (waveforms/s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def timeit(fn, iters: int, warmup: int = 5) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def concurrent(port: int, x: np.ndarray, iters: int, clients: int, protocol: str = "http") -> tuple[float, float, float]:
    """(p50 ms, p99 ms, waveforms/s) of ``clients`` threads each sending ``iters`` requests of x.

    ``protocol``: "http" (tritonclient.http, binary tensors) or "grpc" (tritonclient.grpc); ``port`` is its port.
    """
    import threading

    if protocol == "grpc":
        import tritonclient.grpc as client_module
    else:
        import tritonclient.http as client_module

    lat: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        c = client_module.InferenceServerClient(f"127.0.0.1:{port}")
        inp = client_module.InferInput("waveform", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        mine = []
        for _ in range(iters):
            t0 = time.perf_counter()
            c.infer("bench", [inp]).as_numpy("theta")
            mine.append(time.perf_counter() - t0)
        c.close()
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    a = np.array(lat)
    return 1e3 * np.percentile(a, 50), 1e3 * np.percentile(a, 99), x.shape[0] * len(a) / wall


def start_gwinfer_server(repo: Path, threads: int) -> tuple[subprocess.Popen, int, int]:
    """``gwinfer serve`` of ``repo`` (HTTP and gRPC on free loopback ports) in a subprocess:
    (process, HTTP port, gRPC port)."""
    from gwinfer.serving.triton import free_port

    port, grpc_port = free_port(), free_port()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    code = (f"from gwinfer.serving.server import serve; "
            f"serve({str(repo)!r}, port={port}, threads={threads}, grpc_port={grpc_port})")
    return subprocess.Popen([sys.executable, "-c", code], env=env), port, grpc_port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="runs/rb-small/model.pt")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (torch, onnxruntime, server)")
    ap.add_argument("--iters", type=int, default=200, help="requests at batch 1 (batch 64: a quarter)")
    ap.add_argument("--max-queue-delay-us", type=int, default=2000,
                    help="the server's dynamic-batching window (sequential requests wait it out)")
    ap.add_argument("--no-triton", action="store_true", help="leave out the real-Triton rows")
    args = ap.parse_args()

    import torch
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    from gwinfer.models.registry import load_model
    from gwinfer.serving.export import example_inputs, export_model

    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model)
    n = model.n_samples
    repo = Path(tempfile.mkdtemp(prefix="bench-serving-")) / "repo"
    dest = export_model(args.model, repo, name="bench", max_queue_delay_us=args.max_queue_delay_us)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(str(dest / "model.onnx"), opts, providers=["CPUExecutionProvider"])

    proc, port, grpc_port = start_gwinfer_server(repo, args.threads)
    client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
    gclient = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    triton, tclient, tgclient, note = None, None, None, "triton: left out (--no-triton)"
    if not args.no_triton:
        from gwinfer.serving.triton import TritonServer, TritonUnavailable

        try:
            triton_repo = repo.parent / "triton-repo"
            export_model(args.model, triton_repo, name="bench", backend="python",
                         max_queue_delay_us=args.max_queue_delay_us)
            params = f'parameters {{ key: "intra_op_thread_count" value: {{ string_value: "{args.threads}" }} }}\n'
            with open(triton_repo / "bench" / "config.pbtxt", "a") as f:
                f.write(params)
            triton = TritonServer(triton_repo).start()
            tclient = httpclient.InferenceServerClient(triton.url)
            tgclient = grpcclient.InferenceServerClient(triton.grpc_url)
            note = (f"triton: {triton.install.binary} (from {triton.install.source}), python backend, "
                    f"started in {triton.startup_s:.1f} s")
        except TritonUnavailable as err:
            triton, note = None, f"triton: left out ({err})"
    try:
        t0 = time.monotonic()
        while True:
            try:
                if client.is_server_ready() and gclient.is_server_ready():
                    break
            except Exception:  # noqa: BLE001 (not up yet)
                pass
            if time.monotonic() - t0 > 60 or proc.poll() is not None:
                raise SystemExit("server did not start")
            time.sleep(0.2)

        rows = []
        for batch in (1, 64):
            iters = args.iters if batch == 1 else max(args.iters // 4, 10)
            x = example_inputs(n, batch, seed=batch, model=model)
            xn = x.numpy()

            def run_torch():
                with torch.inference_mode():
                    model(x)

            def run_ort():
                sess.run(None, {"waveform": xn})

            inp = httpclient.InferInput("waveform", list(xn.shape), "FP32")
            inp.set_data_from_numpy(xn, binary_data=True)
            outs = [httpclient.InferRequestedOutput("theta", binary_data=True)]

            def run_http():
                client.infer("bench", [inp], outputs=outs).as_numpy("theta")

            ginp = grpcclient.InferInput("waveform", list(xn.shape), "FP32")
            ginp.set_data_from_numpy(xn)
            gouts = [grpcclient.InferRequestedOutput("theta")]

            def run_grpc():
                gclient.infer("bench", [ginp], outputs=gouts).as_numpy("theta")

            def run_triton_http():
                tclient.infer("bench", [inp], outputs=outs).as_numpy("theta")

            def run_triton_grpc():
                tgclient.infer("bench", [ginp], outputs=gouts).as_numpy("theta")

            backends = [("torch", run_torch), ("onnxruntime", run_ort), ("http-binary", run_http), ("grpc", run_grpc)]
            if triton is not None:
                ref = sess.run(None, {"waveform": xn})[0]
                for fn in (run_triton_http, run_triton_grpc):  # same numbers as onnxruntime, or no row
                    got = (tclient.infer("bench", [inp], outputs=outs).as_numpy("theta") if fn is run_triton_http
                           else tgclient.infer("bench", [ginp], outputs=gouts).as_numpy("theta"))
                    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
                backends += [("triton-http", run_triton_http), ("triton-grpc", run_triton_grpc)]
            for name, fn in backends:
                t = timeit(fn, iters)
                rows.append((name, batch, 1e3 * np.percentile(t, 50), 1e3 * np.percentile(t, 99), batch / t.mean()))
            if batch == 1:  # concurrent clients: what dynamic batching is for
                rows.append(("http-8clients", 1, *concurrent(port, xn, iters // 2, clients=8)))
                rows.append(("grpc-8clients", 1, *concurrent(grpc_port, xn, iters // 2, clients=8, protocol="grpc")))
                if triton is not None:
                    rows.append(("triton-http-8cl", 1, *concurrent(triton.http_port, xn, iters // 2, clients=8)))
                    rows.append(("triton-grpc-8cl", 1, *concurrent(triton.grpc_port, xn, iters // 2, clients=8,
                                                                   protocol="grpc")))
    finally:
        client.close()
        gclient.close()
        for c in (tclient, tgclient):
            if c is not None:
                c.close()
        if triton is not None:
            triton.stop()
        proc.terminate()
        proc.wait(timeout=10)

    print(f"model {args.model} (T = {n}), {args.threads} thread(s), "
          f"server max_queue_delay {args.max_queue_delay_us} us, load average {os.getloadavg()[0]:.2f}")
    print(note)
    print(f"{'backend':<15} {'batch':>5} {'p50 ms':>9} {'p99 ms':>9} {'waveforms/s':>12}")
    for name, batch, p50, p99, thr in rows:
        print(f"{name:<15} {batch:>5} {p50:>9.3f} {p99:>9.3f} {thr:>12.0f}")


if __name__ == "__main__":
    main()
