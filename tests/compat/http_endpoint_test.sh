#!/usr/bin/env bash
# cairnd's HTTP side (--listen-metrics-urls): /metrics in Prometheus' text format with etcd's
# metric names, /health and /readyz like etcd's; counts move after etcdctl writes; garbage
# sent to the HTTP port leaves cairnd serving.
# Usage: http_endpoint_test.sh <cairnd binary>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
require_tool "$ETCDCTL"
require_tool "$(command -v curl || echo curl)"
CAIRND=$1
make_temp_dir
start_cairnd "$CAIRND" "$TEST_DIR/data"  # lib.sh passes --listen-metrics-urls http://127.0.0.1:0

METRICS=""
for _ in $(seq 1 100); do
  METRICS=$(grep -o 'serving /metrics, /health and /readyz on http://[0-9.:]*' "$CAIRND_LOG" |
    sed 's|.*http://||' || true)
  [ -n "$METRICS" ] && break
  sleep 0.05
done
[ -n "$METRICS" ] || fail "cairnd did not log its metrics address"

ctl() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" "$@"; }
get() { curl -sS --max-time 5 "http://$METRICS$1"; }
status_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X "${2:-GET}" "http://$METRICS$1"; }
# metric <exposition> <series, exactly as printed>: its value (empty if absent).
metric() { awk -v s="$2" '$1 == s {print $2}' <<<"$1"; }

# ---- /health, /readyz, errors ----
expect_eq "/health" "$(get /health)" '{"health":"true","reason":""}'
expect_eq "/health status" "$(status_of /health)" 200
expect_eq "/readyz" "$(get /readyz)" "ok"
expect_eq "unknown path" "$(status_of /nope)" 404
expect_eq "POST" "$(status_of /metrics POST)" 405

# ---- /metrics ----
put_handled='grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="OK"}'
before=$(get /metrics)
expect_contains "content type" "$(curl -sS -D - -o /dev/null "http://$METRICS/metrics")" \
  "text/plain; version=0.0.4"
expect_contains "HELP" "$before" "# HELP etcd_disk_wal_fsync_duration_seconds "
expect_contains "TYPE" "$before" "# TYPE etcd_disk_wal_fsync_duration_seconds histogram"
expect_contains "TYPE" "$before" "# TYPE etcd_mvcc_db_total_size_in_bytes gauge"
expect_contains "has leader" "$before" "etcd_server_has_leader 1"
rev_before=$(metric "$before" etcd_debugging_mvcc_current_revision)
fsyncs_before=$(metric "$before" etcd_disk_wal_fsync_duration_seconds_count)
[ -n "$rev_before" ] && [ -n "$fsyncs_before" ] || fail "missing gauges in [$before]"
[ "$(metric "$before" etcd_mvcc_db_total_size_in_bytes)" -gt 0 ] || fail "db size not positive"

for i in 1 2 3; do expect_eq "put" "$(ctl put "k$i" "v$i")" "OK"; done
expect_eq "get" "$(ctl get k1 --print-value-only)" "v1"
ctl get missing-key >/dev/null
ctl lease grant 60 >/dev/null

after=$(get /metrics)
expect_eq "Put handled OK" "$(metric "$after" "$put_handled")" 3
expect_eq "Put started" "$(metric "$after" \
  'grpc_server_started_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put"}')" 3
expect_eq "Range handled OK" "$(metric "$after" \
  'grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Range",grpc_code="OK"}')" 2
expect_eq "Put latency count" "$(metric "$after" \
  'grpc_server_handling_seconds_count{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put"}')" 3
expect_eq "Put latency +Inf" "$(metric "$after" \
  'grpc_server_handling_seconds_bucket{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",le="+Inf"}')" 3
expect_eq "current revision" "$(metric "$after" etcd_debugging_mvcc_current_revision)" \
  $((rev_before + 3))
expect_eq "lease count" "$(metric "$after" cairn_lease_count)" 1
# A few keys stay in the page cache: nothing is read ahead, and the counter says so.
expect_eq "files read ahead" "$(metric "$after" cairn_storage_read_ahead_files_total)" 0
# Exported as a count (a new server's first flushes, into an empty database, may have gone
# down already).
expect_contains "narrow flushes merged" "$after" "# TYPE cairn_storage_narrow_flushes_merged_total gauge"
[[ "$(metric "$after" cairn_storage_narrow_flushes_merged_total)" =~ ^[0-9]+$ ]] ||
  fail "narrow flushes merged: not a count"
expect_eq "key count" "$(metric "$after" etcd_debugging_mvcc_keys_total)" \
  $(($(metric "$before" etcd_debugging_mvcc_keys_total) + 3))
# A member alone keeps no applied log entries in memory: the cache empties as entries are
# handed to apply (a scrape may catch an entry between its append and its commit).
cache_bytes=$(metric "$after" cairn_raft_log_cache_bytes)
for _ in $(seq 1 20); do
  [ "$cache_bytes" = 0 ] && break
  sleep 0.05
  cache_bytes=$(metric "$(get /metrics)" cairn_raft_log_cache_bytes)
done
expect_eq "log cache bytes" "$cache_bytes" 0
fsyncs_after=$(metric "$after" etcd_disk_wal_fsync_duration_seconds_count)
[ "$fsyncs_after" -ge $((fsyncs_before + 4)) ] || fail "fsync count $fsyncs_before -> $fsyncs_after"
[ "$(metric "$after" cairn_apply_batch_duration_seconds_count)" -ge 4 ] || fail "apply count"

# An error code is labelled with Go's code name.
ctl put "" v >/dev/null 2>&1 || true
expect_eq "Put InvalidArgument" "$(metric "$(get /metrics)" \
  'grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="InvalidArgument"}')" 1

# ---- garbage to the HTTP port leaves cairnd healthy ----
host=${METRICS%:*}
port=${METRICS##*:}
python3 - "$host" "$port" <<'PY'
import os, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
payloads = [os.urandom(5000), b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 100000 + b"\r\n\r\n",
            b"\r\n\r\n", b"GET\r\n\r\n", b"\x00" * 64, b"GET /metrics HTTP/1.1\r\n"]
for payload in payloads:
    s = socket.create_connection((host, port), timeout=5)
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
s = socket.create_connection((host, port), timeout=5)  # opened and dropped at once
s.close()
PY
expect_eq "/health after garbage" "$(get /health)" '{"health":"true","reason":""}'
expect_eq "put after garbage" "$(ctl put after v)" "OK"
expect_contains "/metrics after garbage" "$(get /metrics)" "$put_handled 4"

stop_cairnd TERM
echo "PASS http_endpoint_test"
