#!/usr/bin/env bash
# The runner publishes what it builds (store-uri, upload-logs-to-binary-cache) on SQLite
# and PostgreSQL, with real Nix as the judge of the cache: the CA jobs of
# tests/ca/nix/content-addressed.nix (CA on CA, CA on CA on CA, IA on CA, a three-output
# CA job on CA, self- and cross-referencing CA outputs) built by `sluice run --store-uri
# 'file://...?secret-key=...&write-nar-listing=1'`; then (a) `nix store verify` passes
# for every path with the key and fails for an input-addressed output with another key;
# (b) a clean Nix 2.8 store with require-sigs and --max-jobs 0 substitutes every job and
# every output, the CA ones through realisations, and gets the paths sluice recorded;
# (d) `nix log --store` shows each step's log as `sluice log` does.  A store-uri sluice
# cannot serve is refused at start, before any build is touched.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../ca/lib.sh"

FILE=$CA_NIX/content-addressed.nix
JOBS=(empty_dir succeed_with_failed caDependingOnCA caDependingOnCADependingOnCA
    nonCaDependingOnCA multiOutput caRewrite caRewriteMulti)
# what a client asks for: every output of every job
WANT=("${JOBS[@]}" multiOutput.bin multiOutput.lib caRewriteMulti.lib)
nix-store --generate-binary-cache-key k1 "$T/k1.sk" "$T/k1.pk"
nix-store --generate-binary-cache-key k2 "$T/k2.sk" "$T/k2.pk"

# substitute_all CACHE CLEAN FILE ATTR...: a clean store CLEAN (require-sigs, building
# off) substitutes each ATTR of FILE from file://CACHE and gets what the build recorded
substitute_all() {
    local cache=$1 clean=$2 file=$3 a got want
    shift 3
    for a in "$@"; do
        nix build --store "$clean" --substituters "file://$cache" \
            --trusted-public-keys "$(cat "$T/k1.pk")" --option require-sigs true --max-jobs 0 \
            -f "$file" --argstr salt "$SALT" "$a" --no-link --json >"$T/sub.json" \
            2>"$T/sub.log" || fail "$BACKEND: substituting $a: $(tail -5 "$T/sub.log")"
        got=$(jq -r '.[0].outputs | to_entries[] | "\(.key)=\(.value)"' "$T/sub.json")
        want=$(build_outputs "${ID[${a%%.*}]}" | grep -F "$(cut -d= -f1 <<<"$got")=")
        assert_eq "$got" "$want" "$BACKEND: $a substituted"
        [ -e "$clean${got#*=}" ] || fail "$BACKEND: ${got#*=} missing in the clean store"
    done
}

