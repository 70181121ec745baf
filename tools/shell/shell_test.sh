#!/usr/bin/env bash
# Drives cairn-shell through a pipe, as a user of `make run` would, and checks its answers,
# including across a restart of the shell on the same data directory.
set -euo pipefail
shell="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

run() { printf '%b' "$1" | "$shell" --data-dir "$dir/data" 2>/dev/null; }
expect() {
  local got="$1" want="$2" what="$3"
  if [ "$got" != "$want" ]; then
    printf 'FAIL %s\n--- want\n%s\n--- got\n%s\n' "$what" "$want" "$got"
    exit 1
  fi
}

expect "$(run 'put greeting hello\nput greeting world\nget greeting\nget greeting --rev 2\n')" \
  "$(printf 'OK (revision 2)\nOK (revision 3)\ngreeting\nworld\ngreeting\nhello')" "put/get"
expect "$(run 'get greeting\nstatus\n')" "$(printf 'greeting\nworld\nrevision 3, compacted revision -1')" \
  "state survives a restart"
expect "$(run 'put a 1\nget "" --from-key --keys-only\nget "" --prefix --count-only\n')" \
  "$(printf 'OK (revision 4)\na\ngreeting\n2')" "ranges"
expect "$(run 'put "" x\ncompact 3\nget greeting --rev 2\ndel "" --prefix\nget a\n')" \
  "$(printf 'Error: etcdserver: key is not provided\ncompacted revision 3\nError: etcdserver: mvcc: required revision has been compacted\n2')" \
  "errors, compaction, delete"
echo "1 passed, 0 failed"
