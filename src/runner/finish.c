/*
 * finish.c: what happens when a worker is done with a step, in two parts: one database
 * transaction that records the outcome (record.c; the DB leads), then one locked
 * section that brings the graph in line (memory follows).
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
 *               step waits for it (requeue.c; no row: nothing was dispatched)
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runner/finish.h"
#include "runner/graph.h"
#include "runner/lock.h"
#include "runner/machines.h"
#include "runner/phases.h"
#include "runner/record.h"
#include "runner/requeue.h"
#include "runner/results.h"
#include "runner/roots.h"
#include "runner/services.h"
#include "runner/step.h"

int64_t runner__retry_time(const Runner *r, int tries, int64_t last_stop)
{
    double d;
    if (tries <= 0)
        return 0;
    d = (double)r->opt.retry_interval * pow(r->opt.retry_backoff, (double)(tries - 1));
    if (d > 86400.0)
        d = 86400.0;
    return last_stop + (int64_t)d;
}

void runner__outcome_dispose(Outcome *o)
{
    free(o->msg);
    free(o->requeue_drv);
    strvec_dispose(&o->out_names);
    strvec_dispose(&o->out_paths);
    runner__output_facts_dispose(&o->facts);
}

void runner__outcome_set_msg(Outcome *o, const char *msg)
{
    free(o->msg);
    o->msg = xstrdup(msg ? msg : "");
}

/* What a step's end does: the transaction's content and whether the step is retried.
 * Decided under the lock from the outcome and the step's tries. */
static int decide(Runner *r, Worker *w, const Outcome *o, FinishTx *t)
{
    Step *s;
    int retry = 0;
    runner__lock(r);
    s = w->step;
    runner__graph_charge_jobsets(r, s, t->start, t->stop);
    if (o->status == DB_STATUS_SUCCESS) {
        t->n_builds = s->builds.n;
        t->builds = xcalloc(t->n_builds + 1, sizeof *t->builds);
        for (uint32_t i = 0; i < s->builds.n; i++)
            t->builds[i].id = ((Build *)s->builds.v[i])->id;
    } else if (o->status != DB_STATUS_CANCELLED) {
        retry = o->can_retry &&
                (o->blame == BLAME_NOBODY || (o->blame != BLAME_STEP && !w->machine->is_local) ||
                 (int)s->tries + 1 < r->opt.max_retries);
        if (!retry)
            runner__collect_dependents(r, s, &t->builds, &t->n_builds);
    }
    runner__unlock(r);
    t->finished = xcalloc(t->n_builds + 1, sizeof *t->finished);
    return retry;
}

/* Facts of the outputs (sizes, closure size, nix-support) only for steps that finish
 * builds: a closure walk per dependency step would cost O(closure). */
static void collect_facts(Runner *r, Worker *w, Outcome *o, size_t n_builds)
{
    StoreConn *c = NULL;
    Err e = {0};
    if (o->status != DB_STATUS_SUCCESS || n_builds == 0 || o->facts.size)
        return;
    if (store_machine_query_get(r->local_store, &c, &e) == 0) {
        if (runner__output_facts_collect(c, o->out_names.v, o->out_paths.v, o->out_paths.n,
                                         &o->facts, &e) < 0)
            log_warn("step %s: output facts: %s", w->drv_path, e.msg);
        store_machine_query_put(r->local_store, c);
    }
}

/* FailedPaths entries of a cacheable failure: the drv of a CA step, else its outputs. */
static void failed_paths(Worker *w, FinishTx *t)
{
    if (w->is_resolved || w->two_phase) {
        t->cache_paths = xcalloc(1, sizeof *t->cache_paths);
        t->cache_paths[0] = xstrdup(w->drv_path);
        t->n_cache = 1;
        return;
    }
    t->cache_paths = xcalloc(w->n_static + 1, sizeof *t->cache_paths);
    for (size_t i = 0; i < w->n_static; i++)
        if (w->static_paths[i])
            t->cache_paths[t->n_cache++] = xstrdup(w->static_paths[i]);
}

/* The one transaction of the step's end. */
static int record(Runner *r, Db *db, Worker *w, Outcome *o, FinishTx *t, int retry, Err *e)
{
    if (o->status == DB_STATUS_SUCCESS) {
        t->out_names = o->out_names.v;
        t->out_paths = o->out_paths.v;
        t->n_outputs = o->out_names.n;
        t->resolved_base = w->is_resolved ? nix_store_path_base(w->drv_path) : NULL;
        for (size_t i = 0; i < o->out_paths.n; i++)
            runner__root_output(r, db, o->out_paths.v[i], w->build_id);
        return runner__record_success(db, t, e);
    }
    if (o->status == DB_STATUS_CANCELLED) {
        t->status = DB_STATUS_CANCELLED;
        return w->stepnr > 0 ? runner__record_retry(db, t, e) : 0;
    }
    if (retry) {
        t->status = DB_STATUS_ABORTED;
        return runner__record_retry(db, t, e);
    }
    if (o->can_cache && (o->status == DB_STATUS_FAILED || o->status == DB_STATUS_NOT_DETERMINISTIC))
        failed_paths(w, t);
    return runner__record_failure(db, t, e);
}

/* A step to run again: at once when the machine was at fault (or nobody), else after
 * its backoff, counting the try.  Lock held. */
