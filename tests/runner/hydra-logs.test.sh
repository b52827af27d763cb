#!/usr/bin/env bash
# Logs where Hydra's programs expect them, on SQLite and PostgreSQL: while a step runs
# its log is the plain file LOG_DIR/xx/REST (what hydra-server tails); when it ends the
# log is LOG_DIR/xx/REST.zst and the plain file is gone; step_finished names the plain
# path as Hydra's runner does; running hydra-notify's CompressLog command on that path
# (bzip2 by default, zstd when configured) loses nothing: the log is found where
# hydra-server looks (plain, .bz2, .zst) and `sluice log` and /build/ID/step/N/log
# still give it; an old .bz2 log of Hydra's is read by both.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"
command -v bzip2 >/dev/null || skip "bzip2 missing"
command -v zstd >/dev/null || skip "zstd missing"
LOGS() { echo "$SLUICE_STATE_DIR/build-logs"; }

# hydra-server's getDrvLogPath: the first of plain, .bz2, .zst that exists
hydra_log_path() {
    local base=${1#/nix/store/} f
    for f in "$(LOGS)/${base:0:2}/${base:2}" "$(LOGS)/${base:0:2}/${base:2}.bz2" "$(LOGS)/${base:0:2}/${base:2}.zst"; do
        [ -f "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}
cat_any() {
    case $1 in
    *.bz2) bzip2 -dc "$1" ;;
    *.zst) zstd -dcq "$1" ;;
    *) cat "$1" ;;
    esac
}
# hydra-notify's CompressLog plugin on a step_finished path (its default, or zstd)
compress_log() {
    [ -e "$1" ] || return 0
    if [ "${2:-bzip2}" = bzip2 ]; then bzip2 --force "$1"; else zstd --rm --quiet -T0 "$1"; fi
}
step_finished_path() { # build stepnr
    case $URL in
    sqlite:*) q "SELECT payload FROM sluice_events WHERE channel = 'step_finished' AND payload LIKE '$1	$2	%'" ;;
    *) sed -nE "s/^Asynchronous notification \"step_finished\" with payload \"($1	$2	[^\"]*)\".*/\\1/p" "$LISTEN_OUT" ;;
    esac | tail -1 | cut -f3
}

building() { [ "$(q "SELECT count(*) FROM BuildSteps WHERE build = $1 AND busy >= 30")" = 1 ]; }
finished() { [ "$(build_row "$1" | cut -d'|' -f1)" = 1 ]; }
notified() { [ -n "$(step_finished_path "$1" "$2")" ]; }

body() {
    local id drv base plain port logf text id2 drv2
    listen_start
    id=$(submit -A gate)
    run_bg --http 127.0.0.1:0
    wait_until 60 building "$id" ||
        fail "$BACKEND: gate never ran"
    drv=$(drv_of "$id")
    base=${drv#/nix/store/}
    plain=$(LOGS)/${base:0:2}/${base:2}
    wait_until 10 grep -q "gate $SALT: waiting" "$plain" || fail "$BACKEND: no plain log while running"
    [ ! -e "$plain.zst" ] || fail "$BACKEND: a .zst while running"
    assert_eq "$(hydra_log_path "$drv")" "$plain" "$BACKEND: hydra-server's log path while running"
    touch "$DIR/go"
    wait_until 60 build_is "$id" "1|0|0" || fail "$BACKEND: gate did not finish"
    [ -s "$plain.zst" ] && [ ! -e "$plain" ] || fail "$BACKEND: not compressed on finish"
    assert_eq "$(zstd -dcq "$plain.zst")" "gate $SALT: waiting" "$BACKEND: the compressed log"
    wait_until 10 notified "$id" 1 || fail "$BACKEND: no step_finished"
    logf=$(step_finished_path "$id" 1)
    assert_eq "$logf" "$plain" "$BACKEND: step_finished names the plain path, as Hydra's runner"

    # hydra-notify's CompressLog on the payload: nothing lost
    compress_log "$logf"
    assert_eq "$(cat_any "$(hydra_log_path "$drv")")" "gate $SALT: waiting" "$BACKEND: log where hydra-server reads it"
    sl log "$id"
    assert_eq "$out" "gate $SALT: waiting" "$BACKEND: sluice log after CompressLog"
    port=$(sed -n 's/.*http: listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$RUN_LOG" | head -1)
    [ -n "$port" ] || fail "$BACKEND: no http port"
    assert_eq "$(curl -sf "http://127.0.0.1:$port/build/$id/step/1/log")" "gate $SALT: waiting" "$BACKEND: HTTP log"

    # CompressLog with zstd, on a failing step's log
    id2=$(submit -A fail)
    wait_until 60 finished "$id2" || fail "$BACKEND: fail did not finish"
    wait_until 10 notified "$id2" 1 || fail "$BACKEND: no step_finished for fail"
    compress_log "$(step_finished_path "$id2" 1)" zstd
    drv2=$(drv_of "$id2")
    cat_any "$(hydra_log_path "$drv2")" | grep -qx "broken $SALT: about to fail" || fail "$BACKEND: failure log lost"

    # an old log of Hydra's, bzip2-compressed: sluice log and the HTTP routes read it
    zstd -dcq "$plain.zst" | sed 's/^/old: /' | bzip2 >"$plain.bz2"
    rm -f "$plain.zst"
    sl log "$id"
    assert_eq "$out" "old: gate $SALT: waiting" "$BACKEND: sluice log of a .bz2"
    assert_eq "$(curl -sf "http://127.0.0.1:$port/build/$id/step/1/log")" "old: gate $SALT: waiting" "$BACKEND: HTTP .bz2 log"
    assert_eq "$(curl -sf "http://127.0.0.1:$port/log/$base")" "old: gate $SALT: waiting" "$BACKEND: HTTP /log/DRV of a .bz2"
    run_stop
}

for_backends body
echo "hydra logs: ok"
