/*
 * requeue.c: an input whose output is gone (collected from the store after it was
 * recorded) becomes a step again, and the step that needed it waits for it.  Nothing
 * was dispatched, so no row is written.
 */
#include <stdlib.h>

#include "runner/fail.h"
#include "runner/graph.h"
#include "runner/lock.h"
#include "runner/machines.h"
#include "runner/requeue.h"
#include "runner/step.h"

/* Make `input` (a drv whose output is gone) a step again and let `drv` wait for it.
 * Lock NOT held on entry. */
static void requeue(Runner *r, const char *drv, const char *input, Worker *w)
{
    NixDrv *d = NULL;
    NixDrvKind kind = NIX_DRV_INPUT_ADDRESSED;
    char *features = NULL;
    Err e = {0};
    Step *s, *a;
    int ok = nix_drv_read(input, &d, &e) == 0 && nix_drv_kind(d, &kind, &e) == 0;
    int two_phase = kind == NIX_DRV_FLOATING || kind == NIX_DRV_DEFERRED;
    if (ok)
        features = runner_features_string(d, two_phase);
    runner_lock(r);
    s = graph_step_get(r, drv);
    if (w) {
        runner_worker_release_slot(r, w);
        ptrvec_remove(&r->workers, w);
        if (r->running > 0)
            r->running--;
        if (s) {
            s->worker = NULL;
            s->machine = NULL;
        }
    }
    if (!s) {
        runner_unlock(r);
        goto out;
    }
    if (!ok) {
        runner_unlock(r);
        runner_fail_step(r, NULL, drv, 3, e.msg, 0);
        goto out;
    }
    if (!step_move_legal(s->state, STEP_WAITING) || (w && s->state != STEP_RUNNING)) {
        runner_unlock(r); /* moved on meanwhile (failed, pinned by another thread) */
        goto out;
    }
    s->requeues++;
    step_move(r, s, STEP_WAITING);
    a = graph_step_get(r, input);
    if (!a) {
        a = graph_step_new(r, input, d->platform, features, (int)kind, two_phase);
        a->highest_global_prio = s->highest_global_prio;
        a->highest_local_prio = s->highest_local_prio;
        a->lowest_build_id = s->lowest_build_id;
        a->share_jobset_id = s->share_jobset_id;
        for (uint32_t i = 0; i < s->n_jobsets; i++)
            graph_step_add_jobset(r, a, s->jobsets[i]);
        a->max_silent = s->max_silent;
        a->timeout = s->timeout;
        graph_add_dep(r, s, a);
        graph_step_ready(r, a);
    } else {
        graph_add_dep(r, s, a);
    }
    graph_wake_dispatcher(r);
    runner_unlock(r);
out:
    free(features);
    nix_drv_free(d);
}

void runner_requeue_resolving(Runner *r, Db *db, const char *drv, const char *input)
{
    (void)db;
    requeue(r, drv, input, NULL);
}

void runner_requeue_input(Runner *r, Db *db, Worker *w, const char *input)
{
    (void)db;
    log_warn("step %s: an output of %s is gone; rebuilding it first", w->drv_path, input);
    requeue(r, w->drv_path, input, w);
}
