#!/usr/bin/env bash
# Binary-cache faults on SQLite and PostgreSQL (tests/cache/nix/faults.nix):
#   - an HTTP cache (nginx, tests/harness/nginx.sh) answering 500 for a while: the step
#     fails retryably with the cache's error in errorMsg, `sluice status` and /metrics
#     count the failed uploads, nothing is half-published (every narinfo's NAR is
#     there), and the build finishes once the cache works again;
#   - the cache directory on a tiny full filesystem: the same, with "No space left", and
#     a build found already built waits (queued) until its outputs could be published;
#   - the runner killed (SIGKILL) in the middle of a large upload: no narinfo of the
#     path appears, and a restarted runner finishes the upload, removes the dead
#     upload's spool file and publishes the NAR once.
# Real Nix judges the caches at the end (nix store verify, substitution into a clean
# store with require-sigs and --max-jobs 0).
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../ca/lib.sh"
command -v nginx >/dev/null || skip "nginx not installed"
command -v curl >/dev/null || skip "curl not installed"

FILE=$ROOT/tests/cache/nix/faults.nix
nix-store --generate-binary-cache-key k1 "$T/k1.sk" "$T/k1.pk"
eval "$(bash "$ROOT/tests/harness/nginx.sh" start "$T/nginx")"
MOUNTS=()
faults_cleanup() {
    local m
    bash "$ROOT/tests/harness/nginx.sh" stop "$T/nginx"
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done
}
faults_prev_trap=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//; s/'\\\\''/'/g")
# shellcheck disable=SC2064
trap "faults_rc=\$?; faults_cleanup; (exit \$faults_rc); $faults_prev_trap" EXIT

RETRY=(--retry-interval 1 --retry-backoff 1 --max-retries 1000)

