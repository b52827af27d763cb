/* Tests of src/db/schema.c: creating the schema (fresh, on Hydra's tables, refused on a
 * partial one, all or nothing), migrations and versions, db check, and Hydra's
 * constraints on every backend. */
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"
#include "dbtest.h"
#include "test.h"

static int report_has(const DbSchemaReport *r, const char *needle)
{
    for (size_t i = 0; i < r->missing.n; i++)
        if (strstr(r->missing.v[i], needle))
            return 1;
    return 0;
}

static void print_report(const char *label, const DbSchemaReport *r)
{
    for (size_t i = 0; i < r->missing.n; i++)
        printf("    %s: missing %s\n", label, r->missing.v[i]);
}

TEST(db, schema, init_creates_everything_once)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_EMPTY)) {
        Db *db = NULL;
        Err err = {0}, *e = &err;
        DbSchemaReport r;
        int created = -1;
        CHECK_OK(db_open(t.url, DB_OPEN_NO_SCHEMA, &db, e), e);
        CHECK_OK(db_schema_check(db, &r, e), e);
        CHECK_INT(r.version, 0);
        CHECK(report_has(&r, "table Builds"));
        CHECK(report_has(&r, "table sluice_meta"));
        db_schema_report_dispose(&r);
        CHECK_OK(db_schema_init(db, &created, e), e);
        CHECK_INT(created, 1);
        CHECK_OK(db_schema_check(db, &r, e), e);
        print_report(t.label, &r);
        CHECK_INT(r.missing.n, 0);
        CHECK_INT(r.version, db_schema_latest());
        CHECK_INT(r.latest, db_schema_latest());
        CHECK_INT(r.hydra_version, -1);
        db_schema_report_dispose(&r);
        CHECK_OK(db_schema_init(db, &created, e), e);
        CHECK_INT(created, 0);
        db_close(db);
        /* a default open now works */
        CHECK_OK(db_open(t.url, 0, &db, e), e);
        db_close(db);
    }
}

TEST(db, schema, hydra_database_gets_only_sluice_tables)
{
    DbTest t = {0};
    while (dbtest_next(&t, 0)) {
        Db *db = NULL;
        Err err = {0}, *e = &err;
        DbSchemaReport r;
        int created = -1;
        CHECK_OK(db_open(t.url, DB_OPEN_NO_SCHEMA, &db, e), e);
        /* the database already has Hydra's (or our) tables and sluice's: drop sluice's
         * and init again: only they come back */
        CHECK_OK(db_exec(db, "DROP TABLE sluice_meta", NULL, 0, e), e);
        CHECK_OK(db_exec(db, "DROP TABLE sluice_txlog", NULL, 0, e), e);
        CHECK_OK(db_exec(db, "DROP TABLE sluice_gcroots", NULL, 0, e), e);
        CHECK_OK(db_exec(db, "DROP TABLE sluice_uploads", NULL, 0, e), e);
        if (t.kind == DB_SQLITE) {
            const char *trg[] = {"sluice_builds_deleted", "sluice_builds_restarted",
                                 "sluice_builds_cancelled", "sluice_builds_bumped",
                                 "sluice_jobset_shares_changed"};
            for (size_t i = 0; i < UTIL_ARRAY_LEN(trg); i++) {
                char sql[96];
                snprintf(sql, sizeof sql, "DROP TRIGGER %s", trg[i]);
                CHECK_OK(db_exec(db, sql, NULL, 0, e), e);
            }
            CHECK_OK(db_exec(db, "DROP TABLE sluice_events", NULL, 0, e), e);
        }
        CHECK_OK(db_exec(db,
                         "INSERT INTO Users (userName, emailAddress, password) VALUES "
                         "('keep', '', '!')",
                         NULL, 0, e),
                 e);
        CHECK_OK(db_schema_init(db, &created, e), e);
        CHECK_INT(created, 0);
        CHECK_OK(db_schema_check(db, &r, e), e);
        print_report(t.label, &r);
        CHECK_INT(r.missing.n, 0);
        CHECK_INT(r.hydra_version, t.hydra ? 87 : -1);
        db_schema_report_dispose(&r);
        {
            int64_t v = 0;
            CHECK_INT(db_query_int64(db, "SELECT count(*) FROM Users WHERE userName = 'keep'", NULL,
                                     0, &v, e),
                      1);
            CHECK_INT(v, 1);
        }
        db_close(db);
    }
}

TEST(db, schema, partial_hydra_schema_is_refused_and_nothing_left)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_EMPTY)) {
        Db *db = NULL;
        Err err = {0}, *e = &err;
        int yes = 1;
        CHECK_OK(db_open(t.url, DB_OPEN_NO_SCHEMA, &db, e), e);
        CHECK_OK(db_exec(db, "CREATE TABLE Builds (id integer primary key)", NULL, 0, e), e);
        CHECK_INT(db_schema_init(db, NULL, e), ERR_CONFLICT);
        CHECK_MSG(strstr(e->msg, "BuildSteps") && strstr(e->msg, "Hydra"), "%s", e->msg);
        CHECK_OK(db__table_exists(db, "sluice_meta", &yes, e), e);
        CHECK_INT(yes, 0);
        db_close(db);
    }
}

