#!/usr/bin/env bash
# cairn-null-kv answers what cairn-bench sends (put, range, txn-put), counts the writes in its
# revision, and stops with status 0 on SIGTERM.
#   null_kv_test.sh CAIRN_NULL_KV CAIRN_BENCH
set -euo pipefail
NULL_KV=$1
BENCH=$2
dir=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$dir"' EXIT

"$NULL_KV" --listen 127.0.0.1:0 >"$dir/log" 2>&1 &
pid=$!
endpoint=""
for _ in $(seq 1 100); do
  endpoint=$(grep -o 'serving etcd v3 KV on [0-9.:]*' "$dir/log" | awk '{print $NF}' || true)
  [ -n "$endpoint" ] && break
  sleep 0.05
done
[ -n "$endpoint" ] || { echo "FAIL: no endpoint in the log"; cat "$dir/log"; exit 1; }

# expect WORKLOAD_ARGS... : every request answered, none failed.
expect_all_ok() {
  "$BENCH" --endpoints "$endpoint" --conns 2 --clients 8 --total 300 --key-space-size 100 \
    --val-size 256 -w json "$@" >"$dir/out.json"
  python3 - "$dir/out.json" "$*" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] == 300 and r["errors"] == 0, (sys.argv[2], r["ok"], r["errors"])
PY
}
expect_all_ok put
expect_all_ok range --consistency l
expect_all_ok txn-put --txn-ops 4

# The revision counts the writes: 300 puts and 300 txns after revision 1. Without etcdctl
# (etcd-client, which scripts/install-deps.sh installs) the test ends as skipped, not passed.
checked_revision=0
if command -v etcdctl >/dev/null; then
  revision=$(ETCDCTL_API=3 etcdctl --endpoints "$endpoint" get k -w json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["header"]["revision"])')
  [ "$revision" = 601 ] || { echo "FAIL: revision $revision, want 601"; exit 1; }
  checked_revision=1
fi

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[ "$status" = 0 ] || { echo "FAIL: exit status $status after SIGTERM"; exit 1; }
if [ "$checked_revision" = 0 ]; then
  echo "SKIP: etcdctl is not installed; the revision was not checked"
  exit 77
fi
echo "PASS"
