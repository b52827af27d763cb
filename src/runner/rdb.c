/*
 * rdb.c: the runner's SQL statements on Hydra's schema (hydra-behaviour §2); record.c
 * and a few files with statements of their own (monitor.c, roots.c, ingest.c,
 * substitute.c, runner.c) have the rest.
 *
 * Reads are index-driven: BuildSteps by drvPath, BuildStepOutputs by (build, stepnr),
 * Builds by finished = 0, BuildSteps by busy != 0.  Writes happen inside the db_tx
 * bodies of record.c; the helpers here only issue statements on the Db they are given.
 *
 * BuildSteps rows written by sluice:
 *   type 0, busy 1..50, status NULL     a step running on a machine
 *   type 0, status 0..12                its result (one row per attempt)
 *   type 0, status 13, resolvedDrvPath  P resolved to P' (a pure redirection)
 *   type 1, status 0, machine ''        outputs found valid (local realisation), or the
 *                                       successful P' recorded in another build
 *   type 0, status 8                    a cached failure (FailedPaths)
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runner/rdb.h"

int runner__rdb_clear_busy(Db *db, Err *e)
{
    int rc = db_exec(db,
                     "UPDATE BuildSteps SET busy = 0, status = $3, stopTime = $1, "
                     "errorMsg = $2 WHERE busy <> 0",
                     DB_ARGS(DB_P_INT(util_time_now()), DB_P_TEXT(RDB_INTERRUPTED_MSG),
                             DB_P_INT(DB_STATUS_ABORTED)),
                     e);
    return rc < 0 ? rc : 0;
}

void runner__rdb_build_row_dispose(RdbBuildRow *b)
{
    free(b->drv_path);
    free(b->job);
}

/* Unfinished builds in the order they are loaded: global priority, then id. */
int runner__rdb_load_unfinished(Db *db, RdbBuildRow **rows, size_t *n, Err *e)
{
    DbStmt *st = NULL;
    RdbBuildRow *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc;
    rc = db_query(db,
                  "SELECT b.id, b.jobset_id, b.job, b.drvPath, b.globalPriority, b.priority, "
                  "b.maxsilent, b.timeout, b.timestamp, b.maxsilent IS NULL, b.timeout IS NULL "
                  "FROM Builds b WHERE b.finished = 0 ORDER BY b.globalPriority DESC, b.id",
                  NULL, 0, &st, e);
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1) {
        RdbBuildRow *b;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 256;
            v = xrealloc(v, cap * sizeof *v);
        }
        b = &v[cnt++];
        memset(b, 0, sizeof *b);
        b->id = db_col_int64(st, 0);
        b->jobset_id = db_col_int64(st, 1);
        b->job = xstrdup(db_col_text(st, 2) ? db_col_text(st, 2) : "");
        b->drv_path = xstrdup(db_col_text(st, 3) ? db_col_text(st, 3) : "");
        b->global_priority = (int32_t)db_col_int64(st, 4);
        b->local_priority = (int32_t)db_col_int64(st, 5);
        b->max_silent = db_col_int64(st, 9) ? -1 : (int32_t)db_col_int64(st, 6);
        b->timeout = db_col_int64(st, 10) ? -1 : (int32_t)db_col_int64(st, 7);
        b->timestamp = db_col_int64(st, 8);
    }
    db_stmt_done(st);
    if (rc < 0) {
        for (size_t i = 0; i < cnt; i++)
            runner__rdb_build_row_dispose(&v[i]);
        free(v);
        return rc;
    }
    *rows = v;
    *n = cnt;
    return 0;
}

