/*
 * finish.c: what happens when a worker is done with a step, in two parts: one database
 * transaction that records the outcome (record.c; the DB leads), then one locked section that
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

void runner__step_finished(Runner *r, Db *db, Worker *w, int *pstatus, int can_retry, int can_cache,
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
        runner__requeue_input(r, db, w, requeue_drv);
        return;
    }
    if (!db && runner__db_get(r, &own_db, &e) == 0)
        db = own_db; /* the worker had none: the result is written if the DB is back */

    runner__lock(r);
    s = w->step;
    runner__graph_charge_jobsets(r, s, t.start, t.stop);
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
            runner__collect_dependents(r, s, &t.builds, &t.n_builds);
    }
    runner__unlock(r);
    t.finished = xcalloc(t.n_builds + 1, sizeof *t.finished);

    if (status == 0 && t.n_builds > 0 && !facts->size) {
        /* facts of the outputs (sizes, closure size, nix-support) only for steps that
         * finish builds: a closure walk per dependency step would cost O(closure) */
        StoreConn *c = NULL;
        if (store_machine_query_get(r->local_store, &c, &e) == 0) {
            if (runner__output_facts_collect(c, names->v, paths->v, paths->n, facts, &e) < 0)
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
            runner__root_output(r, db, paths->v[i], w->build_id);
        rc = runner__record_success(db, &t, &e);
    } else if (status == 4) {
        t.status = 4;
        rc = w->stepnr > 0 ? runner__record_retry(db, &t, &e) : 0;
    } else if (retry) {
        t.status = 3;
        rc = runner__record_retry(db, &t, &e);
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
        rc = runner__record_failure(db, &t, &e);
    }
    runner__lock(r);
    if (rc < 0) {
        /* The DB did not take it: the step is tried again, and its busy row is marked
         * as soon as the database takes writes (runner__mark_unrecorded). */
        log_error("step %s: cannot record the result: %s", w->drv_path, e.msg);
        retry = 1;
        status = 3;
        if (w->stepnr > 0)
            runner__unrecorded_add(r, w->build_id, w->stepnr, t.stop);
    }
    s = w->step;
    s->worker = NULL;
    s->machine = NULL;
    runner__machine_release(r, w, status, status != 0 && blame != BLAME_NOBODY ? blame : BLAME_STEP,
                            msg);
    if (rc == 0 && status == 0) {
        PtrVec done = {0};
        runner__graph_step_done(r, s, &done);
        for (uint32_t i = 0; i < done.n; i++) {
            Build *b = done.v[i];
            b->finished = 1;
            runner__graph_build_forget(r, b);
        }
        ptrvec_dispose(&done);
        if (r->ingest_active)
            map_put(r->g.finished_drvs, s->drv_path, (void *)1);
        runner__graph_step_forget(r, s);
        atomic_fetch_add(&r->stats.steps_done, 1);
        atomic_fetch_add(&r->stats.step_time_ms_total,
                         (uint64_t)(w->start_ms ? util_now_ms() - w->start_ms : 0));
        atomic_fetch_add(&r->stats.step_build_time_ms_total,
                         (uint64_t)(stop > start && start ? stop - start : 0) * 1000);
    } else if (status == 4) {
        runner__step_move(r, s, STEP_FAILED);
        runner__graph_step_forget(r, s);
    } else if (retry) {
        if (rc == 0 && (blame == BLAME_NOBODY || (blame != BLAME_STEP && !w->machine->is_local))) {
            /* the machine's fault, not the step's: try elsewhere without counting */
            runner__step_retry_at(r, s, now);
        } else {
            s->tries++;
            if (s->tries > atomic_load(&r->stats.steps_max_tries))
                atomic_store(&r->stats.steps_max_tries, s->tries);
            runner__step_retry_at(r, s, runner__retry_time(r, s->tries, now));
        }
        atomic_fetch_add(&r->stats.steps_retried, 1);
        if (r->opt.build_one && s->builds.n && rc == 0 && !r->stop_error) {
            /* Hydra's runner exits with status 1 here instead of retrying */
            r->stop_error = xasprintf("build %" PRId64 ": %s failed (%s), not retried with "
                                      "--build-one",
                                      ((Build *)s->builds.v[0])->id, w->drv_path,
                                      msg && msg[0] ? msg : "a transient failure");
            runner__stop_locked(r);
        }
    } else {
        runner__graph_fail_with_rdeps(r, s);
        atomic_fetch_add(&r->stats.steps_failed, 1);
    }
    for (size_t i = 0; i < t.n_finished; i++) {
        atomic_fetch_add(&r->stats.builds_done, 1);
        if (status == 0)
            atomic_fetch_add(&r->stats.builds_succeeded, 1);
        else
            atomic_fetch_add(&r->stats.builds_failed, 1);
    }
    runner__graph_wake_dispatcher(r);
    runner__unlock(r);
    if (rc == 0)
        runner__journal_step_end(w, &t, status, retry, msg);
    for (size_t i = 0; i < t.n_finished; i++)
        runner__build_finished(r, t.finished[i]);
    for (size_t i = 0; i < t.n_cache; i++)
        free(t.cache_paths[i]);
    free(t.cache_paths);
    free(t.builds);
    free(t.finished);
    runner__db_put(r, own_db);
    *pstatus = status;
}
