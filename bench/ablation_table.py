"""Print a Markdown table comparing results.json files: median |error| and overlap statistics per run.

python bench/ablation_table.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(dirs: list[str]) -> None:
    print(
        "| run | median dq | IQR dq | IQR ds1 | IQR ds2 | IQR d sigma_eff | median overlap | Q1 overlap | below 0.97 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for d in dirs:
        r = json.loads((Path(d) / "results.json").read_text())
        t = r["table"]
        iqr = {k: t[k]["q3"] - t[k]["q1"] for k in ("q", "s1", "s2", "sigma_eff")}
        print(
            f"| {Path(d).name} | {t['q']['median']:+.4f} | {iqr['q']:.4f} | {iqr['s1']:.4f} | {iqr['s2']:.4f} | "
            f"{iqr['sigma_eff']:.4f} | {t['overlap']['median']:.5f} | {t['overlap']['q1']:.5f} | "
            f"{r['overlap_fraction_below']['0.97']:.2%} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
