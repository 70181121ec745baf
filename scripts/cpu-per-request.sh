#!/usr/bin/env bash
# Where a write workload's server CPU goes: CPU per written revision, by cairnd thread.
#
# Starts cairnd in a fresh data directory, runs cairn-bench against it for 15 s (100
# connections, 1000 clients, 100k-key space, 8-byte keys, 256-byte values), and between 4 s
# and 12 s into the run reads each thread's user + system time (/proc/PID/task/*/stat) and
# the store revision (/metrics). Prints µs of CPU per revision for each thread name, so for
# put and txn-put (one revision per request) it is CPU per request. Used for the per-thread
# tables in docs/benchmarks.md.
#
#   scripts/cpu-per-request.sh txn-put --txn-ops 4
#   CAIRND=/path/to/other/cairnd scripts/cpu-per-request.sh put
#
# Environment: BUILD (build), CAIRND, BENCH (binaries, default $BUILD/bin/...), WORK_DIR
# (data; default $BUILD/cpu-per-request, on the real disk).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CAIRND=${CAIRND:-$BUILD/bin/cairnd}
BENCH=${BENCH:-$BUILD/bin/cairn-bench}
WORK_DIR=${WORK_DIR:-$BUILD/cpu-per-request}
[ $# -gt 0 ] || { sed -n '2,15p' "$0"; exit 2; }

rm -rf "$WORK_DIR"
mkdir -p "$WORK_DIR"
"$CAIRND" --data-dir "$WORK_DIR/data" --listen-client-urls http://127.0.0.1:0 \
  --listen-metrics-urls http://127.0.0.1:0 > "$WORK_DIR/cairnd.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
client=
metrics=
for _ in $(seq 200); do
  client=$(grep -o 'serving etcd v3 clients on [0-9.:]*' "$WORK_DIR/cairnd.log" |
    awk '{print $6}' || true)
  metrics=$(grep -o 'serving /metrics, /health and /readyz on http://[0-9.:]*' \
    "$WORK_DIR/cairnd.log" | awk '{print $NF}' || true)
  [ -n "$client" ] && [ -n "$metrics" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
[ -n "$client" ] && [ -n "$metrics" ] || { echo "cairnd did not start:" >&2; tail -5 "$WORK_DIR/cairnd.log" >&2; exit 1; }

revision() { curl -s "$metrics/metrics" | awk '/^etcd_debugging_mvcc_current_revision /{print $2}'; }
threads() {
  for t in /proc/$pid/task/*; do
    echo "$(tr ' ' '_' < "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
  done
}

"$BENCH" --endpoints "$client" --conns 100 --clients 1000 --total 0 --duration 15 \
  --key-space-size 100000 --key-size 8 --val-size 256 "$@" > "$WORK_DIR/bench.txt" 2>&1 &
bench=$!
sleep 4
threads > "$WORK_DIR/threads.before"
r1=$(revision)
sleep 8
threads > "$WORK_DIR/threads.after"
r2=$(revision)
wait $bench
grep -E '^  [a-z]|client cpu' "$WORK_DIR/bench.txt"
python3 - "$WORK_DIR" "$r1" "$r2" "$(getconf CLK_TCK)" <<'EOF'
import collections, sys
work, r1, r2, hz = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
revisions = int(r2 - r1)
if revisions <= 0:
    sys.exit("no revisions written in the window: a write workload is needed")
def load(name):
    ticks = collections.Counter()
    for line in open(f"{work}/{name}"):
        thread, value = line.split()
        ticks[thread] += int(value)
    return ticks
before, after = load("threads.before"), load("threads.after")
print(f"revisions in the 8-s window: {revisions}")
total = 0.0
for thread in sorted(after, key=lambda t: before.get(t, 0) - after[t]):
    us = (after[thread] - before.get(thread, 0)) * 1e6 / hz / revisions
    total += us
    if us >= 0.05:
        print(f"{thread:20s} {us:6.2f} us/revision")
print(f"{'whole server':20s} {total:6.2f} us/revision")
EOF
