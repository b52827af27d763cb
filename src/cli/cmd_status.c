/*
 * cmd_status.c: read-only views of the database: `sluice status` (queue summary),
 * `sluice builds` (list builds), `sluice steps BUILD` (its steps, each status-13 row
 * with its resolved drv and that drv's step), `sluice log BUILD [STEP]` (a step's log,
 * decompressed).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "db/db.h"
#include "nix/nix.h"
#include "runner/runner.h"

static const char *status_name(int64_t s, int is_null)
{
    static const char *names[] = {
        "succeeded",         "failed",      "dependency failed",  "aborted",
        "cancelled",         "obsolete",    "failed with output", "timed out",
        "cached failure",    "unsupported", "log limit exceeded", "output limit exceeded",
        "not deterministic", "resolved"};
    if (is_null)
        return "running";
    if (s >= 0 && s < (int64_t)UTIL_ARRAY_LEN(names))
        return names[s];
    return "unknown";
}

static const char *busy_name(int64_t b)
{
    switch (b) {
    case 0: return "";
    case 1: return "preparing";
    case 10: return "connecting";
    case 20: return "sending inputs";
    case 30: return "building";
    case 35: return "waiting for local slot";
    case 40: return "receiving outputs";
    case 50: return "post-processing";
    default: return "busy";
    }
}

/* The machines of a running runner, from the snapshot it keeps in
 * STATE_DIR/machines.json (rewritten every two seconds, removed when it stops; an older
 * one is stale and not shown). */
static void print_machines(CliConfig *cfg)
{
    char *path = xasprintf("%s/machines.json", cfg->state_dir);
    Buf b;
    Err e = {0};
    json_t *j = NULL, *ms, *m;
    const char *name;
    int64_t now = util_time_now();
    buf_init(&b, LIMIT_CONFIG_FILE);
    if (util_read_file(path, &b, &e) == 0)
        j = json_loadb((const char *)b.p, b.len, 0, NULL);
    ms = json_object_get(j, "machines");
    if (json_is_object(ms) && now - json_integer_value(json_object_get(j, "time")) <= 10) {
        printf("machines:\n");
        json_object_foreach(ms, name, m)
        {
            json_int_t until = json_integer_value(json_object_get(m, "disabledUntil"));
            const char *why = json_string_value(json_object_get(m, "disabledReason"));
            printf("  %s: %s, %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
                   " jobs, %" JSON_INTEGER_FORMAT " steps done",
                   name[0] ? name : "localhost", until > now ? "disabled" : "enabled",
                   json_integer_value(json_object_get(m, "currentJobs")),
                   json_integer_value(json_object_get(m, "maxJobs")),
                   json_integer_value(json_object_get(m, "nrStepsDone")));
            if (until > now)
                printf(" (for %" PRId64 " s more: %s)", (int64_t)until - now, why ? why : "");
            printf("\n");
        }
    }
    json_decref(j);
    buf_dispose(&b);
    free(path);
}

static int open_db(CliConfig *cfg, Db **db, Err *e)
{
    return db_open(cli_config_db_url(cfg), DB_OPEN_EXISTING, db, e);
}

