"""Our posterior against the published LIGO-data posteriors in ``shared/external/posteriors``.

* :func:`published_samples` reads one event's published posterior (PyCBC Inference releases; provenance in
  ``shared/external/SOURCES.md``) as DETECTOR-frame columns with bilby names.
* :func:`compare_to_published` gives, per parameter, both medians and 5/95 % quantiles (weighted when importance
  weights are given), whether our median lies inside the published 5-95 % interval, the 90 % width ratio and
  the 1-D Jensen-Shannon divergence (nats, :func:`gwinfer.evaluation.comparison.jsd_1d`);
  :func:`comparison_markdown` and :func:`comparison_json` render those rows.
* :func:`overlay_corner` draws ours (blue) over the published posterior (orange) in one corner plot.

Releases (file name prefixes in ``posteriors/``): ``pycbc-inference-paper`` (Biwer et al. 2019; GW150914,
GW151226), ``o2-bbh-pe`` (De et al. 2018; GW170104, GW170814) and ``2-ogc`` (Nitz et al. 2019; all four
events, source-frame masses in the file, converted here with its ``redshift``). All are IMRPhenomPv2,
phase-marginalised, emcee_pt runs.

Weighted quantiles (:func:`weighted_quantile`) interpolate linearly between the sorted samples placed at
cumulative weight ``S_{i-1} / (W - w_last)`` (the definition of ``corner.quantile``, so the plot's lines and
the table agree); with equal weights it is exactly ``numpy.quantile``'s default (linear) method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.evaluation.importance import check_weights, systematic_resample
from gwinfer.external import external_dir

#: release -> the events it holds; the first release listing an event is its default
RELEASES: dict[str, tuple[str, ...]] = {
    "pycbc-inference-paper": ("GW150914", "GW151226"),
    "o2-bbh-pe": ("GW170104", "GW170814"),
    "2-ogc": ("GW150914", "GW151226", "GW170104", "GW170814"),
}
EVENTS: tuple[str, ...] = ("GW150914", "GW151226", "GW170104", "GW170814")

DEFAULT_PARAMETERS: tuple[str, ...] = ("chirp_mass", "mass_ratio", "chi_eff", "luminosity_distance", "theta_jn")

#: parameter -> (LaTeX label with unit for plots, plain unit for tables; "" when dimensionless)
LABELS: dict[str, tuple[str, str]] = {
    "chirp_mass": (r"$\mathcal{M}$ [$M_\odot$]", "Msun"),
    "mass_1": (r"$m_1$ [$M_\odot$]", "Msun"),
    "mass_2": (r"$m_2$ [$M_\odot$]", "Msun"),
    "mass_ratio": (r"$q$", ""),
    "chi_eff": (r"$\chi_{\rm eff}$", ""),
    "chi_1": (r"$\chi_1$", ""),
    "chi_2": (r"$\chi_2$", ""),
    "luminosity_distance": (r"$d_L$ [Mpc]", "Mpc"),
    "theta_jn": (r"$\theta_{JN}$ [rad]", "rad"),
    "ra": (r"$\alpha$ [rad]", "rad"),
    "dec": (r"$\delta$ [rad]", "rad"),
    "psi": (r"$\psi$ [rad]", "rad"),
    "geocent_time": (r"$t_c$ [s]", "s (GPS)"),
}

OURS_COLOR = "tab:blue"
PUBLISHED_COLOR = "tab:orange"
QUANTILES = (0.05, 0.5, 0.95)


class PublishedSamples(dict):
    """``dict[str, np.ndarray]`` of one published posterior, with ``event``, ``release`` and ``path`` (its file)."""

    def __init__(self, columns: Mapping[str, np.ndarray], event: str, release: str, path: Path) -> None:
        super().__init__(columns)
        self.event, self.release, self.path = event, release, Path(path)


def published_path(event: str, release: str | None = None) -> Path:
    """The file of ``event``'s published posterior in ``release`` (default: see the module docstring)."""
    ev = str(event).strip().upper()
    if ev not in EVENTS:
        raise GwinferError(f"no published posterior for event {event!r}; accepted: {', '.join(EVENTS)}")
    if release is None:
        release = next(r for r, evs in RELEASES.items() if ev in evs)
    if release not in RELEASES:
        raise GwinferError(f"unknown release {release!r}; accepted: {', '.join(RELEASES)}")
    if ev not in RELEASES[release]:
        raise GwinferError(
            f"release {release!r} has no posterior of {ev}; it holds {', '.join(RELEASES[release])}"
            f" ({', '.join(r for r, evs in RELEASES.items() if ev in evs)} hold {ev})"
        )
    folder = external_dir() / "posteriors"
    found = sorted(folder.glob(f"{release}_{ev}_*.hdf"))
    if len(found) != 1:
        what = "no file" if not found else f"{len(found)} files"
        raise GwinferError(f"{what} matching {release}_{ev}_*.hdf in {folder} (set GWINFER_EXTERNAL to the folder)")
    return found[0]


