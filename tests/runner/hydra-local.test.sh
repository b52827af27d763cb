#!/usr/bin/env bash
# preferLocalBuild is Hydra's "local" feature, on SQLite and PostgreSQL: with the only
# machine having "local" as a mandatory feature, a preferLocalBuild derivation is built
# there and a plain one is not (unsupported, status 9); without it, a preferLocalBuild
# derivation still builds on a machine that does not list "local".
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"
LNIX=$ROOT/tests/runner/nix/local.nix
SYSTEM=$(nix-instantiate --eval -E builtins.currentSystem | tr -d '"')

body() {
    local ids pl plain again
    printf 'local %s - 2 1 local local\n' "$SYSTEM" >"$T/machines-$BACKEND"
    ids=$("$SLUICE" submit "$LNIX" --argstr salt "$SALT" -A preferLocal -A plain) || fail "$BACKEND: submit"
    read -r pl plain <<<"$(tr '\n' ' ' <<<"$ids")"
    sl run --once --machines "$T/machines-$BACKEND" --max-unsupported-time 1
    assert_eq "$rc" 0 "$BACKEND: run --once ($err)"
    assert_eq "$(build_row "$pl")" "1|0|0" "$BACKEND: preferLocalBuild on the 'local'-only machine"
    assert_eq "$(build_row "$plain" | cut -d'|' -f1,2)" "1|9" "$BACKEND: a plain step is not for it"

    printf 'local %s - 2 1\n' "$SYSTEM" >"$T/machines2-$BACKEND"
    again=$("$SLUICE" submit "$LNIX" --argstr salt "$SALT-2" -A preferLocal) || fail "$BACKEND: submit 2"
    sl run --once --machines "$T/machines2-$BACKEND" --max-unsupported-time 1
    assert_eq "$(build_row "$again")" "1|0|0" "$BACKEND: preferLocalBuild on a machine without 'local'"
}

for_backends body
echo "hydra local: ok"
