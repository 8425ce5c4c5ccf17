"""``gwinfer export``, ``gwinfer serve``, ``gwinfer promote`` and ``gwinfer stream``: handlers only parse arguments and call the library.

Wire into the main parser with ``add_parsers(sub)``; a GwinferError raised here is printed by the caller
as one line (``gwinfer: error: ...``).
"""

from __future__ import annotations

import argparse
import sys

from gwinfer.cli.options import add_model


def cmd_export(args: argparse.Namespace) -> int:
    from gwinfer.serving.export.entry import export_info
    from gwinfer.serving.export.model import export_model

    dest = export_model(
        args.model,
        args.repo,
        name=args.name,
        fmt=args.format,
        version=args.version,
        max_batch_size=args.max_batch_size,
        max_queue_delay_us=args.max_queue_delay_us,
        stream_stride=args.stream_stride,
        backend=args.backend,
    )
    info = export_info(dest)
    backend = " for Triton's python backend" if args.backend == "python" else ""
    check = info.get("check") or {}
    if "posterior" in info:
        post = info["posterior"]
        diff = (
            f"{post['kind']} posterior of {', '.join(post['parameter_names'])}; max abs diff to torch: samples "
            f"{check.get('samples_max_abs_diff', float('nan')):.2g} (standardised units), log_prob "
            f"{check.get('log_prob_max_abs_diff', float('nan')):.2g}"
        )
        prior = post.get("prior")
        diff += f"; served inside its training prior ({prior['file']})" if prior else "; no training prior recorded"
    else:
        diff = f"max abs diff to torch {info.get('max_abs_diff', float('nan')):.2g}"
    print(f"exported {dest.parent.name} version {dest.name} ({args.format}{backend}) to {dest} ({diff})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from gwinfer.serving.server.options import ServerOptions, option_names
    from gwinfer.serving.server.run import resolve_token, serve

    values = {name: getattr(args, name) for name in option_names()}
    values["token"] = resolve_token(args.token, args.token_file)
    if values["grpc_port"] is not None and values["grpc_port"] <= 0:  # the command line's "no gRPC"
        values["grpc_port"] = None
    serve(args.repo, ServerOptions(**values))
    return 0


def add_server_options(p: argparse.ArgumentParser) -> None:
    """One ``--option`` per :class:`~gwinfer.serving.server.options.ServerOptions` field: its name with
    dashes, its type, default, choices and help (a bool that defaults to true becomes ``--no-NAME``)."""
    import dataclasses
    import typing

    from gwinfer.serving.server.options import ServerOptions, option_help

    hints = typing.get_type_hints(ServerOptions)
    for f in dataclasses.fields(ServerOptions):
        flag, text = "--" + f.name.replace("_", "-"), option_help(f.name)
        kind = next((t for t in (bool, int, float, str) if t is hints[f.name] or t in typing.get_args(hints[f.name])))
        if kind is bool:
            flag = flag if not f.default else "--no-" + flag[2:]
            action = "store_true" if not f.default else "store_false"
            p.add_argument(flag, dest=f.name, action=action, default=f.default, help=f"{'do not ' * f.default}{text}")
        else:
            choices = f.metadata["choices"] or None
            p.add_argument(flag, dest=f.name, type=kind, default=f.default, choices=choices, help=text)


def cmd_promote(args: argparse.Namespace) -> int:
    from gwinfer.serving.promotion import promote
    from gwinfer.serving.server.run import resolve_token

    result = promote(
        args.repo,
        args.model,
        args.version,
        stage=args.stage,
        url=args.url,
        token=resolve_token(args.token),
        min_count=args.min_count,
        max_mean_abs_diff=args.max_mean_abs_diff,
        max_rel_rms_diff=args.max_rel_rms_diff,
        keep_previous=args.keep_previous,
        triton_policy=not args.no_triton_policy,
        timeout=args.timeout,
    )
    print(result["message"])
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    from gwinfer.errors import GwinferError
    from gwinfer.serving.replay import stream_strain
    from gwinfer.serving.server.run import resolve_token

    files = {d: f for d, f in (("H1", args.h1), ("L1", args.l1), ("V1", args.v1)) if f}
    if not files:
        raise GwinferError("give the strain files: --h1, --l1 and/or --v1 (GWOSC HDF5), one per detector of the model")
    res = stream_strain(
        args.url,
        args.model,
        files,
        args.out,
        chunk=args.chunk,
        n_samples=args.n_samples,
        seed=args.seed,
        start=args.start,
        psd_gps=args.psd_gps,
        token=resolve_token(args.token),
    )
    rows, names = res["rows"], res["spec"].parameter_names
    ready = [r for r in rows if r["ready"]]
    refused = [r for r in ready if r.get("prior_acceptance") == 0.0]
    print(
        f"streamed {len(rows)} chunks of {args.chunk:g} s through {args.model} ({len(ready)} full windows); "
        f"wrote {res['out']}"
    )
    if refused:
        print(
            f"warning: {len(refused)} windows had too few posterior draws inside the training prior (data unlike "
            f"the training set): their rows have no quantiles",
            file=sys.stderr,
        )
    if ready and names:
        key = names[0]
        last = ready[-1]
        print(
            f"last window (ends GPS {last['gps_end']:.3f}): {key} {last[key + '_median']:.4g} "
            f"[{last[key + '_q05']:.4g}, {last[key + '_q95']:.4g}]"
        )
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``export``, ``serve``, ``promote`` and ``stream`` subcommands to ``sub``."""
    p = sub.add_parser(
        "export",
        help="export a model into a Triton-style repository (ONNX or TorchScript); "
        "posterior estimators as one sampling graph (strain, noise -> samples, log_prob)",
    )
    add_model(p, "point or posterior model")
    p.add_argument("--repo", required=True, help="model repository folder (created if absent)")
    p.add_argument("--name", default=None, help="model name (default: the model folder's name)")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="graph format (default: onnx)")
    p.add_argument(
        "--backend",
        choices=["native", "python"],
        default="native",
        help="Triton backend: native (platform onnxruntime_onnx / pytorch_libtorch, as in NVIDIA's "
        "containers) or python (ONNX only: model.py runs model.onnx with onnxruntime; for Triton "
        "builds with only the Python backend, e.g. nvidia-pytriton's)",
    )
    p.add_argument("--version", type=int, default=None, help="version number (default: next free)")
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=None,
        help="largest batch (events) per request; default 64, 8 for posteriors (N samples per event)",
    )
    p.add_argument("--max-queue-delay-us", type=int, default=2000, help="dynamic batching window, microseconds")
    p.add_argument(
        "--stream-stride",
        type=int,
        default=None,
        help="export a streaming entry taking this many new samples per request",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="serve a model repository over KServe v2 HTTP and gRPC (tritonclient-compatible)")
    p.add_argument("--repo", required=True, help="model repository folder (gwinfer export --repo)")
    add_server_options(p)
    p.add_argument("--token-file", default=None, help="file whose first line is the token (instead of --token)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "promote",
        help="label a model version production (or development) in a repository and, "
        "with --url, switch a running server without dropping requests",
    )
    p.add_argument("--repo", required=True, help="model repository folder")
    p.add_argument(
        "--name", "--model", dest="model", required=True,
        help="the model's name in the repository (as export --name; --model: older spelling)",
    )  # fmt: skip
    p.add_argument("--version", type=int, required=True, help="the version to label")
    p.add_argument(
        "--stage",
        choices=["production", "development"],
        default="production",
        help="production (default): serve it for requests without a version; development: mirror "
        "production requests to it and compare (needs a production label)",
    )
    p.add_argument(
        "--url",
        default=None,
        help="running gwinfer server (http://127.0.0.1:8000): read its shadow "
        "monitor for the thresholds, then make it load the new labels",
    )
    p.add_argument("--token", default=None, help="the server's bearer token")
    p.add_argument(
        "--min-count",
        type=int,
        default=None,
        help="refuse unless the server compared at least this many inferences (batch items)",
    )
    p.add_argument(
        "--max-mean-abs-diff",
        type=float,
        default=None,
        help="refuse unless every output's mean |development - production| is at most this",
    )
    p.add_argument(
        "--max-rel-rms-diff",
        type=float,
        default=None,
        help="refuse unless every output's rms(development - production) / rms(production) is at most this",
    )
    p.add_argument(
        "--keep-previous",
        action="store_true",
        help="label the old production version development (a shadowed rollback candidate) "
        "instead of dropping the development label",
    )
    p.add_argument(
        "--no-triton-policy",
        action="store_true",
        help="leave config.pbtxt alone (default: set version_policy to specific [production] so "
        "a real Triton serves the same version)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser(
        "stream",
        help="replay GWOSC strain files in chunks through a streaming posterior entry and "
        "write per-window posterior summaries (median, 90 %% interval)",
    )
    p.add_argument("--url", required=True, help="server (host:port, HTTP; gwinfer serve or Triton)")
    p.add_argument(
        "--name", "--model", dest="model", required=True,
        help="the streaming entry's name on the server (gwinfer export --stream-stride of a posterior; "
        "--model: older spelling)",
    )  # fmt: skip
    p.add_argument("--h1", help="H1 GWOSC HDF5 strain file")
    p.add_argument("--l1", help="L1 GWOSC HDF5 strain file")
    p.add_argument("--v1", help="V1 GWOSC HDF5 strain file")
    p.add_argument(
        "--out", required=True, help="per-chunk table file: .csv or .h5 (written atomically, with provenance)"
    )
    p.add_argument(
        "--chunk", type=float, default=1.0, help="seconds of strain per request (must be the entry's stride)"
    )
    p.add_argument("--n-samples", type=int, default=1000, help="posterior samples per window")
    p.add_argument("--seed", type=int, default=0, help="noise seed (chunk k draws from default_rng([seed, k]))")
    p.add_argument("--start", type=float, default=None, help="GPS time of the first sample sent (default: file start)")
    p.add_argument(
        "--psd-gps",
        type=float,
        default=None,
        help="keep this GPS time +- 2 s out of the PSD estimate (off-source PSD as gwinfer analyze); "
        "default: median-Welch PSD of each whole file",
    )
    p.add_argument("--token", default=None, help="the server's bearer token")
    p.set_defaults(func=cmd_stream)
