"""What a posterior result records about its data: strain files, PSDs, sampling, waveform (bilby's layout).

bilby keeps what the likelihood saw in a result's ``meta_data["likelihood"]`` (``interferometers``,
``sampling_frequency`` [Hz], ``duration`` [s], ``start_time`` [GPS s], ``waveform_arguments``), and
``bilby.gw.result.CBCResult`` and pesummary read it from there. :func:`likelihood_record` builds that
mapping for gwinfer's observations, each detector carrying the provenance of its strain and of the PSD that
whitened it (path or lalsimulation curve, sha256):

* ``strain`` - a whitened-strain file (``gwinfer sample --strain``; :func:`strain_record`), with the record
  ``gwinfer prepare`` wrote beside it (GWOSC files, off-source PSD files) when there is one;
* ``simulation`` - an injection of a simulation file (:func:`simulation_record`): its PSDs are the config's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gwinfer.errors import GwinferError


def file_record(path: str | Path) -> dict[str, Any]:
    """``{"path": absolute path, "sha256"}`` of an existing file (sha256 None if it is gone)."""
    from gwinfer.provenance import sha256_file

    p = Path(path)
    return {"path": str(p.resolve()), "sha256": sha256_file(p) if p.is_file() else None}


def psd_record(spec: str) -> dict[str, Any]:
    """``{"source", "sha256"}`` of a PSD spec (a two-column file or a lalsimulation curve name), as
    :func:`gwinfer.data.simulate.load_psd` identifies it."""
    from gwinfer.data.simulate import load_psd

    _, source, sha = load_psd(str(spec))
    return {"source": source, "sha256": sha}


def prepared_segment(path: str | Path) -> dict[str, Any] | None:
    """The record ``gwinfer prepare`` wrote beside a whitened segment (``<stem>.json``), or None."""
    side = Path(path).with_suffix(".json")
    if not side.is_file():
        return None
    try:
        rec = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("kind") == "whitened-segment" else None


def strain_record(path: str | Path, config: Any = None) -> dict[str, dict[str, Any]]:
    """``{detector: {"strain", "psd"}}`` for a whitened-strain file: the file itself (path, sha256) and,
    when ``gwinfer prepare`` made it, each detector's GWOSC file and off-source PSD file (path, sha256).
    Without that record the PSD that whitened it is unknown (``"psd": None``); ``config`` (the model's
    simulation config) names the detectors."""
    seg = prepared_segment(path)
    strain = file_record(path)
    detectors = list(seg["detectors"]) if seg else list(getattr(config, "detectors", ()) or ["unknown"])
    out: dict[str, dict[str, Any]] = {}
    for det in detectors:
        entry: dict[str, Any] = {"strain": strain, "psd": None}
        if seg:
            entry["gwosc_file"] = seg.get("files", {}).get(det)
            psd_file = seg.get("psds", {}).get(det)
            if psd_file:
                fr = file_record(psd_file)
                entry["psd"] = {"source": fr["path"], "sha256": fr["sha256"], "method": "off-source median Welch"}
        out[det] = entry
    return out


def simulation_record(path: str | Path, config: Any, injection: int, noise_seed: int) -> dict[str, dict[str, Any]]:
    """``{detector: {"strain", "psd"}}`` for injection ``injection`` of the simulation file ``path`` with
    noise seeded by ``noise_seed``: the file (path, sha256) and the config's PSD of each detector."""
    sim = file_record(path)
    strain = {"simulation": sim, "injection": int(injection), "noise_seed": int(noise_seed)}
    return {det: {"strain": strain, "psd": psd_record(spec)} for det, spec in config.detector_psds.items()}


def likelihood_record(
    config: Any = None,
    interferometers: Mapping[str, Mapping[str, Any]] | None = None,
    start_time: float | None = None,
) -> dict[str, Any]:
    """bilby's ``meta_data["likelihood"]`` for an observation: ``interferometers`` ({detector: provenance},
    see :func:`strain_record`, :func:`simulation_record`) and, from the model's simulation ``config``,
    ``sampling_frequency`` [Hz], ``duration`` [s], ``minimum_frequency``/``maximum_frequency`` [Hz] of the
    whitening band and ``waveform_arguments`` (approximant, reference and minimum frequency [Hz]);
    ``start_time``: GPS s of the segment start, when known."""
    rec: dict[str, Any] = {"interferometers": {str(k): dict(v) for k, v in (interferometers or {}).items()}}
    if config is not None:
        try:
            fs = float(config.fs)
            rec |= {
                "sampling_frequency": fs,
                "duration": float(config.duration),
                "minimum_frequency": float(config.f_min),
                "maximum_frequency": float(config.f_max if config.f_max is not None else fs / 2),
                "waveform_arguments": {
                    "waveform_approximant": str(config.approximant),
                    "reference_frequency": float(config.f_ref),
                    "minimum_frequency": float(config.f_min),
                },
            }
        except AttributeError as err:
            raise GwinferError(f"likelihood_record: config lacks {err.name!r} (a simulation config?)") from None
    if start_time is not None:
        rec["start_time"] = float(start_time)
    return rec
