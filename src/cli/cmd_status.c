/*
 * cmd_status.c: read-only views of the database: `sluice status` (queue summary),
 * `sluice builds` (list builds), `sluice steps BUILD` (its steps, each status-13 row
 * with its resolved drv and that drv's step), each as text with Hydra's status names or
 * with --json as JSON (Hydra's lower-case column names plus the status name).  The log
 * of a step is cmd_log.c.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "db/db.h"
#include "nix/nix.h"
#include "runner/runner.h"

/* A step's or build's state as a person reads it. */
static const char *step_state(int busy, int64_t status, int status_null)
{
    if (busy)
        return db_busy_name(busy);
    return status_null ? "running" : db_status_name(status);
}

/* Take "--json" out of argv (setting *json); returns the new argc. */
static int take_json(int argc, char **argv, int *json)
{
    int k = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            *json = 1;
        else
            argv[k++] = argv[i];
    }
    return k;
}

static void print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", text ? text : "null");
    free(text);
    json_decref(j);
}

/* A text column as a JSON string or null. */
static json_t *jtext(DbStmt *st, int i)
{
    const char *t = db_col_text(st, i);
    return t ? json_string(t) : json_null();
}

static json_t *jint(DbStmt *st, int i)
{
    return db_col_is_null(st, i) ? json_null() : json_integer(db_col_int64(st, i));
}

/* The snapshot a running runner keeps in STATE_DIR/machines.json (rewritten every two
 * seconds, removed when it stops; an older one is stale and not shown), or NULL: its
 * "machines" object, and "binaryCache" when it publishes to one. */
static json_t *machines_snapshot(CliConfig *cfg)
{
    char *path = xasprintf("%s/machines.json", cfg->state_dir);
    Buf b;
    Err e = {0};
    json_t *j = NULL, *ms = NULL;
    buf_init(&b, LIMIT_CONFIG_FILE);
    if (util_read_file(path, &b, &e) == 0)
        j = json_loadb((const char *)b.p, b.len, 0, NULL);
    if (json_is_object(json_object_get(j, "machines")) &&
        util_time_now() - json_integer_value(json_object_get(j, "time")) <= 10)
        ms = json_incref(j);
    json_decref(j);
    buf_dispose(&b);
    free(path);
    return ms;
}

static void print_machines(json_t *ms)
{
    const char *name;
    json_t *m;
    int64_t now = util_time_now();
    if (!ms)
        return;
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

static int open_db(CliConfig *cfg, Db **db, Err *e)
{
    return db_open(cli_config_db_url(cfg), DB_OPEN_EXISTING, db, e);
}

typedef struct Summary {
    int64_t queued, done, ok, busy;
} Summary;

static int summary_read(Db *db, Summary *s, Err *e)
{
    int rc;
    if ((rc = db_query_int64(db, "SELECT count(*) FROM Builds WHERE finished = 0", NULL, 0,
                             &s->queued, e)) < 0 ||
        (rc = db_query_int64(db, "SELECT count(*) FROM Builds WHERE finished = 1", NULL, 0,
                             &s->done, e)) < 0 ||
        (rc = db_query_int64(
             db,
             "SELECT count(*) FROM Builds WHERE finished = 1 AND buildStatus IN "
             "($1, $2)",
             DB_ARGS(DB_P_INT(DB_STATUS_SUCCESS), DB_P_INT(DB_STATUS_FAILED_WITH_OUTPUT)), &s->ok,
             e)) < 0 ||
        (rc = db_query_int64(db, "SELECT count(*) FROM BuildSteps WHERE busy <> 0", NULL, 0,
                             &s->busy, e)) < 0)
        return rc;
    return 0;
}

/* The running steps as JSON objects (text output reads the same array). */
static int running_steps(Db *db, json_t *out, Err *e)
{
    DbStmt *st = NULL;
    int64_t now = util_time_now();
    int rc = db_query(db,
                      "SELECT s.build, s.stepnr, s.drvPath, s.busy, s.machine, s.startTime FROM "
                      "BuildSteps s WHERE s.busy <> 0 ORDER BY s.startTime",
                      NULL, 0, &st, e);
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1) {
        const char *m = db_col_text(st, 4);
        json_array_append_new(out, json_pack("{s:I,s:I,s:o,s:I,s:s,s:s,s:I}", "build",
                                             (json_int_t)db_col_int64(st, 0), "stepnr",
                                             (json_int_t)db_col_int64(st, 1), "drvpath",
                                             jtext(st, 2), "busy", (json_int_t)db_col_int64(st, 3),
                                             "phase", db_busy_name(db_col_int64(st, 3)), "machine",
                                             m && m[0] ? m : "localhost", "elapsed",
                                             (json_int_t)(now - db_col_int64(st, 5))));
    }
    db_stmt_done(st);
    return rc;
}

