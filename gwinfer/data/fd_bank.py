"""The training bank of a two-detector frequency-domain event model (issue 15), in ONE HDF5 file.

DINGO's split (Dax et al. 2021, PRL 127, 241103): the expensive part of a signal, the waveform of the
intrinsic parameters, is computed once; everything else is drawn afresh for every training example
(:mod:`gwinfer.data.fd_dataset`): distance, inclination, phase, sky position, polarisation, time, the
detectors' noise curves and the noise. For an aligned-spin (2, 2)-mode approximant (IMRPhenomD, the
aligned-spin limit of the IMRPhenomPv2 used by the published O1 analyses) the polarisations at any
inclination and phase follow from one complex series h0(f) = h+(f) at theta_jn = 0, phase = 0::

    h+ = h0 (1 + cos^2 theta_jn) / 2 e^{i a},    hx = -i h0 cos(theta_jn) e^{i a}

with ``a`` a constant phase (2 x the binary's phase up to a sign), exact for (2, +-2) modes (tested
against bilby's waveform generator).

File layout (``gwinfer-fd-bank``)::

    frequencies   (n_bins,) float64    Hz, the band [f_min, f_max] on the 1/duration grid
    h_plus        (N, n_bins) complex64  h0 at luminosity distance REFERENCE_DISTANCE Mpc (strain/Hz)
    intrinsic/<name> (N,) float64      chirp_mass, mass_ratio, chi_1, chi_2 (+ mass_1, mass_2)
    psds          (K, n_bins) float64  the noise-curve family (1/Hz); attr names: where each came from
    attrs: format, config (JSON), prior_text, prior_sha256, gwinfer_version, provenance (JSON), created

The noise-curve family: median-Welch estimates from windows of every GWOSC strain file listed (several
windows per file) and lalsimulation's design and early-aLIGO curves.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer._version import __version__
from gwinfer.errors import GwinferError
from gwinfer.parallel import pinned_pool

log = logging.getLogger(__name__)

FILE_FORMAT = "gwinfer-fd-bank"
FORMAT_VERSION = 1
#: Luminosity distance (Mpc) at which the bank's waveforms are stored.
REFERENCE_DISTANCE = 100.0
INTRINSIC = ("chirp_mass", "mass_ratio", "chi_1", "chi_2")
#: The parameters an event model infers, in order (ra at Greenwich sidereal time 0, geocent_time from the trigger).
EVENT_PARAMETERS = (
    "chirp_mass",
    "mass_ratio",
    "chi_1",
    "chi_2",
    "luminosity_distance",
    "theta_jn",
    "geocent_time",
    "ra",
    "dec",
    "psi",
)


@dataclass(frozen=True)
class FDBankConfig:
    """What to put in a bank (units: s, Hz).

    prior: a bilby prior file with every key of EVENT_PARAMETERS (geocent_time relative to the trigger).
    n, seed: number of intrinsic draws (>= 1) and their seed. duration: segment length (s); the trigger sits
    ``post_trigger`` s before its end. f_min, f_max: the band (Hz), f_min also the waveform's start;
    f_ref: reference frequency. approximant: an aligned-spin (2, 2)-mode lalsimulation approximant.
    psd_files: GWOSC strain files (HDF5) whose noise joins the family; psd_window: length (s) of the windows
    each file is cut into (every ``psd_step`` s); psd_seglen: Welch segment (s). psd_curves: lalsimulation
    noise curves that join the family.
    """

    prior: str = ""
    n: int = 1000
    seed: int = 0
    duration: float = 8.0
    post_trigger: float = 2.0
    f_min: float = 20.0
    f_max: float = 512.0
    f_ref: float = 20.0
    approximant: str = "IMRPhenomD"
    psd_files: tuple[str, ...] = ()
    psd_window: float = 16.0
    psd_step: float = 4.0
    psd_seglen: float = 2.0
    psd_curves: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.prior:
            raise GwinferError("prior must name a bilby prior file (e.g. configs/priors/hl-fd.prior)")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise GwinferError(f"n = {self.n!r} must be an integer >= 1")
        if not 0 < self.post_trigger < self.duration:
            raise GwinferError(
                f"post_trigger = {self.post_trigger} s must lie inside (0, duration = {self.duration}) s"
            )
        if not 0 < self.f_min < self.f_max:
            raise GwinferError(f"band [{self.f_min}, {self.f_max}] Hz must satisfy 0 < f_min < f_max")
        if not (self.psd_files or self.psd_curves):
            raise GwinferError("give psd_files and/or psd_curves: the model needs a family of noise curves")
        if not 0 < 2 * self.psd_seglen <= self.psd_window:
            raise GwinferError(f"psd_window = {self.psd_window} s must hold two Welch segments of {self.psd_seglen} s")

    @property
    def frequencies(self) -> np.ndarray:
        from gwinfer.detectors.frequency import band_frequencies

        return band_frequencies(self.duration, self.f_min, self.f_max)

    def load_prior(self) -> Any:
        from gwinfer.physics.priors import load_prior

        prior = load_prior(self.prior)
        missing = [k for k in EVENT_PARAMETERS if k not in prior]
        if missing:
            raise GwinferError(f"prior {self.prior} lacks {missing}; an event model infers {list(EVENT_PARAMETERS)}")
        return prior


def load_bank_config(path: str | Path) -> FDBankConfig:
    """A :class:`FDBankConfig` from YAML; its prior and strain files are relative to the file's folder."""
    from gwinfer.config import from_dict, load_yaml, resolve_paths

    raw = resolve_paths(load_yaml(path), Path(path).resolve().parent, ("prior", "psd_files"))
    return from_dict(FDBankConfig, raw, Path(path).name)


