"""Compare the JSON outputs of two bench/same_outputs.sh runs number by number (provenance, times and paths
skipped): python bench/compare_outputs.py OUT_A OUT_B."""

import json
import math
import sys
from pathlib import Path

a, b = Path(sys.argv[1]), Path(sys.argv[2])


def flat(x, pre=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from flat(v, f"{pre}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from flat(v, f"{pre}[{i}]")
    else:
        yield pre, x


SKIP = (
    "provenance",
    "command",
    "created",
    "time",
    "seconds",
    "version",
    "libraries",
    "sha256",
    "path",
    "log_",
    "sampling_time",
    "meta_data.command",
)
for f in sorted(a.glob("*.json")):
    A = dict(flat(json.loads(f.read_text())))
    B = dict(flat(json.loads((b / f.name).read_text())))
    diffs, maxrel, n = [], 0.0, 0
    for k, v in A.items():
        if any(s in k for s in SKIP):
            continue
        w = B.get(k, "<missing>")
        if isinstance(v, float) and isinstance(w, float):
            n += 1
            if v != w and not (math.isnan(v) and math.isnan(w)):
                maxrel = max(maxrel, abs(v - w) / max(abs(v), 1e-300))
                diffs.append(k)
        elif v != w:
            diffs.append(k)
    print(f"{f.name}: {n} numbers, {len(diffs)} differ (max rel {maxrel:.2g})", diffs[:5])