/* The string under key of o (text from the database), escaped for the terminal. */
static const char *jesc(StrVec *keep, json_t *o, const char *key)
{
    return cli_esc(keep, json_string_value(json_object_get(o, key)));
}

static void print_cache(json_t *bc)
{
    if (!json_is_object(bc))
        return;
    printf("binary cache:    %s: %" JSON_INTEGER_FORMAT " NARs (%" JSON_INTEGER_FORMAT
           " bytes written), %" JSON_INTEGER_FORMAT " realisations, %" JSON_INTEGER_FORMAT
           " logs, %" JSON_INTEGER_FORMAT " failed uploads, %" JSON_INTEGER_FORMAT
           " uploading, %" JSON_INTEGER_FORMAT " waiting\n",
           json_string_value(json_object_get(bc, "url")),
           json_integer_value(json_object_get(bc, "nrNars")),
           json_integer_value(json_object_get(bc, "uploadedBytes")),
           json_integer_value(json_object_get(bc, "nrRealisations")),
           json_integer_value(json_object_get(bc, "nrLogs")),
           json_integer_value(json_object_get(bc, "nrFailures")),
           json_integer_value(json_object_get(bc, "nrUploadsActive")),
           json_integer_value(json_object_get(bc, "nrUploadsQueued")));
}

static void print_summary_text(Db *db, const Summary *s, json_t *steps, json_t *snap)
{
    json_t *ms = json_object_get(snap, "machines");
    size_t i;
    json_t *r;
    printf("database:        %s\n", db_url_display(db));
    printf("builds queued:   %" PRId64 "\n", s->queued);
    printf("builds finished: %" PRId64 " (%" PRId64 " succeeded, %" PRId64 " failed)\n", s->done,
           s->ok, s->done - s->ok);
    printf("steps running:   %" PRId64 "\n", s->busy);
    json_array_foreach(steps, i, r)
    {
        StrVec k = {0};
        const char *drv = jesc(&k, r, "drvpath");
        printf("  build %" JSON_INTEGER_FORMAT " step %" JSON_INTEGER_FORMAT
               ": %s on %s, %s for %" JSON_INTEGER_FORMAT " s\n",
               json_integer_value(json_object_get(r, "build")),
               json_integer_value(json_object_get(r, "stepnr")),
               nix_store_path_base(drv ? drv : ""), jesc(&k, r, "machine"),
               json_string_value(json_object_get(r, "phase")),
               json_integer_value(json_object_get(r, "elapsed")));
        strvec_dispose(&k);
    }
    print_cache(json_object_get(snap, "binaryCache"));
    print_machines(ms);
}

int cli_cmd_status(CliConfig *cfg, int argc, char **argv)
{
    Db *db = NULL;
    Err e = {0};
    Summary s = {0};
    json_t *steps = json_array(), *ms = NULL;
    int json = 0, rc;
    if ((argc = take_json(argc, argv, &json)) > 1) {
        cli_error("status: unexpected argument '%s'", argv[1]);
        json_decref(steps);
        return 2;
    }
    if (open_db(cfg, &db, &e) < 0) {
        json_decref(steps);
        return cli_fail(&e);
    }
    rc = summary_read(db, &s, &e);
    if (rc == 0)
        rc = running_steps(db, steps, &e);
    if (rc == 0) {
        ms = machines_snapshot(cfg);
        if (json) {
            json_t *o = json_pack(
                "{s:s,s:I,s:I,s:I,s:I,s:I,s:O,s:o}", "database", db_url_display(db), "buildsQueued",
                (json_int_t)s.queued, "buildsFinished", (json_int_t)s.done, "buildsSucceeded",
                (json_int_t)s.ok, "buildsFailed", (json_int_t)(s.done - s.ok), "stepsRunning",
                (json_int_t)s.busy, "running", steps, "machines",
                ms ? json_incref(json_object_get(ms, "machines")) : json_object());
            if (json_object_get(ms, "binaryCache"))
                json_object_set(o, "binaryCache", json_object_get(ms, "binaryCache"));
            print_json(o);
        } else
            print_summary_text(db, &s, steps, ms);
    }
    json_decref(ms);
    json_decref(steps);
    db_close(db);
    return rc < 0 ? cli_fail(&e) : 0;
}