def published_samples(event: str, release: str | None = None) -> PublishedSamples:
    """Published posterior samples of ``event`` as DETECTOR-frame columns with bilby names.

    ``event``: GW150914, GW151226, GW170104 or GW170814. ``release``: None (the PyCBC Inference paper files for
    GW150914/GW151226, o2-bbh-pe for GW170104/GW170814), ``"pycbc-inference-paper"``, ``"o2-bbh-pe"`` or
    ``"2-ogc"`` (whose source-frame masses are multiplied by ``1 + redshift``).

    Columns (float64, one row per sample): ``mass_1 >= mass_2`` [Msun] (the files' mass1/mass2, swapped where
    mass1 < mass2), ``chirp_mass`` [Msun] and ``mass_ratio`` = m2/m1 <= 1 (bilby.gw.conversion), ``chi_eff`` =
    (m1 a1 cos t1 + m2 a2 cos t2) / (m1 + m2) from the spin magnitudes and tilts (``spin*_polar``),
    ``luminosity_distance`` [Mpc], ``theta_jn`` [rad] = the files' ``inclination`` (for these precessing
    IMRPhenomPv2 runs the inclination of the orbital angular momentum L at f_ref = 20 Hz to the line of sight,
    a close proxy for the angle of the total angular momentum J), ``ra``, ``dec`` [rad], ``psi`` [rad] = the
    files' ``polarization`` taken modulo pi (bilby's range; the strain is unchanged by psi -> psi + pi) and
    ``geocent_time`` = ``tc`` [GPS s]. The result also carries ``.event``, ``.release`` and ``.path``.
    """
    import h5py
    from bilby.gw.conversion import component_masses_to_chirp_mass, component_masses_to_mass_ratio

    path = published_path(event, release)
    rel = release if release is not None else path.name.split("_", 1)[0]
    try:
        with h5py.File(path, "r") as f:
            s = f["samples"]
            raw = {k: np.asarray(s[k][()], dtype=float) for k in s.keys()}
    except (OSError, KeyError) as err:
        raise GwinferError(f"cannot read the posterior samples of {path}: {err}") from None
    need = ["mass1", "mass2", "spin1_a", "spin1_polar", "spin2_a", "spin2_polar", "distance", "inclination"]
    need += ["ra", "dec", "polarization", "tc"] + (["redshift"] if rel == "2-ogc" else [])
    missing = [k for k in need if k not in raw]
    if missing:
        raise GwinferError(f"{path.name} lacks samples/{', samples/'.join(missing)}")
    frame = 1.0 + raw["redshift"] if rel == "2-ogc" else 1.0
    m_a, m_b = raw["mass1"] * frame, raw["mass2"] * frame
    chi_eff = (
        m_a * raw["spin1_a"] * np.cos(raw["spin1_polar"]) + m_b * raw["spin2_a"] * np.cos(raw["spin2_polar"])
    ) / (m_a + m_b)
    m1, m2 = np.maximum(m_a, m_b), np.minimum(m_a, m_b)
    cols = {
        "chirp_mass": np.asarray(component_masses_to_chirp_mass(m1, m2), dtype=float),
        "mass_ratio": np.asarray(component_masses_to_mass_ratio(m1, m2), dtype=float),
        "mass_1": m1,
        "mass_2": m2,
        "chi_eff": chi_eff,
        "luminosity_distance": raw["distance"],
        "theta_jn": raw["inclination"],
        "ra": raw["ra"],
        "dec": raw["dec"],
        "psi": np.mod(raw["polarization"], np.pi),
        "geocent_time": raw["tc"],
    }
    return PublishedSamples(cols, path.name.split("_", 2)[1], rel, path)


def weighted_quantile(values: Any, q: Any, weights: Any | None = None) -> np.ndarray:
    """Quantiles ``q`` (in [0, 1]) of ``values``, weighted by ``weights`` (see the module docstring).

    Without weights this is ``numpy.quantile(values, q)``; zero-weight samples are ignored.
    """
    x = np.asarray(values, dtype=float).reshape(-1)
    qs = np.asarray(q, dtype=float)
    if x.size == 0:
        raise GwinferError("weighted_quantile needs at least one sample")
    if np.any((qs < 0) | (qs > 1)):
        raise GwinferError(f"quantiles {q!r} must lie in [0, 1]")
    if weights is None:
        return np.quantile(x, qs)
    w = check_weights(weights, x.size)
    keep = w > 0
    x, w = x[keep], w[keep]
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    if x.size == 1:
        return np.full(qs.shape, x[0])
    cdf = np.concatenate([[0.0], np.cumsum(w)[:-1]])
    cdf /= cdf[-1]
    return np.interp(qs, cdf, x)


