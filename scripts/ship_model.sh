#!/usr/bin/env bash
# Copy a finished training run into models/NAME with its config, command, log and evaluation results.
#   scripts/ship_model.sh RUN_DIR NAME CONFIG [CATALOGUE_CONFIG]   (default configs/small.yaml)
set -euo pipefail
run=$1 name=$2 config=$3 catalogue=${4:-configs/small.yaml}
cat_name=$(basename "$catalogue" .yaml)
dest=models/$name
mkdir -p "$dest"
cp "$run/model.pt" "$dest/model.pt"
cp "$config" "$dest/config.yaml"
cp "$run/log.csv" "$dest/log.csv"
for f in "$run"/results-*.json; do [ -e "$f" ] && cp "$f" "$dest/"; done
cat > "$dest/README.md" <<EOT
# $name

Trained with

    gwinfer train --config $config --out $run

on the \`$cat_name\` catalogue (\`gwinfer generate --config $catalogue --out catalogues/$cat_name\`),
evaluated with

    gwinfer evaluate --model models/$name --data catalogues/small --split test --json results-test.json
    gwinfer evaluate --model models/$name --data catalogues/offgrid --split test --json results-offgrid.json

\`config.yaml\` is the experiment, \`log.csv\` the per-epoch losses, \`results-*.json\` the error tables with
provenance; \`gwinfer info --json models/$name\` prints the time grid, approximant and provenance inside
\`model.pt\`. Results and discussion: docs/results-wavenet.md.
EOT
ls -la "$dest"
