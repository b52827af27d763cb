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
#include "runner/facts.h"
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

/* ---------------------------------------------------------------- composites */

/* The composites every transaction below is built on: found_row (record.h), failed_row
 * (a type-0 row that ended without outputs, *nr its step number), build_result_success
 * (the result of a build whose top level succeeded, from the outputs' facts), and
 * build_end (the build finished unless it was already: 0; its GC roots released,
 * build_finished notified when `notify`; 1 when it was finished now). */

/* A failed or aborted row. */
typedef struct RecordFailure {
    int status;
    int64_t start, stop;
    int64_t propagated_from; /* 0: none */
    const char *msg;
    const char *machine; /* BuildSteps.machine ("" for none) */
} RecordFailure;

int runner__record_found_row(Db *db, StepRef ref, int64_t start, int64_t stop,
                             const RecordOutputs *o, Err *e)
{
    RdbStepRow row = {0};
    int32_t nr;
    row.build = ref.build;
    row.type = DB_STEP_SUBSTITUTION;
    row.drv_path = ref.drv_path;
    row.start_time = start;
    row.stop_time = stop;
    row.system = ref.system;
    row.status = DB_STATUS_SUCCESS;
    row.machine = "";
    row.out_names = o->names;
    row.out_paths = o->paths;
    row.n_outputs = o->n;
    return runner__rdb_insert_step(db, &row, &nr, e);
}

static int record_failed_row(Db *db, StepRef ref, const RecordFailure *f, int32_t *nr, Err *e)
{
    RdbStepRow row = {0};
    row.build = ref.build;
    row.type = DB_STEP_BUILD;
    row.drv_path = ref.drv_path;
    row.start_time = f->start;
    row.stop_time = f->stop;
    row.system = ref.system;
    row.status = f->status;
    row.propagated_from = f->propagated_from;
    row.error_msg = f->msg;
    row.machine = f->machine ? f->machine : "";
    return runner__rdb_insert_step(db, &row, nr, e);
}

static void build_result_success(RdbBuildResult *br, int64_t id, int64_t start, int64_t stop,
                                 int is_cached, const OutputFacts *f, const RecordOutputs *o)
{
    memset(br, 0, sizeof *br);
    br->id = id;
    br->status = f->failed ? DB_STATUS_FAILED_WITH_OUTPUT : DB_STATUS_SUCCESS;
    br->start_time = start;
    br->stop_time = stop;
    br->is_cached = is_cached;
    br->size = f->size;
    br->closure_size = f->closure_size;
    br->release_name = f->release_name;
    br->out_names = o->names;
    br->out_paths = o->paths;
    br->n_outputs = o->n;
    br->products = f->products;
    br->n_products = f->n_products;
    br->metrics = f->metrics;
    br->n_metrics = f->n_metrics;
}

static int record_build_end(Db *db, const RdbBuildResult *br, int notify, Err *e)
{
    int rc = runner__rdb_finish_build(db, br, e);
    if (rc <= 0)
        return rc;
    rc = runner__roots_release_build(db, br->id, e);
    if (rc == 0 && notify)
        rc = db_notify_build_finished(db, br->id, NULL, 0, e);
    return rc < 0 ? rc : 1;
}

/* One build whose top level succeeded ends (is_cached: it was built for another build,
 * or before); it is added to finished[] when it was finished now. */
static int end_build_ok(Db *db, int64_t id, int is_cached, int64_t start, int64_t stop,
                        const OutputFacts *f, const RecordOutputs *o, int64_t *finished,
                        size_t *n_finished, Err *e)
{
    RdbBuildResult br;
    int rc;
    build_result_success(&br, id, start, stop, is_cached, f, o);
    rc = record_build_end(db, &br, 1, e);
    if (rc == 1)
        finished[(*n_finished)++] = id;
    return rc < 0 ? rc : 0;
}

int runner__dependent_status(int step_status, int is_toplevel)
{
    if (step_status == DB_STATUS_FAILED || step_status == DB_STATUS_CACHED_FAILURE)
        return is_toplevel ? 1 : 2;
    return step_status;
}

/* ---------------------------------------------------------------- a step's end */

