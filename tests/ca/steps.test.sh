#!/usr/bin/env bash
# tests/ca/steps.test.sh: the README's example, on SQLite and PostgreSQL: `sluice build
# examples/demo.nix` (fixed-output, input-addressed, CA on IA, CA on CA, deferred IA on
# CA) builds, prints the output path nix-store -r gives in a separate store, and
# `sluice steps BUILD` shows every status-13 row as "resolved" with the drv it resolved
# to (the one Nix 2.8 resolves it to) and that drv's step.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

FILE=$ROOT/examples/demo.nix

body() {
    local id top
    sl build "$FILE" --argstr salt "$SALT"
    [ $rc -eq 0 ] || { echo "$err" >&2; fail "$BACKEND: sluice build exited with $rc"; }
    id=$(q "SELECT max(id) FROM Builds")
    top=$(q "SELECT drvPath FROM Builds WHERE id = $id")
    label_attrs "$FILE" report src greeting caBase caNext
    oracle_build "$top"
    assert_eq "$(tail -1 <<<"$out")" "${ORACLE_OUT[$top!out]:-none}" "$BACKEND: output printed by sluice build"
    assert_eq "$(build_row "$id")" "1|0|0" "$BACKEND: build row"
    sl steps "$id"
    [ $rc -eq 0 ] || fail "$BACKEND: sluice steps exited with $rc: $err"
    assert_eq "$(relabel <<<"$out")" "step  type  status                 derivation
1     build succeeded              src
2     build succeeded              greeting
3     build resolved               caBase
      -> resolved to caBase' (step 4)
4     build succeeded              caBase'
5     build resolved               caNext
      -> resolved to caNext' (step 6)
6     build succeeded              caNext'
7     build resolved               report
      -> resolved to report' (step 8)
8     build succeeded              report'" "$BACKEND: sluice steps $id"
}

for_backends body
echo "PASS"
