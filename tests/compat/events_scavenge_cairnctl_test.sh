#!/usr/bin/env bash
# `cairnctl events scavenge` against a real cairnd: events hidden by max-count, max-age and a
# hard delete leave the engine's files (their payload cannot be found in data/state after a
# defrag), reads and a projection that counted them do not change, the hash chain still
# verifies, retries of removed appends stay idempotent, and all of it survives kill -9.
# docs/events.md "Scavenge" describes what is removed and what stays.
# Usage: events_scavenge_cairnctl_test.sh <cairnd binary> <cairnctl binary>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CAIRND=$1
CAIRNCTL=$2
make_temp_dir
start_cairnd "$CAIRND" "$TEST_DIR/data"
source "$(dirname "$0")/ctl_lib.sh"

# in_engine <text>: whether any file of the engine's directory holds <text>.
in_engine() { grep -r -a -q -F "$1" "$TEST_DIR/data/state"; }

cat >"$TEST_DIR/count.lua" <<'LUA'
partition_by = "stream"
function init() return { n = 0 } end
handlers = { Secret = function(state, event) state.n = state.n + 1 return state end }
LUA
ok "projection" projection create count --file "$TEST_DIR/count.lua"

first_id=6f1c1b9e-3c1a-4e8e-9d6a-2b7f0c9a1d10
ok "append first" events append secret-1 --type Secret --id "$first_id" \
  --data '{"payload":"ERASE-ME-0"}' --expected-version no-stream
for i in $(seq 1 39); do
  ok "append $i" events append secret-1 --type Secret --data "{\"payload\":\"ERASE-ME-$i\"}"
done
for i in 1 2 3; do ok "append gone $i" events append gone-1 --type Secret --data "{\"p\":\"GONE-$i\"}"; done
ok "append kept" events append kept-1 --type Kept --data '{"payload":"KEEP-ME"}'
ok "max-count" events metadata set secret-1 --max-count 2
ok "hard delete" events delete gone-1 --hard
ok "read before" events read secret-1
read_before=$OUT
expect_eq "read before: lines" "$(echo "$OUT" | wc -l)" 2
ok "read \$ce before" events read '$ce-secret'
ce_before=$OUT

ok "defrag before" defrag
in_engine "ERASE-ME-7\"" || fail "the hidden payload is not in the engine's files before the scavenge"

# ---- scavenge: 38 + 3 events removed; a second pass finds nothing ----
ok "scavenge" events scavenge --max-streams 1
expect_eq "scavenge" "$OUT" "scavenged: 3 streams examined, 41 events removed ($(echo "$OUT" |
  sed -E 's/.*\(([0-9]+ bytes)\).*/\1/')) in 3 slices"
ok "scavenge again" events scavenge
expect_eq "scavenge again" "$OUT" "scavenged: 3 streams examined, 0 events removed (0 bytes) in 1 slice"
ok "scavenge json" -w json events scavenge --once
expect_contains "scavenge json" "$OUT" '"streamsExamined":"3"'

# Reads and the projection are as before; the chain verifies through the removed events.
ok "read after" events read secret-1
expect_eq "read after" "$OUT" "$read_before"
ok "read \$ce after" events read '$ce-secret'
expect_eq "read \$ce after" "$OUT" "$ce_before"
ok "projection state" projection state count secret-1
expect_eq "projection state" "$OUT" '{"n":40}'
ok "verify" audit verify
expect_eq "verify" "$OUT" "ok: 44 events verified (41 scavenged: hash anchors)"

# ---- from disk: after RocksDB compacts (defrag), the payloads are gone from data/state ----
ok "defrag" defrag
! in_engine "ERASE-ME-7\"" || fail "a scavenged payload is still in the engine's files"
! in_engine "GONE-2" || fail "a hard-deleted stream's payload is still in the engine's files"
in_engine "ERASE-ME-39" || fail "a visible event's payload is missing from the engine's files"
in_engine "KEEP-ME" || fail "another stream's payload is missing from the engine's files"

# ---- kill -9: the removal, the anchors and idempotency survive ----
stop_cairnd KILL
start_cairnd "$CAIRND" "$TEST_DIR/data"
ok "read after kill" events read secret-1
expect_eq "read after kill" "$OUT" "$read_before"
ok "verify after kill" audit verify
expect_eq "verify after kill" "$OUT" "ok: 44 events verified (41 scavenged: hash anchors)"
ok "idempotent retry" events append secret-1 --type Secret --id "$first_id" \
  --data '{"payload":"ERASE-ME-0"}' --expected-version no-stream
matches "idempotent retry" "$OUT" "^appended versions 0\.\.0 at position [0-9]+/0 \(idempotent replay: already appended\)\$"
fails "bad bound" 1 "Error: events: scavenge bounds (max_streams, max_events) are at most 100000" \
  events scavenge --max-events 100001
echo "PASS"
