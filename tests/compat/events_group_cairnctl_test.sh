#!/usr/bin/env bash
# `cairnctl events group ...` (persistent subscriptions) against a real cairnd, killed with
# SIGKILL in the middle: a consumer acks events, cairnd is killed and restarted, the next
# consumer gets exactly the events not acked (the acks were replicated); a poison event is
# retried, parked into its dead-letter stream, and replayed. docs/events-cli.md documents
# the outputs checked here.
# Usage: events_group_cairnctl_test.sh <cairnd binary> <cairnctl binary>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CAIRND=$1
CAIRNCTL=$2
make_temp_dir
start_cairnd "$CAIRND" "$TEST_DIR/data"
source "$(dirname "$0")/ctl_lib.sh"

# versions <output>: the versions of "<stream>@<version> ..." lines, space-separated.
versions() { echo "$1" | sed -E 's/^[^@]+@([0-9]+) .*/\1/' | tr '\n' ' ' | sed 's/ $//'; }

# wait_checkpoint <source> <group> <checkpoint>: up to 10 s for `group get` to show it.
wait_checkpoint() {
  for _ in $(seq 1 200); do
    run events group get "$1" "$2"
    [[ "$OUT" == *" checkpoint=$3 "* ]] && return 0
    sleep 0.05
  done
  fail "group $2 on $1: checkpoint=$3 not reached, got [$OUT]"
}

for i in $(seq 0 29); do ok "append $i" events append job-1 --type Work --data "{\"n\":$i}"; done

ok "create" events group create job-1 workers --max-retry 1 --message-timeout-ms 60000
expect_eq "create" "$OUT" "group workers on job-1 created"
fails "create twice" 1 "Error: events: persistent subscription 'workers' on 'job-1' already exists" \
  events group create job-1 workers
fails "bad strategy" 128 \
  'Error: invalid --strategy "fastest" (round-robin, dispatch-to-single or pinned)' \
  events group create job-1 other --strategy fastest
fails "unknown group" 1 "Error: events: persistent subscription 'nobody' on 'job-1' not found" \
  events group read job-1 nobody --max-events 1

# ---- consume 10, then kill -9 cairnd: the next consumer starts at version 10 ----
ok "read 10" events group read job-1 workers --max-events 10
expect_eq "read 10" "$(versions "$OUT")" "0 1 2 3 4 5 6 7 8 9"
wait_checkpoint job-1 workers 9
stop_cairnd KILL
start_cairnd "$CAIRND" "$TEST_DIR/data"
ok "read 20 after kill -9" events group read job-1 workers --max-events 20
expect_eq "read 20 after kill -9" "$(versions "$OUT")" \
  "10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29"
wait_checkpoint job-1 workers 29

# ---- a poison event: delivered twice (max retry 1), then parked ----
ok "append poison" events append job-1 --type Poison --data '{"bad":true}'
ok "nack twice" events group read job-1 workers --max-events 2 --nack retry
expect_eq "nack twice" "$(versions "$OUT")" "30 30"
expect_contains "nack twice: retry count" "$ERR" "(retry 1)"
wait_checkpoint job-1 workers 30
ok "parked stream" events read '$persistentsubscription-job-1::workers-parked'
expect_eq "parked stream" "$(versions "$OUT")" "30"
ok "get" events group get job-1 workers
expect_eq "get" "$OUT" \
  "job-1 workers round-robin checkpoint=30 parked=1 replay-pending=0 consumers=0 in-flight=0 delivered=0 acked=0 nacked=0"

# ---- replay the parked event: delivered again, acked ----
ok "replay" events group replay-parked job-1 workers
expect_eq "replay" "$OUT" "1 parked events replayed"
ok "read replayed" events group read job-1 workers --max-events 1
expect_eq "read replayed" "$(versions "$OUT")" "30"

# ---- list, json, update, delete ----
ok "create all" events group create '$all' audit --from-end --stream-prefix job-
ok "list" events group list
expect_eq "list lines" "$(echo "$OUT" | wc -l | tr -d ' ')" 2
ok "list json" events group list job-1 -w json
expect_contains "list json" "$OUT" '"group":"workers"'
ok "update" events group update job-1 workers --strategy pinned
ok "get after update" events group get job-1 workers
expect_contains "get after update" "$OUT" "job-1 workers pinned checkpoint="
ok "delete" events group delete job-1 workers
expect_eq "delete" "$OUT" "group workers on job-1 deleted"
fails "delete twice" 1 "Error: events: persistent subscription 'workers' on 'job-1' not found" \
  events group delete job-1 workers
stop_cairnd TERM
echo "PASS: events_group_cairnctl_test"
