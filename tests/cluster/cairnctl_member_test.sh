#!/usr/bin/env bash
# cairnctl's membership and cluster-wide endpoint commands against a real 3-member cairnd
# cluster, compared with Debian's etcdctl 3.4 (stdout, "Error:" lines, exit status):
#   - argument errors of member add/remove/update/promote (exit 128) and peer URLs that
#     clientv3 rejects before sending (exit 1);
#   - endpoint status/health/hashkv --cluster (endpoints from the member list);
#   - member add (also --learner, -w json): etcdctl adds one member, cairnctl another; the
#     outputs are equal once the new member's id and name are replaced (each add makes a new
#     random id) and ETCD_INITIAL_CLUSTER's entries are sorted (the member list is ordered by
#     id);
#   - member remove and member update of those members, and the errors of promoting a voter
#     and removing an unknown id;
#   - a learner added by cairnctl joins, catches up, and `cairnctl member promote` makes it a
#     voter.
# Usage: cairnctl_member_test.sh <cairnd binary> <cairnctl binary>
set -Eeuo pipefail
CAIRND=$1
CAIRNCTL=$2
source "$(dirname "$0")/../compat/lib.sh"
# set -e would end the script silently: every command that fails outside a condition says
# which one and where. Subshells (command substitutions, pipeline parts) return: their status
# reaches the main shell, which reports the command that used it.
on_error() {
  [ "$BASHPID" == "$$" ] || return 0
  fail "line $2: \`$3\` exited with status $1"
}
trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
require_tool "$ETCDCTL"
make_temp_dir
export ETCDCTL_API=3
nl=$'\n'

read -r -a PORTS <<<"$(/usr/bin/python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(10)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)"
CLIENT=("${PORTS[0]}" "${PORTS[1]}" "${PORTS[2]}" "${PORTS[3]}")
PEER=("${PORTS[4]}" "${PORTS[5]}" "${PORTS[6]}" "${PORTS[7]}" "${PORTS[8]}" "${PORTS[9]}")
INITIAL="m0=http://127.0.0.1:${PEER[0]},m1=http://127.0.0.1:${PEER[1]},m2=http://127.0.0.1:${PEER[2]}"
PIDS=(0 0 0 0)

start_member() {
  local i=$1
  shift
  "$CAIRND" --name "m$i" --data-dir "$TEST_DIR/m$i" --initial-cluster "$INITIAL" "$@" \
    --listen-client-urls "http://127.0.0.1:${CLIENT[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${CLIENT[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${PEER[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${PEER[$i]}" \
    --heartbeat-interval 50 --election-timeout 500 --listen-metrics-urls "" \
    >>"$TEST_DIR/m$i.log" 2>&1 &
  PIDS[$i]=$!
}
# Only the members this script started are killed (by pid).
stop_cairnd() {
  for i in 0 1 2 3; do
    if [ "${PIDS[$i]}" != 0 ]; then
      kill -9 "${PIDS[$i]}" 2>/dev/null || true
      wait "${PIDS[$i]}" 2>/dev/null || true
      PIDS[$i]=0
    fi
  done
  return 0
}
EP="127.0.0.1:${CLIENT[0]}"
etcd_ctl() { "$ETCDCTL" --endpoints="$EP" "$@"; }
cairn_ctl() { "$CAIRNCTL" --endpoints="$EP" "$@"; }

for i in 0 1 2; do start_member "$i"; done
for _ in $(seq 1 100); do
  etcd_ctl endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done
etcd_ctl put warm up >/dev/null || fail "the cluster does not take writes"

# run_client <etcd_ctl|cairn_ctl> <args...>: stdout, stderr without zap log lines, status.
run_client() {
  local client=$1 status=0 out
  shift
  out=$("$client" "$@" 2>"$TEST_DIR/stderr") || status=$?
  printf '%s\n--stderr--\n%s\n--status %s--' "$out" "$(grep -v '^{"level"' "$TEST_DIR/stderr" || true)" \
    "$status"
}
# same <what> [--filter <command>] <args...>: both clients print the same (after the filter).
same() {
  local what=$1 filter=cat
  shift
  if [ "$1" == "--filter" ]; then
    filter=$2
    shift 2
  fi
  local expected actual
  expected=$(run_client etcd_ctl "$@" | $filter)
  actual=$(run_client cairn_ctl "$@" | $filter)
  [ "$actual" == "$expected" ] ||
    fail "$what: cairnctl differs from etcdctl${nl}--- etcdctl:${nl}$expected${nl}--- cairnctl:${nl}$actual"
}

