# tests/runner/lib.sh: shared by the runner's integration tests (sourced after
# harness/env.sh).  A test runs its body once per database backend:
#
#   for_backends body        calls `body` with BACKEND=sqlite, then postgresql (or the
#                            list in $SLUICE_TEST_BACKENDS), each with a fresh state
#                            directory, a fresh database and a fresh $SALT
#                            without PostgreSQL (no psql) the sqlite half runs and
#                            the test then exits 77 (skipped) naming what did not run
#   q SQL                    query the current database, '|' between columns
#   sl ARGS...               run sluice; sets $rc, $out, $err (never fails itself)
#   submit ARGS...           sluice submit tests/runner/nix/jobs.nix with $SALT and $DIR;
#                            prints the new build ids
#   build_row ID             finished|buildStatus|isCachedBuild of a build
#   step_rows ID             stepnr|type|drv name|busy|status|propagatedFrom|machine
#   drv_of ID, out_of ID     the build's drvPath, its BuildOutputs paths (sorted)
#   run_bg [ARGS]            `sluice run` in the background ($RUN_PID, log $RUN_LOG)
#   run_stop                 SIGTERM to it, wait; fails when it exits non-zero
#   wait_until SECS CMD...   poll CMD until it succeeds
#   build_is ID ROW          build_row ID is ROW (for wait_until)
#   is COND                  SQL that is 1 when COND holds, else 0, on both backends
#   listen_start, events     notifications in order ("channel payload" lines): SQLite's
#                            sluice_events, or a psql LISTEN on PostgreSQL
#   phase TEXT               a progress line with the seconds since the start
# A passed PostgreSQL database is dropped; on failure $T and the database are kept.
source "$ROOT/tests/db/pglib.sh"
need_nix
JOBS=$ROOT/tests/runner/nix/jobs.nix
RT_NAME=$(basename "$0" .test.sh)
RUN_PID=
BG_PIDS=()

rt_cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    return 0
}
# run rt_cleanup before the traps of env.sh and pglib.sh
rt_prev_trap=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//; s/'\\\\''/'/g")
# shellcheck disable=SC2064
trap "rt_rc=\$?; rt_cleanup; (exit \$rt_rc); $rt_prev_trap" EXIT

q() {
    case $URL in
    sqlite:*) sqlite3 -batch "${URL#sqlite:}" "$1" ;;
    *) pg_sql "$URL" "$1" ;;
    esac
}

sl() {
    local t0
    t0=$(date +%s%N)
    rc=0
    # from $T: `sluice build` links ./result like nix-build
    (cd "$T" && exec "$SLUICE" "$@") >"$T/sl.out" 2>"$T/sl.err" || rc=$?
    out=$(cat "$T/sl.out")
    err=$(cat "$T/sl.err")
    echo "  sluice $1 ... ${*: -1}: exit $rc, $((($(date +%s%N) - t0) / 1000000)) ms"
}

submit() {
    "$SLUICE" submit "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" "$@"
}

build_row() { q "SELECT finished, buildStatus, isCachedBuild FROM Builds WHERE id = $1"; }

# drv names without hash and .drv, so rows read naturally
step_rows() {
    q "SELECT stepnr, type, drvPath, busy, coalesce(status, -1), coalesce(propagatedFrom, 0),
              machine FROM BuildSteps WHERE build = $1 ORDER BY stepnr" |
        sed -E 's#/nix/store/[a-z0-9]{32}-([^|]*)\.drv#\1#'
}

drv_of() { q "SELECT drvPath FROM Builds WHERE id = $1"; }
out_of() { q "SELECT path FROM BuildOutputs WHERE build = $1 ORDER BY name" | tr '\n' ' ' | sed 's/ $//'; }

# the output paths Nix itself gives for a build's drv (realised by nix-store -r)
nix_out_of() {
    nix-store -r "$(drv_of "$1")" 2>/dev/null | sort | tr '\n' ' ' | sed 's/ $//'
}

busy_rows() { q "SELECT count(*) FROM BuildSteps WHERE busy <> 0"; }

