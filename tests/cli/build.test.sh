#!/usr/bin/env bash
# `sluice build` as a Nix user expects from nix-build, driven in a pseudo-terminal
# (tmux for Ctrl-C, script(1) elsewhere), on SQLite and PostgreSQL:
#  - ./result, ./result-2 links (GC roots) to the printed outputs; -o NAME; --no-out-link;
#  - -L prints the build log with "NAME> " prefixes;
#  - a failure: exit 100, the failing drv and the last 10 lines of its log; without
#    --keep-going the other builds are cancelled, with -k the others still build;
#  - the progress line names the running step and its elapsed time;
#  - Ctrl-C cancels the builds it queued (no build stays queued); --keep-queued leaves
#    them queued;
#  - --dry-run lists what would be built and submits nothing;
#  - -E with -I and NIX_PATH (<name/...> lookups), and an attribute error naming the file.
source "$(dirname "$0")/../harness/env.sh"
source "$ROOT/tests/runner/lib.sh"
command -v tmux >/dev/null || skip "tmux not installed"
command -v script >/dev/null || skip "script (bsdutils) not installed"

# pty ARGS...: sluice build ARGS in a pseudo-terminal from $W; $rc, $tty (its output)
pty() {
    local cmd
    cmd=$(printf '%q ' "$SLUICE" build "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" "$@")
    rc=0
    (cd "$W" && script -qec "$cmd" "$T/tty-$BACKEND.out" >/dev/null) || rc=$?
    tty=$(tr '\r' '\n' <"$T/tty-$BACKEND.out")
}
queued() { q "SELECT count(*) FROM Builds WHERE finished = 0"; }
pane() { tmux -L "$TMUX_SOCK" capture-pane -p -t build; }
pane_has() { pane | grep -q "$1"; }

