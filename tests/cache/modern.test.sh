#!/usr/bin/env bash
# Newer Nix releases read what sluice publishes (SQLite and PostgreSQL): the CA jobs of
# tests/ca/nix/content-addressed.nix (and an input-addressed one on them) built by
# `sluice run --store-uri 'file://...?secret-key=...'` (xz, Nix's default), and the same
# outputs published with zstd by `sluice cache publish`; then Nix 2.26 (Debian 13) and
# Nix 2.3x (Debian unstable), from the trees of tests/harness/nixtree.sh, copy every
# output of every job out of each cache into a private store with signature checks
# (require-sigs, the cache's public key), and refuse an input-addressed output when they
# trust another key.  A content-addressed output that refers to itself is the exception:
# the newer releases hash its self-references otherwise than Nix 2.8, the local store,
# which recorded its CA field, so they refuse it ("ca hash mismatch") just as they refuse
# it from a cache Nix 2.8's own `nix copy --to file://` wrote; for those paths the test
# asserts that sluice's caches get the same answer as Nix 2.8's own cache.  SKIPPED when
# a tree is absent.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../ca/lib.sh"

SUITES=(trixie sid)
for s in "${SUITES[@]}"; do
    d=$(bash "$ROOT/tests/harness/nixtree.sh" dir "$s")
    [ -f "$d/.sluice-tree" ] || skip "no Nix tree $d (tests/harness/nixtree.sh ensure $s)"
done

FILE=$CA_NIX/content-addressed.nix
JOBS=(caDependingOnCA caDependingOnCADependingOnCA nonCaDependingOnCA multiOutput caRewriteMulti)
nix-store --generate-binary-cache-key k1 "$T/k1.sk" "$T/k1.pk"
nix-store --generate-binary-cache-key k2 "$T/k2.sk" "$T/k2.pk"

# in_tree SUITE CMD...: CMD with the Nix of SUITE (chrooted; $T is reachable: /tmp)
in_tree() {
    local s=$1
    shift
    mkdir -p "$T/home-$s"
    bash "$ROOT/tests/harness/nixtree.sh" run "$s" env HOME="$T/home-$s" \
        XDG_CACHE_HOME="$T/home-$s/.cache" NIX_CONFIG= "$@"
}

# copy_from SUITE URL KEYFILE DEST PATH...: `nix copy` with signature checks
copy_from() {
    local s=$1 url=$2 key=$3 dest=$4
    shift 4
    in_tree "$s" nix --extra-experimental-features 'nix-command ca-derivations' copy \
        --option require-sigs true --option trusted-public-keys "$(cat "$key")" \
        --option substituters '' --from "$url" --to "$dest" "$@"
}

# self_ca CACHE PATH: PATH is content-addressed and refers to itself (its narinfo says so)
self_ca() {
    local n=$1/${2:11:32}.narinfo
    grep -q '^CA: ' "$n" && sed -n 's/^References: //p' "$n" | tr ' ' '\n' | grep -qx "${2#/nix/store/}"
}

# copies SUITE URL KEYFILE DEST PATH: 0 when the Nix of SUITE copies PATH, 1 when not
copies() { copy_from "$@" >"$T/one.log" 2>&1 && echo 0 || echo 1; }

body() {
    local cache=$T/cache-$BACKEND zst=$T/zst-$BACKEND ids all=() paths=() selfref=() s url dest p ia
    submit_jobs "$FILE" "${JOBS[@]}"
    run_once --store-uri "file://$cache?secret-key=$T/k1.sk"
    ids=$(printf '%s,' "${ID[@]}")
    mapfile -t all < <(q "SELECT DISTINCT path FROM BuildOutputs WHERE build IN (${ids%,})")
    [ "${#all[@]}" -ge 7 ] || fail "$BACKEND: outputs: ${all[*]}"
    for p in "${all[@]}"; do
        if self_ca "$cache" "$p"; then selfref+=("$p"); else paths+=("$p"); fi
    done
    [ "${#selfref[@]}" -gt 0 ] || fail "$BACKEND: no self-referencing CA output among ${all[*]}"
    "$SLUICE" cache publish --store-uri "file://$zst?secret-key=$T/k1.sk&compression=zstd" \
        "${all[@]}" >"$T/publish.log" 2>&1 || fail "$BACKEND: cache publish: $(cat "$T/publish.log")"
    grep -q '^Compression: zstd' "$zst"/*.narinfo || fail "$BACKEND: no zstd narinfo"
    # Nix 2.8's own cache of the self-referencing outputs, signed with the same key
    nix copy --to "file://$T/nix28-$BACKEND?secret-key=$T/k1.sk" "${selfref[@]}" \
        >"$T/nix28.log" 2>&1 || fail "$BACKEND: nix copy --to: $(tail -3 "$T/nix28.log")"
    ia=$(build_outputs "${ID[nonCaDependingOnCA]}" | sed -n 's/^out=//p')
    for s in "${SUITES[@]}"; do
        for url in "file://$cache" "file://$zst"; do
            dest=$T/dest-$s-$BACKEND-${url##*/}
            copy_from "$s" "$url" "$T/k1.pk" "$dest" "${paths[@]}" >"$T/copy.log" 2>&1 ||
                fail "$BACKEND: Nix $(bash "$ROOT/tests/harness/nixtree.sh" version "$s") copying from $url: $(tail -5 "$T/copy.log")"
            # the private store holds what sluice built, byte for byte
            for p in "${paths[@]}"; do
                [ -e "$dest$p" ] || fail "$BACKEND: $p not copied by the Nix of $s from $url"
                assert_eq "$(nix-store --dump "$dest$p" | sha256sum)" \
                    "$(nix-store --dump "$p" | sha256sum)" "$BACKEND: $p copied by the Nix of $s from $url"
            done
            for p in "${selfref[@]}"; do
                assert_eq "$(copies "$s" "$url" "$T/k1.pk" "$dest-self" "$p")" \
                    "$(copies "$s" "file://$T/nix28-$BACKEND" "$T/k1.pk" "$dest-self28" "$p")" \
                    "$BACKEND: the Nix of $s copying $p from $url and from Nix 2.8's own cache"
            done
        done
        # another key: the input-addressed output is refused
        if copy_from "$s" "file://$cache" "$T/k2.pk" "$T/refuse-$s-$BACKEND" "$ia" >"$T/refuse.log" 2>&1; then
            fail "$BACKEND: the Nix of $s copied $ia trusting another key"
        fi
        grep -qi "signature" "$T/refuse.log" || fail "$BACKEND: refusal of $s: $(tail -3 "$T/refuse.log")"
    done
}

for_backends body
echo ok
