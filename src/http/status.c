/*
 * status.c: the JSON views.  /status and /status/machines come from the runner's
 * snapshots (runner_status_json, runner_machines_json: one short lock each) reshaped
 * the way Hydra's queue runner answers, so hydra-server's pages read them;
 * /status/build/ID/active and /build/ID read the database on the server's own
 * connections.
 *
 * /build/ID lists the build (keys as Hydra's build JSON: lower-case column names) and
 * its steps.  A step with status 13 (Resolved) carries `terminal`, the step that
 * realises its resolved drv: in the same build first (as Hydra's web UI looks for it),
 * else in any build (sluice records the one step of a resolved drv in one build only),
 * preferring a finished row with the lowest status, then the newest.
 */
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"

/* ---------------------------------------------------------------- Hydra shapes */

static json_int_t int_of(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* hydra-server's machine page lists a running step under the machine whose name
 * matches BuildSteps.machine, taking '' as "localhost" (as Hydra's runner names its
 * local machine); sluice's local store writes machine = '', so it is listed as
 * "localhost" here. */
static void local_as_localhost(json_t *ms)
{
    const char *name;
    json_t *m, *local = NULL;
    void *tmp;
    json_object_foreach_safe(ms, tmp, name, m)
    {
        if (json_is_true(json_object_get(m, "isLocal")) && strcmp(name, "localhost") != 0 &&
            !local && !json_object_get(ms, "localhost")) {
            local = json_incref(m);
            json_object_set_new(local, "storeUri", json_string(name));
            json_object_del(ms, name);
        }
    }
    if (local)
        json_object_set_new(ms, "localhost", local);
}

json_t *http__machines_doc(json_t *machines)
{
    json_t *doc = machines ? json_deep_copy(machines) : json_object();
    json_t *ms = json_object_get(doc, "machines"), *m;
    const char *name;
    int64_t now = util_time_now();
    if (!ms) {
        ms = json_object();
        json_object_set_new(doc, "machines", ms);
    }
    local_as_localhost(ms);
    json_object_foreach(ms, name, m)
    {
        json_int_t cur = int_of(m, "currentJobs"), max = int_of(m, "maxJobs");
        int enabled = json_is_true(json_object_get(m, "enabled"));
        json_t *stats = json_object(), *jobs = json_array(), *st;
        size_t i;
        /* what hydra-server's machine page and Hydra's queue runner call these */
        json_object_set_new(m, "hasStaticCapacity", json_boolean(cur < max));
        json_object_set_new(m, "hasDynamicCapacity", json_boolean(enabled));
        json_object_set_new(m, "hasCapacity", json_boolean(enabled && cur < max));
        json_object_set_new(m, "disabled", json_boolean(!enabled));
        json_object_set_new(stats, "currentJobs", json_integer(cur));
        json_object_set_new(stats, "nrStepsDone", json_integer(int_of(m, "nrStepsDone")));
        json_object_set_new(stats, "consecutiveFailures",
                            json_integer(int_of(m, "consecutiveFailures")));
        json_object_set_new(stats, "disabledUntil", json_integer(int_of(m, "disabledUntil")));
        json_object_set_new(stats, "lastPing", json_integer(int_of(m, "lastSeen")));
        json_object_set_new(stats, "sinceLastPing",
                            json_integer(int_of(m, "lastSeen") ? now - int_of(m, "lastSeen") : 0));
        json_object_set_new(m, "stats", stats);
        json_array_foreach(json_object_get(m, "currentSteps"), i, st)
        {
            json_t *d = json_object_get(st, "drvPath");
            if (json_is_string(d))
                json_array_append(jobs, d);
        }
        json_object_set_new(m, "jobs", jobs);
    }
    if (!json_object_get(doc, "machinesCount"))
        json_object_set_new(doc, "machinesCount", json_integer((json_int_t)json_object_size(ms)));
    return doc;
}

static void alias(json_t *o, const char *hydra_key, const char *our_key)
{
    json_t *v = json_object_get(o, our_key);
    if (v && !json_object_get(o, hydra_key))
        json_object_set_new(o, hydra_key, json_deep_copy(v));
}

json_t *http__status_doc(json_t *status, json_t *machines)
{
    json_t *doc = json_object(), *qr = status ? json_deep_copy(status) : json_object();
    json_t *md = http__machines_doc(machines), *m, *feat;
    const char *name;
    StrVec features;
    strvec_init(&features);

    /* Hydra's names for what the runner calls otherwise (same meaning) */
    alias(qr, "buildCount", "nrQueuedBuilds");
    alias(qr, "nrBuildsUnfinished", "nrQueuedBuilds");
    alias(qr, "stepCount", "nrUnfinishedSteps");
    alias(qr, "nrStepsUnfinished", "nrUnfinishedSteps");
    alias(qr, "runnableCount", "nrRunnableSteps");
    alias(qr, "nrStepsRunnable", "nrRunnableSteps");
    alias(qr, "queueStats", "runnable");
    json_object_foreach(json_object_get(md, "machines"), name, m)
    {
        size_t i;
        json_array_foreach(json_object_get(m, "supportedFeatures"), i,
                           feat) if (json_is_string(feat))
            strvec_push(&features, json_string_value(feat));
        json_array_foreach(json_object_get(m, "mandatoryFeatures"), i,
                           feat) if (json_is_string(feat))
            strvec_push(&features, json_string_value(feat));
    }
    strvec_sort_unique(&features);
    {
        json_t *a = json_array();
        for (size_t i = 0; i < features.n; i++)
            json_array_append_new(a, json_string(features.v[i]));
        json_object_set_new(qr, "supportedFeatures", a);
    }
    strvec_dispose(&features);
    json_object_set_new(doc, "queueRunner", qr);
    json_object_set(doc, "machines", json_object_get(md, "machines"));
    json_object_set(doc, "machinesCount", json_object_get(md, "machinesCount"));
    json_decref(md);
    return doc;
}

/* ---------------------------------------------------------------- handlers */

void http__handle_status(HttpReq *q, HttpReply *r)
{
    json_t *st = NULL, *ms = NULL;
    if (q->srv->runner) {
        st = runner_status_json(q->srv->runner);
        ms = runner_machines_json(q->srv->runner);
    }
    http__reply_json(r, MHD_HTTP_OK, http__status_doc(st, ms));
    json_decref(st);
    json_decref(ms);
}

void http__handle_machines(HttpReq *q, HttpReply *r)
{
    json_t *ms = q->srv->runner ? runner_machines_json(q->srv->runner) : NULL;
    http__reply_json(r, MHD_HTTP_OK, http__machines_doc(ms));
    json_decref(ms);
}

void http__handle_active(HttpReq *q, HttpReply *r, int64_t id)
{
    Db *db = NULL;
    Err e = {0};
    int64_t finished = 1;
    int rc = http__db_get(q->srv, &db, &e);
    json_t *j;
    if (rc == 0)
        rc = db_query_int64(db, "SELECT finished FROM Builds WHERE id = $1", DB_ARGS(DB_P_INT(id)),
                            &finished, &e);
    http__db_put(q->srv, db, rc < 0);
    if (rc < 0) {
        http__reply_db_error(r, &e);
        return;
    }
    /* as Hydra: active while the row says finished = 0; an unknown build is not */
    j = json_pack("{s:b}", "active", rc == 1 && finished == 0);
    if (q->srv->runner)
        json_object_set_new(j, "inRunner", json_boolean(runner_build_active(q->srv->runner, id)));
    http__reply_json(r, MHD_HTTP_OK, j);
}

json_t *http__json_col(DbStmt *st, int i, char kind)
{
    if (db_col_is_null(st, i))
        return json_null();
    switch (kind) {
    case 'i': return json_integer((json_int_t)db_col_int64(st, i));
    case 'b': return json_boolean(db_col_int64(st, i) != 0);
    default: return json_string(db_col_text(st, i) ? db_col_text(st, i) : "");
    }
}

/* Columns to keys: "key:kind" pairs in SELECT order. */
static void row_into(DbStmt *st, json_t *o, const char *const *spec, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *colon = strchr(spec[i], ':');
        char key[64];
        size_t kn = (size_t)(colon - spec[i]);
        memcpy(key, spec[i], kn);
        key[kn] = '\0';
        json_object_set_new(o, key, http__json_col(st, (int)i, colon[1]));
    }
}

