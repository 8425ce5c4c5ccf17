"""Users' waveform files: the LVC NR injection HDF5 format checked against lalsimulation's own reader,
plain text and .npy round trips, and one-line refusals of malformed files."""

from __future__ import annotations

import gzip
from pathlib import Path

import h5py
import lal
import lalsimulation as lalsim
import numpy as np
import pytest

from gwinfer.data.waveform_file import UserWaveform, read_waveform, write_nr_hdf5
from gwinfer.errors import GwinferError
from gwinfer.physics import TimeGrid

Q, S1, S2 = 3.0, 0.3, -0.2
DT = 0.1  # M
TOTAL_MASS = 60.0  # solar masses, for lalsimulation's physical units
DIST = 1e6 * lal.PC_SI


def phenomt(dt: float, mf_min: float = 0.0045) -> tuple[np.ndarray, np.ndarray]:
    """IMRPhenomT h22 = (h+ - i hx) / -2Y22(0, 0) straight from lalsimulation (times in M, peak at t = 0),
    cut 200 M after the peak."""
    m1, m2 = TOTAL_MASS * Q / (1 + Q), TOTAL_MASS / (1 + Q)
    t_unit = TOTAL_MASS * lal.MTSUN_SI
    hp, hc = lalsim.SimInspiralChooseTDWaveform(
        m1 * lal.MSUN_SI, m2 * lal.MSUN_SI, 0, 0, S1, 0, 0, S2, DIST, 0, 0, 0, 0, 0,
        dt * t_unit, mf_min / t_unit, mf_min / t_unit, lal.CreateDict(), lalsim.IMRPhenomT,
    )  # fmt: skip
    h = (hp.data.data - 1j * hc.data.data) * DIST / (TOTAL_MASS * lal.MRSUN_SI) / np.sqrt(5 / (4 * np.pi))
    t = float(hp.epoch) / t_unit + dt * np.arange(h.size)
    keep = t <= 200.0
    return t[keep], h[keep]


@pytest.fixture(scope="module")
def original() -> tuple[np.ndarray, np.ndarray]:
    return phenomt(DT)


@pytest.fixture(scope="module")
def nr_file(tmp_path_factory, original) -> Path:
    t, h = original
    return write_nr_hdf5(tmp_path_factory.mktemp("nr") / "phenomt.h5", t, h, Q, S1, S2, name="IMRPhenomT q3")


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------- NR HDF5 (LVC NR injection format)


def test_nr_file_reads_back_exactly(nr_file, original) -> None:
    t, h = original
    w = read_waveform(nr_file)
    assert isinstance(w, UserWaveform) and w.source == f"{nr_file} (nr-hdf5)"
    assert w.t.dtype == np.float64 and w.h22.dtype == np.complex128
    # the reader's grid starts at the first knot with the file's clock: the knots come back as they were
    assert w.t.size == t.size and np.max(np.abs(w.t - t)) < 1e-9
    assert np.max(np.abs(w.h22 - h)) < 1e-12 * np.abs(h).max()  # measured 1e-13
    assert w.parameters == pytest.approx({"q": Q, "s1z": S1, "s2z": S2})
    assert w.attrs["Format"] == 2 and w.attrs["type"] == "NRinjection" and w.attrs["name"] == "IMRPhenomT q3"
    assert w.attrs["eta"] == pytest.approx(Q / (1 + Q) ** 2) and w.attrs["Lmax"] == 2


def test_nr_splines_between_the_knots(nr_file) -> None:
    """At dt = 0.05 M half the samples fall between knots: the natural cubic splines of amplitude and phase
    against IMRPhenomT generated there (same clock: lalsimulation's epoch does not depend on dt)."""
    t, h = phenomt(0.05)
    w = read_waveform(nr_file, dt=0.05)
    n = min(w.t.size, t.size)
    assert np.max(np.abs(w.t[:n] - t[:n])) < 1e-9
    err = np.abs(w.h22[:n] - h[:n]) / np.abs(h).max()
    assert err.max() < 1e-7  # measured 3.0e-8, in the last 100 M before the peak
    assert err[t[:n] < -100].max() < 1e-9  # measured 1.8e-10