def _column(samples: Mapping[str, Any], name: str, which: str) -> np.ndarray:
    if name not in samples:
        raise GwinferError(f"{which} samples have no {name!r}; they have {', '.join(map(str, samples))}")
    return np.asarray(samples[name], dtype=float).reshape(-1)


def compare_to_published(
    samples: Mapping[str, Any],
    published: Mapping[str, Any],
    parameters: Sequence[str] = DEFAULT_PARAMETERS,
    weights: np.ndarray | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per parameter comparing ``samples`` (ours, optionally importance-``weights``) to ``published``.

    Row keys: ``parameter``, ``unit``, ``median``, ``p05``, ``p95`` (ours, weighted quantiles with weights),
    ``published_median``, ``published_p05``, ``published_p95``, ``inside`` (our median within the published
    [5 %, 95 %]), ``width_ratio`` (our 90 % width / the published one), ``jsd`` (nats, ``jsd_1d`` default KDE;
    with weights ours is first brought to equal weights by a systematic resample of len(samples) draws seeded by
    ``seed``), ``n`` and ``n_published``, and with weights ``ess`` (Kish effective sample size). Plain Python
    floats and bools, ready for JSON.
    """
    from gwinfer.evaluation.comparison import jsd_1d

    if isinstance(parameters, str):
        parameters = (parameters,)
    if not parameters:
        raise GwinferError("compare_to_published needs at least one parameter")
    cols = {p: _column(samples, p, "our") for p in parameters}
    pub = {p: _column(published, p, "published") for p in parameters}
    n = {c.size for c in cols.values()}
    if len(n) != 1:
        raise GwinferError(f"our sample columns have different lengths {sorted(n)}")
    n_ours = n.pop()
    w = None if weights is None else check_weights(weights, n_ours)
    pick = None if w is None else systematic_resample(w, n_ours, seed)
    rows = []
    for p in parameters:
        ours, ref = cols[p], pub[p]
        lo, med, hi = weighted_quantile(ours, QUANTILES, w)
        rlo, rmed, rhi = weighted_quantile(ref, QUANTILES)
        width = rhi - rlo
        row = {
            "parameter": p,
            "unit": LABELS.get(p, ("", ""))[1],
            "median": float(med),
            "p05": float(lo),
            "p95": float(hi),
            "published_median": float(rmed),
            "published_p05": float(rlo),
            "published_p95": float(rhi),
            "inside": bool(rlo <= med <= rhi),
            "width_ratio": float((hi - lo) / width) if width > 0 else float("nan"),
            "jsd": float(jsd_1d(ours if pick is None else ours[pick], ref)),
            "n": int(n_ours),
            "n_published": int(ref.size),
        }
        if w is not None:
            row["ess"] = float(w.sum() ** 2 / np.sum(w**2))
        rows.append(row)
    return rows


def _decimals(*widths: float) -> int:
    """Decimal places giving about 3 significant figures of the smallest positive interval width."""
    ok = [abs(x) for x in widths if np.isfinite(x) and x != 0]
    return max(0, 2 - math.floor(math.log10(min(ok)))) if ok else 3


def _interval(med: float, lo: float, hi: float, d: int) -> str:
    return f"{med:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def comparison_markdown(
    rows: Sequence[Mapping[str, Any]], title: str = "Comparison with the published posterior", other: str = "published"
) -> str:
    """A Markdown table of :func:`compare_to_published` rows: median [5 %, 95 %] of both, inside, width, JSD;
    ``other`` names the second posterior ("published", or "reference" for another result)."""
    out = [
        f"### {title}",
        "",
        f"| parameter | unit | ours: median [5 %, 95 %] | {other}: median [5 %, 95 %] | median inside | "
        "90 % width ratio | JSD (nats) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = _decimals(r["p95"] - r["p05"], r["published_p95"] - r["published_p05"])
        out.append(
            f"| {r['parameter']} | {r.get('unit') or '-'} | {_interval(r['median'], r['p05'], r['p95'], d)} | "
            f"{_interval(r['published_median'], r['published_p05'], r['published_p95'], d)} | "
            f"{'yes' if r['inside'] else 'no'} | {r['width_ratio']:.2f} | {r['jsd']:.4f} |"
        )
    n = rows[0]["n"] if rows else 0
    ess = f", ESS {rows[0]['ess']:.0f}" if rows and "ess" in rows[0] else ""
    npub = rows[0]["n_published"] if rows else 0
    out += ["", f"{n} samples of ours{ess}; {npub} {other} samples. Detector-frame masses."]
    return "\n".join(out) + "\n"


def _plain(v: Any) -> Any:
    """A JSON-ready copy: numpy scalars to Python, NaN/inf to None, containers recursively."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, Path):
        return str(v)
    return v


def comparison_json(
    rows: Sequence[Mapping[str, Any]], title: str | None = None, published: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Plain data for ``json.dumps``: ``{"title", "event", "release", "published_file", "rows"}`` (NaN -> null).

    ``published``: the :func:`published_samples` result, whose event, release and file name are recorded.
    """
    return _plain(
        {
            "title": title,
            "event": getattr(published, "event", None),
            "release": getattr(published, "release", None),
            "published_file": getattr(getattr(published, "path", None), "name", None),
            "quantiles": list(QUANTILES),
            "rows": [dict(r) for r in rows],
        }
    )


def _span(arrays: Sequence[np.ndarray], weights: Sequence[np.ndarray | None]) -> tuple[float, float]:
    """A plot range holding the central 99.8 % of every set, padded by 5 %."""
    los, his = [], []
    for a, w in zip(arrays, weights):
        lo, hi = weighted_quantile(a, (0.001, 0.999), w)
        los.append(lo)
        his.append(hi)
    lo, hi = min(los), max(his)
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(lo) * 1e-3, 1e-6)
    return float(lo - pad), float(hi + pad)


def overlay_corner(
    samples: Mapping[str, Any],
    published: Mapping[str, Any],
    path: str | Path,
    parameters: Sequence[str] = DEFAULT_PARAMETERS,
    labels: Mapping[str, str] | None = None,
    weights: np.ndarray | None = None,
    ours_label: str = "gwinfer",
    published_label: str | None = None,
    title: str | None = None,
    dpi: int = 110,
) -> Path:
    """Corner plot of ours (blue) over the published posterior (orange), written atomically as a PNG at ``path``.

    1-D panels: normalised histograms with dashed 5/50/95 % lines (weighted for ours when ``weights`` are
    given); 2-D panels: 50 % and 90 % contours. ``labels``: LaTeX axis labels overriding :data:`LABELS` (which
    carry units). ``published_label`` defaults to "published: <file name>" when ``published`` comes from
    :func:`published_samples`. Uses the ``corner`` package (a bilby dependency).
    """
    from matplotlib.lines import Line2D

    from gwinfer.evaluation.figures import pyplot, save_png

    pyplot()
    import corner

    if isinstance(parameters, str):
        parameters = (parameters,)
    ours = np.column_stack([_column(samples, p, "our") for p in parameters])
    ref = np.column_stack([_column(published, p, "published") for p in parameters])
    w = None if weights is None else check_weights(weights, ours.shape[0])
    names = {p: LABELS.get(p, (p, ""))[0] for p in parameters}
    names.update(labels or {})
    ranges = [_span([ours[:, i], ref[:, i]], [w, None]) for i in range(len(parameters))]
    common = dict(
        labels=[names[p] for p in parameters],
        range=ranges,
        bins=40,
        smooth=1.0,
        smooth1d=None,
        levels=(0.5, 0.9),
        quantiles=list(QUANTILES),
        plot_datapoints=False,
        plot_density=False,
        fill_contours=False,
        label_kwargs={"fontsize": 13},
        max_n_ticks=4,
        labelpad=0.08,
    )
    # fresh hist_kwargs per call: corner writes its colour into the dict it is given
    fig = corner.corner(ref, color=PUBLISHED_COLOR, hist_kwargs={"density": True, "lw": 1.5}, **common)
    corner.corner(ours, weights=w, color=OURS_COLOR, fig=fig, hist_kwargs={"density": True, "lw": 1.5}, **common)
    k = len(parameters)
    axes = np.array(fig.axes).reshape(k, k)
    for i in range(k):  # corner sets each 1-D panel's height from the last set drawn; fit both
        ax = axes[i, i]
        top = max((float(np.max(pt.get_xy()[:, 1])) for pt in ax.patches), default=0.0)
        if top > 0:
            ax.set_ylim(0, 1.1 * top)
    if published_label is None:
        src = getattr(published, "path", None)
        published_label = f"published: {Path(src).name}" if src is not None else "published"
    handles = [
        Line2D([], [], color=OURS_COLOR, lw=2, label=ours_label),
        Line2D([], [], color=PUBLISHED_COLOR, lw=2, label=published_label),
        Line2D([], [], color="0.3", lw=1, ls="--", label="5 / 50 / 95 %"),
    ]
    top = 0.98
    if title:
        fig.text(0.98, top, title, ha="right", va="top", fontsize=14, weight="bold")
        top -= 0.04
    fig.legend(handles=handles, loc="upper right", bbox_to_anchor=(0.98, top), fontsize=11, frameon=False)
    return save_png(fig, path, dpi)