int cli_cmd_status(CliConfig *cfg, int argc, char **argv)
{
    Db *db = NULL;
    Err e = {0};
    DbStmt *st = NULL;
    int64_t queued = 0, busy = 0, done = 0, ok = 0;
    int rc;
    if (argc > 1) {
        cli_error("status: unexpected argument '%s'", argv[1]);
        return 2;
    }
    if (open_db(cfg, &db, &e) < 0)
        return cli_fail(&e);
    if ((rc = db_query_int64(db, "SELECT count(*) FROM Builds WHERE finished = 0", NULL, 0, &queued,
                             &e)) < 0 ||
        (rc = db_query_int64(db, "SELECT count(*) FROM Builds WHERE finished = 1", NULL, 0, &done,
                             &e)) < 0 ||
        (rc = db_query_int64(db,
                             "SELECT count(*) FROM Builds WHERE finished = 1 AND buildStatus IN "
                             "(0, 6)",
                             NULL, 0, &ok, &e)) < 0 ||
        (rc = db_query_int64(db, "SELECT count(*) FROM BuildSteps WHERE busy <> 0", NULL, 0, &busy,
                             &e)) < 0) {
        db_close(db);
        return cli_fail(&e);
    }
    printf("database:        %s\n", db_url_display(db));
    printf("builds queued:   %" PRId64 "\n", queued);
    printf("builds finished: %" PRId64 " (%" PRId64 " succeeded, %" PRId64 " failed)\n", done, ok,
           done - ok);
    printf("steps running:   %" PRId64 "\n", busy);
    rc = db_query(db,
                  "SELECT s.build, s.stepnr, s.drvPath, s.busy, s.machine, s.startTime FROM "
                  "BuildSteps s WHERE s.busy <> 0 ORDER BY s.startTime",
                  NULL, 0, &st, &e);
    if (rc == 0) {
        int64_t now = util_time_now();
        while ((rc = db_step(st, &e)) == 1) {
            StrVec k = {0};
            const char *m = cli_esc(&k, db_col_text(st, 4));
            const char *drv = cli_esc(&k, db_col_text(st, 2) ? db_col_text(st, 2) : "");
            printf("  build %" PRId64 " step %" PRId64 ": %s on %s, %s for %" PRId64 " s\n",
                   db_col_int64(st, 0), db_col_int64(st, 1), nix_store_path_base(drv),
                   m && m[0] ? m : "localhost", busy_name(db_col_int64(st, 3)),
                   now - db_col_int64(st, 5));
            strvec_dispose(&k);
        }
        db_stmt_done(st);
    }
    db_close(db);
    if (rc < 0)
        return cli_fail(&e);
    print_machines(cfg);
    return 0;
}

int cli_cmd_builds(CliConfig *cfg, int argc, char **argv)
{
    Db *db = NULL;
    Err e = {0};
    DbStmt *st = NULL;
    int64_t limit = 50;
    int unfinished = 0, rc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--queued") == 0) {
            unfinished = 1;
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            if (util_parse_i64(argv[++i], &limit) < 0 || limit <= 0) {
                cli_error("builds: bad --limit '%s'", argv[i]);
                return 2;
            }
        } else {
            cli_error("builds: unknown argument '%s' (--queued, --limit N)", argv[i]);
            return 2;
        }
    }
    if (open_db(cfg, &db, &e) < 0)
        return cli_fail(&e);
    rc = db_query(db,
                  "SELECT b.id, b.finished, b.buildStatus, b.isCachedBuild, b.job, b.drvPath, "
                  "b.buildStatus IS NULL FROM Builds b WHERE ($1 = 0 OR b.finished = 0) "
                  "ORDER BY b.id DESC LIMIT $2",
                  DB_ARGS(DB_P_INT(unfinished), DB_P_INT(limit)), &st, &e);
    if (rc == 0) {
        printf("%-8s %-20s %-7s %s\n", "id", "status", "cached", "job / drv");
        while ((rc = db_step(st, &e)) == 1) {
            StrVec k = {0};
            int fin = (int)db_col_int64(st, 1);
            printf("%-8" PRId64 " %-20s %-7s %s %s\n", db_col_int64(st, 0),
                   fin ? status_name(db_col_int64(st, 2), 0) : "queued",
                   fin && db_col_int64(st, 3) ? "yes" : "", cli_esc(&k, db_col_text(st, 4)),
                   cli_esc(&k, db_col_text(st, 5)));
            strvec_dispose(&k);
        }
        db_stmt_done(st);
    }
    db_close(db);
    if (rc < 0)
        return cli_fail(&e);
    return 0;
}