def test_nr_file_has_the_format_2_layout(nr_file) -> None:
    with h5py.File(nr_file) as f:
        for group in (
            "amp_l2_m2",
            "phase_l2_m2",
            "amp_l2_m-2",
            "phase_l2_m-2",
            "Omega-vs-time",
            "spin1z-vs-time",
            "LNhatz-vs-time",
            "position1x-vs-time",
            "position2y-vs-time",
        ):
            assert {"X", "Y", "deg", "tol", "errors"} <= set(f[group]), group
        for key in ("mass1", "mass2", "spin1x", "spin2z", "LNhatz", "nhatx", "f_lower_at_1MSUN", "Omega", "Lmax"):
            assert key in f.attrs, key
        om = f["Omega-vs-time/Y"][()]
        assert np.all(np.diff(om) > 0) and np.all(np.diff(f["Omega-vs-time/X"][()]) > 0)
        assert f.attrs["f_lower_at_1MSUN"] == pytest.approx(om[0] / (np.pi * lal.MTSUN_SI), rel=1e-9)
        # the (2,-2) mode is the conjugate of the (2,2) one (aligned spins)
        np.testing.assert_array_equal(f["phase_l2_m-2/Y"][()], -f["phase_l2_m2/Y"][()])


def lalsim_hlms_22(path: Path, mode_array: bool = True) -> tuple[float, np.ndarray]:
    """(start time in M, h22 in geometric units) from lalsimulation's NR reader, from the file's start."""
    m1, m2 = TOTAL_MASS * Q / (1 + Q), TOTAL_MASS / (1 + Q)
    with h5py.File(path) as f:
        f_lower = float(f.attrs["f_lower_at_1MSUN"]) / TOTAL_MASS
    modes = None
    if mode_array:  # only (2,2): lalsimulation does not then probe the absent l = 2, |m| < 2 groups
        modes = lalsim.SimInspiralCreateModeArray()
        lalsim.SimInspiralModeArrayActivateMode(modes, 2, 2)
    try:
        out = lalsim.SimInspiralNRWaveformGetHlms(
            DT * TOTAL_MASS * lal.MTSUN_SI, m1 * lal.MSUN_SI, m2 * lal.MSUN_SI, DIST, f_lower, 0.0,
            0.0, 0.0, S1, 0.0, 0.0, S2, str(path), modes,
        )  # fmt: skip
    except RuntimeError as err:
        pytest.skip(f"lalsimulation cannot read NR HDF5 files here: {err}")
    hlms = out[1] if isinstance(out, list) else out
    h22 = lalsim.SphHarmTimeSeriesGetMode(hlms, 2, 2)
    return float(h22.epoch) / (TOTAL_MASS * lal.MTSUN_SI), h22.data.data * DIST / (TOTAL_MASS * lal.MRSUN_SI)


def test_lalsimulation_reads_the_same_22_mode(nr_file) -> None:
    """THE INDEPENDENT CHECK: lalsimulation's own NR reader (XLALSimInspiralNRWaveformGetHlms) on the file
    that write_nr_hdf5 wrote, against read_waveform's h22 at the same sample times."""
    start, ref = lalsim_hlms_22(nr_file)
    w = read_waveform(nr_file, dt=DT)
    # lalsimulation keeps the file's clock (its epoch is the first knot, to the GPS nanosecond) ...
    assert start == pytest.approx(w.t[0], abs=1e-5)
    n = min(ref.size, w.h22.size)  # lalsimulation stops one sample earlier (ceil vs floor of the span)
    assert n >= w.h22.size - 1
    mine = w.h22[:n]
    # ... and its (2,2) mode differs by one constant factor: the NR-to-LAL frame rotation, here exactly 1
    factor = np.vdot(mine, ref[:n]) / np.vdot(mine, mine)
    assert abs(factor - 1.0) < 1e-12  # measured 5e-14
    assert np.max(np.abs(ref[:n] - mine)) < 1e-12 * np.abs(mine).max()  # measured 1.1e-13


def test_lalsimulation_and_reader_canonicalise_identically(nr_file) -> None:
    """Both through canonical_h22 (peak and phase alignment) onto a model grid."""
    start, ref = lalsim_hlms_22(nr_file)
    grid = TimeGrid(-3000.0, 100.0, 1.0)
    a = canonical_of(start + DT * np.arange(ref.size), ref, grid)
    b = read_waveform(nr_file).canonical(grid)
    assert a.warnings == [] and b.warnings == []
    assert b.peak_time == pytest.approx(a.peak_time, abs=1e-9)
    assert abs(b.peak_time) < 1e-3  # IMRPhenomT's clock: the peak is at t = 0
    assert np.linalg.norm(a.h - b.h) / np.linalg.norm(a.h) < 1e-10  # measured 1e-13


