/*
 * record.c: the record layer.  The database transactions that end a step (success,
 * failure with its dependent builds, a retry or cancellation), the journal lines told
 * after they committed, and the busy rows whose result could not be written, marked
 * once the database takes writes again.  Nothing here changes the graph.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runner/graph.h"
#include "runner/hooks.h"
#include "runner/lock.h"
#include "runner/logs.h"
#include "runner/rdb.h"
#include "runner/record.h"
#include "runner/results.h"
#include "runner/roots.h"

/* Lock held. */
void runner__unrecorded_add(Runner *r, int64_t build, int32_t stepnr, int64_t stop)
{
    RUNNER_ASSERT_LOCKED(r);
    if (r->n_unrecorded == r->cap_unrecorded) {
        r->cap_unrecorded = r->cap_unrecorded ? 2 * r->cap_unrecorded : 8;
        r->unrecorded = xrealloc(r->unrecorded, r->cap_unrecorded * sizeof *r->unrecorded);
    }
    r->unrecorded[r->n_unrecorded].build = build;
    r->unrecorded[r->n_unrecorded].stepnr = stepnr;
    r->unrecorded[r->n_unrecorded].stop = stop;
    r->n_unrecorded++;
}

/* The log path in step_finished: the plain file, as Hydra's runner names it (the log
 * was compressed beside it before this notification, so hydra-notify's CompressLog
 * finds nothing left to do). */
static char *log_file_for(Runner *r, const char *drv)
{
    char *p = runner_log_path(r->opt.log_dir, drv);
    if (p)
        p[strlen(p) - 4] = '\0';
    return p ? p : xstrdup("");
}

/* The last touch of a finished busy row: timesBuilt as Hydra's runner records it, then
 * step_finished. */
static int notify_step_finished(Runner *r, Db *db, Worker *w, int32_t stepnr, Err *e)
{
    char *lf, *payload;
    int rc = runner__rdb_step_times_built(db, w->build_id, stepnr, w->times_built, w->non_det, e);
    if (rc < 0)
        return rc;
    lf = log_file_for(r, w->drv_path);
    payload = xasprintf("%" PRId64 "\t%d\t%s", w->build_id, stepnr, lf);
    rc = db_notify(db, DB_CH_STEP_FINISHED, payload, e);
    free(payload);
    free(lf);
    return rc;
}