body() {
    local cache=$T/cache-$BACKEND url a id got want out path rid
    url="file://$cache?secret-key=$T/k1.sk&write-nar-listing=1"
    # sluice build refuses a cache it cannot serve before it queues anything
    sl build --store-uri "s3://bucket" "$FILE" --argstr salt "$SALT" -A empty_dir
    [ "$rc" -ne 0 ] || fail "$BACKEND: sluice build accepted s3://"
    grep -q "unsupported scheme 's3'" <<<"$err" || fail "$BACKEND: message: $err"
    assert_eq "$(q "SELECT count(*) FROM Builds")" 0 "$BACKEND: builds queued by a refused build"
    submit_jobs "$FILE" "${JOBS[@]}"

    # refused at start: nothing is built, nothing written
    sl run --once --store-uri "file://$cache?secret-key=$T/missing.sk"
    [ "$rc" -ne 0 ] || fail "$BACKEND: a missing key was accepted"
    grep -q "secret key" <<<"$err" || fail "$BACKEND: message: $err"
    assert_eq "$(q "SELECT count(*) FROM BuildSteps")" 0 "$BACKEND: steps after a refused start"
    [ ! -e "$cache" ] || fail "$BACKEND: the refused cache was created"

    run_once --store-uri "$url" --upload-logs-to-binary-cache
    assert_eq "$(q "SELECT count(*) FROM Builds WHERE finished = 1")" "${#JOBS[@]}" \
        "$BACKEND: finished builds"
    assert_eq "$(build_row "${ID[succeed_with_failed]}")" "1|6|0" "$BACKEND: succeed_with_failed"
    for a in "${JOBS[@]}"; do
        [ "$a" = succeed_with_failed ] && continue
        assert_eq "$(build_row "${ID[$a]}")" "1|0|0" "$BACKEND: build row of $a"
    done

    # (a) every path verifies with k1; an input-addressed output fails with k2
    nix store verify --store "file://$cache" --trusted-public-keys "$(cat "$T/k1.pk")" --all \
        >"$T/verify-$BACKEND.log" 2>&1 || fail "$BACKEND: verify: $(cat "$T/verify-$BACKEND.log")"
    out=$(build_outputs "${ID[nonCaDependingOnCA]}" | sed 's/^out=//')
    [ -n "$out" ] && [ -e "$cache/${out:11:32}.narinfo" ] || fail "$BACKEND: $out not in the cache"
    if nix store verify --store "file://$cache" --trusted-public-keys "$(cat "$T/k2.pk")" "$out" \
        >"$T/verify2-$BACKEND.log" 2>&1; then
        fail "$BACKEND: $out verified with another key"
    fi
    [ "$(ls "$cache"/realisations | wc -l)" -gt 0 ] || fail "$BACKEND: no realisations"
    [ "$(ls "$cache"/*.ls | wc -l)" = "$(ls "$cache"/*.narinfo | wc -l)" ] ||
        fail "$BACKEND: a listing is missing"

    # (b) a clean store substitutes every output of every job without building
    substitute_all "$cache" "$T/clean-$BACKEND" "$FILE" "${WANT[@]}"

    # realisations carry their dependents (caDependingOnCA's output refers to empty_dir's)
    jq -s -e 'map(.dependentRealisations | length) | add > 0' "$cache"/realisations/*.doi \
        >/dev/null || fail "$BACKEND: no realisation lists a dependent"
    # both forms of multiOutput are published (as queued, and resolved); without the
    # realisations of one of its outputs Nix cannot substitute it and, building off, fails
    rid=$("$SLUICE" drv outputs "${DRV[multiOutput]}" | awk '$1 == "bin" { print $3 }')
    [ -e "$cache/realisations/$rid.doi" ] || fail "$BACKEND: no realisation $rid"
    path=$(build_outputs "${ID[multiOutput]}" | sed -n 's/^bin=//p')
    assert_eq "$(grep -l "\"outPath\":\"${path##*/}\"" "$cache"/realisations/*.doi | wc -l)" 2 \
        "$BACKEND: realisations of multiOutput.bin (queued and resolved)"
    cp -a "$cache" "$T/partial-$BACKEND"
    grep -l "\"outPath\":\"${path##*/}\"" "$T/partial-$BACKEND"/realisations/*.doi | xargs rm
    if nix build --store "$T/clean2-$BACKEND" --substituters "file://$T/partial-$BACKEND" \
        --trusted-public-keys "$(cat "$T/k1.pk")" --option require-sigs true --max-jobs 0 \
        -f "$FILE" --argstr salt "$SALT" multiOutput.bin --no-link >"$T/sub2.log" 2>&1; then
        fail "$BACKEND: multiOutput substituted without one output's realisation"
    fi

    # (d) the logs
    for a in caDependingOnCA nonCaDependingOnCA; do
        id=${ID[$a]}
        path=$(build_outputs "$id" | head -1 | cut -d= -f2)
        [ -n "$path" ] || fail "$BACKEND: no output of $a"
        sl log "$id"
        got=$(nix log --store "file://$cache" "$path" 2>/dev/null) ||
            fail "$BACKEND: nix log of $a's output"
        grep -q "$(tail -1 "$T/sl.out")" <<<"$got" || fail "$BACKEND: log of $a: '$got' vs '$(cat "$T/sl.out")'"
    done
    [ -z "$(find "$cache" -name '.tmp-*')" ] || fail "$BACKEND: temporary files left"

    # the same jobs again, to another cache: cached builds publish what it lacks
    submit_jobs "$FILE" "${JOBS[@]}"
    run_once --store-uri "file://$T/cache2-$BACKEND?secret-key=$T/k1.sk"
    for a in "${JOBS[@]}"; do
        assert_eq "$(build_row "${ID[$a]}" | cut -d'|' -f1,3)" "1|1" "$BACKEND: $a again, cached"
    done
    substitute_all "$T/cache2-$BACKEND" "$T/clean3-$BACKEND" "$FILE" "${WANT[@]}"

    # early cutoff: the second chain resolves to the P' the first one built
    submit_jobs "$CA_NIX/early-cutoff.nix" upstream1 downstream1
    run_once --store-uri "$url"
    submit_jobs "$CA_NIX/early-cutoff.nix" upstream2 downstream2
    run_once --store-uri "$url"
    assert_eq "$(build_row "${ID[downstream2]}")" "1|0|1" "$BACKEND: downstream2 (cached)"
    substitute_all "$cache" "$T/clean4-$BACKEND" "$CA_NIX/early-cutoff.nix" upstream1 downstream1 \
        upstream2 downstream2
}

for_backends body
echo ok
