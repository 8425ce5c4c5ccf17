"""A user's own (2,2)-mode waveform file in: :func:`read_waveform`, and out: :func:`write_nr_hdf5`.

Formats, chosen by the file's suffix (and, for an unknown suffix, by its first bytes):

``.h5``, ``.hdf5``, ``.hdf`` -- the LVC numerical-relativity injection format
    (Schmidt et al. 2017, arXiv:1703.01076, LIGO-T1500606) that lalsimulation's ``NR_hdf5`` approximant
    reads. Each mode is stored as amplitude and phase, h_lm(t) = A(t) exp(i Phi(t)) in units of r / M,
    in the groups ``amp_l2_m2`` and ``phase_l2_m2``, each holding spline data ``X`` (time in M, on the
    simulation's own clock) and ``Y``, plus romspline's ``deg``, ``tol`` and ``errors``; the root
    attributes hold the binary (``mass1``, ``mass2`` as fractions of the total mass, ``spin1x/y/z``,
    ``spin2x/y/z``, ``LNhatx/y/z``, ``nhatx/y/z``, ``eta``, ``f_lower_at_1MSUN``, ``Format``, ``Lmax``,
    ...). The splines are evaluated as lalsimulation does (``XLALSimInspiralNRWaveformGetDataFromHDF5File``):
    a natural cubic spline through (X, Y), whatever ``deg`` says, on a uniform grid starting at the first
    knot, with no shift of the time origin; here the grid step is ``dt`` (0.1 M by default) over the common
    span of the two groups. lalsimulation's own (2,2) mode (``XLALSimInspiralNRWaveformGetHlms``) is this
    one rotated by the constant NR-to-LAL frame phase, which is exactly 1 for the frame
    :func:`write_nr_hdf5` writes (LNhat along z, nhat along x): the two agree to 1e-13 there
    (tests/data/test_waveform_file.py).
``.txt``, ``.dat``, ``.asc``, ``.csv`` (optionally gzipped, ``.txt.gz``) -- plain text
    Three columns: t (M), Re h22, Im h22, with h22 = h+ - i hx in geometric units. A header line
    ``# columns: t amp phase`` declares t, amplitude, phase (radians) instead. Two columns are refused:
    (t, h+) is not enough to rebuild the complex mode. Lines starting with ``#`` are comments; comment
    lines of the form ``# key = value`` (or ``# key: value``) go into ``attrs``, and ``q``, ``s1z``,
    ``s2z`` among them into ``parameters``. Whitespace- or comma-separated.
``.npy`` -- numpy
    A real array of shape (N, 3) = (t, Re h22, Im h22), or a complex (N, 2) array (t, h22) whose first
    column is real. A complex (N,) array is refused: it has no times.

Every format gets the same checks, each a one-line :class:`~gwinfer.errors.GwinferError`: at least
:data:`~gwinfer.waveforms.canonical.MIN_SAMPLES` samples, finite values, strictly increasing times.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from scipy.interpolate import CubicSpline

from gwinfer.errors import GwinferError, check_range
from gwinfer.physics.parameters import symmetric_mass_ratio
from gwinfer.physics.timegrid import TimeGrid
from gwinfer.waveforms.canonical import (
    H22_ROTATION,
    MIN_SAMPLES,
    CanonicalWaveform,
    canonical_h22,
    check_waveform,
    rotation_sense,
)

#: Suffix -> format name.
SUFFIXES = {
    ".h5": "nr-hdf5", ".hdf5": "nr-hdf5", ".hdf": "nr-hdf5",
    ".txt": "text", ".dat": "text", ".asc": "text", ".csv": "text",
    ".npy": "npy",
}  # fmt: skip

#: lal's value of G M_sun / c^3 in seconds (LAL_MTSUN_SI), to state f_lower_at_1MSUN without importing lal.
MTSUN_SI = 4.925490947641267e-06

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NPY_SIGNATURE = b"\x93NUMPY"
NR_GROUPS = ("amp_l2_m2", "phase_l2_m2")
TEXT_COLUMNS = {"t re im": "re-im", "t amp phase": "amp-phase"}


@dataclass(frozen=True)
class UserWaveform:
    """A (2,2) mode read from a user's file.

    Attributes
    ----------
    t:
        Times in M (float64, strictly increasing, the file's own clock).
    h22:
        Complex h22 = h+ - i hx as stored (complex128, geometric units r h / M if the file is in them).
    parameters:
        ``q`` (m1/m2 >= 1), ``s1z``, ``s2z`` where the file states them, else empty.
    source:
        ``"<path> (<format>)"``.
    attrs:
        The file's own metadata (HDF5 root attributes, or ``# key = value`` text header lines).
    """

    t: np.ndarray
    h22: np.ndarray
    parameters: dict[str, float] = field(default_factory=dict)
    source: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    def canonical(self, grid: TimeGrid) -> CanonicalWaveform:
        """This waveform in the convention of a model on ``grid`` (:func:`canonical_h22`)."""
        return canonical_h22(self.t, self.h22, grid, label=self.source)


def _format_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz" and len(suffixes) > 1 and SUFFIXES.get(suffixes[-2]) == "text":
        return "text"
    if suffixes and suffixes[-1] in SUFFIXES:
        return SUFFIXES[suffixes[-1]]
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(HDF5_SIGNATURE):
        return "nr-hdf5"
    if head.startswith(NPY_SIGNATURE):
        return "npy"
    raise GwinferError(
        f"{path}: unknown waveform file suffix {path.suffix!r}; accepted: .h5/.hdf5/.hdf (LVC NR injection "
        "format), .txt/.dat/.asc/.csv (text: t, Re h22, Im h22), .npy ((N, 3) array t, Re h22, Im h22)"
    )


def read_waveform(path: str | Path, *, dt: float = 0.1) -> UserWaveform:
    """Read a (2,2) mode from ``path`` (format from its suffix; see the module docstring).

    ``dt``: step (M) of the uniform grid on which the splines of an NR HDF5 file are evaluated (ignored
    for text and npy files, whose samples are returned as they are).
    """
    path = Path(path)
    if not path.is_file():
        raise GwinferError(f"{path}: no such waveform file")
    dt = check_range("dt", dt, 1e-6, 10.0, unit="M")
    kind = _format_of(path)
    if kind == "nr-hdf5":
        t, h, parameters, attrs = _read_nr_hdf5(path, dt)
    elif kind == "text":
        t, h, parameters, attrs = _read_text(path)
    else:
        t, h, parameters, attrs = _read_npy(path)
    source = f"{path} ({kind})"
    t, h = check_waveform(t, h, source)
    return UserWaveform(t=t, h22=h, parameters=parameters, source=source, attrs=attrs)


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (str, int, float, bool or list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.ndim else _plain(value[()])
    if isinstance(value, np.generic):
        return _plain(value.item())
    return value


def _spline_data(f: h5py.File, name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) of one spline group, checked."""
    where = f"{path}: group {name!r}"
    if name not in f:
        raise GwinferError(
            f"{path}: missing group {name!r}; an LVC NR injection file (LIGO-T1500606) stores the (2,2) mode as "
            f"the amplitude and phase splines {NR_GROUPS[0]!r} and {NR_GROUPS[1]!r}"
        )
    group = f[name]
    if not isinstance(group, h5py.Group):
        raise GwinferError(f"{where} is not a group (it must hold the datasets 'X' and 'Y')")
    out = []
    for key in ("X", "Y"):
        if key not in group or not isinstance(group[key], h5py.Dataset):
            raise GwinferError(f"{where} has no dataset {key!r} (spline knots 'X' in M and values 'Y')")
        data = group[key][()]
        if data.ndim != 1 or not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
            raise GwinferError(
                f"{where}/{key} must be a 1-D array of real numbers, got shape {data.shape} {data.dtype}"
            )
        out.append(data.astype(np.float64))
    x, y = out
    if x.size != y.size:
        raise GwinferError(f"{where}: X has {x.size} values but Y has {y.size}; they must have the same length")
    if x.size < 4:
        raise GwinferError(f"{where}: {x.size} spline knots; at least 4 are needed")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise GwinferError(f"{where}: X or Y contains NaN or inf")
    if np.any(np.diff(x) <= 0):
        raise GwinferError(f"{where}: the knots X must be strictly increasing")
    return x, y


def _nr_parameters(attrs: dict[str, Any]) -> dict[str, float]:
    """q, s1z, s2z from the root attributes: spins projected on LNhat (LAL frame), q = m1/m2 >= 1."""
    out: dict[str, float] = {}
    try:
        m1, m2 = float(attrs["mass1"]), float(attrs["mass2"])
    except (KeyError, TypeError, ValueError):
        m1 = m2 = float("nan")
    ln = np.array([attrs.get(f"LNhat{c}", v) for c, v in zip("xyz", (0.0, 0.0, 1.0))], dtype=float)
    ln = ln / np.linalg.norm(ln) if np.all(np.isfinite(ln)) and np.linalg.norm(ln) > 0 else np.array([0.0, 0.0, 1.0])
    spins = []
    for i in (1, 2):
        try:
            spins.append(float(np.dot([float(attrs[f"spin{i}{c}"]) for c in "xyz"], ln)))
        except (KeyError, TypeError, ValueError):
            spins.append(float(attrs[f"spin{i}z"]) if f"spin{i}z" in attrs else float("nan"))
    if m1 < m2:  # gwinfer's q = m1/m2 >= 1: object 1 is the heavier one
        m1, m2, spins = m2, m1, spins[::-1]
    if np.isfinite(m1) and np.isfinite(m2) and m1 > 0 and m2 > 0:
        out["q"] = m1 / m2
    for name, s in zip(("s1z", "s2z"), spins):
        if np.isfinite(s):
            out[name] = s
    return out


def _read_nr_hdf5(path: Path, dt: float) -> tuple[np.ndarray, np.ndarray, dict[str, float], dict[str, Any]]:
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise GwinferError(f"{path}: not a readable HDF5 file ({err})") from None
    with f:
        (xa, ya), (xp, yp) = (_spline_data(f, name, path) for name in NR_GROUPS)
        attrs = {str(k): _plain(v) for k, v in f.attrs.items()}
    start, end = max(xa[0], xp[0]), min(xa[-1], xp[-1])
    if end - start < dt * (MIN_SAMPLES - 1):
        raise GwinferError(
            f"{path}: the amplitude and phase splines overlap on [{start:.6g}, {end:.6g}] M only; "
            f"at least {MIN_SAMPLES} samples at dt = {dt} M are needed"
        )
    t = start + dt * np.arange(int(np.floor((end - start) / dt * (1 + 1e-12))) + 1)
    # lalsimulation: gsl_interp_cspline (natural cubic spline) through (X, Y), h_lm = A exp(i Phi)
    amp = CubicSpline(xa, ya, bc_type="natural")(t)
    phase = CubicSpline(xp, yp, bc_type="natural")(t)
    return t, amp * np.exp(1j * phase), _nr_parameters(attrs), attrs


def _header(path: Path) -> dict[str, Any]:
    """``# key = value`` / ``# key: value`` comment lines (numbers as float)."""
    import gzip

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    attrs: dict[str, Any] = {}
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line.startswith("#"):
                    continue
                body = line.lstrip("#").strip()
                sep = min((i for i in (body.find("="), body.find(":")) if i > 0), default=-1)
                if sep < 0:
                    continue
                key, value = body[:sep].strip(), body[sep + 1 :].strip()
                try:
                    attrs[key] = float(value)
                except ValueError:
                    attrs[key] = value
    except (OSError, EOFError) as err:
        raise GwinferError(f"{path}: cannot read it as text ({err})") from None
    return attrs


def _read_text(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, float], dict[str, Any]]:
    attrs = _header(path)
    layout = " ".join(str(attrs.get("columns", "t re im")).replace(",", " ").lower().split())
    if layout not in TEXT_COLUMNS:
        raise GwinferError(
            f"{path}: header '# columns: {attrs['columns']}' is not one of: "
            + ", ".join(f"'{c}'" for c in TEXT_COLUMNS)
        )
    import warnings

    delimiter = "," if path.name.lower().removesuffix(".gz").endswith(".csv") else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file is reported below
            data = np.loadtxt(path, comments="#", delimiter=delimiter, ndmin=2, dtype=np.float64)
    except (ValueError, OSError, EOFError) as err:
        raise GwinferError(f"{path}: not a table of numbers ({err})") from None
    if data.size == 0:
        raise GwinferError(f"{path}: no data rows")
    if data.shape[1] == 2:
        raise GwinferError(
            f"{path}: 2 columns; h22 is complex: give 3 columns t (M), Re h22, Im h22 (h22 = h+ - i hx), or "
            "t, amplitude, phase under a '# columns: t amp phase' header line"
        )
    if data.shape[1] != 3:
        raise GwinferError(f"{path}: {data.shape[1]} columns; expected 3: t (M), Re h22, Im h22")
    t, a, b = data.T
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise GwinferError(f"{path} (text): h contains NaN or inf")
    h = a * np.exp(1j * b) if TEXT_COLUMNS[layout] == "amp-phase" else a + 1j * b
    parameters = {k: float(attrs[k]) for k in ("q", "s1z", "s2z") if isinstance(attrs.get(k), float)}
    return t, h, parameters, attrs


