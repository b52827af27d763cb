#!/usr/bin/env bash
# The `sluice` command line: usage and exit codes, global flags before and after the
# subcommand (both `--key value` and `--key=value`), the config file, the environment,
# and their precedence (defaults < config file < environment < flags).  The effective
# configuration is observed with `sluice config`.
source "$(dirname "$0")/../harness/env.sh"

# run ARGS...: sets $out, $err and $rc (never aborts the test)
run() {
    rc=0
    "$SLUICE" "$@" >"$T/out" 2>"$T/err" || rc=$?
    out=$(cat "$T/out")
    err=$(cat "$T/err")
}
# conf KEY: the value of KEY in the last `sluice config` output
conf() { printf '%s\n' "$out" | sed -n "s/^$1 = \(.*[^ ]\) *# .*/\1/p"; }
expect_rc() { [ "$rc" -eq "$1" ] || fail "$2: exit $rc, expected $1; stderr: $err"; }
expect_err() { grep -qF -- "$1" <<<"$err" || fail "$2: stderr lacks '$1': $err"; }

unset SLUICE_STATE_DIR SLUICE_DB SLUICE_CONFIG XDG_STATE_HOME STATE_DIRECTORY
export HOME=$T/home
mkdir -p "$HOME"

# --- usage and exit codes
run --help
expect_rc 0 "--help"
grep -q '^usage: sluice' <<<"$out" || fail "--help prints no usage: $out"
grep -q 'drv graph' <<<"$out" || fail "--help lists no 'drv graph'"
grep -q -- '--state-dir DIR' <<<"$out" || fail "--help lists no --state-dir"
run
expect_rc 2 "no arguments"
expect_err "usage: sluice" "no arguments"
run frobnicate
expect_rc 2 "unknown command"
expect_err "unknown command 'frobnicate'" "unknown command"
[ -z "$out" ] || fail "unknown command printed on stdout: $out"
run frobnicate --db sqlite:/x
expect_rc 2 "unknown command with a flag after it"
expect_err "unknown command 'frobnicate'" "unknown command with a flag"
run --state-dir "$T/s" frobnicate
expect_rc 2 "unknown command after a flag"
expect_err "unknown command 'frobnicate'" "unknown command after a flag"
run drv
expect_rc 2 "group without subcommand"
expect_err "'drv' needs a subcommand" "group without subcommand"
run drv frobnicate
expect_rc 2 "unknown subcommand of a group"
run --no-such-flag config
expect_rc 2 "unknown global flag"
expect_err "unknown flag '--no-such-flag'" "unknown global flag"
run config --db
expect_rc 2 "flag without value"
expect_err "flag --db needs a value" "flag without value"
run config extra-arg
expect_rc 2 "config with an argument"
run drv graph --help
expect_rc 0 "subcommand --help"
grep -q '^usage: sluice drv graph' <<<"$out" || fail "drv graph --help: $out"

# --- defaults
run config
expect_rc 0 "config"
assert_eq "$(conf state-dir)" "$HOME/.local/state/sluice" "default state dir"
assert_eq "$(conf db)" "sqlite:$HOME/.local/state/sluice/sluice.db" "default db"
assert_eq "$(conf log-dir)" "$HOME/.local/state/sluice/build-logs" "default log dir"
assert_eq "$(conf config)" "$HOME/.local/state/sluice/sluice.conf" "default config file"
rc=0; out=$(env -u HOME "$SLUICE" config 2>&1) || rc=$?
expect_rc 0 "config without HOME"
assert_eq "$(conf state-dir)" "/var/lib/sluice" "state dir without HOME"
# a systemd system service (StateDirectory=sluice) gets /var/lib/sluice even with HOME set
rc=0; out=$(STATE_DIRECTORY=/var/lib/sluice "$SLUICE" config 2>&1) || rc=$?
expect_rc 0 "config as a service"
assert_eq "$(conf state-dir)" "/var/lib/sluice" "state dir of the system service"
rc=0; out=$(XDG_STATE_HOME=$T/xdg "$SLUICE" config 2>&1) || rc=$?
assert_eq "$(conf state-dir)" "$T/xdg/sluice" "state dir under XDG_STATE_HOME"

# --- --state-dir before and after the subcommand, both spellings; flags beat the env
for args in "--state-dir $T/a config" "config --state-dir $T/a" "--state-dir=$T/a config" \
    "config --state-dir=$T/a" "-v config --state-dir $T/a -v"; do
    # shellcheck disable=SC2086
    run $args
    expect_rc 0 "$args"
    assert_eq "$(conf state-dir)" "$T/a" "$args"
    assert_eq "$(conf db)" "sqlite:$T/a/sluice.db" "$args: db follows the state dir"
done
SLUICE_STATE_DIR=$T/env run config
assert_eq "$(conf state-dir)" "$T/env" "SLUICE_STATE_DIR"
SLUICE_STATE_DIR=$T/env run config --state-dir "$T/flag"
assert_eq "$(conf state-dir)" "$T/flag" "flag beats SLUICE_STATE_DIR"
SLUICE_DB=postgresql://env/db run config
assert_eq "$(conf db)" "postgresql://env/db" "SLUICE_DB"
SLUICE_DB=postgresql://env/db run config --db sqlite:/flag.db
assert_eq "$(conf db)" "sqlite:/flag.db" "flag beats SLUICE_DB"

