"""Subcommands of the posterior pipeline, added to the ``gwinfer`` parser by :func:`add_parsers`::

    gwinfer simulate --config configs/sim-gw5d.yaml --out runs/gw5d/sim.h5 [--workers 2] [--n N --seed S]
    gwinfer train-posterior --config configs/train-gw5d-maf.yaml --out runs/gw5d/maf
    gwinfer sample --model runs/gw5d/maf/model.pt (--strain X.npy | --data SIM.h5 --injection 3) --n 50000 --out res
    gwinfer pp --model M --data SIM.h5 --n-injections 1000 --n-samples 5000 --out DIR
    gwinfer reference --data SIM.h5 --injection 3 --out ref --nlive 500

Handlers only parse arguments and call library functions (heavy imports inside the handlers).
``--out`` of ``sample``/``reference`` is a bilby result file (``.json``, ``.hdf5``; ``.json`` added when
there is no such extension) with a ``<stem>_corner.png`` beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

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


def cmd_train_posterior(args: argparse.Namespace) -> int:
    from gwinfer.data.strain_dataset import train_posterior

    print(f"model written to {train_posterior(args.config, args.out, resume=not args.no_resume)}")
    return 0


def _read_strain(path: str):
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise GwinferError(f"strain file {p} does not exist")
    x = np.load(p) if p.suffix == ".npy" else np.loadtxt(p, ndmin=2)
    return np.atleast_2d(np.asarray(x, dtype=np.float32))


def cmd_sample(args: argparse.Namespace) -> int:
    from gwinfer.data.strain_dataset import simulation_config_of
    from gwinfer.evaluation.posterior import make_result, sample_posterior, save_result
    from gwinfer.models.posterior import load_estimator
    from gwinfer.provenance import provenance

    model, meta = load_estimator(args.model)
    names = meta.get("names")
    injection, source = None, {"strain": args.strain}
    if args.strain is not None:
        x = _read_strain(args.strain)
    else:
        from gwinfer.data.simulate import read_simulation
        from gwinfer.data.strain_dataset import injection_data

        sim = read_simulation(args.data)
        if names is not None and list(sim.names) != list(names):
            raise GwinferError(f"{args.data} holds parameters {list(sim.names)}; the model infers {names}")
        x, injection = injection_data(sim, args.injection, args.noise_seed)
        source = {"simulation": args.data, "injection": args.injection, "noise_seed": args.noise_seed}
    if tuple(x.shape) != tuple(model.x_shape):
        raise GwinferError(f"strain has shape {tuple(x.shape)}; the model expects {tuple(model.x_shape)}")
    t0 = time.perf_counter()
    samples = sample_posterior(model, x, args.n, names)
    seconds = time.perf_counter() - t0
    meta_data = {"gwinfer": {"model": str(args.model), "data": source, "n": args.n, "sampling_seconds": seconds,
                             "simulation": json.loads(simulation_config_of(meta).to_json()) if "simulation" in meta
                             else None,
                             "provenance": json.dumps(provenance("posterior-samples", vars(args) | {"func": None},
                                                                 parents=[args.model]))}}
    result = make_result(samples, label=Path(args.out).stem, injection_parameters=injection, meta_data=meta_data,
                         sampling_time=seconds, priors=_model_prior(meta))
    paths = save_result(result, args.out, corner=not args.no_corner)
    print(f"{args.n} samples in {seconds:.2f} s written to {paths['result']}")
    return 0


def _model_prior(meta: dict):
    """The prior of the simulation a model was trained on (None if unknown or its file is gone)."""
    from gwinfer.physics.priors import load_prior

    prior = (meta.get("simulation") or {}).get("prior")
    try:
        return load_prior(prior) if prior else None
    except GwinferError:
        return None


def cmd_pp(args: argparse.Namespace) -> int:
    from gwinfer.evaluation.posterior import pp_test
    from gwinfer.models.posterior import load_estimator

    model, meta = load_estimator(args.model)
    res = pp_test(model, args.data, args.n_injections, args.n_samples, seed=args.seed, names=meta.get("names"),
                  out_dir=args.out, progress=not args.quiet)
    for k, p in res["ks_pvalues"].items():
        print(f"{k:22s} KS p-value {p:.4f}")
    print(f"combined (Fisher) p-value {res['combined_pvalue']:.4g}; {res['seconds']:.1f} s; plot {res['plot']}")
    return 0


def cmd_reference(args: argparse.Namespace) -> int:
    from gwinfer.data.simulate import read_simulation
    from gwinfer.data.strain_dataset import injection_data
    from gwinfer.evaluation.posterior import save_result
    from gwinfer.evaluation.reference import reference_posterior

    sim = read_simulation(args.data)
    x, params = injection_data(sim, args.injection, args.noise_seed)
    search = [s for s in args.search.split(",") if s] if args.search else None
    kwargs = {"sample": args.sample} if args.sample else {}
    meta = {"gwinfer": {"simulation": args.data, "injection": args.injection, "noise_seed": args.noise_seed}}
    result = reference_posterior(x, sim.config, injection_parameters=params, search=search, nlive=args.nlive,
                                 seed=args.seed, label=Path(args.out).stem, sampler_kwargs=kwargs, meta_data=meta)
    paths = save_result(result, args.out, corner=not args.no_corner)
    print(f"{len(result.posterior)} samples, log Z = {result.log_evidence:.3f} +- {result.log_evidence_err:.3f}, "
          f"{result.sampling_time:.1f} s; written to {paths['result']}")
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate``, ``train-posterior``, ``sample``, ``pp`` and ``reference`` to ``subparsers``."""
    p = subparsers.add_parser("simulate", help="simulate whitened signals for posterior training (one HDF5 file)")
    p.add_argument("--config", required=True, help="simulation YAML (configs/sim-gw5d.yaml)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--n", type=int, default=None, help="override the number of signals")
    p.add_argument("--seed", type=int, default=None, help="override the seed (e.g. for a separate test file)")
    p.add_argument("--workers", type=int, default=1, help="processes computing waveforms")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)

    p = subparsers.add_parser("train-posterior", help="train a posterior estimator on a simulation file")
    p.add_argument("--config", required=True, help="YAML with data/model/train (configs/train-gw5d-maf.yaml)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, log.csv, model.pt")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.set_defaults(func=cmd_train_posterior)

    p = subparsers.add_parser("sample", help="posterior samples of one observation as a bilby result + corner plot")
    p.add_argument("--model", required=True, help="posterior model file (train-posterior's model.pt)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--strain", help="whitened strain (n_det, n_samples): .npy or whitespace text")
    src.add_argument("--injection", type=int, help="row of the simulation file --data (signal + seeded noise)")
    p.add_argument("--data", help="simulation HDF5 file (with --injection)")
    p.add_argument("--noise-seed", type=int, default=0, help="noise seed of the injection")
    p.add_argument("--n", type=int, default=50000, help="number of samples")
    p.add_argument("--out", required=True, help="result file (.json or .hdf5)")
    p.add_argument("--no-corner", action="store_true", help="skip the corner plot")
    p.set_defaults(func=_checked_sample)

    p = subparsers.add_parser("pp", help="p-p test of a posterior model on simulated injections")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="simulation HDF5 file (noise added with --seed)")
    p.add_argument("--n-injections", type=int, default=1000)
    p.add_argument("--n-samples", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0, help="seed of the injection choice and of the noise")
    p.add_argument("--out", required=True, help="folder for pp.png and pp.json")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_pp)

    p = subparsers.add_parser("reference", help="bilby/dynesty reference posterior of one injection")
    p.add_argument("--data", required=True, help="simulation HDF5 file")
    p.add_argument("--injection", type=int, required=True, help="row of the simulation file")
    p.add_argument("--noise-seed", type=int, default=0, help="noise seed (as for gwinfer sample)")
    p.add_argument("--out", required=True, help="result file (.json or .hdf5)")
    p.add_argument("--nlive", type=int, default=500)
    p.add_argument("--seed", type=int, default=0, help="dynesty seed")
    p.add_argument("--search", default=None, help="comma-separated parameters to sample (default: the model's)")
    p.add_argument("--sample", default=None, help="dynesty sampling method (default bilby's act-walk)")
    p.add_argument("--no-corner", action="store_true")
    p.set_defaults(func=cmd_reference)


def _checked_sample(args: argparse.Namespace) -> int:
    if args.injection is not None and not args.data:
        raise GwinferError("--injection needs --data SIM.h5")
    return cmd_sample(args)