/* (id, globalPriority) of every unfinished build, for cancel/bump handling. */
int runner__rdb_unfinished_ids(Db *db, Map *out_prio, Err *e)
{
    DbStmt *st = NULL;
    int rc =
        db_query(db, "SELECT id, globalPriority FROM Builds WHERE finished = 0", NULL, 0, &st, e);
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1) {
        char k[32];
        snprintf(k, sizeof k, "%" PRId64, db_col_int64(st, 0));
        map_put(out_prio, k, (void *)(intptr_t)(db_col_int64(st, 1) + 1));
    }
    db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int runner__rdb_load_jobsets(Db *db, Map *jobsets, int64_t since, const Map *repeats, Err *e)
{
    DbStmt *st = NULL;
    int rc =
        db_query(db, "SELECT id, schedulingShares, project, name FROM Jobsets", NULL, 0, &st, e);
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1) {
        char k[32];
        Jobset *js;
        snprintf(k, sizeof k, "%" PRId64, db_col_int64(st, 0));
        js = map_get(jobsets, k);
        if (!js) {
            js = xcalloc(1, sizeof *js);
            js->id = db_col_int64(st, 0);
            map_put(jobsets, k, js);
        }
        js->shares = db_col_int64(st, 1);
        js->seconds = 0;
        js->repeats = 0;
        if (repeats && map_size(repeats)) {
            char *name = xasprintf("%s:%s", db_col_text(st, 2) ? db_col_text(st, 2) : "",
                                   db_col_text(st, 3) ? db_col_text(st, 3) : "");
            js->repeats = (uint32_t)(uintptr_t)map_get(repeats, name);
            free(name);
        }
    }
    db_stmt_done(st);
    if (rc < 0)
        return rc;
    rc = db_query(db,
                  "SELECT b.jobset_id, sum(s.stopTime - s.startTime) FROM BuildSteps s "
                  "JOIN Builds b ON b.id = s.build WHERE s.stopTime > $1 AND s.type = $2 "
                  "AND s.startTime IS NOT NULL GROUP BY b.jobset_id",
                  DB_ARGS(DB_P_INT(since), DB_P_INT(DB_STEP_BUILD)), &st, e);
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1) {
        char k[32];
        Jobset *js;
        snprintf(k, sizeof k, "%" PRId64, db_col_int64(st, 0));
        js = map_get(jobsets, k);
        if (js)
            js->seconds = (double)db_col_int64(st, 1);
    }
    db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* Recorded outputs of drv_path: the outputs of its newest successful row, or of the
 * successful row of the drv its status-13 rows point at.  names/paths receive pairs
 * (output name, path); outputs recorded nowhere are absent. */
int runner__rdb_recorded_outputs(Db *db, const char *drv_path, StrVec *names, StrVec *paths, Err *e)
{
    DbStmt *st = NULL;
    char *resolved = NULL;
    int rc;
    rc = db_query(db,
                  "SELECT o.name, o.path FROM BuildSteps s JOIN BuildStepOutputs o "
                  "ON o.build = s.build AND o.stepnr = s.stepnr "
                  "WHERE s.drvPath = $1 AND s.status = $2 AND o.path IS NOT NULL "
                  "ORDER BY s.build DESC, s.stepnr DESC",
                  DB_ARGS(DB_P_TEXT(drv_path), DB_P_INT(DB_STATUS_SUCCESS)), &st, e);
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1) {
        const char *name = db_col_text(st, 0), *path = db_col_text(st, 1);
        if (!name || !path || strvec_contains(names, name))
            continue;
        strvec_push(names, name);
        strvec_push(paths, path);
    }
    db_stmt_done(st);
    if (rc < 0)
        return rc;
    /* follow the redirection of a resolved drv (index on drvPath both times) */
    rc = db_query_text(db,
                       "SELECT resolvedDrvPath FROM BuildSteps WHERE drvPath = $1 AND status = $2 "
                       "ORDER BY build DESC, stepnr DESC LIMIT 1",
                       DB_ARGS(DB_P_TEXT(drv_path), DB_P_INT(DB_STATUS_RESOLVED)), &resolved, e);
    if (rc < 0)
        return rc;
    if (rc == 1 && resolved && nix_store_basename_check(resolved, NULL) == 0) {
        char *rp = xasprintf("%s/%s", NIX_STORE_DIR, resolved);
        if (strcmp(rp, drv_path) != 0)
            rc = runner__rdb_recorded_outputs(db, rp, names, paths, e);
        free(rp);
    }
    free(resolved);
    return rc < 0 ? rc : 0;
}

