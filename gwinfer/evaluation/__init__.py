"""Evaluation of point estimators (overlaps, the paper's error table, figures, report) and of posterior
estimators (bilby results, p-p tests, comparisons, importance sampling, the reference sampler, real events).

Point estimators (Khan, Huerta & Das 2020):

* :mod:`~gwinfer.evaluation.overlap` - overlap maximised over time and phase (pure numpy, optional torch);
* :mod:`~gwinfer.evaluation.quantiles` - the quantile table of prediction errors and overlaps;
* :mod:`~gwinfer.evaluation.predictions` - the per-waveform :class:`Evaluation` record of a split;
* :mod:`~gwinfer.evaluation.evaluate` - ``gwinfer predict`` / ``gwinfer evaluate`` on a catalogue split;
* :mod:`~gwinfer.evaluation.plots`, :mod:`~gwinfer.evaluation.report`, :mod:`~gwinfer.evaluation.degeneracy`
  - the paper's figures, the HTML report, degeneracy maps (:mod:`~gwinfer.evaluation.figures`: PNG output).

Posterior estimators (bilby conventions):

* :mod:`~gwinfer.evaluation.posterior` - samples as a ``bilby`` ``Result`` (derived parameters by
  ``bilby.gw.conversion``, corner plot by ``Result.plot_corner``);
* :mod:`~gwinfer.evaluation.pp` - p-p test (``bilby.core.result.make_pp_plot``);
* :mod:`~gwinfer.evaluation.comparison` - Jensen-Shannon divergences and errors against a reference;
* :mod:`~gwinfer.evaluation.importance` - importance sampling (weights, ESS, evidence);
* :mod:`~gwinfer.evaluation.reference` - the bilby/dynesty reference posterior on the same likelihood;
* :mod:`~gwinfer.evaluation.analyze` - real events from GWOSC strain.

The scalar ``overlap`` function is deliberately not re-exported here, so that ``gwinfer.evaluation.overlap``
keeps naming the module: use ``from gwinfer.evaluation.overlap import overlap``.
"""

from gwinfer.evaluation.overlap import (
    fft_length,
    overlap_batch,
    overlap_batch_with_shift,
    overlap_with_shift,
)
from gwinfer.evaluation.quantiles import PAPER_TABLE, error_table, format_table, quantile_row

__all__ = [
    "PAPER_TABLE",
    "error_table",
    "fft_length",
    "format_table",
    "overlap_batch",
    "overlap_batch_with_shift",
    "overlap_with_shift",
    "quantile_row",
]
