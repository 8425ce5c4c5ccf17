"""Latency of posterior sampling through the serving paths: N samples for ONE event (not run by the tests).

    OMP_NUM_THREADS=1 python bench/bench_serving_posterior.py [--model runs/gw5d/iaf/best.pt] [--n 10000]

The estimator file (``save_estimator`` file or trainer checkpoint; without ``--model`` a tiny untrained
IAF on (1, 1024) strain) is copied to a temporary folder and exported (ONNX), then, after checking that
every path returns the same numbers for the same noise, timed (sequential requests after a warm-up):

* ``torch-own``       ``estimator.sample_and_log_prob(x, N)`` in-process (torch draws its own noise)
* ``torch-noise``     the exported module (:class:`~gwinfer.serving.export.posterior.NoiseSampler`) in
                      torch on the given noise
* ``onnxruntime``     the exported graph in-process (CPU provider)
* ``http-binary``     ``gwinfer serve`` (subprocess) through tritonclient.http, binary tensors
* ``grpc``            the same server's gRPC endpoint through tritonclient.grpc
* ``sample_posterior`` the client helper end to end over HTTP: noise drawn with numpy, connection,
                      metadata and config requests, inference, columns by name
* ``sample_post-open`` the same with an open ``ServedModel`` (one inference request per call)
* ``triton-http``, ``triton-grpc`` the real Triton (python backend) on the ``--backend python`` export,
                      when one is found (``--no-triton``: left out)

These rows time the graph alone: for a model file with a training prior the ``post`` entry has its prior
stripped (gwinfer.json record and config parameters). Two more rows, only then, time the prior applied
(:mod:`gwinfer.serving.runtime.prior`, on the ``post-prior`` entry): ``http-prior`` (one request, draws
outside the prior replaced by the server) and ``sample_post-prior`` (the client helper on it); they are
checked to return draws inside the prior, the graph's own draws inside first.

Prints p50/p99 latency per request (ms) and samples/s; request size is N x D x 4 bytes of noise (plus
the strain) and the same back in samples.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_serving import start_gwinfer_server, timeit  # bench/ is on sys.path when run as a script

DEFAULT_MODEL = "runs/gw5d/iaf/best.pt"


def tiny_iaf(path: Path) -> Path:
    import torch

    from gwinfer.models import build_estimator, save_estimator

    torch.manual_seed(0)
    m = build_estimator(
        {
            "kind": "iaf",
            "config": {
                "embedding": {"kind": "svd", "context_dim": 64, "components": 128, "hidden": [256, 128]},
                "transforms": 6,
                "hidden": [128, 128],
            },
        },
        5,
        (1, 1024),
    )
    m.fit_standardization(torch.randn(512, 5) * 10 + 30, torch.randn(512, 1, 1024))
    return save_estimator(
        path, m.eval(), metadata={"names": ["mass_1", "mass_2", "luminosity_distance", "geocent_time", "phase"]}
    )


def graph_only(model_dir: Path) -> None:
    """Strip an exported posterior's training prior (gwinfer.json record, config parameters): the graph alone."""
    import json

    from gwinfer.serving.export.prior import PRIOR_PARAMETERS
    from gwinfer.serving.repository.config import read_config, write_config

    for info_path in model_dir.glob("*/gwinfer.json"):
        info = json.loads(info_path.read_text())
        info["posterior"]["prior"] = None
        info_path.write_text(json.dumps(info))
    cfg = read_config(model_dir)
    cfg["parameters"] = {k: v for k, v in cfg.get("parameters", {}).items() if k not in PRIOR_PARAMETERS}
    write_config(model_dir, cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", default=None, help=f"estimator file (default {DEFAULT_MODEL} if present, else a tiny untrained IAF)"
    )
    ap.add_argument("--n", type=int, default=10_000, help="samples per event")
    ap.add_argument("--iters", type=int, default=30, help="timed requests per backend")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (torch, onnxruntime, server)")
    ap.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=0,
        help="the server's dynamic-batching window (a lone request waits it out)",
    )
    ap.add_argument("--no-triton", action="store_true", help="leave out the real-Triton rows")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    from gwinfer.models import load_estimator
    from gwinfer.serving.client import ServedModel, sample_posterior
    from gwinfer.serving.export.entry import export_info
    from gwinfer.serving.export.model import export_model
    from gwinfer.serving.export.posterior import NoiseSampler, example_inputs

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-posterior-"))
    source = args.model or (DEFAULT_MODEL if Path(DEFAULT_MODEL).is_file() else None)
    if source is None:
        src = tiny_iaf(work / "tiny-iaf" / "model.pt")
        source = "tiny untrained IAF (5 parameters, strain (1, 1024))"
    else:
        src = work / "model" / "model.pt"  # a copy: a training may be rewriting the original
        src.parent.mkdir()
        shutil.copyfile(source, src)
    est, _ = load_estimator(src)
    repo = work / "repo"
    dest = export_model(src, repo, name="post", max_queue_delay_us=args.max_queue_delay_us)
    info = export_info(dest)
    prior_record = info["posterior"].get("prior")
    if prior_record is not None:  # "post": the graph alone; "post-prior": the draws kept inside the prior
        export_model(src, repo, name="post-prior", max_queue_delay_us=args.max_queue_delay_us)
        graph_only(repo / "post")
    d, n = est.theta_dim, args.n
    x, _ = example_inputs(est, 1, 1, seed=1)
    xn = x.numpy()
    z = np.random.default_rng(0).standard_normal((1, n, d)).astype(np.float32)
    sampler = NoiseSampler(est)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(dest / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    x_name = info["inputs"][0]["name"]

    proc, port, grpc_port = start_gwinfer_server(repo, args.threads)
    url = f"127.0.0.1:{port}"
    client = httpclient.InferenceServerClient(url)
    gclient = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    triton, tclient, tgclient, note = None, None, None, "triton: left out (--no-triton)"
    served = None
    try:
        if not args.no_triton:
            from gwinfer.serving.triton.launcher import TritonServer, TritonUnavailable

            try:
                triton_repo = work / "triton-repo"
                export_model(
                    src, triton_repo, name="post", backend="python", max_queue_delay_us=args.max_queue_delay_us
                )
                triton = TritonServer(triton_repo).start()
                tclient = httpclient.InferenceServerClient(triton.url)
                tgclient = grpcclient.InferenceServerClient(triton.grpc_url)
                note = f"triton: {triton.install.binary} (python backend), started in {triton.startup_s:.1f} s"
            except TritonUnavailable as err:
                triton, note = None, f"triton: left out ({err})"
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

        def inputs(module):
            out = []
            for name, arr in ((x_name, xn), ("noise", z)):
                t = module.InferInput(name, list(arr.shape), "FP32")
                t.set_data_from_numpy(arr, **({"binary_data": True} if module is httpclient else {}))
                out.append(t)
            return out

        hin, gin = inputs(httpclient), inputs(grpcclient)
        hout = [httpclient.InferRequestedOutput(k, binary_data=True) for k in ("samples", "log_prob")]
        gout = [grpcclient.InferRequestedOutput(k) for k in ("samples", "log_prob")]

        def run_own():
            est.sample_and_log_prob(x, n)

        def run_noise():
            with torch.inference_mode():
                return [t.numpy() for t in sampler(x, torch.from_numpy(z))]

        def run_ort():
            return sess.run(["samples", "log_prob"], {x_name: xn, "noise": z})

        def via(c, ins, outs, model="post"):
            def run():
                r = c.infer(model, ins, outputs=outs)
                return [r.as_numpy("samples"), r.as_numpy("log_prob")]

            return run

        def run_client():
            sample_posterior(url, "post", xn[0], n, seed=0)

        served = ServedModel(url, "post")  # (closed in finally)

        def run_client_open():
            sample_posterior(served, "post", xn[0], n, seed=0)

        backends = [
            ("torch-own", run_own),
            ("torch-noise", run_noise),
            ("onnxruntime", run_ort),
            ("http-binary", via(client, hin, hout)),
            ("grpc", via(gclient, gin, gout)),
            ("sample_posterior", run_client),
            ("sample_post-open", run_client_open),
        ]
        if triton is not None:
            backends += [("triton-http", via(tclient, hin, hout)), ("triton-grpc", via(tgclient, gin, gout))]
        ref = run_noise()
        if prior_record is not None:
            check_prior(via(client, hin, hout, "post-prior")(), ref, src, est)
            backends += [
                ("http-prior", via(client, hin, hout, "post-prior")),
                ("sample_post-prior", lambda: sample_posterior(url, "post-prior", xn[0], n, seed=0)),
            ]
        std = est.theta_scale.std.numpy()
        for name, fn in backends:  # the same numbers for the same noise, or no row
            if name in ("torch-own", "torch-noise", "sample_posterior", "sample_post-open") or "prior" in name:
                continue
            got = fn()
            ds = float(np.max(np.abs(got[0] - ref[0]) / std))
            dl = float(np.max(np.abs(got[1] - ref[1])))
            assert ds < 1e-4 and dl < 1e-3, f"{name}: samples differ by {ds:.3g} std, log_prob by {dl:.3g}"
        cols = sample_posterior(url, "post", xn[0], n, seed=0)
        assert np.allclose(np.stack(list(cols.values()), -1), ref[0][0], rtol=1e-5, atol=1e-4 * float(std.max()))
        rows = []
        for name, fn in backends:
            t = timeit(fn, args.iters, warmup=3)
            rows.append((name, 1e3 * np.percentile(t, 50), 1e3 * np.percentile(t, 99), n / t.mean()))
        t_noise = timeit(
            lambda: np.random.default_rng(0).standard_normal((1, n, d)).astype(np.float32), args.iters, warmup=3
        )
    finally:
        client.close()
        gclient.close()
        for c in (tclient, tgclient, served):
            if c is not None:
                c.close()
        if triton is not None:
            triton.stop()
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"model {source}: {est.kind}, D = {d}, x {list(est.x_shape)}, exporter {info['exporter']}, "
        f"check max abs diff {info['max_abs_diff']:.2g}"
    )
    print(
        f"{n} samples for one event, {args.threads} thread(s), server max_queue_delay {args.max_queue_delay_us} us, "
        f"noise {n * d * 4 / 1e3:.0f} kB per request, load average {os.getloadavg()[0]:.2f}"
    )
    print(note)
    print(f"noise draw (numpy default_rng, float64 -> float32): p50 {1e3 * np.percentile(t_noise, 50):.3f} ms")
    print(f"{'backend':<17} {'p50 ms':>9} {'p99 ms':>9} {'samples/s':>11}")
    for name, p50, p99, thr in rows:
        print(f"{name:<17} {p50:>9.3f} {p99:>9.3f} {thr:>11.0f}")


def check_prior(got, ref, src: Path, est) -> None:
    """The prior-applied answer ``got`` holds only draws inside the training prior, the graph's own draws
    inside (of ``ref``, on the same noise) first and in order."""
    from gwinfer.evaluation.prior_support import inside_prior, model_log_prior
    from gwinfer.models import load_estimator

    _, meta = load_estimator(src)
    names = list(meta["names"])
    log_prior = model_log_prior(meta, names)
    assert np.all(inside_prior(got[0][0], names, log_prior)), "http-prior: a draw outside the prior"
    ok = inside_prior(ref[0][0], names, log_prior)
    std = est.theta_scale.std.numpy()
    ds = float(np.max(np.abs(got[0][0][: ok.sum()] - ref[0][0][ok]) / std))
    assert ds < 1e-4, f"http-prior: the graph's own draws inside the prior differ by {ds:.3g} std"


if __name__ == "__main__":
    main()
