#!/usr/bin/env bash
# cairnctl against etcdctl: both clients run the same commands against one cairnd, and their
# outputs (stdout, "Error:" lines on stderr, exit status) must be identical, in simple and
# -w json output. Only what necessarily differs between two calls is normalized: the header
# revision of writes (each client writes at its own revision), remaining lease TTLs, and
# endpoint health's "took". Then cairnctl's own features: --count-only, snapshot save, lock
# running a command, elect, txn from stdin, errors and exit codes.
# Usage: cairnctl_test.sh <cairnd binary> <cairnctl binary>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
require_tool "$ETCDCTL"
CAIRND=$1
CAIRNCTL=$2
make_temp_dir
start_cairnd "$CAIRND" "$TEST_DIR/data"

nl=$'\n'
etcd_ctl() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" "$@"; }
cairn_ctl() { "$CAIRNCTL" --endpoints="http://$ENDPOINT" "$@"; }

# run_client <etcd_ctl|cairn_ctl> <args...>: stdout, etcdctl's "Error:"/canceled lines from
# stderr (not its zap log lines), and the exit status. Reads $STDIN_TEXT as stdin.
run_client() {
  local client=$1 status=0
  shift
  local err_file=$TEST_DIR/stderr
  local out
  out=$(printf '%s' "${STDIN_TEXT:-}" | "$client" "$@" 2>"$err_file") || status=$?
  printf '%s\n--stderr--\n%s\n--status %s--' "$out" "$(grep -v '^{"level"' "$err_file" || true)" \
    "$status"
}

# same <what> <args...>: etcdctl and cairnctl print the same bytes and exit the same way.
same() {
  local what=$1
  shift
  local expected actual
  expected=$(run_client etcd_ctl "$@")
  actual=$(run_client cairn_ctl "$@")
  [ "$actual" == "$expected" ] ||
    fail "$what: cairnctl differs from etcdctl${nl}--- etcdctl:${nl}$expected${nl}--- cairnctl:${nl}$actual"
}

# same_write <what> <args...>: for writes, which each client applies at its own revision:
# the same output once every header's "revision" is replaced.
normalize_revision() { sed -E 's/"revision":[0-9]+/"revision":R/g'; }
same_write() {
  local what=$1
  shift
  local expected actual
  expected=$(run_client etcd_ctl "$@" | normalize_revision)
  actual=$(run_client cairn_ctl "$@" | normalize_revision)
  [ "$actual" == "$expected" ] ||
    fail "$what: cairnctl differs from etcdctl${nl}--- etcdctl:${nl}$expected${nl}--- cairnctl:${nl}$actual"
}

# ---- put ----
for kv in "a/1 1" "a/2 2" "a/3 3" "b x"; do
  expect_eq "cairnctl put $kv" "$(cairn_ctl put $kv)" "OK"
done
same_write "put" put a/1 1
same_write "put json" put a/1 1 -w json
cairn_ctl put c/prev same >/dev/null
same_write "put --prev-kv" put c/prev same --prev-kv  # both see the value "same"
same_write "put --ignore-value" put c/prev --ignore-value
same_write "put value with spaces" put c/space "a b  c"

# ---- get ----
same "get" get a/2
same "get json" get a/2 -w json
same "get missing" get nope
same "get missing json" get nope -w json
same "get prefix" get a --prefix
same "get prefix json" get a --prefix -w json
same "get range" get a/1 a/3
same "get from-key" get a/3 --from-key
same "get from-key empty" get "" --from-key --keys-only
same "get prefix empty" get "" --prefix -w json
same "get limit json" get a --prefix --limit=1 -w json
same "get rev" get a/1 --rev=2
same "get rev json" get a/1 --rev=2 -w json
same "keys-only" get a --prefix --keys-only
same "keys-only json" get a --prefix --keys-only -w json
same "print-value-only" get a --prefix --print-value-only
same "hex" get a/2 --hex
for target in CREATE KEY MODIFY VALUE VERSION; do
  same "sort $target descend" get "" --from-key --sort-by=$target --order=DESCEND
  same "sort $target" get "" --from-key --sort-by=$target -w json
done
same "order ascend" get a --prefix --order=ascend
same "serializable" get a --prefix --consistency=s

