#!/usr/bin/env bash
# Event appends against one cairnd: the matrix of docs/benchmarks.md ("Event store"): batches
# of 1, 10, 100 events over 1, 1,000 and 100,000 streams, REPS interleaved repetitions, each
# run on a fresh cairnd and data directory. Prints one line per run; medians are left to the
# reader (or: sort by cell). RATE=<appends/s> runs the half-load latency check instead
# (batch BATCH, default 100).
# Usage: BUILD=build REPS=3 bash scripts/bench-events.sh
set -euo pipefail
BUILD=${BUILD:-build}
REPS=${REPS:-3}
DURATION=${DURATION:-4}
PORT=${PORT:-23790}
DATA=$(mktemp -d /tmp/cairn-bench-events.XXXXXX)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$DATA"' EXIT

run_one() {  # <batch> <streams> [rate]
  rm -rf "$DATA/d"
  "$BUILD/bin/cairnd" --data-dir "$DATA/d" --listen-client-urls "http://127.0.0.1:$PORT" \
    --listen-peer-urls "http://127.0.0.1:$((PORT + 10))" \
    --listen-metrics-urls "http://127.0.0.1:$((PORT + 20))" >"$DATA/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    grep -q "serving etcd v3 clients" "$DATA/log" && break
    sleep 0.05
  done
  local rate_flags=()
  [ -n "${3:-}" ] && rate_flags=(--rate "$3")
  out=$("$BUILD/bin/cairn-bench" --endpoints "127.0.0.1:$PORT" --conns 4 --clients 32 --total 0 \
    --duration "$DURATION" "${rate_flags[@]}" --val-size 100 events-append --batch "$1" \
    --streams "$2" 2>&1)
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "batch=$1 streams=$2 rate=${3:-max} events_per_s=$(echo "$out" | awk '/^events_per_s/ {print $2}')" \
    "$(echo "$out" | grep -o 'p50 [0-9.]* p90 [0-9.]* p99 [0-9.]*' | head -1)"
}

for rep in $(seq 1 "$REPS"); do
  if [ -n "${RATE:-}" ]; then
    run_one "${BATCH:-100}" 1000 "$RATE"
    continue
  fi
  for batch in 1 10 100; do
    for streams in 1 1000 100000; do run_one "$batch" "$streams"; done
  done
done
