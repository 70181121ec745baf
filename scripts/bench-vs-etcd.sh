#!/usr/bin/env bash
# Cairn vs etcd, same client, same machine, same durability (both fsync before acknowledging).
#
# Starts Debian's etcd and cairnd in fresh data directories on free loopback ports, runs every
# workload against both alternately (etcd, Cairn, etcd, Cairn, ... for ROUNDS rounds, a fresh
# server per run so each run's peak RSS is its own), and writes medians and Cairn/etcd ratios
# to docs/benchmarks.md between the bench-vs-etcd markers (the rest of the file is untouched).
#
#   scripts/bench-vs-etcd.sh [--quick] [--rounds N] [--with-1m] [--with-10m | --without-10m]
#                            [--rounds-10m N] [--only REGEX] [--no-write]
#   make bench-vs-etcd [QUICK=1] [BENCH_VS_ETCD_FLAGS=...]
#
# --quick (or QUICK=1): smaller totals and key spaces, 2 rounds, no 1M/10M cases; for checking
# the instrument, not for quoting. Full mode (about 80 minutes): 3 rounds, the 1M-key case
# and the 10M-key case, which loads 10M keys into each server (about 17 minutes a round;
# --rounds-10m N sets its rounds apart, --without-10m leaves it out, --with-10m adds it to a
# quick run). --only runs the workloads whose names match REGEX. --no-write prints the
# section instead of editing docs/benchmarks.md.
#
# put 1/1 and put 100/1000 also run against cairn-null-kv, a KV server that answers at once
# and stores nothing: the gRPC limit those two targets are measured against.
#
# Environment: BUILD (build), ETCD (/usr/bin/etcd), CAIRND, BENCH, NULL_KV (binaries, default
# $BUILD/bin/...), WORK_DIR (data and raw results; default $BUILD/bench-vs-etcd, on the real
# disk, never tmpfs), OUT (docs/benchmarks.md).
set -euo pipefail
INVOCATION="scripts/bench-vs-etcd.sh${*:+ $*}"
[ "${QUICK:-0}" = 1 ] && [[ " $* " != *" --quick "* ]] && INVOCATION="QUICK=1 $INVOCATION (--quick)"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
ETCD=${ETCD:-/usr/bin/etcd}
CAIRND=${CAIRND:-$BUILD/bin/cairnd}
BENCH=${BENCH:-$BUILD/bin/cairn-bench}
NULL_KV=${NULL_KV:-$BUILD/bin/cairn-null-kv}
OUT=${OUT:-$ROOT/docs/benchmarks.md}
QUICK=${QUICK:-0}
ROUNDS=""
WITH_1M=""
WITH_10M=""
ROUNDS_10M=""
ONLY=""
WRITE=1
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --rounds) ROUNDS=$2; shift ;;
    --with-1m) WITH_1M=1 ;;
    --with-10m) WITH_10M=1 ;;
    --without-10m) WITH_10M=0 ;;
    --rounds-10m) ROUNDS_10M=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --no-write) WRITE=0 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  ROUNDS=${ROUNDS:-2}; WITH_1M=${WITH_1M:-0}; WITH_10M=${WITH_10M:-0}
  KEYS=10000; PUT_SERIAL=500; TOTAL=20000; PREFIX_TOTAL=2000; WATCHERS=1000; WATCH_S=3
  KEEPALIVE=20000
else
  ROUNDS=${ROUNDS:-3}; WITH_1M=${WITH_1M:-1}; WITH_10M=${WITH_10M:-1}
  KEYS=100000; PUT_SERIAL=3000; TOTAL=200000; PREFIX_TOTAL=20000; WATCHERS=10000; WATCH_S=20
  KEEPALIVE=200000
fi

for binary in "$ETCD" "$CAIRND" "$BENCH" "$NULL_KV"; do
  [ -x "$binary" ] || { echo "missing $binary (build with: make build; install etcd-server)" >&2; exit 1; }
done
WORK_DIR=${WORK_DIR:-$BUILD/bench-vs-etcd}
mkdir -p "$WORK_DIR"
RUN_DIR=$(mktemp -d "$WORK_DIR/run.XXXXXX")
RESULTS=$RUN_DIR/results
mkdir -p "$RESULTS"
SERVER_PID=""
cleanup() {
  stop_server
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$RUN_DIR"/data.*
}
trap cleanup EXIT

