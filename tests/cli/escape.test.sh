#!/usr/bin/env bash
# Strings from the database reach a terminal escaped, never as escape sequences: a
# Builds row whose job and a BuildSteps row whose machine and error message hold
# ESC/BEL/CSI sequences (as a hostile or broken writer could leave them), shown by
# `sluice builds` and `sluice steps` on SQLite and PostgreSQL, give \x1b-style text;
# so do the runner's log lines and the CLI's error messages quoting a file.
source "$(dirname "$0")/../harness/env.sh"
source "$ROOT/tests/db/pglib.sh"
need_nix
cd "$ROOT"

no_esc() { # FILE WHAT
    if LC_ALL=C grep -q $'\x1b\|\x07\|\x9b' "$1"; then fail "$2: a raw control byte: $(od -c "$1" | head)"; fi
    grep -qF '\x1b' "$1" || fail "$2: the escape is not shown escaped: $(cat "$1")"
}

check_backend() { # URL SQL-FUNCTION-FOR-CHR
    local url=$1 chr=$2 id bad
    "$SLUICE" db init --db "$url" >/dev/null
    id=$("$SLUICE" submit --db "$url" examples/hello.nix | tail -1)
    bad="'job' || $chr(27) || ']0;owned' || $chr(7) || $chr(27) || '[2J' || $chr(27) || '[31mred'"
    "$SQL" "$url" "UPDATE Builds SET job = $bad WHERE id = $id"
    "$SQL" "$url" "INSERT INTO BuildSteps (build, stepnr, type, drvPath, busy, status, errorMsg, machine)
        SELECT id, 1, 0, drvPath, 0, 1, 'failed: ' || $chr(27) || '[1mbold', 'ssh://h' || $chr(27) || '[5m'
        FROM Builds WHERE id = $id"
    "$SLUICE" builds --db "$url" >"$T/builds.out"
    no_esc "$T/builds.out" "$url: sluice builds"
    "$SLUICE" steps --db "$url" "$id" >"$T/steps.out"
    no_esc "$T/steps.out" "$url: sluice steps"
    grep -qF 'failed: \x1b[1mbold' "$T/steps.out" || fail "$url: the error message: $(cat "$T/steps.out")"
}

sqlite_sql() { sqlite3 -batch "${1#sqlite:}" "$2"; }
SQL=sqlite_sql
check_backend "sqlite:$T/s/sluice.db" char
pg_server
SQL=pg_sql
check_backend "$(pg_new_db "escape_$$")" chr

# a runner's log line and a CLI error quoting a machines file with escapes in it
printf 'ssh://h\x1b]0;owned\x07 x86_64-linux\nftp://x\x1b[2J x86_64-linux\n' >"$T/machines"
rc=0
"$SLUICE" run --once --db "sqlite:$T/s/sluice.db" --machines "$T/machines" >"$T/run.log" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "run --once with an invalid machines file succeeded"
no_esc "$T/run.log" "runner output"
echo "ok: escape"
