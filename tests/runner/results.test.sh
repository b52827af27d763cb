#!/usr/bin/env bash
# Results of real builds on the local store, on SQLite and PostgreSQL (hydra-behaviour
# §2.2, §3.8, §3.9): an empty directory (0), a failing build (1), a success whose output
# has nix-support/failed (6), a cached build (with the same facts), a timeout (7), an unsupported system (9), the log limit
# (10) and the output size limit (11).  Asserts the exact Builds, BuildSteps,
# BuildStepOutputs and BuildOutputs rows (paths equal to what `nix-store -r` of the
# same drv gives, sizes equal to Nix's NAR sizes), releaseName, BuildProducts and
# BuildMetrics from nix-support, notificationPendingSince = stopTime, machine '' for the
# local store, FailedPaths written for the permanent failure only (never for 7, 9, 10,
# 11), the exit status of `sluice build`, and the logs of a success and of a failure
# read back with `sluice log`.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/lib.sh"
SYSTEM=$(nix-instantiate --eval -E builtins.currentSystem | tr -d '"')

id_of() { q "SELECT id FROM Builds WHERE job = '$1' ORDER BY id DESC LIMIT 1"; }
failed_paths() { q "SELECT count(*) FROM FailedPaths"; }

# a finished successful build: rows, paths, sizes, times
check_success() {
    local job=$1 want_status=$2 id out size closure row
    id=$(id_of "$job")
    assert_eq "$(build_row "$id")" "1|$want_status|0" "$BACKEND: $job: finished|status|cached"
    assert_eq "$(step_rows "$id")" "1|0|${3:-$job}|0|0|0|" "$BACKEND: $job: step rows"
    out=$(out_of "$id")
    assert_eq "$out" "$(nix_out_of "$id")" "$BACKEND: $job: BuildOutputs against nix-store -r"
    assert_eq "$(q "SELECT path FROM BuildStepOutputs WHERE build = $id AND stepnr = 1")" "$out" \
        "$BACKEND: $job: BuildStepOutputs"
    assert_eq "$(q "SELECT system FROM BuildSteps WHERE build = $id")" "$SYSTEM" "$BACKEND: $job: system"
    size=$(nix-store -q --size "$out")
    closure=0
    for p in $(nix-store -qR "$out"); do closure=$((closure + $(nix-store -q --size "$p"))); done
    assert_eq "$(q "SELECT size, closureSize FROM Builds WHERE id = $id")" "$size|$closure" \
        "$BACKEND: $job: size|closureSize"
    row=$(q "SELECT $(is 'startTime > 0'), $(is 'stopTime >= startTime'),
                    $(is 'notificationPendingSince = stopTime'), $(is "stopTime >= $T0")
             FROM Builds WHERE id = $id")
    assert_eq "$row" "1|1|1|1" "$BACKEND: $job: build times"
    row=$(q "SELECT $(is 'startTime > 0'), $(is 'stopTime >= startTime'),
                    $(is "startTime >= (SELECT startTime FROM Builds WHERE id = $id) - 1")
             FROM BuildSteps WHERE build = $id")
    assert_eq "$row" "1|1|1" "$BACKEND: $job: step times"
    assert_eq "$(q "SELECT count(*) FROM FailedPaths WHERE path = '$out'")" 0 "$BACKEND: $job: FailedPaths"
}

# a failed build: one step row with the status, the build with the same status
check_failure() {
    local job=$1 status=$2 name=$3 id row
    id=$(id_of "$job")
    assert_eq "$(build_row "$id")" "1|$status|0" "$BACKEND: $job: finished|status|cached"
    assert_eq "$(step_rows "$id")" "1|0|$name|0|$status|0|" "$BACKEND: $job: step rows"
    row=$(q "SELECT coalesce(size, -1), coalesce(closureSize, -1),
                    $(is 'notificationPendingSince = stopTime'), $(is 'stopTime >= startTime')
             FROM Builds WHERE id = $id")
    assert_eq "$row" "-1|-1|1|1" "$BACKEND: $job: no sizes, times"
    [ -n "$(q "SELECT errorMsg FROM BuildSteps WHERE build = $id")" ] || fail "$BACKEND: $job: no errorMsg"
    assert_eq "$(q "SELECT count(*) FROM BuildOutputs WHERE build = $id AND path IS NOT NULL AND path <> ''")" \
        "$(nix-store -q --outputs "$(drv_of "$id")" | wc -l)" "$BACKEND: $job: BuildOutputs keep the static paths"
}

body() {
    T0=$(date +%s)
    sl build "$JOBS" --argstr salt "$SALT" --argstr dir "$DIR" \
        -A empty -A fail -A failedOutput -A products -A slow -k
    assert_eq "$rc" 101 "$BACKEND: sluice build with a failure and a timeout: exit status (as nix-build)"
    # output paths of the successes (0 and 6), like nix-build
    assert_eq "$out" "$(for j in empty failedOutput products; do out_of "$(id_of $j)"; echo; done)" \
        "$BACKEND: printed output paths"
    grep -q "error: build $(id_of fail) (failed): .*-broken.drv: failed" <<<"$err" || fail "$BACKEND: no failure report: $err"

    check_success empty 0
    [ -d "$(out_of "$(id_of empty)")" ] || fail "$BACKEND: empty: output is not a directory"
    assert_eq "$(ls -A "$(out_of "$(id_of empty)")")" "" "$BACKEND: empty: directory is empty"
    check_success failedOutput 6 failed-output
    check_success products 0

    # releaseName, products and metrics of nix-support
    local id pout prod
    id=$(id_of products)
    prod=$id
    pout=$(out_of "$id")
    assert_eq "$(q "SELECT releaseName FROM Builds WHERE id = $id")" products-1.0 "$BACKEND: releaseName"
    assert_eq "$(q "SELECT productnr, type, subtype, fileSize, sha256hash, path, name, coalesce(defaultPath, '')
                    FROM BuildProducts WHERE build = $id")" \
        "1|doc|manual|$(stat -c %s "$pout/manual.txt")|$(sha256sum "$pout/manual.txt" | cut -d' ' -f1)|$pout/manual.txt|manual.txt|" \
        "$BACKEND: BuildProducts"
    assert_eq "$(q "SELECT name, coalesce(unit, ''), CAST(value * 10 AS INTEGER), project, jobset, job,
                    $(is "timestamp = (SELECT timestamp FROM Builds WHERE id = $id)")
             FROM BuildMetrics WHERE build = $id ORDER BY name")" \
        "$(printf 'size||70|sluice|default|products|1\nspeed|s|425|sluice|default|products|1')" \
        "$BACKEND: BuildMetrics"

    # 1: a permanent failure; its output goes to FailedPaths
    check_failure fail 1 broken
    id=$(id_of fail)
    assert_eq "$(q "SELECT path FROM FailedPaths")" "$(nix-store -q --outputs "$(drv_of "$id")")" \
        "$BACKEND: FailedPaths holds the failed output"
    # 7: meta.timeout = 1 on a 30 s build
    check_failure slow 7 slow
    grep -qi "timed out\|timeout" <<<"$(q "SELECT errorMsg FROM BuildSteps WHERE build = $(id_of slow)")" ||
        fail "$BACKEND: slow: errorMsg does not say timeout"

    # 10: log limit; 11: output size limit; 9: no machine has the system
    # (and products queued again: cached, with the same nix-support facts)
    local cached
    cached=$(submit -A chatty -A big -A alien -A products | tail -1)
    sl run --once --max-log-size 2000 --max-output-size 1000 --max-unsupported-time 0
    assert_eq "$rc" 0 "$BACKEND: run --once: exit status"
    assert_eq "$(build_row "$cached")" "1|0|1" "$BACKEND: products queued again is cached"
    assert_eq "$(step_rows "$cached")" "" "$BACKEND: no step for the cached products"
    assert_eq "$(q "SELECT releaseName, size, closureSize FROM Builds WHERE id = $cached")" \
        "$(q "SELECT releaseName, size, closureSize FROM Builds WHERE id = $prod")" "$BACKEND: cached products facts"
    assert_eq "$(q "SELECT productnr, type, subtype, fileSize, sha256hash, path FROM BuildProducts WHERE build = $cached")" \
        "$(q "SELECT productnr, type, subtype, fileSize, sha256hash, path FROM BuildProducts WHERE build = $prod")" \
        "$BACKEND: cached products BuildProducts"
    assert_eq "$(q "SELECT name, CAST(value * 10 AS INTEGER) FROM BuildMetrics WHERE build = $cached ORDER BY name")" \
        "$(q "SELECT name, CAST(value * 10 AS INTEGER) FROM BuildMetrics WHERE build = $prod ORDER BY name")" \
        "$BACKEND: cached products BuildMetrics"
    check_failure chatty 10 chatty
    check_failure big 11 big
    id=$(id_of alien)
    assert_eq "$(build_row "$id")" "1|9|0" "$BACKEND: alien: finished|status|cached"
    assert_eq "$(step_rows "$id")" "1|0|alien|0|9|0|" "$BACKEND: alien: step rows"
    grep -q "unsupported system type 'riscv-alien'" <<<"$(q "SELECT errorMsg FROM BuildSteps WHERE build = $id")" ||
        fail "$BACKEND: alien: errorMsg"
    assert_eq "$(failed_paths)" 1 "$BACKEND: FailedPaths only for the permanent failure"
    assert_eq "$(busy_rows)" 0 "$BACKEND: busy rows"

    # logs, read back with `sluice log BUILD` and `sluice log BUILD STEP`
    sl log "$(id_of empty)"
    assert_eq "$rc" 0 "$BACKEND: log of a success: exit status"
    grep -qx "empty $SALT: building an empty directory" <<<"$out" || fail "$BACKEND: log of empty: $out"
    sl log "$(id_of fail)" 1
    assert_eq "$rc" 0 "$BACKEND: log of a failure: exit status"
    grep -qx "broken $SALT: about to fail" <<<"$out" || fail "$BACKEND: log of fail: $out"
    local drv base
    drv=$(drv_of "$(id_of empty)")
    base=${drv#/nix/store/}
    [ -s "$SLUICE_STATE_DIR/build-logs/${base:0:2}/${base:2}.zst" ] || fail "$BACKEND: no log file for $base"
    assert_eq "$(zstd -dc "$SLUICE_STATE_DIR/build-logs/${base:0:2}/${base:2}.zst")" \
        "empty $SALT: building an empty directory" "$BACKEND: log file content"
    sl log "$(id_of chatty)"
    [ "${#out}" -le 3000 ] || fail "$BACKEND: chatty log is ${#out} bytes, limit 2000"
}

for_backends body
