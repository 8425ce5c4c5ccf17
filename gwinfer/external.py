"""Where the shared external data lives (real LIGO strain, published posteriors, the aLIGO PSD).

``$GWINFER_EXTERNAL`` if set, else ``shared/external`` beside the repository (the team's layout), else
``/work/shared/external``. Nothing is downloaded: these files are provided beside the code.
"""

from __future__ import annotations

import os
from pathlib import Path


def external_dir() -> Path:
    """The folder of external data files (it may not exist on a machine without them)."""
    env = os.environ.get("GWINFER_EXTERNAL")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "external", Path("/work/shared/external")]
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]
