"""A `gwinfer analyze` posterior against a published PyCBC Inference posterior: medians and 90 % intervals.

    python bench/compare_published.py --result runs/hl/gw150914.json \\
        --published ../shared/external/posteriors/pycbc-inference-paper_GW150914_posteriors_thinned.hdf

Published samples (PyCBC Inference, De & Biwer et al. 2019 release; IMRPhenomPv2, precessing spins with
isotropic directions, detector-frame masses ``mass1``/``mass2``, ``spin{1,2}_a``/``spin{1,2}_polar``):
chirp mass and bilby's mass_ratio = m2/m1 from the masses; chi_eff = (m1 a1 cos t1 + m2 a2 cos t2)/(m1 + m2).
Prints a markdown table and writes it next to the result (``<stem>_vs_published.md`` and ``.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np

KEYS = ("chirp_mass", "mass_ratio", "chi_eff", "luminosity_distance", "theta_jn")


def published_samples(path: str | Path) -> dict[str, np.ndarray]:
    """chirp_mass, mass_ratio, chi_eff, luminosity_distance, theta_jn-like inclination from a PyCBC file."""
    with h5py.File(path, "r") as f:
        s = {k: f["samples"][k][...] for k in f["samples"]}
    m1, m2 = np.maximum(s["mass1"], s["mass2"]), np.minimum(s["mass1"], s["mass2"])
    swap = s["mass1"] < s["mass2"]
    a1 = np.where(swap, s["spin2_a"], s["spin1_a"]) * np.cos(np.where(swap, s["spin2_polar"], s["spin1_polar"]))
    a2 = np.where(swap, s["spin1_a"], s["spin2_a"]) * np.cos(np.where(swap, s["spin1_polar"], s["spin2_polar"]))
    return {
        "chirp_mass": (m1 * m2) ** 0.6 / (m1 + m2) ** 0.2,
        "mass_ratio": m2 / m1,
        "chi_eff": (m1 * a1 + m2 * a2) / (m1 + m2),
        "luminosity_distance": s["distance"],
        "theta_jn": s["inclination"],
    }


def summary(x: np.ndarray) -> tuple[float, float, float]:
    """(median, 5 %, 95 %)."""
    lo, med, hi = np.percentile(np.asarray(x, dtype=float), [5, 50, 95])
    return float(med), float(lo), float(hi)


def main() -> None:
    from bilby.core.result import read_in_result

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--result", required=True, help="bilby result of gwinfer analyze")
    ap.add_argument("--published", required=True, help="PyCBC Inference posterior file")
    a = ap.parse_args()
    ours = read_in_result(a.result).posterior
    pub = published_samples(a.published)
    rows, lines = (
        {},
        [
            "| parameter | gwinfer median [5 %, 95 %] | published median [5 %, 95 %] | offset / published 90 % width |",
            "|---|---|---|---|",
        ],
    )
    for k in KEYS:
        if k not in ours:
            continue
        m, lo, hi = summary(ours[k].to_numpy())
        pm, plo, phi = summary(pub[k])
        rows[k] = {"gwinfer": [m, lo, hi], "published": [pm, plo, phi]}
        lines.append(
            f"| {k} | {m:.3g} [{lo:.3g}, {hi:.3g}] | {pm:.3g} [{plo:.3g}, {phi:.3g}] | {(m - pm) / (phi - plo):+.2f} |"
        )
    table = "\n".join(lines) + "\n"
    stem = Path(a.result).with_suffix("")
    Path(f"{stem}_vs_published.md").write_text(table)
    Path(f"{stem}_vs_published.json").write_text(
        json.dumps({"result": a.result, "published": a.published, "rows": rows}, indent=1)
    )
    print(table)


if __name__ == "__main__":
    main()
