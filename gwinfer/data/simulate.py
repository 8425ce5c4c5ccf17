"""Noise-free whitened training signals for posterior estimation (Green, Simpson & Gair 2020), in ONE HDF5 file.

:func:`simulate_signals` draws ``n`` parameter sets from a bilby prior file (``seed``), computes the
whitened signal of each with :func:`gwinfer.detectors.signal.whitened_strain` for every detector (``H1``,
``L1``, ``V1`` or the paper's ``"plus"`` pseudo-detector: the bare '+' polarisation), and writes::

    theta      (N, D) float64   the inferred parameters, in SimulationConfig.parameters order; attr names
    signals    (N, n_det, n_samples) float32   whitened, noise-free (add N(0, 1) noise to train)
    snr        (N,) float64     optimal network SNR sqrt(sum signals**2)
    prior_draws/<name> (N,) float64   every drawn parameter, derived masses included (fixed/nuisance ones too)
    attrs: format, config (JSON), detectors, parameters, psd_source, psd_sha256, prior_file, prior_text,
           prior_sha256, gwinfer_version, provenance (JSON), created

atomically (a temporary file renamed onto ``out_path`` at the end: a killed run leaves nothing behind).
:class:`SignalModel` is the one function ``parameters -> whitened signal (n_det, n_samples)`` shared by the
simulation, the reference sampler's likelihood (:mod:`gwinfer.evaluation.reference`) and importance sampling.

Noise convention: whitened noise is N(0, 1) white (:mod:`gwinfer.detectors.whitening`). The training data
are ``signal + N(0, 1)`` over ALL frequency bins (as in the paper), so the exact likelihood of a data
vector x is ``log L = -0.5 sum (x - h)^2 - 0.5 n log(2 pi)``.

Cost: ~1 ms per signal per core (IMRPhenomPv2, 1 s at 1024 Hz): 100k signals ~ 2 minutes on one core.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer._version import __version__
from gwinfer.errors import GwinferError
from gwinfer.external import external_dir
from gwinfer.parallel import pinned_pool

log = logging.getLogger(__name__)

FILE_FORMAT = "gwinfer-simulation"
FORMAT_VERSION = 1
KNOWN_DETECTORS = ("plus", "H1", "L1", "V1")
#: The parameters of the paper's 5-D problem, in the order the models infer them.
GW5D_PARAMETERS = ("mass_1", "mass_2", "luminosity_distance", "geocent_time", "phase")


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate (units: Hz, s).

    prior: a named prior (``gw5d``, ``gw8d``, ``hl-bbh``) or a bilby prior file.
    n: number of signals, >= 1. seed: seed of the prior draws.
    fs, duration: sampling rate [Hz] and segment length [s]; ``fs * duration`` whole.
    detectors: ``("plus",)`` (the paper) or a subset of H1, L1, V1 (needs ra, dec, psi in the prior).
    psd: a lalsimulation curve name (``aLIGOZeroDetHighPower``) or a two-column text file.
    psds: one such PSD per detector, in ``detectors`` order (empty = ``psd`` for every detector), e.g. the
    off-source Welch estimates of an event written by ``gwinfer psd``.
    f_min, f_max: whitening band [Hz] (f_max None = Nyquist); f_min is also the waveform's start.
    f_ref: reference frequency [Hz]. approximant: a lalsimulation approximant.
    parameters: the prior keys the model infers, in order (empty = every non-fixed, non-constraint key).
    gps_start: GPS time of the segment start (antenna patterns of real detectors only).
    time_offset: s added to the prior's ``geocent_time`` bounds: where a trigger-relative prior
    (``hl-bbh``: [-0.1, 0.1] s) sits in the segment (e.g. 1.5 s into a 2 s segment).
    """

    prior: str = "gw5d"
    n: int = 1000
    seed: int = 0
    fs: float = 1024.0
    duration: float = 1.0
    detectors: tuple[str, ...] = ("plus",)
    psd: str = str(external_dir() / "psd/aLIGO_ZERO_DET_high_P_psd.txt")
    f_min: float = 20.0
    f_max: float | None = None
    f_ref: float = 20.0
    approximant: str = "IMRPhenomPv2"
    parameters: tuple[str, ...] = GW5D_PARAMETERS
    gps_start: float = 0.0
    psds: tuple[str, ...] = ()
    time_offset: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise GwinferError(f"simulation n = {self.n!r} must be an integer >= 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise GwinferError(f"simulation seed = {self.seed!r} must be an integer in [0, 2**63)")
        ns = self.fs * self.duration
        if not (self.fs > 0 and self.duration > 0) or abs(ns - round(ns)) > 1e-6 or round(ns) < 8:
            raise GwinferError(f"fs * duration = {ns} must be a whole number of samples >= 8 (fs, duration > 0)")
        if not self.detectors or len(set(self.detectors)) != len(self.detectors):
            raise GwinferError(f"detectors = {list(self.detectors)} must be a non-empty list without repeats")
        bad = [d for d in self.detectors if d not in KNOWN_DETECTORS]
        if bad:
            raise GwinferError(f"unknown detector(s) {bad}; accepted: {list(KNOWN_DETECTORS)}")
        f_hi = self.fs / 2 if self.f_max is None else self.f_max
        if not 0 < self.f_min < f_hi <= self.fs / 2:
            raise GwinferError(f"band [{self.f_min}, {f_hi}] Hz must satisfy 0 < f_min < f_max <= fs/2 = {self.fs / 2}")
        if self.psds and len(self.psds) != len(self.detectors):
            raise GwinferError(
                f"psds lists {len(self.psds)} PSDs for {len(self.detectors)} detectors; give one per "
                f"detector (in the order {list(self.detectors)}) or none"
            )
        if not 0.0 <= self.time_offset <= self.duration:
            raise GwinferError(f"time_offset = {self.time_offset} s must lie in the segment [0, {self.duration}] s")
        if len(set(self.parameters)) != len(self.parameters):
            raise GwinferError(f"parameters = {list(self.parameters)} has repeats")

    @property
    def n_samples(self) -> int:
        return int(round(self.fs * self.duration))

    @property
    def detector_psds(self) -> dict[str, str]:
        """``{detector: PSD spec}``."""
        return dict(zip(self.detectors, self.psds or (self.psd,) * len(self.detectors)))

    def load_prior(self) -> Any:
        """The bilby prior, its ``geocent_time`` shifted by ``time_offset``."""
        from gwinfer.physics.priors import load_prior

        return load_prior(self.prior, time_offset=self.time_offset)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SimulationConfig:
        from gwinfer.config import from_dict

        return from_dict(cls, json.loads(text), "simulation")


def load_simulation_config(path: str | Path) -> SimulationConfig:
    """A :class:`SimulationConfig` from a YAML file (``configs/sim-gw5d.yaml``); its PSD and prior files
    are relative to the file's folder (lalsimulation curves and named priors are kept as names)."""
    from gwinfer.config import from_dict, load_yaml, resolve_paths

    raw = resolve_paths(load_yaml(path), Path(path).resolve().parent, ("psd", "psds", "prior"))
    return from_dict(SimulationConfig, raw, Path(path).name)


# --------------------------------------------------------------------------------------------- priors/PSD
def searched_keys(prior: Any) -> list[str]:
    """Prior keys that are actually sampled (not fixed, not constraints), in file order."""
    from bilby.core.prior import Constraint, DeltaFunction

    return [k for k, p in prior.items() if not isinstance(p, (Constraint, DeltaFunction))]


def inferred_parameters(config: SimulationConfig, prior: Any | None = None) -> tuple[str, ...]:
    """``config.parameters`` checked against the prior (or every searched key when empty)."""
    prior = config.load_prior() if prior is None else prior
    keys = searched_keys(prior)
    if not config.parameters:
        return tuple(keys)
    missing = [p for p in config.parameters if p not in keys]
    if missing:
        raise GwinferError(f"parameters {missing} are not sampled by prior {config.prior!r} (it samples {keys})")
    return tuple(config.parameters)


def recorded_path(spec: str | Path) -> Path | str:
    """A file named in a stored config: as given if it exists (absolute, or relative to the working
    directory), else relative to the repository root (how model files made before paths were resolved
    against their config recorded ``configs/psd/...``); names that are no path are returned unchanged."""
    from gwinfer.config import looks_like_path

    p = Path(spec)
    if not looks_like_path(str(spec)) or p.is_absolute() or p.exists():
        return spec
    root = Path(__file__).resolve().parents[2] / p
    return root if root.exists() else spec


def load_psd(spec: str) -> tuple[Any, str, str]:
    """(PSD, source description, sha256): the file's bytes hash, or for a lalsimulation curve the hash of
    its float64 values on a fixed grid (1/16 Hz from 10 Hz to 2048 Hz)."""
    from gwinfer.detectors.psd import PSD
    from gwinfer.provenance import sha256_file

    spec = str(recorded_path(spec))
    psd = PSD.from_name(spec)
    if Path(spec).is_file():
        return psd, str(Path(spec).resolve()), sha256_file(spec)
    grid = np.arange(10.0, 2048.0, 0.0625)
    lo, hi = psd.f_range
    values = psd(grid[(grid >= lo) & (grid <= hi)])
    return psd, f"lalsimulation:SimNoisePSD{spec}", hashlib.sha256(values.astype("<f8").tobytes()).hexdigest()


class SignalModel:
    """``model(params) -> (n_det, n_samples)`` float64 whitened noise-free signal for ``config``.

    ``params``: a mapping of bilby names (floats); parameters absent from it take the defaults of
    :mod:`gwinfer.detectors.signal` (0 for theta_jn, phase, spins). The PSD is loaded once.
    """

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        specs = config.detector_psds
        loaded = {spec: load_psd(spec) for spec in dict.fromkeys(specs.values())}
        self.psd = {det: loaded[spec][0] for det, spec in specs.items()}
        if len(loaded) == 1:
            ((_, self.psd_source, self.psd_sha256),) = loaded.values()
        else:  # one entry per detector
            self.psd_source = ",".join(f"{det}={loaded[spec][1]}" for det, spec in specs.items())
            self.psd_sha256 = ",".join(f"{det}={loaded[spec][2]}" for det, spec in specs.items())

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.config.detectors), self.config.n_samples

    def __call__(self, params: dict[str, float]) -> np.ndarray:
        from gwinfer.detectors.signal import whitened_strain

        c = self.config
        out = whitened_strain(
            params,
            c.detectors,
            self.psd,
            c.fs,
            c.duration,
            f_min=c.f_min,
            f_max=c.f_max,
            approximant=c.approximant,
            f_ref=c.f_ref,
            gps_start=c.gps_start,
        )
        return np.stack([out[d] for d in c.detectors])