static int success_tx(Db *db, void *payload, Err *e)
{
    FinishTx *t = payload;
    Worker *w = t->w;
    RecordOutputs outs = {t->out_names, t->out_paths, t->n_outputs};
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
            if (b == w->build_id)
                continue;
            rc = runner__rdb_build_has_success(db, b, w->drv_path, e);
            if (rc == 1) { /* recorded before (a pass after a restart): the next build */
                rc = 0;
                continue;
            }
            if (rc == 0)
                rc = runner__record_found_row(db, (StepRef){b, w->drv_path, w->system}, t->start,
                                              t->stop, &outs, e);
        }
        ptrvec_dispose(&ids);
        if (rc < 0)
            return rc;
    }
    rc = 0;
    for (size_t i = 0; rc == 0 && i < t->n_builds; i++)
        rc = end_build_ok(db, t->builds[i].id, t->builds[i].id != w->build_id, t->start, t->stop,
                          t->facts, &outs, t->finished, &t->n_finished, e);
    return rc;
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
            RecordFailure f = {t->status, t->start ? t->start : t->stop,
                               t->stop,   b->id != w->build_id ? w->build_id : 0,
                               t->msg,    w->machine ? w->machine->row_name : ""};
            int32_t nr;
            rc = record_failed_row(db, (StepRef){b->id, w->drv_path, w->system}, &f, &nr, e);
            if (rc < 0)
                goto out;
        }
        br.id = b->id;
        br.status = runner__dependent_status(t->status, b->is_top);
        br.start_time = t->start ? t->start : t->stop;
        br.stop_time = t->stop;
        br.is_cached = t->status == DB_STATUS_CACHED_FAILURE;
        rc = record_build_end(db, &br, 0, e); /* one notification for all, below */
        if (rc < 0)
            goto out;
        if (rc == 1) {
            t->finished[t->n_finished++] = b->id;
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
        RecordFailure f = {t->status, t->stop, t->stop, 0, t->msg, w->machine->row_name};
        int32_t nr;
        rc = record_failed_row(db, (StepRef){w->build_id, w->drv_path, w->system}, &f, &nr, e);
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
    if (status == DB_STATUS_SUCCESS)
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
        for (size_t j = 0; status != DB_STATUS_SUCCESS && j < t->n_builds; j++)
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
                         "UPDATE BuildSteps SET busy = 0, status = $5, errorMsg = $3, "
                         "stopTime = $4 WHERE build = $1 AND stepnr = $2 AND busy <> 0",
                         DB_ARGS(DB_P_INT(v[i].build), DB_P_INT(v[i].stepnr),
                                 DB_P_TEXT("the step's result could not be recorded"),
                                 DB_P_INT(v[i].stop), DB_P_INT(DB_STATUS_ABORTED)),
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

/* ---------------------------------------------------------------- a step starts */

static int start_tx(Db *db, void *payload, Err *e)
{
    RecordStart *t = payload;
    RdbStepRow row = {0};
    int rc;
    char buf[64];
    t->cancelled = 0;
    rc = runner__rdb_build_unfinished(db, t->w->build_id, e);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        t->cancelled = 1;
        return 0;
    }
    /* as Hydra's runner: build_started for each build whose top-level step this is,
     * at every dispatch of it, before its step row */
    for (size_t i = 0; i < t->n_tops; i++) {
        snprintf(buf, sizeof buf, "%" PRId64, t->tops[i]);
        rc = db_notify(db, DB_CH_BUILD_STARTED, buf, e);
        if (rc < 0)
            return rc;
    }
    row.build = t->w->build_id;
    row.type = DB_STEP_BUILD;
    row.drv_path = t->w->drv_path;
    row.busy = DB_BUSY_PREPARING;
    row.start_time = util_time_now();
    row.system = t->system;
    row.status = -1;
    row.machine = t->w->machine->row_name;
    row.out_names = t->out_names;
    row.out_paths = t->out_paths;
    row.n_outputs = t->n;
    rc = runner__rdb_insert_step(db, &row, &t->stepnr, e);
    if (rc < 0)
        return rc;
    if (t->w->is_resolved && row.machine[0]) {
        /* Hydra's status-13 rows name the machine that got the resolved step */
        rc = db_exec(db,
                     "UPDATE BuildSteps SET machine = $1 WHERE status = $3 AND "
                     "resolvedDrvPath = $2 AND machine = ''",
                     DB_ARGS(DB_P_TEXT(row.machine), DB_P_TEXT(nix_store_path_base(t->w->drv_path)),
                             DB_P_INT(DB_STATUS_RESOLVED)),
                     e);
        if (rc < 0)
            return rc;
    }
    snprintf(buf, sizeof buf, "%" PRId64 "\t%d", t->w->build_id, t->stepnr);
    return db_notify(db, DB_CH_STEP_STARTED, buf, e);
}

int runner__record_step_start(Db *db, RecordStart *t, Err *e)
{
    return db_tx(db, start_tx, t, e);
}

/* ---------------------------------------------------------------- resolutions */

