#!/usr/bin/env bash
# Every number of docs/results-posterior.md (5-D problem), in order. Each step resumes or skips finished work.
# ~2 min simulation, ~60 min training (one core), ~1 min p-p, reference runs tens of minutes each.
set -euo pipefail
export OMP_NUM_THREADS=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=10000000000
R=runs/gw5d
mkdir -p $R
[ -f $R/sim.h5 ] || gwinfer simulate --config configs/sim-gw5d.yaml --out $R/sim.h5 --n 300000 --workers 2 --quiet
[ -f $R/test.h5 ] || gwinfer simulate --config configs/sim-gw5d.yaml --out $R/test.h5 --n 2000 --seed 1 --quiet
gwinfer train-posterior --config configs/train-gw5d-iaf.yaml --out $R/iaf
gwinfer pp --model $R/iaf/model.pt --data $R/test.h5 --n-injections 1000 --n-samples 5000 --out $R/pp --quiet
for i in ${INJECTIONS:-0 1}; do
  [ -f $R/ref-$i.json ] || gwinfer reference --data $R/test.h5 --injection $i --out $R/ref-$i.json --nlive 1000
done
python bench/posterior_vs_reference.py --model $R/iaf/model.pt --data $R/test.h5 \
  --refs $(for i in ${INJECTIONS:-0 1}; do echo $R/ref-$i.json; done) --n 50000 --out $R/compare
