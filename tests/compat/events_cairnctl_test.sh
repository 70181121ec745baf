#!/usr/bin/env bash
# cairnctl's event store commands against a real cairnd: every `cairnctl events ...` command
# and `cairnctl audit verify`, in simple and -w json output, with their exit codes: a wrong
# expected version exits 1 with its message, a subscription receives events appended after
# it started, the hash chain verifies. docs/events-cli.md documents the outputs checked here.
# Usage: events_cairnctl_test.sh <cairnd binary> <cairnctl binary>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CAIRND=$1
CAIRNCTL=$2
make_temp_dir
start_cairnd "$CAIRND" "$TEST_DIR/data"

source "$(dirname "$0")/ctl_lib.sh"

position_re='([0-9]+)/([0-9]+)'

# ---- append: one event, expected versions, --data-file, --id ----
ok "append first" events append order-1 --type Created --data '{"n":1}' --expected-version no-stream
matches "append first" "$OUT" "^appended versions 0\.\.0 at position $position_re\$"
first_revision=${BASH_REMATCH[1]}
expect_eq "append first: index" "${BASH_REMATCH[2]}" 0
printf 'shipped-bytes' >"$TEST_DIR/data-file"
ok "append exact" events append order-1 --expected-version 0 --type Shipped \
  --id 6f1c1b9e-3c1a-4e8e-9d6a-2b7f0c9a1d10 --data-file "$TEST_DIR/data-file" --metadata m1
matches "append exact" "$OUT" "^appended versions 1\.\.1 at position $position_re\$"
[ "${BASH_REMATCH[1]}" -gt "$first_revision" ] || fail "positions do not increase: $OUT"

# ---- append --batch-file: three events in one append, at one revision ----
cat >"$TEST_DIR/batch.jsonl" <<'EOF'
{"type":"Paid","data":"{\"amount\":5}"}
{"id":"0b7e7c2e-8f3a-4d6b-a1c4-5e9f2d3b4a61","type":"Packed","data":{"box": [1, 2]},"metadata":"m3"}

{"type":"Closed"}
EOF
ok "append batch" events append order-1 --expected-version exists --batch-file "$TEST_DIR/batch.jsonl"
matches "append batch" "$OUT" "^appended versions 2\.\.4 at position $position_re\$"
batch_revision=${BASH_REMATCH[1]}
expect_eq "append batch: first index" "${BASH_REMATCH[2]}" 0

# ---- wrong expected versions: exit 1 and the message ----
fails "wrong exact" 1 "Error: wrong expected version: expected 1, stream is at 4" \
  events append order-1 --expected-version 1 --type X
fails "wrong no-stream" 1 "Error: wrong expected version: expected no-stream, stream is at 4" \
  events append order-1 --expected-version no-stream --type X
fails "wrong exists" 1 "Error: wrong expected version: expected exists, stream is at no stream" \
  events append nobody-1 --expected-version exists --type X
run events append order-1 --expected-version 7 --type X -w json
expect_eq "wrong exact json: exit status" "$STATUS" 1
expect_contains "wrong exact json" "$OUT" '"wrongExpectedVersion":{"streamExists":true,"currentVersion":"4"'
fails "bad expected version" 128 \
  'Error: invalid --expected-version "soon" (expected any, no-stream, exists or a version)' \
  events append order-1 --expected-version soon
printf '{"colour":"red"}\n' >"$TEST_DIR/bad.jsonl"
fails "bad batch line" 128 "Error: $TEST_DIR/bad.jsonl:1: unknown member \"colour\"" \
  events append order-1 --batch-file "$TEST_DIR/bad.jsonl"

# ---- read ----
ok "read" events read order-1
expect_eq "read: lines" "$(echo "$OUT" | wc -l)" 5
expect_eq "read: first" "$(echo "$OUT" | sed -n 1p)" "order-1@0 Created $first_revision/0 {\"n\":1}"
matches "read: second" "$(echo "$OUT" | sed -n 2p)" "^order-1@1 Shipped $position_re shipped-bytes\$"
expect_eq "read: batch 0" "$(echo "$OUT" | sed -n 3p)" \
  "order-1@2 Paid $batch_revision/0 {\"amount\":5}"
expect_eq "read: batch 1 (object data kept as written)" "$(echo "$OUT" | sed -n 4p)" \
  "order-1@3 Packed $batch_revision/1 {\"box\": [1, 2]}"
