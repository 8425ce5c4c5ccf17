"""``gwinfer export`` and ``gwinfer serve``: handlers only parse arguments and call the library.

Wire into the main parser with ``add_parsers(sub)``; a GwinferError raised here is printed by the caller
as one line (``gwinfer: error: ...``).
"""

from __future__ import annotations

import argparse


def cmd_export(args: argparse.Namespace) -> int:
    from gwinfer.serving.export import export_info, export_model

    dest = export_model(args.model, args.repo, name=args.name, fmt=args.format, version=args.version,
                        max_batch_size=args.max_batch_size, max_queue_delay_us=args.max_queue_delay_us,
                        stream_stride=args.stream_stride)
    info = export_info(dest)
    print(f"exported {dest.parent.name} version {dest.name} ({args.format}) to {dest} "
          f"(max abs diff to torch {info.get('max_abs_diff', float('nan')):.2g})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from gwinfer.serving.server import serve

    serve(args.repo, host=args.host, port=args.port, token=args.token, max_body_bytes=args.max_body_bytes,
          threads=args.threads, max_sequences=args.max_sequences,
          grpc_port=args.grpc_port if args.grpc_port > 0 else None)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` and ``serve`` subcommands to ``sub``."""
    p = sub.add_parser("export", help="export a model into a Triton-style repository (ONNX or TorchScript)")
    p.add_argument("--model", required=True, help="model file or shipped-model folder")
    p.add_argument("--repo", required=True, help="model repository folder (created if absent)")
    p.add_argument("--name", default=None, help="model name (default: the model folder's name)")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("--version", type=int, default=None, help="version number (default: next free)")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--max-queue-delay-us", type=int, default=2000, help="dynamic batching window, microseconds")
    p.add_argument("--stream-stride", type=int, default=None,
                   help="export a streaming entry taking this many new samples per request")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="serve a model repository over KServe v2 HTTP and gRPC (tritonclient-compatible)")
    p.add_argument("--repo", required=True)
    p.add_argument("--host", default="127.0.0.1", help="listen address of HTTP and gRPC (loopback by default)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port")
    p.add_argument("--grpc-port", type=int, default=8001,
                   help="gRPC port (KServe v2 / Triton gRPC protocol, same models and metrics as HTTP); "
                        "0 or negative: no gRPC, HTTP only")
    p.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' (HTTP header or gRPC "
                                                 "metadata 'authorization'; health checks exempt)")
    p.add_argument("--max-body-bytes", type=int, default=64 << 20,
                   help="largest HTTP request body / gRPC message, bytes")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of each model")
    p.add_argument("--max-sequences", type=int, default=1024, help="live streaming sequences per model")
    p.set_defaults(func=cmd_serve)
