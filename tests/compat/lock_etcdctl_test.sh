#!/usr/bin/env bash
# Drives etcd's lock and election recipes against cairnd with Debian's etcdctl: `etcdctl lock`
# (with a command, and two contenders serializing) and `etcdctl elect` (a campaign, a second
# campaigner taking over, `elect -l` observing). etcdctl runs these recipes client-side
# (clientv3/concurrency over KV, Watch and Lease); the v3lockpb/v3electionpb services are
# covered by src/server/lock_service_test.cc.
# Usage: lock_etcdctl_test.sh <cairnd binary>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
require_tool "$ETCDCTL"
CAIRND=$1
make_temp_dir
start_cairnd "$CAIRND" "$TEST_DIR/data"

ctl() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" "$@"; }
# For `ctl_bg ... &`: exec, so $! is etcdctl itself (it releases its lock on SIGINT).
ctl_bg() { ETCDCTL_API=3 exec "$ETCDCTL" --endpoints="$ENDPOINT" "$@"; }

# ---- lock with a command ----
expect_eq "lock with a command" "$(ctl lock mylock -- echo hi)" "hi"
expect_eq "lock keys released" "$(ctl get --prefix mylock/ --keys-only)" ""

# ---- two contenders serialize ----
ctl_bg lock ser >"$TEST_DIR/holder" &
HOLDER=$!
BACKGROUND+=("$HOLDER")
wait_for_lines "$TEST_DIR/holder" 1
[[ "$(head -1 "$TEST_DIR/holder")" == ser/* ]] || fail "lock key: [$(cat "$TEST_DIR/holder")]"
ctl_bg lock ser -- sh -c "echo second >>$TEST_DIR/order" &
SECOND=$!
BACKGROUND+=("$SECOND")
sleep 1
[ ! -e "$TEST_DIR/order" ] || fail "the second contender ran while the lock was held"
echo first >>"$TEST_DIR/order"
kill -INT "$HOLDER"
wait "$HOLDER" || true
wait_for_lines "$TEST_DIR/order" 2
wait "$SECOND" || fail "the second contender failed"
expect_eq "lock order" "$(cat "$TEST_DIR/order")" $'first\nsecond'

# ---- election ----
ctl_bg elect e1 p1 >"$TEST_DIR/leader1" &
LEADER1=$!
BACKGROUND+=("$LEADER1")
wait_for_lines "$TEST_DIR/leader1" 2
[[ "$(head -1 "$TEST_DIR/leader1")" == e1/* ]] || fail "leader key: [$(cat "$TEST_DIR/leader1")]"
expect_eq "proposal" "$(sed -n 2p "$TEST_DIR/leader1")" "p1"

ctl_bg elect -l e1 >"$TEST_DIR/observed" &
BACKGROUND+=("$!")
wait_for_lines "$TEST_DIR/observed" 2
expect_eq "observed leader" "$(sed -n 2p "$TEST_DIR/observed")" "p1"

ctl_bg elect e1 p2 >"$TEST_DIR/leader2" &
BACKGROUND+=("$!")
sleep 1
[ ! -s "$TEST_DIR/leader2" ] || fail "a second leader while the first holds: [$(cat "$TEST_DIR/leader2")]"
kill -INT "$LEADER1"
wait "$LEADER1" || true
wait_for_lines "$TEST_DIR/leader2" 2
expect_eq "second proposal" "$(sed -n 2p "$TEST_DIR/leader2")" "p2"
wait_for_lines "$TEST_DIR/observed" 4
expect_eq "observed takeover" "$(sed -n 4p "$TEST_DIR/observed")" "p2"

kill_background
BACKGROUND=()
stop_cairnd TERM
echo PASS