/* One build row as JSON: Hydra's column names, plus "status" as a name. */
static json_t *build_json(DbStmt *st)
{
    int fin = (int)db_col_int64(st, 1);
    return json_pack("{s:I,s:b,s:o,s:s,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id",
                     (json_int_t)db_col_int64(st, 0), "finished", fin, "buildstatus",
                     fin ? jint(st, 2) : json_null(), "status",
                     fin ? db_status_name(db_col_int64(st, 2)) : "queued", "iscachedbuild",
                     fin && db_col_int64(st, 3), "job", jtext(st, 4), "drvpath", jtext(st, 5),
                     "timestamp", jint(st, 6), "starttime", jint(st, 7), "stoptime", jint(st, 8),
                     "priority", jint(st, 9), "globalpriority", jint(st, 10));
}

int cli_cmd_builds(CliConfig *cfg, int argc, char **argv)
{
    Db *db = NULL;
    Err e = {0};
    DbStmt *st = NULL;
    json_t *arr = json_array();
    int64_t limit = 50;
    int unfinished = 0, json = 0, rc;
    argc = take_json(argc, argv, &json);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--queued") == 0) {
            unfinished = 1;
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            if (util_parse_i64(argv[++i], &limit) < 0 || limit <= 0) {
                cli_error("builds: bad --limit '%s'", argv[i]);
                json_decref(arr);
                return 2;
            }
        } else {
            cli_error("builds: unknown argument '%s' (--queued, --limit N, --json)", argv[i]);
            json_decref(arr);
            return 2;
        }
    }
    if (open_db(cfg, &db, &e) < 0) {
        json_decref(arr);
        return cli_fail(&e);
    }
    rc = db_query(db,
                  "SELECT b.id, b.finished, b.buildStatus, b.isCachedBuild, b.job, b.drvPath, "
                  "b.timestamp, b.startTime, b.stopTime, b.priority, b.globalPriority "
                  "FROM Builds b WHERE ($1 = 0 OR b.finished = 0) ORDER BY b.id DESC LIMIT $2",
                  DB_ARGS(DB_P_INT(unfinished), DB_P_INT(limit)), &st, &e);
    if (rc == 0) {
        while ((rc = db_step(st, &e)) == 1)
            json_array_append_new(arr, build_json(st));
        db_stmt_done(st);
    }
    db_close(db);
    if (rc < 0) {
        json_decref(arr);
        return cli_fail(&e);
    }
    if (json) {
        print_json(arr);
        return 0;
    }
    printf("%-8s %-20s %-7s %s\n", "id", "status", "cached", "job / drv");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *b = json_array_get(arr, i);
        StrVec k = {0};
        printf("%-8" JSON_INTEGER_FORMAT " %-20s %-7s %s %s\n",
               json_integer_value(json_object_get(b, "id")),
               json_string_value(json_object_get(b, "status")),
               json_is_true(json_object_get(b, "iscachedbuild")) ? "yes" : "", jesc(&k, b, "job"),
               jesc(&k, b, "drvpath"));
        strvec_dispose(&k);
    }
    json_decref(arr);
    return 0;
}

/* Columns of the steps query, by name. */
enum {
    S_STEPNR,
    S_TYPE,
    S_DRV,
    S_BUSY,
    S_STATUS,
    S_STATUS_NULL,
    S_RESOLVED,
    S_MACHINE,
    S_ERROR,
    S_PROPAGATED,
    S_RESOLVED_STEP,
    S_RESOLVED_BUILD,
    S_START,
    S_STOP,
};

