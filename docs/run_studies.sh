#!/bin/sh
# Runs every study of docs/studies.md on a spinnet server and draws its
# figure into docs/figures/ (PNG, SVG and the plotted numbers as JSON).
#
#   build/server/spinnet-server --data-dir /tmp/studies --training-workers 2 &
#   PYTHONPATH=build/client/python sh docs/run_studies.sh
#
# SPINNET_SERVER picks the server (default 127.0.0.1:50051); OUT the
# directory; EPOCHS and SEEDS the size (docs/studies.md says why: 20 epochs
# x 10 seeds, and 30 epochs for Fig. 2b, where the CTRNN needs them).
set -eu
OUT=${OUT:-docs/figures}
EPOCHS=${EPOCHS:-20}
SEEDS=${SEEDS:-10}
PY=${PYTHON:-/usr/bin/python3}
DT=0.1,0.2,0.5,1,2,5
study() { "$PY" -m spinnet.study --epochs "$EPOCHS" --seeds "$SEEDS" --out "$OUT" "$@"; }

study fig2b --dt-in $DT --epochs "${FIG2B_EPOCHS:-30}"
study fig3a --dt-in $DT
study fig3b --dt-in $DT
# Fig. 3c: its own sweeps at small input intervals (where D nears 1), then
# every point of them and of Figs. 3a and 3b against D, and against D / K.
study fig3c --dt-in 0.02,0.05,0.1,0.2 --out "$OUT/low-drive"
ids=$("$PY" -c '
import json, sys
ids = []
for name in sys.argv[1:]:
    ids += json.load(open(name))["sweeps"]
print(",".join(dict.fromkeys(ids)))' "$OUT/low-drive/fig3c.json" "$OUT/fig3a.json" "$OUT/fig3b.json")
study fig3c --from-sweeps "$ids"
study fig3c --from-sweeps "$ids" --per-input-steps 64 --out "$OUT/per-input"
study fig4
study fig5
study variability
study traces
