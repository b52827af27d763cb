#!/usr/bin/env bash
# An output over max-output-size fails its step with status 11 and is not left in the
# local store as a success for the next build of the same derivation, on SQLite and
# PostgreSQL: `big` (about 6 kB) built twice with --max-output-size 1000 on the local
# machine fails twice with status 11 (not a cached success the second time), and its
# output is not valid in the store afterwards.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"

body() {
    local a b out
    a=$(submit -A big)
    sl run --once --max-output-size 1000
    assert_eq "$rc" 0 "$BACKEND: first run --once ($err)"
    assert_eq "$(build_row "$a")" "1|11|0" "$BACKEND: first build of big"
    out=$(nix-store -q --outputs "$(drv_of "$a")")
    if nix-store -q --hash "$out" >/dev/null 2>&1; then
        fail "$BACKEND: the output over the limit is left valid in the store: $out"
    fi
    b=$(submit -A big)
    sl run --once --max-output-size 1000
    assert_eq "$rc" 0 "$BACKEND: second run --once ($err)"
    assert_eq "$(build_row "$b")" "1|11|0" "$BACKEND: second build of big (not a cached success)"
    assert_eq "$(step_rows "$b")" "1|0|big|0|11|0|" "$BACKEND: second build's step rows"
}

for_backends body