# --------------------------------------------------------------------------------------------- workers
_MODEL: SignalModel | None = None


def _init_worker(config_json: str) -> None:
    global _MODEL
    _MODEL = SignalModel(SimulationConfig.from_json(config_json))


def _compute(task: tuple[int, dict[str, float]]) -> tuple[int, np.ndarray | None, str | None]:
    i, params = task
    try:
        return i, _MODEL(params).astype(np.float32), None  # type: ignore[misc]
    except GwinferError as err:
        return i, None, str(err)


def _stream(
    config: SimulationConfig, tasks: list[tuple[int, dict[str, float]]], workers: int
) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    if workers <= 1:
        _init_worker(config.to_json())
        yield from map(_compute, tasks)
        return
    with pinned_pool(workers, _init_worker, (config.to_json(),)) as pool:
        yield from pool.imap(_compute, tasks, chunksize=64)


def draw_parameters(config: SimulationConfig) -> dict[str, np.ndarray]:
    """The ``config.n`` prior draws (every key, derived masses included), reproducible from ``config.seed``."""
    from gwinfer.physics.priors import sample

    return sample(config.load_prior(), config.n, config.seed)


def simulate_signals(config: SimulationConfig, out_path: str | Path, workers: int = 1, progress: bool = True) -> Path:
    """Simulate ``config`` into the HDF5 file ``out_path`` (module docstring); return its path.

    ``workers > 1`` computes the signals in a spawned process pool. Any failed waveform aborts the run
    with a :class:`GwinferError` naming it (nothing is written).
    """
    import h5py
    from tqdm import tqdm

    from gwinfer.physics.priors import prior_path
    from gwinfer.provenance import atomic_path, provenance, sha256_file

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise GwinferError(f"workers = {workers!r} must be an integer >= 1")
    prior = config.load_prior()
    names = inferred_parameters(config, prior)
    model = SignalModel(config)  # checks the PSD before the long part
    draws = draw_parameters(config)
    keys = sorted(draws)
    tasks = [(i, {k: float(draws[k][i]) for k in keys}) for i in range(config.n)]
    signals = np.empty((config.n, *model.shape), dtype=np.float32)
    t0 = time.perf_counter()
    bar = tqdm(total=config.n, disable=not progress, unit="sig", desc="simulating", smoothing=0.05)
    for i, h, err in _stream(config, tasks, workers):
        if err is not None:
            bar.close()
            raise GwinferError(f"signal {i} failed ({err}); parameters {tasks[i][1]}")
        signals[i] = h
        bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    theta = np.stack([draws[k] for k in names], axis=1).astype(np.float64)
    snr = np.sqrt(np.sum(np.square(signals, dtype=np.float64), axis=(1, 2)))
    pfile = prior_path(config.prior)
    psd_files = [spec for spec in dict.fromkeys(config.detector_psds.values()) if Path(spec).is_file()]
    prov = provenance(
        "simulation",
        asdict(config),
        parents=[pfile, *psd_files],
        libraries=("numpy", "scipy", "h5py", "lalsuite", "bilby"),
        seconds=round(seconds, 3),
        workers=workers,
    )
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w") as f:
            ds = f.create_dataset("theta", data=theta)
            ds.attrs["names"] = list(names)
            f.create_dataset("signals", data=signals, chunks=(min(256, config.n), *model.shape))
            f.create_dataset("snr", data=snr)
            g = f.create_group("prior_draws")
            for k in keys:
                g.create_dataset(k, data=np.asarray(draws[k], dtype=np.float64))
            a = f.attrs
            a["format"], a["format_version"] = FILE_FORMAT, FORMAT_VERSION
            a["config"] = config.to_json()
            a["parameters"] = list(names)
            a["detectors"] = list(config.detectors)
            a["psd_source"], a["psd_sha256"] = model.psd_source, model.psd_sha256
            a["prior_file"], a["prior_text"] = str(pfile), pfile.read_text()
            a["prior_sha256"] = sha256_file(pfile)
            a["gwinfer_version"] = __version__
            a["provenance"] = json.dumps(prov)
            a["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    log.info("%d signals written to %s in %.1f s (median SNR %.1f)", config.n, out_path, seconds, float(np.median(snr)))
    return Path(out_path)


# --------------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class Simulation:
    """A simulation file in memory: ``theta`` (N, D) float64, ``signals`` (N, n_det, n_samples) float32."""

    path: str
    config: SimulationConfig
    names: tuple[str, ...]
    theta: np.ndarray
    signals: np.ndarray
    snr: np.ndarray
    draws: dict[str, np.ndarray]
    attrs: dict[str, Any]

    def __len__(self) -> int:
        return int(self.theta.shape[0])

    def parameters_of(self, index: int) -> dict[str, float]:
        """Every drawn parameter of signal ``index`` (a dict of floats, bilby names)."""
        if not 0 <= index < len(self):
            raise GwinferError(f"injection index {index} is outside [0, {len(self) - 1}]")
        return {k: float(v[index]) for k, v in self.draws.items()}


def read_simulation(path: str | Path, signals: bool = True) -> Simulation:
    """Load a file written by :func:`simulate_signals` (``signals=False`` skips the big array)."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise GwinferError(f"simulation file {p} does not exist")
    try:
        with h5py.File(p, "r") as f:
            if f.attrs.get("format") != FILE_FORMAT:
                raise GwinferError(f"{p} is not a gwinfer simulation file (format {f.attrs.get('format')!r})")
            config = SimulationConfig.from_json(str(f.attrs["config"]))
            names = tuple(str(n) for n in f["theta"].attrs["names"])
            theta = f["theta"][...]
            sig = f["signals"][...] if signals else np.empty((0,), np.float32)
            snr = f["snr"][...]
            draws = {k: f["prior_draws"][k][...] for k in f["prior_draws"]}
            attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
    except OSError as err:
        raise GwinferError(f"{p} is not a readable HDF5 file ({err})") from None
    return Simulation(str(p), config, names, theta, sig, snr, draws, attrs)
