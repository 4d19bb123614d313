#!/usr/bin/env bash
# bench.sh - the one entry point for musubi's benchmarks (run by `make bench`).
#   scripts/bench.sh all        every benchmark
#   scripts/bench.sh <name>     one of: coord overlay provision jobs propagation
# Each benchmark prints human-readable figures and appends JSON lines to
# $MUSUBI_BENCH_OUT (default bench/out/results.jsonl):
#   {"bench","figure","value","unit","baseline","baseline_value","ratio","goal"}
# Baselines are measured in the same run on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export MUSUBI_BENCH_OUT=${MUSUBI_BENCH_OUT:-$PWD/bench/out/results.jsonl}
mkdir -p "$(dirname "$MUSUBI_BENCH_OUT")"

declare -A benches=(
  [coord]="go test -count=1 -tags bench -run ^TestBenchCoord$ -v -timeout 20m ./coord/zkstore"
  [overlay]="go test -count=1 -tags bench -run ^TestBenchOverlay$ -v -timeout 30m ./overlay/ovs"
  [jobs]="go test -count=1 -tags bench -run ^TestBenchJobs$ -v -timeout 60m ./test/bench/jobs"
  [provision]="go test -count=1 -tags bench -run ^TestBenchAdmission$ -v ./node/admission && go test -count=1 -tags bench -run ^TestBenchReserve$ -v -timeout 20m ./node/reserve && go test -count=1 -tags bench -run ^TestBenchProvision$ -v -timeout 20m ./test/provision"
  [propagation]="go test -count=1 -tags bench -run ^TestBenchPropagation$ -v -timeout 20m ./test/bench/propagation"
)
order=(coord overlay provision jobs propagation)

run_one() {
  local name=$1
  local cmd=${benches[$name]:-}
  if [ -z "$cmd" ]; then
    echo "bench: unknown benchmark '$name'; known: ${order[*]}" >&2
    return 2
  fi
  echo "=== bench: $name"
  # Show only the figures and failures, not the test framework chatter.
  eval "$cmd" 2>&1 | grep -vE '^(=== RUN|=== PAUSE|=== CONT|PASS$|ok )' || return 1
}

rc=0
case "${1:-all}" in
  all) for b in "${order[@]}"; do run_one "$b" || rc=1; done ;;
  -h|--help|help) sed -n '2,9p' "$0"; exit 0 ;;
  *) run_one "$1" || rc=$? ;;
esac
echo "results appended to $MUSUBI_BENCH_OUT"
exit $rc