run_bg() {
    RUN_LOG=$T/run-$BACKEND-$(date +%s%N).log
    "$SLUICE" run "$@" >"$RUN_LOG" 2>&1 &
    RUN_PID=$!
    BG_PIDS+=("$RUN_PID")
}

run_stop() {
    local r=0
    [ -n "$RUN_PID" ] || return 0
    kill -TERM "$RUN_PID" 2>/dev/null || true
    wait "$RUN_PID" || r=$?
    RUN_PID=
    [ $r -eq 0 ] || { cat "$RUN_LOG" >&2; fail "$BACKEND: sluice run exited with $r after SIGTERM"; }
}

# Notifications sent by the runner, in order, as "channel payload" lines.  SQLite keeps
# them in sluice_events; on PostgreSQL a psql listener started by listen_start collects
# them (it reports only what arrived after it started).
listen_start() {
    case $URL in
    sqlite:*) ;;
    *)
        LISTEN_OUT=$T/listen-$BACKEND.out
        {
            printf 'LISTEN %s;\n' step_started step_finished build_started build_finished
            while :; do printf 'SELECT 1;\n'; sleep 0.1; done
        } | psql -X -q -A -t -d "$URL" >"$LISTEN_OUT" 2>&1 &
        LISTEN_PID=$!
        BG_PIDS+=("$LISTEN_PID")
        sleep 0.5
        ;;
    esac
}

# all notifications so far (step_finished without its log file part)
events() {
    case $URL in
    sqlite:*)
        q "SELECT channel, payload FROM sluice_events WHERE channel IN ('step_started',
           'step_finished', 'build_started', 'build_finished') ORDER BY id" | tr '|\t' '  '
        ;;
    *)
        sed -nE 's/^Asynchronous notification "([a-z_]+)" with payload "([^"]*)" received.*/\1 \2/p' \
            "$LISTEN_OUT" | tr '\t' ' '
        ;;
    esac | sed -E 's#^(step_finished [0-9]+ [0-9]+) .*#\1#'
}

listen_stop() {
    if [ -n "${LISTEN_PID:-}" ]; then
        sleep 0.5
        kill "$LISTEN_PID" 2>/dev/null || true
        wait "$LISTEN_PID" 2>/dev/null || true
        LISTEN_PID=
    fi
}

for_backends() {
    local body=$1 n=0
    for BACKEND in ${SLUICE_TEST_BACKENDS:-sqlite postgresql}; do
        if [ "$BACKEND" != sqlite ] && ! pg_usable; then
            pg_skip_note "$BACKEND"
            continue
        fi
        n=$((n + 1))
        export SLUICE_STATE_DIR=$T/state-$BACKEND
        DIR=$T/dir-$BACKEND
        mkdir -p "$SLUICE_STATE_DIR" "$DIR"
        SALT="$RT_NAME-$BACKEND-$$-$(date +%s%N)"
        PG_DB=rt_$(tr -c 'a-z0-9\n' _ <<<"$RT_NAME")_$$
        if [ "$BACKEND" = sqlite ]; then
            URL=sqlite:$SLUICE_STATE_DIR/sluice.db
        else
            URL=$(pg_new_db "$PG_DB")
        fi
        "$SLUICE" db init --db "$URL" >/dev/null || fail "$BACKEND: db init"
        export SLUICE_DB=$URL
        echo "=== $RT_NAME on $BACKEND (salt $SALT)"
        "$body"
        run_stop
        listen_stop
        # a database that passed is not needed any more (a failed one stays to look at)
        [ "$BACKEND" = sqlite ] || pg_sql "$PG_ADMIN" "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null
        PG_RAN+="${PG_RAN:+ }$BACKEND"
    done
    pg_skip_end
}

# is COND: an SQL expression that is 1 when COND holds, else 0 (on both backends)
is() { echo "CASE WHEN $1 THEN 1 ELSE 0 END"; }
# build_is ID ROW: build_row ID is ROW (for wait_until)
build_is() { [ "$(build_row "$1")" = "$2" ]; }
# phase TEXT: a progress line with the seconds since the test started
phase() { echo "  [${SECONDS}s] $*"; }
