#!/usr/bin/env bash
# Importance-sampled posteriors of the O1/O2 events in ../shared/external with the shipped event model, and
# their comparison with the published PyCBC releases (issue 15; docs/results-posterior.md):
#   bash scripts/events.sh [MODEL] [OUT]      (default models/event-o1/model.pt, runs/events/final)
#   EVENTS="GW151226 LVT151012" bash scripts/events.sh      (a subset)
# Each event: gwinfer analyze --importance-sample (its wall time is what `time` prints), then gwinfer compare;
# an event that fails is reported and the next one runs.
set -uo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/event-o1/model.pt}
OUT=${2:-runs/events/final}
S=../shared/external/strain
GW=${GWINFER:-.venv/bin/gwinfer}
mkdir -p "$OUT"
# event  trigger GPS (BBH_events_v3.json)  file stem  published release (none: no release here)
while read -r EVENT GPS STEM; do
    case " ${EVENTS:-$EVENT} " in *" $EVENT "*) ;; *) continue ;; esac
    echo "== $EVENT"
    /usr/bin/time -f "$EVENT wall %e s" "$GW" analyze --model "$MODEL" --h1 "$S/H-H1_LOSC_4_$STEM.hdf5" \
        --l1 "$S/L-L1_LOSC_4_$STEM.hdf5" --gps "$GPS" --out "$OUT/$EVENT.json" --importance-sample \
        --target-ess 2000 --workers 2 --seed 0 --allow-low-ess 2>&1 | grep --line-buffered -v "bilby INFO" \
        | tee "$OUT/$EVENT.log" || echo "$EVENT failed"
    if [ "$EVENT" != LVT151012 ]; then
        "$GW" compare --result "$OUT/$EVENT.json" --event "$EVENT" --out "$OUT/$EVENT-vs-published" | tail -12 \
            || echo "$EVENT: no comparison"
    fi
done <<'LIST'
GW150914 1126259462.44 V2-1126259446-32
GW151226 1135136350.65 V2-1135136334-32
LVT151012 1128678900.44 V2-1128678884-32
GW170104 1167559936.6 V1-1167559920-32
LIST
