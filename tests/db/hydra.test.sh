#!/usr/bin/env bash
# Hydra compatibility: with $HYDRA_SQL naming Hydra's own schema definition
# (NixOS/hydra subprojects/hydra/sql/hydra.sql), a database loaded from it gets only
# sluice's tables from `sluice db init`, passes `sluice db check`, and takes `sluice
# submit` and database unit tests; and the schema sluice creates on an empty
# database matches it for every table sluice creates: columns (name, position, type,
# nullability, default), constraints, indexes, triggers and rules.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/pglib.sh"
[ -n "${HYDRA_SQL:-}" ] || [ -z "${HYDRA_SQL_DIR:-}" ] || HYDRA_SQL=$HYDRA_SQL_DIR/hydra.sql
[ -n "${HYDRA_SQL:-}" ] || skip "HYDRA_SQL (Hydra's hydra.sql) or HYDRA_SQL_DIR is not set"
[ -f "$HYDRA_SQL" ] || fail "HYDRA_SQL=$HYDRA_SQL: no such file"

pg_server
HY=$(pg_new_db sluice_hydra)
OWN=$(pg_new_db sluice_own)
# as hydra-init does: the schema, then its version
psql -X -q -v ON_ERROR_STOP=1 -d "$HY" -f "$HYDRA_SQL" >"$T/load.log" 2>&1 || { cat "$T/load.log"; fail "cannot load $HYDRA_SQL"; }
pg_sql "$HY" "INSERT INTO SchemaVersion (version) VALUES (87)"
tables_before=$(pg_sql "$HY" "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")

out=$("$SLUICE" db init --db "$HY") || fail "db init on Hydra's schema: $out"
grep -q "Hydra's tables found; added sluice's tables" <<<"$out" || fail "db init said: $out"
tables_after=$(pg_sql "$HY" "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE 'sluice\\_%' ORDER BY 1")
assert_eq "$tables_after" "$tables_before" "Hydra's tables after db init"
out=$("$SLUICE" db check --db "$HY") || fail "db check on Hydra's schema: $out"
grep -q "Hydra schema version: 87" <<<"$out" || fail "db check: $out"

"$SLUICE" db init --db "$OWN" >/dev/null || fail "db init on an empty database"

TABLES="'users','projects','jobsets','builds','buildoutputs','buildsteps','buildstepoutputs','buildproducts','buildmetrics','failedpaths'"
compare() { # what SQL: the same rows in both databases
    pg_sql "$HY" "$2" >"$T/hydra.$1"
    pg_sql "$OWN" "$2" >"$T/own.$1"
    [ -s "$T/hydra.$1" ] || fail "no $1 found in Hydra's schema"
    diff -u "$T/hydra.$1" "$T/own.$1" || fail "$1 differ (- Hydra's, + sluice's)"
}
compare columns "SELECT table_name, ordinal_position, column_name, data_type, is_nullable,
    coalesce(column_default, '') FROM information_schema.columns
    WHERE table_schema = 'public' AND table_name IN ($TABLES) ORDER BY 1, 2"
compare constraints "SELECT t.relname, c.contype, pg_get_constraintdef(c.oid) FROM pg_constraint c
    JOIN pg_class t ON t.oid = c.conrelid WHERE t.relname IN ($TABLES) ORDER BY 1, 2, 3"
compare constraint-names "SELECT t.relname, c.conname FROM pg_constraint c
    JOIN pg_class t ON t.oid = c.conrelid WHERE t.relname IN ($TABLES) ORDER BY 1, 2"
compare indexes "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
    AND tablename IN ($TABLES) AND indexname <> 'indextrgmbuildsondrvpath' ORDER BY 1, 2"
compare triggers "SELECT c.relname, t.tgname, p.proname, pg_get_triggerdef(t.oid) FROM pg_trigger t
    JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid
    WHERE NOT t.tgisinternal AND c.relname IN ($TABLES) AND t.tgname <> 'nrbuildsfinished' ORDER BY 1, 2"
compare trigger-functions "SELECT p.proname, btrim(regexp_replace(p.prosrc, '\\s+', ' ', 'g')) FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' AND p.proname LIKE 'notify%' ORDER BY 1"
compare rules "SELECT tablename, rulename, definition FROM pg_rules WHERE schemaname = 'public'
    AND tablename IN ($TABLES) ORDER BY 1, 2"

# sluice's queries against Hydra's schema: submit, then the database unit tests (their
# postgresql+hydra backend loads $HYDRA_SQL the same way)
need_nix
ids=$(SLUICE_STATE_DIR=$T/state "$SLUICE" submit --db "$HY" "$ROOT/tests/data/db/jobs.nix" --argstr salt "hydra-$$") ||
    fail "submit against Hydra's schema"
[ "$(wc -l <<<"$ids")" -eq 6 ] || fail "submit printed: $ids"
assert_eq "$(pg_sql "$HY" "SELECT count(*) FROM builds WHERE finished = 0")" 6 "queued builds in Hydra's schema"
assert_eq "$(pg_sql "$HY" "SELECT count(*) FROM buildoutputs WHERE path IS NULL")" 2 "NULL output paths in Hydra's schema"
if [ -x "$SLUICE_BUILD/sluice-test" ]; then
    # a few of them here; the whole unit suite runs them all when HYDRA_SQL is set
    "$SLUICE_BUILD/sluice-test" db_db__exec db_db__tx_in_doubt db_events__triggers db_schema__hydra \
        >"$T/unit.log" 2>&1 || { cat "$T/unit.log"; fail "database unit tests with HYDRA_SQL"; }
    grep -E '^[0-9]+ passed' "$T/unit.log"
fi
echo "hydra compatibility: ok"
