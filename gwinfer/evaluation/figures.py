"""Figures without a display: matplotlib on the Agg backend and PNG files written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gwinfer.provenance import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the non-interactive Agg backend selected (imported lazily)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | Path, dpi: int) -> Path:
    """Write ``fig`` to ``path`` as PNG at ``dpi`` dots per inch in one atomic step, then close it."""
    plt = pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)
