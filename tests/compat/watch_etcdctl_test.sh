#!/usr/bin/env bash
# Drives cairnd's Watch service with Debian's etcdctl: watch from a past revision with
# --prev-kv and --prefix, a live watch running in the background while puts happen, and a
# watch from a compacted revision. Usage: watch_etcdctl_test.sh <cairnd binary>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
require_tool "$ETCDCTL"
CAIRND=$1
make_temp_dir
start_cairnd "$CAIRND" "$TEST_DIR/data"

ctl() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" "$@"; }
nl=$'\n'

# watch_until <file> <expected line count> <args...>: runs `etcdctl watch` in the background
# into <file> until it printed that many lines (or 10 s passed), then stops it.
WATCH_PID=""
watch_start() {
  local file=$1
  shift
  ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" watch "$@" >"$file" 2>&1 &
  WATCH_PID=$!
}
watch_wait_lines() {
  local file=$1 lines=$2
  for _ in $(seq 1 200); do
    [ "$(wc -l <"$file")" -ge "$lines" ] && break
    sleep 0.05
  done
  kill "$WATCH_PID" 2>/dev/null || true
  wait "$WATCH_PID" 2>/dev/null || true
}

# ---- history: --rev with --prev-kv and --prefix ----
expect_eq "put" "$(ctl put a/1 one)" "OK"   # revision 2
expect_eq "put" "$(ctl put a/1 two)" "OK"   # 3
expect_eq "put" "$(ctl put b/1 other)" "OK" # 4
expect_eq "del" "$(ctl del a/1)" "1"        # 5
watch_start "$TEST_DIR/history" a --prefix --rev=2 --prev-kv
watch_wait_lines "$TEST_DIR/history" 13
expect_eq "watch --rev --prefix --prev-kv" "$(cat "$TEST_DIR/history")" \
  "PUT${nl}a/1${nl}one${nl}PUT${nl}a/1${nl}one${nl}a/1${nl}two${nl}DELETE${nl}a/1${nl}two${nl}a/1"

# ---- live: events of puts made while the watch runs, in order, only the watched key ----
watch_start "$TEST_DIR/live" live
sleep 0.5  # let the watch be created before the writes
ctl put live 1 >/dev/null
ctl put other x >/dev/null
ctl put live 2 >/dev/null
ctl del live >/dev/null
watch_wait_lines "$TEST_DIR/live" 9
expect_eq "live watch" "$(cat "$TEST_DIR/live")" \
  "PUT${nl}live${nl}1${nl}PUT${nl}live${nl}2${nl}DELETE${nl}live"

# ---- live prefix with prev-kv, from the current revision on ----
watch_start "$TEST_DIR/prefix" p/ --prefix --prev-kv
sleep 0.5
ctl put p/x 1 >/dev/null
ctl put q 1 >/dev/null
ctl put p/x 2 >/dev/null
watch_wait_lines "$TEST_DIR/prefix" 8
expect_eq "live prefix prev-kv" "$(cat "$TEST_DIR/prefix")" \
  "PUT${nl}p/x${nl}1${nl}PUT${nl}p/x${nl}1${nl}p/x${nl}2"

# ---- a compacted start revision cancels the watch, as etcd ----
rev=$(ctl put c 1 -w json | grep -o '"revision":[0-9]*' | cut -d: -f2)
expect_eq "compaction" "$(ctl compaction "$rev")" "compacted revision $rev"
out=$(timeout 10 env ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" watch a --rev=2 2>&1 || true)
expect_contains "watch compacted" "$out" \
  "watch was canceled (etcdserver: mvcc: required revision has been compacted)"

stop_cairnd TERM
echo "PASS"