def canonical_of(t, h, grid):
    from gwinfer.waveforms.canonical import canonical_h22

    return canonical_h22(t, h, grid, label="lalsimulation")


@pytest.mark.parametrize("f_ref_factor", [0.0, 1.3])
def test_lalsimulation_injects_the_file(nr_file, f_ref_factor: float) -> None:
    """The injection path, SimInspiralChooseTDWaveform with approximant NR_hdf5, face on: h+ - i hx is
    h22 -2Y22(0, 0) up to a constant phase (at f_ref > 0 lalsimulation reads the Format 2 time series)."""
    m1, m2 = TOTAL_MASS * Q / (1 + Q), TOTAL_MASS / (1 + Q)
    w = read_waveform(nr_file)
    f_lower = w.attrs["f_lower_at_1MSUN"] / TOTAL_MASS
    params = lal.CreateDict()
    lalsim.SimInspiralWaveformParamsInsertNumRelData(params, str(nr_file))
    modes = lalsim.SimInspiralCreateModeArray()
    for m in (2, -2):
        lalsim.SimInspiralModeArrayActivateMode(modes, 2, m)
    lalsim.SimInspiralWaveformParamsInsertModeArray(params, modes)
    hp, hc = lalsim.SimInspiralChooseTDWaveform(
        m1 * lal.MSUN_SI, m2 * lal.MSUN_SI, 0, 0, S1, 0, 0, S2, DIST, 0.0, 0.0, 0, 0, 0,
        DT * TOTAL_MASS * lal.MTSUN_SI, f_lower, f_ref_factor * f_lower, params, lalsim.NR_hdf5,
    )  # fmt: skip
    ref = (hp.data.data - 1j * hc.data.data) * DIST / (TOTAL_MASS * lal.MRSUN_SI) / np.sqrt(5 / (4 * np.pi))
    assert float(hp.epoch) / (TOTAL_MASS * lal.MTSUN_SI) == pytest.approx(w.t[0], abs=1e-5)
    mine = w.h22[: ref.size]
    factor = np.vdot(mine, ref) / np.vdot(mine, mine)
    assert abs(abs(factor) - 1.0) < 1e-12
    assert np.max(np.abs(ref - factor * mine)) < 1e-12 * np.abs(mine).max()


def test_nr_masses_given_lighter_first(tmp_path, original) -> None:
    path = write_nr_hdf5(tmp_path / "swap.h5", *original, Q, S1, S2)
    with h5py.File(path, "a") as f:
        f.attrs["mass1"], f.attrs["mass2"] = f.attrs["mass2"], f.attrs["mass1"]
        f.attrs["spin1z"], f.attrs["spin2z"] = f.attrs["spin2z"], f.attrs["spin1z"]
    assert read_waveform(path).parameters == pytest.approx({"q": Q, "s1z": S1, "s2z": S2})


def test_nr_file_without_parameters(tmp_path, original) -> None:
    path = write_nr_hdf5(tmp_path / "bare.h5", *original, Q, S1, S2)
    with h5py.File(path, "a") as f:
        for key in list(f.attrs):
            del f.attrs[key]
    w = read_waveform(path)
    assert w.parameters == {} and w.attrs == {}


def broken_copy(tmp_path: Path, nr_file: Path, edit) -> Path:
    path = tmp_path / "broken.h5"
    path.write_bytes(nr_file.read_bytes())
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def _replace(f: h5py.File, name: str, data) -> None:
    del f[name]
    f[name] = data


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda f: f.__delitem__("phase_l2_m2"), r"missing group 'phase_l2_m2'; an LVC NR injection file"),
        (lambda f: f.__delitem__("amp_l2_m2/Y"), r"group 'amp_l2_m2' has no dataset 'Y'"),
        (lambda f: _replace(f, "amp_l2_m2/Y", f["amp_l2_m2/Y"][:-1]), "X has .* values but Y has"),
        (lambda f: _replace(f, "phase_l2_m2/Y", np.full(f["phase_l2_m2/Y"].shape, np.nan)), "contains NaN or inf"),
        (lambda f: _replace(f, "amp_l2_m2/X", np.flip(f["amp_l2_m2/X"][()])), "knots X must be strictly increasing"),
        (lambda f: _replace(f, "amp_l2_m2/X", np.ones((3, 4))), r"amp_l2_m2'/X must be a 1-D array"),
    ],
)
def test_malformed_nr_files_are_refused_in_one_line(tmp_path, nr_file, edit, match) -> None:
    with pytest.raises(GwinferError, match=match) as err:
        read_waveform(broken_copy(tmp_path, nr_file, edit))
    assert one_line(err).startswith(str(tmp_path))