TEST(db, schema, failed_creation_leaves_nothing)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_EMPTY)) {
        Db *db = NULL;
        Err err = {0}, *e = &err;
        int yes = 1;
        CHECK_OK(db_open(t.url, DB_OPEN_NO_SCHEMA, &db, e), e);
        /* an object that clashes with one created late in the script */
        if (t.kind == DB_POSTGRES)
            CHECK_OK(db_exec(db,
                             "CREATE FUNCTION notifyBuildBumped() RETURNS integer AS "
                             "'select 1' LANGUAGE sql",
                             NULL, 0, e),
                     e);
        else
            CHECK_OK(db_exec(db, "CREATE TABLE IndexBuildsOnKeep (x integer)", NULL, 0, e), e);
        CHECK(db_schema_init(db, NULL, e) < 0);
        CHECK_OK(db__table_exists(db, "Builds", &yes, e), e);
        CHECK_INT(yes, 0);
        CHECK_OK(db__table_exists(db, "Users", &yes, e), e);
        CHECK_INT(yes, 0);
        CHECK_OK(db__table_exists(db, "sluice_meta", &yes, e), e);
        CHECK_INT(yes, 0);
        db_close(db);
    }
}

TEST(db, schema, versions_are_checked_at_open)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_EMPTY | DBTEST_NO_HYDRA)) {
        Db *db = NULL;
        Err err = {0}, *e = &err;
        char v[16];
        if (t.kind == DB_POSTGRES) {
            /* no sluice tables: refused, naming `sluice db init` */
            CHECK_INT(db_open(t.url, 0, &db, e), ERR_NOTFOUND);
            CHECK_MSG(strstr(e->msg, "sluice db init"), "%s", e->msg);
            CHECK_OK(db_open(t.url, DB_OPEN_NO_SCHEMA, &db, e), e);
            CHECK_OK(db_schema_init(db, NULL, e), e);
            db_close(db);
        }
        CHECK_OK(db_open(t.url, 0, &db, e), e);
        snprintf(v, sizeof v, "%d", db_schema_latest() + 1);
        CHECK_INT(db_exec(db, "UPDATE sluice_meta SET value = $1 WHERE key = 'schema_version'",
                          DB_ARGS(DB_P_TEXT(v)), e),
                  1);
        db_close(db);
        CHECK_INT(db_open(t.url, 0, &db, e), ERR_UNSUPPORTED);
        CHECK_MSG(strstr(e->msg, "newer sluice"), "%s", e->msg);
        CHECK_OK(db_open(t.url, DB_OPEN_NO_SCHEMA, &db, e), e);
        CHECK_INT(db_schema_init(db, NULL, e), ERR_UNSUPPORTED);
        /* an older version is migrated at open */
        CHECK_INT(db_exec(db, "UPDATE sluice_meta SET value = '0' WHERE key = 'schema_version'",
                          NULL, 0, e),
                  1);
        db_close(db);
        if (t.kind == DB_POSTGRES) {
            /* version 0 with tables present = no sluice schema: refused */
            CHECK_INT(db_open(t.url, 0, &db, e), ERR_NOTFOUND);
        }
    }
}

TEST(db, schema, check_reports_what_is_missing)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_NO_HYDRA)) {
        Db *db = NULL;
        Err err = {0}, *e = &err;
        DbSchemaReport r;
        CHECK_OK(db_open(t.url, DB_OPEN_NO_SCHEMA, &db, e), e);
        CHECK_OK(db_exec(db, "DROP INDEX IndexBuildStepsOnDrvPath", NULL, 0, e), e);
        CHECK_OK(db_exec(db, "DROP TABLE sluice_gcroots", NULL, 0, e), e);
        if (t.kind == DB_POSTGRES) {
            /* a Hydra database from before upgrade-84/87 */
            CHECK_OK(db_exec(db, "ALTER TABLE BuildSteps DROP COLUMN resolvedDrvPath", NULL, 0, e),
                     e);
            CHECK_OK(
                db_exec(db, "ALTER TABLE BuildOutputs ALTER COLUMN path SET NOT NULL", NULL, 0, e),
                e);
        }
        CHECK_OK(db_schema_check(db, &r, e), e);
        CHECK(report_has(&r, "index IndexBuildStepsOnDrvPath"));
        CHECK(report_has(&r, "table sluice_gcroots"));
        if (t.kind == DB_POSTGRES) {
            CHECK(report_has(&r, "column BuildSteps.resolvedDrvPath"));
            CHECK(report_has(&r, "check constraint on BuildSteps"));
            CHECK(report_has(&r, "BuildOutputs.path is NOT NULL (expected nullable)"));
        }
        db_schema_report_dispose(&r);
        db_close(db);
    }
}

