#!/usr/bin/env bash
# Determinism checks as Hydra's runner makes them, on SQLite and PostgreSQL, with real
# Nix rounds on the local store: jobset-repeats (Hydra's xxx-jobset-repeats,
# PROJECT:JOBSET:N) builds the steps of that jobset's builds N more times; a
# derivation whose rounds differ is marked (BuildSteps.timesBuilt 2,
# isNonDeterministic) and still succeeds, one whose rounds agree is not marked; a
# derivation with isDetermistic = "1" (sic) is checked whatever its jobset and fails
# with status 12 (NotDeterministic) when its rounds differ; other jobsets' steps are
# built once.  A bad jobset-repeats value stops `run` with a message.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

# status|timesBuilt|isNonDeterministic (1, 0, -1 for NULL) of a build's step
rounds() {
    q "SELECT status, timesBuilt, CASE WHEN isNonDeterministic IS NULL THEN -1
              WHEN isNonDeterministic THEN 1 ELSE 0 END FROM BuildSteps WHERE build = $1 AND type = 0"
}

body() {
    local ids nd det checked plain
    mapfile -t ids < <(submit --jobset rep -A nondet -A det)
    nd=${ids[0]} det=${ids[1]}
    checked=$(submit --jobset other -A nondetChecked)
    plain=$(submit --jobset other -A mid)
    sl run --once --jobset-repeats "sluice:rep:1 sluice:unused:3"
    assert_eq "$rc" 0 "$BACKEND: run --once ($err)"
    assert_eq "$(build_row "$nd")" "1|0|0" "$BACKEND: a non-deterministic build of a repeated jobset"
    assert_eq "$(rounds "$nd")" "0|2|1" "$BACKEND: its step: built twice, marked non-deterministic"
    assert_eq "$(build_row "$det")" "1|0|0" "$BACKEND: a deterministic build of a repeated jobset"
    assert_eq "$(rounds "$det")" "0|2|0" "$BACKEND: its step: built twice, not marked"
    assert_eq "$(build_row "$checked")" "1|12|0" "$BACKEND: isDetermistic = 1 with differing rounds"
    assert_eq "$(rounds "$checked")" "12|2|1" "$BACKEND: its step: status 12 (NotDeterministic)"
    assert_eq "$(rounds "$plain")" "0|1|-1" "$BACKEND: another jobset's step: built once"

    sl run --once --jobset-repeats "sluice:rep"
    assert_eq "$rc" 1 "$BACKEND: a bad jobset-repeats"
    grep -q "jobset-repeats: bad value 'sluice:rep'" <<<"$err" || fail "$BACKEND: message: $err"
}

for_backends body
echo "hydra repeats: ok"
