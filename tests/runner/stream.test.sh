#!/usr/bin/env bash
# Ingest streams, on SQLite and PostgreSQL (the runner issue, item 1): the queue pass
# is held after its first chunk (one build, test pause point after-first-chunk) and
# that build's step is dispatched, built and its build finished while the pass still
# waits; the builds after it are not even looked at until the pass goes on, then
# they are built too.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

paused() { [ -e "$SLUICE_STATE_DIR/pause/after-first-chunk" ]; }

body() {
    local first rest id
    first=$(submit -A empty)
    rest=$(submit -A mid -A onMid | tr '\n' ' ')
    SLUICE_TEST_PAUSE=after-first-chunk run_bg
    wait_until 20 paused || { cat "$RUN_LOG"; fail "$BACKEND: the pass never reached its pause"; }
    wait_until 30 build_is "$first" "1|0|0" ||
        { cat "$RUN_LOG"; fail "$BACKEND: the first build did not finish while ingest waited"; }
    paused || fail "$BACKEND: the pass went on before the first build finished"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build IN (${rest// /,}0)")" 0 \
        "$BACKEND: no step of the later builds before the pass goes on"
    rm -f "$SLUICE_STATE_DIR/pause/after-first-chunk"
    for id in $rest; do
        wait_until 30 build_is "$id" "1|0|0" || { cat "$RUN_LOG"; fail "$BACKEND: build $id not built"; }
    done
    run_stop
    assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows"
}

for_backends body
echo "ok: ingest streams"