static const char *const build_cols[] = {
    "id:i",          "finished:b", "buildstatus:i", "project:s",        "jobset:s",
    "job:s",         "drvpath:s",  "system:s",      "nixname:s",        "timestamp:i",
    "starttime:i",   "stoptime:i", "priority:i",    "globalpriority:i", "iscachedbuild:b",
    "releasename:s", "size:i",     "closuresize:i", "maxsilent:i",      "timeout:i",
};
static const char build_sql[] =
    "SELECT b.id, b.finished, b.buildStatus, j.project, j.name, b.job, b.drvPath, b.system, "
    "b.nixName, b.timestamp, b.startTime, b.stopTime, b.priority, b.globalPriority, "
    "b.isCachedBuild, b.releaseName, b.size, b.closureSize, b.maxsilent, b.timeout "
    "FROM Builds b LEFT JOIN Jobsets j ON j.id = b.jobset_id WHERE b.id = $1";

static const char *const step_cols[] = {
    "stepnr:i",         "type:i",      "drvpath:s",         "busy:i",    "status:i",
    "errormsg:s",       "starttime:i", "stoptime:i",        "machine:s", "system:s",
    "propagatedfrom:i", "overhead:i",  "resolveddrvpath:s",
};
static const char steps_sql[] =
    "SELECT stepnr, type, drvPath, busy, status, errorMsg, startTime, stopTime, machine, system, "
    "propagatedFrom, overhead, resolvedDrvPath FROM BuildSteps WHERE build = $1 "
    "ORDER BY stepnr LIMIT $2";

