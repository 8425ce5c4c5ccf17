"""``python -m gwinfer.cli.triton``: find a real ``tritonserver`` and check it can run here (``--check``), or
serve a model repository with it in the foreground (:mod:`gwinfer.serving.triton.launcher`).

    python -m gwinfer.cli.triton --check --env .triton-env     # which Triton, stub, numpy, onnxruntime
    python -m gwinfer.cli.triton --repo model_repo             # foreground on ports 8000/8001
"""

from __future__ import annotations

import argparse
import sys
import time

from gwinfer.cli.options import HelpFormatter
from gwinfer.errors import GwinferError
from gwinfer.serving.triton.launcher import ENV_VAR, TritonServer, check_install, find_triton


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m gwinfer.cli.triton``."""
    ap = argparse.ArgumentParser(
        prog="python -m gwinfer.cli.triton",
        description="Find, check or run a real NVIDIA Triton server on a model repository.",
        formatter_class=HelpFormatter,
    )
    ap.add_argument("--repo", help="model repository to serve (without it: only report which Triton would be used)")
    ap.add_argument(
        "--env", default=None, help=f"venv with nvidia-pytriton or Triton install folder (default: ${ENV_VAR}, ...)"
    )
    ap.add_argument("--host", default="127.0.0.1", help="listen address of HTTP and gRPC (default: 127.0.0.1)")
    ap.add_argument("--http-port", type=int, default=8000, help="HTTP port (default: 8000)")
    ap.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default: 8001)")
    ap.add_argument("--metrics", action="store_true", help="also serve metrics (free port)")
    ap.add_argument("--check", action="store_true", help="only report which Triton would be used")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Check or run Triton; 1 with a one-line message on stderr if it cannot run here."""
    args = build_parser().parse_args(argv)
    try:
        install = find_triton(args.env)
        check_install(install, args.repo)
        if args.check or not args.repo:
            print(f"tritonserver: {install.binary} (from {install.source})")
            if install.python:
                print(
                    f"python backend stub: {install.stub} (python {install.python['version']}, numpy "
                    f"{install.python.get('numpy')}, onnxruntime {install.python.get('onnxruntime')})"
                )
            return 0
        server = TritonServer(args.repo, install, args.host, args.http_port, args.grpc_port, args.metrics)
        server.start()
    except GwinferError as err:
        print(f"triton: {err}", file=sys.stderr)
        return 1
    print(
        f"tritonserver ready in {server.startup_s:.1f} s: HTTP {server.url}, gRPC {server.grpc_url}; "
        f"log {server.log_path}\n{' '.join(server.command)}",
        flush=True,
    )
    try:
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
