#!/usr/bin/env bash
# Drives a real cairnd with Debian's etcdctl (package etcd-client): the outputs must be what
# etcdctl prints against etcd. Usage: etcdctl_test.sh <cairnd binary>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
require_tool "$ETCDCTL"
CAIRND=$1
make_temp_dir
start_cairnd "$CAIRND" "$TEST_DIR/data"

# ctl <args...>: stdout only; ctl_err <args...>: stdout and stderr, never fails.
ctl() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" "$@"; }
ctl_err() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" "$@" 2>&1 || true; }
nl=$'\n'

# ---- put / get ----
for kv in "a/1 1" "a/2 2" "a/3 3" "b x"; do
  expect_eq "put $kv" "$(ctl put $kv)" "OK"
done  # revisions 2..5
expect_eq "get key" "$(ctl get a/2)" "a/2${nl}2"
expect_eq "get missing" "$(ctl get nope)" ""
expect_eq "get prefix" "$(ctl get a --prefix)" "a/1${nl}1${nl}a/2${nl}2${nl}a/3${nl}3"
expect_eq "get range" "$(ctl get a/1 a/3)" "a/1${nl}1${nl}a/2${nl}2"
expect_eq "get from-key" "$(ctl get a/3 --from-key)" "a/3${nl}3${nl}b${nl}x"
expect_eq "print-value-only" "$(ctl get a/1 --print-value-only)" "1"
expect_eq "put overwrite" "$(ctl put a/1 one)" "OK"  # revision 6
expect_eq "get --rev" "$(ctl get a/1 --rev=2)" "a/1${nl}1"
expect_eq "get --rev before create" "$(ctl get a/2 --rev=2)" ""
expect_eq "keys-only" "$(ctl get a --prefix --keys-only)" "a/1${nl}${nl}a/2${nl}${nl}a/3"
expect_eq "limit" "$(ctl get a --prefix --limit=2)" "a/1${nl}one${nl}a/2${nl}2"
expect_eq "sort key descend" "$(ctl get a --prefix --keys-only --sort-by=KEY --order=DESCEND)" \
  "a/3${nl}${nl}a/2${nl}${nl}a/1"
expect_eq "sort modify descend" \
  "$(ctl get a --prefix --keys-only --sort-by=MODIFY --order=DESCEND --limit=1)" "a/1"
expect_eq "sort value ascend" "$(ctl get "" --from-key --sort-by=VALUE --print-value-only)" \
  "2${nl}3${nl}one${nl}x"
# etcdctl 3.4 has no --count-only: the count comes from the JSON output with a limit.
json=$(ctl get a --prefix --limit=1 -w json)
expect_contains "count with limit" "$json" '"more":true,"count":3'
expect_contains "header revision" "$json" '"revision":6,"raft_term":2'
expect_contains "create and mod revision" "$(ctl get a/1 -w json)" \
  '"create_revision":2,"mod_revision":6,"version":2'

# ---- del ----
expect_eq "del prev-kv" "$(ctl del a/1 --prev-kv)" "1${nl}a/1${nl}one"  # revision 7
expect_eq "del missing" "$(ctl del a/1)" "0"
expect_eq "del prefix" "$(ctl del a --prefix)" "2"  # revision 8
expect_eq "after del" "$(ctl get a --prefix)" ""

# ---- txn (stdin: compares, blank line, success ops, blank line, failure ops) ----
txn_success=$(printf 'value("b") = "x"\n\nput t/1 yes\nget b\n\nput t/1 no\n\n' | ctl txn)
expect_eq "txn success" "$txn_success" "SUCCESS${nl}${nl}OK${nl}${nl}b${nl}x"
txn_failure=$(printf 'mod("b") > "100"\n\nput t/2 yes\n\nput t/2 no\ndel b\n\n' | ctl txn)
expect_eq "txn failure" "$txn_failure" "FAILURE${nl}${nl}OK${nl}${nl}1"
expect_eq "txn effects" "$(ctl get t/ --prefix)" "t/1${nl}yes${nl}t/2${nl}no"
expect_eq "txn effects del" "$(ctl get b)" ""

# ---- compaction ----
rev=$(ctl put c 1 -w json | grep -o '"revision":[0-9]*' | cut -d: -f2)
ctl put c 2 >/dev/null
expect_eq "compaction" "$(ctl compaction "$rev")" "compacted revision $rev"
expect_contains "get below compaction" "$(ctl_err get c --rev=$((rev - 1)))" \
  "Error: etcdserver: mvcc: required revision has been compacted"
expect_eq "get at compaction" "$(ctl get c --rev="$rev")" "c${nl}1"
expect_contains "compact again" "$(ctl_err compaction "$rev")" \
  "Error: etcdserver: mvcc: required revision has been compacted"
expect_contains "future revision" "$(ctl_err get c --rev=100000)" \
  "Error: etcdserver: mvcc: required revision is a future revision"
expect_eq "physical compaction" "$(ctl compaction --physical $((rev + 1)))" \
  "compacted revision $((rev + 1))"

# ---- bad input ----
expect_contains "empty key" "$(ctl_err put "" x)" "Error: etcdserver: key is not provided"
if ctl put "" x >/dev/null 2>&1; then fail "put of an empty key succeeded"; fi

# ---- maintenance ----
status=$(ctl endpoint status)
# endpoint, member id, version, db size, is leader, is learner, raft term, raft index, ...
expect_contains "endpoint status" "$status" "$ENDPOINT, "
expect_contains "endpoint status fields" "$status" ", true, false, 2, "
expect_contains "endpoint health" "$(ctl_err endpoint health)" "$ENDPOINT is healthy"
expect_contains "endpoint hashkv" "$(ctl_err endpoint hashkv)" "$ENDPOINT, "

stop_cairnd TERM
echo "PASS"
