#!/usr/bin/env bash
# Determinism checks on builder hosts, over both protocols (b1 ssh://, the serve
# protocol's nrRepeats and enforceDeterminism; b2 ssh-ng://, the worker protocol's
# repeat and enforce-determinism settings): with jobset-repeats a derivation whose
# rounds differ is built twice and marked isNonDeterministic (status 0); with
# isDetermistic = "1" (sic) it fails with status 12, as Hydra's runner records them.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"
farm_lab 2
machines_file 'ssh://b1 x86_64-linux - 2 1 hop1' 'ssh-ng://b2 x86_64-linux - 2 1 hop2'
rounds() {
    q "SELECT status, timesBuilt, coalesce(isNonDeterministic, -1), machine FROM BuildSteps
       WHERE build = $1 AND type = 0"
}

mapfile -t ids < <(submit --jobset rep -A nondet1 -A nondet2)
mapfile -t checked < <(submit --jobset other -A nondetChecked1 -A nondetChecked2)
sl run --once --machines "$T/machines" --jobset-repeats "sluice:rep:1"
assert_eq "$rc" 0 "run --once ($err)"
assert_eq "$(rounds "${ids[0]}")" "0|2|1|ssh://b1" "serve protocol: built twice, marked"
assert_eq "$(rounds "${ids[1]}")" "0|2|1|ssh-ng://b2" "worker protocol: built twice, marked"
assert_eq "$(build_row "${ids[0]}")" "1|0" "the marked build succeeds"
assert_eq "$(rounds "${checked[0]}")" "12|2|1|ssh://b1" "serve protocol: isDetermistic, status 12"
assert_eq "$(rounds "${checked[1]}")" "12|2|1|ssh-ng://b2" "worker protocol: isDetermistic, status 12"
assert_eq "$(build_row "${checked[1]}")" "1|12" "the checked build fails with status 12"
echo "ok: determinism checks on builder hosts"
