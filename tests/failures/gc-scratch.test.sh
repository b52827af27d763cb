#!/usr/bin/env bash
# A GC on a builder while a floating CA output exists only at its scratch path.  Nix
# 2.8 (no sandbox) writes such an output at a scratch path it roots nowhere; sluice
# gives it a temp root on the step's session before the build starts.  A build on b1
# (ssh://) and one on b2 (ssh-ng://) write $out and wait; the test runs `nix-store
# --gc` on that host, checks that the scratch output is still there, and lets the
# build finish.  Asserts: both builds succeed on their first and only attempt, with
# outputs equal to what `nix-store -r` gives.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../farm/lib.sh"
farm_lab 2
machines_file 'ssh://b1 x86_64-linux - 1 1 ca-derivations,hop1' \
    'ssh-ng://b2 x86_64-linux - 1 1 ca-derivations,hop2'

B1() { env NIX_CONF_DIR="$SLUICE_LAB/nixconf" "$SLUICE_LAB/inns" "$SLUICE_LAB/b1" "$@"; }
B2() { env NIX_CONF_DIR="$SLUICE_LAB/nixconf" "$SLUICE_LAB/inns" "$SLUICE_LAB/b2" "$@"; }

run_bg --machines "$T/machines"
submit -A gcWindow1 >/dev/null
submit -A gcWindow2 >/dev/null
for i in 1 2; do
    name=gc-window-$i
    wait_until 60 test -s "$DIR/wrote-$name" || { tail -20 "$RUN_LOG"; fail "$name never started"; }
    scratch=$(cat "$DIR/wrote-$name")
    echo "junk $SALT $i" >"$T/junk-$i"
    junk=$(B$i nix-store --add "$T/junk-$i")
    B$i nix-store --gc >"$T/gc-$i.out" 2>&1 || fail "GC on b$i: $(tail -3 "$T/gc-$i.out")"
    [ ! -e "$SLUICE_LAB/b$i/store/$(basename "$junk")" ] || fail "the GC on b$i kept $junk"
    [ -e "$SLUICE_LAB/b$i/store/$(basename "$scratch")" ] || fail "b$i's GC took the scratch output $scratch"
    echo "b$i: GC ran while $name existed only at its scratch path $scratch; it is still there"
    touch "$DIR/gc-done-$name"
done
for job in gcWindow1 gcWindow2; do
    id=$(build_id "$job")
    wait_until 60 build_done "$id" || { tail -20 "$RUN_LOG"; fail "$job not finished"; }
    assert_eq "$(build_row "$id")" "1|0" "$job"
done
run_stop
assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE status NOT IN (0, 13)")" 0 "failed or retried steps"
assert_eq "$(q "SELECT machine FROM BuildSteps WHERE status = 0 ORDER BY build")" "ssh://b1
ssh-ng://b2" "machines"
ours=$(q "SELECT path FROM BuildOutputs" | sort)
assert_eq "$ours" "$(nix_oracle $(q "SELECT drvPath FROM Builds ORDER BY id"))" "outputs against nix-store -r"
echo "ok: scratch outputs survive a GC on their builder"