# ---- del ----
cairn_ctl put d/1 1 >/dev/null
cairn_ctl put d/2 2 >/dev/null
same_write "del missing" del nope
same_write "del missing json" del nope -w json
expect_eq "etcdctl del --prev-kv" "$(etcd_ctl del d/1 --prev-kv)" "1${nl}d/1${nl}1"
cairn_ctl put d/1 1 >/dev/null
expect_eq "cairnctl del --prev-kv" "$(cairn_ctl del d/1 --prev-kv)" "1${nl}d/1${nl}1"
expect_eq "cairnctl del prefix" "$(cairn_ctl del d --prefix)" "1"
expect_eq "after del" "$(cairn_ctl get d --prefix)" ""
cairn_ctl put d/1 1 >/dev/null
etcd_json=$(etcd_ctl del d/1 -w json | normalize_revision)
cairn_ctl put d/1 1 >/dev/null
expect_eq "del json deleted" "$(cairn_ctl del d/1 -w json | normalize_revision)" "$etcd_json"

# ---- txn (stdin: compares, blank line, success ops, blank line, failure ops) ----
STDIN_TEXT=$'value("b") = "x"\n\nput t/1 yes\nget b\n\nput t/1 no\n\n'
same_write "txn success" txn
same_write "txn success json" txn -w json
same_write "txn interactive" txn -i
STDIN_TEXT=$'mod("b") > "100000"\nver("b") = "1"\n\nput t/2 yes\n\nput t/2 no\nget a --prefix --keys-only\ndel t/none\n\n'
same_write "txn failure" txn
same_write "txn failure json" txn -w json
cairn_ctl put t/3 "quoted value" >/dev/null
STDIN_TEXT=$'create("b") < "0"\n\n\nput t/3 "quoted value" --prev-kv\n\n'
same_write "txn quoted" txn
# etcdctl 3.4 panics on a lease compare (clientv3's mustInt64orLeaseID); cairnctl does not.
STDIN_TEXT=$'lease("b") = "0"\n\nget b\n\n\n'
expect_eq "cairnctl txn lease compare" "$(STDIN_TEXT=$STDIN_TEXT run_client cairn_ctl txn)" \
  "SUCCESS${nl}${nl}b${nl}x${nl}--stderr--${nl}${nl}--status 0--"
STDIN_TEXT=$'bogus("b") = "1"\n\n\n\n'
same "txn bad compare" txn
STDIN_TEXT=$'mod(b) > "1"\n\n\n\n'
same "txn malformed compare" txn
STDIN_TEXT=$'\nfoo bar\n\n\n'
same "txn bad op" txn
STDIN_TEXT=$'value("b") = "x"\n'
same "txn early EOF" txn
STDIN_TEXT=""
expect_eq "cairnctl txn effects" "$(cairn_ctl get t/ --prefix)" \
  "t/1${nl}yes${nl}t/2${nl}no${nl}t/3${nl}quoted value"

# ---- watch: both replay the same history from a start revision ----
cairn_ctl put w/1 a >/dev/null
start_rev=$(cairn_ctl get w/1 -w json | grep -o '"mod_revision":[0-9]*' | cut -d: -f2)
cairn_ctl put w/1 b >/dev/null
cairn_ctl put w/2 c >/dev/null
cairn_ctl del w/1 >/dev/null
# watch_output <client> <args...>: what the watcher prints within 2 s.
watch_output() {
  local client=$1
  shift
  "$client" watch "$@" >"$TEST_DIR/watch" 2>/dev/null &
  local pid=$!
  sleep 2
  # $client may be a shell function: the background job is a subshell whose child is the
  # real client, so stop the children too (or they outlive the test, retrying forever).
  pkill -P "$pid" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  cat "$TEST_DIR/watch"
}
for args in "w/1" "w/ --prefix" "w/1 --prev-kv" "w/1 w/3" "w/ --prefix --prev-kv -w json" "w/1 -w json"; do
  # shellcheck disable=SC2086
  expected=$(watch_output etcd_ctl $args --rev="$start_rev")
  # shellcheck disable=SC2086
  actual=$(watch_output cairn_ctl $args --rev="$start_rev")
  [ -n "$expected" ] || fail "watch $args: etcdctl printed nothing"
  expect_eq "watch $args" "$actual" "$expected"
