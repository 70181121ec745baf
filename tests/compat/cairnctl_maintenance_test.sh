#!/usr/bin/env bash
# cairnctl's maintenance commands next to etcdctl's against one cairnd (alarm list/disarm,
# defrag, endpoint hashkv, move-leader), and the backup round trip only cairnctl has:
# snapshot save -> snapshot restore -> cairnd serves the restored data directory.
# Usage: cairnctl_maintenance_test.sh <cairnd binary> <cairnctl binary>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
require_tool "$ETCDCTL"
CAIRND=$1
CAIRNCTL=$2
make_temp_dir

etc() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" "$@" 2>/dev/null; }
cctl() { "$CAIRNCTL" --endpoints="$ENDPOINT" "$@"; }
# same <what> <args...>: etcdctl and cairnctl print the same stdout.
same() {
  local what=$1
  shift
  expect_eq "$what" "$(cctl "$@" 2>/dev/null || true)" "$(etc "$@" || true)"
}

start_cairnd "$CAIRND" "$TEST_DIR/data" --quota-backend-bytes 2000000
member_hex=$(etc member list | cut -d, -f1)
for i in $(seq 1 20); do cctl put "key/$i" "value-$i" >/dev/null; done
cctl del key/20 >/dev/null

same "alarm list, none" alarm list
same "hashkv" endpoint hashkv
same "hashkv --rev" endpoint hashkv --rev=10
same "hashkv json" endpoint hashkv -w json
expect_eq "defrag" "$(cctl defrag)" "Finished defragmenting etcd member[$ENDPOINT]"
expect_eq "move-leader self" "$(cctl move-leader "$member_hex")" \
  "Leadership transferred from $member_hex to $member_hex"
expect_eq "move-leader other" "$(cctl move-leader 1234 2>&1 || true)" \
  "Error: etcdserver: bad leader transferee"

# Fill the 2 MB quota: NOSPACE.
fill_quota cctl
expect_eq "put over quota" "$(cctl put small x 2>&1 || true)" \
  "Error: etcdserver: mvcc: database space exceeded"
same "alarm list, NOSPACE" alarm list
same "alarm list json" alarm list -w json
cctl del big/ --prefix >/dev/null
rev=$(cctl get x -w json | grep -o '"revision":[0-9]*' | cut -d: -f2)
cctl compaction "$rev" >/dev/null
cctl defrag >/dev/null
expect_contains "disarm" "$(cctl alarm disarm)" "alarm:NOSPACE"
expect_eq "alarms gone" "$(cctl alarm list)" ""
expect_eq "put after disarm" "$(cctl put after-disarm yes)" "OK"

# ---- backup and restore ----
before=$(cctl get key/ --prefix -w json | sed 's/"header":{[^}]*},//')
revision=$(cctl get after-disarm -w json | grep -o '"revision":[0-9]*' | head -1 | cut -d: -f2)
hash=$(cctl endpoint hashkv | cut -d' ' -f2)
cctl snapshot save "$TEST_DIR/backup.db" >/dev/null 2>&1 || fail "snapshot save"
stop_cairnd TERM
expect_contains "restore into a non-empty dir refused" \
  "$("$CAIRNCTL" snapshot restore "$TEST_DIR/backup.db" --data-dir "$TEST_DIR/data" 2>&1 || true)" \
  "exists and is not empty"
restored=$("$CAIRNCTL" snapshot restore "$TEST_DIR/backup.db" --data-dir "$TEST_DIR/restored")
expect_contains "restore" "$restored" "Restored snapshot $TEST_DIR/backup.db into $TEST_DIR/restored"
head -c 100 "$TEST_DIR/backup.db" >"$TEST_DIR/truncated.db"
expect_contains "truncated snapshot refused" \
  "$("$CAIRNCTL" snapshot restore "$TEST_DIR/truncated.db" --data-dir "$TEST_DIR/bad" 2>&1 || true)" \
  "snapshot:"
[ ! -e "$TEST_DIR/bad" ] || fail "a failed restore left a data dir"

start_cairnd "$CAIRND" "$TEST_DIR/restored"
expect_eq "restored keys" "$(cctl get key/ --prefix -w json | sed 's/"header":{[^}]*},//')" "$before"
expect_eq "restored revision" \
  "$(cctl get after-disarm -w json | grep -o '"revision":[0-9]*' | head -1 | cut -d: -f2)" "$revision"
expect_eq "restored hashkv" "$(cctl endpoint hashkv | cut -d' ' -f2)" "$hash"
expect_eq "writes continue" "$(cctl put new v -w json | grep -o '"revision":[0-9]*' | cut -d: -f2)" \
  "$((revision + 1))"
stop_cairnd TERM
echo PASS
