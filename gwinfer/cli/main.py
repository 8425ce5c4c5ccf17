"""The ``gwinfer`` command: thin subcommands over library functions.

Every handler only parses arguments and calls the library; bad input surfaces as one line,
``gwinfer: error: <what is wrong and the accepted range>``, with exit status 2. Heavy imports (torch,
lalsimulation) happen inside the handlers so ``gwinfer --help`` stays fast.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import sys
from pathlib import Path

from gwinfer._version import __version__
from gwinfer.cli.info import describe
from gwinfer.cli.options import HelpFormatter, add_model, add_workers, resolve_shared
from gwinfer.errors import GwinferError

log = logging.getLogger("gwinfer")


def _catalogue_config(path: str):
    from gwinfer.config import from_dict, load_yaml
    from gwinfer.data.grid import CatalogueConfig

    return from_dict(CatalogueConfig, load_yaml(path), Path(path).name)


def cmd_generate(args: argparse.Namespace) -> int:
    from gwinfer.data.generate import generate_catalogue
    from gwinfer.data.validate import summary

    manifest = generate_catalogue(
        _catalogue_config(args.config), args.out, workers=args.workers, use_mpi=args.mpi, progress=not args.quiet
    )
    if not args.mpi or _mpi_rank() == 0:
        print(summary(manifest))
    return 0


def _mpi_rank() -> int:
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank()


def _summary_lines(info: dict) -> str:
    """A few readable lines for a model (``--json`` prints everything)."""
    keys = ("kind", "model_kind", "n_parameters", "parameters", "approximant", "approximants", "t_start", "t_end",
            "dt", "domain", "gwinfer_version", "training")  # fmt: skip
    return "\n".join(f"{k}: {info[k]}" for k in keys if info.get(k) is not None)


def cmd_info(args: argparse.Namespace) -> int:
    info = describe(args.path)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    elif info.get("kind") == "catalogue":
        from gwinfer.data.validate import summary

        print(summary(info))
    elif info.get("kind") in ("model", "posterior-model"):
        print(_summary_lines(info))
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


def cmd_predict(args: argparse.Namespace) -> int:
    if args.waveform:
        from gwinfer.evaluation.single import format_prediction, predict_waveform
        from gwinfer.provenance import write_json

        result = predict_waveform(args.model, args.waveform)
        print(format_prediction(result))
        if args.out:
            write_json(args.out, result)
            print(f"prediction written to {args.out}")
        return 0
    from gwinfer.evaluation.evaluate import predict_to_file

    if not args.data or not args.out:
        raise GwinferError(
            "give --data CATALOGUE and --out FILE (a catalogue split), or --waveform FILE (one waveform)"
        )
    path = predict_to_file(args.model, args.data, args.split, args.out, limit=args.limit, progress=not args.quiet)
    print(f"predictions written to {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from gwinfer.evaluation.evaluate import evaluate_model
    from gwinfer.evaluation.quantiles import PAPER_TABLE, format_table

    results = evaluate_model(
        args.model,
        args.data,
        args.split,
        json_path=args.json,
        report_dir=args.report,
        workers=args.workers,
        limit=args.limit,
        progress=not args.quiet,
    )
    print(format_table(results, reference=PAPER_TABLE))
    print(
        "fraction of overlaps below 0.97 / 0.90 / 0.85: "
        + " / ".join(f"{v:.2%}" for v in results["overlap_fraction_below"].values())
    )
    return 0


def cmd_robustness(args: argparse.Namespace) -> int:
    from gwinfer.evaluation.robustness import format_robustness, robustness_table, write_robustness

    result = robustness_table(
        args.model, args.data, n=args.n, split=args.split, seed=args.seed, jitter=args.jitter,
        workers=args.workers, progress=not args.quiet,
    )  # fmt: skip
    title = f"{args.model}: robustness"
    if args.out:
        write_robustness(result, args.out, title)
    print(format_robustness(result, title))
    return 0


def cmd_degeneracy(args: argparse.Namespace) -> int:
    from gwinfer.evaluation.degeneracy import degeneracy_maps
    from gwinfer.physics.timegrid import TimeGrid

    res = degeneracy_maps(
        args.q,
        args.s1,
        args.s2,
        args.out,
        backend=args.backend,
        n=args.n,
        workers=args.workers,
        grid=TimeGrid(args.t_start, args.t_end, args.dt),
        q_range=tuple(args.q_range),
        spin_range=tuple(args.spin_range),
        progress=not args.quiet,
    )
    for name, s in res["summary"].items():
        print(f"{name:8s} overlap >= 0.97 on {s['fraction_above_0.97']:.1%} of the slice (min {s['min']:.3f})")
    print(f"maps written to {args.out}/maps.png")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gwinfer.cli.demo import run_demo

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
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes computing waveforms (default: all usable cores; 1 per MPI rank)",
    )
    p.add_argument(
        "--mpi", action="store_true", help="split shards across MPI ranks (mpirun -n K gwinfer generate --mpi ...)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("info", help="what a file or folder gwinfer wrote is, with its provenance")
    p.add_argument(
        "path",
        help="catalogue folder, model (folder or file), simulation, bank, prediction, result, segment, PSD or table",
    )
    p.add_argument("--json", action="store_true", help="machine-readable JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("validate", help="re-check every checksum and the grid properties of a catalogue")
    p.add_argument("path")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("predict", help="predict (q, s1z, s2z) for a catalogue split or for one waveform file")
    add_model(p, "point model")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="catalogue folder (manifest or bare <split>/*.h5 shards)")
    src.add_argument(
        "--waveform",
        help="one h22 file: LVC NR HDF5 (amp_l2_m2/phase_l2_m2), text (t [M], Re, Im) or .npy (N, 3); any peak "
        "offset, step and constant phase",
    )
    p.add_argument("--split", default="test", help="catalogue split (with --data; default: test)")
    p.add_argument(
        "--out", default=None, help="HDF5 file of truth and predictions (--data) or JSON result (--waveform)"
    )
    p.add_argument("--limit", type=int, default=None, help="predict the first N waveforms only (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="error table, overlaps over the full window, figures and HTML report")
    add_model(p, "point model")
    p.add_argument("--data", required=True, help="catalogue folder")
    p.add_argument("--split", default="test", help="catalogue split (default: test)")
    p.add_argument("--json", default=None, help="results.json path")
    p.add_argument("--report", default=None, help="report folder (index.html + figures)")
    add_workers(p, "processes regenerating waveforms")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N waveforms only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "robustness",
        help="a point model on perturbed inputs and other waveform codes: clean, +-jitter M with random phase, "
        "noise at 1e-5/1e-4/1e-3 of the peak, one row per other code",
    )
    add_model(p, "point model")
    p.add_argument(
        "--data", required=True, nargs="+",
        help="test catalogues of the same binaries made by different codes (one must be the model's own code)",
    )  # fmt: skip
    p.add_argument("--split", default="test", help="catalogue split (default: test)")
    p.add_argument("--n", type=int, default=1000, help="test binaries per row (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the jitter, phases and noise (default: 0)")
    p.add_argument("--jitter", type=float, default=0.5, help="clock offsets uniform in +-JITTER M (default: 0.5)")
    add_workers(p, "processes regenerating waveforms")
    p.add_argument("--out", default=None, help="folder for robustness.json and robustness.md (default: print only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("degeneracy", help="overlap of one waveform with 2-D slices of the manifold")
    p.add_argument("--q", type=float, required=True, help="mass ratio m1/m2 >= 1 of the reference binary")
    p.add_argument("--s1", type=float, required=True, help="s1z of the reference binary")
    p.add_argument("--s2", type=float, required=True, help="s2z of the reference binary")
    p.add_argument("--out", required=True, help="folder for maps.png and maps.json")
    p.add_argument("--backend", default="IMRPhenomT", help="waveform code (default: IMRPhenomT)")
    p.add_argument(
        "--q-range", type=float, nargs=2, default=[1.0, 8.0], metavar=("LO", "HI"), help="q axis (default: 1 8)"
    )
    p.add_argument(
        "--spin-range",
        type=float,
        nargs=2,
        default=[-0.8, 0.8],
        metavar=("LO", "HI"),
        help="spin axes (default: -0.8 0.8)",
    )
    p.add_argument("--n", type=int, default=31, help="points per axis")
    p.add_argument("--t-start", type=float, default=-10000.0, help="window start, M (default: -10000)")
    p.add_argument("--t-end", type=float, default=130.0, help="window end, M (default: 130)")
    p.add_argument("--dt", type=float, default=2.0, help="time step, M (default: 2)")
    add_workers(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_degeneracy)

    from gwinfer.cli.posterior import add_parsers as add_posterior_parsers
    from gwinfer.cli.serving import add_parsers as add_serving_parsers
    from gwinfer.cli.train import add_parsers as add_train_parsers

    add_posterior_parsers(sub)  # simulate, sample, pp, reference, analyze, psd
    add_train_parsers(sub)  # train, train-posterior, distill
    add_serving_parsers(sub)  # export, serve, promote

    p = sub.add_parser("demo", help="the main job on a small built-in default, writing a report")
    p.add_argument(
        "--out", default="out/demo", help="folder of the demo's catalogue, run and report (default: out/demo)"
    )
    add_workers(p)
    p.set_defaults(func=cmd_demo)
    for command in sub.choices.values():
        command.formatter_class = HelpFormatter
    return parser


#: mallopt parameters of glibc (malloc.h): M_TRIM_THRESHOLD and M_MMAP_MAX.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def process_defaults() -> None:
    """The thread and allocator settings gwinfer runs fastest with on CPUs, unless the caller set them.

    One intra-op thread per process (OMP_NUM_THREADS=1; several processes share the cores: measured in
    bench/bench_wavenet.py and bench/bench_ddp.py, and ``analyze --n 20000`` takes 7-8 s instead of 12-14 s)
    and glibc's malloc kept from returning memory to the system between training steps (the Makefile's
    MALLOC_MMAP_MAX_=0 / MALLOC_TRIM_THRESHOLD_, ~3x faster small-tensor training, bench/bench_malloc.py),
    applied with mallopt. Called before torch is imported.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    if "MALLOC_MMAP_MAX_" not in os.environ:
        libc.mallopt(_M_MMAP_MAX, 0)
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)


