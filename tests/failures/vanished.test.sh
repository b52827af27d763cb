#!/usr/bin/env bash
# An output that vanishes on its builder after it was rooted and checked, before it is
# copied back: what a GC of Nix 2.8 does to a path it is already deleting when the
# step's temp root arrives (the root is acknowledged, the path goes anyway).  The
# runner pauses before the copy back (SLUICE_TEST_PAUSE=before-copy-back); the test
# deletes the output on the builder (its files and its ValidPaths row, as that GC
# does) and lets the step go on.  On ssh-ng:// and on ssh://.  Asserts:
#  - the attempt ends with status 3 and "output ... vanished on the builder before it
#    was copied back", blaming nobody: the step runs again at once, not after the
#    retry delay, and the build succeeds at its second attempt;
#  - the output is valid in the local store;
#  - an output whose files went but whose registration stayed (below) is deleted on the
#    builder and built again at once on ssh-ng://; on ssh:// the builder is disabled for
#    a while, `nix-store --verify` there drops the path, and the build succeeds at its
#    second attempt.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../farm/lib.sh"
farm_lab 1
P=$SLUICE_STATE_DIR/pause/before-copy-back
cat >"$T/one.nix" <<'EOF'
{ salt }:
derivation {
  name = "vanishing";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "echo ${salt} > $out" ];
}
EOF

for proto in ssh-ng ssh; do
    machines_file "$proto://b1 x86_64-linux - 1 1"
    rm -f "$P"
    SLUICE_TEST_PAUSE=before-copy-back run_bg --machines "$T/machines"
    id=$("$SLUICE" submit "$T/one.nix" --argstr salt "$SALT-$proto")
    wait_until 60 test -s "$P" || { tail -20 "$RUN_LOG"; fail "$proto: never paused before the copy back"; }
    out=$(cat "$P")
    name=$(basename "$out")
    [ -e "$SLUICE_LAB/b1/store/$name" ] || fail "$proto: $out is not on the builder"
    chmod -R u+w "$SLUICE_LAB/b1/store/$name"
    rm -rf "${SLUICE_LAB:?}/b1/store/$name"
    sqlite3 "$SLUICE_LAB/b1/var/nix/db/db.sqlite" "DELETE FROM ValidPaths WHERE path = '$out'"
    rm -f "$P"
    # the second attempt pauses at the same point: it goes on untouched
    wait_until 20 test -s "$P" || { tail -20 "$RUN_LOG"; fail "$proto: no second attempt within 20 s"; }
    rm -f "$P"
    wait_until 60 build_done "$id" || { tail -20 "$RUN_LOG"; fail "$proto: build $id not finished"; }
    assert_eq "$(build_row "$id")" "1|0" "$proto: build $id"
    first=$(q "SELECT status || '|' || errorMsg FROM BuildSteps WHERE build = $id ORDER BY stepnr LIMIT 1")
    case $first in
    "3|output $out vanished on the builder before it was copied back") ;;
    *) fail "$proto: the first attempt: $first" ;;
    esac
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $id")" 2 "$proto: attempts"
    nix-store --check-validity "$out" || fail "$proto: $out is not valid in the local store"
    run_stop
    echo "$proto: the vanished output was built again at once"
done

# An output whose files went but whose registration stayed: what a GC of Nix 2.8 leaves
# when it deletes a CA path while a new build of the same path takes it as valid (the
# build then registers it again over no files).  Every build of it there is "already
# valid" from then on, and its NAR cannot be read.  ssh-ng:// deletes the path on the
# builder (CollectGarbage, the path alone) and builds it again at once; ssh:// cannot
# delete, so the builder is disabled for a while, and the message names what drops the
# path there (its GC does not).
first_ended() { [ "$(q "SELECT count(*) FROM BuildSteps WHERE build = $1 AND status = 3")" = 1 ]; }
for proto in ssh-ng ssh; do
    machines_file "$proto://b1 x86_64-linux - 1 1"
    rm -f "$P"
    SLUICE_TEST_PAUSE=before-copy-back run_bg --machines "$T/machines" --machine-backoff-scale 0.1
    id=$("$SLUICE" submit "$T/one.nix" --argstr salt "$SALT-$proto-unreadable")
    wait_until 60 test -s "$P" || { tail -20 "$RUN_LOG"; fail "$proto: never paused before the copy back"; }
    out=$(cat "$P")
    name=$(basename "$out")
    chmod -R u+w "$SLUICE_LAB/b1/store/$name"
    rm -rf "${SLUICE_LAB:?}/b1/store/$name"
    assert_eq "$(sqlite3 "$SLUICE_LAB/b1/var/nix/db/db.sqlite" "SELECT count(*) FROM ValidPaths WHERE path = '$out'")" 1 "$proto: still registered"
    rm -f "$P"
    if [ "$proto" = ssh ]; then
        # the builder is disabled (6-9 s here); its GC does not take the path (it walks
        # the store's directory), `nix-store --verify` does, as the message says
        wait_until 20 first_ended "$id" || { tail -20 "$RUN_LOG"; fail "$proto: the first attempt did not end"; }
        env NIX_CONF_DIR="$SLUICE_LAB/nixconf" "$SLUICE_LAB/inns" "$SLUICE_LAB/b1" nix-store --gc >/dev/null 2>&1
        assert_eq "$(sqlite3 "$SLUICE_LAB/b1/var/nix/db/db.sqlite" "SELECT count(*) FROM ValidPaths WHERE path = '$out'")" 1 "$proto: kept by the builder's GC"
        env NIX_CONF_DIR="$SLUICE_LAB/nixconf" "$SLUICE_LAB/inns" "$SLUICE_LAB/b1" nix-store --verify >/dev/null 2>&1
        assert_eq "$(sqlite3 "$SLUICE_LAB/b1/var/nix/db/db.sqlite" "SELECT count(*) FROM ValidPaths WHERE path = '$out'")" 0 "$proto: dropped by nix-store --verify"
    fi
    wait_until 30 test -s "$P" || { tail -20 "$RUN_LOG"; fail "$proto: no second attempt within 30 s"; }
    rm -f "$P"
    wait_until 60 build_done "$id" || { tail -20 "$RUN_LOG"; fail "$proto: build $id not finished"; }
    assert_eq "$(build_row "$id")" "1|0" "$proto: build $id"
    first=$(q "SELECT status || '|' || errorMsg FROM BuildSteps WHERE build = $id ORDER BY stepnr LIMIT 1")
    case $proto:$first in
    "ssh-ng:3|output $out registered on the builder could not be read there (deleted there, built again): "*"NAR of $out from ssh-ng://b1: "*"'$out'"*"No such file or directory"*) ;;
    "ssh:3|output $out registered on the builder could not be read there and was not deleted ("*"CollectGarbage is not part of the serve protocol"*"; \`nix-store --verify\` there drops it): "*"getting status of '$out': No such file or directory"*) ;;
    *) fail "$proto: the first attempt: $first" ;;
    esac
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $id")" 2 "$proto: attempts"
    if [ "$proto" = ssh ]; then
        grep -q "machine ssh://b1 disabled for " "$RUN_LOG" || fail "ssh: the builder was not disabled"
    else
        ! grep -q "machine ssh-ng://b1 disabled" "$RUN_LOG" || fail "ssh-ng: the builder was disabled"
    fi
    nix-store --check-validity "$out" || fail "$proto: $out is not valid in the local store"
    run_stop
    echo "$proto: the output registered on the builder with no files was built again: $first"
done
echo "ok: an output lost on its builder after its root is built again at once"
