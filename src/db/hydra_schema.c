/*
 * hydra_schema.c: Hydra's own schema version (the SchemaVersion table) on a database
 * that holds Hydra's tables, and Hydra's migrations that came after the oldest schema
 * sluice can upgrade (83).  `sluice db upgrade` applies them as hydra-init does: one
 * transaction per version, each ending with SchemaVersion set to that version, so
 * hydra-init finds nothing left to do afterwards.  The statements change exactly what
 * Hydra's upgrade-N.sql files change (same columns, constraints, backfill).
 */
#include <string.h>

#include "db/db_int.h"

/* One of Hydra's migrations: the statements taking SchemaVersion from n-1 to n. */
typedef struct HydraMigration {
    int version;
    const char *what; /* one line for the report */
    const char *sql;
} HydraMigration;

/* clang-format off */
static const HydraMigration hydra_migrations[] = {
    {84, "nullable BuildOutputs.path and BuildStepOutputs.path (CA outputs)",
     "ALTER TABLE BuildStepOutputs ALTER COLUMN path DROP NOT NULL;\n"
     "ALTER TABLE BuildOutputs ALTER COLUMN path DROP NOT NULL;\n"},
    {85, "JobsetEvalInputs.shortRevLength",
     "ALTER TABLE JobsetEvalInputs ADD COLUMN shortRevLength smallint;\n"},
    {86, "BuildSteps.drvPath NOT NULL (substitution rows without one get a placeholder)",
     "UPDATE BuildSteps SET drvPath = format("
     "'/nix/store/00000000000000000000000000000000-unknown-build-%s-step-%s.drv', build, stepnr) "
     "WHERE drvPath IS NULL AND type = 1;\n"
     "ALTER TABLE BuildSteps ALTER COLUMN drvPath SET NOT NULL;\n"},
    {87, "BuildSteps.resolvedDrvPath and its check buildsteps_resolved_consistent",
     "ALTER TABLE BuildSteps ADD COLUMN resolvedDrvPath text;\n"
     "ALTER TABLE BuildSteps ADD CONSTRAINT buildsteps_resolved_consistent "
     "CHECK ((status = 13) = (resolvedDrvPath IS NOT NULL));\n"},
};
/* clang-format on */

int db_hydra_schema_needed(void)
{
    return DB_HYDRA_SCHEMA_NEEDED;
}

int db_hydra_schema_version(Db *db, int *out, Err *e)
{
    int yes = 0, rc;
    int64_t v = 0;
    *out = -1;
    rc = db__table_exists(db, "SchemaVersion", &yes, e);
    if (rc < 0 || !yes)
        return rc < 0 ? rc : 0;
    rc = db_query_int64(db, "SELECT coalesce(max(version), 0) FROM SchemaVersion", NULL, 0, &v, e);
    if (rc < 0)
        return rc;
    *out = (int)v;
    return 0;
}

const char *db_hydra_migration_what(int version)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(hydra_migrations); i++)
        if (hydra_migrations[i].version == version)
            return hydra_migrations[i].what;
    return NULL;
}

typedef struct StepCtx {
    const HydraMigration *m;
} StepCtx;

static int step_body(Db *db, void *payload, Err *e)
{
    const HydraMigration *m = ((StepCtx *)payload)->m;
    int now = 0, rc = db_hydra_schema_version(db, &now, e);
    if (rc < 0)
        return rc;
    if (now != m->version - 1)
        return err_set(e, ERR_CONFLICT,
                       "Hydra's schema moved to version %d while upgrading (another hydra-init "
                       "or sluice db upgrade?)",
                       now);
    rc = db__exec_script(db, m->sql, e);
    if (rc < 0)
        return err_prefix(e, "Hydra schema migration %d", m->version);
    rc =
        db__exec_raw(db, "UPDATE SchemaVersion SET version = $1", DB_ARGS(DB_P_INT(m->version)), e);
    return rc < 0 ? err_prefix(e, "Hydra schema migration %d", m->version) : 0;
}

int db_hydra_upgrade(Db *db, DbHydraStepFn on_step, void *arg, int *from, Err *e)
{
    int v = -1, rc = db_hydra_schema_version(db, &v, e);
    *from = v;
    if (rc < 0)
        return rc;
    if (v < 0)
        return 0; /* no Hydra schema: sluice's own tables are current */
    if (v < hydra_migrations[0].version - 1)
        return err_set(e, ERR_UNSUPPORTED,
                       "Hydra's schema in %s is version %d; sluice upgrades from version %d on: "
                       "run hydra-init from a Hydra release of that time first",
                       db->url_safe, v, hydra_migrations[0].version - 1);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(hydra_migrations); i++) {
        StepCtx ctx = {&hydra_migrations[i]};
        if (hydra_migrations[i].version <= v)
            continue;
        if (on_step)
            on_step(arg, hydra_migrations[i].version, hydra_migrations[i].what);
        rc = db__tx(db, step_body, &ctx, 0, e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int db__hydra_schema_refuse_old(Db *db, Err *e)
{
    int v = -1, rc;
    if (db->kind != DB_POSTGRES)
        return 0;
    rc = db_hydra_schema_version(db, &v, e);
    if (rc < 0 || v < 0 || v >= DB_HYDRA_SCHEMA_NEEDED)
        return rc < 0 ? rc : 0;
    return err_set(e, ERR_UNSUPPORTED,
                   "Hydra's schema in %s is version %d; sluice needs version %d (%s): run "
                   "`sluice db upgrade --db URL` (it applies Hydra's migrations %d..%d, as "
                   "hydra-init would) or Hydra's hydra-init",
                   db->url_safe, v, DB_HYDRA_SCHEMA_NEEDED,
                   db_hydra_migration_what(DB_HYDRA_SCHEMA_NEEDED), v + 1, DB_HYDRA_SCHEMA_NEEDED);
}