done
expect_eq "cairnctl watch events" "$(watch_output cairn_ctl w/1 --rev="$start_rev")" \
  "PUT${nl}w/1${nl}a${nl}PUT${nl}w/1${nl}b${nl}DELETE${nl}w/1"
# A watch on a compacted revision is canceled by the server: same message, exit 5.
cairn_ctl put w/c 1 >/dev/null
cairn_ctl compaction "$(cairn_ctl get w/c -w json | grep -o '"mod_revision":[0-9]*' | cut -d: -f2)" >/dev/null
same "watch compacted" watch w/1 --rev=2
same "watch compacted json" watch w/1 --rev=2 -w json
same "watch without key" watch

# ---- lease ----
lease=$(etcd_ctl lease grant 1000 | awk '{print $2}')
cairn_ctl put l/1 v --lease="$lease" >/dev/null
cairn_ctl put l/2 v --lease="$lease" >/dev/null
normalize_ttl() { sed -E 's/remaining\([0-9]+s\)/remaining(Ns)/; s/"ttl":[0-9]+/"ttl":N/'; }
for args in "" "--keys" "-w json" "--keys -w json"; do
  # shellcheck disable=SC2086
  expected=$(run_client etcd_ctl lease timetolive "$lease" $args | normalize_ttl)
  # shellcheck disable=SC2086
  actual=$(run_client cairn_ctl lease timetolive "$lease" $args | normalize_ttl)
  expect_eq "lease timetolive $args" "$actual" "$expected"
done
expect_contains "timetolive keys" "$(cairn_ctl lease timetolive "$lease" --keys)" \
  "granted with TTL(1000s), remaining("
same "timetolive missing" lease timetolive 1234
same "timetolive missing json" lease timetolive 1234 -w json
same "lease list" lease list
same "lease list json" lease list -w json
same "keep-alive once" lease keep-alive --once "$lease"
same "keep-alive once json" lease keep-alive --once "$lease" -w json
same "keep-alive once missing" lease keep-alive --once 1234
same "revoke missing" lease revoke 1234
same "revoke bad id" lease revoke zz
same "grant no ttl" lease grant
same "grant bad ttl" lease grant abc
same "put missing lease" put l/x v --lease=1234
granted=$(cairn_ctl lease grant 100)
[[ "$granted" =~ ^lease\ ([0-9a-f]{16})\ granted\ with\ TTL\(100s\)$ ]] ||
  fail "lease grant: [$granted]"
