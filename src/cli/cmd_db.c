/*
 * cmd_db.c: `sluice db init`, `sluice db upgrade` and `sluice db check`.
 *
 * db init: creates the schema in one transaction.  On an empty database: Hydra's
 * tables the runner uses and sluice's own; on a Hydra database: sluice's own only
 * (Hydra's tables are never altered).  Then checks the result like db check and exits
 * 1 when something the runner needs is still missing (an older Hydra schema).
 *
 * db upgrade: applies Hydra's migrations after the database's SchemaVersion (as
 * hydra-init does), then what db init does.
 *
 * db check: prints the backend, sluice's schema version, Hydra's SchemaVersion and
 * every missing table, column, index or constraint; exit 0 when nothing is missing,
 * 1 otherwise.
 */
#include <stdio.h>
#include <unistd.h>

#include "cli/cli.h"
#include "db/db.h"

static void print_missing(const DbSchemaReport *r)
{
    for (size_t i = 0; i < r->missing.n; i++)
        printf("missing: %s\n", r->missing.v[i]);
}

/* An older Hydra schema: the version, what each later migration of Hydra's adds, and
 * the command that applies them. */
static void print_hydra_behind(int v)
{
    printf("Hydra schema version: %d (sluice needs %d)\n", v, DB_HYDRA_SCHEMA_NEEDED);
    for (int m = v + 1; m <= DB_HYDRA_SCHEMA_NEEDED; m++) {
        const char *what = db_hydra_migration_what(m);
        if (what)
            printf("missing: Hydra schema migration %d: %s\n", m, what);
    }
    printf("advice: run 'sluice db upgrade' (applies Hydra's migrations %d..%d as hydra-init "
           "does) or Hydra's hydra-init\n",
           v + 1, DB_HYDRA_SCHEMA_NEEDED);
}

static void print_upgrade_step(void *arg, int version, const char *what)
{
    (void)arg;
    printf("applying Hydra schema migration %d: %s\n", version, what);
    fflush(stdout);
}

int cli_cmd_db_upgrade(CliConfig *cfg, int argc, char **argv)
{
    Db *db = NULL;
    Err e = {0};
    int rc, from = -1;
    if (argc > 1) {
        cli_error("db upgrade: unexpected argument '%s'", argv[1]);
        return 2;
    }
    rc = db_open(cli_config_db_url(cfg), DB_OPEN_NO_SCHEMA, &db, &e);
    if (rc < 0)
        return cli_fail(&e);
    rc = db_hydra_upgrade(db, print_upgrade_step, NULL, &from, &e);
    if (rc < 0)
        goto out;
    if (from >= 0 && from < DB_HYDRA_SCHEMA_NEEDED)
        printf("upgraded Hydra's schema from version %d to %d in %s\n", from,
               DB_HYDRA_SCHEMA_NEEDED, db_url_display(db));
    else if (from >= 0)
        printf("Hydra's schema is at version %d in %s: nothing to do\n", from, db_url_display(db));
    db_close(db);
    db = NULL;
    /* then sluice's own tables, as db init */
    return cli_cmd_db_init(cfg, 1, argv);
out:
    db_close(db);
    return cli_fail(&e);
}

int cli_cmd_db_init(CliConfig *cfg, int argc, char **argv)
{
    Db *db = NULL;
    Err e = {0};
    DbSchemaReport before, after;
    int rc, created = 0, status = 1;
    if (argc > 1) {
        cli_error("db init: unexpected argument '%s'", argv[1]);
        return 2;
    }
    rc = db_open(cli_config_db_url(cfg), DB_OPEN_NO_SCHEMA, &db, &e);
    if (rc < 0)
        return cli_fail(&e);
    rc = db_schema_check(db, &before, &e);
    if (rc < 0)
        goto out;
    rc = db_schema_init(db, &created, &e);
    if (rc < 0) {
        db_schema_report_dispose(&before);
        goto out;
    }
    rc = db_schema_check(db, &after, &e);
    if (rc < 0) {
        db_schema_report_dispose(&before);
        goto out;
    }
    if (created)
        printf("created Hydra's tables and sluice's tables (schema version %d) in %s\n",
               after.version, db_url_display(db));
    else if (before.version == 0)
        printf("Hydra's tables found; added sluice's tables (schema version %d) to %s\n",
               after.version, db_url_display(db));
    else if (before.version < after.version)
        printf("upgraded sluice's tables from schema version %d to %d in %s\n", before.version,
               after.version, db_url_display(db));
    else
        printf("schema is up to date (version %d) in %s\n", after.version, db_url_display(db));
    print_missing(&after);
    if (after.missing.n)
        cli_error("the database lacks what the runner needs (see 'missing:' above); upgrade "
                  "Hydra's schema: 'sluice db upgrade' or Hydra's hydra-init");
    else
        status = 0;
    db_schema_report_dispose(&before);
    db_schema_report_dispose(&after);
out:
    db_close(db);
    if (rc < 0)
        return cli_fail(&e);
    return status;
}

int cli_cmd_db_check(CliConfig *cfg, int argc, char **argv)
{
    Db *db = NULL;
    Err e = {0};
    DbSchemaReport r;
    const char *url;
    int rc, status;
    if (argc > 1) {
        cli_error("db check: unexpected argument '%s'", argv[1]);
        return 2;
    }
    url = cli_config_db_url(cfg);
    if (util_starts_with(url, "sqlite:")) {
        /* look without creating the file */
        const char *path = url + 7;
        if (util_starts_with(path, "//"))
            path += 2;
        if (*path && access(path, F_OK) != 0) {
            cli_error("no database at %s (it is created by 'sluice db init' or any command that "
                      "uses it)",
                      path);
            return 1;
        }
    }
    rc = db_open(url, DB_OPEN_NO_SCHEMA, &db, &e);
    if (rc < 0)
        return cli_fail(&e);
    rc = db_schema_check(db, &r, &e);
    if (rc < 0) {
        db_close(db);
        return cli_fail(&e);
    }
    printf("database: %s\n", db_url_display(db));
    printf("backend: %s\n", db_kind(db) == DB_SQLITE ? "sqlite" : "postgresql");
    if (r.version)
        printf("sluice schema version: %d (this sluice: %d)\n", r.version, r.latest);
    else
        printf("sluice schema version: none (run 'sluice db init'; this sluice: %d)\n", r.latest);
    if (r.hydra_version >= DB_HYDRA_SCHEMA_NEEDED)
        printf("Hydra schema version: %d\n", r.hydra_version);
    else if (r.hydra_version >= 0)
        print_hydra_behind(r.hydra_version);
    else
        printf("Hydra schema version: none (no SchemaVersion table)\n");
    print_missing(&r);
    if (r.version > r.latest) {
        printf("problem: the schema is newer than this sluice; upgrade sluice\n");
        status = 1;
    } else {
        status = r.missing.n ? 1 : 0;
    }
    if (!status)
        printf("ok\n");
    db_schema_report_dispose(&r);
    db_close(db);
    return status;
}