int cli_cmd_steps(CliConfig *cfg, int argc, char **argv)
{
    Db *db = NULL;
    Err e = {0};
    DbStmt *st = NULL;
    int64_t build;
    int rc;
    if (argc != 2 || util_parse_i64(argv[1], &build) < 0) {
        cli_error("usage: sluice steps BUILD");
        return 2;
    }
    if (open_db(cfg, &db, &e) < 0)
        return cli_fail(&e);
    rc = db_query_int64(db, "SELECT 1 FROM Builds WHERE id = $1", DB_ARGS(DB_P_INT(build)),
                        &(int64_t){0}, &e);
    if (rc == 0) {
        db_close(db);
        cli_error("no build %" PRId64, build);
        return 1;
    }
    rc = db_query(db,
                  "SELECT s.stepnr, s.type, s.drvPath, s.busy, s.status, s.status IS NULL, "
                  "s.resolvedDrvPath, s.machine, s.errorMsg, s.propagatedFrom, "
                  "(SELECT r.stepnr FROM BuildSteps r WHERE r.build = s.build AND "
                  " r.drvPath = $2 || s.resolvedDrvPath AND (r.status IS NULL OR r.status <> 13) "
                  " ORDER BY r.status IS NULL DESC, r.stepnr DESC LIMIT 1), "
                  "(SELECT r.build FROM BuildSteps r WHERE r.drvPath = $2 || s.resolvedDrvPath "
                  " AND r.type = 0 AND r.status = 0 ORDER BY r.build LIMIT 1) "
                  "FROM BuildSteps s WHERE s.build = $1 ORDER BY s.stepnr",
                  DB_ARGS(DB_P_INT(build), DB_P_TEXT(NIX_STORE_DIR "/")), &st, &e);
    if (rc == 0) {
        printf("%-5s %-5s %-22s %s\n", "step", "type", "status", "derivation");
        while ((rc = db_step(st, &e)) == 1) {
            StrVec k = {0};
            int busy = (int)db_col_int64(st, 3);
            int is_null = (int)db_col_int64(st, 5);
            const char *status = busy ? busy_name(busy) : status_name(db_col_int64(st, 4), is_null);
            const char *m = cli_esc(&k, db_col_text(st, 7));
            const char *resolved = cli_esc(&k, db_col_text(st, 6));
            const char *msg = cli_esc(&k, db_col_text(st, 8));
            printf("%-5" PRId64 " %-5s %-22s %s", db_col_int64(st, 0),
                   db_col_int64(st, 1) ? "subst" : "build", status,
                   cli_esc(&k, db_col_text(st, 2)));
            if (m && m[0])
                printf(" on %s", m);
            if (!db_col_is_null(st, 9))
                printf(" (from build %" PRId64 ")", db_col_int64(st, 9));
            printf("\n");
            if (resolved) {
                printf("      -> resolved to %s/%s", NIX_STORE_DIR, resolved);
                if (!db_col_is_null(st, 10))
                    printf(" (step %" PRId64 ")", db_col_int64(st, 10));
                else if (!db_col_is_null(st, 11))
                    printf(" (built in build %" PRId64 ")", db_col_int64(st, 11));
                else
                    printf(" (not yet scheduled)");
                printf("\n");
            }
            if (msg && msg[0])
                printf("      %s\n", msg);
            strvec_dispose(&k);
        }
        db_stmt_done(st);
    }
    db_close(db);
    if (rc < 0)
        return cli_fail(&e);
    return 0;
}

int cli_cmd_log(CliConfig *cfg, int argc, char **argv)
{
    Db *db = NULL;
    Err e = {0};
    int64_t build, stepnr = 0;
    char *drv = NULL;
    Buf b;
    int rc;
    if (argc < 2 || argc > 3 || util_parse_i64(argv[1], &build) < 0 ||
        (argc == 3 && util_parse_i64(argv[2], &stepnr) < 0)) {
        cli_error("usage: sluice log BUILD [STEP]");
        return 2;
    }
    if (open_db(cfg, &db, &e) < 0)
        return cli_fail(&e);
    if (argc == 3) {
        rc = db_query_text(db, "SELECT drvPath FROM BuildSteps WHERE build = $1 AND stepnr = $2",
                           DB_ARGS(DB_P_INT(build), DB_P_INT(stepnr)), &drv, &e);
    } else {
        /* the step of the build's own top level (following its resolution), else the
         * last step that ran */
        rc = db_query_text(db,
                           "SELECT s.drvPath FROM BuildSteps s WHERE s.build = $1 AND s.type = 0 "
                           "AND (s.status IS NULL OR s.status NOT IN (8, 13)) AND s.busy = 0 "
                           "AND s.propagatedFrom IS NULL ORDER BY s.stepnr DESC LIMIT 1",
                           DB_ARGS(DB_P_INT(build)), &drv, &e);
    }
    db_close(db);
    if (rc < 0)
        return cli_fail(&e);
    if (rc == 0 || !drv) {
        cli_error("no log: build %" PRId64 "%s has no such step", build,
                  argc == 3 ? "" : " has no step that ran;");
        free(drv);
        return 1;
    }
    buf_init(&b, LIMIT_BUF_DEFAULT);
    rc = runner_log_read(cli_config_log_dir(cfg), drv, &b, &e);
    free(drv);
    if (rc < 0) {
        buf_dispose(&b);
        return cli_fail(&e);
    }
    fwrite(b.p ? b.p : (uint8_t *)"", 1, b.len, stdout);
    buf_dispose(&b);
    return 0;
}