/* The resolvedDrvPath (full path) a build already holds for drv, or NULL. */
int runner__rdb_build_resolution(Db *db, int64_t build, const char *drv_path, char **out, Err *e)
{
    char *base = NULL;
    int rc = db_query_text(
        db,
        "SELECT resolvedDrvPath FROM BuildSteps WHERE build = $1 AND "
        "drvPath = $2 AND status = $3 ORDER BY stepnr LIMIT 1",
        DB_ARGS(DB_P_INT(build), DB_P_TEXT(drv_path), DB_P_INT(DB_STATUS_RESOLVED)), &base, e);
    *out = NULL;
    if (rc < 0)
        return rc;
    if (rc == 1 && base && nix_store_basename_check(base, NULL) == 0)
        *out = xasprintf("%s/%s", NIX_STORE_DIR, base);
    free(base);
    return 0;
}

/* 1 when any of paths is in FailedPaths. */
int runner__rdb_failed_paths_any(Db *db, char *const *paths, size_t n, Err *e)
{
    for (size_t i = 0; i < n; i++) {
        int64_t one = 0;
        int rc;
        if (!paths[i])
            continue;
        rc = db_query_int64(db, "SELECT 1 FROM FailedPaths WHERE path = $1",
                            DB_ARGS(DB_P_TEXT(paths[i])), &one, e);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return 1;
    }
    return 0;
}

