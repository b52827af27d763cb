# tests/http/http_lib.sh: helpers for the HTTP tests (sourced after harness/env.sh).
#   start_runner [FLAGS...]   `sluice run --http 127.0.0.1:0 FLAGS` in the background;
#                             sets RUN_PID and PORT (read from its log, $T/run.log)
#   stop_runner               SIGTERM, wait, fail unless it exits with status 0
#   hget PATH [CURL ARGS...]  request; body in $T/body, headers in $T/head, prints the
#                             status code
#   PY                        the python3 to use
#   jpy FILE EXPR             evaluate a Python expression over the JSON in FILE (as j)
#   sql QUERY                 sqlite3 on the test database
# A test that fails leaves no runner behind: the EXIT trap stops it.

need_http_tools() {
    command -v curl >/dev/null || skip "curl missing"
    [ -n "$PY" ] || skip "python3 missing"
    command -v sqlite3 >/dev/null || skip "sqlite3 missing"
}

# the system's python3 when there is one (a version manager's shim can take seconds)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)

RUN_PID=
trap 'rc=$?; if [ -n "$RUN_PID" ]; then kill -TERM "$RUN_PID" 2>/dev/null; wait "$RUN_PID" 2>/dev/null; fi
      if [ $rc -eq 0 ] || [ $rc -eq 77 ]; then rm -rf "$T"; else echo "test dir kept: $T"; fi' EXIT

start_runner() {
    "$SLUICE" run --http 127.0.0.1:0 "$@" >"$T/run.log" 2>&1 &
    RUN_PID=$!
    PORT=
    for _ in $(seq 1 200); do
        PORT=$(sed -n 's/.*http: listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$T/run.log" | head -1)
        [ -n "$PORT" ] && break
        kill -0 "$RUN_PID" 2>/dev/null || { cat "$T/run.log"; fail "sluice run exited at start"; }
        sleep 0.05
    done
    [ -n "$PORT" ] || { cat "$T/run.log"; fail "no 'listening on' line"; }
    BASE=http://127.0.0.1:$PORT
}

stop_runner() {
    local rc=0
    kill -TERM "$RUN_PID"
    wait "$RUN_PID" || rc=$?
    RUN_PID=
    [ "$rc" -eq 0 ] || { tail -20 "$T/run.log"; fail "sluice run exited with status $rc"; }
}

hget() {
    local path=$1
    shift
    curl -s -o "$T/body" -D "$T/head" -w '%{http_code}' --max-time 20 "$@" "$BASE$path"
}

jpy() {
    "$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

sql() {
    sqlite3 -batch -cmd ".timeout 5000" "$SLUICE_STATE_DIR/sluice.db" "$1"
}

# header NAME: the value of a response header from the last hget (without CR)
header() {
    grep -i "^$1:" "$T/head" | head -1 | sed 's/^[^:]*: *//' | tr -d '\r'
}
