"""Evaluation: waveform overlaps and the paper's error table.

``gwinfer.evaluation.overlap`` (module) is pure numpy, with torch only inside its optional
``backend="torch"`` path; ``gwinfer.evaluation.errors`` builds the quantile table of prediction errors of
Khan, Huerta & Das (2020). The scalar ``overlap`` function is deliberately not re-exported here, so that
``gwinfer.evaluation.overlap`` keeps naming the module: use ``from gwinfer.evaluation.overlap import overlap``.
"""

from gwinfer.evaluation.errors import PAPER_TABLE, error_table, format_table, quantile_row
from gwinfer.evaluation.overlap import (
    fft_length,
    overlap_batch,
    overlap_batch_with_shift,
    overlap_with_shift,
)

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
