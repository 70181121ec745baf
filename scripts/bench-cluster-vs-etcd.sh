#!/usr/bin/env bash
# A 3-member Cairn cluster vs a 3-member etcd cluster (Debian's etcd-server) on this machine,
# same client (cairn-bench), same workloads, alternating A B A B for ROUNDS rounds with fresh
# clusters; then failover: SIGKILL of the leader -> first write acknowledged by a survivor.
#
#   scripts/bench-cluster-vs-etcd.sh [--rounds N] [--quick] [--no-write]
#
# Workloads (8-byte keys, 256-byte values; connections spread over the three members, so
# two thirds of the requests reach a follower, which forwards writes to the leader):
#   put_1x1        1 connection, 1 client
#   put_100x1000   100 connections, 1000 clients
#   range_l        linearizable Range of random keys over 10,000 preloaded keys, 100/1000
#   failover       ms from SIGKILL of the leader until `etcdctl put` (command timeout
#                  200 ms, retried at once) is acknowledged by a survivor; heartbeat 100 ms,
#                  election timeout 1000 ms on both (etcd's defaults)
# Results: medians and Cairn/etcd ratios, into docs/benchmarks.md between the bench-cluster
# markers (or printed with --no-write). Raw JSON stays in $WORK_DIR/run.*/results.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
ETCD=${ETCD:-/usr/bin/etcd}
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
CAIRND=${CAIRND:-$BUILD/bin/cairnd}
BENCH=${BENCH:-$BUILD/bin/cairn-bench}
OUT=${OUT:-$ROOT/docs/benchmarks.md}
ROUNDS=3
WRITE=1
PUT_SERIAL=2000
TOTAL=100000
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --quick) ROUNDS=1; PUT_SERIAL=300; TOTAL=10000 ;;
    --no-write) WRITE=0 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
for binary in "$ETCD" "$ETCDCTL" "$CAIRND" "$BENCH"; do
  [ -x "$binary" ] || { echo "missing $binary" >&2; exit 1; }
done
WORK_DIR=${WORK_DIR:-$BUILD/bench-cluster}
mkdir -p "$WORK_DIR"
RUN_DIR=$(mktemp -d "$WORK_DIR/run.XXXXXX")
RESULTS=$RUN_DIR/results
mkdir -p "$RESULTS"
PIDS=()
cleanup() {
  stop_cluster
  rm -rf "$RUN_DIR"/data.*
}
trap cleanup EXIT

free_ports() {
  python3 -c '
import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}

# start_cluster etcd|cairn: sets PIDS, CLIENTS (host:port per member), ENDPOINTS, DATA.
start_cluster() {
  local which=$1 ports i initial=""
  read -r -a ports <<<"$(free_ports 6)"
  DATA=$(mktemp -d "$RUN_DIR/data.XXXXXX")
  CLIENTS=()
  for i in 0 1 2; do
    initial="${initial:+$initial,}m$i=http://127.0.0.1:${ports[$((3 + i))]}"
    CLIENTS+=("127.0.0.1:${ports[$i]}")
  done
  PIDS=()
  for i in 0 1 2; do start_member "$which" "$i" "$initial" "${ports[$i]}" "${ports[$((3 + i))]}"; done
  ENDPOINTS=$(IFS=,; echo "${CLIENTS[*]}")
  for _ in $(seq 1 200); do
    [ -n "$(leader_index)" ] && return 0
    sleep 0.05
  done
  echo "$which cluster elected no leader" >&2
  exit 1
}

start_member() {
  local which=$1 i=$2 initial=$3 client=$4 peer=$5
  if [ "$which" = etcd ]; then
    "$ETCD" --name "m$i" --data-dir "$DATA/m$i" --initial-cluster "$initial" \
      --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --quota-backend-bytes 8589934592 --logger zap --log-outputs "$DATA/m$i.log" \
      >"$DATA/m$i.out" 2>&1 &
  else
    "$CAIRND" --name "m$i" --data-dir "$DATA/m$i" --initial-cluster "$initial" \
      --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --listen-metrics-urls "" >"$DATA/m$i.log" 2>&1 &
  fi
  PIDS[$i]=$!
}

stop_cluster() {
  local pid
  for pid in "${PIDS[@]}"; do [ "$pid" != 0 ] && kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do [ "$pid" != 0 ] && wait "$pid" 2>/dev/null || true; done
  PIDS=()
}

leader_index() {
  local i
  for i in 0 1 2; do
    [ "${PIDS[$i]:-0}" = 0 ] && continue
    if ETCDCTL_API=3 "$ETCDCTL" --endpoints "${CLIENTS[$i]}" --command-timeout=500ms \
      endpoint status 2>/dev/null | awk -F', ' '{exit !($5 == "true")}'; then
      echo "$i"
      return
    fi
  done
}

