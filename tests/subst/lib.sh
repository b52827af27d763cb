# shellcheck shell=bash
# tests/subst/lib.sh: shared by the substitution tests (sourced after harness/env.sh and
# ca/lib.sh).  The binary cache is made by real Nix in the oracle's separate store.
#
#   drv_of ATTR            the drv path of ATTR of $FILE (with $SALT)
#   out ATTR               its output path (input-addressed: known before building)
#   cache_put KEY ATTR...  build ATTRs in the oracle store and `nix copy` their outputs
#                          (with their closures) to file://$CACHE signed with $T/KEY.sk
#   with_cache CMD...      CMD with the local store's substituters = file://$CACHE,
#                          trusted-public-keys = k1's
#   pass_counts            "LEVELS QUESTIONS" of the first queue pass that read builds
#                          in $RUN_LOG (sluice run -v)
FILE=$ROOT/tests/subst/nix/graph.nix
nix-store --generate-binary-cache-key k1 "$T/k1.sk" "$T/k1.pk"
nix-store --generate-binary-cache-key k2 "$T/k2.sk" "$T/k2.pk"

drv_of() { oracle_instantiate "$FILE" "$1"; }
out() { nix-store -q --outputs "$(drv_of "$1")"; }

cache_put() {
    local key=$1 a drvs=() outs=()
    shift
    for a in "$@"; do
        drvs+=("$(drv_of "$a")")
        outs+=("$(out "$a")")
    done
    oracle nix-store -r "${drvs[@]}" >/dev/null 2>>"$T/oracle-$BACKEND.log" ||
        fail "$BACKEND: oracle build of $*"
    oracle nix copy --to "file://$CACHE?secret-key=$T/$key.sk&compression=none" "${outs[@]}" \
        2>>"$T/oracle-$BACKEND.log" || fail "$BACKEND: nix copy of $*"
}

with_cache() {
    NIX_CONFIG="$NIX_CONFIG
substituters = file://$CACHE
trusted-public-keys = $(cat "$T/k1.pk")" "$@"
}

pass_counts() {
    sed -nE 's/.*queue pass: [1-9][0-9]* builds read in [0-9]+ ms, ([0-9]+) levels walked, ([0-9]+) substitution questions.*/\1 \2/p' \
        "$RUN_LOG" | head -1
}
