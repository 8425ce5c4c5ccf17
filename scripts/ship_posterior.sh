#!/usr/bin/env bash
# Copy a finished posterior training run into models/NAME with its configs and log (results are added by hand).
#   scripts/ship_posterior.sh RUN_DIR NAME TRAIN_CONFIG SIM_CONFIG
set -euo pipefail
run=$1 name=$2 config=$3 sim=$4
dest=models/$name
mkdir -p "$dest"
cp "$run/model.pt" "$dest/model.pt"
cp "$config" "$dest/config.yaml"
cp "$sim" "$dest/simulation.yaml"
cp "$run/log.csv" "$dest/log.csv"
ls -la "$dest"
