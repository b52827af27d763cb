/*
 * finish.c: what happens when a worker is done with a step, in two parts: one database
 * transaction that records the outcome (the DB leads), then one locked section that
 * brings the graph in line (memory follows).
 *
 *   success     row status 0 and outputs; every build whose top level this is
 *               finished (0 or 6; isCachedBuild unless it is the build the step ran
 *               for); for a resolved P', a type-1 row in every other build holding a
 *               status-13 row pointing at P'.  Then rdeps are woken.
 *   retry       row status 3; the step waits for retry-interval * backoff^(tries-1)
 *   failure     row status; every dependent build gets a row (propagatedFrom) and its
 *               status by Hydra's rule; FailedPaths for cacheable failures
 *   cancelled   row status 4; the step is dropped
 *   requeue     an input's output is gone: that input becomes a step again and this
 *               step waits for it (no row: nothing was dispatched)
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runner/runner_int.h"

int64_t runner_retry_time(const Runner *r, int tries, int64_t last_stop)
{
    double d;
    if (tries <= 0)
        return 0;
    d = (double)r->opt.retry_interval * pow(r->opt.retry_backoff, (double)(tries - 1));
    if (d > 86400.0)
        d = 86400.0;
    return last_stop + (int64_t)d;
}

/* Lock held. */
static void unrecorded_add(Runner *r, int64_t build, int32_t stepnr, int64_t stop)
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

typedef struct DepBuild {
    int64_t id;
    int is_top; /* the failed step is (now) its top level */
} DepBuild;

typedef struct FinishTx {
    Worker *w;
    int status;
    const char *msg;
    int can_cache;
    char *const *out_names;
    char *const *out_paths;
    size_t n_outputs;
    const OutputFacts *facts;
    int64_t start, stop;
    DepBuild *builds; /* success: builds to finish; failure: dependent builds */
    size_t n_builds;
    char **cache_paths; /* FailedPaths entries */
    size_t n_cache;
    const char *resolved_base; /* success of a resolved P': its basename */
    int64_t *finished;         /* OUT: builds finished by this tx */
    size_t n_finished;
} FinishTx;

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
    int rc = rdb_step_times_built(db, w->build_id, stepnr, w->times_built, w->non_det, e);
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
    rc = rdb_finish_step(db, w->build_id, w->stepnr, 0, NULL, t->stop, w->machine->row_name,
                         overhead, t->out_names, t->out_paths, t->n_outputs, e);
    if (rc < 0)
        return rc;
    rc = notify_step_finished(w->r, db, w, w->stepnr, e);
    if (rc < 0)
        return rc;
    runner_crash_point(w->r, "inside-finish-tx");
    if (t->resolved_base) {
        PtrVec ids = {0};
        rc = rdb_builds_resolving_to(db, t->resolved_base, &ids, e);
        for (uint32_t i = 0; rc == 0 && i < ids.n; i++) {
            int64_t b = (int64_t)(intptr_t)ids.v[i];
            RdbStepRow row = {0};
            int32_t nr;
            if (b == w->build_id)
                continue;
            rc = rdb_build_has_success(db, b, w->drv_path, e);
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
            rc = rdb_insert_step(db, &row, &nr, e);
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
        rc = rdb_finish_build(db, &br, e);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            t->finished[t->n_finished++] = br.id;
            rc = runner_roots_release_build(db, br.id, e);
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
        rc = rdb_finish_step(db, w->build_id, w->stepnr, t->status, t->msg, t->stop,
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
            rc = rdb_insert_step(db, &row, &nr, e);
            if (rc < 0)
                goto out;
        }
        br.id = b->id;
        br.status = runner_dependent_status(t->status, b->is_top);
        br.start_time = t->start ? t->start : t->stop;
        br.stop_time = t->stop;
        br.is_cached = t->status == 8;
        rc = rdb_finish_build(db, &br, e);
        if (rc < 0)
            goto out;
        if (rc == 1) {
            t->finished[t->n_finished++] = b->id;
            rc = runner_roots_release_build(db, b->id, e);
            if (rc < 0)
                goto out;
            if (b->id != w->build_id)
                deps[n_deps++] = b->id;
        }
        rc = 0;
    }
    if (t->can_cache && t->n_cache) {
        rc = rdb_failed_paths_add(db, t->cache_paths, t->n_cache, e);
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
        rc = rdb_finish_step(db, w->build_id, w->stepnr, t->status, t->msg, t->stop,
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
        rc = rdb_insert_step(db, &row, &nr, e);
        if (rc == 0 && nr > 0)
            rc = notify_step_finished(w->r, db, w, nr, e);
        return rc;
    }
}

/* Builds that depend on s, each with whether s is its top level. Lock held. */
static void collect_dependents(Runner *r, Step *s, DepBuild **out, size_t *n)
{
    RUNNER_ASSERT_LOCKED(r);
    PtrVec builds = {0};
    graph_dependent_builds(r, s, &builds);
    *out = xcalloc(builds.n + 1, sizeof **out);
    *n = builds.n;
    for (uint32_t i = 0; i < builds.n; i++) {
        Build *b = builds.v[i];
        (*out)[i].id = b->id;
        (*out)[i].is_top = b->toplevel == s;
    }
    ptrvec_dispose(&builds);
}

void runner_worker_release_slot(Runner *r, Worker *w)
{
    RUNNER_ASSERT_LOCKED(r);
    if (w->slot_released)
        return;
    w->slot_released = 1;
    if (w->machine && w->machine->current_jobs > 0)
        w->machine->current_jobs--;
    graph_wake_dispatcher(r);
}

static void release_machine(Runner *r, Worker *w, int status, Blame blame, const char *msg)
{
    RUNNER_ASSERT_LOCKED(r);
    Machine *m = w->machine;
    if (status == 0)
        m->steps_done++;
    else if (status != 4 && blame != BLAME_NOBODY)
        m->steps_failed++;
    runner_worker_release_slot(r, w);
    m->last_seen = util_time_now();
    if (blame != BLAME_STEP) {
        m->consecutive_failures++;
        runner_machine_disable(r, m, msg, blame == BLAME_UNTRUSTED);
    } else {
        m->consecutive_failures = 0;
    }
    ptrvec_remove(&r->workers, w);
    if (r->running > 0)
        r->running--;
}

static void journal_builds_finished(const FinishTx *t, int status);

/* The journal's story of a step's end and of the builds it finished: one line each,
 * with Hydra's status names, after the transaction committed. */
static void journal_step_end(Worker *w, const FinishTx *t, int status, int retry, const char *msg)
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
    journal_builds_finished(t, status);
}

