#!/usr/bin/env bash
# usage: bench/same_outputs.sh CHECKOUT OUTDIR  -- evaluate/sample outputs of the shipped models from one checkout
# (PYTHONPATH=CHECKOUT); run it on two checkouts and compare with bench/compare_outputs.py A B (issue 12).
set -euo pipefail
WT=$1; OUT=$2; SCRATCH=${SCRATCH:-/tmp/gwinfer-same}; mkdir -p $OUT $SCRATCH
cd $WT
export PYTHONPATH=$WT OMP_NUM_THREADS=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=10000000000
G="${PYTHON:-python} -m gwinfer.cli"
[ -f ${SCRATCH}/tiny/manifest.json ] || $G generate --config configs/tiny.yaml --out ${SCRATCH}/tiny --workers 1 --quiet
[ -f ${SCRATCH}/gw5d.h5 ] || $G simulate --config models/gw5d-iaf-ft/simulation.yaml --n 4 --seed 1 --out ${SCRATCH}/gw5d.h5 --quiet
[ -f ${SCRATCH}/hl.h5 ] || $G simulate --config models/hl-student/simulation.yaml --n 2 --seed 1 --out ${SCRATCH}/hl.h5 --quiet
for m in rb-chi-random80k wavenet-af-small wavenet-small; do
  $G evaluate --model models/$m --data ${SCRATCH}/tiny --split test --json $OUT/$m.json > $OUT/$m.txt
done
for m in gw5d-iaf-ft gw5d-iaf; do
  $G sample --model models/$m/model.pt --data ${SCRATCH}/gw5d.h5 --injection 0 --n 2000 --out $OUT/$m-sample.json --no-corner > $OUT/$m-sample.txt
done
for m in hl-student hl-teacher hl-gw150914; do
  $G sample --model models/$m/model.pt --data ${SCRATCH}/hl.h5 --injection 0 --n 500 --out $OUT/$m-sample.json --no-corner > $OUT/$m-sample.txt
done
echo done