static int resolution_tx(Db *db, void *payload, Err *e)
{
    RecordResolution *t = payload;
    const char *base = nix_store_path_base(t->resolved);
    int64_t now = util_time_now();
    int rc = 0;
    t->written = 0;
    for (size_t i = 0; i < t->n_targets; i++) {
        char *have = NULL;
        RdbStepRow row = {0};
        int32_t nr;
        rc = runner__rdb_build_unfinished(db, t->targets[i], e);
        if (rc < 0)
            return rc;
        if (rc == 0)
            continue;
        rc = runner__rdb_build_resolution(db, t->targets[i], t->drv_path, &have, e);
        if (rc < 0)
            return rc;
        if (have) {
            free(have);
            continue;
        }
        row.build = t->targets[i];
        row.type = DB_STEP_BUILD;
        row.drv_path = t->drv_path;
        row.start_time = now;
        row.stop_time = now;
        row.system = t->system;
        row.status = DB_STATUS_RESOLVED;
        row.machine = "";
        row.resolved_drv_path = base;
        row.out_names = t->out_names;
        row.out_paths = t->out_paths;
        row.n_outputs = t->n_outputs;
        rc = runner__rdb_insert_step(db, &row, &nr, e);
        if (rc < 0)
            return rc;
        t->written++;
    }
    return 0;
}

int runner__record_resolution(Db *db, RecordResolution *t, Err *e)
{
    return db_tx(db, resolution_tx, t, e);
}

/* A found or already built P''s type-1 row in `build`, unless it has one. */
static int prebuilt_row(Db *db, const RecordPrebuilt *t, int64_t build, int64_t now, Err *e)
{
    RecordOutputs o = {t->names, t->paths, t->n};
    int rc = runner__rdb_build_has_success(db, build, t->resolved, e);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    return runner__record_found_row(db, (StepRef){build, t->resolved, t->system}, now, now, &o, e);
}

static int prebuilt_tx(Db *db, void *payload, Err *e)
{
    RecordPrebuilt *t = payload;
    RecordOutputs o = {t->names, t->paths, t->n};
    int64_t now = util_time_now();
    int rc = 0;
    t->n_finished = 0;
    if (!t->n_builds && t->row_build) {
        /* P is only a dependency: still record P''s outputs (type 1) so the steps
         * waiting for P find them */
        return prebuilt_row(db, t, t->row_build, now, e);
    }
    for (size_t i = 0; i < t->n_builds; i++) {
        rc = prebuilt_row(db, t, t->builds[i], now, e);
        if (rc == 0)
            rc = end_build_ok(db, t->builds[i], 1, now, now, t->facts, &o, t->finished,
                              &t->n_finished, e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int runner__record_prebuilt(Db *db, RecordPrebuilt *t, Err *e)
{
    return db_tx(db, prebuilt_tx, t, e);
}

/* ---------------------------------------------------------------- builds ended at ingest */

typedef struct CachedTx {
    int64_t build;
    const RecordOutputs *o;
    const OutputFacts *facts;
} CachedTx;

static int cached_tx(Db *db, void *payload, Err *e)
{
    CachedTx *t = payload;
    RdbBuildResult br;
    int64_t now = util_time_now();
    int rc;
    build_result_success(&br, t->build, now, now, 1, t->facts, t->o);
    rc = record_build_end(db, &br, 1, e);
    return rc < 0 ? rc : 0;
}

int runner__record_cached_build(Db *db, int64_t build, const RecordOutputs *o,
                                const OutputFacts *facts, Err *e)
{
    CachedTx t = {build, o, facts};
    return db_tx(db, cached_tx, &t, e);
}

static int ingest_failure_tx(Db *db, void *payload, Err *e)
{
    const RecordIngestFailure *t = payload;
    RdbBuildResult br = {0};
    int64_t now = util_time_now(), from = 0;
    int32_t nr;
    int rc;
    if (t->step_status == DB_STATUS_ABORTED && t->is_top) {
        /* the build's own .drv is gone: aborted as Hydra's runner aborts it, with no
         * step row and no notification */
        rc = db_exec(db,
                     "UPDATE Builds SET finished = 1, buildStatus = $3, startTime = $2, "
                     "stopTime = $2 WHERE id = $1 AND finished = 0",
                     DB_ARGS(DB_P_INT(t->build), DB_P_INT(now), DB_P_INT(DB_STATUS_ABORTED)), e);
        if (rc < 0)
            return rc;
        rc = runner__roots_release_build(db, t->build, e);
        return rc < 0 ? rc : 0;
    }
    if (t->step_status == DB_STATUS_CACHED_FAILURE) {
        rc = runner__rdb_last_failure_build(db, t->drv_path, &from, e);
        if (rc < 0)
            return rc;
    }
    {
        RecordFailure f = {t->step_status, now, now, from, t->msg, ""};
        rc = record_failed_row(db, (StepRef){t->build, t->drv_path, t->system}, &f, &nr, e);
        if (rc < 0)
            return rc;
    }
    br.id = t->build;
    br.status = runner__dependent_status(t->step_status, t->is_top);
    br.start_time = now;
    br.stop_time = now;
    br.is_cached = t->step_status == DB_STATUS_CACHED_FAILURE;
    rc = record_build_end(db, &br, 1, e);
    return rc < 0 ? rc : 0;
}

int runner__record_ingest_failure(Db *db, const RecordIngestFailure *t, Err *e)
{
    return db_tx(db, ingest_failure_tx, (void *)t, e);
}
