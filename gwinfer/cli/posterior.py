"""Subcommands of the posterior pipeline, added to the ``gwinfer`` parser by :func:`add_parsers`::

    gwinfer simulate --config configs/sim-gw5d.yaml --out runs/gw5d/sim.h5 [--workers 2] [--n N --seed S]
    gwinfer sample --model runs/gw5d/maf (--strain X.npy | --data SIM.h5 --injection 3) --n-samples 50000 --out res
    gwinfer pp --model M --data SIM.h5 --n-injections 1000 --n-samples 5000 --out DIR
    gwinfer reference --data SIM.h5 --injection 3 --out ref --nlive 500
    gwinfer psd --strain H-H1_...hdf5 --gps 1126259462.44 --out configs/psd/GW150914-H1.txt
    gwinfer analyze --model M --h1 H1.hdf5 --l1 L1.hdf5 --gps 1126259462.44 --out gw150914

Handlers only parse arguments and call library functions (heavy imports inside the handlers).
``--out`` of ``sample``/``reference`` is a bilby result file (``.json``, ``.hdf5``; ``.json`` added when
there is no such extension) with a ``<stem>_corner.png`` beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from gwinfer.cli.options import add_model, add_workers
from gwinfer.errors import GwinferError


def cmd_simulate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from gwinfer.data.simulate import load_simulation_config, simulate_signals

    config = load_simulation_config(args.config)
    if args.n is not None:
        config = replace(config, n=args.n)
    if args.seed is not None:
        config = replace(config, seed=args.seed)
    path = simulate_signals(config, args.out, workers=args.workers, progress=not args.quiet)
    print(f"{config.n} signals written to {path}")
    return 0


def cmd_fd_bank(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from gwinfer.data.fd_bank import load_bank_config, make_bank

    config = load_bank_config(args.config)
    if args.n is not None:
        config = replace(config, n=args.n)
    if args.seed is not None:
        config = replace(config, seed=args.seed)
    path = make_bank(config, args.out, workers=args.workers, progress=not args.quiet)
    print(f"{config.n} waveforms and their noise-curve family written to {path}")
    return 0


def _read_strain(path: str):
    """float32 (n_det, n_samples) whitened strain from .npy or whitespace text; one line for anything else."""
    p = Path(path)
    if not p.is_file():
        raise GwinferError(f"strain file {p} does not exist")
    try:
        x = np.load(p, allow_pickle=False) if p.suffix == ".npy" else np.loadtxt(p, ndmin=2)
        x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    except (ValueError, OSError, TypeError) as err:
        first = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise GwinferError(f"strain file {p} is not a numeric array (.npy or whitespace text): {first}") from None
    if x.size == 0:
        raise GwinferError(f"strain file {p} holds no samples")
    return x


def _segment_start(path: str | None) -> float | None:
    """The GPS start (s) recorded by ``gwinfer prepare`` beside a strain file, if any."""
    if path is None or not Path(path).with_suffix(".json").is_file():
        return None
    rec = json.loads(Path(path).with_suffix(".json").read_text())
    return float(rec["segment_start"]) if rec.get("kind") == "whitened-segment" else None


def cmd_sample(args: argparse.Namespace) -> int:
    from gwinfer.data.strain_dataset import simulation_config_of
    from gwinfer.evaluation.posterior import make_result, sample_in_prior, save_result
    from gwinfer.evaluation.prior_support import model_log_prior
    from gwinfer.evaluation.records import likelihood_record, simulation_record, strain_record
    from gwinfer.models import load_estimator, symmetrised
    from gwinfer.provenance import provenance

    model, meta = load_estimator(args.model)
    model = symmetrised(model, meta)  # exact phase -> phase + pi symmetry (gwinfer.models.posterior.symmetry)
    names = meta.get("names")
    injection, source = None, {"strain": args.strain}
    config = simulation_config_of(meta) if "simulation" in meta else None
    if args.strain is not None:
        x = _read_strain(args.strain)
        interferometers = strain_record(args.strain, config)
    else:
        from gwinfer.data.simulate import read_simulation
        from gwinfer.data.strain_dataset import injection_data

        sim = read_simulation(args.data)
        if names is not None and list(sim.names) != list(names):
            raise GwinferError(f"{args.data} holds parameters {list(sim.names)}; the model infers {names}")
        x, injection = injection_data(sim, args.injection, args.noise_seed)
        source = {"simulation": args.data, "injection": args.injection, "noise_seed": args.noise_seed}
        interferometers = simulation_record(args.data, sim.config, args.injection, args.noise_seed)
    if tuple(x.shape) != tuple(model.x_shape):
        raise GwinferError(f"strain has shape {tuple(x.shape)}; the model expects {tuple(model.x_shape)}")
    log_prior = model_log_prior(meta, names)  # draws outside the training prior are replaced
    t0 = time.perf_counter()
    samples, acceptance = sample_in_prior(model, x, args.n, list(names or []) or None, log_prior, seed=args.seed)
    seconds = time.perf_counter() - t0
    seg0 = _segment_start(args.strain)
    if seg0 is not None and "geocent_time" in samples:  # seconds from the segment start -> GPS seconds
        samples["geocent_time"] = samples["geocent_time"] + seg0
        source["segment_start"] = seg0
    meta_data = {
        "gwinfer": {
            "model": str(args.model),
            "data": source,
            "n": args.n,
            "seed": args.seed,
            "prior_acceptance": acceptance,
            "sampling_seconds": seconds,
            "simulation": json.loads(config.to_json()) if config is not None else None,
            "provenance": json.dumps(
                provenance("posterior-samples", vars(args) | {"func": None}, parents=[args.model])
            ),
        },
        "likelihood": likelihood_record(config, interferometers, start_time=seg0),
    }
    result = make_result(
        samples,
        label=Path(args.out).stem,
        injection_parameters=injection,
        meta_data=meta_data,
        sampling_time=seconds,
        priors=_model_prior(meta, seg0),
    )
    paths = save_result(result, args.out, corner=not args.no_corner)
    print(f"{args.n} samples in {seconds:.2f} s written to {paths['result']}")
    if args.importance_sample:
        _importance_sample(args, model, meta, x, injection, meta_data)
    return 0


def _importance_sample(args: argparse.Namespace, model, meta: dict, x, injection, meta_data: dict) -> None:
    """Reweight fresh draws of ``model`` with the exact likelihood; write ``<stem>_reweighted`` beside ``--out``."""
    from gwinfer.data.strain_dataset import simulation_config_of
    from gwinfer.evaluation.importance import importance_sample_estimator
    from gwinfer.evaluation.posterior import make_result, result_paths, save_result
    from gwinfer.evaluation.reference import noise_log_likelihood

    config = simulation_config_of(meta)
    names = list(meta.get("names") or config.parameters)
    fixed = None
    missing = [k for k in config.load_prior().keys() if k not in names]
    if missing:  # the likelihood needs every sampled key: the unsearched ones must be known (injections)
        if injection is None:
            raise GwinferError(
                f"--importance-sample needs values for {missing} (not inferred by the model); use it with --injection"
            )
        fixed = {k: injection[k] for k in missing if k in injection}
    t0 = time.perf_counter()
    isr = importance_sample_estimator(model, x, config, names, n=args.n, fixed=fixed, n_resample=args.n)
    seconds = time.perf_counter() - t0
    summary = {k: isr[k] for k in ("ess", "efficiency", "log_evidence", "log_evidence_std", "n")}
    meta_is = {**meta_data, "gwinfer": {**meta_data["gwinfer"], "importance_sampling": summary | {"seconds": seconds}}}
    path, _ = result_paths(args.out)
    out = path.with_name(path.stem + "_reweighted" + path.suffix)
    result = make_result(
        isr["samples"],
        label=out.stem,
        search_parameter_keys=names,
        injection_parameters=injection,
        meta_data=meta_is,
        sampling_time=seconds,
        priors=_model_prior(meta),
        log_evidence=isr["log_evidence"],
        log_evidence_err=isr["log_evidence_std"],
        log_noise_evidence=noise_log_likelihood(x),
    )
    save_result(result, out, corner=not args.no_corner)
    print(
        f"importance sampling: efficiency {isr['efficiency']:.4f}, ESS {isr['ess']:.0f} of {args.n}, "
        f"log Z = {isr['log_evidence']:.3f} +- {isr['log_evidence_std']:.3f}, "
        f"log BF (signal vs noise) = {isr['log_evidence'] - noise_log_likelihood(x):.3f} ({seconds:.1f} s); "
        f"reweighted posterior ({args.n} draws by weight) written to {out}"
    )


def _model_prior(meta: dict, segment_start: float | None = None):
    """The prior of the simulation a model was trained on (None if unknown or its file is gone); with the
    GPS ``segment_start`` (s) of a prepared segment, its geocent_time in GPS s as the samples are."""
    from gwinfer.data.strain_dataset import simulation_config_of
    from gwinfer.evaluation.analyze import gps_prior

    try:
        prior = simulation_config_of(meta).load_prior()
    except GwinferError:
        return None
    return gps_prior(prior, segment_start) if segment_start is not None else prior


def cmd_pp(args: argparse.Namespace) -> int:
    from gwinfer.evaluation.pp import pp_test
    from gwinfer.evaluation.prior_support import model_log_prior
    from gwinfer.models import load_estimator, symmetrised

    model, meta = load_estimator(args.model)
    model = symmetrised(model, meta)  # exact phase -> phase + pi symmetry (gwinfer.models.posterior.symmetry)
    log_prior = model_log_prior(meta, meta.get("names"))  # draws outside the prior are replaced, as in sample
    res = pp_test(
        model,
        args.data,
        args.n_injections,
        args.n_samples,
        seed=args.seed,
        names=meta.get("names"),
        out_dir=args.out,
        progress=not args.quiet,
        log_prior=log_prior,
    )
    for k, p in res["ks_pvalues"].items():
        print(f"{k:22s} KS p-value {p:.4f}")
    print(
        f"combined (Fisher) p-value {res['combined_pvalue']:.4g}; {res['in_prior_fraction']:.1%} of the draws inside "
        f"the prior (the others replaced); {res['seconds']:.1f} s; plot {res['plot']}"
    )
    return 0


def cmd_reference(args: argparse.Namespace) -> int:
    from gwinfer.data.simulate import read_simulation
    from gwinfer.data.strain_dataset import injection_data
    from gwinfer.evaluation.posterior import save_result
    from gwinfer.evaluation.records import likelihood_record, simulation_record
    from gwinfer.evaluation.reference import reference_posterior

    sim = read_simulation(args.data)
    x, params = injection_data(sim, args.injection, args.noise_seed)
    search = [s for s in args.search.split(",") if s] if args.search else None
    kwargs = {"sample": args.sample} if args.sample else {}
    meta = {
        "gwinfer": {"simulation": args.data, "injection": args.injection, "noise_seed": args.noise_seed},
        "likelihood": likelihood_record(
            sim.config, simulation_record(args.data, sim.config, args.injection, args.noise_seed)
        ),
    }
    result = reference_posterior(
        x,
        sim.config,
        injection_parameters=params,
        search=search,
        nlive=args.nlive,
        seed=args.seed,
        label=Path(args.out).stem,
        sampler_kwargs=kwargs,
        meta_data=meta,
    )
    paths = save_result(result, args.out, corner=not args.no_corner)
    print(
        f"{len(result.posterior)} samples, log Z = {result.log_evidence:.3f} +- {result.log_evidence_err:.3f}, "
        f"{result.sampling_time:.1f} s; written to {paths['result']}"
    )
    return 0


def _strain_files(args: argparse.Namespace) -> dict[str, str]:
    files = {d: f for d, f in (("H1", args.h1), ("L1", args.l1), ("V1", args.v1)) if f}
    if not files:
        raise GwinferError("give at least one strain file: --h1, --l1 or --v1 (GWOSC HDF5)")
    return files


def cmd_prepare(args: argparse.Namespace) -> int:
    from gwinfer.evaluation.analyze import prepare_segment

    paths = prepare_segment(args.model, _strain_files(args), args.gps, args.out, psd_seglen=args.psd_seglen)
    print("\n".join(f"{k}: {v}" for k, v in paths.items()))
    return 0


def _is_event_model(path: str) -> bool:
    from gwinfer.models import load_estimator

    _, meta = load_estimator(path)
    return isinstance(meta.get("event_model"), dict)


def cmd_analyze_event(args: argparse.Namespace) -> int:
    from gwinfer.evaluation.event import analyze_event
    from gwinfer.evaluation.event_is import ISConfig

    importance = None
    if args.dynesty and args.importance_sample:
        raise GwinferError("--dynesty and --importance-sample are two samplers: choose one")
    if args.importance_sample:
        importance = ISConfig(
            n=args.n,
            target_ess=args.target_ess,
            max_draws=args.max_draws,
            particles=args.particles,
            global_moves=args.global_moves,
            mcmc_steps=args.mcmc_steps,
            workers=args.workers,
            seed=args.seed,
        )
    out = analyze_event(
        args.model,
        _strain_files(args),
        args.gps,
        args.out,
        n=args.n,
        seed=args.seed,
        importance=importance,
        corner=not args.no_corner,
        strict=args.strict_coverage,
        allow_low_ess=args.allow_low_ess,
        reference={"nlive": args.nlive, "naccept": args.naccept, "npool": args.workers} if args.dynesty else None,
    )
    for w in out["warnings"]:
        print(f"warning: {w}")
    post = out["posterior"]
    for k in ("chirp_mass", "mass_ratio", "chi_eff", "luminosity_distance", "theta_jn"):
        if k in post:
            lo, med, hi = np.percentile(post[k], [5, 50, 95])
            print(f"{k:20s} {med:10.4g}  90% [{lo:.4g}, {hi:.4g}]")
    imp = out["importance_sampling"]
    if imp:
        print(
            f"importance sampling: ESS {imp['ess']:.0f}, efficiency {imp['efficiency']:.2%} (the network's own: "
            f"{imp['network_efficiency']:.3%}), {imp['likelihood_calls']} likelihood calls, "
            f"ln Z = {imp['log_evidence']:.2f} +- {imp['log_evidence_err']:.2f}"
        )
    print(f"done in {out['seconds']:.1f} s; result written to {out['result']}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import json

    from bilby.core.result import read_in_result

    from gwinfer.evaluation.published import (
        DEFAULT_PARAMETERS,
        PublishedSamples,
        compare_to_published,
        comparison_json,
        comparison_markdown,
        overlay_corner,
        published_samples,
    )
    from gwinfer.provenance import atomic_path, provenance

    def read(path: str) -> object:
        if not Path(path).is_file():
            raise GwinferError(f"result file {path} does not exist (gwinfer analyze --out ...)")
        try:
            return read_in_result(filename=str(path))
        except Exception as err:  # bilby raises several types for unreadable files
            raise GwinferError(f"{path} is not a readable bilby result ({type(err).__name__})") from None

    result = read(args.result)
    if args.against:  # another result (e.g. gwinfer analyze --dynesty): every searched parameter, and chi_eff
        ref = read(args.against)
        keys = [k for k in [*ref.search_parameter_keys, "chi_eff"] if k in ref.posterior and k in result.posterior]
        pub = PublishedSamples(
            {k: ref.posterior[k].to_numpy() for k in keys}, args.event or "", "result", Path(args.against)
        )
    else:
        if not args.event:
            raise GwinferError("give --event (to compare with its published posterior) or --against RESULT")
        pub = published_samples(args.event, args.release)
        keys = [k for k in DEFAULT_PARAMETERS if k in result.posterior]
    ours = {k: result.posterior[k].to_numpy() for k in keys}
    rows = compare_to_published(ours, pub, parameters=keys)
    title = f"{args.event or 'event'}: gwinfer ({Path(args.result).name}) vs {Path(pub.path).name}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = comparison_json(rows, title=title, published=pub)
    record["provenance"] = provenance("comparison", vars(args) | {"func": None}, parents=[args.result, pub.path])
    with atomic_path(out / "comparison.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1, allow_nan=False))
    md = comparison_markdown(rows, title=title, other="reference" if args.against else "published")
    with atomic_path(out / "comparison.md") as tmp:
        tmp.write_text(md)
    label = f"reference: {Path(args.against).name}" if args.against else None
    overlay_corner(ours, pub, out / "overlay.png", parameters=keys, title=title, published_label=label)
    print(md)
    print(f"written to {out}/ (comparison.md, comparison.json, overlay.png)")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from gwinfer.evaluation.analyze import analyze

    if _is_event_model(args.model):
        args.n = (5000 if args.importance_sample else 20000) if args.n is None else args.n
        return cmd_analyze_event(args)
    args.n = 50000 if args.n is None else args.n
    if args.importance_sample or args.dynesty:
        raise GwinferError(
            f"{args.model} is not an event model: importance sampling and --dynesty need one that infers every parameter of "
            "the likelihood (configs/events/train-event.yaml)"
        )
    out = analyze(
        args.model,
        _strain_files(args),
        args.gps,
        args.out,
        n=args.n,
        psd_seglen=args.psd_seglen,
        corner=not args.no_corner,
        seed=args.seed,
    )
    for w in out["warnings"]:
        print(f"warning: {w}")
    post = out["posterior"]
    for k in ("chirp_mass", "mass_ratio", "chi_eff", "luminosity_distance"):
        if k in post:
            lo, med, hi = np.percentile(post[k], [5, 50, 95])
            print(f"{k:20s} {med:10.4g}  90% [{lo:.4g}, {hi:.4g}]")
    print(f"{args.n} samples in {out['seconds']:.2f} s (data preparation + sampling) written to {out['result']}")
    return 0


def cmd_psd(args: argparse.Namespace) -> int:
    from gwinfer.evaluation.analyze import event_psd, write_psd
    from gwinfer.provenance import provenance

    psd = event_psd(args.strain, args.gps, args.fs, seglen=args.seglen)
    header = provenance(
        "psd", {"gps": args.gps, "fs": args.fs, "seglen": args.seglen, "method": psd.name}, parents=[args.strain]
    )
    path = write_psd(psd, args.out, header)
    print(f"PSD ({psd.name}, {psd.frequencies.size} bins) written to {path}")
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate``, ``train-posterior``, ``sample``, ``pp`` and ``reference`` to ``subparsers``."""
    p = subparsers.add_parser("simulate", help="simulate whitened signals for posterior training (one HDF5 file)")
    p.add_argument("--config", required=True, help="simulation YAML (configs/sim-gw5d.yaml)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--n", type=int, default=None, help="override the number of signals")
    p.add_argument("--seed", type=int, default=None, help="override the seed (e.g. for a separate test file)")
    add_workers(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)

    p = subparsers.add_parser(
        "fd-bank", help="waveforms and noise curves to train a frequency-domain event model on (one HDF5 file)"
    )
    p.add_argument("--config", required=True, help="bank YAML (configs/events/fd-bank.yaml)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--n", type=int, default=None, help="override the number of waveforms")
    p.add_argument("--seed", type=int, default=None, help="override the seed of the intrinsic draws")
    add_workers(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_fd_bank)

    p = subparsers.add_parser("sample", help="posterior samples of one observation as a bilby result + corner plot")
    add_model(p, "posterior model (train-posterior's)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--strain", help="whitened strain (n_det, n_samples): .npy or whitespace text")
    src.add_argument("--injection", type=int, help="row of the simulation file --data (signal + seeded noise)")
    p.add_argument("--data", help="simulation HDF5 file (with --injection)")
    p.add_argument("--noise-seed", type=int, default=0, help="noise seed of the injection")
    p.add_argument(
        "--n-samples",
        "--n",
        dest="n",
        type=int,
        default=50000,
        help="posterior samples (default: 50000; --n: older name)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the posterior draws (default: 0)")
    p.add_argument("--out", required=True, help="result file (.json or .hdf5)")
    p.add_argument("--no-corner", action="store_true", help="skip the corner plot")
    p.add_argument(
        "--importance-sample",
        action="store_true",
        help="also reweight n fresh draws with the exact likelihood (ESS, efficiency, evidence) and "
        "write <out>_reweighted",
    )
    p.set_defaults(func=_checked_sample)

    p = subparsers.add_parser("pp", help="p-p test of a posterior model on simulated injections")
    add_model(p, "posterior model")
    p.add_argument("--data", required=True, help="simulation HDF5 file (noise added with --seed)")
    p.add_argument("--n-injections", type=int, default=1000, help="injections of the p-p test (default: 1000)")
    p.add_argument("--n-samples", type=int, default=5000, help="posterior samples per injection (default: 5000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the injection choice and of the noise")
    p.add_argument("--out", required=True, help="folder for pp.png and pp.json")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_pp)

    p = subparsers.add_parser("reference", help="bilby/dynesty reference posterior of one injection")
    p.add_argument("--data", required=True, help="simulation HDF5 file")
    p.add_argument("--injection", type=int, required=True, help="row of the simulation file")
    p.add_argument("--noise-seed", type=int, default=0, help="noise seed (as for gwinfer sample)")
    p.add_argument("--out", required=True, help="result file (.json or .hdf5)")
    p.add_argument("--nlive", type=int, default=500, help="dynesty live points (default: 500)")
    p.add_argument("--seed", type=int, default=0, help="dynesty seed")
    p.add_argument("--search", default=None, help="comma-separated parameters to sample (default: the model's)")
    p.add_argument("--sample", default=None, help="dynesty sampling method (default bilby's act-walk)")
    p.add_argument("--no-corner", action="store_true", help="skip the corner plot")
    p.set_defaults(func=cmd_reference)

    p = subparsers.add_parser("analyze", help="posterior of a real event from GWOSC strain files")
    add_model(p, "two-detector posterior model")
    p.add_argument("--h1", help="H1 GWOSC HDF5 strain file")
    p.add_argument("--l1", help="L1 GWOSC HDF5 strain file")
    p.add_argument("--v1", help="V1 GWOSC HDF5 strain file")
    p.add_argument("--gps", type=float, required=True, help="trigger GPS time (s)")
    p.add_argument(
        "--n-samples",
        "--n",
        dest="n",
        type=int,
        default=None,
        help="posterior samples (default: 50000; event models: 20000, or 5000 per importance-sampling batch; "
        "--n: older name)",
    )
    p.add_argument("--psd-seglen", type=float, default=1.0, help="Welch segment length (s) of the off-source PSD")
    p.add_argument("--out", required=True, help="result file (.json or .hdf5)")
    p.add_argument("--no-corner", action="store_true", help="skip the corner plot")
    p.add_argument("--seed", type=int, default=0, help="seed of the posterior draws (default: 0)")
    g = p.add_argument_group("event models (configs/events/): importance sampling with bilby's likelihood")
    g.add_argument(
        "--importance-sample",
        action="store_true",
        help="weigh the network's draws by bilby's likelihood and prior; refine the proposal until --target-ess",
    )
    g.add_argument("--target-ess", type=float, default=2000.0, help="effective samples to reach (default: 2000)")
    g.add_argument(
        "--max-draws", type=int, default=200000, help="draws of the refined proposal at most (default: 200000)"
    )
    g.add_argument(
        "--particles", type=int, default=2000,
        help="SMC particles that refine a too-broad network proposal (default: 2000)",
    )  # fmt: skip
    g.add_argument("--mcmc-steps", type=int, default=8, help="Metropolis sweeps per SMC temperature (default: 8)")
    g.add_argument(
        "--global-moves", action="store_true",
        help="SMC sweeps add an independence step from a GMM of the particles (twice the likelihood calls)",
    )  # fmt: skip
    g.add_argument(
        "--dynesty", action="store_true",
        help="instead: the reference posterior of bilby + dynesty on the same likelihood and prior (about an hour "
        "per core; compare with gwinfer compare)",
    )  # fmt: skip
    g.add_argument("--nlive", type=int, default=500, help="dynesty live points (default: 500)")
    g.add_argument("--naccept", type=int, default=60, help="dynesty accepted steps per walk (default: 60)")
    add_workers(g, "processes computing likelihoods")
    g.add_argument(
        "--allow-low-ess", action="store_true", help="write the result even when the target ESS is not reached"
    )
    g.add_argument("--strict-coverage", action="store_true", help="refuse noise outside the model's training family")
    p.set_defaults(func=cmd_analyze)

    p = subparsers.add_parser(
        "compare", help="compare an event's posterior with the published one in ../shared/external (table + corner)"
    )
    p.add_argument("--result", required=True, help="bilby result of gwinfer analyze (.json or .hdf5)")
    p.add_argument(
        "--event", default=None,
        help="GW150914, GW151226, GW170104 or GW170814: compare with its published posterior (or a label with --against)",
    )  # fmt: skip
    p.add_argument(
        "--against", default=None,
        help="compare with this bilby result instead (e.g. gwinfer analyze --dynesty): every searched parameter",
    )  # fmt: skip
    p.add_argument(
        "--release", default=None, help="pycbc-inference-paper, o2-bbh-pe or 2-ogc (default: the event's PyCBC release)"
    )
    p.add_argument("--out", required=True, help="output folder (comparison.md, comparison.json, overlay.png)")
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser(
        "prepare",
        help="the whitened segment a posterior model reads (for sample --strain and the server), with its PSDs",
    )
    add_model(p, "two-detector posterior model (its sample rate, duration and band are used)")
    p.add_argument("--h1", help="H1 GWOSC HDF5 strain file")
    p.add_argument("--l1", help="L1 GWOSC HDF5 strain file")
    p.add_argument("--v1", help="V1 GWOSC HDF5 strain file")
    p.add_argument("--gps", type=float, required=True, help="trigger GPS time (s)")
    p.add_argument(
        "--psd-seglen", type=float, default=1.0, help="Welch segment length (s) of the off-source PSD (default: 1)"
    )
    p.add_argument(
        "--out", required=True, help="segment file .npy (OUT.json and OUT-<det>-psd.txt are written beside it)"
    )
    p.set_defaults(func=cmd_prepare)

    p = subparsers.add_parser("psd", help="off-source median-Welch PSD of a GWOSC strain file (two-column text)")
    p.add_argument("--strain", required=True, help="GWOSC HDF5 strain file")
    p.add_argument("--gps", type=float, required=True, help="trigger GPS time (s); +-2 s around it are excluded")
    p.add_argument("--fs", type=float, default=1024.0, help="resample to this rate first (Hz)")
    p.add_argument("--seglen", type=float, default=1.0, help="Welch segment length (s)")
    p.add_argument("--out", required=True, help="output text file (Hz, 1/Hz)")
    p.set_defaults(func=cmd_psd)


def _checked_sample(args: argparse.Namespace) -> int:
    if args.injection is not None and not args.data:
        raise GwinferError("--injection needs --data SIM.h5")
    return cmd_sample(args)