def _read_npy(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, float], dict[str, Any]]:
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise GwinferError(f"{path}: not a readable .npy array ({err})") from None
    if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.number):
        raise GwinferError(f"{path}: the array must hold numbers, got dtype {getattr(a, 'dtype', type(a))}")
    if np.iscomplexobj(a):
        if a.ndim == 1:
            raise GwinferError(
                f"{path}: a complex array of shape {a.shape} has no times; save an (N, 3) real array of columns "
                "t (M), Re h22, Im h22, or an (N, 2) complex array of columns t, h22"
            )
        if a.ndim == 2 and a.shape[1] == 2 and not np.any(a[:, 0].imag):
            return a[:, 0].real, a[:, 1], {}, {}
        raise GwinferError(f"{path}: complex array of shape {a.shape}; accepted: (N, 2) with real times in column 0")
    if a.ndim == 2 and a.shape[1] == 3:
        if not np.all(np.isfinite(a[:, 1:])):
            raise GwinferError(f"{path} (npy): h contains NaN or inf")
        return a[:, 0], a[:, 1] + 1j * a[:, 2], {}, {}
    hint = "; transpose it to (N, 3)" if a.ndim == 2 and a.shape[0] == 3 else ""
    raise GwinferError(f"{path}: array of shape {a.shape}; expected (N, 3) = t (M), Re h22, Im h22{hint}")


