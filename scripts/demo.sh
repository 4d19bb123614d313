#!/usr/bin/env bash
# demo.sh - the main job on one machine (run by `make demo` after deps and build).
# Today: a three-site federation's coordination layer (one ZooKeeper server and
# one peer session per site) surviving the loss of the ensemble's leader.
# Everything it starts is stopped at the end, also on Ctrl-C or failure.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bin/musubi local demo --sites "${SITES:-3}"
