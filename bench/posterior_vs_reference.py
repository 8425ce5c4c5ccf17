"""Network posterior vs the reference sampler (bilby + dynesty) on the same injections, side by side.

For every reference result written by ``gwinfer reference --data SIM --injection I --out REF``:

* wall time: the reference run's ``sampling_time`` against the network's time for 10^4 samples of the same
  event (warm, median of 5 runs, embedding included) -> their ratio;
* JSD (nats, per 1-D marginal, KDE) between the network's samples and the reference posterior, before and
  after importance sampling the network's draws with the exact likelihood (DINGO-style), plus the sample
  efficiency, ESS and log evidence of the reweighting against dynesty's log Z, and the JSD between the
  two halves of the reference's own samples (``jsd_reference_halves``, in ``compare.json``): the
  sampling-noise floor of a JSD measured with that few draws (the reweighted set has only ESS of them);
* the relative-error table of the distillation paper's Table I (``--table`` parameters, default the
  masses, spins and distance the model infers): |median - dynesty median| / |dynesty median| per parameter,
  averaged over the injections, for each model before and after importance sampling
  (``gwinfer.evaluation.posterior.estimate_errors``; ``compare.json`` also holds the offsets in reference
  90 % widths and the width ratios, meaningful where a median is near 0, as for spins).

    python bench/posterior_vs_reference.py --model runs/gw5d/iaf/model.pt --data runs/gw5d/test.h5 \\
        --refs runs/gw5d/ref-0.json runs/gw5d/ref-1.json --n 50000 --out runs/gw5d/compare

Several ``--model`` files (e.g. a teacher and its student) are compared on the same references and
network draws' seeds. Writes ``compare.json`` and ``compare.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def time_sampling(model, x: np.ndarray, n: int = 10000, repeats: int = 5) -> float:
    """Median wall time (s) of ``model.sample(x, n)`` after one warm-up call."""
    xt = torch.from_numpy(x)
    model.sample(xt, n)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.sample(xt, n)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def compare_one(model, names, sim, ref_path: Path, n: int, seed: int) -> dict:
    from bilby.core.result import read_in_result

    from gwinfer.data.strain_dataset import injection_data
    from gwinfer.evaluation.comparison import estimate_errors, jsd_1d
    from gwinfer.evaluation.importance import importance_sample_estimator

    ref = read_in_result(str(ref_path))
    ref_seconds = getattr(ref.sampling_time, "total_seconds", lambda: float(ref.sampling_time))()
    g = ref.meta_data.get("gwinfer", {})
    idx, noise_seed = int(g["injection"]), int(g.get("noise_seed", 0))
    x, truth = injection_data(sim, idx, noise_seed)
    ref_post = {k: ref.posterior[k].to_numpy() for k in names}
    torch.manual_seed(seed)
    t_net = time_sampling(model, x)
    with torch.no_grad():
        theta = model.sample(torch.from_numpy(x), n).double().numpy()
    net = {k: theta[:, i] for i, k in enumerate(names)}
    t0 = time.perf_counter()
    torch.manual_seed(seed + 1)
    isr = importance_sample_estimator(model, x, sim.config, names, n=n, seed=seed, n_resample=20000)
    t_is = time.perf_counter() - t0
    rew = isr["samples"]  # 20,000 draws with replacement by weight
    return {
        "injection": idx,
        "noise_seed": noise_seed,
        "snr": float(sim.snr[idx]),
        "truth": {k: truth[k] for k in names},
        "reference_seconds": ref_seconds,
        "reference_log_evidence": float(ref.log_evidence),
        "reference_log_evidence_err": float(ref.log_evidence_err),
        "reference_samples": len(ref.posterior),
        "network_seconds_1e4": t_net,
        "speedup": ref_seconds / t_net,
        "jsd_before": jsd_1d(net, ref_post),
        "jsd_after": jsd_1d(rew, ref_post),
        "jsd_reference_halves": jsd_1d(
            {k: v[0::2] for k, v in ref_post.items()}, {k: v[1::2] for k, v in ref_post.items()}
        ),
        "errors_before": estimate_errors(net, ref_post),
        "errors_after": estimate_errors(rew, ref_post),
        "is_efficiency": isr["efficiency"],
        "is_ess": isr["ess"],
        "is_seconds": t_is,
        "is_log_evidence": isr["log_evidence"],
        "is_log_evidence_std": isr["log_evidence_std"],
    }


def markdown(rows: list[dict], names: list[str]) -> str:
    head = (
        "| injection | SNR | dynesty s | net 1e4 s | ratio | IS eff. | log Z IS - dynesty | "
        + " | ".join(f"JSD {k} before/after" for k in names)
        + " |"
    )
    sep = "|" + "---|" * (7 + len(names))
    lines = [head, sep]
    for r in rows:
        dz = r["is_log_evidence"] - r["reference_log_evidence"]
        jsd = " | ".join(f"{r['jsd_before'][k]:.4f} / {r['jsd_after'][k]:.4f}" for k in names)
        lines.append(
            f"| {r['injection']} | {r['snr']:.1f} | {r['reference_seconds']:.0f} | "
            f"{r['network_seconds_1e4']:.3f} | {r['speedup']:.0f} | {r['is_efficiency']:.3f} | "
            f"{dz:+.2f} +- {r['reference_log_evidence_err']:.2f} | {jsd} |"
        )
    return "\n".join(lines) + "\n"


TABLE_DEFAULT = ("mass_1", "mass_2", "chi_1", "chi_2", "luminosity_distance")


def table_one(results: dict[str, list[dict]], params: list[str]) -> str:
    """Relative error (%) of the median against dynesty's, mean over injections, per model and parameter."""
    lines = ["| model | " + " | ".join(params) + " |", "|---|" + "---:|" * len(params)]
    for label, rows in results.items():
        for when in ("before", "after"):
            vals = [100 * float(np.mean([r[f"errors_{when}"][k]["relative_error"] for r in rows])) for k in params]
            lines.append(f"| {label} ({when} IS) | " + " | ".join(f"{v:.2f} %" for v in vals) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    from gwinfer.data.simulate import read_simulation
    from gwinfer.models.builder import load_estimator
    from gwinfer.models.posterior.symmetry import symmetrised
    from gwinfer.provenance import provenance, write_json

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", required=True, help="one or more posterior model files")
    ap.add_argument("--data", required=True, help="the simulation file the reference runs used")
    ap.add_argument("--refs", nargs="+", required=True, help="bilby results of gwinfer reference")
    ap.add_argument("--n", type=int, default=50000, help="network samples per injection (before reweighting)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--raw", action="store_true", help="do not impose the phase symmetry (gwinfer.models.posterior.symmetry)"
    )
    ap.add_argument(
        "--table",
        default=None,
        help="comma-separated parameters of the relative-error table (default: those of "
        f"{','.join(TABLE_DEFAULT)} the model infers)",
    )
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sim = read_simulation(a.data)
    models = {}
    for path in a.model:
        model, meta = load_estimator(path)
        models[path] = (symmetrised(model, meta) if not a.raw else model, list(meta["names"]))
    names = next(iter(models.values()))[1]
    if any(n != names for _, n in models.values()):
        raise SystemExit("the models infer different parameters")
    params = a.table.split(",") if a.table else [k for k in TABLE_DEFAULT if k in names]
    missing = [k for k in params if k not in names]
    if missing:
        raise SystemExit(f"--table: {missing} are not inferred by the models ({names})")
    results: dict[str, list[dict]] = {}
    text = []
    for path, (model, _) in models.items():
        results[path] = rows = [compare_one(model, names, sim, Path(r), a.n, a.seed) for r in a.refs]
        text += [f"### {path}", "", markdown(rows, names)]
    text += ["### Relative error of the median against dynesty (mean over injections)", "", table_one(results, params)]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "compare.json",
        {
            "models": a.model,
            "data": a.data,
            "refs": a.refs,
            "n": a.n,
            "threads": a.threads,
            "results": results,
            "provenance": provenance("reference-comparison", vars(a), parents=[*a.model, a.data, *a.refs]),
        },
    )
    (out / "compare.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
