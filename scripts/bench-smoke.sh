#!/usr/bin/env bash
# A short put/range benchmark against cairnd alone that fails (exit 1) when throughput falls
# below a conservative floor. Not part of `make test`; run it with `make bench-smoke`.
#
# The floors, and why (2-core machine, client and server sharing it, 10 conns, 100 clients,
# 10k-key space). Measured on the project machine with two compilers running beside it (load
# average 3.4): put 9.7–10.9k/s, range 21–25k/s; on a quieter machine put ≈ 23k/s, range ≈ 35k/s.
#   put   >= 4,000/s  — ≈ 2.5× under the noisiest figure, so noise does not fail it; a put path
#                       that lost group commit *and* serialised requests (one fdatasync per
#                       put, ≤ 1 / 200 µs ≈ 5k/s, less with the apply cost) would fall under it.
#   range >= 8,000/s  — reads need no sync; ≈ 2.5× under the noisiest figure.
# These catch order-of-magnitude regressions, not 20% ones: use scripts/bench-vs-etcd.sh for
# those, on a quiet machine.
# Override with PUT_FLOOR / RANGE_FLOOR; BUILD selects the build directory (default build).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
CAIRND=${CAIRND:-$BUILD/bin/cairnd}
BENCH=${BENCH:-$BUILD/bin/cairn-bench}
PUT_FLOOR=${PUT_FLOOR:-4000}
RANGE_FLOOR=${RANGE_FLOOR:-8000}

mkdir -p "$BUILD/bench-data"
DIR=$(mktemp -d "$BUILD/bench-data/smoke.XXXXXX")  # the real disk, not tmpfs
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT

"$CAIRND" --data-dir "$DIR/data" --listen-client-urls http://127.0.0.1:0 \
  --listen-metrics-urls "" >"$DIR/cairnd.log" 2>&1 &
PID=$!
ENDPOINT=""
for _ in $(seq 1 200); do
  ENDPOINT=$(grep -o 'serving etcd v3 clients on [0-9.:]*' "$DIR/cairnd.log" | awk '{print $6}' || true)
  [ -n "$ENDPOINT" ] && break
  kill -0 "$PID" 2>/dev/null || { cat "$DIR/cairnd.log" >&2; exit 1; }
  sleep 0.05
done
[ -n "$ENDPOINT" ] || { echo "cairnd did not start" >&2; exit 1; }

status=0
# check <name> <floor> <cairn-bench args...>
check() {
  local name=$1 floor=$2 out throughput errors
  shift 2
  out=$("$BENCH" --endpoints "$ENDPOINT" --conns 10 --clients 100 --key-size 8 --val-size 256 \
    --key-space-size 10000 -w json "$@")
  throughput=$(echo "$out" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["throughput_per_s"]))')
  errors=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["errors"])')
  if [ "$throughput" -lt "$floor" ] || [ "$errors" -ne 0 ]; then
    echo "FAIL bench-smoke $name: $throughput/s (floor $floor/s), $errors errors" >&2
    status=1
  else
    echo "ok   bench-smoke $name: $throughput/s (floor $floor/s)"
  fi
}
check put "$PUT_FLOOR" --total 30000 put
check range "$RANGE_FLOOR" --total 50000 range
exit $status
