#!/usr/bin/env bash
# What ingest finds in the store, on SQLite and PostgreSQL (hydra-behaviour §3.2, §3.3):
#  - a fixed-output derivation built, then queued again: finished at once as cached
#    (isCachedBuild = 1, start = stop, no step row, the same output path and sizes,
#    build_finished without build_started); a build on top of it has one step only;
#  - an output deleted from the store after its build, then queued again: rebuilt (not
#    cached, never a failure); deleted again and needed by another build: its drv is a
#    step of that build again;
#  - a top-level .drv missing from the store: the build is aborted (3) with a message;
#  - GC roots: every output is rooted (STATE_DIR/roots and sluice_gcroots), the
#    top-level drv roots of finished builds are released, and at start-up root files
#    the database does not justify are removed (those younger than the grace time are
#    left alone); with keep-outputs-days, old output roots of finished builds go and
#    those of queued builds stay.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

id_of() { q "SELECT id FROM Builds WHERE job = '$1' ORDER BY id DESC LIMIT 1"; }
# delete one output of ours from the store: sluice's root and `sluice build`'s result
# links (made in $T, like nix-build's) first, then the path
unroot() {
    local r
    for r in $(q "SELECT root FROM sluice_gcroots WHERE path = '$1'"); do rm -f "$r"; done
    for r in "$T"/result*; do [ "$(readlink "$r")" != "$1" ] || rm -f "$r"; done
    q "DELETE FROM sluice_gcroots WHERE path = '$1'" >/dev/null
}
delete_output() {
    local p=$1
    unroot "$p"
    nix-store --delete "$p" >/dev/null 2>&1 || fail "$BACKEND: cannot delete $p"
    ! nix-store --check-validity "$p" 2>/dev/null || fail "$BACKEND: $p still valid"
}
check_rooted() {
    local p=$1 link=$SLUICE_STATE_DIR/roots/${1#/nix/store/}
    assert_eq "$(readlink "$link")" "$p" "$BACKEND: root link of $p"
    assert_eq "$(q "SELECT kind FROM sluice_gcroots WHERE path = '$p' AND root = '$link'")" output \
        "$BACKEND: sluice_gcroots row of $p"
}

body() {
    local fod fod2 onfod o id mid mid2 onmid drv
    listen_start

    # --- a fixed-output derivation, built, then queued again
    sl build "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -A fod
    assert_eq "$rc" 0 "$BACKEND: build fod: exit status"
    fod=$(id_of fod)
    o=$(out_of "$fod")
    assert_eq "$o" "$(nix_out_of "$fod")" "$BACKEND: fod output against nix-store -r"
    assert_eq "$(cat "$o")" "fod $SALT" "$BACKEND: fod content"
    assert_eq "$(build_row "$fod")" "1|0|0" "$BACKEND: fod"
    assert_eq "$(step_rows "$fod")" "1|0|fod|0|0|0|" "$BACKEND: fod rows"
    check_rooted "$o"
    assert_eq "$(q "SELECT count(*) FROM sluice_gcroots WHERE kind = 'drv' AND build = $fod")" 0 \
        "$BACKEND: the drv root of a finished build is released"

    mapfile -t ids < <(submit -A fod -A onFod)
    fod2=${ids[0]} onfod=${ids[1]}
    sl run --once
    assert_eq "$rc" 0 "$BACKEND: run --once: exit status"
    assert_eq "$(build_row "$fod2")" "1|0|1" "$BACKEND: fod queued again is cached"
    assert_eq "$(step_rows "$fod2")" "" "$BACKEND: no step for the cached fod"
    assert_eq "$(out_of "$fod2")" "$o" "$BACKEND: cached fod output"
    assert_eq "$(q "SELECT size, closureSize, $(is 'startTime = stopTime'), $(is 'notificationPendingSince = stopTime')
                    FROM Builds WHERE id = $fod2")" \
        "$(q "SELECT size, closureSize FROM Builds WHERE id = $fod")|1|1" "$BACKEND: cached fod sizes and times"
    assert_eq "$(events | grep -cx "build_started $fod2")" 0 "$BACKEND: no build_started for a cached build"
    assert_eq "$(events | grep -cx "build_finished $fod2")" 1 "$BACKEND: build_finished for a cached build"
    assert_eq "$(build_row "$onfod")" "1|0|0" "$BACKEND: onFod"
    assert_eq "$(step_rows "$onfod")" "1|0|on-fod|0|0|0|" "$BACKEND: onFod rows: fod is not a step"
    assert_eq "$(out_of "$onfod")" "$(nix_out_of "$onfod")" "$BACKEND: onFod output"

    # --- an output deleted after its build, then queued again: rebuilt
    sl build "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -A mid
    assert_eq "$rc" 0 "$BACKEND: build mid: exit status"
    mid=$(id_of mid)
    o=$(out_of "$mid")
    delete_output "$o"
    mid2=$(submit -A mid)
    sl run --once
    assert_eq "$rc" 0 "$BACKEND: run --once (mid again): exit status"
    assert_eq "$(build_row "$mid2")" "1|0|0" "$BACKEND: mid is rebuilt, not cached"
    assert_eq "$(step_rows "$mid2")" "1|0|mid|0|0|0|" "$BACKEND: rebuilt mid rows"
    assert_eq "$(out_of "$mid2")" "$o" "$BACKEND: rebuilt mid output"
    nix-store --check-validity "$o" || fail "$BACKEND: mid output not valid again"
    check_rooted "$o"
    # deleted again, needed by another build: a step of that build
    delete_output "$o"
    onmid=$(submit -A onMid)
    sl run --once
    assert_eq "$rc" 0 "$BACKEND: run --once (onMid): exit status"
    assert_eq "$(build_row "$onmid")" "1|0|0" "$BACKEND: onMid"
    assert_eq "$(step_rows "$onmid")" "$(printf '1|0|mid|0|0|0|\n2|0|on-mid|0|0|0|')" "$BACKEND: onMid rows"
    assert_eq "$(out_of "$onmid")" "$(nix_out_of "$onmid")" "$BACKEND: onMid output"
    check_rooted "$o"
    check_rooted "$(out_of "$onmid")"

    # --- a top-level .drv missing from the store: aborted as Hydra's runner does it,
    # with no step row and no notification
    id=$(submit -A empty)
    drv=$(drv_of "$id")
    unroot "$drv"
    nix-store --delete "$drv" >/dev/null 2>&1 || fail "$BACKEND: cannot delete $drv"
    # root files without a row: an old one goes at start-up, a fresh one stays
    ln -s "$o" "$SLUICE_STATE_DIR/roots/stray-old"
    touch -h -d '2 hours ago' "$SLUICE_STATE_DIR/roots/stray-old"
    ln -s "$o" "$SLUICE_STATE_DIR/roots/stray-new"
    sl run --once
    assert_eq "$rc" 0 "$BACKEND: run --once (missing drv): exit status"
    assert_eq "$(build_row "$id")" "1|3|" "$BACKEND: missing drv: aborted"
    assert_eq "$(q "SELECT $(is 'startTime > 0 AND stopTime = startTime') FROM Builds WHERE id = $id")" 1 \
        "$BACKEND: missing drv: start and stop time"
    assert_eq "$(step_rows "$id")" "" "$BACKEND: missing drv: no step rows"
    grep -q "is missing from the store" <<<"$err" || fail "$BACKEND: missing drv: not logged: $err"
    sleep 0.5
    assert_eq "$(events | awk -v b="$id" '$2 == b')" "" "$BACKEND: missing drv: no notifications"
    [ ! -e "$SLUICE_STATE_DIR/roots/stray-old" ] && [ ! -L "$SLUICE_STATE_DIR/roots/stray-old" ] ||
        fail "$BACKEND: an old root file without a row was kept"
    [ -L "$SLUICE_STATE_DIR/roots/stray-new" ] || fail "$BACKEND: a fresh root file was removed"
    check_rooted "$o"
    assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows"

    # --- keep-outputs-days: an output root older than that goes at start-up once its
    # build is finished; one whose build is still queued stays whatever its age
    local om queued
    om=$(out_of "$onmid")
    queued=$(submit -A empty)
    q "UPDATE sluice_gcroots SET created = created - 3 * 86400 WHERE path IN ('$o', '$om')" >/dev/null
    q "UPDATE sluice_gcroots SET build = $queued WHERE path = '$om'" >/dev/null
    sl run --once --keep-outputs-days 1
    assert_eq "$rc" 0 "$BACKEND: run --once --keep-outputs-days 1: exit status ($err)"
    assert_eq "$(q "SELECT count(*) FROM sluice_gcroots WHERE path = '$o'")" 0 \
        "$BACKEND: a 3-day-old output root of a finished build dropped"
    [ ! -L "$SLUICE_STATE_DIR/roots/${o#/nix/store/}" ] || fail "$BACKEND: its root file was kept"
    check_rooted "$om"
    assert_eq "$(build_row "$queued" | cut -d'|' -f1)" 1 "$BACKEND: the queued build finished"
    listen_stop
}

for_backends body