body() {
    local out1 out2 n
    W=$T/work-$BACKEND
    mkdir -p "$W"

    phase "result links, -L"
    pty -A empty -A chatty -L
    assert_eq "$rc" 0 "$BACKEND: build exit status ($tty)"
    out1=$(out_of "$(q "SELECT id FROM Builds WHERE job = 'empty'")")
    out2=$(out_of "$(q "SELECT id FROM Builds WHERE job = 'chatty'")")
    assert_eq "$(readlink "$W/result")" "$out1" "$BACKEND: ./result"
    assert_eq "$(readlink "$W/result-2")" "$out2" "$BACKEND: ./result-2"
    grep -qx "$out1" <<<"$tty" || fail "$BACKEND: the output path is not printed: $tty"
    nix-store --gc --print-roots 2>/dev/null | grep -q "^$W/result " || fail "$BACKEND: ./result is no GC root"
    grep -q "^chatty> line 1999 of a long log $SALT" <<<"$tty" || fail "$BACKEND: -L output: $(tail -5 <<<"$tty")"
    pty -A empty -o "$W/other"
    assert_eq "$(readlink "$W/other")" "$out1" "$BACKEND: -o"
    nix-store --gc --print-roots 2>/dev/null | grep -q "^$W/other " || fail "$BACKEND: -o link is no GC root"
    pty -A chatty -o "$W/other"
    assert_eq "$(readlink "$W/other")" "$out2" "$BACKEND: -o over an older link"
    # what is not a link into the store is never replaced
    echo keep >"$W/mine"
    pty -A empty -o "$W/mine"
    assert_eq "$rc" 1 "$BACKEND: -o over a file: exit status ($tty)"
    grep -q "cannot create symlink '$W/mine': already exists" <<<"$tty" || fail "$BACKEND: -o over a file: $tty"
    assert_eq "$(cat "$W/mine")" keep "$BACKEND: the file is untouched"
    rm -f "$W/mine"
    rm -f "$W"/result*
    pty -A empty --no-out-link
    [ ! -e "$W/result" ] || fail "$BACKEND: --no-out-link made a link"

    phase "a failure: exit 100 and the log tail; the others cancelled"
    pty -A fail -A gate
    assert_eq "$rc" 100 "$BACKEND: failed build exit status ($tty)"
    grep -q "error: build [0-9]* (failed): /nix/store/.*-broken.drv: failed" <<<"$tty" || fail "$BACKEND: failure line: $tty"
    grep -q "last 10 log lines:" <<<"$tty" || fail "$BACKEND: no log tail: $tty"
    grep -q "> broken $SALT: about to fail" <<<"$tty" || fail "$BACKEND: log tail lacks the builder's line: $tty"
    assert_eq "$(build_row "$(q "SELECT max(id) FROM Builds WHERE job = 'gate'")")" "1|4|0" \
        "$BACKEND: without --keep-going the other build is cancelled"
    assert_eq "$(queued)" 0 "$BACKEND: queued builds after a failure"
    pty -k -A fail -A fod
    assert_eq "$rc" 100 "$BACKEND: -k exit status"
    assert_eq "$(build_row "$(q "SELECT max(id) FROM Builds WHERE job = 'fod'")")" "1|0|0" \
        "$BACKEND: with -k the other build is built"

    phase "progress line and Ctrl-C"
    TMUX_SOCK=sluice-test-$$-$BACKEND
    tmux -L "$TMUX_SOCK" new-session -d -s build -x 160 -y 20 -c "$W" \
        "$(printf '%q ' env SLUICE_DB="$URL" SLUICE_STATE_DIR="$SLUICE_STATE_DIR" "$SLUICE" build \
            "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -A gate2); echo EXIT=\$?; sleep 60"
    wait_until 60 pane_has "building gate2 ([0-9]*s)" || fail "$BACKEND: no progress line naming gate2: $(pane)"
    tmux -L "$TMUX_SOCK" send-keys -t build C-c
    wait_until 60 pane_has "EXIT=" || fail "$BACKEND: build did not end after Ctrl-C: $(pane)"
    pane_has "EXIT=1" || fail "$BACKEND: exit status after Ctrl-C: $(pane)"
    pane_has "interrupted; 1 queued build cancelled" || fail "$BACKEND: Ctrl-C message: $(pane)"
    tmux -L "$TMUX_SOCK" kill-server
    assert_eq "$(queued)" 0 "$BACKEND: a build stayed queued after Ctrl-C"
    assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows after Ctrl-C"
    tmux -L "$TMUX_SOCK" new-session -d -s build -x 160 -y 20 -c "$W" \
        "$(printf '%q ' env SLUICE_DB="$URL" SLUICE_STATE_DIR="$SLUICE_STATE_DIR" "$SLUICE" build \
            "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" -A gate3 --keep-queued); echo EXIT=\$?; sleep 60"
    wait_until 60 pane_has "building gate3" || fail "$BACKEND: gate3 not building: $(pane)"
    tmux -L "$TMUX_SOCK" send-keys -t build C-c
    wait_until 60 pane_has "EXIT=" || fail "$BACKEND: build did not end after Ctrl-C: $(pane)"
    pane_has "the builds stay queued" || fail "$BACKEND: --keep-queued message: $(pane)"
    tmux -L "$TMUX_SOCK" kill-server
    assert_eq "$(queued)" 1 "$BACKEND: --keep-queued left the build queued"
    q "DELETE FROM Builds WHERE finished = 0" >/dev/null

    phase "--dry-run, -E with -I and NIX_PATH, attribute errors"
    n=$(q "SELECT count(*) FROM Builds")
    sl build "$JOBS" --argstr salt "$SALT-dry" --argstr dir "$DIR" -A empty --dry-run
    assert_eq "$rc" 0 "$BACKEND: --dry-run exit status ($err)"
    grep -q "will be built" <<<"$err" || fail "$BACKEND: --dry-run output: $err"
    grep -q -- "-empty.drv" <<<"$err" || fail "$BACKEND: --dry-run lists no empty.drv: $err"
    assert_eq "$(q "SELECT count(*) FROM Builds")" "$n" "$BACKEND: --dry-run submitted builds"
    pushd "$W" >/dev/null
    sl build --no-out-link -I "tdir=$ROOT/tests/runner/nix" \
        -E "import <tdir/jobs.nix> { salt = \"$SALT\"; dir = \"$DIR\"; }" -A empty
    assert_eq "$rc" 0 "$BACKEND: -E with -I ($err)"
    assert_eq "$out" "$out1" "$BACKEND: -E with -I builds the same derivation"
    NIX_PATH="tdir=$ROOT/tests/runner/nix" sl build --no-out-link \
        -E "(import <tdir/jobs.nix> { salt = \"$SALT\"; dir = \"$DIR\"; }).empty"
    popd >/dev/null
    assert_eq "$out" "$out1" "$BACKEND: -E with NIX_PATH"
    sl build "$JOBS" --argstr salt "$SALT" -A nosuch
    assert_eq "$rc" 1 "$BACKEND: attribute error exit status"
    grep -q "attribute 'nosuch' in selection path 'nosuch' not found in $JOBS" <<<"$err" ||
        fail "$BACKEND: attribute error: $err"
}
for_backends body
echo "sluice build checked"