/* The step realising the resolved drv of a status-13 row (see the top of the file). */
static int find_terminal(Db *db, int64_t build, const char *drv_path, const char *resolved_base,
                         json_t **out, Err *e)
{
    static const char *const sql[2] = {
        "SELECT build, stepnr, status, busy, drvPath FROM BuildSteps "
        "WHERE build = $1 AND drvPath = $2 AND (status IS NULL OR status <> $3) "
        "ORDER BY CASE WHEN status IS NULL THEN 1 ELSE 0 END, status, stopTime DESC LIMIT 1",
        "SELECT build, stepnr, status, busy, drvPath FROM BuildSteps "
        "WHERE drvPath = $2 AND build <> $1 AND (status IS NULL OR status <> $3) "
        "ORDER BY CASE WHEN status IS NULL THEN 1 ELSE 0 END, status, stopTime DESC, build "
        "LIMIT 1",
    };
    const char *slash = strrchr(drv_path, '/');
    char *target;
    int rc = 0;
    *out = NULL;
    if (!slash || !resolved_base || strchr(resolved_base, '/'))
        return 0;
    target = xasprintf("%.*s/%s", (int)(slash - drv_path), drv_path, resolved_base);
    for (int k = 0; k < 2 && !*out; k++) {
        DbStmt *st = NULL;
        rc = db_query(db, sql[k],
                      DB_ARGS(DB_P_INT(build), DB_P_TEXT(target), DB_P_INT(DB_STATUS_RESOLVED)),
                      &st, e);
        if (rc < 0)
            break;
        rc = db_step(st, e);
        if (rc == 1) {
            json_t *t = json_object();
            int64_t b = db_col_int64(st, 0), n = db_col_int64(st, 1);
            char url[96];
            json_object_set_new(t, "buildId", json_integer((json_int_t)b));
            json_object_set_new(t, "stepnr", json_integer((json_int_t)n));
            json_object_set_new(t, "status", http__json_col(st, 2, 'i'));
            json_object_set_new(t, "busy", http__json_col(st, 3, 'i'));
            json_object_set_new(t, "busyName", json_string(db_busy_name(db_col_int64(st, 3))));
            json_object_set_new(t, "drvPath", http__json_col(st, 4, 's'));
            json_object_set_new(t, "sameBuild", json_boolean(k == 0));
            json_object_set_new(t, "statusName",
                                json_string(db_col_is_null(st, 2)
                                                ? "running"
                                                : db_status_name(db_col_int64(st, 2))));
            snprintf(url, sizeof url, "/build/%" PRId64 "/step/%" PRId64 "/log", b, n);
            json_object_set_new(t, "log", json_string(url));
            *out = t;
        }
        db_stmt_done(st);
        if (rc < 0)
            break;
    }
    free(target);
    return rc < 0 ? rc : 0;
}

typedef struct BuildView {
    int64_t id;
    json_t *doc;
} BuildView;