static json_t *step_json(DbStmt *st)
{
    int busy = (int)db_col_int64(st, S_BUSY);
    return json_pack(
        "{s:I,s:s,s:o,s:I,s:o,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "stepnr",
        (json_int_t)db_col_int64(st, S_STEPNR), "type",
        db_col_int64(st, S_TYPE) != DB_STEP_BUILD ? "substitution" : "build", "drvpath",
        jtext(st, S_DRV), "busy", (json_int_t)busy, "status", jint(st, S_STATUS), "state",
        step_state(busy, db_col_int64(st, S_STATUS), (int)db_col_int64(st, S_STATUS_NULL)),
        "machine", jtext(st, S_MACHINE), "errormsg", jtext(st, S_ERROR), "propagatedfrom",
        jint(st, S_PROPAGATED), "resolveddrvpath", jtext(st, S_RESOLVED), "resolvedstep",
        jint(st, S_RESOLVED_STEP), "resolvedbuild", jint(st, S_RESOLVED_BUILD), "starttime",
        jint(st, S_START), "stoptime", jint(st, S_STOP));
}

static void print_step_text(json_t *s)
{
    StrVec k = {0};
    const char *m = jesc(&k, s, "machine");
    const char *resolved = jesc(&k, s, "resolveddrvpath");
    const char *err = jesc(&k, s, "errormsg");
    json_t *from = json_object_get(s, "propagatedfrom");
    printf("%-5" JSON_INTEGER_FORMAT " %-5s %-22s %s",
           json_integer_value(json_object_get(s, "stepnr")),
           strcmp(json_string_value(json_object_get(s, "type")), "build") ? "subst" : "build",
           json_string_value(json_object_get(s, "state")), jesc(&k, s, "drvpath"));
    if (m && m[0])
        printf(" on %s", m);
    if (json_is_integer(from))
        printf(" (from build %" JSON_INTEGER_FORMAT ")", json_integer_value(from));
    printf("\n");
    if (resolved) {
        json_t *rs = json_object_get(s, "resolvedstep"), *rb = json_object_get(s, "resolvedbuild");
        printf("      -> resolved to %s/%s", NIX_STORE_DIR, resolved);
        if (json_is_integer(rs))
            printf(" (step %" JSON_INTEGER_FORMAT ")", json_integer_value(rs));
        else if (json_is_integer(rb))
            printf(" (built in build %" JSON_INTEGER_FORMAT ")", json_integer_value(rb));
        else
            printf(" (not yet scheduled)");
        printf("\n");
    }
    if (err && err[0])
        printf("      %s\n", err);
    strvec_dispose(&k);
}

int cli_cmd_steps(CliConfig *cfg, int argc, char **argv)
{
    Db *db = NULL;
    Err e = {0};
    DbStmt *st = NULL;
    json_t *arr;
    int64_t build;
    int json = 0, rc;
    argc = take_json(argc, argv, &json);
    if (argc != 2 || util_parse_i64(argv[1], &build) < 0) {
        cli_error("usage: sluice steps [--json] BUILD");
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
    arr = json_array();
    rc = db_query(db,
                  "SELECT s.stepnr, s.type, s.drvPath, s.busy, s.status, s.status IS NULL, "
                  "s.resolvedDrvPath, s.machine, s.errorMsg, s.propagatedFrom, "
                  "(SELECT r.stepnr FROM BuildSteps r WHERE r.build = s.build AND "
                  " r.drvPath = $2 || s.resolvedDrvPath AND (r.status IS NULL OR r.status <> $3) "
                  " ORDER BY r.status IS NULL DESC, r.stepnr DESC LIMIT 1), "
                  "(SELECT r.build FROM BuildSteps r WHERE r.drvPath = $2 || s.resolvedDrvPath "
                  " AND r.type = $4 AND r.status = $5 ORDER BY r.build LIMIT 1), "
                  "s.startTime, s.stopTime "
                  "FROM BuildSteps s WHERE s.build = $1 ORDER BY s.stepnr",
                  DB_ARGS(DB_P_INT(build), DB_P_TEXT(NIX_STORE_DIR "/"),
                          DB_P_INT(DB_STATUS_RESOLVED), DB_P_INT(DB_STEP_BUILD),
                          DB_P_INT(DB_STATUS_SUCCESS)),
                  &st, &e);
    if (rc == 0) {
        while ((rc = db_step(st, &e)) == 1)
            json_array_append_new(arr, step_json(st));
        db_stmt_done(st);
    }
    db_close(db);
    if (rc < 0) {
        json_decref(arr);
        return cli_fail(&e);
    }
    if (json) {
        print_json(arr);
        return 0;
    }
    printf("%-5s %-5s %-22s %s\n", "step", "type", "status", "derivation");
    for (size_t i = 0; i < json_array_size(arr); i++)
        print_step_text(json_array_get(arr, i));
    json_decref(arr);
    return 0;
}
