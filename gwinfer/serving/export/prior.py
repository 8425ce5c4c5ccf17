"""The training prior of an exported posterior: beside the graph, in ``gwinfer.json`` and in ``config.pbtxt``.

A posterior model file that records its training prior (:func:`gwinfer.evaluation.prior_support.training_prior`:
the metadata's ``prior_text``, else its simulation's prior file) is exported with it, three times:

* ``REPO/<name>/<version>/prior.prior`` - the bilby prior file, as the training data were drawn from it;
  ``gwinfer serve`` reads it (checked against the sha256 in gwinfer.json) and rejects served draws outside;
* ``gwinfer.json`` ``posterior.prior`` - file, sha256, ``time_offset`` (s added to the ``geocent_time``
  bounds: the model's coordinates), where the text came from, the parameters checked (the graph's output
  columns, in order) and the graph's tensor names;
* ``config.pbtxt`` model parameters ``prior`` (the text) and ``prior_time_offset`` - what any client reads
  on ``GET /v2/models/<m>/config``, also from a real Triton, which runs only the graph:
  :func:`gwinfer.serving.client.sample_posterior` applies the prior itself when the server did not.

Triton ignores the extra file and reports the parameters unchanged. A model without a recorded prior is
exported as before (no file, no parameters, raw draws served).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gwinfer.errors import GwinferError
from gwinfer.evaluation.prior_support import TrainingPrior, training_prior
from gwinfer.provenance import sha256_file

PRIOR_FILE = "prior.prior"
#: config.pbtxt model parameters carrying the prior (text; geocent_time offset in s)
PRIOR_PARAMETERS = ("prior", "prior_time_offset")
RULE = (
    "served draws outside the prior's support are rejected and replaced by draws of the same model on the "
    "same input (gwinfer.evaluation.prior_support.reject_and_replace); too few inside: an error"
)


def exported_prior(meta: Mapping[str, Any], names: Sequence[str]) -> TrainingPrior | None:
    """The training prior of a posterior model file's metadata, checked to load and to hold every one of
    ``names`` (the graph's columns); None if the file records no prior. One line if it cannot be used."""
    try:
        prior = training_prior(meta)
        if prior is not None:
            prior.log_prior(list(names))
    except GwinferError as err:
        raise GwinferError(f"the model's training prior cannot be exported: {err}") from None
    return prior


def prior_parameters(prior: TrainingPrior | None) -> dict[str, str]:
    """config.pbtxt parameters of the prior: ``prior`` (the text) and ``prior_time_offset`` (s); {} for None."""
    if prior is None:
        return {}
    return {"prior": prior.text, "prior_time_offset": repr(float(prior.time_offset))}


def prior_of_parameters(params: Mapping[str, str]) -> TrainingPrior | None:
    """The prior of config parameters (:func:`prior_parameters`), or None when they name none."""
    text = params.get("prior")
    if not text:
        return None
    try:
        offset = float(params.get("prior_time_offset") or 0.0)
    except ValueError:
        raise GwinferError(f"config parameter prior_time_offset = {params['prior_time_offset']!r} is not a number")
    return TrainingPrior(text, offset, "config.pbtxt parameters")


def write_prior(
    folder: Path, prior: TrainingPrior | None, names: Sequence[str], tensors: Mapping[str, str]
) -> dict[str, Any] | None:
    """Write ``folder/prior.prior``; returns the ``posterior.prior`` record of gwinfer.json (None: no prior).

    ``tensors``: the graph's ``input``, ``noise``, ``samples`` and ``log_prob`` tensor names.
    """
    if prior is None:
        return None
    path = folder / PRIOR_FILE
    path.write_text(prior.text)
    return {
        "file": PRIOR_FILE,
        "sha256": sha256_file(path),
        "time_offset": float(prior.time_offset),
        "source": prior.source,
        "parameters": list(names),
        "tensors": dict(tensors),
        "rule": RULE,
    }