# --- other keys as flags anywhere; the last one wins
run --db sqlite:/one.db config --machines "$T/machines" --max-jobs=7 --db sqlite:/two.db
expect_rc 0 "several flags"
assert_eq "$(conf db)" "sqlite:/two.db" "last --db wins"
assert_eq "$(conf machines)" "$T/machines" "--machines after the subcommand"
assert_eq "$(conf max-jobs)" "7" "--max-jobs=7"

# --- the config file: --config before/after, SLUICE_CONFIG, STATE_DIR/sluice.conf
cat >"$T/c.conf" <<EOF
# comment line

db = postgresql://file/db
machines =   $T/file-machines
   max-jobs=3
state-dir = $T/from-file
EOF
for args in "--config $T/c.conf config" "config --config $T/c.conf" "config --config=$T/c.conf"; do
    # shellcheck disable=SC2086
    run $args
    expect_rc 0 "$args"
    assert_eq "$(conf config)" "$T/c.conf" "$args: config path"
    assert_eq "$(conf db)" "postgresql://file/db" "$args: db from the file"
    assert_eq "$(conf machines)" "$T/file-machines" "$args: value trimmed"
    assert_eq "$(conf max-jobs)" "3" "$args: key without spaces"
    assert_eq "$(conf state-dir)" "$T/from-file" "$args: state dir from the file"
done
SLUICE_CONFIG=$T/c.conf run config
assert_eq "$(conf db)" "postgresql://file/db" "SLUICE_CONFIG"
run config --config "$T/c.conf" --db sqlite:/flag.db --max-jobs 9 --state-dir "$T/flag"
assert_eq "$(conf db)" "sqlite:/flag.db" "flag beats the file (db)"
assert_eq "$(conf max-jobs)" "9" "flag beats the file (max-jobs)"
assert_eq "$(conf state-dir)" "$T/flag" "flag beats the file (state-dir)"
SLUICE_DB=postgresql://env/db SLUICE_STATE_DIR=$T/env run config --config "$T/c.conf"
assert_eq "$(conf db)" "postgresql://env/db" "SLUICE_DB beats the file"
assert_eq "$(conf state-dir)" "$T/env" "SLUICE_STATE_DIR beats the file"

mkdir -p "$T/sd"
printf 'machines = %s\n' "$T/sd-machines" >"$T/sd/sluice.conf"
run config --state-dir "$T/sd"
assert_eq "$(conf config)" "$T/sd/sluice.conf" "STATE_DIR/sluice.conf is used"
assert_eq "$(conf machines)" "$T/sd-machines" "STATE_DIR/sluice.conf is read"
: >"$T/empty.conf"
run config --config "$T/empty.conf"
expect_rc 0 "empty config file"

run config --config "$T/missing.conf"
expect_rc 1 "missing --config file"
expect_err "$T/missing.conf" "missing --config file"
SLUICE_CONFIG=$T/missing.conf run config
expect_rc 1 "missing SLUICE_CONFIG file"

printf '# one\n\n\nmachines = x\n\nno equals sign here\n' >"$T/bad.conf"
run config --config "$T/bad.conf"
expect_rc 1 "malformed config file"
expect_err "$T/bad.conf: line 6: expected 'key = value'" "malformed config: line number"

# --- a relative state dir is made absolute (GC roots and the database live under it)
mkdir -p "$T/rel"
out=$(cd "$T/rel" && "$SLUICE" config --state-dir st) || fail "config with a relative state dir"
assert_eq "$(conf state-dir)" "$T/rel/st" "relative state dir made absolute"
(cd "$T/rel" && "$SLUICE" --state-dir st db init >/dev/null && "$SLUICE" --state-dir st \
    submit "$ROOT/examples/hello.nix" >"$T/rel/id") || fail "submit with a relative state dir"
[ -n "$(find "$T/rel/st/roots" -type l)" ] || fail "submit made no GC root under st/roots"

# --- `--` ends flag parsing: what follows goes to the subcommand untouched
run config -- --db sqlite:/x
expect_rc 2 "config after --"
# --- a key naming a place is never empty: an error, not logs at / (flag or config file)
for k in log-dir state-dir machines db; do
    run config --state-dir "$T/empty" "--$k="
    expect_rc 1 "--$k= (empty)"
    expect_err "$k: empty value" "--$k= (empty)"
done
mkdir -p "$T/empty"
printf 'log-dir =\n' >"$T/empty/sluice.conf"
run --state-dir "$T/empty" log 1
expect_rc 1 "log-dir = (empty) in the config file"
expect_err "log-dir: empty value" "log-dir = (empty) in the config file"

# --- a read-only command on a SQLite database that is not there creates nothing
for c in builds "steps 1" status "log 1"; do
    # shellcheck disable=SC2086
    run --db "sqlite:$T/ro/sub/none.db" $c
    expect_rc 1 "$c on a missing database"
    expect_err "no SQLite database at $T/ro/sub/none.db" "$c on a missing database"
    [ ! -e "$T/ro" ] || fail "$c on a missing database created $(find "$T/ro")"
done

echo "all flag checks passed"