int runner__rdb_failed_paths_add(Db *db, char *const *paths, size_t n, Err *e)
{
    for (size_t i = 0; i < n; i++) {
        int64_t one = 0;
        int rc;
        if (!paths[i])
            continue;
        rc = db_query_int64(db, "SELECT 1 FROM FailedPaths WHERE path = $1",
                            DB_ARGS(DB_P_TEXT(paths[i])), &one, e);
        if (rc < 0)
            return rc;
        if (rc == 1)
            continue;
        rc = db_exec(db, "INSERT INTO FailedPaths (path) VALUES ($1)", DB_ARGS(DB_P_TEXT(paths[i])),
                     e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The latest build that had a failed (status 1) step for drv, for propagatedFrom of
 * cached-failure rows; 0 when none. */
int runner__rdb_last_failure_build(Db *db, const char *drv_path, int64_t *out, Err *e)
{
    int rc = db_query_int64(db,
                            "SELECT build FROM BuildSteps WHERE drvPath = $1 AND status = $2 "
                            "ORDER BY build DESC LIMIT 1",
                            DB_ARGS(DB_P_TEXT(drv_path), DB_P_INT(DB_STATUS_FAILED)), out, e);
    if (rc == 0)
        *out = 0;
    return rc < 0 ? rc : 0;
}

/* Insert a BuildSteps row and its BuildStepOutputs rows; *stepnr gets max+1 of the
 * build.  The row is described by r; outputs may have NULL paths. */
int runner__rdb_insert_step(Db *db, const RdbStepRow *r, int32_t *stepnr, Err *e)
{
    int64_t nr = 0;
    int rc;
    for (int attempt = 0; attempt < 100; attempt++) {
        rc = db_query_int64(
            db,
            "INSERT INTO BuildSteps (build, stepnr, type, drvPath, busy, startTime, stopTime, "
            "system, status, propagatedFrom, errorMsg, machine, resolvedDrvPath) "
            "SELECT $1, coalesce(max(stepnr), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
            "$12 FROM BuildSteps WHERE build = $1 "
            "ON CONFLICT DO NOTHING RETURNING stepnr",
            DB_ARGS(DB_P_INT(r->build), DB_P_INT(r->type), DB_P_TEXT(r->drv_path),
                    DB_P_INT(r->busy), DB_P_INT(r->start_time),
                    DB_P_INT_OR_NULL(r->stop_time, r->stop_time == 0), DB_P_TEXT(r->system),
                    DB_P_INT_OR_NULL(r->status, r->status < 0),
                    DB_P_INT_OR_NULL(r->propagated_from, r->propagated_from == 0),
                    DB_P_TEXT(r->error_msg), DB_P_TEXT(r->machine ? r->machine : ""),
                    DB_P_TEXT(r->resolved_drv_path)),
            &nr, e);
        if (rc < 0)
            return rc;
        if (rc == 1)
            break;
    }
    if (nr <= 0)
        return err_set(e, ERR_DB, "cannot allocate a step number in build %" PRId64, r->build);
    for (size_t i = 0; i < r->n_outputs; i++) {
        rc = db_exec(db,
                     "INSERT INTO BuildStepOutputs (build, stepnr, name, path) "
                     "VALUES ($1, $2, $3, $4)",
                     DB_ARGS(DB_P_INT(r->build), DB_P_INT(nr), DB_P_TEXT(r->out_names[i]),
                             DB_P_TEXT(r->out_paths ? r->out_paths[i] : NULL)),
                     e);
        if (rc < 0)
            return rc;
    }
    *stepnr = (int32_t)nr;
    return 0;
}

/* Finish a busy row with a status (and output paths on success). */
int runner__rdb_step_times_built(Db *db, int64_t build, int32_t stepnr, uint64_t times_built,
                                 int non_det, Err *e)
{
    int rc;
    if (times_built == 0)
        return 0;
    rc = db_exec(db,
                 "UPDATE BuildSteps SET timesBuilt = $3, isNonDeterministic = $4 WHERE build = $1 "
                 "AND stepnr = $2",
                 DB_ARGS(DB_P_INT(build), DB_P_INT(stepnr), DB_P_INT((int64_t)times_built),
                         times_built > 1 ? DB_P_INT(non_det ? 1 : 0) : DB_P_NULL),
                 e);
    return rc < 0 ? rc : 0;
}

int runner__rdb_finish_step(Db *db, int64_t build, int32_t stepnr, int status,
                            const char *error_msg, int64_t stop_time, const char *machine,
                            int64_t overhead_ms, char *const *out_names, char *const *out_paths,
                            size_t n, Err *e)
{
    int rc =
        db_exec(db,
                "UPDATE BuildSteps SET busy = 0, status = $3, errorMsg = $4, stopTime = $5, "
                "machine = $6, overhead = $7 WHERE build = $1 AND stepnr = $2",
                DB_ARGS(DB_P_INT(build), DB_P_INT(stepnr), DB_P_INT(status), DB_P_TEXT(error_msg),
                        DB_P_INT(stop_time), DB_P_TEXT(machine ? machine : ""),
                        DB_P_INT_OR_NULL(overhead_ms, overhead_ms <= 0)),
                e);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (!out_paths[i])
            continue;
        rc = db_exec(db,
                     "UPDATE BuildStepOutputs SET path = $4 WHERE build = $1 AND stepnr = $2 AND "
                     "name = $3",
                     DB_ARGS(DB_P_INT(build), DB_P_INT(stepnr), DB_P_TEXT(out_names[i]),
                             DB_P_TEXT(out_paths[i])),
                     e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int runner__rdb_set_busy(Db *db, int64_t build, int32_t stepnr, int phase, Err *e)
{
    int rc = db_exec(db,
                     "UPDATE BuildSteps SET busy = $3 WHERE build = $1 AND stepnr = $2 AND "
                     "busy <> 0 AND status IS NULL",
                     DB_ARGS(DB_P_INT(build), DB_P_INT(stepnr), DB_P_INT(phase)), e);
    return rc < 0 ? rc : 0;
}

/* Finish a build row (only when still unfinished). Returns 1 when it was finished by
 * this call, 0 when it was already finished. */
int runner__rdb_finish_build(Db *db, const RdbBuildResult *b, Err *e)
{
    int rc = db_exec(
        db,
        "UPDATE Builds SET finished = 1, buildStatus = $2, startTime = $3, "
        "stopTime = $4, isCachedBuild = $5, size = $6, closureSize = $7, "
        "releaseName = $8, notificationPendingSince = $4 "
        "WHERE id = $1 AND finished = 0",
        DB_ARGS(DB_P_INT(b->id), DB_P_INT(b->status), DB_P_INT(b->start_time),
                DB_P_INT(b->stop_time), DB_P_INT(b->is_cached),
                DB_P_INT_OR_NULL(b->size, b->status != DB_STATUS_SUCCESS &&
                                              b->status != DB_STATUS_FAILED_WITH_OUTPUT),
                DB_P_INT_OR_NULL(b->closure_size, b->status != DB_STATUS_SUCCESS &&
                                                      b->status != DB_STATUS_FAILED_WITH_OUTPUT),
                DB_P_TEXT(b->release_name)),
        e);
    if (rc <= 0)
        return rc;
    for (size_t i = 0; i < b->n_outputs; i++) {
        int r2 = db_exec(
            db, "UPDATE BuildOutputs SET path = $3 WHERE build = $1 AND name = $2",
            DB_ARGS(DB_P_INT(b->id), DB_P_TEXT(b->out_names[i]), DB_P_TEXT(b->out_paths[i])), e);
        if (r2 < 0)
            return r2;
    }
    if (b->status == DB_STATUS_SUCCESS || b->status == DB_STATUS_FAILED_WITH_OUTPUT) {
        int r2 =
            db_exec(db, "DELETE FROM BuildProducts WHERE build = $1", DB_ARGS(DB_P_INT(b->id)), e);
        if (r2 < 0)
            return r2;
        r2 = db_exec(db, "DELETE FROM BuildMetrics WHERE build = $1", DB_ARGS(DB_P_INT(b->id)), e);
        if (r2 < 0)
            return r2;
        for (size_t i = 0; i < b->n_products; i++) {
            const RdbProduct *p = &b->products[i];
            r2 = db_exec(
                db,
                "INSERT INTO BuildProducts (build, productnr, type, subtype, fileSize, "
                "sha256hash, path, name, defaultPath) VALUES ($1, $2, $3, $4, $5, $6, "
                "$7, $8, $9)",
                DB_ARGS(DB_P_INT(b->id), DB_P_INT(i + 1), DB_P_TEXT(p->type), DB_P_TEXT(p->subtype),
                        DB_P_INT_OR_NULL(p->file_size, p->file_size < 0), DB_P_TEXT(p->sha256),
                        DB_P_TEXT(p->path), DB_P_TEXT(p->name), DB_P_TEXT(p->default_path)),
                e);
            if (r2 < 0)
                return r2;
        }
        for (size_t i = 0; i < b->n_metrics; i++) {
            const RdbMetric *m = &b->metrics[i];
            r2 = db_exec(db,
                         "INSERT INTO BuildMetrics (build, name, unit, value, project, jobset, "
                         "job, timestamp) SELECT $1, $2, $3, $4, j.project, j.name, b.job, "
                         "b.timestamp FROM Builds b JOIN Jobsets j ON j.id = b.jobset_id "
                         "WHERE b.id = $1 ON CONFLICT DO NOTHING",
                         DB_ARGS(DB_P_INT(b->id), DB_P_TEXT(m->name), DB_P_TEXT(m->unit),
                                 DB_P_DOUBLE(m->value)),
                         e);
            if (r2 < 0)
                return r2;
        }
    }
    return 1;
}

/* Build ids (sorted) that hold a status-13 row pointing at resolved (basename). */
int runner__rdb_builds_resolving_to(Db *db, const char *resolved_base, PtrVec *ids_out, Err *e)
{
    DbStmt *st = NULL;
    int rc = db_query(db,
                      "SELECT DISTINCT s.build FROM BuildSteps s JOIN Builds b ON b.id = s.build "
                      "WHERE s.resolvedDrvPath = $1 AND s.status = $2 AND b.finished = 0 "
                      "ORDER BY s.build",
                      DB_ARGS(DB_P_TEXT(resolved_base), DB_P_INT(DB_STATUS_RESOLVED)), &st, e);
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1)
        ptrvec_push(ids_out, (void *)(intptr_t)db_col_int64(st, 0));
    db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* 1 when build has a successful row for drv. */
int runner__rdb_build_has_success(Db *db, int64_t build, const char *drv_path, Err *e)
{
    int64_t one;
    return db_query_int64(
        db,
        "SELECT 1 FROM BuildSteps WHERE build = $1 AND drvPath = $2 AND "
        "status = $3 LIMIT 1",
        DB_ARGS(DB_P_INT(build), DB_P_TEXT(drv_path), DB_P_INT(DB_STATUS_SUCCESS)), &one, e);
}

/* A build that is still unfinished in the DB? */
int runner__rdb_build_unfinished(Db *db, int64_t build, Err *e)
{
    int64_t one;
    return db_query_int64(db, "SELECT 1 FROM Builds WHERE id = $1 AND finished = 0",
                          DB_ARGS(DB_P_INT(build)), &one, e);
}

/* GC roots held by sluice (sluice_gcroots). */
int runner__rdb_root_add(Db *db, const char *root, const char *path, const char *kind,
                         int64_t build, Err *e)
{
    int rc =
        db_exec(db,
                "INSERT INTO sluice_gcroots (root, path, kind, build, created) VALUES ($1, $2, "
                "$3, $4, $5) ON CONFLICT DO NOTHING",
                DB_ARGS(DB_P_TEXT(root), DB_P_TEXT(path), DB_P_TEXT(kind),
                        DB_P_INT_OR_NULL(build, build == 0), DB_P_INT(util_time_now())),
                e);
    return rc < 0 ? rc : 0;
}

int runner__rdb_root_del(Db *db, const char *root, Err *e)
{
    int rc = db_exec(db, "DELETE FROM sluice_gcroots WHERE root = $1", DB_ARGS(DB_P_TEXT(root)), e);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- pending uploads */

/* words of a space-separated list (store paths hold no spaces) */
static void split_words(const char *s, StrVec *out)
{
    while (s && *s) {
        const char *sp = strchr(s, ' ');
        size_t n = sp ? (size_t)(sp - s) : strlen(s);
        if (n > 0)
            strvec_push_take(out, xstrndup(s, n));
        s = sp ? sp + 1 : NULL;
    }
}

static char *join_words(const StrVec *v)
{
    Buf b;
    buf_init(&b, LIMIT_BUF_DEFAULT);
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            buf_putc(&b, ' ');
        buf_puts(&b, v->v[i]);
    }
    return buf_take(&b, NULL);
}

int runner__rdb_upload_add(Db *db, const RdbUpload *u, Err *e)
{
    char *outs = join_words(&u->outputs), *from = join_words(&u->resolved_from);
    int rc = db_exec(db,
                     "INSERT INTO sluice_uploads (drvPath, outputs, resolvedFrom, realisations, "
                     "created) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (drvPath) DO UPDATE SET "
                     "outputs = excluded.outputs, resolvedFrom = excluded.resolvedFrom, "
                     "realisations = excluded.realisations",
                     DB_ARGS(DB_P_TEXT(u->drv_path), DB_P_TEXT(outs), DB_P_TEXT(from),
                             DB_P_INT(u->realisations), DB_P_INT(util_time_now())),
                     e);
    free(outs);
    free(from);
    return rc < 0 ? rc : 0;
}

int runner__rdb_upload_del(Db *db, const char *drv_path, Err *e)
{
    int rc = db_exec(db, "DELETE FROM sluice_uploads WHERE drvPath = $1",
                     DB_ARGS(DB_P_TEXT(drv_path)), e);
    return rc < 0 ? rc : 0;
}

void runner__rdb_upload_free(RdbUpload *u)
{
    if (!u)
        return;
    free(u->drv_path);
    strvec_dispose(&u->outputs);
    strvec_dispose(&u->resolved_from);
    free(u);
}

int runner__rdb_uploads_load(Db *db, PtrVec *out, Err *e)
{
    DbStmt *st = NULL;
    int rc = db_query(db,
                      "SELECT drvPath, outputs, resolvedFrom, realisations FROM sluice_uploads "
                      "ORDER BY created, drvPath",
                      NULL, 0, &st, e);
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1) {
        RdbUpload *u = xcalloc(1, sizeof *u);
        u->drv_path = xstrdup(db_col_text(st, 0) ? db_col_text(st, 0) : "");
        strvec_init(&u->outputs);
        strvec_init(&u->resolved_from);
        split_words(db_col_text(st, 1), &u->outputs);
        split_words(db_col_text(st, 2), &u->resolved_from);
        u->realisations = db_col_int64(st, 3) != 0;
        ptrvec_push(out, u);
    }
    db_stmt_done(st);
    return rc < 0 ? rc : 0;
}