cairn_lease=${BASH_REMATCH[1]}
grant_json=$(cairn_ctl lease grant 100 -w json)
[[ "$grant_json" =~ ^\{\"cluster_id\":[0-9]+,\"member_id\":[0-9]+,\"revision\":[0-9]+,\"raft_term\":[0-9]+,\"ID\":[0-9]+,\"TTL\":100,\"Error\":\"\"\}$ ]] ||
  fail "lease grant json: [$grant_json]"
# Revoke it: while a lease lives, cairnd checkpoints its remaining TTL through the log every
# 5 s, which would move the raft index between the two "endpoint status" calls below.
json_lease=$(printf '%016x' "$(grep -o '"ID":[0-9]*' <<<"$grant_json" | cut -d: -f2)")
expect_eq "lease revoke json-granted" "$(cairn_ctl lease revoke "$json_lease")" \
  "lease $json_lease revoked"
expect_eq "lease revoke" "$(cairn_ctl lease revoke "$cairn_lease")" "lease $cairn_lease revoked"
expect_eq "revoke again" "$(cairn_ctl lease revoke "$cairn_lease" 2>&1 || echo "status $?")" \
  "Error: failed to revoke lease (etcdserver: requested lease not found)${nl}status 1"
expect_eq "revoke json" "$(cairn_ctl lease revoke "$lease" -w json | normalize_revision)" \
  "$(etcd_ctl get nope -w json | normalize_revision)"  # the same header, nothing else
expect_eq "keys gone with the lease" "$(cairn_ctl get l/ --prefix)" ""
short=$(cairn_ctl lease grant 3 | awk '{print $2}')
timeout 20 "$CAIRNCTL" --endpoints="$ENDPOINT" lease keep-alive "$short" >"$TEST_DIR/keepalive" &
keepalive_pid=$!
for _ in $(seq 1 100); do [ -s "$TEST_DIR/keepalive" ] && break; sleep 0.05; done
cairn_ctl lease revoke "$short" >/dev/null
wait "$keepalive_pid" || fail "keep-alive did not exit 0 after the revoke"
expect_eq "keep-alive until revoked" "$(head -1 "$TEST_DIR/keepalive"; tail -1 "$TEST_DIR/keepalive")" \
  "lease $short keepalived with TTL(3)${nl}lease $short expired or revoked."

# ---- compaction ----
same "compaction no argument" compaction
same "compaction bad revision" compaction abc
same "compaction compacted" compaction 2
rev=$(cairn_ctl put cp 1 -w json | grep -o '"revision":[0-9]*' | cut -d: -f2)
expect_eq "compaction" "$(cairn_ctl compaction "$rev")" "compacted revision $rev"
expect_eq "compaction physical" "$(cairn_ctl compaction --physical "$rev" 2>&1 || echo "status $?")" \
  "Error: etcdserver: mvcc: required revision has been compacted${nl}status 1"
same "get compacted" get cp --rev=2
same "get future" get cp --rev=1000000

# ---- argument and input errors ----
same "get no key" get
same "get bad sort" get a --sort-by=FOO
same "get bad order" get a --order=FOO
same "get bad consistency" get a --consistency=q
same "get prefix and from-key" get a --prefix --from-key
same "get too many" get a b --prefix
same "print-value-only json" get a --print-value-only -w json
same "put no key" put
same "put empty key" put "" x
same "put bad lease" put a b --lease=zz
same "put ignore-value with value" put a b --ignore-value
same "del no key" del
same "txn argument" txn x
same "snapshot no file" snapshot save
same "lock no name" lock
same "elect no name" elect
same "elect no proposal" elect e
same "unreachable" --endpoints=127.0.0.1:1 --command-timeout=1s get a

# ---- endpoint and member ----
same "endpoint status" endpoint status
same "endpoint status json" endpoint status -w json
normalize_took() { sed -E 's/took = [0-9.]+[µmn]?s/took = T/; s/"took":"[^"]*"/"took":"T"/'; }
expect_eq "endpoint health" "$(run_client cairn_ctl endpoint health | normalize_took)" \
  "$(run_client etcd_ctl endpoint health | normalize_took)"
expect_eq "endpoint health json" "$(run_client cairn_ctl endpoint health -w json | normalize_took)" \
  "$(run_client etcd_ctl endpoint health -w json | normalize_took)"
expect_contains "endpoint health healthy" "$(run_client cairn_ctl endpoint health)" \
  "$ENDPOINT is healthy: successfully committed proposal: took = "
# The Cluster service: cairnd answers MemberList as a one-member etcd.
same "member list" member list
same "member list json" member list -w json
expect_contains "member list started" "$(cairn_ctl member list)" ", started, "

# ---- --count-only (etcd 3.5's flag; etcdctl 3.4 lacks it) ----
expect_eq "count-only" "$(cairn_ctl get a --prefix --count-only)" "3"
count_json=$(cairn_ctl get a --prefix --count-only -w json)
expect_contains "count-only json" "$count_json" '"count":3}'
[[ "$count_json" != *'"kvs"'* ]] || fail "count-only returned kvs: $count_json"

# ---- snapshot save: <file>.part, fsync, rename; the same byte count as etcdctl's ----
etcd_ctl snapshot save "$TEST_DIR/etcdctl.snap" >/dev/null 2>&1 ||
  fail "etcdctl snapshot save failed"
expect_eq "snapshot save" "$(cairn_ctl snapshot save "$TEST_DIR/cairnctl.snap" 2>/dev/null)" \
  "Snapshot saved at $TEST_DIR/cairnctl.snap"
[ -s "$TEST_DIR/cairnctl.snap" ] || fail "snapshot file is empty or missing"
[ ! -e "$TEST_DIR/cairnctl.snap.part" ] || fail "snapshot .part file left behind"
expect_eq "snapshot size" "$(stat -c %s "$TEST_DIR/cairnctl.snap")" \
  "$(stat -c %s "$TEST_DIR/etcdctl.snap")"
same "snapshot two endpoints" --endpoints="$ENDPOINT,127.0.0.1:1" snapshot save "$TEST_DIR/x"

# ---- lock (server-side v3lockpb; interoperates with etcdctl's client-side recipe) ----
expect_eq "lock with a command" "$(cairn_ctl lock mylock echo hi)" "hi"
lock_env=$(cairn_ctl lock mylock -- sh -c 'echo "$ETCD_LOCK_KEY $ETCD_LOCK_REV"')
[[ "$lock_env" =~ ^mylock/[0-9a-f]+\ [0-9]+$ ]] || fail "lock environment: [$lock_env]"
expect_eq "lock keys released" "$(cairn_ctl get --prefix mylock/ --keys-only)" ""
expect_eq "lock command failing" "$(cairn_ctl lock mylock false 2>&1 || echo "status $?")" \
  "Error: exit status 1${nl}status 1"
expect_eq "etcdctl lock command failing" "$(etcd_ctl lock mylock false 2>&1 || echo "status $?")" \
  "Error: exit status 1${nl}status 1"

"$CAIRNCTL" --endpoints="$ENDPOINT" lock ser >"$TEST_DIR/holder" &
HOLDER=$!
BACKGROUND+=("$HOLDER")
wait_for_lines "$TEST_DIR/holder" 2
[[ "$(head -1 "$TEST_DIR/holder")" == ser/* ]] || fail "lock key: [$(cat "$TEST_DIR/holder")]"
expect_eq "lock holder value" "$(sed -n 2p "$TEST_DIR/holder")" ""
ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" lock ser -- sh -c "echo second >>$TEST_DIR/order" &
SECOND=$!
BACKGROUND+=("$SECOND")
sleep 1
[ ! -e "$TEST_DIR/order" ] || fail "etcdctl ran while cairnctl held the lock"
echo first >>"$TEST_DIR/order"
kill -INT "$HOLDER"
wait "$HOLDER" || fail "cairnctl lock did not exit 0 on SIGINT"
wait_for_lines "$TEST_DIR/order" 2
wait "$SECOND" || fail "the etcdctl contender failed"
expect_eq "lock order" "$(cat "$TEST_DIR/order")" "first${nl}second"
expect_eq "lock released on SIGINT" "$(cairn_ctl get --prefix ser/ --keys-only)" ""

# ---- elect (server-side v3electionpb) ----
"$CAIRNCTL" --endpoints="$ENDPOINT" elect e1 p1 >"$TEST_DIR/leader1" &
LEADER1=$!
BACKGROUND+=("$LEADER1")
wait_for_lines "$TEST_DIR/leader1" 2
[[ "$(head -1 "$TEST_DIR/leader1")" == e1/* ]] || fail "leader key: [$(cat "$TEST_DIR/leader1")]"
expect_eq "proposal" "$(sed -n 2p "$TEST_DIR/leader1")" "p1"
"$CAIRNCTL" --endpoints="$ENDPOINT" elect -l e1 >"$TEST_DIR/observed" &
BACKGROUND+=("$!")
wait_for_lines "$TEST_DIR/observed" 2
expect_eq "observed leader" "$(cat "$TEST_DIR/observed")" "$(cat "$TEST_DIR/leader1")"
ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" elect -l e1 >"$TEST_DIR/etcd_observed" &
BACKGROUND+=("$!")
wait_for_lines "$TEST_DIR/etcd_observed" 2
expect_eq "etcdctl observes cairnctl's leader" "$(cat "$TEST_DIR/etcd_observed")" \
  "$(cat "$TEST_DIR/leader1")"
"$CAIRNCTL" --endpoints="$ENDPOINT" elect e1 p2 >"$TEST_DIR/leader2" &
LEADER2=$!
BACKGROUND+=("$LEADER2")
sleep 1
[ ! -s "$TEST_DIR/leader2" ] || fail "a second leader while the first holds: [$(cat "$TEST_DIR/leader2")]"
kill -INT "$LEADER1"
wait "$LEADER1" || fail "cairnctl elect did not exit 0 on SIGINT"
wait_for_lines "$TEST_DIR/leader2" 2
expect_eq "second proposal" "$(sed -n 2p "$TEST_DIR/leader2")" "p2"
wait_for_lines "$TEST_DIR/observed" 4
expect_eq "observed takeover" "$(sed -n 4p "$TEST_DIR/observed")" "p2"

kill_background
BACKGROUND=()
stop_cairnd TERM
echo PASS
