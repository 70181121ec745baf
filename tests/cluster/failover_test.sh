#!/usr/bin/env bash
# Cluster failover test (issue 4): three real cairnd processes on loopback, driven by
# Debian's etcdctl. Every acknowledged write is recorded; after each fault the test checks
# that all of them are present with their values and that every member holds the same
# HashKV at the same revision.
#   1. writes through every member (followers forward to the leader);
#   2. SIGKILL of the leader: a survivor accepts writes again (failover time printed);
#      the killed member restarts and catches up;
#   3. SIGKILL of a follower under writes, restart, catch-up;
#   4. SIGKILL of all members, restart of all: nothing acknowledged is lost;
#   5. a linearizable read on a follower sees a write acknowledged by the leader just before;
#   6. member add + a fourth member joining with --initial-cluster-state existing catches up,
#      then member remove of another member; the remaining three converge and take writes;
#   7. a lease granted and kept alive through a follower outlives its TTL (the follower
#      forwards keep-alives to the leader, which alone expires leases), and expires once the
#      keep-alives stop;
#   8. many concurrent linearizable reads through every member all succeed (regression: the
#      members' ReadIndex contexts collided at the leader, which dropped the duplicates and
#      left those reads to time out).
# Usage: failover_test.sh path/to/cairnd
set -euo pipefail
CAIRND=$1
source "$(dirname "$0")/../compat/lib.sh"
ETCDCTL=/usr/bin/etcdctl
require_tool "$ETCDCTL"
make_temp_dir
export ETCDCTL_API=3

# Free loopback ports (peer URLs must be known before the members start).
read -r -a PORTS <<<"$(/usr/bin/python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)"
CLIENT=("${PORTS[0]}" "${PORTS[1]}" "${PORTS[2]}" "${PORTS[6]}")
PEER=("${PORTS[3]}" "${PORTS[4]}" "${PORTS[5]}" "${PORTS[7]}")
INITIAL="m0=http://127.0.0.1:${PEER[0]},m1=http://127.0.0.1:${PEER[1]},m2=http://127.0.0.1:${PEER[2]}"
ALL="127.0.0.1:${CLIENT[0]},127.0.0.1:${CLIENT[1]},127.0.0.1:${CLIENT[2]}"
PIDS=(0 0 0 0)
MEMBERS=(0 1 2)  # the members the checks address

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
kill_member() { kill -9 "${PIDS[$1]}" 2>/dev/null || true; wait "${PIDS[$1]}" 2>/dev/null || true; PIDS[$1]=0; }
stop_cairnd() { for i in 0 1 2 3; do [ "${PIDS[$i]}" != 0 ] && kill_member "$i"; done; return 0; }
ctl() { "$ETCDCTL" --dial-timeout=1s --command-timeout=3s "$@"; }

# The index (0..2) of the member that says it leads, or nothing.
leader() {
  local i
  for i in "${MEMBERS[@]}"; do
    [ "${PIDS[$i]}" == 0 ] && continue
    if ctl --endpoints "127.0.0.1:${CLIENT[$i]}" endpoint status 2>/dev/null |
      awk -F', ' '{exit !($5 == "true")}'; then
      echo "$i"
      return
    fi
  done
}
wait_leader() {
  for _ in $(seq 1 100); do
    L=$(leader)
    [ -n "$L" ] && return 0
    sleep 0.1
  done
  for i in 0 1 2; do echo "--- m$i" >&2; tail -5 "$TEST_DIR/m$i.log" >&2; done
  fail "no leader within 10 s"
}

ACKED="$TEST_DIR/acked"  # key value, one line per acknowledged put
: >"$ACKED"
SEQ=0
# put_via <member> : one put with a fresh key; recorded only when acknowledged.
put_via() {
  SEQ=$((SEQ + 1))
  local key value
  key=$(printf 'key%05d' "$SEQ")
  value="v$SEQ"
  if ctl --endpoints "127.0.0.1:${CLIENT[$1]}" put "$key" "$value" >/dev/null 2>&1; then
    echo "$key $value" >>"$ACKED"
    return 0
  fi
  return 1
}

# Every acknowledged key has its value on member $1 (serializable read: its own state), and
# every member has the same HashKV at the same revision.
check_member_has_all() {
  local got
  got=$(ctl --endpoints "127.0.0.1:${CLIENT[$1]}" get --prefix key --consistency=s --print-value-only=false |
    paste - - | tr '\t' ' ' | sort)
  local want
  want=$(sort "$ACKED")
  # Unacknowledged puts may have been applied too (a put whose answer was lost): the
  # acknowledged ones must all be there.
  local missing
  missing=$(comm -23 <(echo "$want") <(echo "$got") | head -3)
  [ -z "$missing" ] || fail "member m$1 lost acknowledged writes: $missing"
}
wait_converged() {
  local hashes="" revisions=""
  for _ in $(seq 1 100); do
    hashes=$(ctl --endpoints "$ALL" endpoint hashkv -w json 2>/dev/null |
      /usr/bin/python3 -c 'import json,sys; print(sorted({(r["HashKV"]["header"]["revision"], r["HashKV"]["hash"]) for r in json.load(sys.stdin)}))' 2>/dev/null || true)
    if [ -n "$hashes" ] && [ "$(echo "$hashes" | grep -o '(' | wc -l)" == 1 ] &&
      [ "$(ctl --endpoints "$ALL" endpoint hashkv 2>/dev/null | wc -l)" == "${#MEMBERS[@]}" ]; then
      return 0
    fi
    sleep 0.1
  done
  fail "members did not converge to one (revision, hash): $hashes"
}

for i in 0 1 2; do start_member "$i"; done
wait_leader
echo "leader: m$L"

