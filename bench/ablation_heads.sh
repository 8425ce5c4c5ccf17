#!/usr/bin/env bash
# Head ablation on the `small` catalogue: the same reduced-basis estimator and budget (30 epochs) with the
# paper's physics-inspired head, the direct (s1, s2) baseline and the (ln q, chi_eff, chi_perp) head.
# Writes runs/ablation/<head>/results.json and prints one table (bench/ablation_table.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=10000000000 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for head in physics direct chi; do
    .venv/bin/gwinfer train --config configs/ablation/rb-$head.yaml --out runs/ablation/$head
    .venv/bin/gwinfer evaluate --model runs/ablation/$head/model.pt --data catalogues/small --split test \
        --json runs/ablation/$head/results.json --workers 1 --quiet > /dev/null
done
.venv/bin/python bench/ablation_table.py runs/ablation/physics runs/ablation/direct runs/ablation/chi
