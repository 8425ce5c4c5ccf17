"""The training commands, all through the one run layer and all with ``--nproc`` (torchrun/DDP)::

    gwinfer train           --config configs/train-wavenet-small.yaml --out runs/wn [--nproc K]
    gwinfer train-posterior --config configs/train-gw5d-maf.yaml --out runs/gw5d/maf [--nproc K]
    gwinfer distill --teacher T --config configs/distill-hl-student.yaml --out runs/hl/student [--nproc K]

With ``--nproc K > 1`` the command relaunches itself under torchrun as
``python -m gwinfer.cli.train TASK ...`` on every rank (``python -m gwinfer.train --config C --out D``, the
documented torchrun entry point, is the ``train`` task).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gwinfer.cli.options import HelpFormatter
from gwinfer.errors import GwinferError

TASKS = {
    "train": "train a point estimator from an experiment YAML (data, model, train sections)",
    "train-posterior": "train a posterior estimator on a simulation file (data, model, train, init_from sections)",
    "distill": "distil a posterior model (teacher) into a smaller, faster student (data, student, distill, train)",
}


def run_task(
    task: str, config: str, out: str, resume: bool = True, teacher: str | None = None, settings: list[str] = ()
) -> Path:
    """Run training ``task`` in this process (one rank under torchrun); returns the path of ``model.pt``.

    ``settings``: ``section.key=value`` overrides of the config (``--set``)."""
    if task == "train":
        from gwinfer.training.point import train_point

        return train_point(config, out, resume=resume, settings=settings)
    if task == "train-posterior":
        from gwinfer.training.posterior import train_posterior

        return train_posterior(config, out, resume=resume, settings=settings)
    if task == "distill":
        from gwinfer.training.distill import distill

        return distill(teacher, config, out, resume=resume, settings=settings)
    raise GwinferError(f"unknown training task {task!r}; choose one of {sorted(TASKS)}")


def _task_argv(args: argparse.Namespace) -> list[str]:
    argv = [args.task, "--config", args.config, "--out", args.out]
    if getattr(args, "teacher", None):
        argv += ["--teacher", args.teacher]
    for item in args.set or []:
        argv += ["--set", item]
    return argv + (["--no-resume"] if args.no_resume else [])


def cmd_run(args: argparse.Namespace) -> int:
    if args.nproc < 1:
        raise GwinferError(f"--nproc {args.nproc} must be >= 1")
    if args.nproc > 1:
        from gwinfer.training.distributed import launch_torchrun

        return launch_torchrun(args.nproc, ["gwinfer.cli.train", *_task_argv(args)])
    path = run_task(
        args.task, args.config, args.out, resume=not args.no_resume, teacher=getattr(args, "teacher", None),
        settings=args.set or [],
    )  # fmt: skip
    print(f"{'student' if args.task == 'distill' else 'model'} written to {path}")
    return 0


def _add_run_arguments(p: argparse.ArgumentParser, task: str) -> None:
    if task == "distill":
        p.add_argument(
            "--teacher", required=True, help="teacher posterior model (train-posterior's): its folder or model.pt"
        )
    p.add_argument("--config", required=True, help="the run's sectioned YAML (configs/)")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, best.pt, log.csv, tb/, model.pt")
    p.add_argument("--no-resume", action="store_true", help="start over (an earlier run's files are moved aside)")
    p.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set train.lr=2e-3 --set data.limit_train=5000 (repeatable)",
    )  # fmt: skip


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``train-posterior`` and ``distill`` to ``subparsers``."""
    for task, text in TASKS.items():
        p = subparsers.add_parser(task, help=text)
        _add_run_arguments(p, task)
        p.add_argument(
            "--nproc",
            type=int,
            default=1,
            help="data-parallel processes (torchrun; gloo on CPU, nccl on GPU) (default: 1)",
        )
        p.set_defaults(func=cmd_run, task=task)


def build_task_parser(task: str = "train") -> argparse.ArgumentParser:
    """The parser of one training task as torchrun runs it (``python -m gwinfer.cli.train TASK ...``)."""
    ap = argparse.ArgumentParser(prog=f"gwinfer.cli.train {task}", formatter_class=HelpFormatter)
    _add_run_arguments(ap, task)
    return ap


def main(argv: list[str] | None = None) -> int:
    """The per-rank entry point torchrun launches: ``python -m gwinfer.cli.train [TASK] --config C --out D``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    task = argv.pop(0) if argv and argv[0] in TASKS else "train"
    args = build_task_parser(task).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run_task(
            task, args.config, args.out, resume=not args.no_resume, teacher=getattr(args, "teacher", None),
            settings=args.set,
        )  # fmt: skip
    except GwinferError as err:
        print(f"gwinfer: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gwinfer: interrupted; the checkpoint is kept, re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