expect_eq "read: batch 2 (no data)" "$(echo "$OUT" | sed -n 5p)" "order-1@4 Closed $batch_revision/2 "
ok "read backwards" events read order-1 --backwards --count 2
expect_eq "read backwards" "$(echo "$OUT" | cut -d' ' -f1 | tr '\n' ' ')" "order-1@4 order-1@3 "
ok "read from" events read order-1 --from 3
expect_eq "read from" "$(echo "$OUT" | cut -d' ' -f1 | tr '\n' ' ')" "order-1@3 order-1@4 "
ok "read from count" events read order-1 --from 1 --count 1
expect_eq "read from count" "$(echo "$OUT" | cut -d' ' -f1)" "order-1@1"
fails "read missing stream" 1 "Error: events: stream 'nobody-1' not found" events read nobody-1
ok "read json" events read order-1 --count 2 -w json
expect_eq "read json: lines" "$(echo "$OUT" | wc -l)" 2
first_json=$(echo "$OUT" | sed -n 1p)
expect_contains "read json" "$first_json" '"stream":"order-1"'
expect_contains "read json" "$first_json" '"version":"0"'
expect_contains "read json" "$first_json" '"type":"Created"'
expect_contains "read json: data in base64" "$first_json" '"data":"eyJuIjoxfQ=="'
expect_contains "read json: hash" "$first_json" '"hash":"'
expect_contains "read json: id" "$(echo "$OUT" | sed -n 2p)" \
  '"id":"6f1c1b9e-3c1a-4e8e-9d6a-2b7f0c9a1d10"'
expect_contains "read json: metadata" "$(echo "$OUT" | sed -n 2p)" '"metadata":"bTE="'
ok "read hex" events read order-1 --count 1 --hex
expect_eq "read hex" "$OUT" "order-1@0 Created $first_revision/0 7b226e223a317d"

# ---- read-all: order, filters, positions ----
ok "append user" events append user-1 --type Registered --data alice
ok "append user 2" events append user-1 --type Renamed --data alicia
ok "read-all" events read-all
expect_eq "read-all: lines" "$(echo "$OUT" | wc -l)" 7
expect_eq "read-all: order" "$(echo "$OUT" | cut -d' ' -f1 | tr '\n' ' ')" \
  "order-1@0 order-1@1 order-1@2 order-1@3 order-1@4 user-1@0 user-1@1 "
ok "read-all stream prefix" events read-all --stream-prefix user-
expect_eq "read-all stream prefix" "$(echo "$OUT" | cut -d' ' -f1 | tr '\n' ' ')" \
  "user-1@0 user-1@1 "
ok "read-all type prefixes" events read-all --type-prefix Pa --type-prefix Re
expect_eq "read-all type prefixes" "$(echo "$OUT" | cut -d' ' -f1 | tr '\n' ' ')" \
  "order-1@2 order-1@3 user-1@0 user-1@1 "
ok "read-all from" events read-all --from "$batch_revision/1" --count 2
expect_eq "read-all from" "$(echo "$OUT" | cut -d' ' -f1 | tr '\n' ' ')" "order-1@3 order-1@4 "
ok "read-all backwards" events read-all --backwards --count 1
expect_eq "read-all backwards" "$(echo "$OUT" | cut -d' ' -f1)" "user-1@1"
ok "read-all json" events read-all --stream-prefix user- -w json
expect_contains "read-all json" "$(echo "$OUT" | sed -n 1p)" '"data":"YWxpY2U="'
fails "read-all bad from" 128 'Error: invalid --from "x" (expected <revision>/<index>)' \
  events read-all --from x

# ---- subscribe: catch-up, then live events appended after it started ----
ok "subscribe catch-up" events subscribe order-1 --after-version 2 --max-events 2
expect_eq "subscribe catch-up" "$(echo "$OUT" | cut -d' ' -f1 | tr '\n' ' ')" "order-1@3 order-1@4 "

ctl events subscribe order-1 --from-end --max-events 2 >"$TEST_DIR/sub.out" 2>"$TEST_DIR/sub.err" &
sub_pid=$!
BACKGROUND+=("$sub_pid")
ctl events subscribe --all --stream-prefix user- --max-events 3 -w json \
  >"$TEST_DIR/all.out" 2>"$TEST_DIR/all.err" &
