#!/usr/bin/env bash
# `sluice db init` and `sluice db check` on SQLite and PostgreSQL: a new schema, a second
# init, the report; bad input: a URL that does not parse, a server that is down, a
# schema of a newer sluice, a PostgreSQL database without sluice's tables, a database
# with only part of Hydra's tables (refused, nothing left behind); a SQLite file is
# created with its schema by the first command that uses it.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/pglib.sh"

# run ARGS...: sets $out, $err and $rc
run() {
    rc=0
    "$SLUICE" "$@" >"$T/out" 2>"$T/err" || rc=$?
    out=$(cat "$T/out")
    err=$(cat "$T/err")
}
expect_rc() { [ "$rc" -eq "$1" ] || fail "$2: exit $rc, expected $1; stdout: $out; stderr: $err"; }
expect_out() { grep -qF -- "$1" <<<"$out" || fail "$2: stdout lacks '$1': $out"; }
expect_err() { grep -qF -- "$1" <<<"$err" || fail "$2: stderr lacks '$1': $err"; }

pg_server
SQ=sqlite:$T/a.db
PG=$(pg_new_db sluice_cli_a)

run db check --db "$SQ"
expect_rc 1 "check of a missing SQLite file"
expect_err "no database at $T/a.db" "check of a missing SQLite file"
[ ! -e "$T/a.db" ] || fail "db check created $T/a.db"
touch "$T/a.db"
for url in "$SQ" "$PG"; do
    run db check --db "$url"
    expect_rc 1 "$url: check before init"
    expect_out "sluice schema version: none (run 'sluice db init'" "$url: check before init"
    expect_out "missing: table Builds" "$url: check before init"
    run db init --db "$url"
    expect_rc 0 "$url: init"
    expect_out "created Hydra's tables and sluice's tables (schema version 2)" "$url: init"
    run db init --db "$url"
    expect_rc 0 "$url: second init"
    expect_out "schema is up to date (version 2)" "$url: second init"
    run db check --db "$url"
    expect_rc 0 "$url: check"
    expect_out "sluice schema version: 2 (this sluice: 2)" "$url: check"
    expect_out "Hydra schema version: none" "$url: check"
    expect_out "ok" "$url: check"
    grep -q "^missing" <<<"$out" && fail "$url: check reports missing things: $out"
done
grep -q 'backend: sqlite' <<<"$(cd "$T" && "$SLUICE" db check --db "$SQ")" || fail "backend name"

# a database of the previous sluice (schema version 1, no sluice_uploads): check names
# the migration, init applies it, the rows are kept
sqlite3 "$T/a.db" "DROP TABLE sluice_uploads; UPDATE sluice_meta SET value = '1' WHERE key = 'schema_version'"
pg_sql "$PG" "DROP TABLE sluice_uploads; UPDATE sluice_meta SET value = '1' WHERE key = 'schema_version'"
for url in "$SQ" "$PG"; do
    run db check --db "$url"
    expect_rc 1 "$url: check of version 1"
    expect_out "missing: sluice schema migrations 2..2" "$url: check of version 1"
    run db init --db "$url"
    expect_rc 0 "$url: init of version 1"
    expect_out "upgraded sluice's tables from schema version 1 to 2" "$url: init of version 1"
    run db check --db "$url"
    expect_rc 0 "$url: check after the migration"
    expect_out "sluice schema version: 2 (this sluice: 2)" "$url: check after the migration"
done

# a newer sluice's schema
sqlite3 "$T/a.db" "UPDATE sluice_meta SET value = '999' WHERE key = 'schema_version'"
pg_sql "$PG" "UPDATE sluice_meta SET value = '999' WHERE key = 'schema_version'"
for url in "$SQ" "$PG"; do
    run db check --db "$url"
    expect_rc 1 "$url: check of a newer schema"
    expect_out "newer than this sluice" "$url: check of a newer schema"
    run db init --db "$url"
    expect_rc 1 "$url: init on a newer schema"
    expect_err "newer sluice" "$url: init on a newer schema"
    run submit --db "$url" /nix/store/00000000000000000000000000000000-x.drv
    expect_rc 1 "$url: submit on a newer schema"
    expect_err "newer sluice" "$url: submit on a newer schema"
done

# PostgreSQL without sluice's tables: refused by every command but db init/check
PG2=$(pg_new_db sluice_cli_b)
run submit --db "$PG2" /nix/store/00000000000000000000000000000000-x.drv
expect_rc 1 "submit on an empty PostgreSQL database"
expect_err "sluice db init" "submit on an empty PostgreSQL database"
[ -z "$(pg_sql "$PG2" "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")" ] ||
    fail "submit created tables in PostgreSQL"

# part of Hydra's tables: refused, nothing left behind
pg_sql "$PG2" "CREATE TABLE Builds (id serial primary key)"
run db init --db "$PG2"
expect_rc 1 "init on a partial Hydra schema"
expect_err "holds some of Hydra's tables but not" "init on a partial Hydra schema"
tables=$(pg_sql "$PG2" "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
assert_eq "$tables" "builds" "tables after a refused init"

# bad URLs and servers that are down
run db check --db "mysql://localhost/x"
expect_rc 1 "unknown scheme"
expect_err "is not understood" "unknown scheme"
run db init --db "postgresql://host:99999999999/db?sslmode"
expect_rc 1 "URL that does not parse"
expect_err "does not parse" "URL that does not parse"
run db init --db "postgresql://someone:hunter2@/db?host=$T/no-server-here"
expect_rc 1 "server down"
expect_err "cannot connect to PostgreSQL" "server down"
grep -q hunter2 <<<"$err" && fail "the password was printed: $err"
run db init --db "sqlite:$T/not-a-db"
printf 'this is not a database file, not at all, just some text in a file......\n' >"$T/not-a-db"
run db init --db "sqlite:$T/not-a-db"
expect_rc 1 "not a database"
expect_err "not a database" "not a database"

# first use of a SQLite state dir by a command creates the database with its schema
run --state-dir "$T/fresh" submit /nix/store/00000000000000000000000000000000-x.drv
[ -f "$T/fresh/sluice.db" ] || fail "submit did not create STATE/sluice.db"
run --state-dir "$T/fresh" db check
expect_rc 0 "check after first use"
echo "db cli: ok"