static void journal_builds_finished(const FinishTx *t, int status)
{
    for (size_t i = 0; i < t->n_finished; i++) {
        int bs = 0;
        for (size_t j = 0; status != 0 && j < t->n_builds; j++)
            if (t->builds[j].id == t->finished[i])
                bs = runner_dependent_status(status, t->builds[j].is_top);
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

void runner_step_finished(Runner *r, Db *db, Worker *w, int *pstatus, int can_retry, int can_cache,
                          Blame blame, const char *requeue_drv, const char *msg, StrVec *names,
                          StrVec *paths, OutputFacts *facts, int64_t start, int64_t stop)
{
    FinishTx t = {0};
    Err e = {0};
    Db *own_db = NULL;
    Step *s;
    int status = *pstatus;
    int rc = 0, retry = 0;
    int64_t now = util_time_now();

    t.w = w;
    t.status = status;
    t.msg = msg;
    t.can_cache = can_cache;
    t.start = start ? start : (w->start_time ? w->start_time : now);
    t.stop = stop ? stop : now;
    t.facts = facts;
    if (w->start_ms)
        runner_histo_observe(&r->stats.step_duration, util_now_ms() - (uint64_t)w->start_ms);

    if (requeue_drv) {
        runner_requeue_input(r, db, w, requeue_drv);
        return;
    }
    if (!db && runner_db_get(r, &own_db, &e) == 0)
        db = own_db; /* the worker had none: the result is written if the DB is back */

    runner_lock(r);
    s = w->step;
    graph_charge_jobsets(r, s, t.start, t.stop);
    if (status == 0) {
        t.n_builds = s->builds.n;
        t.builds = xcalloc(t.n_builds + 1, sizeof *t.builds);
        for (uint32_t i = 0; i < s->builds.n; i++)
            t.builds[i].id = ((Build *)s->builds.v[i])->id;
    } else if (status != 4) {
        retry =
            can_retry && (blame == BLAME_NOBODY || (blame != BLAME_STEP && !w->machine->is_local) ||
                          (int)s->tries + 1 < r->opt.max_retries);
        if (!retry)
            collect_dependents(r, s, &t.builds, &t.n_builds);
    }
    runner_unlock(r);
    t.finished = xcalloc(t.n_builds + 1, sizeof *t.finished);

    if (status == 0 && t.n_builds > 0 && !facts->size) {
        /* facts of the outputs (sizes, closure size, nix-support) only for steps that
         * finish builds: a closure walk per dependency step would cost O(closure) */
        StoreConn *c = NULL;
        if (store_machine_query_get(r->local_store, &c, &e) == 0) {
            if (output_facts_collect(c, names->v, paths->v, paths->n, facts, &e) < 0)
                log_warn("step %s: output facts: %s", w->drv_path, e.msg);
            store_machine_query_put(r->local_store, c);
        }
        err_clear(&e);
    }
    if (status == 0) {
        t.out_names = names->v;
        t.out_paths = paths->v;
        t.n_outputs = names->n;
        t.resolved_base = w->is_resolved ? nix_store_path_base(w->drv_path) : NULL;
        for (size_t i = 0; i < paths->n; i++)
            runner_root_output(r, db, paths->v[i], w->build_id);
        rc = record_tx(db, success_tx, &t, &e);
    } else if (status == 4) {
        t.status = 4;
        rc = w->stepnr > 0 ? record_tx(db, retry_tx, &t, &e) : 0;
    } else if (retry) {
        t.status = 3;
        rc = record_tx(db, retry_tx, &t, &e);
    } else {
        if (can_cache && (status == 1 || status == 12)) {
            if (w->is_resolved || w->two_phase) {
                t.cache_paths = xcalloc(1, sizeof *t.cache_paths);
                t.cache_paths[0] = xstrdup(w->drv_path);
                t.n_cache = 1;
            } else {
                t.cache_paths = xcalloc(w->n_static + 1, sizeof *t.cache_paths);
                for (size_t i = 0; i < w->n_static; i++)
                    if (w->static_paths[i])
                        t.cache_paths[t.n_cache++] = xstrdup(w->static_paths[i]);
            }
        }
        rc = record_tx(db, failure_tx, &t, &e);
    }
    runner_lock(r);
    if (rc < 0) {
        /* The DB did not take it: the step is tried again, and its busy row is marked
         * as soon as the database takes writes (runner_mark_unrecorded). */
        log_error("step %s: cannot record the result: %s", w->drv_path, e.msg);
        retry = 1;
        status = 3;
        if (w->stepnr > 0)
            unrecorded_add(r, w->build_id, w->stepnr, t.stop);
    }
    s = w->step;
    s->worker = NULL;
    s->machine = NULL;
    release_machine(r, w, status, status != 0 && blame != BLAME_NOBODY ? blame : BLAME_STEP, msg);
    if (rc == 0 && status == 0) {
        PtrVec done = {0};
        graph_step_done(r, s, &done);
        for (uint32_t i = 0; i < done.n; i++) {
            Build *b = done.v[i];
            b->finished = 1;
            graph_build_forget(r, b);
        }
        ptrvec_dispose(&done);
        if (r->ingest_active)
            map_put(r->g.finished_drvs, s->drv_path, (void *)1);
        graph_step_forget(r, s);
        atomic_fetch_add(&r->stats.steps_done, 1);
        atomic_fetch_add(&r->stats.step_time_ms_total,
                         (uint64_t)(w->start_ms ? util_now_ms() - w->start_ms : 0));
        atomic_fetch_add(&r->stats.step_build_time_ms_total,
                         (uint64_t)(stop > start && start ? stop - start : 0) * 1000);
    } else if (status == 4) {
        step_move(r, s, STEP_FAILED);
        graph_step_forget(r, s);
    } else if (retry) {
        if (rc == 0 && (blame == BLAME_NOBODY || (blame != BLAME_STEP && !w->machine->is_local))) {
            /* the machine's fault, not the step's: try elsewhere without counting */
            step_retry_at(r, s, now);
        } else {
            s->tries++;
            if (s->tries > atomic_load(&r->stats.steps_max_tries))
                atomic_store(&r->stats.steps_max_tries, s->tries);
            step_retry_at(r, s, runner_retry_time(r, s->tries, now));
        }
        atomic_fetch_add(&r->stats.steps_retried, 1);
        if (r->opt.build_one && s->builds.n && rc == 0 && !r->stop_error) {
            /* Hydra's runner exits with status 1 here instead of retrying */
            r->stop_error = xasprintf("build %" PRId64 ": %s failed (%s), not retried with "
                                      "--build-one",
                                      ((Build *)s->builds.v[0])->id, w->drv_path,
                                      msg && msg[0] ? msg : "a transient failure");
            runner_stop_locked(r);
        }
    } else {
        graph_fail_with_rdeps(r, s);
        atomic_fetch_add(&r->stats.steps_failed, 1);
    }
    for (size_t i = 0; i < t.n_finished; i++) {
        atomic_fetch_add(&r->stats.builds_done, 1);
        if (status == 0)
            atomic_fetch_add(&r->stats.builds_succeeded, 1);
        else
            atomic_fetch_add(&r->stats.builds_failed, 1);
    }
    graph_wake_dispatcher(r);
    runner_unlock(r);
    if (rc == 0)
        journal_step_end(w, &t, status, retry, msg);
    for (size_t i = 0; i < t.n_finished; i++)
        runner_build_finished(r, t.finished[i]);
    for (size_t i = 0; i < t.n_cache; i++)
        free(t.cache_paths[i]);
    free(t.cache_paths);
    free(t.builds);
    free(t.finished);
    runner_db_put(r, own_db);
    *pstatus = status;
}

/* Fail a step that is not running (unresolvable CA drv, cached failure found at
 * resolution, unsupported system): every dependent build fails with Hydra's rules.
 * The step is pinned while its rows are written: by the caller (pinned = 1: the step
 * must be PINNED), or here (it must be neither running nor pinned by another thread;
 * else nothing is done). */
void runner_fail_step(Runner *r, Db *db, const char *drv_path, int status, const char *msg,
                      int pinned)
{
    FinishTx t = {0};
    Worker w = {0};
    Err e = {0};
    Step *s;
    int own_db = 0, rc;

    runner_lock(r);
    s = graph_step_get(r, drv_path);
    if (!s ||
        (pinned ? s->state != STEP_PINNED : s->state == STEP_RUNNING || s->state == STEP_PINNED)) {
        runner_unlock(r);
        return;
    }
    if (!pinned)
        step_pin(r, s); /* nobody else touches it now */
    collect_dependents(r, s, &t.builds, &t.n_builds);
    w.r = r;
    w.drv_path = (char *)drv_path;
    w.machine = &r->no_machine;
    for (size_t i = 0; i < t.n_builds; i++)
        if (!w.build_id || t.builds[i].id < w.build_id)
            w.build_id = t.builds[i].id;
    w.system = xstrdup(s->system);
    runner_unlock(r);

    t.finished = xcalloc(t.n_builds + 1, sizeof *t.finished);
    t.w = &w;
    t.status = status;
    t.msg = msg;
    t.stop = util_time_now();
    t.start = t.stop;
    rc = 0;
    if (!db) {
        rc = runner_db_get(r, &db, &e);
        own_db = rc == 0;
    }
    if (rc == 0 && t.n_builds)
        rc = db_tx(db, failure_tx, &t, &e);
    if (rc < 0)
        log_error("failing %s: %s", drv_path, e.msg);
    else
        log_info("step %s failed: %s", drv_path, msg);
    runner_lock(r);
    s = graph_step_get(r, drv_path);
    if (s && s->state == STEP_PINNED) {
        if (rc < 0) {
            step_retry_at(r, s, util_time_now() + 5);
        } else {
            graph_fail_with_rdeps(r, s);
        }
    }
    for (size_t i = 0; i < t.n_finished; i++) {
        atomic_fetch_add(&r->stats.builds_done, 1);
        atomic_fetch_add(&r->stats.builds_failed, 1);
    }
    if (status == 8)
        atomic_fetch_add(&r->stats.steps_cached_failure, 1);
    if (status == 9 && rc == 0)
        atomic_fetch_add(&r->stats.steps_unsupported, 1);
    graph_wake_dispatcher(r);
    runner_unlock(r);
    if (rc == 0)
        journal_builds_finished(&t, status);
    for (size_t i = 0; i < t.n_finished; i++)
        runner_build_finished(r, t.finished[i]);
    if (own_db)
        runner_db_put(r, db);
    free((char *)w.system);
    free(t.builds);
    free(t.finished);
}

/* Busy rows whose step's result could not be written: marked (status 3, busy 0) once
 * the database takes writes again; the step itself waits for its retry meanwhile.
 * Called by the monitor between events; those still refused stay listed. */
void runner_mark_unrecorded(Runner *r, Db *db)
{
    Unrecorded *v;
    size_t n, kept = 0;
    runner_lock(r);
    if (!r->n_unrecorded) {
        runner_unlock(r);
        return;
    }
    v = r->unrecorded;
    n = r->n_unrecorded;
    r->unrecorded = NULL;
    r->n_unrecorded = r->cap_unrecorded = 0;
    runner_unlock(r);
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
        runner_lock(r);
        for (size_t i = 0; i < kept; i++)
            unrecorded_add(r, v[i].build, v[i].stepnr, v[i].stop);
        runner_unlock(r);
    }
    free(v);
}
