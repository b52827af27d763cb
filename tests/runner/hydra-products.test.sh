#!/usr/bin/env bash
# Build products, release names and metrics recorded as Hydra's runner records them,
# on SQLite and PostgreSQL: without nix-support/hydra-build-products one "nix-build"
# product per directory output (subtype the output name, '' for out, in output-name
# order); declared products with fileSize and the sha256 of the file (read in chunks),
# quoted paths, names Hydra would show ('' for the output itself or a name with other
# characters), defaultPath ''; lines naming a missing file, a path outside the outputs
# or not in Hydra's format dropped with a logged reason; the release name trimmed and
# validated; metrics named and united as Hydra accepts them (the last of a name wins);
# the step row's timesBuilt as Nix reports it.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"
PNIX=$ROOT/tests/runner/nix/products.nix

prods() {
    q "SELECT productnr, type, subtype, coalesce(fileSize, -1), coalesce(sha256hash, '-'), path,
              name, coalesce(defaultPath, 'NULL') FROM BuildProducts WHERE build = $1 ORDER BY productnr"
}

body() {
    local ids plain multi declared badrel o od big sha
    ids=$("$SLUICE" submit "$PNIX" --argstr salt "$SALT" -A plain -A multi -A declared -A badrelease) ||
        fail "$BACKEND: submit"
    read -r plain multi declared badrel <<<"$(tr '\n' ' ' <<<"$ids")"
    sl run --once
    assert_eq "$rc" 0 "$BACKEND: run --once ($err)"
    for b in $plain $multi $declared $badrel; do
        assert_eq "$(build_row "$b")" "1|0|0" "$BACKEND: build $b"
    done

    o=$(q "SELECT path FROM BuildOutputs WHERE build = $plain")
    assert_eq "$(prods "$plain")" "1|nix-build||-1|-|$o|plain|" "$BACKEND: default product"
    o=$(q "SELECT path FROM BuildOutputs WHERE build = $multi AND name = 'out'")
    od=$(q "SELECT path FROM BuildOutputs WHERE build = $multi AND name = 'doc'")
    assert_eq "$(prods "$multi")" "$(printf '%s\n' "1|nix-build|doc|-1|-|$od|multi-doc|" "2|nix-build||-1|-|$o|multi|")" \
        "$BACKEND: default products of directory outputs only, by output name"

    o=$(q "SELECT path FROM BuildOutputs WHERE build = $declared")
    big=$(stat -c %s "$o/big.bin")
    sha=$(sha256sum "$o/big.bin" | cut -d' ' -f1)
    assert_eq "$(prods "$declared")" "$(printf '%s\n' \
        "1|file|binary-dist|$big|$sha|$o/big.bin|big.bin|" \
        "2|doc|manual|7|$(sha256sum "$o/my manual.txt" | cut -d' ' -f1)|$o/my manual.txt|my manual.txt|index.html" \
        "3|doc|dir|-1|-|$o||" \
        "4|doc|weird|6|$(sha256sum "$o/we#ird" | cut -d' ' -f1)|$o/we#ird||")" "$BACKEND: declared products"
    [ "$big" -gt 200000 ] || fail "$BACKEND: big.bin is only $big bytes"
    for why in "no such file" "outside the step's outputs" "not 'TYPE SUBTYPE PATH"; do
        grep -q "dropping product line .*$why" <<<"$err" || fail "$BACKEND: no log line for '$why': $err"
    done
    assert_eq "$(grep -c 'dropping product line' <<<"$err")" 4 "$BACKEND: dropped product lines"
    assert_eq "$(q "SELECT releaseName FROM Builds WHERE id = $declared")" "rel-1.0" "$BACKEND: release name trimmed"
    # timesBuilt from Nix's BuildResult, isNonDeterministic only for repeated builds
    assert_eq "$(q "SELECT timesBuilt, coalesce(CAST(isNonDeterministic AS integer), -1) FROM BuildSteps WHERE build = $declared")" \
        "1|-1" "$BACKEND: timesBuilt"
    assert_eq "$(q "SELECT coalesce(releaseName, 'NULL') FROM Builds WHERE id = $badrel")" "NULL" "$BACKEND: bad release name ignored"
    assert_eq "$(q "SELECT name, CAST(value * 10 AS integer), coalesce(unit, 'NULL') FROM BuildMetrics WHERE build = $declared ORDER BY name")" \
        "$(printf '%s\n' "m1|25|ms" "m2|40|NULL")" "$BACKEND: metrics"
}

SLUICE_LOG=${SLUICE_LOG:-1}
export SLUICE_LOG
for_backends body
echo "hydra products: ok"
