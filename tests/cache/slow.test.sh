#!/usr/bin/env bash
# A slow binary cache delays no other step (SQLite and PostgreSQL): nginx answering one
# request a second (tests/harness/nginx.sh, NGINX_RATE) as the store-uri of a runner with
# one local slot, two independent jobs.  The second step starts while the first one's
# outputs are still being uploaded (the slot is given back once the build is done; the
# upload runs on the upload pool), and each build finishes only after its outputs are in
# the cache (its narinfo is there and real Nix substitutes it, require-sigs, building off).
# Meanwhile /metrics (sluice_cache_uploads_active) and `sluice status` count the upload
# in progress.  Then the runner is stopped (SIGTERM) while uploads are running and
# waiting: it exits cleanly, and a restarted runner finishes every build with every
# path published once (one NAR per narinfo, none left over).
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/../ca/lib.sh"
command -v nginx >/dev/null || skip "nginx not installed"
command -v curl >/dev/null || skip "curl not installed"

FILE=$ROOT/tests/cache/nix/faults.nix
nix-store --generate-binary-cache-key k1 "$T/k1.sk" "$T/k1.pk"
eval "$(NGINX_RATE=1r/s bash "$ROOT/tests/harness/nginx.sh" start "$T/nginx")"
slow_prev_trap=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//; s/'\\\\''/'/g")
# shellcheck disable=SC2064
trap "slow_rc=\$?; bash '$ROOT/tests/harness/nginx.sh' stop '$T/nginx'; (exit \$slow_rc); $slow_prev_trap" EXIT

both_finished() {
    [ "$(q "SELECT count(*) FROM Builds WHERE finished = 1 AND buildStatus = 0
            AND id IN (${ID[small]}, ${ID[lone]})")" = 2 ]
}

# line N of the runner's log matching PATTERN (fails when there is none)
line_of() {
    local n
    n=$(grep -n -m1 -E "$1" "$RUN_LOG" | cut -d: -f1)
    [ -n "$n" ] || fail "$BACKEND: no line '$1' in the runner's log: $(tail -20 "$RUN_LOG")"
    echo "$n"
}

uploading() { curl -s "http://127.0.0.1:$1/metrics" | grep -Eq '^sluice_cache_uploads_active [1-9]'; }
status_uploading() {
    "$SLUICE" status >"$T/status.out" 2>&1 || true
    grep -Eq "^binary cache: .* [1-9][0-9]* uploading, [0-9]+ waiting" "$T/status.out"
}

body() {
    local url first second f s out port
    url="$NGINX_URL/$BACKEND?secret-key=$T/k1.sk"
    port=$((20000 + RANDOM % 20000))
    run_bg --max-jobs 1 --store-uri "$url" -v --http "$port"
    submit_jobs "$FILE" small lone
    wait_until 60 uploading "$port" ||
        fail "$BACKEND: no upload in progress in /metrics: $(curl -s "http://127.0.0.1:$port/metrics" | grep sluice_cache_uploads)"
    wait_until 30 status_uploading || fail "$BACKEND: sluice status: $(cat "$T/status.out")"
    wait_until 120 both_finished || fail "$BACKEND: builds not finished: $(tail -20 "$RUN_LOG")"
    run_stop
    # which step ran first, and when each began and ended
    first=$(grep -m1 -oE 'step [0-9]+: (small|lone) started' "$RUN_LOG" |
        sed -E 's/.*: (small|lone) started/\1/' || true)
    [ -n "$first" ] || fail "$BACKEND: no step started: $(cat "$RUN_LOG")"
    if [ "$first" = small ]; then second=lone; else second=small; fi
    f=$(line_of "build ${ID[$first]} finished")
    s=$(line_of "step [0-9]+: $second started on")
    [ "$s" -lt "$f" ] ||
        fail "$BACKEND: $second started (log line $s) only after $first was published and finished (line $f)"
    grep -q -- "-$first.drv: built; machine slot freed" "$RUN_LOG" || fail "$BACKEND: no upload handed over"
    for a in small lone; do
        out=$(build_outputs "${ID[$a]}" | sed 's/^out=//')
        [ -e "$NGINX_DIR/root/$BACKEND/${out:11:32}.narinfo" ] ||
            fail "$BACKEND: $a finished, its narinfo is not in the cache"
        nix build --store "$T/clean-$BACKEND" --substituters "$NGINX_URL/$BACKEND" \
            --trusted-public-keys "$(cat "$T/k1.pk")" --option require-sigs true --max-jobs 0 \
            -f "$FILE" --argstr salt "$SALT" "$a" --no-link >"$T/sub.log" 2>&1 ||
            fail "$BACKEND: substituting $a: $(tail -3 "$T/sub.log")"
    done

    # stopped during uploads, restarted
    SALT=$SALT-restart
    run_bg --max-jobs 1 --store-uri "$url" -v
    submit_jobs "$FILE" small lone onSmall
    wait_until 60 grep -q "machine slot freed" "$RUN_LOG" || fail "$BACKEND: no upload began"
    run_stop
    run_once --max-jobs 1 --store-uri "$url"
    for a in small lone onSmall; do
        assert_eq "$(build_row "${ID[$a]}" | cut -d'|' -f1,2)" "1|0" "$BACKEND: $a after the restart"
        out=$(build_outputs "${ID[$a]}" | sed 's/^out=//')
        [ -e "$NGINX_DIR/root/$BACKEND/${out:11:32}.narinfo" ] ||
            fail "$BACKEND: $a finished, its narinfo is not in the cache"
    done
    assert_eq "$(find "$NGINX_DIR/root/$BACKEND/nar" -type f | wc -l)" \
        "$(find "$NGINX_DIR/root/$BACKEND" -maxdepth 1 -name '*.narinfo' | wc -l)" \
        "$BACKEND: NARs and narinfos in the cache"
}

for_backends body
echo ok
