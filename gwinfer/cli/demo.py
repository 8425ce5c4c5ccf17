"""``make demo``: the main job on a small built-in default, end to end, writing a report.

1. generate the ``tiny`` catalogue (312 IMRPhenomT waveforms over [-10000, 130] M) and validate it;
2. train gwinfer's reduced-basis estimator on it for a minute (``configs/train-tiny.yaml``);
3. evaluate that model and every point estimator shipped in ``models/`` on the tiny test split (the
   posterior models there have their own results: docs/results-posterior.md), with overlaps over
   the full window, and write ``OUT/report/index.html`` linking one report per model.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

from gwinfer.config import from_dict, load_yaml
from gwinfer.data.generate import generate_catalogue
from gwinfer.data.grid import CatalogueConfig
from gwinfer.data.validate import summary, validate_catalogue
from gwinfer.provenance import atomic_path

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
CONFIGS, MODELS = REPO / "configs", REPO / "models"


def _is_point_model(path: Path) -> bool:
    """True for a point-estimator file; posterior estimators are evaluated elsewhere."""
    from gwinfer.models import is_posterior_file

    return not is_posterior_file(path)


def run_demo(out: Path, workers: int = 2) -> Path:
    """Run the demo into ``out``; returns the path of the report's index page."""
    from gwinfer.evaluation.evaluate import evaluate_model
    from gwinfer.training.point import train_point

    out = Path(out)
    cfg = from_dict(CatalogueConfig, load_yaml(CONFIGS / "tiny.yaml"), "tiny.yaml")
    catalogue = out / "catalogue"
    manifest = generate_catalogue(cfg, catalogue, workers=workers)
    print(summary(manifest))
    report = validate_catalogue(catalogue)
    print(f"validation: {'OK' if report['ok'] else report['problems']} ({report['checked']} waveforms)")

    exp = load_yaml(CONFIGS / "train-tiny.yaml")
    exp["data"]["catalogue"] = str(catalogue.resolve())
    exp_path = out / "train-tiny.yaml"
    exp_path.write_text(json.dumps(exp, indent=2))
    models = {"demo (trained just now on tiny)": train_point(exp_path, out / "run")}
    models.update({f"shipped: {p.parent.name}": p for p in sorted(MODELS.glob("*/model.pt")) if _is_point_model(p)})

    rows = []
    for i, (name, path) in enumerate(models.items()):
        sub = out / "report" / f"model{i}"
        res = evaluate_model(
            path,
            catalogue,
            "test",
            json_path=sub / "results.json",
            report_dir=sub,
            workers=workers,
            title=f"{name} on the tiny test split",
        )
        ov, frac = res["table"]["overlap"], res["overlap_fraction_below"]
        rows.append(
            f"<tr><td><a href='model{i}/index.html'>{html.escape(name)}</a></td><td>{ov['median']:.4f}</td>"
            f"<td>{ov['q1']:.4f}</td><td>{frac['0.97']:.1%}</td><td>{res['table']['q']['median']:+.4f}</td></tr>"
        )
        print(f"{name}: median overlap {ov['median']:.4f}, Q1 {ov['q1']:.4f}, {frac['0.97']:.1%} below 0.97")
    index = out / "report" / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(
            "<!doctype html><html><head><meta charset='utf-8'><title>gwinfer demo</title></head><body>"
            "<h1>gwinfer demo: the tiny catalogue</h1><p>"
            + html.escape(summary(manifest)).replace("\n", "<br>")
            + "</p><table border=1 cellpadding=4><tr><th>model</th><th>median overlap</th><th>Q1</th>"
            "<th>below 0.97</th><th>median &Delta;q</th></tr>" + "".join(rows) + "</table></body></html>"
        )
    print(f"report: {index}")
    return index