static int64_t jobset_id(Db *db, Err *e)
{
    int64_t id = 0;
    if (db_exec(db, "INSERT INTO Users (userName, emailAddress, password) VALUES ('u', '', '!')",
                NULL, 0, e) < 0 ||
        db_exec(db, "INSERT INTO Projects (name, displayName, owner) VALUES ('p', 'P', 'u')", NULL,
                0, e) < 0 ||
        db_query_int64(db,
                       "INSERT INTO Jobsets (name, project, nixExprInput, nixExprPath, "
                       "emailOverride) VALUES ('j', 'p', 'src', 'x.nix', '') RETURNING id",
                       NULL, 0, &id, e) < 0)
        return -1;
    return id;
}

/* Hydra's constraints hold on every backend: status 13 iff resolvedDrvPath; finished
 * builds need start and stop times; nullable output paths; FailedPaths inserts are
 * idempotent; cascading deletes. */
TEST(db, schema, hydra_constraints)
{
    DbTest t = {0};
    while (dbtest_next(&t, 0)) {
        Db *db = NULL;
        Err err = {0}, *e = &err;
        int64_t js, b = 0, v = 0;
        const char *step = "INSERT INTO BuildSteps (build, stepnr, type, drvPath, busy, status, "
                           "resolvedDrvPath) VALUES ($1, $2, 0, '/nix/store/a.drv', 0, $3, $4)";
        CHECK_OK(db_open(t.url, 0, &db, e), e);
        js = jobset_id(db, e);
        CHECK_MSG(js > 0, "%s: %s", t.label, e->msg);
        CHECK_INT(
            db_query_int64(db,
                           "INSERT INTO Builds (finished, timestamp, jobset_id, job, drvPath, "
                           "system) VALUES (0, 1, $1, 'job', '/nix/store/a.drv', 'x') "
                           "RETURNING id",
                           DB_ARGS(DB_P_INT(js)), &b, e),
            1);
        CHECK_INT(db_exec(db, step, DB_ARGS(DB_P_INT(b), DB_P_INT(1), DB_P_INT(13), DB_P_NULL), e),
                  ERR_CONFLICT);
        CHECK_INT(db_exec(db, step,
                          DB_ARGS(DB_P_INT(b), DB_P_INT(1), DB_P_INT(0), DB_P_TEXT("x-b.drv")), e),
                  ERR_CONFLICT);
        CHECK_INT(db_exec(db, step,
                          DB_ARGS(DB_P_INT(b), DB_P_INT(1), DB_P_INT(13), DB_P_TEXT("x-b.drv")), e),
                  1);
        CHECK_INT(db_exec(db, step, DB_ARGS(DB_P_INT(b), DB_P_INT(2), DB_P_NULL, DB_P_NULL), e), 1);
        CHECK_INT(db_exec(db,
                          "INSERT INTO BuildStepOutputs (build, stepnr, name, path) VALUES ($1, 1, "
                          "'out', NULL)",
                          DB_ARGS(DB_P_INT(b)), e),
                  1);
        CHECK_INT(db_exec(db,
                          "INSERT INTO BuildOutputs (build, name, path) VALUES ($1, 'out', NULL)",
                          DB_ARGS(DB_P_INT(b)), e),
                  1);
        /* a step's output rows need the step */
        CHECK_INT(
            db_exec(db, "INSERT INTO BuildStepOutputs (build, stepnr, name) VALUES ($1, 9, 'out')",
                    DB_ARGS(DB_P_INT(b)), e),
            ERR_CONFLICT);
        CHECK_INT(
            db_exec(db, "UPDATE Builds SET finished = 1 WHERE id = $1", DB_ARGS(DB_P_INT(b)), e),
            ERR_CONFLICT);
        CHECK_INT(db_exec(db, "INSERT INTO FailedPaths (path) VALUES ('/nix/store/x')", NULL, 0, e),
                  1);
        CHECK_INT(db_exec(db, "INSERT INTO FailedPaths (path) VALUES ('/nix/store/x')", NULL, 0, e),
                  0);
        CHECK_INT(db_exec(db, "DELETE FROM Builds WHERE id = $1", DB_ARGS(DB_P_INT(b)), e), 1);
        CHECK_INT(db_query_int64(db, "SELECT count(*) FROM BuildSteps", NULL, 0, &v, e), 1);
        CHECK_INT(v, 0);
        CHECK_INT(db_query_int64(db, "SELECT count(*) FROM BuildStepOutputs", NULL, 0, &v, e), 1);
        CHECK_INT(v, 0);
        db_close(db);
    }
}