# ---- argument errors (exit 128) and peer URLs clientv3 rejects (exit 1) ----
same "member add without a name" member add
same "member add with two names" member add a http://127.0.0.1:1 --peer-urls=http://127.0.0.1:2
same "member add without peer urls" member add a
same "member add with a URL without scheme" member add a --peer-urls=127.0.0.1:2380
same "member add with a host:port without scheme" member add a --peer-urls=localhost:2380
same "member add with an ftp URL" member add a --peer-urls=ftp://127.0.0.1:2380
same "member add with a URL without port" member add a --peer-urls=http://127.0.0.1
same "member add with a URL with a path" member add a --peer-urls=http://127.0.0.1:2380/x
same "member remove without id" member remove
same "member remove with a non-hex id" member remove zz
same "member remove with an id out of range" member remove 1ffffffffffffffff
same "member remove with two ids" member remove 1 2
same "member update without peer urls" member update 1
same "member update with a bad id" member update xyz --peer-urls=http://127.0.0.1:2380
same "member promote without id" member promote
same "member remove of an unknown id" member remove 1
same "member update of an unknown id" member update 1 --peer-urls=http://127.0.0.1:9
same "member promote of an unknown id" member promote 1
# awk, not head -1: head exits after one line and etcdctl, which writes a line at a time, then
# dies of SIGPIPE (status 141, fatal under pipefail).
VOTER=$(etcd_ctl member list | awk -F, 'NR == 1 {print $1}')
same "member promote of a voter" member promote "$VOTER"
same "member add of a peer URL in use" member add x --peer-urls="http://127.0.0.1:${PEER[1]}"
for format in simple json; do
  same "member list -w $format" -w "$format" member list
done

# ---- endpoint --cluster ----
# Raft indexes and db sizes may move between the two calls (lease checkpoints, ...): status
# keeps the endpoint, id, version, leader, learner and term columns.
status_columns() { awk -F', ' '/^http/{print $1", "$2", "$3", "$5", "$6", "$7; next} {print}'; }
same "endpoint status --cluster" --filter status_columns endpoint status --cluster
expect_eq "endpoint status --cluster lists every member" \
  "$(cairn_ctl endpoint status --cluster | grep -c '^http://127.0.0.1:')" "3"
# etcdctl checks the endpoints concurrently and prints them in the order they answer; the
# time each took necessarily differs.
health_sorted() {
  sed -E 's/took = [^ ]+/took = T/; s/"took":"[^"]*"/"took":"T"/g' |
    python3 -c 'import json,sys
for line in sys.stdin.read().split("\n"):
    if line.startswith("[{"):
        line = json.dumps(sorted(json.loads(line), key=lambda h: h["endpoint"]), separators=(",", ":"))
    print(line)' | sort
}
same "endpoint health --cluster" --filter health_sorted endpoint health --cluster
same "endpoint health --cluster -w json" --filter health_sorted -w json endpoint health --cluster
same "endpoint hashkv --cluster" endpoint hashkv --cluster
same "endpoint --cluster hashkv (flag before the subcommand)" endpoint --cluster hashkv
DEAD="127.0.0.1:${PEER[5]}"  # nothing listens there
expect_eq "endpoint status --cluster through a dead endpoint" \
  "$(run_client cairn_ctl --endpoints="$DEAD" --dial-timeout=1s --command-timeout=1s endpoint status --cluster)" \
  "$(run_client etcd_ctl --endpoints="$DEAD" --dial-timeout=1s --command-timeout=1s endpoint status --cluster)"

