#!/usr/bin/env bash
# A dependency's upload survives the runner's death (SQLite and PostgreSQL): `usesBig`
# needs `big` at build time only, so publishing usesBig's closure does not publish big.
# The runner is killed (SIGKILL) while big's outputs are being uploaded, after big was
# built.  The restarted runner finds big built (no step), builds usesBig, and must
# still put big into the cache: the upload is recorded in sluice_uploads before it is
# handed to the upload pool and dropped only once the cache has it.  Real Nix judges
# the cache (substitution into a clean store, require-sigs, building off).
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../ca/lib.sh"

FILE=$ROOT/tests/cache/nix/faults.nix
nix-store --generate-binary-cache-key k1 "$T/k1.sk" "$T/k1.pk"

uploads() { q "SELECT count(*) FROM sluice_uploads"; }

body() {
    local cache=$T/cache-$BACKEND url out
    url="file://$cache?secret-key=$T/k1.sk&compression=xz"
    run_bg --store-uri "$url" -v
    submit_jobs "$FILE" usesBig
    wait_until 120 compgen -G "$cache/nar/.tmp-*" >/dev/null ||
        fail "$BACKEND: big's upload never began: $(tail -20 "$RUN_LOG")"
    kill -KILL "$RUN_PID"
    wait "$RUN_PID" 2>/dev/null || true
    RUN_PID=
    assert_eq "$(uploads)" 1 "$BACKEND: pending uploads after the kill"
    [ -z "$(ls "$cache"/*.narinfo 2>/dev/null)" ] || fail "$BACKEND: a narinfo before the upload ended"
    run_once --store-uri "$url"
    assert_eq "$(build_row "${ID[usesBig]}" | cut -d'|' -f1,2)" "1|0" "$BACKEND: usesBig after the restart"
    assert_eq "$(uploads)" 0 "$BACKEND: pending uploads after the restart"
    out=$(nix-store -q --outputs "$(nix-instantiate "$FILE" --argstr salt "$SALT" -A big 2>/dev/null)")
    [ -e "$cache/${out:11:32}.narinfo" ] || fail "$BACKEND: big ($out, a build-time dependency) is not in the cache"
    out=$(build_outputs "${ID[usesBig]}" | sed 's/^out=//')
    [ -e "$cache/${out:11:32}.narinfo" ] || fail "$BACKEND: usesBig is not in the cache"
    assert_eq "$(find "$cache/nar" -type f | wc -l)" \
        "$(find "$cache" -maxdepth 1 -name '*.narinfo' | wc -l)" "$BACKEND: NARs and narinfos"
    for a in big usesBig; do
        nix build --store "$T/clean-$BACKEND" --substituters "file://$cache" \
            --trusted-public-keys "$(cat "$T/k1.pk")" --option require-sigs true --max-jobs 0 \
            -f "$FILE" --argstr salt "$SALT" "$a" --no-link >"$T/sub.log" 2>&1 ||
            fail "$BACKEND: substituting $a: $(tail -3 "$T/sub.log")"
    done
}

for_backends body
echo ok