COMMON="--key-size 8 --val-size 256"
bench() {
  local name=$1
  shift
  "$BENCH" --endpoints "$ENDPOINTS" -w json "$@" >"$RESULTS/$name.json"
}
wl_put_1x1() { bench "$1" --conns 1 --clients 1 --total $PUT_SERIAL --key-space-size 10000 $COMMON put; }
wl_put_100x1000() { bench "$1" --conns 100 --clients 1000 --total $TOTAL --key-space-size 10000 $COMMON put; }
wl_range_l() {
  "$BENCH" --endpoints "$ENDPOINTS" --conns 10 --clients 200 --total 10000 --key-space-size 10000 \
    --sequential-keys $COMMON -w json put >/dev/null
  bench "$1" --conns 100 --clients 1000 --total $TOTAL --key-space-size 10000 $COMMON range --consistency l
}
wl_failover() {
  local old survivors=() i start_ns end_ns
  ETCDCTL_API=3 "$ETCDCTL" --endpoints "$ENDPOINTS" put warm up >/dev/null
  old=$(leader_index)
  for i in 0 1 2; do [ "$i" != "$old" ] && survivors+=("${CLIENTS[$i]}"); done
  start_ns=$(date +%s%N)
  kill -9 "${PIDS[$old]}"
  wait "${PIDS[$old]}" 2>/dev/null || true
  PIDS[$old]=0
  until ETCDCTL_API=3 "$ETCDCTL" --endpoints "${survivors[0]}" --dial-timeout=200ms \
    --command-timeout=200ms put after-failover x >/dev/null 2>&1 ||
    ETCDCTL_API=3 "$ETCDCTL" --endpoints "${survivors[1]}" --dial-timeout=200ms \
      --command-timeout=200ms put after-failover x >/dev/null 2>&1; do
    [ $(($(date +%s%N) - start_ns)) -lt 30000000000 ] || { echo "no write 30 s after failover" >&2; return 1; }
  done
  end_ns=$(date +%s%N)
  echo "{\"failover_ms\": $(((end_ns - start_ns) / 1000000))}" >"$RESULTS/$1.json"
}

echo "bench-cluster-vs-etcd: rounds=$ROUNDS work=$RUN_DIR" >&2
for workload in put_1x1 put_100x1000 range_l failover; do
  for round in $(seq 1 "$ROUNDS"); do
    for system in etcd cairn; do
      echo "  $workload round $round $system" >&2
      start_cluster "$system"
      "wl_$workload" "$workload.$system.$round" || echo "  $workload failed on $system" >&2
      stop_cluster
      rm -rf "$DATA"
    done
  done
done

SECTION=$(python3 - "$RESULTS" "$ROUNDS" "$("$ETCD" --version | head -1)" \
  "$(git -C "$ROOT" rev-parse --short HEAD)" <<'EOF'
import glob, json, os, statistics, sys
results, rounds, etcd_version, commit = sys.argv[1:5]
def med(workload, system, get):
    values = []
    for path in glob.glob(os.path.join(results, f"{workload}.{system}.*.json")):
        try:
            values.append(get(json.load(open(path))))
        except (KeyError, ValueError, TypeError):
            pass
    return statistics.median(values) if values else None
thr = lambda r: r["throughput_per_s"]
p50 = lambda r: r["latency_ms"]["p50"]
p99 = lambda r: r["latency_ms"]["p99"]
rows = [("put, 1 conn / 1 client: throughput (/s)", "put_1x1", thr),
        ("put, 1 conn / 1 client: p50 latency (ms)", "put_1x1", p50),
        ("put, 100 conns / 1000 clients: throughput (/s)", "put_100x1000", thr),
        ("put, 100 conns / 1000 clients: p99 latency (ms)", "put_100x1000", p99),
        ("linearizable range, 100 / 1000: throughput (/s)", "range_l", thr),
        ("linearizable range, 100 / 1000: p99 latency (ms)", "range_l", p99),
        ("failover: SIGKILL of the leader -> first acknowledged write (ms)", "failover",
         lambda r: r["failover_ms"])]
fmt = lambda v: "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.3g}")
print("<!-- bench-cluster:begin -->")
print("## 3-member clusters: Cairn vs etcd (`scripts/bench-cluster-vs-etcd.sh`)")
print()
print(f"{etcd_version}; Cairn {commit}; medians of {rounds} round(s), fresh clusters per run, "
      "alternating etcd and Cairn; clients spread over the three members.")
print()
print("| workload | etcd | Cairn | Cairn/etcd |")
print("|---|---|---|---|")
for label, workload, get in rows:
    e, c = med(workload, "etcd", get), med(workload, "cairn", get)
    ratio = "-" if not e or c is None else f"{c / e:.2f}x"
    print(f"| {label} | {fmt(e)} | {fmt(c)} | {ratio} |")
print()
print("Command: `scripts/bench-cluster-vs-etcd.sh --rounds " + rounds + "` "
      "(workload definitions in the script's header).")
print("<!-- bench-cluster:end -->")
EOF
)
if [ "$WRITE" = 1 ]; then
  python3 - "$OUT" "$SECTION" <<'EOF'
import re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
pattern = re.compile(r"<!-- bench-cluster:begin -->.*?<!-- bench-cluster:end -->", re.S)
text = pattern.sub(lambda m: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
open(path, "w").write(text)
EOF
  echo "wrote $OUT" >&2
fi
echo "$SECTION"