static int load_build(Db *db, BuildView *v, Err *e)
{
    DbStmt *st = NULL;
    json_t *b = NULL, *outs, *steps, *by_nr;
    char key[32];
    int rc, n = 0;
    rc = db_query(db, build_sql, DB_ARGS(DB_P_INT(v->id)), &st, e);
    if (rc < 0)
        return rc;
    rc = db_step(st, e);
    if (rc == 1) {
        b = json_object();
        row_into(st, b, build_cols, UTIL_ARRAY_LEN(build_cols));
    }
    db_stmt_done(st);
    if (rc <= 0)
        return rc;
    if (!json_is_null(json_object_get(b, "buildstatus")))
        json_object_set_new(
            b, "buildstatusName",
            json_string(db_status_name(json_integer_value(json_object_get(b, "buildstatus")))));

    outs = json_object();
    json_object_set_new(b, "buildoutputs", outs);
    rc = db_query(db, "SELECT name, path FROM BuildOutputs WHERE build = $1 ORDER BY name",
                  DB_ARGS(DB_P_INT(v->id)), &st, e);
    if (rc < 0)
        goto out;
    while ((rc = db_step(st, e)) == 1)
        json_object_set_new(outs, db_col_text(st, 0) ? db_col_text(st, 0) : "",
                            json_pack("{s:o}", "path", http__json_col(st, 1, 's')));
    db_stmt_done(st);
    if (rc < 0)
        goto out;

    steps = json_array();
    by_nr = json_object(); /* stepnr -> step (borrowed references) */
    json_object_set_new(b, "steps", steps);
    rc = db_query(db, steps_sql, DB_ARGS(DB_P_INT(v->id), DB_P_INT(HTTP_BUILD_STEPS_MAX + 1)), &st,
                  e);
    if (rc < 0) {
        json_decref(by_nr);
        goto out;
    }
    while ((rc = db_step(st, e)) == 1) {
        json_t *s;
        int64_t nr = db_col_int64(st, 0), status = db_col_int64(st, 4);
        int status_null = db_col_is_null(st, 4);
        if (++n > HTTP_BUILD_STEPS_MAX) {
            json_object_set_new(b, "stepsTruncated", json_true());
            break;
        }
        s = json_object();
        row_into(st, s, step_cols, UTIL_ARRAY_LEN(step_cols));
        json_object_set_new(s, "statusName",
                            json_string(status_null ? "running" : db_status_name(status)));
        json_object_set_new(s, "busyName", json_string(db_busy_name(db_col_int64(st, 3))));
        json_object_set_new(s, "outputs", json_object());
        if (db_col_int64(st, 1) == DB_STEP_BUILD && (status_null || status != DB_STATUS_RESOLVED)) {
            char url[96];
            snprintf(url, sizeof url, "/build/%" PRId64 "/step/%" PRId64 "/log", v->id, nr);
            json_object_set_new(s, "log", json_string(url));
        }
        snprintf(key, sizeof key, "%" PRId64, nr);
        json_object_set(by_nr, key, s);
        json_array_append_new(steps, s);
    }
    db_stmt_done(st);
    if (rc < 0) {
        json_decref(by_nr);
        goto out;
    }
    rc = db_query(db,
                  "SELECT stepnr, name, path FROM BuildStepOutputs WHERE build = $1 "
                  "ORDER BY stepnr, name",
                  DB_ARGS(DB_P_INT(v->id)), &st, e);
    if (rc < 0) {
        json_decref(by_nr);
        goto out;
    }
    while ((rc = db_step(st, e)) == 1) {
        json_t *s;
        snprintf(key, sizeof key, "%" PRId64, db_col_int64(st, 0));
        s = json_object_get(by_nr, key);
        if (s)
            json_object_set_new(json_object_get(s, "outputs"),
                                db_col_text(st, 1) ? db_col_text(st, 1) : "",
                                http__json_col(st, 2, 's'));
    }
    db_stmt_done(st);
    json_decref(by_nr);
    if (rc < 0)
        goto out;

    /* status-13 rows: link to the step of the resolved drv */
    {
        size_t i;
        json_t *s;
        json_array_foreach(steps, i, s)
        {
            json_t *t = NULL;
            const char *rdp = json_string_value(json_object_get(s, "resolveddrvpath"));
            if (json_integer_value(json_object_get(s, "status")) != DB_STATUS_RESOLVED ||
                json_is_null(json_object_get(s, "status")) || !rdp)
                continue;
            rc = find_terminal(db, v->id, json_string_value(json_object_get(s, "drvpath")), rdp, &t,
                               e);
            if (rc < 0)
                goto out;
            json_object_set_new(s, "terminal", t ? t : json_null());
        }
    }
    rc = 1;
out:
    if (rc == 1) {
        v->doc = b;
        b = NULL;
    }
    json_decref(b);
    return rc;
}

void http__handle_build(HttpReq *q, HttpReply *r, int64_t id)
{
    Db *db = NULL;
    Err e = {0};
    BuildView v = {id, NULL};
    int rc = http__db_get(q->srv, &db, &e);
    if (rc == 0)
        rc = load_build(db, &v, &e);
    http__db_put(q->srv, db, rc < 0);
    if (rc < 0) {
        http__reply_db_error(r, &e);
        return;
    }
    if (rc == 0) {
        http__reply_error(r, MHD_HTTP_NOT_FOUND, "no build %" PRId64, id);
        return;
    }
    if (q->srv->runner)
        json_object_set_new(v.doc, "inRunner",
                            json_boolean(runner_build_active(q->srv->runner, id)));
    {
        char url[64];
        snprintf(url, sizeof url, "/build/%" PRId64 "/log", id);
        json_object_set_new(v.doc, "log", json_string(url));
    }
    http__reply_json(r, MHD_HTTP_OK, v.doc);
}
