/*
 * fail.c: failing a step that is not running (an unresolvable CA derivation, a cached
 * failure found at resolution, an unsupported system, an input that cannot be read):
 * its rows and its dependent builds recorded in one transaction, then the step and
 * everything waiting for it leave the graph.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runner/fail.h"
#include "runner/graph.h"
#include "runner/lock.h"
#include "runner/record.h"
#include "runner/services.h"
#include "runner/step.h"

/* Fail a step that is not running (unresolvable CA drv, cached failure found at
 * resolution, unsupported system): every dependent build fails with Hydra's rules.
 * The step is pinned while its rows are written: by the caller (pinned = 1: the step
 * must be PINNED), or here (it must be neither running nor pinned by another thread;
 * else nothing is done). */
void runner__fail_step(Runner *r, Db *db, const char *drv_path, int status, const char *msg,
                       int pinned)
{
    FinishTx t = {0};
    Worker w = {0};
    Err e = {0};
    Step *s;
    int own_db = 0, rc;

    runner__lock(r);
    s = runner__graph_step_get(r, drv_path);
    if (!s ||
        (pinned ? s->state != STEP_PINNED : s->state == STEP_RUNNING || s->state == STEP_PINNED)) {
        runner__unlock(r);
        return;
    }
    if (!pinned)
        runner__step_pin(r, s); /* nobody else touches it now */
    runner__collect_dependents(r, s, &t.builds, &t.n_builds);
    w.r = r;
    w.drv_path = (char *)drv_path;
    w.machine = &r->no_machine;
    for (size_t i = 0; i < t.n_builds; i++)
        if (!w.build_id || t.builds[i].id < w.build_id)
            w.build_id = t.builds[i].id;
    w.system = xstrdup(s->system);
    runner__unlock(r);

    t.finished = xcalloc(t.n_builds + 1, sizeof *t.finished);
    t.w = &w;
    t.status = status;
    t.msg = msg;
    t.stop = util_time_now();
    t.start = t.stop;
    rc = 0;
    if (!db) {
        rc = runner__db_get(r, &db, &e);
        own_db = rc == 0;
    }
    if (rc == 0 && t.n_builds)
        rc = runner__record_failure(db, &t, &e);
    if (rc < 0)
        log_error("failing %s: %s", drv_path, e.msg);
    else
        log_info("step %s failed: %s", drv_path, msg);
    runner__lock(r);
    s = runner__graph_step_get(r, drv_path);
    if (s && s->state == STEP_PINNED) {
        if (rc < 0) {
            runner__step_retry_at(r, s, util_time_now() + 5);
        } else {
            runner__graph_fail_with_rdeps(r, s);
        }
    }
    for (size_t i = 0; i < t.n_finished; i++) {
        atomic_fetch_add(&r->stats.builds_done, 1);
        atomic_fetch_add(&r->stats.builds_failed, 1);
    }
    if (status == DB_STATUS_CACHED_FAILURE)
        atomic_fetch_add(&r->stats.steps_cached_failure, 1);
    if (status == DB_STATUS_UNSUPPORTED && rc == 0)
        atomic_fetch_add(&r->stats.steps_unsupported, 1);
    runner__wake_dispatcher(r);
    runner__unlock(r);
    if (rc == 0)
        runner__journal_builds_finished(&t, status);
    for (size_t i = 0; i < t.n_finished; i++)
        runner__build_finished(r, t.finished[i]);
    if (own_db)
        runner__db_put(r, db);
    free((char *)w.system);
    free(t.builds);
    free(t.finished);
}
