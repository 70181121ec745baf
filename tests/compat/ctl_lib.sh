# Helpers for scripts that drive cairnctl against one cairnd (after lib.sh, start_cairnd and
# CAIRNCTL=<binary>): run/ok/fails check a command's exit status and output.

ctl() { "$CAIRNCTL" --endpoints="$ENDPOINT" "$@"; }

# run <args...>: sets OUT (stdout), ERR (stderr) and STATUS.
run() {
  STATUS=0
  OUT=$(ctl "$@" 2>"$TEST_DIR/stderr") || STATUS=$?
  ERR=$(cat "$TEST_DIR/stderr")
}

# ok <what> <args...>: the command succeeds; OUT holds its output.
ok() {
  local what=$1
  shift
  run "$@"
  [ "$STATUS" -eq 0 ] || fail "$what: exit status $STATUS, stderr [$ERR], stdout [$OUT]"
}

# fails <what> <status> <stderr> <args...>: the command exits with that status and prints
# exactly that on stderr.
fails() {
  local what=$1 status=$2 stderr=$3
  shift 3
  run "$@"
  expect_eq "$what: exit status" "$STATUS" "$status"
  expect_eq "$what: stderr" "$ERR" "$stderr"
}

# matches <what> <text> <regex>
matches() {
  [[ "$2" =~ $3 ]] || fail "$1: [$2] does not match [$3]"
}

# wait_exit <pid> <what>: up to 10 s for a background client to exit 0.
wait_exit() {
  for _ in $(seq 1 200); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "$1" 2>/dev/null && fail "$2: still running after 10 s"
  local status=0
  wait "$1" || status=$?
  expect_eq "$2: exit status" "$status" 0
}

# wait_for_text <file> <text>: up to 10 s for the file to contain the text.
wait_for_text() {
  for _ in $(seq 1 200); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "$1: no [$2] within 10 s, got [$(cat "$1" 2>/dev/null)]"
}

