#!/usr/bin/env bash
# cairnd as an operator meets it: --help, startup errors, SIGTERM, restart, request limits,
# garbage on the client port. Usage: cairnd_lifecycle_test.sh <cairnd binary>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
require_tool "$ETCDCTL"
CAIRND=$1
make_temp_dir
ctl() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" "$@"; }
ctl_err() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" "$@" 2>&1 || true; }

# ---- --help documents every flag ----
help=$("$CAIRND" --help)
for flag in --name --data-dir --listen-client-urls --advertise-client-urls --max-request-bytes \
  --max-txn-ops --quota-backend-bytes --log-level --listen-peer-urls \
  --initial-advertise-peer-urls --initial-cluster --initial-cluster-state \
  --initial-cluster-token --auto-compaction-mode --auto-compaction-retention; do
  expect_contains "--help" "$help" "$flag"
done

# run_expect_failure <what> <expected message> <cairnd args...>: must exit 1 with the message.
run_expect_failure() {
  local what=$1 message=$2 status=0 output
  shift 2
  output=$(timeout 20 "$CAIRND" "$@" 2>&1) || status=$?
  expect_eq "$what: exit status" "$status" "1"
  expect_contains "$what" "$output" "$message"
}

# ---- startup errors: clear message, exit 1, no crash ----
run_expect_failure "unusable data dir" "cannot open data dir" \
  --data-dir /etc/hostname/data --listen-client-urls http://127.0.0.1:0
run_expect_failure "bad url" "--listen-client-urls" --data-dir "$TEST_DIR/x" \
  --listen-client-urls 127.0.0.1:2379
run_expect_failure "https url" "TLS (https) is not supported yet" --data-dir "$TEST_DIR/x" \
  --listen-client-urls https://127.0.0.1:2379
start_cairnd "$CAIRND" "$TEST_DIR/data" --max-request-bytes 4096
run_expect_failure "port in use" "cannot listen on $ENDPOINT" \
  --data-dir "$TEST_DIR/other" --listen-client-urls "http://$ENDPOINT"
run_expect_failure "data dir in use" "cannot open data dir" \
  --data-dir "$TEST_DIR/data" --listen-client-urls http://127.0.0.1:0

# ---- request size limit (--max-request-bytes 4096) ----
expect_eq "small put" "$(ctl put small v)" "OK"
big=$(head -c 6000 /dev/zero | tr '\0' v)
expect_contains "large put" "$(ctl_err put big "$big")" "Error: etcdserver: request is too large"

# ---- garbage and abrupt disconnects on the client port leave the server healthy ----
port=${ENDPOINT##*:}
for _ in 1 2 3; do
  head -c 4096 /dev/urandom >/dev/tcp/127.0.0.1/"$port" || true
  printf 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00' >/dev/tcp/127.0.0.1/"$port" || true
done
expect_eq "after garbage" "$(ctl get small --print-value-only)" "v"

# ---- SIGTERM: exit 0, data kept, revision continues ----
expect_eq "put before stop" "$(ctl put kept yes)" "OK"  # revision 3
stop_cairnd TERM
expect_contains "shutdown logged" "$(cat "$CAIRND_LOG")" "received SIGTERM, shutting down"
start_cairnd "$CAIRND" "$TEST_DIR/data"
expect_eq "after restart" "$(ctl get kept --print-value-only)" "yes"
expect_contains "revision continues" "$(ctl put next 1 -w json)" '"revision":4'
# SIGINT is a graceful shutdown too.
kill -INT "$CAIRND_PID"
status=0
wait "$CAIRND_PID" || status=$?
CAIRND_PID=""
expect_eq "exit status after SIGINT" "$status" "0"
echo "PASS"
