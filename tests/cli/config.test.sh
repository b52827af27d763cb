#!/usr/bin/env bash
# Configuration with nix.conf's semantics: a trailing comment is not part of a value,
# include/!include, an unknown key is a warning naming the nearest known key, a bad
# number or Boolean is an error that stops every command (`run` included, before it
# touches anything), `sluice config` names each value's origin and masks secrets, and
# the system-wide SLUICE_CONF_DIR/sluice.conf is read under STATE_DIR/sluice.conf.
source "$(dirname "$0")/../harness/env.sh"

run() {
    rc=0
    "$SLUICE" "$@" >"$T/out" 2>"$T/err" || rc=$?
    out=$(cat "$T/out")
    err=$(cat "$T/err")
}
conf() { printf '%s\n' "$out" | sed -n "s/^$1 = \(.*[^ ]\) *# .*/\1/p"; }
origin() { printf '%s\n' "$out" | sed -n "s/^$1 = .*# \(.*\)/\1/p"; }
expect_rc() { [ "$rc" -eq "$1" ] || fail "$2: exit $rc, expected $1; stderr: $err"; }
expect_err() { grep -qF -- "$1" <<<"$err" || fail "$2: stderr lacks '$1': $err"; }

unset SLUICE_DB SLUICE_CONFIG
mkdir -p "$SLUICE_STATE_DIR" "$SLUICE_CONF_DIR"

# --- a trailing comment (the documented token line) and include
cat >"$T/inc.conf" <<EOF2
max-retries = 7   # included
EOF2
cat >"$T/c.conf" <<EOF2
http-admin-token = 8c3f0123abcd   # openssl rand -hex 32
db = postgresql://hydra:s3cret@db.example/hydra # a password in the URL
include inc.conf
!include missing.conf
keep-going = true
EOF2
run config --config "$T/c.conf" --max-jobs 3
expect_rc 0 "config with comments"
[ -z "$err" ] || fail "warnings for a clean file: $err"
assert_eq "$(conf http-admin-token)" "***" "the token is masked"
grep -q 8c3f0123abcd "$T/out" && fail "token printed: $out"
grep -q s3cret "$T/out" && fail "database password printed: $out"
assert_eq "$(conf db)" "postgresql://hydra:***@db.example/hydra" "db password masked"
assert_eq "$(conf max-retries)" "7" "include with a trailing comment"
assert_eq "$(origin max-retries)" "file $T/inc.conf:1" "origin of an included key"
assert_eq "$(origin http-admin-token)" "file $T/c.conf:1" "origin of a file key"
assert_eq "$(origin max-jobs)" "flag --max-jobs" "origin of a flag"
assert_eq "$(origin timeout)" "default" "origin of a default"
assert_eq "$(conf timeout)" "36000" "default value shown"
assert_eq "$(conf keep-going)" "true" "a Boolean"
SLUICE_DB=sqlite:/env.db run config --config "$T/c.conf"
assert_eq "$(origin db)" "env SLUICE_DB" "origin of an environment variable"
assert_eq "$(conf db)" "sqlite:/env.db" "env beats the file"

# the token really is the value without the comment: the HTTP server accepts it
need_nix
port=$((20000 + RANDOM % 20000))
cat >"$T/tok.conf" <<EOF2
http-admin-token = tok123   # openssl rand -hex 32
http = 127.0.0.1:$port
EOF2
"$SLUICE" --config "$T/tok.conf" db init >/dev/null
"$SLUICE" --config "$T/tok.conf" run >"$T/run.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/status" >/dev/null && break; sleep 0.1; done
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer tok123' \
    "http://127.0.0.1:$port/build/999/bump")
kill -TERM $pid; wait $pid || true
assert_eq "$code" "404" "the token from a line with a trailing comment is accepted (404: no build)"

# --- unknown keys: a warning naming the nearest known key; the command still runs
printf 'max-job = 3\nhttp-admin-tokn = x\nfrobnicate = 1\n' >"$T/typo.conf"
run config --config "$T/typo.conf"
expect_rc 0 "unknown keys are warnings"
expect_err "warning: $T/typo.conf:1: unknown setting 'max-job'; did you mean 'max-jobs'?" "nearest key"
expect_err "unknown setting 'http-admin-tokn'; did you mean 'http-admin-token'?" "nearest key 2"
expect_err "$T/typo.conf:3: unknown setting 'frobnicate'" "unknown key without a near one"
grep -q "frobnicate'; did you mean" "$T/err" && fail "a far key got a suggestion: $err"

# --- a bad number or Boolean stops every command, `run` before it starts
for bad in 'max-jobs = many' 'timeout = 10s' 'retry-backoff = -2' 'keep-going = yes' \
    'keep-outputs-days = -5' 'log-level = loud'; do
    printf '# x\n%s\n' "$bad" >"$T/bad.conf"
    key=${bad%% *}
    SLUICE_STATE_DIR=$T/s-bad run run --once --config "$T/bad.conf"
    expect_rc 1 "run with '$bad'"
    expect_err "$T/bad.conf:2: $key:" "run with '$bad': names file, line and key"
    [ ! -e "$T/s-bad" ] || fail "run with '$bad' started"
done
run config --max-retries=lots
expect_rc 1 "a bad flag value"
expect_err "flag max-retries: 'lots' is not an integer" "a bad flag value"
SLUICE_LOG=debug run config
assert_eq "$(conf log-level)" "debug" "log-level from SLUICE_LOG"
assert_eq "$(origin log-level)" "env SLUICE_LOG" "log-level's origin"
SLUICE_LOG=9 run config
expect_rc 1 "a bad SLUICE_LOG"
expect_err "env SLUICE_LOG: '9' is not a log level" "a bad SLUICE_LOG"
SLUICE_STATE_DIR=$T/s2 run config --keep-going
assert_eq "$(conf keep-going)" "true" "--KEY sets a Boolean"
run config --no-keep-going
assert_eq "$(conf keep-going)" "false" "--no-KEY clears a Boolean"

# --- the system-wide file, then the state dir's file over it
printf 'max-retries = 2\ntimeout = 100\n' >"$SLUICE_CONF_DIR/sluice.conf"
printf 'timeout = 200\n' >"$SLUICE_STATE_DIR/sluice.conf"
run config
assert_eq "$(conf max-retries)" "2" "SLUICE_CONF_DIR/sluice.conf read"
assert_eq "$(origin max-retries)" "file $SLUICE_CONF_DIR/sluice.conf:1" "its origin"
assert_eq "$(conf timeout)" "200" "STATE_DIR/sluice.conf wins over the system file"
grep -qF "# read $SLUICE_CONF_DIR/sluice.conf" "$T/out" || fail "files read not listed: $out"
run config --config "$T/c.conf"
assert_eq "$(conf timeout)" "36000" "--config reads only that file"
echo "configuration checks passed"
