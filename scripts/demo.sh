#!/usr/bin/env bash
# demo.sh - the main job on one machine (run by `make demo` after deps and build).
# Today: a three-site federation on loopback (one ZooKeeper server, one peer
# session and one node agent per site) runs the virtual-screening workload of
# examples/virtual-screening - an AutoDock Vina array job submitted with qsub
# at site 3, docked at all three sites - while the ensemble loses its leader;
# then it prints the best ligands and the accounting.
# Knobs: SITES (default 3), LIGANDS (1-16, default 16; 0 skips the workload),
# EXHAUSTIVENESS (vina's search effort, default 1).
# Everything it starts is stopped at the end, also on Ctrl-C or failure.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bin/musubi local demo --sites "${SITES:-3}" --ligands "${LIGANDS:-16}" \
  --exhaustiveness "${EXHAUSTIVENESS:-1}" --example examples/virtual-screening
