"""The reference posterior of a real event: bilby + dynesty on exactly the likelihood importance sampling
uses (:func:`gwinfer.evaluation.event_is.build_likelihood`: the event's segment and off-source PSD, the
bank's approximant, band and prior, phase and time marginalised), so the two can be compared parameter by
parameter (``gwinfer analyze --dynesty``; issue 15).

Cost: ~2.7 ms per likelihood call on this CPU (IMRPhenomD, 8 s at 4096 Hz, two detectors). Measured on
GW150914 with nlive 200, naccept 15 and one process: 1.1 M calls, 77 min (docs/results-posterior.md); the
defaults (nlive 500, naccept 60) cost several times more.
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np

from gwinfer.checks import positive_int
from gwinfer.evaluation.event_is import LikelihoodSpec, build_likelihood


def event_reference(
    spec: LikelihoodSpec,
    *,
    nlive: int = 500,
    naccept: int = 60,
    npool: int = 1,
    seed: int = 0,
    label: str = "dynesty",
    outdir: str | None = None,
) -> Any:
    """A bilby ``CBCResult`` of dynesty on ``spec``'s likelihood and prior (geocent_time reconstructed in GPS s,
    the phase too, by bilby's ``generate_posterior_sample_from_marginalized_likelihood``).

    ``nlive`` live points, ``naccept`` accepted steps per walk (bilby's ``acceptance-walk``), ``npool``
    likelihood processes, ``seed`` for dynesty and bilby's generator. ``outdir``: bilby's checkpoint folder
    (resumable; a temporary folder by default)."""
    import bilby
    from bilby.core.utils import random as brandom
    from bilby.gw.result import CBCResult

    from gwinfer.evaluation.posterior import quiet_bilby

    for name, v, low in (("nlive", nlive, 10), ("naccept", naccept, 1), ("npool", npool, 1)):
        positive_int(v, name, low)
    likelihood = build_likelihood(spec)
    priors = bilby.core.prior.PriorDict(dict(likelihood.priors))
    # the marginalised parameters are fixed to the values the importance sampler passes (EventSampler.weigh)
    priors["geocent_time"], priors["phase"] = float(spec.start), 0.0
    saved = brandom.Generator.rng
    brandom.Generator.rng = np.random.default_rng(seed)
    try:
        with quiet_bilby(), tempfile.TemporaryDirectory(prefix="gwinfer-dynesty-") as tmp:
            result = bilby.run_sampler(
                likelihood,
                priors,
                sampler="dynesty",
                nlive=nlive,
                naccept=naccept,
                sample="acceptance-walk",
                npool=npool,
                seed=seed,
                label=label,
                outdir=outdir or tmp,
                resume=outdir is not None,
                check_point_plot=False,
                plot=False,
                save=False,
                result_class=CBCResult,
                conversion_function=bilby.gw.conversion.generate_all_bbh_parameters,
            )
    finally:
        brandom.Generator.rng = saved
    result.outdir = outdir or "."
    return result