def _spline_group(f: h5py.File, name: str, x: np.ndarray, y: np.ndarray) -> None:
    """One group of the NR format: romspline's datasets, here an exact (uncompressed) cubic spline."""
    g = f.create_group(name)
    g.create_dataset("X", data=np.asarray(x, dtype=np.float64))
    g.create_dataset("Y", data=np.asarray(y, dtype=np.float64))
    g.create_dataset("deg", data=3, dtype="int")
    g.create_dataset("tol", data=0.0, dtype="double")
    g.create_dataset("errors", data=np.zeros(1), dtype="double")


def write_nr_hdf5(
    path: str | Path, t: np.ndarray, h22: np.ndarray, q: float, s1z: float, s2z: float, *,
    name: str = "gwinfer", negative_m: bool = True, attrs: dict[str, Any] | None = None,
) -> Path:  # fmt: skip
    """Write (t, h22) as a minimal LVC NR injection file (Format 2) that lalsimulation's NR_hdf5 reads.

    Parameters
    ----------
    t, h22:
        Times in M (strictly increasing) and h22 = h+ - i hx in geometric units (r h / M), sampled finely
        enough to follow the phase (fewer than 2.5 radians per sample). The samples become the spline knots:
        a natural cubic spline through them (lalsimulation's evaluation) returns them exactly.
    q, s1z, s2z:
        Mass ratio m1/m2 >= 1 and the aligned dimensionless spins (|s| <= 1).
    name:
        The file's ``name`` attribute.
    negative_m:
        Also write the (2,-2) mode, h_2-2 = conj(h22) (equatorial symmetry of aligned-spin binaries), so that
        injections at any inclination are right for the l = 2 modes.
    attrs:
        Extra or overriding root attributes (e.g. ``NR-group``, ``point-of-contact-email``).

    The binary's frame is the LAL one at the first sample: L along z (``LNhat`` = (0, 0, 1)) and the line
    from object 2 to object 1 along x (``nhat`` = (1, 0, 0)). Format 2 adds time series that lalsimulation
    reads when it is given a reference frequency: ``Omega-vs-time`` (orbital angular frequency
    -dPhi_22/dt / 2 up to the peak; also used to find the start of the requested band without the
    SEOBNRv4ROM data file that Format 1 needs), ``spin*-vs-time`` and ``LNhat*-vs-time`` (constant) and
    ``position*-vs-time`` (Newtonian circular orbits, radius (M Omega)^(-2/3) M, at the orbital phase
    -(Phi_22 - Phi_22(t0)) / 2: only used by lalsimulation to orient the frame at a reference time).
    Returns the path written.
    """
    path = Path(path)
    t, h = check_waveform(t, h22, f"write_nr_hdf5({path.name})")
    q = check_range("q", q, 1.0, 1e3)
    s1z = check_range("s1z", s1z, -1.0, 1.0)
    s2z = check_range("s2z", s2z, -1.0, 1.0)
    if rotation_sense(t, h) != H22_ROTATION:
        raise GwinferError(
            f"write_nr_hdf5({path.name}): h22's phase increases with time, as h+ + i hx would; gwinfer's and LAL's "
            "h22 = h+ - i hx turns the other way: pass its complex conjugate"
        )
    amp = np.abs(h)
    loud = amp > 1e-3 * amp.max()
    step = np.abs(np.angle(h[1:] * np.conj(h[:-1])))[loud[1:] & loud[:-1]]
    if step.size and step.max() > 2.5:
        raise GwinferError(
            f"write_nr_hdf5({path.name}): the phase moves by up to {step.max():.2f} rad per sample; sample h22 more "
            "finely (below 2.5 rad per sample) so that the phase can be unwrapped"
        )
    phase = np.unwrap(np.angle(h))
    peak = int(np.argmax(amp))
    omega = -CubicSpline(t, phase)(t[: peak + 1], 1) / 2.0  # orbital angular frequency, 1/M
    # the part of the inspiral where it rises strictly (lalsimulation interpolates t(Omega))
    rising = np.flatnonzero((omega == np.maximum.accumulate(omega)) & (omega > 0))
    rising = rising[np.r_[True, np.diff(omega[rising]) > 0]]
    t_om, om = t[rising], omega[rising]
    if om.size < 4 or om[-1] < 1.05 * om[0]:
        raise GwinferError(
            f"write_nr_hdf5({path.name}): the (2,2) frequency does not rise before the amplitude peak (by 5 % at "
            "least); not an inspiral-merger waveform"
        )
    m1, m2 = q / (1.0 + q), 1.0 / (1.0 + q)
    eta = float(symmetric_mass_ratio(q))
    orbital_phase = -(CubicSpline(t, phase)(t_om) - phase[0]) / 2.0
    radius = om ** (-2.0 / 3.0)
    spin_type = "non-spinning" if abs(s1z) < 0.01 and abs(s2z) < 0.01 else "aligned-spins"
    root: dict[str, Any] = {
        "type": "NRinjection", "Format": 2, "name": name, "alternative-names": "", "NR-group": "gwinfer",
        "NR-code": "gwinfer.data.waveform_file.write_nr_hdf5",
        "modification-date": datetime.date.today().isoformat(), "point-of-contact-email": "",
        "simulation-type": spin_type, "INSPIRE-bibtex-keys": "", "license": "unknown", "NR-techniques": "",
        "files-in-error-series": "", "comparable-simulation": "", "production-run": 1,
        "object1": "BH", "object2": "BH", "mass1": m1, "mass2": m2, "eta": eta,
        "f_lower_at_1MSUN": float(om[0]) / (np.pi * MTSUN_SI), "Omega": float(om[0]),
        "spin1x": 0.0, "spin1y": 0.0, "spin1z": s1z, "spin2x": 0.0, "spin2y": 0.0, "spin2z": s2z,
        "LNhatx": 0.0, "LNhaty": 0.0, "LNhatz": 1.0, "nhatx": 1.0, "nhaty": 0.0, "nhatz": 0.0,
        "eccentricity": -1.0, "mean_anomaly": -1.0, "PN_approximant": "none", "Lmax": 2,
    }  # fmt: skip
    root.update(attrs or {})
    with h5py.File(path, "w") as f:
        for key, value in root.items():
            f.attrs[key] = value
        _spline_group(f, "amp_l2_m2", t, amp)
        _spline_group(f, "phase_l2_m2", t, phase)
        if negative_m:
            _spline_group(f, "amp_l2_m-2", t, amp)
            _spline_group(f, "phase_l2_m-2", t, -phase)
        _spline_group(f, "Omega-vs-time", t_om, om)
        ones = np.ones_like(t_om)
        for key, value in (
            ("spin1x", 0.0),
            ("spin1y", 0.0),
            ("spin1z", s1z),
            ("spin2x", 0.0),
            ("spin2y", 0.0),
            ("spin2z", s2z),
            ("LNhatx", 0.0),
            ("LNhaty", 0.0),
            ("LNhatz", 1.0),
        ):
            _spline_group(f, f"{key}-vs-time", t_om, value * ones)
        for i, share in ((1, m2), (2, -m1)):  # centre of mass at the origin, nhat from object 2 to 1
            _spline_group(f, f"position{i}x-vs-time", t_om, share * radius * np.cos(orbital_phase))
            _spline_group(f, f"position{i}y-vs-time", t_om, share * radius * np.sin(orbital_phase))
            _spline_group(f, f"position{i}z-vs-time", t_om, 0.0 * ones)
    return path
