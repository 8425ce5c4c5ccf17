"""The ``gwinfer`` command: thin subcommands over library functions.

Every handler only parses arguments and calls the library; bad input surfaces as one line,
``gwinfer: error: <what is wrong and the accepted range>``, with exit status 2. Heavy imports (torch,
lalsimulation) happen inside the handlers so ``gwinfer --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from gwinfer._version import __version__
from gwinfer.errors import GwinferError

log = logging.getLogger("gwinfer")


def _catalogue_config(path: str):
    from gwinfer.config import from_dict, load_yaml
    from gwinfer.data.grid import CatalogueConfig

    return from_dict(CatalogueConfig, load_yaml(path), Path(path).name)


def cmd_generate(args: argparse.Namespace) -> int:
    from gwinfer.data.generate import generate_catalogue
    from gwinfer.data.validate import summary

    manifest = generate_catalogue(_catalogue_config(args.config), args.out, workers=args.workers,
                                  use_mpi=args.mpi, progress=not args.quiet)
    if not args.mpi or _mpi_rank() == 0:
        print(summary(manifest))
    return 0


def _mpi_rank() -> int:
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank()


def describe(path: str | Path) -> dict:
    """Provenance of anything gwinfer wrote: a catalogue folder, a model/checkpoint file or a result JSON."""
    p = Path(path)
    if p.is_dir():
        from gwinfer.data.store import read_manifest

        manifest = read_manifest(p)
        if manifest is None:
            raise GwinferError(f"{p} has no manifest.json: not a gwinfer catalogue")
        return manifest
    if not p.exists():
        raise GwinferError(f"{p} does not exist")
    if p.suffix == ".json":
        from gwinfer.provenance import read_json

        return read_json(p)
    from gwinfer.models.registry import describe_model

    return describe_model(p)


def cmd_info(args: argparse.Namespace) -> int:
    info = describe(args.path)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    elif info.get("kind") == "catalogue":
        from gwinfer.data.validate import summary

        print(summary(info))
    else:
        print(json.dumps(info, indent=2, default=str))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from gwinfer.data.validate import validate_catalogue

    report = validate_catalogue(args.path, progress=not args.quiet)
    for problem in report["problems"]:
        print(f"problem: {problem}")
    print(f"{'OK' if report['ok'] else 'FAILED'}: {report['checked']:,} waveforms checked in {args.path}")
    return 0 if report["ok"] else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from gwinfer.demo import run_demo

    run_demo(Path(args.out), workers=args.workers)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gwinfer", description="Deep-learning inference of binary black hole parameters from gravitational waves."
    )
    parser.add_argument("--version", action="version", version=f"gwinfer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="generate (or finish) a sharded waveform catalogue")
    p.add_argument("--config", required=True, help="catalogue YAML (configs/tiny.yaml, small.yaml, paper.yaml)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores; 1 per MPI rank)")
    p.add_argument("--mpi", action="store_true", help="split shards across MPI ranks (mpirun -n K gwinfer generate --mpi ...)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("info", help="print the provenance of a catalogue, model or result")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="machine-readable JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("validate", help="re-check every checksum and the grid properties of a catalogue")
    p.add_argument("path")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("demo", help="the main job on a small built-in default, writing a report")
    p.add_argument("--out", default="out/demo")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except GwinferError as err:
        print(f"gwinfer: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gwinfer: interrupted; finished work is kept, re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