# --------------------------------------------------------------------------------------------- waveforms
_GEN: Any = None


def waveform_generator(config: FDBankConfig, sampling_frequency: float | None = None) -> Any:
    """bilby's waveform generator on the rfft grid of ``sampling_frequency`` Hz (default 2 f_max: the band
    only); the bank's approximant, reference frequency and band."""
    import bilby

    return bilby.gw.WaveformGenerator(
        duration=config.duration,
        sampling_frequency=sampling_frequency or 2 * config.f_max,
        frequency_domain_source_model=bilby.gw.source.lal_binary_black_hole,
        parameter_conversion=bilby.gw.conversion.convert_to_lal_binary_black_hole_parameters,
        waveform_arguments={
            "waveform_approximant": config.approximant,
            "reference_frequency": config.f_ref,
            "minimum_frequency": config.f_min,
            "maximum_frequency": config.f_max,
        },
    )


def prior_from_text(text: str, time_offset: float = 0.0) -> Any:
    """The bilby PriorDict of a prior file's text (as stored in a bank or model file), ``geocent_time``
    bounds shifted by ``time_offset`` s."""
    import tempfile

    from gwinfer.physics.priors import load_prior

    with tempfile.NamedTemporaryFile("w", suffix=".prior", delete=False) as tmp:
        tmp.write(text)
    try:
        return load_prior(tmp.name, time_offset=time_offset)
    finally:
        Path(tmp.name).unlink()


def _init_worker(config_json: str) -> None:
    global _GEN
    config = FDBankConfig(**json.loads(config_json))
    _GEN = (waveform_generator(config), np.isin(_full_grid(config), config.frequencies))


def _full_grid(config: FDBankConfig) -> np.ndarray:
    n = int(round(config.duration * config.f_max))
    return np.arange(n + 1) / config.duration


def _compute(task: tuple[int, dict[str, float]]) -> tuple[int, np.ndarray | None, str | None]:
    i, params = task
    gen, band = _GEN
    p = {**params, "luminosity_distance": REFERENCE_DISTANCE, "theta_jn": 0.0, "phase": 0.0}
    try:
        pol = gen.frequency_domain_strain(p)
    except Exception as err:  # lalsimulation raises RuntimeError for parameters outside its range
        return i, None, f"{type(err).__name__}: {err}"
    h = pol["plus"][band]
    if not np.all(np.isfinite(h)):
        return i, None, "non-finite waveform"
    return i, h.astype(np.complex64), None


def waveform_h0(config: FDBankConfig, params: dict[str, float]) -> np.ndarray:
    """h0(f) of one intrinsic parameter set (module docstring), complex128 on ``config.frequencies``."""
    _init_worker(json.dumps(asdict(config)))
    i, h, err = _compute((0, params))
    if err is not None:
        raise GwinferError(f"waveform failed: {err}")
    return h.astype(np.complex128)  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------- PSD family
def psd_family(config: FDBankConfig) -> tuple[np.ndarray, list[str]]:
    """((K, n_bins) PSDs in 1/Hz on the band, their names): every ``psd_window`` s window (step ``psd_step``)
    of every strain file, Welch-estimated as an event's off-source PSD is, then the lalsimulation curves."""
    from gwinfer.detectors.psd import PSD, welch_psd
    from gwinfer.detectors.strain import read_strain

    f = config.frequencies
    rows, names = [], []
    for path in config.psd_files:
        ts = read_strain(path)
        x, fs = np.asarray(ts.value, dtype=float), float(ts.sample_rate.value)
        n_win, step = int(round(config.psd_window * fs)), int(round(config.psd_step * fs))
        if x.size < n_win:
            raise GwinferError(f"{path}: {x.size / fs:g} s of data, shorter than psd_window = {config.psd_window} s")
        for k0 in range(0, x.size - n_win + 1, step):
            rows.append(welch_psd(x[k0 : k0 + n_win], fs, seglen=config.psd_seglen)(f))
            names.append(f"{Path(path).name}[{k0 / fs:g}:{(k0 + n_win) / fs:g} s]")
    for curve in config.psd_curves:
        rows.append(PSD.from_name(curve)(f))
        names.append(f"lalsimulation:{curve}")
    return np.array(rows), names


