"""Side-by-side table of results.json files with the paper's row (docs/results-wavenet.md).

python bench/results_table.py NAME=path/results.json [NAME=path/results.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gwinfer.evaluation.quantiles import PAPER_TABLE


def row(name: str, r: dict) -> str:
    t, f = r["table"], r["overlap_fraction_below"]
    ov = t["overlap"]
    return (
        f"| {name} | {r['n']:,} | {ov['min']:.3f} | {ov['q1']:.4f} | {ov['median']:.4f} | {ov['q3']:.4f} | "
        f"{f['0.97']:.2%} | {f['0.90']:.2%} | {f['0.85']:.2%} | {t['q']['median']:+.4f} | "
        f"{t['q']['q1']:+.4f} / {t['q']['q3']:+.4f} | {t['s1']['q1']:+.4f} / {t['s1']['q3']:+.4f} | "
        f"{t['s2']['q1']:+.4f} / {t['s2']['q3']:+.4f} | {t['sigma_eff']['q1']:+.4f} / {t['sigma_eff']['q3']:+.4f} |"
    )


def main(args: list[str]) -> None:
    print(
        "| model / test set | n | min O | Q1 O | median O | Q3 O | O <= 0.97 | O <= 0.90 | O < 0.85 | median dq "
        "| dq Q1 / Q3 | ds1 Q1 / Q3 | ds2 Q1 / Q3 | d sigma_eff Q1 / Q3 |"
    )
    print("|" + "---|" * 14)
    print(row("paper (Khan, Huerta & Das 2020)", PAPER_TABLE))
    for arg in args:
        name, path = arg.split("=", 1)
        print(row(name, json.loads(Path(path).read_text())))


if __name__ == "__main__":
    main(sys.argv[1:])
