/*
 * requeue.c: an input whose output is gone (collected from the store after it was
 * recorded) becomes a step again, and the step that needed it waits for it.  Nothing
 * was dispatched, so no row is written.
 */
#include <stdint.h>
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
        features = runner__features_string(d, two_phase);
    runner__lock(r);
    s = runner__graph_step_get(r, drv);
    if (w) {
        runner__worker_release_slot(r, w);
        ptrvec_remove(&r->workers, w);
        if (r->running > 0)
            r->running--;
        if (s) {
            s->worker = NULL;
            s->machine = NULL;
        }
    }
    if (!s) {
        runner__unlock(r);
        goto out;
    }
    if (!ok) {
        runner__unlock(r);
        runner__fail_step(r, NULL, drv, DB_STATUS_ABORTED, e.msg, 0);
        goto out;
    }
    if (!runner__step_move_legal(s->state, STEP_WAITING) || (w && s->state != STEP_RUNNING)) {
        runner__unlock(r); /* moved on meanwhile (failed, pinned by another thread) */
        goto out;
    }
    if (s->requeues < UINT16_MAX)
        s->requeues++;
    runner__step_move(r, s, STEP_WAITING);
    a = runner__graph_step_get(r, input);
    if (!a) {
        a = runner__graph_step_new(r, input, d->platform, features, (int)kind, two_phase);
        a->highest_global_prio = s->highest_global_prio;
        a->highest_local_prio = s->highest_local_prio;
        a->lowest_build_id = s->lowest_build_id;
        a->share_jobset_id = s->share_jobset_id;
        for (uint32_t i = 0; i < s->n_jobsets; i++)
            runner__graph_step_add_jobset(r, a, s->jobsets[i]);
        a->max_silent = s->max_silent;
        a->timeout = s->timeout;
        runner__graph_add_dep(r, s, a);
        runner__graph_step_ready(r, a);
    } else {
        runner__graph_add_dep(r, s, a);
    }
    runner__wake_dispatcher(r);
    runner__unlock(r);
out:
    free(features);
    nix_drv_free(d);
}

void runner__requeue_resolving(Runner *r, Db *db, const char *drv, const char *input)
{
    (void)db;
    requeue(r, drv, input, NULL);
}

void runner__requeue_input(Runner *r, Db *db, Worker *w, const char *input)
{
    (void)db;
    log_warn("step %s: an output of %s is gone; rebuilding it first", w->drv_path, input);
    requeue(r, w->drv_path, input, w);
}