# consistent DIR: every narinfo names a NAR that is there, no spool file is left
consistent() {
    local f nar
    for f in "$1"/*.narinfo; do
        [ -e "$f" ] || continue
        nar=$(sed -n 's/^URL: //p' "$f")
        [ -s "$1/$nar" ] || fail "$BACKEND: $f names $nar, which is missing"
    done
    [ -z "$(find "$1" -name '.tmp-*' 2>/dev/null)" ] || fail "$BACKEND: spool files left in $1"
}

# substitute URL ATTR...: a clean store gets ATTR's outputs from URL without building
substitute() {
    local url=$1 a clean=$T/clean-$BACKEND-$RANDOM
    shift
    for a in "$@"; do
        nix build --store "$clean" --substituters "$url" --trusted-public-keys "$(cat "$T/k1.pk")" \
            --option require-sigs true --max-jobs 0 -f "$FILE" --argstr salt "$SALT" "$a" \
            --no-link >"$T/sub.log" 2>&1 || fail "$BACKEND: substituting $a: $(tail -3 "$T/sub.log")"
    done
}

# wait_error PATTERN: a step of the current builds failed with PATTERN in errorMsg
step_error_like() {
    [ "$(q "SELECT count(*) FROM BuildSteps WHERE status = 3 AND errorMsg LIKE '%$1%'")" -gt 0 ]
}

build_is() { [ "$(build_row "$1")" = "$2" ]; }

status_shows_failures() {
    "$SLUICE" status >"$T/status.out" 2>&1 || true
    grep -q "^binary cache:    $NGINX_URL/$BACKEND?.* [1-9][0-9]* failed uploads" "$T/status.out"
}

body() {
    local url port metrics full id i

    # ---- HTTP 500 for a while
    url="$NGINX_URL/$BACKEND?secret-key=$T/k1.sk"
    touch "$NGINX_DIR/fail"
    port=$((20000 + RANDOM % 20000))
    run_bg --store-uri "$url" "${RETRY[@]}" --http "$port"
    submit_jobs "$FILE" onSmall
    wait_until 60 step_error_like "HTTP status 500" || fail "$BACKEND: no step failed on HTTP 500"
    assert_eq "$(build_row "${ID[onSmall]}")" "0||" "$BACKEND: build finished while the cache fails"
    wait_until 10 status_shows_failures ||
        fail "$BACKEND: sluice status: $(cat "$T/status.out")"
    metrics=$(curl -s "http://127.0.0.1:$port/metrics")
    grep -Eq '^sluice_cache_failures_total [1-9]' <<<"$metrics" ||
        fail "$BACKEND: metrics: $(grep sluice_cache <<<"$metrics")"
    consistent "$NGINX_DIR/root/$BACKEND"
    rm "$NGINX_DIR/fail"
    wait_until 60 build_is "${ID[onSmall]}" "1|0|0" ||
        fail "$BACKEND: build not finished after the cache came back: $(build_row "${ID[onSmall]}")"
    run_stop
    consistent "$NGINX_DIR/root/$BACKEND"
    substitute "$NGINX_URL/$BACKEND" onSmall small

    # ---- a full filesystem
    full=$T/full-$BACKEND
    mkdir -p "$full"
    mount -t tmpfs -o size=1m tmpfs "$full"
    MOUNTS+=("$full")
    dd if=/dev/zero of="$full/filler" bs=4k count=1000 status=none 2>/dev/null || true
    run_bg --store-uri "file://$full/cache?secret-key=$T/k1.sk&compression=none" "${RETRY[@]}"
    # lone is built (its step fails); small was built above (its build is found built
    # at ingest and stays queued)
    submit_jobs "$FILE" lone small
    wait_until 60 step_error_like "No space left" || fail "$BACKEND: no step failed on a full disk"
    wait_until 10 grep -q "queue pass: builds found built could not be published" "$RUN_LOG" ||
        fail "$BACKEND: the cached build's failed upload is not reported"
    assert_eq "$(build_row "${ID[lone]}")" "0||" "$BACKEND: lone finished on a full disk"
    assert_eq "$(build_row "${ID[small]}")" "0||" "$BACKEND: small finished on a full disk"
    consistent "$full/cache"
    rm "$full/filler"
    wait_until 60 build_is "${ID[lone]}" "1|0|0" ||
        fail "$BACKEND: lone not finished after space came back"
    wait_until 60 build_is "${ID[small]}" "1|0|1" ||
        fail "$BACKEND: small not finished after space came back"
    run_stop
    consistent "$full/cache"
    nix store verify --store "file://$full/cache" --trusted-public-keys "$(cat "$T/k1.pk")" --all \
        >"$T/verify.log" 2>&1 || fail "$BACKEND: verify: $(cat "$T/verify.log")"

    # ---- killed mid-upload, restarted
    url="file://$T/kill-$BACKEND?secret-key=$T/k1.sk&compression=xz"
    run_bg --store-uri "$url"
    submit_jobs "$FILE" big
    wait_until 120 compgen -G "$T/kill-$BACKEND/nar/.tmp-*" >/dev/null ||
        fail "$BACKEND: no upload seen"
    kill -KILL "$RUN_PID"
    wait "$RUN_PID" 2>/dev/null || true
    RUN_PID=
    [ -z "$(ls "$T/kill-$BACKEND"/*.narinfo 2>/dev/null)" ] ||
        fail "$BACKEND: a narinfo appeared before its upload ended"
    compgen -G "$T/kill-$BACKEND/nar/.tmp-*" >/dev/null || fail "$BACKEND: the spool file is gone"
    assert_eq "$(build_row "${ID[big]}")" "0||" "$BACKEND: big finished while its upload was killed"
    run_once --store-uri "$url"
    # built before the kill: found built, published, finished as cached
    assert_eq "$(build_row "${ID[big]}")" "1|0|1" "$BACKEND: big after the restart"
    consistent "$T/kill-$BACKEND"
    assert_eq "$(ls "$T/kill-$BACKEND"/nar | wc -l)" 1 "$BACKEND: NARs of big"
    assert_eq "$(stat -c %a "$T/kill-$BACKEND"/*.narinfo "$T/kill-$BACKEND"/nar/* | sort -u)" 644 \
        "$BACKEND: modes of the cache's files"
    substitute "file://$T/kill-$BACKEND" big
}

for_backends body
echo ok
