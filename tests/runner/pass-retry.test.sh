#!/usr/bin/env bash
# A queue pass that fails is tried again with backoff until it succeeds, on SQLite and
# PostgreSQL: the runner's local store is a nix-daemon on a socket of the test's own;
# the daemon is killed, a build is submitted (its pass fails: the store cannot be
# reached), the daemon comes back, and the build is loaded and built with no other
# event.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

DAEMON_PID=
daemon_start() {
    rm -f "$SOCK"
    NIX_DAEMON_SOCKET_PATH=$SOCK setsid nix-daemon >>"$T/daemon.log" 2>&1 </dev/null &
    DAEMON_PID=$!
    BG_PIDS+=("$DAEMON_PID")
    wait_until 20 test -S "$SOCK" || fail "nix-daemon did not listen on $SOCK"
}
daemon_kill() {
    # the per-connection children first (each in a session of its own): they serve the
    # runner's open sessions
    pkill -KILL -P "$DAEMON_PID" 2>/dev/null || true
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=
}
pass_failed() { grep -q 'queue pass:' "$RUN_LOG"; }

body() {
    local id
    SOCK=$T/daemon-$BACKEND.sock
    daemon_start
    run_bg --store "unix://$SOCK"
    wait_until 20 grep -q 'machine(s) loaded' "$RUN_LOG" || { cat "$RUN_LOG"; fail "$BACKEND: runner not up"; }
    sleep 1
    daemon_kill
    id=$(submit -A empty)
    wait_until 30 pass_failed || { cat "$RUN_LOG"; fail "$BACKEND: the queue pass did not fail"; }
    daemon_start
    wait_until 60 build_is "$id" "1|0|0" ||
        { cat "$RUN_LOG"; fail "$BACKEND: the build queued during the failed pass was not built: $(build_row "$id")"; }
    run_stop
    daemon_kill
}

for_backends body
