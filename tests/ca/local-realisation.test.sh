#!/usr/bin/env bash
# tests/ca/local-realisation.test.sh: CA drvs whose inputs were built by plain
# `nix-store -r` outside sluice (tests/ca/nix/outside.nix), on SQLite and PostgreSQL.
# Asserts: the inputs are not built again; p (on CA a and input-addressed ia) and q (on b,
# which Nix resolved itself) resolve through the local store's realisations to the drvs
# Nix resolves them to; the CA inputs found only that way are recorded with a type-1,
# status-0 row (machine '', the realised path) in the build that found them, the
# input-addressed one with none; a later build needing a finds it in the DB (no second
# type-1 row); outputs and realisations equal to nix-store -r's in a separate store.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

FILE=$CA_NIX/outside.nix

body() {
    local d aout bout
    # built outside sluice, in the local store
    for d in $(nix-instantiate "$FILE" --argstr salt "$SALT" -A ia -A a -A b 2>/dev/null); do
        nix-store -r "$d" >/dev/null 2>"$T/outside.log" || { cat "$T/outside.log" >&2; fail "$BACKEND: nix-store -r $d"; }
    done
    aout=$(nix build --json --no-link "$(nix-instantiate "$FILE" --argstr salt "$SALT" -A a 2>/dev/null)" | jq -r '.[0].outputs.out')
    bout=$(nix build --json --no-link "$(nix-instantiate "$FILE" --argstr salt "$SALT" -A b 2>/dev/null)" | jq -r '.[0].outputs.out')

    submit_jobs "$FILE" p q
    label_attrs "$FILE" ia a b
    run_once
    oracle_build "${DRV[p]}" "${DRV[q]}"
    assert_eq "$(q "SELECT job, finished, buildStatus, isCachedBuild FROM Builds ORDER BY id")" "p|1|0|0
q|1|0|0" "$BACKEND: build rows"
    assert_eq "$(step_rows "${ID[p]}")" "1|1|a|0|||0|
2|0|p|13||p'|0|
3|0|p'|0|||0|" "$BACKEND: steps of p"
    assert_eq "$(step_rows "${ID[q]}")" "1|1|b|0|||0|
2|0|q|13||q'|0|
3|0|q'|0|||0|" "$BACKEND: steps of q"
    assert_eq "$(step_outputs "${ID[p]}" 1)" "out=$aout" "$BACKEND: the type-1 row of a"
    assert_eq "$(step_outputs "${ID[q]}" 1)" "out=$bout" "$BACKEND: the type-1 row of b"
    for d in p q; do
        assert_eq "$(build_outputs "${ID[$d]}")" "out=${ORACLE_OUT[${DRV[$d]}!out]}" "$BACKEND: outputs of $d vs nix-store -r"
        nix-store --check-validity "${ORACLE_OUT[${DRV[$d]}!out]}" || fail "$BACKEND: output of $d not valid"
    done
    assert_eq "$(store_realisations "${!ORACLE_REAL[@]}")" "$(oracle_realisations)" "$BACKEND: realisations"

    # a later build needing a: found through the DB's type-1 row, no new row
    submit_jobs "$FILE" p3
    run_once
    oracle_build "${DRV[p3]}"
    assert_eq "$(build_row "${ID[p3]}")" "1|0|0" "$BACKEND: build row of p3"
    assert_eq "$(step_rows "${ID[p3]}")" "1|0|p3|13||p3'|0|
2|0|p3'|0|||0|" "$BACKEND: steps of p3"
    assert_eq "$(build_outputs "${ID[p3]}")" "out=${ORACLE_OUT[${DRV[p3]}!out]}" "$BACKEND: outputs of p3 vs nix-store -r"
}

for_backends body
echo "PASS"
