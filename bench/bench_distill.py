"""Teacher vs distilled student, side by side (not run by the tests).

    OMP_NUM_THREADS=1 python bench/bench_distill.py --teacher runs/hl/teacher/model.pt \\
        --student runs/hl/student/model.pt [--data runs/hl/sim.h5 --n-events 200] [--json res.json]

Per model (cost):

* parameters: number of weights (and their float32 size);
* peak memory: each model is measured in a FRESH Python subprocess. The child imports torch and gwinfer,
  builds its inputs and runs a small warm-up op, reads the process's resident-set high-water mark
  (``VmHWM``, KiB; :func:`_rss_kib`), then loads the model and runs one
  single-event and one batch sampling call and reads it again. The delta is what the model added on top
  of the interpreter: weights plus the largest set of live activations plus allocator caches. A fresh
  process is needed because the high-water mark never goes down (a second model measured in the same
  process would hide below the first one's peak); tracemalloc is not used because it does not see
  torch's C++ allocations;
* single-event latency: ``model.sample(x, --single-samples)`` for one observation (embedding + 10^4
  samples by default), after ``--warmup`` calls, median (and p90) of ``--repeats`` calls;
* batch throughput: events/s of ``model.sample(x, --batch-samples)`` on a batch of ``--batch`` observations.

Timings run in the same child right after the memory reading (one model at a time, so the two never
compete for the cores), on whitened-noise inputs of the model's shape: sampling cost does not depend on
the data's content. ``--threads`` sets torch's intra-op threads of the child.

With ``--data SIM.h5`` (quality, in this process): the rows are the student's VALIDATION rows when SIM.h5 is
the simulation named in the student's metadata (split and noise seed as in training; make the teacher's
data section the same so neither model trained on them), else every row of the file (a separate test file)
with noise seed ``--noise-seed``. On the first ``--n-events`` rows: the per-parameter Jensen-Shannon
divergence (``gwinfer.evaluation.posterior.jsd_1d``, KDE, nats; log 2 = 0.693 is the maximum) between
``--n-samples`` teacher and student draws, median and max over events. On up to ``--n-val`` rows: the
mean physical negative log posterior density -log q(theta_true | x) of each model (lower is better) and
the paired difference student - teacher with its standard error.

Prints a markdown table; ``--json`` writes every number.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _rss_kib() -> int:
    """Resident-set high-water mark of this process [KiB]: ``VmHWM`` of /proc/self/status (Linux), else
    ``ru_maxrss``. VmHWM belongs to the process's address space, which ``exec`` replaces, whereas Linux
    carries ``ru_maxrss`` over from the parent at fork: a child started by a parent holding a large
    simulation file would otherwise report the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _timings(fn, repeats: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def child(args: argparse.Namespace) -> dict:
    """Memory and timings of one model (runs in its own process)."""
    import torch

    from gwinfer.models.builder import load_estimator

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = tuple(json.loads(args.x_shape))
    x1 = torch.randn(*shape)
    xb = torch.randn(args.batch, *shape)
    (torch.randn(64, 64) @ torch.randn(64, 64)).sum().item()  # torch's own first-use allocations
    base = _rss_kib()
    model, _ = load_estimator(args.child)
    model.eval()
    with torch.inference_mode():
        model.sample(x1, args.single_samples)
        model.sample(xb, args.batch_samples)
    peak = _rss_kib()
    with torch.inference_mode():
        single = _timings(lambda: model.sample(x1, args.single_samples), args.repeats, args.warmup)
        batch = _timings(lambda: model.sample(xb, args.batch_samples), max(3, args.repeats // 4), 1)
    return {
        "rss_baseline_mib": base / 1024,
        "rss_peak_mib": peak / 1024,
        "memory_mib": (peak - base) / 1024,
        "single_median_ms": 1e3 * float(np.median(single)),
        "single_p90_ms": 1e3 * float(np.percentile(single, 90)),
        "batch_median_s": float(np.median(batch)),
        "batch_events_per_s": args.batch / float(np.median(batch)),
    }


def measure(path: str, x_shape: tuple[int, ...], args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        path,
        "--x-shape",
        json.dumps(list(x_shape)),
        "--threads",
        str(args.threads),
        "--single-samples",
        str(args.single_samples),
        "--batch",
        str(args.batch),
        "--batch-samples",
        str(args.batch_samples),
        "--repeats",
        str(args.repeats),
        "--warmup",
        str(args.warmup),
        "--teacher",
        "-",
        "--student",
        "-",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise SystemExit(f"measuring {path} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def evaluation_rows(sim, meta: dict, sim_path: str, noise_seed: int) -> tuple[np.ndarray, int, str]:
    """(rows, noise seed, description): the validation rows of the model's training split when ``sim_path`` is
    the simulation its metadata names (with the validation noise), else every row with ``noise_seed``."""
    from gwinfer.data.strain_dataset import split_indices

    data = (meta.get("experiment") or {}).get("data") or {}
    same = data.get("simulation") and Path(data["simulation"]).resolve() == Path(sim_path).resolve()
    if same:
        n = len(sim) if data.get("limit") is None else min(len(sim), data["limit"])
        _, val = split_indices(n, data["val_fraction"], data["split_seed"])
        return val, int(data["noise_seed"]) + 1, "validation rows of the student's training split"
    return np.arange(len(sim)), noise_seed, "all rows of the file"


def negative_log_prob(model, data, n: int, chunk: int = 256) -> np.ndarray:
    """-log q(theta | x) (physical units, float64) of the first ``n`` items of the dataset ``data``."""
    import torch

    n = min(n, len(data))
    out = []
    with torch.inference_mode():
        for start in range(0, n, chunk):
            theta, x = map(torch.stack, zip(*(data[i] for i in range(start, min(n, start + chunk)))))
            out.append(-model.log_prob(theta, x).double())
    return torch.cat(out).numpy()


def mean_se(v: np.ndarray) -> tuple[float, float]:
    """Mean and its standard error."""
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))


def add_cost_arguments(ap: argparse.ArgumentParser, repeats: int, warmup: int) -> None:
    """The options :func:`measure` reads (``args.single_samples`` ... ``args.threads``)."""
    ap.add_argument("--single-samples", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batch-samples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--warmup", type=int, default=warmup)
    ap.add_argument("--threads", type=int, default=1)


def quality(teacher, student, names: list[str], args: argparse.Namespace, meta: dict) -> dict:
    import torch

    from gwinfer.data.simulate import read_simulation
    from gwinfer.data.strain_dataset import StrainDataset
    from gwinfer.evaluation.comparison import jsd_1d

    sim = read_simulation(args.data)
    if list(sim.names) != list(names):
        raise SystemExit(f"{args.data} holds parameters {list(sim.names)}; the models infer {names}")
    rows, seed, what = evaluation_rows(sim, meta, args.data, args.noise_seed)
    data = StrainDataset(sim, rows, seed=seed)
    torch.manual_seed(args.seed)
    n_events = min(args.n_events, len(data))
    jsd = {k: [] for k in names}
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, n_events, 16):
            xb = torch.stack([data[i][1] for i in range(start, min(n_events, start + 16))])
            a = teacher.sample(xb, args.n_samples).double().numpy()
            b = student.sample(xb, args.n_samples).double().numpy()
            for e in range(a.shape[0]):
                for j, k in enumerate(names):
                    jsd[k].append(float(jsd_1d(a[e, :, j], b[e, :, j])))
    nt, ns = (negative_log_prob(m, data, args.n_val) for m in (teacher, student))
    diff = ns - nt
    return {
        "rows": what,
        "noise_seed": seed,
        "n_events": n_events,
        "n_samples": args.n_samples,
        "n_val": int(nt.size),
        "jsd_nats": {k: {"median": float(np.median(v)), "max": float(np.max(v))} for k, v in jsd.items()},
        "nll": dict(
            zip(
                ("teacher", "teacher_se", "student", "student_se", "student_minus_teacher", "student_minus_teacher_se"),
                (*mean_se(nt), *mean_se(ns), *mean_se(diff)),
            )
        ),
        "seconds": time.perf_counter() - t0,
    }


def markdown(res: dict) -> str:
    t, s = res["teacher"], res["student"]
    lines = ["| | teacher | student | student / teacher |", "|---|---:|---:|---:|"]

    def row(label: str, a: float, b: float, fmt: str) -> None:
        lines.append(f"| {label} | {a:{fmt}} | {b:{fmt}} | {b / a:.3g} |")

    row("parameters", t["parameters"], s["parameters"], ",d")
    row("weights [MiB]", t["weights_mib"], s["weights_mib"], ".2f")
    row("peak memory added [MiB]", t["memory_mib"], s["memory_mib"], ".1f")
    row(
        f"single event, {res['settings']['single_samples']} samples: median [ms]",
        t["single_median_ms"],
        s["single_median_ms"],
        ".1f",
    )
    row("single event: p90 [ms]", t["single_p90_ms"], s["single_p90_ms"], ".1f")
    row(
        f"batch {res['settings']['batch']} x {res['settings']['batch_samples']} samples [events/s]",
        t["batch_events_per_s"],
        s["batch_events_per_s"],
        ".1f",
    )
    q = res.get("quality")
    if q:
        nll = q["nll"]
        lines.append(
            f"| validation NLL (physical, {q['n_val']} rows) | {nll['teacher']:.3f} ± "
            f"{nll['teacher_se']:.3f} | {nll['student']:.3f} ± {nll['student_se']:.3f} | "
            f"Δ = {nll['student_minus_teacher']:+.3f} ± {nll['student_minus_teacher_se']:.3f} |"
        )
        lines += [
            "",
            f"JSD(teacher, student) per parameter over {q['n_events']} events ({q['rows']}), "
            f"{q['n_samples']} samples each, nats:",
            "",
            "| parameter | median | max |",
            "|---|---:|---:|",
        ]
        lines += [f"| {k} | {v['median']:.4f} | {v['max']:.4f} |" for k, v in q["jsd_nats"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--student", required=True)
    ap.add_argument("--data", default=None, help="simulation HDF5 file for JSD and validation NLL")
    ap.add_argument("--n-events", type=int, default=200)
    ap.add_argument("--n-samples", type=int, default=2000, help="draws per event and model for the JSD")
    ap.add_argument("--n-val", type=int, default=2000, help="rows for the validation NLL")
    ap.add_argument("--noise-seed", type=int, default=1, help="noise seed when --data is not the training file")
    add_cost_arguments(ap, repeats=20, warmup=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write every number to this JSON file")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--x-shape", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0

    import torch

    from gwinfer.models.builder import load_estimator

    torch.set_num_threads(args.threads)
    teacher, tmeta = load_estimator(args.teacher)
    student, smeta = load_estimator(args.student)
    if teacher.x_shape != student.x_shape or teacher.theta_dim != student.theta_dim:
        raise SystemExit("teacher and student take different inputs or infer different numbers of parameters")
    settings = {
        k: getattr(args, k) for k in ("single_samples", "batch", "batch_samples", "repeats", "warmup", "threads")
    }
    res: dict = {"settings": settings, "teacher_path": args.teacher, "student_path": args.student}
    for name, model, path in (("teacher", teacher, args.teacher), ("student", student, args.student)):
        n = sum(p.numel() for p in model.parameters())
        res[name] = {
            "kind": model.kind,
            "parameters": n,
            "weights_mib": 4 * n / 2**20,
            **measure(path, model.x_shape, args),
        }
    if args.data:
        names = smeta.get("names") or tmeta.get("names") or [f"theta_{i}" for i in range(student.theta_dim)]
        res["quality"] = quality(teacher, student, list(names), args, smeta)
    print(markdown(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
        print(f"\nwritten to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