all_pid=$!
BACKGROUND+=("$all_pid")
wait_for_text "$TEST_DIR/sub.err" "caught up at "
wait_for_text "$TEST_DIR/all.out" '"caughtUp"'
ok "append live 1" events append order-1 --type Reopened --data live-1
ok "append live 2" events append user-1 --type Deleted
ok "append live 3" events append order-1 --type Closed --data live-2
wait_exit "$sub_pid" "subscribe order-1"
wait_exit "$all_pid" "subscribe --all"
BACKGROUND=()
expect_eq "subscribe live: lines" "$(wc -l <"$TEST_DIR/sub.out")" 2
matches "subscribe live 1" "$(sed -n 1p "$TEST_DIR/sub.out")" "^order-1@5 Reopened $position_re live-1\$"
matches "subscribe live 2" "$(sed -n 2p "$TEST_DIR/sub.out")" "^order-1@6 Closed $position_re live-2\$"
all_events=$(grep '"event"' "$TEST_DIR/all.out" | grep -o '"version":"[0-9]*"' | tr '\n' ' ')
expect_eq "subscribe --all: user-1 catch-up then live" "$all_events" \
  '"version":"0" "version":"1" "version":"2" '
fails "subscribe needs a target" 128 "Error: events subscribe needs <stream> or --all" \
  events subscribe
fails "subscribe filters need --all" 128 "Error: filters need --all" \
  events subscribe order-1 --stream-prefix x

# ---- stream metadata ----
ok "metadata set" events metadata set order-1 --max-count 100
expect_eq "metadata set" "$OUT" "OK"
ok "metadata set 2" events metadata set order-1 --max-age 3600 --custom owner=ops
ok "metadata get" events metadata get order-1
expect_eq "metadata get" "$OUT" "stream: order-1
current version: 6
deleted: no
max age: 3600 s
max count: 100
truncate before: none
custom: owner=ops"
ok "metadata get json" events metadata get order-1 -w json
expect_contains "metadata get json" "$OUT" '"maxCount":"100"'
expect_contains "metadata get json" "$OUT" '"maxAgeSeconds":"3600"'
ok "metadata get missing" events metadata get nobody-1
expect_contains "metadata get missing" "$OUT" "current version: no stream"

# ---- snapshots and aggregates ----
ok "snapshot save" events snapshot save order-1 4 '{"total":5}' --type OrderState
expect_eq "snapshot save" "$OUT" "snapshot saved for order-1 at version 4"
ok "aggregate" events aggregate order-1
expect_eq "aggregate: snapshot" "$(echo "$OUT" | sed -n 1p)" \
  'snapshot order-1@4 OrderState {"total":5}'
expect_eq "aggregate: events after it" "$(echo "$OUT" | sed -n '2,$p' | cut -d' ' -f1 | tr '\n' ' ')" \
  "order-1@5 order-1@6 "
ok "aggregate without snapshot" events aggregate user-1
expect_eq "aggregate without snapshot" "$(echo "$OUT" | sed -n 1p)" "no snapshot"
expect_eq "aggregate without snapshot: events" "$(echo "$OUT" | wc -l)" 4
ok "aggregate json" events aggregate order-1 -w json
expect_contains "aggregate json" "$OUT" '"snapshot":{"version":"4"'

# ---- delete: soft (numbering continues), hard (tombstone) ----
fails "delete wrong version" 1 "Error: wrong expected version: expected 1, stream is at 2" \
  events delete user-1 --expected-version 1
ok "delete soft" events delete user-1 --expected-version 2
matches "delete soft" "$OUT" "^deleted user-1 at position $position_re\$"
ok "metadata after soft delete" events metadata get user-1
expect_contains "metadata after soft delete" "$OUT" "deleted: soft"
ok "append after soft delete" events append user-1 --expected-version no-stream --type Registered
expect_eq "append after soft delete" "$(echo "$OUT" | cut -d' ' -f1-3)" "appended versions 3..3"
ok "append tmp" events append tmp-1 --type T
ok "delete hard" events delete tmp-1 --hard
matches "delete hard" "$OUT" "^hard-deleted tmp-1 at position $position_re\$"
run events append tmp-1 --type T
expect_eq "append after hard delete: exit status" "$STATUS" 1
matches "append after hard delete: stderr" "$ERR" "^Error: .+"

# ---- audit verify ----
ok "audit verify" audit verify
matches "audit verify" "$OUT" "^ok: ([0-9]+) events verified\$"
[ "${BASH_REMATCH[1]}" -ge 11 ] || fail "audit verify checked only ${BASH_REMATCH[1]} events"
ok "audit verify json" audit verify -w json
expect_contains "audit verify json" "$OUT" '"ok":true'

# ---- errors: no server ----
stop_cairnd TERM
fails "no server" 1 "Error: context deadline exceeded" \
  --command-timeout 1s events read order-1
echo "PASS: events_cairnctl_test"
