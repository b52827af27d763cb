#!/usr/bin/env bash
# Sessions passed on (`session-steps`): on a builder with one slot and more steps
# waiting than it can run, a step's session serves the machine's next step instead of
# a new one.  On ssh-ng:// and on ssh://, whose build log is the session's stderr.
# Asserts:
#  - every build succeeds and every step is built once, at its first attempt;
#  - sessions were passed on, and none served more than `session-steps` (3) steps;
#  - each step's log holds all its own builder's lines (200, the last one written just
#    before the builder exits) and none of another step's, though steps shared sessions;
#  - with the runner still up and no step left, a GC on the builder collects everything
#    the steps left there within STORE_PASS_ON_MS and the closer's wait: a session
#    passed on that no step takes ends with its temp roots.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"
farm_lab 1
export SLUICE_LOG=3 # the sessions' debug lines
printf 'session-steps = 3\n' >"$T/conf"
builder_store() { find "$SLUICE_LAB/b1/store" -mindepth 1 -maxdepth 1 ! -name .links 2>/dev/null; }

# 8 leaves, each printing 200 lines of its own, and a top needing them all
cat >"$T/wide.nix" <<'EOF'
{ salt }:
let
  leaf = i: derivation {
    name = "leaf-${toString i}";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" ''
      k=0
      while [ $k -lt 199 ]; do echo "leaf ${toString i} line $k ${salt}"; k=$((k + 1)); done
      echo "leaf ${toString i} done" >&2
      echo ${toString i} > $out
    '' ];
  };
  leaves = builtins.genList leaf 8;
in derivation {
  name = "top";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "echo top ${salt} ${toString leaves} > $out" ];
}
EOF

gc_clean() {
    env NIX_CONF_DIR="$SLUICE_LAB/nixconf" "$SLUICE_LAB/inns" "$SLUICE_LAB/b1" nix-store --gc >/dev/null 2>&1
    [ -z "$(builder_store)" ]
}

for proto in ssh-ng ssh; do
    machines_file "$proto://b1 x86_64-linux - 1 1"
    SLUICE_CONFIG=$T/conf run_bg --machines "$T/machines"
    id=$("$SLUICE" submit "$T/wide.nix" --argstr salt "$SALT-$proto")
    wait_until 120 build_done "$id" || { tail -20 "$RUN_LOG"; fail "$proto: build $id not finished"; }
    assert_eq "$(build_row "$id")" "1|0" "$proto: build $id"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $id AND status = 0")" 9 \
        "$proto: steps built once each"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps WHERE build = $id AND status <> 0")" 0 \
        "$proto: failed or retried step rows"

    passed=$(grep -c "session to $proto://b1 passed on to the next step" "$RUN_LOG" || true)
    echo "$proto: sessions passed on: $passed"
    [ "$passed" -ge 2 ] || fail "$proto: no session was passed on ($passed)"
    most=$(sed -nE 's/.*passed on to the next step \(([0-9]+) served\).*/\1/p' "$RUN_LOG" |
        sort -n | tail -1)
    [ "$most" -le 2 ] || fail "$proto: a session passed on after $most steps (session-steps = 3)"

    for i in 0 1 2 3 4 5 6 7; do
        nr=$(q "SELECT stepnr FROM BuildSteps WHERE build = $id AND drvPath LIKE '%-leaf-$i.drv'")
        log=$("$SLUICE" log "$id" "$nr")
        n=$(grep -c "^leaf $i line [0-9]* $SALT-$proto\$" <<<"$log" || true)
        [ "$n" = 199 ] || fail "$proto: leaf $i: $n of its 199 stdout lines in its log: $log"
        grep -q "^leaf $i done\$" <<<"$log" || fail "$proto: leaf $i: its last line is not in its log: $log"
        others=$(grep -E '^leaf [0-9]' <<<"$log" | grep -vE "^leaf $i " || true)
        [ -z "$others" ] || fail "$proto: leaf $i: another step's lines in its log: $others"
    done

    # no step left: the sessions end (the last with its step, one passed on when nobody
    # took it in time), and with them the temp roots
    [ -n "$(builder_store)" ] || fail "$proto: the steps left nothing on the builder"
    wait_until 10 gc_clean || fail "$proto: b1 keeps paths after its GC with no step running: $(builder_store)"
    kill -0 "$RUN_PID" || fail "$proto: the runner died"
    run_stop
done
echo "ok: sessions passed on serve several steps, keep each log its own, and end"