# --------------------------------------------------------------------------------------------- writing
def make_bank(config: FDBankConfig, out_path: str | Path, workers: int = 1, progress: bool = True) -> Path:
    """Draw ``config.n`` intrinsic parameter sets, compute their waveforms and the PSD family, and write the
    bank atomically to ``out_path`` (module docstring). Any failed waveform aborts with its parameters."""
    import h5py
    from tqdm import tqdm

    from gwinfer.physics.priors import prior_path, sample
    from gwinfer.provenance import atomic_path, provenance, sha256_file

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise GwinferError(f"workers = {workers!r} must be an integer >= 1")
    prior = config.load_prior()
    t0 = time.perf_counter()
    psds, psd_names = psd_family(config)
    draws = sample(prior, config.n, config.seed)
    keys = [*INTRINSIC, "mass_1", "mass_2"]
    tasks = [(i, {k: float(draws[k][i]) for k in INTRINSIC}) for i in range(config.n)]
    freqs = config.frequencies
    h = np.empty((config.n, freqs.size), dtype=np.complex64)
    bar = tqdm(total=config.n, disable=not progress, unit="wf", desc="waveforms", smoothing=0.05)
    cfg_json = json.dumps(asdict(config))
    with pinned_pool(workers, _init_worker, (cfg_json,)) as pool:
        for i, hi, err in pool.imap(_compute, tasks, chunksize=256):
            if err is not None:
                raise GwinferError(f"waveform {i} failed ({err}); parameters {tasks[i][1]}")
            h[i] = hi
            bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    pfile = prior_path(config.prior)
    prov = provenance(
        "fd-bank",
        asdict(config),
        parents=[pfile, *config.psd_files],
        libraries=("numpy", "scipy", "h5py", "lalsuite", "bilby", "gwpy"),
        seconds=round(seconds, 3),
        workers=workers,
    )
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w") as fh:
            fh.create_dataset("frequencies", data=freqs)
            fh.create_dataset("h_plus", data=h, chunks=(min(512, config.n), freqs.size))
            g = fh.create_group("intrinsic")
            for k in keys:
                g.create_dataset(k, data=np.asarray(draws[k], dtype=np.float64))
            ds = fh.create_dataset("psds", data=psds)
            ds.attrs["names"] = json.dumps(psd_names)
            a = fh.attrs
            a["format"], a["format_version"] = FILE_FORMAT, FORMAT_VERSION
            a["config"] = json.dumps(asdict(config))
            a["prior_text"], a["prior_sha256"] = pfile.read_text(), sha256_file(pfile)
            a["gwinfer_version"] = __version__
            a["provenance"] = json.dumps(prov)
            a["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    log.info("%d waveforms and %d noise curves written to %s in %.1f s", config.n, len(psd_names), out_path, seconds)
    return Path(out_path)


# --------------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class FDBank:
    """A bank in memory (``h_plus`` may be empty when read without waveforms)."""

    path: str
    config: FDBankConfig
    frequencies: np.ndarray
    h_plus: np.ndarray
    intrinsic: dict[str, np.ndarray]
    psds: np.ndarray
    psd_names: list[str]
    attrs: dict[str, Any]

    def __len__(self) -> int:
        return int(self.intrinsic["chirp_mass"].size)

    def load_prior(self) -> Any:
        """The bank's prior, rebuilt from the text stored in the file."""
        return prior_from_text(str(self.attrs["prior_text"]))


def read_bank(path: str | Path, waveforms: bool = True) -> FDBank:
    """Load a file written by :func:`make_bank` (``waveforms=False`` skips the big array)."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise GwinferError(f"bank file {p} does not exist (make one with gwinfer fd-bank --config ...)")
    try:
        with h5py.File(p, "r") as f:
            if f.attrs.get("format") != FILE_FORMAT:
                raise GwinferError(f"{p} is not a gwinfer frequency-domain bank (format {f.attrs.get('format')!r})")
            raw = json.loads(str(f.attrs["config"]))
            config = FDBankConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
            freqs = f["frequencies"][...]
            h = f["h_plus"][...] if waveforms else np.empty((0, freqs.size), np.complex64)
            intrinsic = {k: f["intrinsic"][k][...] for k in f["intrinsic"]}
            psds = f["psds"][...]
            names = json.loads(str(f["psds"].attrs["names"]))
            attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
    except OSError as err:
        raise GwinferError(f"{p} is not a readable HDF5 file ({err})") from None
    return FDBank(str(p), config, freqs, h, intrinsic, psds, names, attrs)
