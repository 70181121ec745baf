# Helpers for the compat tests: start and stop a real cairnd on a free loopback port, and
# assertions that print what differed. Source it; then call require_tool, start_cairnd.
#
# cairnd listens on port 0 and logs the port it bound, so tests never race for ports.

SKIP=77  # ctest SKIP_RETURN_CODE

fail() {
  echo "FAIL: $*" >&2
  [ -n "${CAIRND_LOG:-}" ] && [ -f "$CAIRND_LOG" ] && { echo "--- cairnd log:" >&2; tail -20 "$CAIRND_LOG" >&2; }
  exit 1
}

# expect_eq <what> <actual> <expected>
expect_eq() {
  [ "$2" == "$3" ] || fail "$1: expected [$3], got [$2]"
}

# expect_contains <what> <haystack> <needle>
expect_contains() {
  [[ "$2" == *"$3"* ]] || fail "$1: expected output containing [$3], got [$2]"
}

# Skips the test (exit 77) when a client tool is genuinely not installed.
require_tool() {
  if [ ! -x "$1" ]; then
    echo "SKIP: $1 is not installed (scripts/install-deps.sh installs it)"
    exit "$SKIP"
  fi
}

make_temp_dir() {
  TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cairn_compat_XXXXXX")
  trap cleanup EXIT
}

cleanup() {
  kill_background
  stop_cairnd KILL
  rm -rf "$TEST_DIR"
}

# Clients a test runs in the background: append their pids to BACKGROUND. At exit they get
# SIGINT (etcdctl and cairnctl release their locks and leases on it) and are waited for.
BACKGROUND=()
kill_background() {
  for pid in "${BACKGROUND[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${BACKGROUND[@]}"; do wait "$pid" 2>/dev/null || true; done
  BACKGROUND=()
}

# wait_for_lines <file> <count>: up to 10 s for the file to hold that many lines.
wait_for_lines() {
  for _ in $(seq 1 200); do
    [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
    sleep 0.05
  done
  fail "$1: expected $2 lines within 10 s, got [$(cat "$1" 2>/dev/null)]"
}

# start_cairnd <cairnd binary> <data dir> [extra flags...]
# Sets CAIRND_PID, CAIRND_LOG and ENDPOINT (host:port).
start_cairnd() {
  local binary=$1 data_dir=$2
  shift 2
  CAIRND_LOG=$TEST_DIR/cairnd.$(date +%s%N).log
  "$binary" --data-dir "$data_dir" --listen-client-urls http://127.0.0.1:0 \
    --listen-metrics-urls http://127.0.0.1:0 "$@" \
    >"$CAIRND_LOG" 2>&1 &
  CAIRND_PID=$!
  ENDPOINT=""
  for _ in $(seq 1 200); do
    ENDPOINT=$(grep -o 'serving etcd v3 clients on [0-9.:]*' "$CAIRND_LOG" | awk '{print $6}' || true)
    [ -n "$ENDPOINT" ] && return 0
    kill -0 "$CAIRND_PID" 2>/dev/null || fail "cairnd exited during startup"
    sleep 0.05
  done
  fail "cairnd did not report its address within 10 s"
}

# stop_cairnd [TERM|KILL]: stops cairnd and waits; with TERM it must exit 0.
stop_cairnd() {
  local signal=${1:-TERM}
  [ -n "${CAIRND_PID:-}" ] || return 0
  kill -"$signal" "$CAIRND_PID" 2>/dev/null || true
  local status=0
  wait "$CAIRND_PID" 2>/dev/null || status=$?
  CAIRND_PID=""
  if [ "$signal" == TERM ] && [ "$status" -ne 0 ]; then
    fail "cairnd exited with status $status after SIGTERM"
  fi
}

# fill_quota <client command...>: puts 64 KiB values at big/0, big/1, ... until the server
# refuses one (a small --quota-backend-bytes raised NOSPACE); FILLED is how many it took.
fill_quota() {
  local value
  value=$(head -c 65536 /dev/zero | tr '\0' v)
  FILLED=0
  while "$@" put "big/$FILLED" "$value" >/dev/null 2>&1; do
    FILLED=$((FILLED + 1))
    [ $FILLED -lt 200 ] || fail "the quota was never exceeded"
  done
  [ $FILLED -ge 5 ] || fail "only $FILLED puts before NOSPACE"
}