def test_format_1_needs_lalsimulations_seobnrv4rom_data(tmp_path, nr_file) -> None:
    """Why write_nr_hdf5 writes Format 2: for Format 1 lalsimulation estimates the start time with
    SEOBNRv4ROM, whose data file (SEOBNRv4ROM_v3.0.hdf5, lalsuite-waveform-data) pip's lalsuite lacks."""
    path = broken_copy(tmp_path, nr_file, lambda f: f.attrs.__setitem__("Format", 1))
    assert read_waveform(path).attrs["Format"] == 1  # our reader does not care
    try:
        lalsim_hlms_22(path)
    except pytest.skip.Exception as skipped:
        assert "Generic failure" in str(skipped) or "Internal function call failed" in str(skipped)
    else:  # a lalsuite with its waveform data reads it too
        pass


# ---------------------------------------------------------------- plain text and npy


@pytest.fixture(scope="module")
def short(original) -> tuple[np.ndarray, np.ndarray]:
    t, h = original
    keep = t > -300
    return t[keep], h[keep]


def test_text_round_trip(tmp_path, short) -> None:
    t, h = short
    path = tmp_path / "h22.txt"
    np.savetxt(path, np.c_[t, h.real, h.imag], header=f"q = {Q}\ns1z: {S1}\ns2z = {S2}\nsimulation = test 1")
    w = read_waveform(path)
    np.testing.assert_array_equal(w.t, t)
    np.testing.assert_array_equal(w.h22, h)
    assert w.parameters == {"q": Q, "s1z": S1, "s2z": S2}
    assert w.attrs["simulation"] == "test 1" and w.source == f"{path} (text)"


def test_text_variants(tmp_path, short) -> None:
    t, h = short
    csv = tmp_path / "h22.csv"
    np.savetxt(csv, np.c_[t, h.real, h.imag], delimiter=",", header="t,re,im")
    np.testing.assert_array_equal(read_waveform(csv).h22, h)
    gz = tmp_path / "h22.dat.gz"
    with gzip.open(gz, "wt") as f:
        np.savetxt(f, np.c_[t, h.real, h.imag])
    np.testing.assert_array_equal(read_waveform(gz).h22, h)
    polar = tmp_path / "polar.txt"
    np.savetxt(polar, np.c_[t, np.abs(h), np.unwrap(np.angle(h))], header="columns: t amp phase")
    np.testing.assert_allclose(read_waveform(polar).h22, h, rtol=0, atol=1e-13)


def write_text(tmp_path: Path, text: str, name: str = "bad.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text,match",
    [
        ("0 1\n1 2\n", "2 columns; h22 is complex: give 3 columns t"),
        ("0 1 2 3\n1 2 3 4\n", "4 columns; expected 3"),
        ("# nothing\n", "no data rows"),
        ("0 1 2\n1 x 3\n", "not a table of numbers"),
        ("0 1 2\n1 2\n", "not a table of numbers"),
        ("# columns: t hp hc\n0 1 2\n", "header '# columns: t hp hc' is not one of"),
    ],
)
def test_malformed_text_is_refused_in_one_line(tmp_path, text, match) -> None:
    with pytest.raises(GwinferError, match=match) as err:
        read_waveform(write_text(tmp_path, text))
    one_line(err)


def test_text_values_are_checked(tmp_path, short) -> None:
    t, h = short
    rows = np.c_[t, h.real, h.imag]
    bad = rows.copy()
    bad[10, 1] = np.nan
    np.savetxt(tmp_path / "nan.txt", bad)
    with pytest.raises(GwinferError, match=r"nan.txt \(text\): h contains NaN or inf") as err:
        read_waveform(tmp_path / "nan.txt")
    one_line(err)
    np.savetxt(tmp_path / "order.txt", rows[::-1])
    with pytest.raises(GwinferError, match="t must be strictly increasing") as err:
        read_waveform(tmp_path / "order.txt")
    one_line(err)
    np.savetxt(tmp_path / "few.txt", rows[:5])
    with pytest.raises(GwinferError, match="5 samples; at least 16 are needed") as err:
        read_waveform(tmp_path / "few.txt")
    one_line(err)