static int success_tx(Db *db, void *payload, Err *e)
{
    FinishTx *t = payload;
    Worker *w = t->w;
    int64_t overhead = w->overhead_ms;
    int rc;
    t->n_finished = 0;
    rc = runner__rdb_finish_step(db, w->build_id, w->stepnr, 0, NULL, t->stop, w->machine->row_name,
                                 overhead, t->out_names, t->out_paths, t->n_outputs, e);
    if (rc < 0)
        return rc;
    rc = notify_step_finished(w->r, db, w, w->stepnr, e);
    if (rc < 0)
        return rc;
    runner__crash_point(w->r, "inside-finish-tx");
    if (t->resolved_base) {
        PtrVec ids = {0};
        rc = runner__rdb_builds_resolving_to(db, t->resolved_base, &ids, e);
        for (uint32_t i = 0; rc == 0 && i < ids.n; i++) {
            int64_t b = (int64_t)(intptr_t)ids.v[i];
            RdbStepRow row = {0};
            int32_t nr;
            if (b == w->build_id)
                continue;
            rc = runner__rdb_build_has_success(db, b, w->drv_path, e);
            if (rc != 0)
                continue;
            row.build = b;
            row.type = 1;
            row.drv_path = w->drv_path;
            row.start_time = t->start;
            row.stop_time = t->stop;
            row.system = w->system;
            row.status = 0;
            row.machine = "";
            row.out_names = t->out_names;
            row.out_paths = t->out_paths;
            row.n_outputs = t->n_outputs;
            rc = runner__rdb_insert_step(db, &row, &nr, e);
        }
        ptrvec_dispose(&ids);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < t->n_builds; i++) {
        RdbBuildResult br = {0};
        br.id = t->builds[i].id;
        br.status = t->facts->failed ? 6 : 0;
        br.start_time = t->start;
        br.stop_time = t->stop;
        br.is_cached = t->builds[i].id != w->build_id;
        br.size = t->facts->size;
        br.closure_size = t->facts->closure_size;
        br.release_name = t->facts->release_name;
        br.out_names = t->out_names;
        br.out_paths = t->out_paths;
        br.n_outputs = t->n_outputs;
        br.products = t->facts->products;
        br.n_products = t->facts->n_products;
        br.metrics = t->facts->metrics;
        br.n_metrics = t->facts->n_metrics;
        rc = runner__rdb_finish_build(db, &br, e);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            t->finished[t->n_finished++] = br.id;
            rc = runner__roots_release_build(db, br.id, e);
            if (rc < 0)
                return rc;
            rc = db_notify_build_finished(db, br.id, NULL, 0, e);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int failure_tx(Db *db, void *payload, Err *e)
{
    FinishTx *t = payload;
    Worker *w = t->w;
    int64_t *deps = NULL;
    size_t n_deps = 0;
    int rc = 0;
    t->n_finished = 0;
    if (w->stepnr > 0) {
        rc = runner__rdb_finish_step(db, w->build_id, w->stepnr, t->status, t->msg, t->stop,
                                     w->machine->row_name, 0, NULL, NULL, 0, e);
        if (rc < 0)
            return rc;
        rc = notify_step_finished(w->r, db, w, w->stepnr, e);
        if (rc < 0)
            return rc;
    }
    deps = xcalloc(t->n_builds + 1, sizeof *deps);
    for (size_t i = 0; i < t->n_builds; i++) {
        DepBuild *b = &t->builds[i];
        RdbBuildResult br = {0};
        if (b->id != w->build_id || w->stepnr <= 0) {
            RdbStepRow row = {0};
            int32_t nr;
            row.build = b->id;
            row.type = 0;
            row.drv_path = w->drv_path;
            row.start_time = t->start ? t->start : t->stop;
            row.stop_time = t->stop;
            row.system = w->system;
            row.status = t->status;
            row.propagated_from = b->id != w->build_id ? w->build_id : 0;
            row.error_msg = t->msg;
            row.machine = w->machine ? w->machine->row_name : "";
            rc = runner__rdb_insert_step(db, &row, &nr, e);
            if (rc < 0)
                goto out;
        }
        br.id = b->id;
        br.status = runner__dependent_status(t->status, b->is_top);
        br.start_time = t->start ? t->start : t->stop;
        br.stop_time = t->stop;
        br.is_cached = t->status == 8;
        rc = runner__rdb_finish_build(db, &br, e);
        if (rc < 0)
            goto out;
        if (rc == 1) {
            t->finished[t->n_finished++] = b->id;
            rc = runner__roots_release_build(db, b->id, e);
            if (rc < 0)
                goto out;
            if (b->id != w->build_id)
                deps[n_deps++] = b->id;
        }
        rc = 0;
    }
    if (t->can_cache && t->n_cache) {
        rc = runner__rdb_failed_paths_add(db, t->cache_paths, t->n_cache, e);
        if (rc < 0)
            goto out;
    }
    if (t->n_finished)
        rc = db_notify_build_finished(db, w->build_id, deps, n_deps, e);
out:
    free(deps);
    return rc;
}

static int retry_tx(Db *db, void *payload, Err *e)
{
    FinishTx *t = payload;
    Worker *w = t->w;
    int rc;
    if (w->stepnr > 0) {
        rc = runner__rdb_finish_step(db, w->build_id, w->stepnr, t->status, t->msg, t->stop,
                                     w->machine->row_name, 0, NULL, NULL, 0, e);
        if (rc < 0)
            return rc;
        return notify_step_finished(w->r, db, w, w->stepnr, e);
    }
    /* no busy row was written: leave one attempt row all the same */
    {
        RdbStepRow row = {0};
        int32_t nr;
        row.build = w->build_id;
        row.drv_path = w->drv_path;
        row.start_time = t->stop;
        row.stop_time = t->stop;
        row.system = w->system;
        row.status = t->status;
        row.error_msg = t->msg;
        row.machine = w->machine->row_name;
        rc = runner__rdb_insert_step(db, &row, &nr, e);
        if (rc == 0 && nr > 0)
            rc = notify_step_finished(w->r, db, w, nr, e);
        return rc;
    }
}

/* Builds that depend on s, each with whether s is its top level. Lock held. */
void runner__collect_dependents(Runner *r, Step *s, DepBuild **out, size_t *n)
{
    RUNNER_ASSERT_LOCKED(r);
    PtrVec builds = {0};
    runner__graph_dependent_builds(r, s, &builds);
    *out = xcalloc(builds.n + 1, sizeof **out);
    *n = builds.n;
    for (uint32_t i = 0; i < builds.n; i++) {
        Build *b = builds.v[i];
        (*out)[i].id = b->id;
        (*out)[i].is_top = b->toplevel == s;
    }
    ptrvec_dispose(&builds);
}

/* The journal's story of a step's end and of the builds it finished: one line each,
 * with Hydra's status names, after the transaction committed. */
void runner__journal_step_end(Worker *w, const FinishTx *t, int status, int retry, const char *msg)
{
    const char *m = w->machine->row_name[0] ? w->machine->row_name : "localhost";
    const char *name = nix_store_path_name(w->drv_path);
    int nl = (int)strlen(name) - (util_ends_with(name, ".drv") ? 4 : 0);
    int ml = msg ? (int)strcspn(msg, "\n") : 0; /* the reason: the message's first line */
    int64_t secs = t->stop > t->start ? t->stop - t->start : 0;
    if (status == 0)
        log_info("build %" PRId64 " step %d: %.*s on %s succeeded in %" PRId64 " s", w->build_id,
                 w->stepnr, nl, name, m, secs);
    else if (retry)
        log_warn("build %" PRId64 " step %d: %.*s on %s failed after %" PRId64
                 " s, will be retried: %.*s",
                 w->build_id, w->stepnr, nl, name, m, secs, ml, msg ? msg : "");
    else
        log_warn("build %" PRId64 " step %d: %.*s on %s %s after %" PRId64 " s: %.*s", w->build_id,
                 w->stepnr, nl, name, m, db_status_name(status), secs, ml, msg ? msg : "");
    runner__journal_builds_finished(t, status);
}

void runner__journal_builds_finished(const FinishTx *t, int status)
{
    for (size_t i = 0; i < t->n_finished; i++) {
        int bs = 0;
        for (size_t j = 0; status != 0 && j < t->n_builds; j++)
            if (t->builds[j].id == t->finished[i])
                bs = runner__dependent_status(status, t->builds[j].is_top);
        if (bs == 0)
            log_info("build %" PRId64 " finished: %s", t->finished[i], db_status_name(bs));
        else
            log_warn("build %" PRId64 " finished: %s", t->finished[i], db_status_name(bs));
    }
}

/* db_tx, or the error of having no connection (the worker could not get one). */
static int record_tx(Db *db, DbTxFn fn, FinishTx *t, Err *e)
{
    if (!db)
        return e->code ? e->code : err_set(e, ERR_DB, "no database connection");
    return db_tx(db, fn, t, e);
}

/* Busy rows whose step's result could not be written: marked (status 3, busy 0) once
 * the database takes writes again; the step itself waits for its retry meanwhile.
 * Called by the monitor between events; those still refused stay listed. */
void runner__mark_unrecorded(Runner *r, Db *db)
{
    Unrecorded *v;
    size_t n, kept = 0;
    runner__lock(r);
    if (!r->n_unrecorded) {
        runner__unlock(r);
        return;
    }
    v = r->unrecorded;
    n = r->n_unrecorded;
    r->unrecorded = NULL;
    r->n_unrecorded = r->cap_unrecorded = 0;
    runner__unlock(r);
    for (size_t i = 0; i < n; i++) {
        Err e = {0};
        int rc = db_exec(db,
                         "UPDATE BuildSteps SET busy = 0, status = 3, errorMsg = $3, "
                         "stopTime = $4 WHERE build = $1 AND stepnr = $2 AND busy <> 0",
                         DB_ARGS(DB_P_INT(v[i].build), DB_P_INT(v[i].stepnr),
                                 DB_P_TEXT("the step's result could not be recorded"),
                                 DB_P_INT(v[i].stop)),
                         &e);
        if (rc < 0)
            v[kept++] = v[i];
    }
    if (kept) {
        runner__lock(r);
        for (size_t i = 0; i < kept; i++)
            runner__unrecorded_add(r, v[i].build, v[i].stepnr, v[i].stop);
        runner__unlock(r);
    }
    free(v);
}

int runner__record_success(Db *db, FinishTx *t, Err *e)
{
    return record_tx(db, success_tx, t, e);
}

int runner__record_failure(Db *db, FinishTx *t, Err *e)
{
    return record_tx(db, failure_tx, t, e);
}

int runner__record_retry(Db *db, FinishTx *t, Err *e)
{
    return record_tx(db, retry_tx, t, e);
}
