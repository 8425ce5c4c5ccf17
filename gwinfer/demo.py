"""``make demo``: the main job on a small built-in default, end to end, writing a report."""

from __future__ import annotations

import logging
from pathlib import Path

from gwinfer.config import from_dict, load_yaml
from gwinfer.data.generate import generate_catalogue
from gwinfer.data.grid import CatalogueConfig
from gwinfer.data.validate import summary, validate_catalogue

log = logging.getLogger(__name__)
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def run_demo(out: Path, workers: int = 2) -> None:
    """Generate the ``tiny`` catalogue in ``out/catalogue``, validate it and print its summary."""
    cfg = from_dict(CatalogueConfig, load_yaml(CONFIGS / "tiny.yaml"), "tiny.yaml")
    manifest = generate_catalogue(cfg, out / "catalogue", workers=workers)
    print(summary(manifest))
    report = validate_catalogue(out / "catalogue")
    print(f"validation: {'OK' if report['ok'] else report['problems']} ({report['checked']} waveforms)")