# ---- member add / remove / update: one member each, outputs equal up to id and name ----
# normalize_member <id hex> <name>: the id (hex, padded hex, decimal) and name become ID/NAME;
# ETCD_INITIAL_CLUSTER's entries sorted.
normalize_member() {
  local hex=$1 name=$2 dec
  dec=$(python3 -c "print(int('$hex', 16))")
  sed -E "s/ *$hex/ID/g; s/$dec/ID/g; s/\"$name\"/\"NAME\"/g; s/$name=/NAME=/g" |
    python3 -c 'import sys
for line in sys.stdin.read().split("\n"):
    if line.startswith("ETCD_INITIAL_CLUSTER=\""):
        line = "ETCD_INITIAL_CLUSTER=\"" + ",".join(sorted(line[22:-1].split(","))) + "\""
    print(line)'
}
# drop_initial_cluster_entry <entry>: stdin with that entry removed from the
# ETCD_INITIAL_CLUSTER line; fails if the line is there without the entry.
drop_initial_cluster_entry() {
  python3 -c 'import sys
entry, found, lines = sys.argv[1], True, []
for line in sys.stdin.read().split("\n"):
    if line.startswith("ETCD_INITIAL_CLUSTER=\"") and line.endswith("\""):
        entries = line[22:-1].split(",")
        found = entry in entries
        line = "ETCD_INITIAL_CLUSTER=\"" + ",".join(e for e in entries if e != entry) + "\""
    lines.append(line)
sys.stdout.write("\n".join(lines))
sys.exit(0 if found else 1)' "$1"
}
new_id() { # new_id <name> <member add output>: the added member's id from the member list
  "$ETCDCTL" --endpoints="$EP" member list | awk -F', ' -v url="$1" '$4 == url {print $1}'
}
add_compare() { # add_compare <what> <flags...>
  local what=$1
  shift
  local url_e="http://127.0.0.1:${PEER[3]}" url_c="http://127.0.0.1:${PEER[4]}"
  local out_e out_c id_e id_c
  out_e=$(run_client etcd_ctl member add e-new --peer-urls="$url_e" "$@")
  id_e=$(new_id "$url_e")
  out_c=$(run_client cairn_ctl member add c-new --peer-urls="$url_c" "$@")
  id_c=$(new_id "$url_c")
  [ -n "$id_e" ] && [ -n "$id_c" ] || fail "$what: no new member in the list (etcdctl: $out_e; cairnctl: $out_c)"
  # The other client's new member (not started, so without a name) shows in the second
  # list, at any position (the list is ordered by the random ids): drop exactly that entry.
  out_c=$(drop_initial_cluster_entry "=$url_e" <<<"$out_c") ||
    fail "$what: cairnctl's ETCD_INITIAL_CLUSTER lacks etcdctl's new member =$url_e:$nl$out_c"
  # JSON: the second add also lists the first's member; compare the added member and header.
  if [[ "$out_e" == "{"* ]]; then
    local pick='import json,sys; d=json.loads(sys.stdin.readline()); print(json.dumps([d["header"]["cluster_id"], d["member"], len(d["members"])]))'
    out_e=$(python3 -c "$pick" <<<"$out_e")
    out_c=$(python3 -c "$pick" <<<"$out_c" | sed 's/, 5]$/, 4]/')
  fi
  out_e=$(echo "$out_e" | normalize_member "$id_e" e-new | sed "s#$url_e#URL#g")
  out_c=$(echo "$out_c" | normalize_member "$id_c" c-new | sed "s#$url_c#URL#g")
  [ "$out_c" == "$out_e" ] ||
    fail "$what: cairnctl differs from etcdctl${nl}--- etcdctl:${nl}$out_e${nl}--- cairnctl:${nl}$out_c"
  # Update both to other (unused) URLs, then remove both.
  local upd_e upd_c
  upd_e=$(run_client etcd_ctl member update "$id_e" --peer-urls="http://127.0.0.1:${PEER[5]}" | normalize_member "$id_e" x)
  upd_c=$(run_client cairn_ctl member update "$id_c" --peer-urls="http://127.0.0.1:${PEER[4]}" | normalize_member "$id_c" x)
  expect_eq "$what: member update" "$upd_c" "$upd_e"
  local rm_e rm_c
  rm_e=$(run_client etcd_ctl member remove "$id_e" | normalize_member "$id_e" x)
  rm_c=$(run_client cairn_ctl member remove "$id_c" | normalize_member "$id_c" x)
  expect_eq "$what: member remove" "$rm_c" "$rm_e"
  [[ "$rm_c" == *"removed from cluster"* ]] || fail "$what: remove did not succeed: $rm_c"
}
add_compare "member add"
add_compare "member add --learner" --learner
add_compare "member add -w json" -w json
add_compare "member add --learner -w json" --learner -w json
expect_eq "members after adding and removing" "$(cairn_ctl member list | wc -l)" "3"

# ---- a learner added by cairnctl joins, catches up and is promoted ----
for n in $(seq 1 20); do cairn_ctl put "k$n" "v$n" >/dev/null; done
ADD=$(cairn_ctl member add m3 --peer-urls="http://127.0.0.1:${PEER[3]}" --learner) || fail "member add --learner: $ADD"
grep -q '^ETCD_INITIAL_CLUSTER_STATE="existing"$' <<<"$ADD" || fail "member add output: $ADD"
INITIAL=$(echo "$ADD" | sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p')
LEARNER=$(new_id "http://127.0.0.1:${PEER[3]}")
expect_eq "the learner is listed as an unstarted learner" \
  "$(cairn_ctl member list | grep "^$LEARNER, " | cut -d, -f2,6)" " unstarted, true"
start_member 3 --initial-cluster-state existing
promoted=""
for _ in $(seq 1 100); do
  if promoted=$(cairn_ctl member promote "$LEARNER" 2>&1); then break; fi
  sleep 0.1
done
CLUSTER_ID=$(cairn_ctl -w json member list | python3 -c 'import json,sys; print("%x" % json.load(sys.stdin)["header"]["cluster_id"])')
expect_eq "member promote" "$promoted" "$(printf 'Member %16s promoted in cluster %16s' "$LEARNER" "$CLUSTER_ID")"
# A member publishes its name (started) once it has applied its own addition.
listed=""
for _ in $(seq 1 100); do
  listed=$(cairn_ctl member list | grep "^$LEARNER, " | cut -d, -f2,3,6) || true
  [ "$listed" == " started, m3, false" ] && break
  sleep 0.1
done
expect_eq "the promoted member is a started voter" "$listed" " started, m3, false"
same "member promote of the promoted member" member promote "$LEARNER"
EP4="127.0.0.1:${CLIENT[3]}"
expect_eq "the promoted member serves the data" "$("$CAIRNCTL" --endpoints="$EP4" get k20 --print-value-only)" "v20"
expect_eq "endpoint status --cluster lists four members" \
  "$(cairn_ctl endpoint status --cluster | grep -c '^http://127.0.0.1:')" "4"
echo "PASS: member add/remove/update/promote and endpoint --cluster match etcdctl"
