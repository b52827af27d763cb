# tests/db/pglib.sh: PostgreSQL for integration tests (sourced after harness/env.sh).
#
#   pg_server              sets PG_ADMIN: the CI server ($SLUICE_TEST_PG_URL or $PGHOST),
#                          else a private one started with tests/harness/pg.sh and stopped
#                          when the test exits
#   pg_new_db NAME         creates database NAME and prints its URL
#   pg_sql URL SQL         runs SQL, prints unaligned tuples without headers
PG_OWN_DIR=

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
