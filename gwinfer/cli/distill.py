"""``gwinfer distill``: knowledge distillation of a posterior model into a smaller student::

    gwinfer distill --teacher runs/hl/teacher/model.pt --config configs/distill-hl-student.yaml --out runs/hl/student

The handler only parses arguments and calls :func:`gwinfer.training.distill.distill` (imported inside it,
so ``gwinfer --help`` stays free of torch). Wired into the main parser by :func:`add_parsers`.
"""

from __future__ import annotations

import argparse


def cmd_distill(args: argparse.Namespace) -> int:
    from gwinfer.training.distill import distill

    out = distill(args.teacher, args.config, args.out, resume=not args.no_resume)
    print(f"student written to {out}")
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add ``distill`` to ``subparsers``."""
    p = subparsers.add_parser("distill", help="distil a posterior model (teacher) into a smaller, faster student")
    p.add_argument("--teacher", required=True, help="teacher posterior model file (train-posterior's model.pt)")
    p.add_argument("--config", required=True,
                   help="YAML with data/student/distill/train (configs/distill-hl-student.yaml)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, log.csv, model.pt (the student)")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.set_defaults(func=cmd_distill)