# 1. Writes through every member.
for n in $(seq 1 30); do put_via $((n % 3)) || fail "put through m$((n % 3)) failed"; done
wait_converged
for i in 0 1 2; do check_member_has_all "$i"; done

# 2. Kill the leader; a survivor must accept writes again.
OLD=$L
kill_member "$OLD"
SURVIVOR=$(((OLD + 1) % 3))
start_ns=$(date +%s%N)
until put_via "$SURVIVOR"; do
  [ $(($(date +%s%N) - start_ns)) -lt 15000000000 ] || fail "no write accepted 15 s after the leader was killed"
  sleep 0.02
done
echo "failover: first acknowledged write $((($(date +%s%N) - start_ns) / 1000000)) ms after SIGKILL of the leader"
for n in $(seq 1 20); do put_via "$SURVIVOR" || put_via $(((OLD + 2) % 3)) || fail "write after failover"; done
start_member "$OLD"
wait_converged
for i in 0 1 2; do check_member_has_all "$i"; done

# 3. Kill a follower under writes, restart it.
wait_leader
FOLLOWER=$(((L + 1) % 3))
kill_member "$FOLLOWER"
for n in $(seq 1 20); do put_via "$L" || fail "write with one follower down"; done
start_member "$FOLLOWER"
wait_converged
for i in 0 1 2; do check_member_has_all "$i"; done

# 4. Kill every member, restart them all.
for i in 0 1 2; do kill_member "$i"; done
for i in 0 1 2; do start_member "$i"; done
wait_leader
wait_converged
for i in 0 1 2; do check_member_has_all "$i"; done
for n in $(seq 1 10); do put_via $((n % 3)) || fail "write after a full restart"; done

# 5. Linearizable reads on followers see the latest acknowledged write.
wait_leader
for n in $(seq 1 10); do
  ctl --endpoints "127.0.0.1:${CLIENT[$L]}" put linear "$n" >/dev/null || fail "put linear"
  for f in 1 2; do
    got=$(ctl --endpoints "127.0.0.1:${CLIENT[$(((L + f) % 3))]}" get linear --print-value-only)
    expect_eq "linearizable read on follower m$(((L + f) % 3))" "$got" "$n"
  done
done
wait_converged

# 6. Add a fourth member, let it join and catch up, then remove another one.
ctl --endpoints "$ALL" member add m3 --peer-urls="http://127.0.0.1:${PEER[3]}" >/dev/null ||
  fail "member add"
INITIAL="$INITIAL,m3=http://127.0.0.1:${PEER[3]}"
start_member 3 --initial-cluster-state existing
MEMBERS=(0 1 2 3)
ALL="$ALL,127.0.0.1:${CLIENT[3]}"
wait_converged
check_member_has_all 3
REMOVED=$(((L + 1) % 3))
REMOVED_ID=$(ctl --endpoints "$ALL" member list | grep ", m$REMOVED, " | cut -d, -f1)
ctl --endpoints "127.0.0.1:${CLIENT[$L]}" member remove "$REMOVED_ID" >/dev/null || fail "member remove"
kill_member "$REMOVED"
MEMBERS=()
ALL=""
for i in 0 1 2 3; do
  [ "$i" == "$REMOVED" ] && continue
  MEMBERS+=("$i")
  ALL="${ALL:+$ALL,}127.0.0.1:${CLIENT[$i]}"
done
expect_eq "members after remove" "$(ctl --endpoints "$ALL" member list | wc -l)" "3"
for n in $(seq 1 10); do put_via 3 || fail "write through the added member"; done
wait_converged
for i in "${MEMBERS[@]}"; do check_member_has_all "$i"; done
# 7. Leases through a follower.
wait_leader
FOLLOWER=""
for i in "${MEMBERS[@]}"; do [ "$i" != "$L" ] && FOLLOWER=$i && break; done
FEP="127.0.0.1:${CLIENT[$FOLLOWER]}"
LEASE=$(ctl --endpoints "$FEP" lease grant 2 | awk '{print $2}')
ctl --endpoints "$FEP" put --lease="$LEASE" leased v >/dev/null || fail "put with a lease"
"$ETCDCTL" --endpoints "$FEP" lease keep-alive "$LEASE" >"$TEST_DIR/keepalive.log" 2>&1 &
KEEPALIVE=$!
BACKGROUND+=("$KEEPALIVE")
sleep 4
expect_eq "leased key kept alive through a follower (2 s TTL, 4 s later)" \
  "$(ctl --endpoints "127.0.0.1:${CLIENT[$L]}" get leased --print-value-only)" "v"
# (SIGTERM: a background job of a non-interactive shell ignores SIGINT.)
kill -TERM "$KEEPALIVE" 2>/dev/null || true
wait "$KEEPALIVE" 2>/dev/null || true
BACKGROUND=()
gone=""
for _ in $(seq 1 100); do
  gone=$(ctl --endpoints "127.0.0.1:${CLIENT[$L]}" get leased --print-value-only)
  [ -z "$gone" ] && break
  sleep 0.1
done
expect_eq "leased key expired once keep-alives stopped" "$gone" ""
# 8. Concurrent linearizable reads through every member.
BENCH=$(dirname "$CAIRND")/cairn-bench
if [ -x "$BENCH" ]; then
  errors=$("$BENCH" --endpoints "$ALL" --conns 30 --clients 300 --total 20000 -w json \
    range --key key00001 --consistency l | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["errors"])')
  expect_eq "errors among 20,000 concurrent linearizable reads" "$errors" "0"
fi
echo "PASS: $(wc -l <"$ACKED") acknowledged writes survived leader, follower and full-cluster kills and a membership change; leases kept alive through a follower"
