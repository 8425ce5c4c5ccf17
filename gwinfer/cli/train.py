"""``python -m gwinfer.train --config EXP.yaml --out DIR``: the entry point torchrun launches on every rank.

    torchrun --nproc_per_node=2 -m gwinfer.train --config configs/train-wavenet.yaml --out runs/wavenet
"""

from __future__ import annotations

import argparse
import logging
import sys

from gwinfer.errors import GwinferError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gwinfer.train")
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from gwinfer.experiment import run_experiment

    try:
        run_experiment(args.config, args.out, resume=not args.no_resume)
    except GwinferError as err:
        print(f"gwinfer: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gwinfer: interrupted; the checkpoint is kept, re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