# The exact commands, once each (workload names with their round and server after the #).
log_command() {
  local line=${1%%.etcd.*}
  line=${line%%.cairn.*}
  grep -qxF -- "$line" "$RUN_DIR/commands.txt" 2>/dev/null || echo "$line" >>"$RUN_DIR/commands.txt"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server etcd|cairn|null: sets SERVER_PID, ENDPOINT, METRICS_URL, DATA.
start_server() {
  local which=$1 log
  DATA=$(mktemp -d "$RUN_DIR/data.XXXXXX")
  log=$DATA.log
  if [ "$which" = null ]; then
    # No metrics and no data: the writes/fsync and data dir columns stay empty for it.
    "$NULL_KV" --listen 127.0.0.1:0 >"$log" 2>&1 &
    SERVER_PID=$!
    log_command "cairn-null-kv --listen 127.0.0.1:0"
    METRICS_URL=""
    for _ in $(seq 1 200); do
      ENDPOINT=$(grep -o 'serving etcd v3 KV on [0-9.:]*' "$log" | awk '{print $NF}' || true)
      [ -n "$ENDPOINT" ] && return 0
      kill -0 "$SERVER_PID" 2>/dev/null || { tail -5 "$log" >&2; exit 1; }
      sleep 0.05
    done
  elif [ "$which" = etcd ]; then
    local client peer
    client=$(free_port); peer=$(free_port)
    # The quota is etcd's maximum (8 GiB) so the 1M-key case fits; etcd 3.4 always fsyncs
    # its WAL before acknowledging (it has no --unsafe-no-fsync).
    "$ETCD" --name default --data-dir "$DATA/etcd" \
      --listen-client-urls "http://127.0.0.1:$client" \
      --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" \
      --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "default=http://127.0.0.1:$peer" \
      --quota-backend-bytes 8589934592 --logger zap --log-outputs "$log" >"$log.out" 2>&1 &
    SERVER_PID=$!
    log_command "etcd --name default --data-dir DIR --listen-client-urls http://127.0.0.1:P --advertise-client-urls http://127.0.0.1:P --listen-peer-urls http://127.0.0.1:Q --initial-advertise-peer-urls http://127.0.0.1:Q --initial-cluster default=http://127.0.0.1:Q --quota-backend-bytes 8589934592 --logger zap --log-outputs FILE"
    ENDPOINT=127.0.0.1:$client
    METRICS_URL=http://127.0.0.1:$client/metrics
    for _ in $(seq 1 200); do
      # Ready: it has elected itself and serves clients.
      grep -q 'published local member to cluster' "$log" 2>/dev/null &&
        grep -q 'serving client traffic' "$log" && return 0
      kill -0 "$SERVER_PID" 2>/dev/null || { tail -5 "$log" "$log.out" >&2; exit 1; }
      sleep 0.05
    done
  else
    # cairnd: group commit, one fdatasync per batch, before any write is acknowledged.
    # The same space quota as etcd's (8 GiB): the 10M-key load passes cairnd's default 2 GiB
    # while compactions lag (the quota counts files not yet compacted).
    "$CAIRND" --data-dir "$DATA/cairn" --listen-client-urls http://127.0.0.1:0 \
      --listen-metrics-urls http://127.0.0.1:0 --quota-backend-bytes 8589934592 >"$log" 2>&1 &
    SERVER_PID=$!
    log_command "cairnd --data-dir DIR --listen-client-urls http://127.0.0.1:0 --listen-metrics-urls http://127.0.0.1:0 --quota-backend-bytes 8589934592"
    for _ in $(seq 1 200); do
      ENDPOINT=$(grep -o 'serving etcd v3 clients on [0-9.:]*' "$log" | awk '{print $6}' || true)
      METRICS_URL=$(grep -o 'serving /metrics, /health and /readyz on http://[0-9.:]*' "$log" |
        awk '{print $NF}' || true)
      [ -n "$ENDPOINT" ] && [ -n "$METRICS_URL" ] && { METRICS_URL=$METRICS_URL/metrics; return 0; }
      kill -0 "$SERVER_PID" 2>/dev/null || { tail -5 "$log" >&2; exit 1; }
      sleep 0.05
    done
  fi
  echo "$which did not start" >&2
  exit 1
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# The server's count of WAL fsyncs (both export etcd's metric name).
fsync_count() {
  [ -n "$METRICS_URL" ] || return 0
  { curl -s "$METRICS_URL" || true; } |
    awk '/^etcd_disk_wal_fsync_duration_seconds_count/ {print $2; exit}'
}

COMMON="--key-size 8 --val-size 256"
# bench <result name> <cairn-bench args...>: runs a measured step, adds server figures.
bench() {
  local name=$1 fsync_before fsync_after
  shift
  fsync_before=$(fsync_count)
  log_command "cairn-bench --endpoints ENDPOINT --server-pid PID -w json $*   # $name"
  "$BENCH" --endpoints "$ENDPOINT" --server-pid "$SERVER_PID" -w json "$@" >"$RESULTS/$name.raw"
  fsync_after=$(fsync_count)
  python3 - "$RESULTS/$name.raw" "$RESULTS/$name.json" "${fsync_before:-0}" "${fsync_after:-0}" \
    "$(du -sb "$DATA" | cut -f1)" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
r["wal_fsyncs"] = float(sys.argv[4]) - float(sys.argv[3])
r["data_dir_bytes"] = int(sys.argv[5])
json.dump(r, open(sys.argv[2], "w"))
EOF
  rm -f "$RESULTS/$name.raw"
}

# Sequential load of N keys (not measured in the table).
preload() {
  log_command "cairn-bench --endpoints ENDPOINT --conns 10 --clients 200 --total $1 --key-space-size $1 --sequential-keys $COMMON put   # preload"
  "$BENCH" --endpoints "$ENDPOINT" --conns 10 --clients 200 --total "$1" --key-space-size "$1" \
    --sequential-keys $COMMON -w json put >"$RESULTS/preload.$RANDOM.json"
}

# Each workload: wl_NAME <result prefix>. The server is fresh; ENDPOINT is set.
MANY="--conns 100 --clients 1000"
wl_put_1x1() { bench "$1" --conns 1 --clients 1 --total $PUT_SERIAL --key-space-size $KEYS $COMMON put; }
wl_put_100x1000() { bench "$1" $MANY --total $TOTAL --key-space-size $KEYS $COMMON put; }
wl_range_one_l() {
  preload $KEYS
  bench "$1" $MANY --total $TOTAL $COMMON range --key 00000001 --consistency l
}
wl_range_one_s() {
  preload $KEYS
  bench "$1" $MANY --total $TOTAL $COMMON range --key 00000001 --consistency s
}
wl_range_random_l() {
  preload $KEYS
  bench "$1" $MANY --total $TOTAL --key-space-size $KEYS $COMMON range --consistency l
}
wl_range_prefix_limit100() {
  preload $KEYS
  bench "$1" $MANY --total $PREFIX_TOTAL $COMMON range --prefix --limit 100
}
wl_txn_put_4ops() { bench "$1" $MANY --total $TOTAL --key-space-size $KEYS $COMMON txn-put --txn-ops 4; }
wl_txn_mixed_1to1() {
  preload $KEYS
  bench "$1" $MANY --total $TOTAL --key-space-size $KEYS $COMMON txn-mixed --rw-ratio 1
}
wl_watch() {
  bench "$1" --conns 10 --clients 50 --rate 1000 --duration $WATCH_S --key-space-size $KEYS \
    $COMMON watch --streams 10 --watchers-per-stream $WATCHERS
}
wl_lease_keepalive() { bench "$1" $MANY --total $KEEPALIVE lease-keepalive; }
wl_load_1m() {
  bench "$1" --conns 10 --clients 200 --total 1000000 --key-space-size 1000000 --sequential-keys \
    $COMMON put
}
# Put passes: the first right after the load (cold caches, the load's compactions still
# running), the second at once after it, nearer a loaded server's usual state
# (docs/benchmarks.md, "10M keys, session 14"), then four passes' worth in one window: which
# pass holds a merge of L0 depends on where the load left off, and 800,000 puts hold about one
# whole cycle of them (docs/benchmarks.md, session 19).
wl_keys_10m() {
  preload 10000000
  bench "$1.put" $MANY --total $TOTAL --key-space-size 10000000 $COMMON put
  bench "$1.put_next" $MANY --total $TOTAL --key-space-size 10000000 $COMMON put
  bench "$1.put_sustained" $MANY --total $((TOTAL * 4)) --key-space-size 10000000 $COMMON put
  bench "$1" $MANY --total $TOTAL --key-space-size 10000000 $COMMON range --consistency l
}

WORKLOADS="put_1x1 put_100x1000 range_one_l range_one_s range_random_l range_prefix_limit100
  txn_put_4ops txn_mixed_1to1 watch lease_keepalive"
[ "$WITH_1M" = 1 ] && WORKLOADS="$WORKLOADS load_1m"
[ "$WITH_10M" = 1 ] && WORKLOADS="$WORKLOADS keys_10m"

# The machine: cores, memory, the disk's 4 KiB pwrite + fdatasync latency where the data is, and
# whether the kernel pages out idle memory on its own (DAMON): then files written more than that
# long ago are read back from the disk, which the 10M-key step's first pass pays.
machine_json() {
  python3 - "$RUN_DIR" <<'EOF'
import glob, json, os, sys, time
path = os.path.join(sys.argv[1], "fdatasync.probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
block, samples = b"x" * 4096, []
for i in range(500):
    start = time.perf_counter()
    os.pwrite(fd, block, i * 4096)
    os.fdatasync(fd)
    samples.append((time.perf_counter() - start) * 1e6)
os.close(fd); os.unlink(path)
samples.sort()
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem_kib = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
def read(path):
    try:
        return open(path).read().strip()
    except OSError:
        return ""
# Seconds a page may stay idle before an active DAMON "pageout" scheme reclaims it, or None.
idle_pageout_s = None
for context in glob.glob("/sys/kernel/mm/damon/admin/kdamonds/[0-9]*/contexts/[0-9]*"):
    if read(os.path.join(context, "../../state")) != "on":
        continue
    aggr_us = read(os.path.join(context, "monitoring_attrs/intervals/aggr_us"))
    for scheme in glob.glob(os.path.join(context, "schemes/[0-9]*/")):
        age = read(os.path.join(scheme, "access_pattern/age/min"))
        if read(os.path.join(scheme, "action")) == "pageout" and age and aggr_us:
            seconds = int(age) * int(aggr_us) / 1e6
            idle_pageout_s = min(seconds, idle_pageout_s or seconds)
print(json.dumps({"cores": os.cpu_count(), "cpu": model, "memory_gib": round(mem_kib / 2**20, 1),
                  "fdatasync_p50_us": round(samples[len(samples) // 2]),
                  "fdatasync_p99_us": round(samples[int(len(samples) * 0.99)]),
                  "load_average": os.getloadavg()[0], "idle_pageout_s": idle_pageout_s}))
EOF
}

echo "bench-vs-etcd: rounds=$ROUNDS quick=$QUICK work=$RUN_DIR" >&2
machine_json >"$RUN_DIR/machine.json"
for workload in $WORKLOADS; do
  if [ -n "$ONLY" ] && ! [[ $workload =~ $ONLY ]]; then continue; fi
  rounds=$ROUNDS
  [ "$workload" = keys_10m ] && rounds=${ROUNDS_10M:-$ROUNDS}
  # The two put targets are bounded by gRPC itself: the same client against cairn-null-kv.
  servers="etcd cairn"
  case $workload in put_1x1|put_100x1000) servers="etcd cairn null" ;; esac
  for round in $(seq 1 "$rounds"); do
    for server in $servers; do
      echo "  $workload round $round $server" >&2
      start_server $server
      # A failed workload (say a server that dies) is reported and the others still run.
      "wl_$workload" "$workload.$server.$round" || echo "  $workload failed on $server" >&2
      stop_server
      rm -rf "$DATA"
    done
  done
done

# Versions and the exact commands, for the section.
{
  echo "etcd: $("$ETCD" --version | head -1)"
  # Local changes to the docs alone do not change what was measured.
  echo "cairn: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet -- . ':!docs' 2>/dev/null || echo ' (with local changes)')"
  echo "invocation: $INVOCATION (rounds: $ROUNDS$([ "$WITH_10M" = 1 ] && echo ", 10M-key step: ${ROUNDS_10M:-$ROUNDS}"))"
} >"$RUN_DIR/versions.txt"
{
  echo "# Variables: KEYS=$KEYS PUT_SERIAL=$PUT_SERIAL TOTAL=$TOTAL PREFIX_TOTAL=$PREFIX_TOTAL"
  echo "# WATCHERS=$WATCHERS WATCH_S=$WATCH_S KEEPALIVE=$KEEPALIVE (already expanded above)"
} >>"$RUN_DIR/commands.txt"

python3 "$ROOT/tools/cairn-bench/bench_vs_etcd_report.py" "$RUN_DIR" >"$RUN_DIR/section.md"
if [ "$WRITE" = 1 ]; then
  python3 - "$OUT" "$RUN_DIR/section.md" <<'EOF'
import sys
out, section = sys.argv[1], open(sys.argv[2]).read()
begin, end = "<!-- bench-vs-etcd:begin -->", "<!-- bench-vs-etcd:end -->"
text = open(out).read()
block = f"{begin}\n{section.rstrip()}\n{end}"
if begin in text and end in text:
    text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
else:
    text = text.rstrip() + "\n\n" + block + "\n"
open(out, "w").write(text)
EOF
  echo "wrote the bench-vs-etcd section of $OUT (raw results: $RESULTS)" >&2
else
  cat "$RUN_DIR/section.md"
fi