#: The paths each command writes (argument dest -> "file" | "dir"), checked before any work starts.
OUTPUTS: dict[str, dict[str, str]] = {
    "generate": {"out": "dir"}, "predict": {"out": "file"}, "evaluate": {"json": "file", "report": "dir"},
    "robustness": {"out": "dir"}, "degeneracy": {"out": "dir"}, "demo": {"out": "dir"},
    "train": {"out": "dir"}, "train-posterior": {"out": "dir"}, "distill": {"out": "dir"},
    "simulate": {"out": "file"}, "fd-bank": {"out": "file"}, "sample": {"out": "file"}, "pp": {"out": "dir"}, "reference": {"out": "file"},
    "analyze": {"out": "file"}, "compare": {"out": "dir"}, "psd": {"out": "file"}, "prepare": {"out": "file"}, "export": {"repo": "dir"}, "stream": {"out": "file"},
}  # fmt: skip


def check_outputs(args: argparse.Namespace) -> None:
    """One-line errors for output paths that cannot be written, before the command does any work."""
    from gwinfer.provenance import check_output

    for dest, kind in OUTPUTS.get(args.command, {}).items():
        value = getattr(args, dest, None)
        if value:
            check_output(value, folder=kind == "dir")


def main(argv: list[str] | None = None) -> int:
    process_defaults()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        check_outputs(args)
        resolve_shared(args)
        return args.func(args)
    except GwinferError as err:
        print(f"gwinfer: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gwinfer: interrupted; finished work is kept, re-run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `gwinfer info --json DIR | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