static void retry_step(Runner *r, Worker *w, Step *s, const Outcome *o, int recorded, int64_t now)
{
    RUNNER_ASSERT_LOCKED(r);
    if (recorded &&
        (o->blame == BLAME_NOBODY || (o->blame != BLAME_STEP && !w->machine->is_local))) {
        runner__step_retry_at(r, s, now); /* not the step's fault: elsewhere, not counted */
    } else {
        s->tries++;
        if (s->tries > atomic_load(&r->stats.steps_max_tries))
            atomic_store(&r->stats.steps_max_tries, s->tries);
        runner__step_retry_at(r, s, runner__retry_time(r, s->tries, now));
    }
    atomic_fetch_add(&r->stats.steps_retried, 1);
    if (r->opt.build_one && s->builds.n && recorded && !r->stop_error) {
        /* Hydra's runner exits with status 1 here instead of retrying */
        r->stop_error = xasprintf("build %" PRId64 ": %s failed (%s), not retried with "
                                  "--build-one",
                                  ((Build *)s->builds.v[0])->id, w->drv_path,
                                  o->msg && o->msg[0] ? o->msg : "a transient failure");
        runner__stop_locked(r);
    }
}

/* A step that succeeded leaves the graph; its finished builds go with it.  Lock held. */
static void step_succeeded(Runner *r, Worker *w, Step *s, const Outcome *o)
{
    RUNNER_ASSERT_LOCKED(r);
    if (r->ingest_active) /* the pass in progress must not walk it again */
        map_put(r->g.finished_drvs, s->drv_path, (void *)1);
    runner__graph_step_succeeded(r, s);
    atomic_fetch_add(&r->stats.steps_done, 1);
    atomic_fetch_add(&r->stats.step_time_ms_total,
                     (uint64_t)(w->start_ms ? util_now_ms() - w->start_ms : 0));
    atomic_fetch_add(&r->stats.step_build_time_ms_total,
                     (uint64_t)(o->stop > o->start && o->start ? o->stop - o->start : 0) * 1000);
}

/* The graph follows the recorded outcome (status: what was recorded).  Lock held. */
static void apply(Runner *r, Worker *w, const Outcome *o, int status, int retry, int recorded,
                  int64_t now)
{
    Step *s = w->step;
    RUNNER_ASSERT_LOCKED(r);
    s->worker = NULL;
    s->machine = NULL;
    runner__machine_release(
        r, w, status,
        status != DB_STATUS_SUCCESS && o->blame != BLAME_NOBODY ? o->blame : BLAME_STEP, o->msg);
    if (recorded && status == DB_STATUS_SUCCESS) {
        step_succeeded(r, w, s, o);
    } else if (status == DB_STATUS_CANCELLED) {
        runner__step_move(r, s, STEP_FAILED);
        runner__graph_step_forget(r, s);
    } else if (retry) {
        retry_step(r, w, s, o, recorded, now);
    } else {
        runner__graph_fail_with_rdeps(r, s);
        atomic_fetch_add(&r->stats.steps_failed, 1);
    }
}

void runner__step_finished(Runner *r, Db *db, Worker *w, Outcome *o)
{
    FinishTx t = {0};
    Err e = {0};
    Db *own_db = NULL;
    int status = o->status, rc, retry;
    int64_t now = util_time_now();

    t.w = w;
    t.status = status;
    t.msg = o->msg;
    t.can_cache = o->can_cache;
    t.start = o->start ? o->start : (w->start_time ? w->start_time : now);
    t.stop = o->stop ? o->stop : now;
    t.facts = &o->facts;
    if (w->start_ms)
        runner_histo_observe(&r->stats.step_duration, util_now_ms() - (uint64_t)w->start_ms);
    if (o->requeue_drv) {
        runner__requeue_input(r, db, w, o->requeue_drv);
        return;
    }
    if (!db && runner__db_get(r, &own_db, &e) == 0)
        db = own_db; /* the worker had none: the result is written if the DB is back */

    retry = decide(r, w, o, &t);
    collect_facts(r, w, o, t.n_builds);
    rc = record(r, db, w, o, &t, retry, &e);

    runner__lock(r);
    if (rc < 0) {
        /* The DB did not take it: the step is tried again, and its busy row is marked
         * as soon as the database takes writes (runner__mark_unrecorded). */
        log_error("step %s: cannot record the result: %s", w->drv_path, e.msg);
        retry = 1;
        status = DB_STATUS_ABORTED;
        if (w->stepnr > 0)
            runner__unrecorded_add(r, w->build_id, w->stepnr, t.stop);
    }
    apply(r, w, o, status, retry, rc == 0, now);
    for (size_t i = 0; i < t.n_finished; i++) {
        atomic_fetch_add(&r->stats.builds_done, 1);
        if (status == DB_STATUS_SUCCESS)
            atomic_fetch_add(&r->stats.builds_succeeded, 1);
        else
            atomic_fetch_add(&r->stats.builds_failed, 1);
    }
    runner__wake_dispatcher(r);
    runner__unlock(r);
    if (rc == 0)
        runner__journal_step_end(w, &t, status, retry, o->msg);
    for (size_t i = 0; i < t.n_finished; i++)
        runner__build_finished(r, t.finished[i]);
    for (size_t i = 0; i < t.n_cache; i++)
        free(t.cache_paths[i]);
    free(t.cache_paths);
    free(t.builds);
    free(t.finished);
    runner__db_put(r, own_db);
    o->status = status;
}
