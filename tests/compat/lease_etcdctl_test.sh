#!/usr/bin/env bash
# Drives cairnd's Lease service with Debian's etcdctl: grant, put --lease, timetolive --keys,
# list, keep-alive --once, revoke, expiry and remaining TTLs across a restart.
# Usage: lease_etcdctl_test.sh <cairnd binary>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
require_tool "$ETCDCTL"
CAIRND=$1
make_temp_dir
start_cairnd "$CAIRND" "$TEST_DIR/data"

ctl() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" "$@"; }
ctl_err() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" "$@" 2>&1 || true; }
nl=$'\n'

# ---- grant, attach, inspect ----
out=$(ctl lease grant 100)
[[ "$out" =~ ^lease\ ([0-9a-f]+)\ granted\ with\ TTL\(100s\)$ ]] || fail "grant: got [$out]"
ID=${BASH_REMATCH[1]}
out=$(ctl lease grant 1)
[[ "$out" =~ granted\ with\ TTL\(2s\)$ ]] || fail "grant below the minimum TTL: got [$out]"
SHORT=$(awk '{print $2}' <<<"$out")

expect_eq "put --lease" "$(ctl put --lease="$ID" k1 v1)" "OK"
expect_eq "put --lease" "$(ctl put --lease="$ID" k2 v2)" "OK"
out=$(ctl lease timetolive "$ID" --keys)
[[ "$out" =~ ^lease\ $ID\ granted\ with\ TTL\(100s\),\ remaining\(([0-9]+)s\),\ attached\ keys\(\[k1\ k2\]\)$ ]] ||
  fail "timetolive --keys: got [$out]"
[ "${BASH_REMATCH[1]}" -ge 95 ] && [ "${BASH_REMATCH[1]}" -le 100 ] || fail "remaining: $out"
list=$(ctl lease list)
expect_contains "lease list" "$list" "found "
expect_contains "lease list" "$list" "$ID"
expect_eq "keep-alive --once" "$(ctl lease keep-alive --once "$ID")" \
  "lease $ID keepalived with TTL(100)"

# ---- errors ----
expect_contains "put with a missing lease" "$(ctl_err put --lease=abcdef k v)" \
  "etcdserver: requested lease not found"
expect_contains "keep-alive of a missing lease" "$(ctl_err lease keep-alive --once abcdef)" \
  "requested lease not found"
expect_eq "timetolive of a missing lease" "$(ctl lease timetolive abcdef)" \
  "lease 0000000000abcdef already expired"

# ---- revoke deletes the keys ----
expect_eq "revoke" "$(ctl lease revoke "$ID")" "lease $ID revoked"
expect_eq "keys gone" "$(ctl get k --prefix)" ""
expect_eq "timetolive after revoke" "$(ctl lease timetolive "$ID")" "lease $ID already expired"
expect_contains "revoke again" "$(ctl_err lease revoke "$ID")" \
  "etcdserver: requested lease not found"

# ---- expiry ----
expect_eq "put on the short lease" "$(ctl put --lease="$SHORT" short v)" "OK"
for _ in $(seq 1 100); do
  [ -z "$(ctl get short)" ] && break
  sleep 0.1
done
expect_eq "expired key" "$(ctl get short)" ""
expect_eq "expired lease" "$(ctl lease timetolive "$SHORT")" "lease $SHORT already expired"

# ---- remaining TTL survives a restart ----
out=$(ctl lease grant 30)
LONG=$(awk '{print $2}' <<<"$out")
expect_eq "put on the long lease" "$(ctl put --lease="$LONG" long v)" "OK"
sleep 2
stop_cairnd TERM
start_cairnd "$CAIRND" "$TEST_DIR/data"
out=$(ctl lease timetolive "$LONG" --keys)
[[ "$out" =~ remaining\(([0-9]+)s\),\ attached\ keys\(\[long\]\)$ ]] || fail "after restart: [$out]"
remaining=${BASH_REMATCH[1]}
[ "$remaining" -gt 0 ] && [ "$remaining" -lt 29 ] ||
  fail "remaining TTL after a restart should continue from before it, got $remaining"
echo "PASS"
