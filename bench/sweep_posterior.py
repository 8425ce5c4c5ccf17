"""Configuration sweep of posterior estimators: validation NLL, parameters, latency and peak memory per
configuration, in one table (the distillation issue's teacher/student sweep; not run by the tests).

    OMP_NUM_THREADS=1 python bench/sweep_posterior.py --sweep configs/sweep-hl.yaml --out runs/hl/sweep --jobs 2

The sweep file names a base posterior experiment (``gwinfer train-posterior`` YAML), overrides applied to
every run (``common``, e.g. fewer rows and epochs) and the ``configurations``: a name -> overrides mapping,
each deep-merged into the base (lists are replaced, not merged)::

    base: configs/train-hl-teacher.yaml
    common: {data: {limit: 24000}, train: {epochs: 2}}
    configurations:
      r3-w64-t3: {model: {config: {embedding: {resnet: {channels: [16, 32, 64]}}, transforms: 3}}}

Every configuration is trained with the shared trainer into ``--out/NAME`` (``--jobs`` at a time, one
torch thread each; re-running resumes unfinished runs from their checkpoints and leaves finished ones as
they are), then measured one at a time (nothing else running in this script): parameters; peak memory
added and single-event latency (embedding + ``--single-samples`` draws) in a fresh subprocess
(``bench_distill.measure``); training wall time and samples/s from the run's log; the mean physical
negative log posterior density of the true parameters on up to ``--n-val`` validation rows (the same rows
and noise for every configuration when they share the data section). Equal EPOCHS, not equal minutes,
make the NLL column reproducible on a shared machine; the wall-time column shows what each configuration
costs. Writes ``sweep.json`` and ``sweep.md``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_distill import add_cost_arguments, evaluation_rows, mean_se, measure, negative_log_prob  # noqa: E402


def experiments(sweep_path: str) -> dict[str, dict]:
    """name -> full posterior experiment mapping of the sweep file."""
    from gwinfer.config import deep_merge, load_yaml

    sweep = load_yaml(sweep_path)
    if (
        not isinstance(sweep, dict)
        or set(sweep) - {"base", "common", "configurations"}
        or not sweep.get("base")
        or not isinstance(sweep.get("configurations"), dict)
        or not sweep["configurations"]
    ):
        raise SystemExit(
            f"{sweep_path}: a sweep file has base (a YAML path), optional common and a non-empty configurations mapping"
        )
    base = deep_merge(load_yaml(sweep["base"]), sweep.get("common"))
    return {str(name): deep_merge(base, over) for name, over in sweep["configurations"].items()}


def train_one(name: str, experiment: dict, out: Path) -> str:
    """Train one configuration in a child process (``train_posterior`` resumes from the run's checkpoint, a
    finished run stays as it is); return its name."""
    run = out / name
    run.mkdir(parents=True, exist_ok=True)
    (run / "experiment.json").write_text(json.dumps(experiment, indent=2))
    code = (
        "import json, sys; from gwinfer.training.posterior import train_posterior; "
        "train_posterior(json.load(open(sys.argv[1])), sys.argv[2])"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(run / "train.log", "w") as log:
        res = subprocess.run(
            [sys.executable, "-c", code, str(run / "experiment.json"), str(run)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    if res.returncode != 0:
        raise SystemExit(f"training {name} failed (see {run / 'train.log'})")
    return name


def training_cost(run: Path) -> dict:
    rows = list(csv.DictReader(open(run / "log.csv")))
    seconds = sum(float(r["epoch_seconds"]) for r in rows)
    return {
        "epochs": len(rows),
        "train_seconds": seconds,
        "samples_per_second": float(rows[-1]["samples_per_second"]),
        "val_loss_standardised": min(float(r["val_loss"]) for r in rows),
    }


@functools.lru_cache(maxsize=1)
def _simulation(path: str):
    from gwinfer.data.simulate import read_simulation

    return read_simulation(path)  # read once for all configurations sharing the file


def validation_nll(model, meta: dict, n_val: int) -> np.ndarray:
    """-log q(theta_true | x) of the first ``n_val`` validation rows (physical units), one per row."""
    from gwinfer.data.strain_dataset import StrainDataset

    sim_path = meta["experiment"]["data"]["simulation"]
    sim = _simulation(sim_path)
    rows, seed, _ = evaluation_rows(sim, meta, sim_path, 0)
    return negative_log_prob(model, StrainDataset(sim, rows[:n_val], seed=seed), n_val)


def describe(spec: dict) -> dict:
    cfg = spec["config"]
    emb = cfg["embedding"]
    return {
        "kind": spec["kind"],
        "embedding": emb["kind"],
        "resnet_blocks": len(emb["resnet"]["channels"]),
        "resnet_channels": list(emb["resnet"]["channels"]),
        "context_dim": emb["context_dim"],
        "transforms": cfg.get("transforms"),
        "flow_hidden": list(cfg.get("hidden") or []),
    }


def markdown(rows: list[dict], settings: dict) -> str:
    head = [
        "| configuration | ResNet blocks (channels) | flow transforms x hidden | parameters | val NLL (physical) "
        "| minus the first (paired) | "
        f"single event, {settings['single_samples']} samples [ms] | peak memory added [MiB] | training "
        "[min] (samples/s) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        d = r["spec"]
        head.append(
            f"| {r['name']} | {d['resnet_blocks']} ({', '.join(map(str, d['resnet_channels']))}) | "
            f"{d['transforms']} x {d['flow_hidden']} | {r['parameters']:,} | {r['nll']:.3f} ± "
            f"{r['nll_se']:.3f} | {r['nll_minus_first']:+.3f} ± {r['nll_minus_first_se']:.3f} | "
            f"{r['single_median_ms']:.1f} | {r['memory_mib']:.0f} | "
            f"{r['train_seconds'] / 60:.1f} ({r['samples_per_second']:.0f}) |"
        )
    return "\n".join(head) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", required=True, help="sweep YAML (module docstring)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=1, help="configurations trained at the same time")
    ap.add_argument("--n-val", type=int, default=1000)
    add_cost_arguments(ap, repeats=10, warmup=2)
    args = ap.parse_args(argv)
    if args.jobs < 1:
        raise SystemExit(f"--jobs {args.jobs} must be >= 1")

    import torch

    from gwinfer.models.builder import load_estimator
    from gwinfer.provenance import provenance, write_json

    exps = experiments(args.sweep)
    out = Path(args.out)
    with ThreadPoolExecutor(args.jobs) as pool:
        for name in pool.map(lambda kv: train_one(kv[0], kv[1], out), exps.items()):
            print(f"trained {name}", flush=True)
    torch.set_num_threads(args.threads)
    rows, first = [], None
    for name in exps:  # costs first: measure's child must not start from a parent holding a simulation
        path = out / name / "model.pt"
        model, _ = load_estimator(path)
        rows.append(
            {
                "name": name,
                "spec": describe(model.spec()),
                "parameters": sum(p.numel() for p in model.parameters()),
                **training_cost(out / name),
                **measure(str(path), model.x_shape, args),
            }
        )
        print(f"measured the cost of {name}", flush=True)
    for row in rows:
        model, meta = load_estimator(out / row["name"] / "model.pt")
        nll = validation_nll(model.eval(), meta, args.n_val)
        first = (nll, meta["experiment"]["data"]) if first is None else first
        row["nll"], row["nll_se"] = mean_se(nll)
        same = meta["experiment"]["data"] == first[1]  # same rows and noise: a paired, much tighter difference
        row["nll_minus_first"], row["nll_minus_first_se"] = mean_se(nll - first[0]) if same else (np.nan, np.nan)
    settings = {
        k: getattr(args, k) for k in ("single_samples", "batch", "batch_samples", "repeats", "threads", "n_val")
    }
    record = provenance("configuration-sweep", vars(args), parents=[args.sweep] + [out / n / "model.pt" for n in exps])
    write_json(
        out / "sweep.json",
        {"sweep": args.sweep, "settings": settings, "experiments": exps, "rows": rows, "provenance": record},
    )
    table = markdown(rows, settings)
    (out / "sweep.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
