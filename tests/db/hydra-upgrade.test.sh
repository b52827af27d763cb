#!/usr/bin/env bash
# Older Hydra schemas: with $HYDRA_SQL_DIR holding Hydra's hydra-85.sql (the schema of
# version 85), its newest hydra.sql and migrations/upgrade-N.sql, a database at version
# 85 is named by `sluice db check` with what it lacks, refused by `sluice run` with the
# advice to run `sluice db upgrade`, and after `sluice db upgrade` holds exactly what
# Hydra's own migrations give the same database (pg_dump of the schema, backfilled
# rows, SchemaVersion = the newest migration, so hydra-init has nothing left to do);
# the runner then builds on it.
source "$(dirname "$0")/../harness/env.sh"
source "$(dirname "$0")/pglib.sh"
[ -n "${HYDRA_SQL_DIR:-}" ] || skip "HYDRA_SQL_DIR is not set (Hydra's sql directory: hydra.sql, hydra-85.sql, migrations/)"
for f in hydra.sql hydra-85.sql; do
    [ -f "$HYDRA_SQL_DIR/$f" ] || fail "HYDRA_SQL_DIR=$HYDRA_SQL_DIR: no $f"
done
newest=$(find "$HYDRA_SQL_DIR/migrations" -name 'upgrade-*.sql' 2>/dev/null | sed -E 's/.*upgrade-([0-9]+)\.sql/\1/' | sort -n | tail -1)
[ -n "$newest" ] || fail "HYDRA_SQL_DIR=$HYDRA_SQL_DIR: no migrations/upgrade-N.sql"

pg_server
OLD=$(pg_new_db hyup_sluice)
REF=$(pg_new_db hyup_hydra)
NEW=$(pg_new_db hyup_fresh)

# a database at version 85 with a project, a jobset, a build and two old steps (one a
# substitution without drvPath, as very old Hydras left them)
load85() {
    psql -X -q -v ON_ERROR_STOP=1 -d "$1" -f "$HYDRA_SQL_DIR/hydra-85.sql" >"$T/load.log" 2>&1 ||
        { cat "$T/load.log"; fail "cannot load hydra-85.sql"; }
    pg_sql "$1" "INSERT INTO SchemaVersion (version) VALUES (85);
        INSERT INTO Users (userName, emailAddress, password) VALUES ('u', 'u@example.org', '!');
        INSERT INTO Projects (name, displayName, owner) VALUES ('p', 'p', 'u');
        INSERT INTO Jobsets (name, project, type, nixExprInput, nixExprPath, emailOverride)
            VALUES ('j', 'p', 0, 'src', 'default.nix', '');
        INSERT INTO Builds (finished, timestamp, jobset_id, job, nixName, drvPath, system,
            priority, globalPriority, keep, startTime, stopTime, buildStatus, isCachedBuild)
            VALUES (1, 1, (SELECT id FROM Jobsets), 'old', 'old',
            '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-old.drv', 'x86_64-linux', 0, 0, 0, 1, 2, 0, 0);
        INSERT INTO BuildSteps (build, stepnr, type, drvPath, busy, status, machine)
            VALUES ((SELECT id FROM Builds), 1, 1, NULL, 0, 0, ''),
                   ((SELECT id FROM Builds), 2, 0, '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-old.drv', 0, 0, '')"
}
load85 "$OLD"
load85 "$REF"

# db check names the version and what is missing
rc=0
"$SLUICE" db check --db "$OLD" >"$T/check.out" 2>&1 || rc=$?
cat "$T/check.out"
assert_eq "$rc" 1 "db check exit status on schema 85"
grep -q "^Hydra schema version: 85 (sluice needs 87)" "$T/check.out" || fail "db check does not name version 85"
grep -q "^missing: column BuildSteps.resolvedDrvPath" "$T/check.out" || fail "db check does not name resolvedDrvPath"
grep -q "^missing: BuildSteps.drvPath is nullable" "$T/check.out" || fail "db check does not name drvPath's NOT NULL"
grep -q "^missing: Hydra schema migration 86" "$T/check.out" || fail "db check does not name migration 86"
grep -q "^missing: Hydra schema migration 87" "$T/check.out" || fail "db check does not name migration 87"
grep -q "sluice db upgrade" "$T/check.out" || fail "db check gives no advice"

