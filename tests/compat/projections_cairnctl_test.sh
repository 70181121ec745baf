#!/usr/bin/env bash
# cairnctl's projection and upcaster commands against a real cairnd: create (and its precise
# errors), get/list/state output, a fault with its event and error while appends keep
# working, stop/start/reset/update/delete, kill -9 and restart without double counting, and
# an upcaster changing what `events read` prints. docs/events-cli.md documents the outputs.
# Usage: projections_cairnctl_test.sh <cairnd binary> <cairnctl binary>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CAIRND=$1
CAIRNCTL=$2
make_temp_dir
start_cairnd "$CAIRND" "$TEST_DIR/data"

source "$(dirname "$0")/ctl_lib.sh"

# caught_up <name>: up to 10 s for `projection get` to show checkpoint == head.
caught_up() {
  for _ in $(seq 1 200); do
    run projection get "$1"
    if [[ "$OUT" =~ checkpoint\ ([0-9/]+)\ \(head\ ([0-9/]+)\) ]] &&
      [ "${BASH_REMATCH[1]}" == "${BASH_REMATCH[2]}" ]; then
      return 0
    fi
    sleep 0.05
  done
  fail "$1 did not catch up: [$OUT]"
}

cat >"$TEST_DIR/counts.lua" <<'LUA'
partition_by = "stream"
function init() return { n = 0, total = 0 } end
handlers = {
  Added = function(state, event)
    state.n = state.n + 1
    state.total = state.total + event.data.amount
    return state
  end,
}
LUA

# ---- create: OK, then precise errors ----
ok "create" projection create counts --file "$TEST_DIR/counts.lua"
expect_eq "create: output" "$OUT" "OK"
fails "create twice" 1 "Error: projections: projection 'counts' already exists" \
  projection create counts --file "$TEST_DIR/counts.lua"
fails "syntax error" 1 "Error: projections: bad:1: unexpected symbol near <eof>" \
  projection create bad --source 'handlers = {'
fails "missing" 1 "Error: projections: projection 'nope' not found" projection get nope
fails "no source" 128 "Error: the Lua source is required (--source or --file)" \
  projection create nosource

# ---- a fold: 30 appends over 3 streams ----
declare -A n total
for i in $(seq 1 30); do
  stream="acct-$((i % 3))"
  ok "append $i" events append "$stream" --type Added --data "{\"amount\":$i}"
  n[$stream]=$((${n[$stream]:-0} + 1))
  total[$stream]=$((${total[$stream]:-0} + i))
done
caught_up counts
[[ "$OUT" =~ ^counts\ running\ checkpoint\ .*\ seen\ 30\ folded\ 30\ partitions\ 3$ ]] ||
  fail "get: [$OUT]"
for stream in acct-0 acct-1 acct-2; do
  ok "state $stream" projection state counts "$stream"
  expect_eq "state $stream" "$OUT" "{\"n\":${n[$stream]},\"total\":${total[$stream]}}"
done
ok "state missing" projection state counts acct-9
expect_eq "state missing" "$OUT" "no state"
ok "list" projection list
expect_contains "list" "$OUT" "counts running"
ok "get json" -w json projection get counts
expect_contains "get json" "$OUT" '"eventsFolded":"30"'

# ---- kill -9 and restart: the fold continues from the persisted checkpoint ----
stop_cairnd KILL
start_cairnd "$CAIRND" "$TEST_DIR/data"
for i in $(seq 31 40); do
  stream="acct-$((i % 3))"
  ok "append $i" events append "$stream" --type Added --data "{\"amount\":$i}"
  n[$stream]=$((${n[$stream]:-0} + 1))
  total[$stream]=$((${total[$stream]:-0} + i))
done
caught_up counts
expect_contains "get after restart" "$OUT" "seen 40 folded 40 partitions 3"
for stream in acct-0 acct-1 acct-2; do
  ok "state $stream after restart" projection state counts "$stream"
  expect_eq "state $stream after restart" "$OUT" \
    "{\"n\":${n[$stream]},\"total\":${total[$stream]}}"
done

# ---- a runaway handler faults the projection; appends keep working ----
ok "create spin" projection create spin --source \
  'handlers = { Spin = function(s, e) while true do end end }'
ok "append spin" events append other-1 --type Spin --data '{}'
for _ in $(seq 1 200); do
  run projection get spin
  [[ "$OUT" == *faulted* ]] && break
  sleep 0.05
done
expect_contains "fault" "$OUT" "fault at other-1@0 (Spin, position "
expect_contains "fault" "$OUT" "handler 'Spin': spin:1: instruction limit exceeded"
ok "append after fault" events append other-1 --type Added --data '{"amount":1}'
expect_contains "append after fault" "$OUT" "appended versions 1..1"

# ---- stop, start, reset, update, delete ----
ok "stop" projection stop counts
ok "get stopped" projection get counts
expect_contains "get stopped" "$OUT" "counts stopped"
ok "start" projection start counts
ok "reset" projection reset counts
caught_up counts
expect_contains "after reset" "$OUT" "seen 42 folded 41"
ok "update spin" projection update spin --source 'handlers = {}'
caught_up spin
expect_contains "spin updated" "$OUT" "spin running"
ok "delete" projection delete spin
fails "deleted" 1 "Error: projections: projection 'spin' not found" projection get spin

# ---- upcasters ----
ok "append v1" events append order-1 --type OrderPlaced --data '{"amount":5}'
fails "upcaster syntax" 1 \
  "Error: projections: upcaster for event type 'OrderPlaced' from schema version 1: OrderPlaced@v1:1: unexpected symbol near <eof>" \
  upcaster set OrderPlaced 1 --source 'function upcast(d, e) return {'
ok "upcaster set" upcaster set OrderPlaced 1 --source \
  'function upcast(d, e) return { total = { amount = d.amount, currency = "USD" } } end'
ok "upcaster list" upcaster list
[[ "$OUT" =~ ^OrderPlaced\ v1\ -\>\ v2\ \([0-9]+\ bytes\ of\ Lua\)$ ]] || fail "list: [$OUT]"
ok "read upcast" events read order-1
[[ "$OUT" =~ \{\"total\":\{\"amount\":5,\"currency\":\"USD\"\}\}$ ]] || fail "read: [$OUT]"
ok "upcaster delete" upcaster delete OrderPlaced 1
ok "read stored" events read order-1
[[ "$OUT" =~ \{\"amount\":5\}$ ]] || fail "read stored: [$OUT]"
fails "upcaster delete twice" 1 \
  "Error: projections: no upcaster for event type 'OrderPlaced' from schema version 1" \
  upcaster delete OrderPlaced 1

stop_cairnd
echo "PASS"
