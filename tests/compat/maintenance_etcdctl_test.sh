#!/usr/bin/env bash
# Maintenance and Cluster through Debian's etcdctl: member list, the NOSPACE alarm driven by
# --quota-backend-bytes (raise, list, recover by delete + compact + defrag + disarm),
# endpoint status/hashkv, snapshot save, move-leader, membership errors, and periodic
# auto compaction. Usage: maintenance_etcdctl_test.sh <cairnd binary>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
require_tool "$ETCDCTL"
CAIRND=$1
make_temp_dir

ctl() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" "$@"; }
# ctl_fails <args...>: the command must fail; prints its error line.
ctl_fails() {
  local out
  if out=$(ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" "$@" 2>&1); then
    fail "etcdctl $* succeeded: $out"
  fi
  grep '^Error:' <<<"$out" || true
}

start_cairnd "$CAIRND" "$TEST_DIR/data" --name node-1 --quota-backend-bytes 2000000 \
  --advertise-client-urls http://127.0.0.1:2379 --initial-advertise-peer-urls http://127.0.0.1:2380
member_hex=$(ctl member list | cut -d, -f1)

# ---- member list ----
expect_eq "member list" "$(ctl member list)" \
  "$member_hex, started, node-1, http://127.0.0.1:2380, http://127.0.0.1:2379, false"
json=$(ctl member list -w json)
expect_contains "member list json" "$json" '"name":"node-1","peerURLs":["http://127.0.0.1:2380"],"clientURLs":["http://127.0.0.1:2379"]'
expect_eq "member add" "$(ctl_fails member add other --peer-urls=http://127.0.0.1:9380)" \
  "Error: etcdserver: re-configuration failed due to not enough started members"
expect_eq "member remove unknown" "$(ctl_fails member remove 1234)" \
  "Error: etcdserver: member not found"
expect_eq "member remove self" "$(ctl_fails member remove "$member_hex")" \
  "Error: etcdserver: re-configuration failed due to not enough started members"

# ---- move-leader ----
expect_contains "move-leader self" "$(ctl move-leader "$member_hex")" \
  "Leadership transferred from $member_hex to $member_hex"
expect_eq "move-leader other" "$(ctl_fails move-leader 1234)" "Error: etcdserver: bad leader transferee"

# ---- the NOSPACE alarm ----
expect_eq "no alarms" "$(ctl alarm list)" ""
fill_quota ctl
acked=$FILLED
expect_eq "put over quota" "$(ctl_fails put small x)" "Error: etcdserver: mvcc: database space exceeded"
member_dec=$(/usr/bin/python3 -c "print(int('$member_hex', 16))")
expect_eq "alarm list" "$(ctl alarm list)" "memberID:$member_dec alarm:NOSPACE "
expect_contains "endpoint status shows the alarm" "$(ctl endpoint status)" "alarm:NOSPACE"
expect_eq "reads still work" "$(ctl get big/ --prefix --keys-only | grep -c big/)" "$acked"
# Recovery as etcd documents it: free space, compact, defragment, disarm.
expect_eq "delete" "$(ctl del big/ --prefix)" "$acked"
rev=$(ctl get x -w json | grep -o '"revision":[0-9]*' | cut -d: -f2)
expect_eq "compaction" "$(ctl compaction "$rev")" "compacted revision $rev"
expect_contains "defrag" "$(ctl defrag)" "Finished defragmenting etcd member[$ENDPOINT]"
expect_eq "disarm" "$(ctl alarm disarm)" "memberID:$member_dec alarm:NOSPACE "
expect_eq "put after disarm" "$(ctl put small x)" "OK"
expect_eq "alarms gone" "$(ctl alarm list)" ""

# ---- hashkv, snapshot save ----
expect_contains "hashkv" "$(ctl endpoint hashkv)" "$ENDPOINT, "
saved=$(ctl snapshot save "$TEST_DIR/backup.db" 2>&1) || fail "snapshot save: $saved"
expect_contains "snapshot save" "$saved" "Snapshot saved at $TEST_DIR/backup.db"
size=$(stat -c %s "$TEST_DIR/backup.db")
expect_eq "snapshot ends like etcd's (size % 512 == 32)" "$((size % 512))" "32"
[ ! -e "$TEST_DIR/backup.db.part" ] || fail "snapshot .part file left behind"
stop_cairnd TERM

# ---- periodic auto compaction: a 1 s window ----
start_cairnd "$CAIRND" "$TEST_DIR/data" --auto-compaction-mode periodic \
  --auto-compaction-retention 1s
ctl put k v1 >/dev/null
first=$(ctl get k -w json | grep -o '"mod_revision":[0-9]*' | cut -d: -f2)
ctl put k v2 >/dev/null
compacted=""
for _ in $(seq 1 60); do
  sleep 0.1
  compacted=$(ctl get k --rev="$first" 2>&1 || true)
  [[ "$compacted" == *"compacted"* ]] && break
done
expect_contains "periodic compaction" "$compacted" \
  "etcdserver: mvcc: required revision has been compacted"
expect_eq "latest value kept" "$(ctl get k --print-value-only)" "v2"
stop_cairnd TERM
echo "PASS"