# run refuses with the advice, before touching anything
rc=0
timeout 60 "$SLUICE" run --once --db "$OLD" >"$T/run.out" 2>&1 || rc=$?
cat "$T/run.out"
[ "$rc" -ne 0 ] || fail "sluice run accepted schema 85"
grep -q "version 85" "$T/run.out" || fail "sluice run does not name the version"
grep -q "sluice db upgrade" "$T/run.out" || fail "sluice run does not advise db upgrade"
assert_eq "$(pg_sql "$OLD" "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'sluice\\_%'")" 0 \
    "sluice tables after the refused run"

# db upgrade
"$SLUICE" db upgrade --db "$OLD" >"$T/upgrade.out" 2>&1 || { cat "$T/upgrade.out"; fail "db upgrade"; }
cat "$T/upgrade.out"
grep -q "upgraded Hydra's schema from version 85 to 87" "$T/upgrade.out" || fail "db upgrade said: $(cat "$T/upgrade.out")"
assert_eq "$(pg_sql "$OLD" "SELECT version FROM SchemaVersion")" "$newest" "SchemaVersion after db upgrade (hydra-init's target)"
"$SLUICE" db check --db "$OLD" >"$T/check2.out" 2>&1 || { cat "$T/check2.out"; fail "db check after db upgrade"; }
out=$("$SLUICE" db upgrade --db "$OLD") || fail "second db upgrade: $out"
grep -q "nothing to do" <<<"$out" || fail "second db upgrade said: $out"

# Hydra's own migrations on the same data, as hydra-init applies them
for ((m = 86; m <= newest; m++)); do
    { echo "BEGIN;"; cat "$HYDRA_SQL_DIR/migrations/upgrade-$m.sql"; echo "UPDATE SchemaVersion SET version = $m; COMMIT;"; } |
        psql -X -q -v ON_ERROR_STOP=1 -d "$REF" >"$T/ref.log" 2>&1 || { cat "$T/ref.log"; fail "Hydra's upgrade-$m.sql"; }
done
dump() {
    pg_dump --schema-only --no-owner "$1" | grep -v -e '^--' -e '^.\(un\)\?restrict ' | sed '/^$/d' |
        awk '/^CREATE TABLE public.sluice_/,/;$/ {next} /sluice_/ {next} {print}'
}
dump "$REF" >"$T/ref.schema"
dump "$OLD" >"$T/sluice.schema"
diff -u "$T/ref.schema" "$T/sluice.schema" || fail "schema after db upgrade differs from Hydra's migrations (- Hydra, + sluice)"
rows="SELECT build, stepnr, type, drvPath, resolvedDrvPath FROM BuildSteps ORDER BY 1, 2"
assert_eq "$(pg_sql "$OLD" "$rows")" "$(pg_sql "$REF" "$rows")" "BuildSteps rows after the upgrade"
assert_eq "$(pg_sql "$REF" "SELECT version FROM SchemaVersion")" "$newest" "Hydra's SchemaVersion"

# the upgraded columns equal a fresh install of the newest hydra.sql
psql -X -q -v ON_ERROR_STOP=1 -d "$NEW" -f "$HYDRA_SQL_DIR/hydra.sql" >"$T/new.log" 2>&1 || { cat "$T/new.log"; fail "cannot load hydra.sql"; }
cols="SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
      WHERE table_schema = 'public' AND table_name NOT LIKE 'sluice\\_%' ORDER BY 1, 2"
diff -u <(pg_sql "$NEW" "$cols") <(pg_sql "$OLD" "$cols") || fail "columns after db upgrade differ from the newest hydra.sql"

# the runner builds on the upgraded database
need_nix
ids=$(SLUICE_STATE_DIR=$T/state "$SLUICE" submit --db "$OLD" "$ROOT/tests/runner/nix/jobs.nix" \
    --argstr salt "hyup-$$-$(date +%s%N)" --argstr dir "$T" -A empty 2>"$T/submit.err") ||
    { cat "$T/submit.err"; fail "submit on the upgraded database"; }
SLUICE_STATE_DIR=$T/state timeout 120 "$SLUICE" run --once --db "$OLD" >"$T/run2.out" 2>&1 ||
    { cat "$T/run2.out"; fail "sluice run on the upgraded database"; }
assert_eq "$(pg_sql "$OLD" "SELECT finished, buildStatus FROM Builds WHERE id = $ids")" "1|0" "build on the upgraded database"
echo "hydra upgrade: ok"