def test_npy_round_trip(tmp_path, short) -> None:
    t, h = short
    np.save(tmp_path / "h22.npy", np.c_[t, h.real, h.imag])
    w = read_waveform(tmp_path / "h22.npy")
    np.testing.assert_array_equal(w.t, t)
    np.testing.assert_array_equal(w.h22, h)
    assert w.parameters == {} and w.attrs == {} and w.source.endswith("(npy)")
    np.save(tmp_path / "pairs.npy", np.c_[t, h])  # complex (N, 2): times in a real column 0
    np.testing.assert_array_equal(read_waveform(tmp_path / "pairs.npy").h22, h)


@pytest.mark.parametrize(
    "array,match",
    [
        (lambda t, h: h, r"a complex array of shape \(\d+,\) has no times; save an \(N, 3\) real array"),
        (lambda t, h: np.c_[t, h.real, h.imag].T, r"array of shape \(3, \d+\); expected \(N, 3\).*transpose it"),
        (lambda t, h: np.c_[t, h.real], r"array of shape \(\d+, 2\); expected \(N, 3\)"),
        (lambda t, h: np.c_[t + 1j, h], r"complex array of shape \(\d+, 2\); accepted: \(N, 2\) with real times"),
        (lambda t, h: np.c_[t, h.real, np.where(t > 0, np.inf, h.imag)], "h contains NaN or inf"),
        (lambda t, h: np.array(["a", "b"]), "the array must hold numbers"),
    ],
)
def test_malformed_npy_is_refused_in_one_line(tmp_path, short, array, match) -> None:
    np.save(tmp_path / "bad.npy", array(*short))
    with pytest.raises(GwinferError, match=match) as err:
        read_waveform(tmp_path / "bad.npy")
    one_line(err)


def test_pickled_npy_is_refused(tmp_path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"t": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(GwinferError, match="not a readable .npy array") as err:
        read_waveform(tmp_path / "obj.npy")
    one_line(err)


# ---------------------------------------------------------------- choosing the format


def test_unknown_suffix_and_missing_file(tmp_path, nr_file, short) -> None:
    with pytest.raises(GwinferError, match=r"unknown waveform file suffix '.xyz'; accepted: .h5") as err:
        read_waveform(write_text(tmp_path, "0 1 2\n", "h22.xyz"))
    one_line(err)
    with pytest.raises(GwinferError, match="no such waveform file") as err:
        read_waveform(tmp_path / "absent.h5")
    one_line(err)
    with pytest.raises(GwinferError, match=r"not a readable HDF5 file") as err:
        read_waveform(write_text(tmp_path, "0 1 2\n", "fake.h5"))
    one_line(err)
    # an unknown suffix is read by content when it is HDF5 or npy
    renamed = tmp_path / "simulation.lvcnr"
    renamed.write_bytes(nr_file.read_bytes())
    assert read_waveform(renamed).source.endswith("(nr-hdf5)")
    np.save(tmp_path / "h22.npy", np.c_[short[0], short[1].real, short[1].imag])
    (tmp_path / "h22.npy").rename(tmp_path / "h22.array")
    assert read_waveform(tmp_path / "h22.array").source.endswith("(npy)")


# ---------------------------------------------------------------- write_nr_hdf5's refusals


def test_write_refuses_what_lalsimulation_would_misread(tmp_path, short) -> None:
    t, h = short
    with pytest.raises(GwinferError, match="pass its complex conjugate") as err:
        write_nr_hdf5(tmp_path / "c.h5", t, np.conj(h), Q, S1, S2)
    one_line(err)
    with pytest.raises(GwinferError, match="rad per sample; sample h22 more finely") as err:
        write_nr_hdf5(tmp_path / "c.h5", t[::80], h[::80], Q, S1, S2)
    one_line(err)
    with pytest.raises(GwinferError, match=r"q = 0.5 is outside the accepted range \[1.0, 1000.0\]") as err:
        write_nr_hdf5(tmp_path / "c.h5", t, h, 0.5, S1, S2)
    one_line(err)
    with pytest.raises(GwinferError, match="frequency does not rise before the amplitude peak") as err:
        write_nr_hdf5(tmp_path / "c.h5", t, np.abs(h) * np.exp(-0.3j * t), Q, S1, S2)
    one_line(err)
