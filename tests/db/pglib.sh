# tests/db/pglib.sh: PostgreSQL for integration tests (sourced after harness/env.sh).
#
#   pg_server              sets PG_ADMIN: the CI server ($SLUICE_TEST_PG_URL or $PGHOST),
#                          else a private one started with tests/harness/pg.sh and stopped
#                          when the test exits
#   pg_new_db NAME         creates database NAME and prints its URL
#   pg_sql URL SQL         runs SQL, prints unaligned tuples without headers
#   pg_usable              0 when PostgreSQL can be used (psql installed; the server of
#                          pg_server), else 1 with the reason in $PG_UNUSABLE
#   pg_skip_note BACKEND   (for_backends) note a backend that could not run; pg_skip_end
#                          then exits 77 naming it and the backends that did run
PG_OWN_DIR=
PG_UNUSABLE=
PG_SKIPPED=
PG_RAN=

pg_server() {
    if [ -n "${PG_ADMIN:-}" ]; then return 0; fi
    if [ -n "${SLUICE_TEST_PG_URL:-}" ]; then
        PG_ADMIN=$SLUICE_TEST_PG_URL
    elif [ -n "${PGHOST:-}" ]; then
        PG_ADMIN="postgresql://${PGUSER:-postgres}@/${PGDATABASE:-postgres}?host=$PGHOST&port=${PGPORT:-5432}"
    else
        command -v psql >/dev/null || skip "psql not installed"
        PG_OWN_DIR=$(mktemp -d /tmp/sluice-pg.XXXXXX)
        bash "$ROOT/tests/harness/pg.sh" start "$PG_OWN_DIR" >/dev/null || fail "cannot start PostgreSQL"
        PG_ADMIN="postgresql://postgres@/postgres?host=$PG_OWN_DIR"
        local prev
        prev=$(trap -p EXIT | sed "s/^trap -- '//; s/' EXIT\$//; s/'\\\\''/'/g")
        # shellcheck disable=SC2064
        trap "pg_rc=\$?; set +e; bash '$ROOT/tests/harness/pg.sh' stop '$PG_OWN_DIR' >/dev/null 2>&1; (exit \$pg_rc); $prev" EXIT
    fi
}

pg_sql() {
    psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

pg_new_db() {
    pg_server
    local name=$1
    pg_sql "$PG_ADMIN" "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1
    pg_sql "$PG_ADMIN" "CREATE DATABASE $name" >/dev/null
    # replace the database part of the admin URL
    sed -E "s|^(postgres(ql)?://[^/?]*)/[^?]*|\\1/$name|" <<<"$PG_ADMIN"
}

pg_usable() {
    if ! command -v psql >/dev/null; then
        PG_UNUSABLE="psql not installed"
        return 1
    fi
    pg_server
}

pg_skip_note() {
    echo "=== $1: SKIPPED ($PG_UNUSABLE)"
    PG_SKIPPED+="${PG_SKIPPED:+, }$1 ($PG_UNUSABLE)"
}

# pg_skip_end: after the backends loop; a test whose PostgreSQL half could not run is
# reported as skipped (exit 77), never as passed, even though its SQLite half passed
pg_skip_end() {
    [ -z "$PG_SKIPPED" ] || skip "not run on $PG_SKIPPED; passed on: ${PG_RAN:-nothing}"
}
