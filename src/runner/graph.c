/*
 * graph.c: the in-memory step graph.  Steps are deduplicated by drv path; a step knows
 * its unfinished deps, the steps waiting for it (rdeps) and the builds whose top level
 * it is.  Priorities flow from builds down through deps (hydra-behaviour §3.6).  Every
 * function here runs with Runner.lock held and does no I/O.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runner/runner_int.h"

void ptrvec_push(PtrVec *pv, void *p)
{
    if (pv->n == pv->cap) {
        pv->cap = pv->cap ? pv->cap * 2 : 2;
        pv->v = xrealloc(pv->v, pv->cap * sizeof *pv->v);
    }
    pv->v[pv->n++] = p;
}

int ptrvec_remove(PtrVec *pv, void *p)
{
    for (uint32_t i = 0; i < pv->n; i++) {
        if (pv->v[i] == p) {
            pv->v[i] = pv->v[--pv->n];
            return 1;
        }
    }
    return 0;
}

int ptrvec_contains(const PtrVec *pv, const void *p)
{
    for (uint32_t i = 0; i < pv->n; i++)
        if (pv->v[i] == p)
            return 1;
    return 0;
}

void ptrvec_dispose(PtrVec *pv)
{
    free(pv->v);
    pv->v = NULL;
    pv->n = pv->cap = 0;
}

static void id_key(int64_t id, char *buf, size_t n)
{
    snprintf(buf, n, "%" PRId64, id);
}

double runner_jobset_share_used(const Runner *r, int64_t jobset_id)
{
    char k[32];
    Jobset *js;
    if (!jobset_id)
        return 0;
    id_key(jobset_id, k, sizeof k);
    js = map_get(r->jobsets, k);
    if (!js || js->shares <= 0)
        return 0;
    return js->seconds / (double)js->shares;
}

Step *graph_step_get(Runner *r, const char *drv_path)
{
    return map_get(r->steps, drv_path);
}

/* Steps share their system and features strings (few distinct values). */
static char *intern(Runner *r, const char *str)
{
    char *v = map_get(r->strings, str);
    if (!v) {
        v = xstrdup(str);
        map_put(r->strings, str, v);
    }
    return v;
}

Step *graph_step_new(Runner *r, const char *drv_path, const char *system, const char *features,
                     int kind, int two_phase)
{
    Step *s = xcalloc(1, sizeof *s);
    s->drv_path = xstrdup(drv_path);
    s->system = intern(r, system);
    s->features = intern(r, features ? features : "");
    s->kind = (uint8_t)kind;
    s->two_phase = (uint8_t)two_phase;
    s->state = STEP_WAITING;
    s->highest_global_prio = INT32_MIN;
    s->highest_local_prio = INT32_MIN;
    s->lowest_build_id = INT64_MAX;
    s->heap_index = UINT32_MAX;
    map_put(r->steps, s->drv_path, s); /* the map borrows the step's own path */
    return s;
}

void graph_step_free(Step *s)
{
    if (!s)
        return;
    ptrvec_dispose(&s->deps);
    ptrvec_dispose(&s->rdeps);
    ptrvec_dispose(&s->builds);
    strvec_dispose(&s->resolved_from);
    free(s->drv_path);
    free(s);
}

void graph_add_dep(Runner *r, Step *s, Step *dep)
{
    (void)r;
    if (ptrvec_contains(&s->deps, dep))
        return;
    ptrvec_push(&s->deps, dep);
    ptrvec_push(&dep->rdeps, s);
    s->n_deps_left++;
    if (dep->queue)
        queue_update(r, dep); /* rdeps count changed */
}

Build *graph_build_get(Runner *r, int64_t id)
{
    char k[32];
    id_key(id, k, sizeof k);
    return map_get(r->builds, k);
}

/* Raise priorities from build b on `top` and everything below it.  Stops descending
 * where nothing changes, so a build sharing a well-prioritised closure costs little. */
void graph_propagate_priorities(Runner *r, Build *b, Step *top)
{
    PtrVec stack = {0};
    ptrvec_push(&stack, top);
    while (stack.n) {
        Step *s = stack.v[--stack.n];
        int changed = 0;
        if (b->global_priority > s->highest_global_prio) {
            s->highest_global_prio = b->global_priority;
            changed = 1;
        }
        if (b->local_priority > s->highest_local_prio) {
            s->highest_local_prio = b->local_priority;
            changed = 1;
        }
        if (b->id < s->lowest_build_id) {
            s->lowest_build_id = b->id;
            changed = 1;
        }
        if (!s->share_jobset_id || runner_jobset_share_used(r, b->jobset_id) <
                                       runner_jobset_share_used(r, s->share_jobset_id)) {
            if (s->share_jobset_id != b->jobset_id) {
                s->share_jobset_id = b->jobset_id;
                changed = 1;
            }
        }
        if (b->max_silent > s->max_silent) {
            s->max_silent = b->max_silent;
            changed = 1;
        }
        if (b->timeout > s->timeout) {
            s->timeout = b->timeout;
            changed = 1;
        }
        if (!changed)
            continue;
        if (s->queue)
            queue_update(r, s);
        for (uint32_t i = 0; i < s->deps.n; i++)
            ptrvec_push(&stack, s->deps.v[i]);
        if (s->resolved_to)
            ptrvec_push(&stack, s->resolved_to);
    }
    ptrvec_dispose(&stack);
}

void graph_build_attach(Runner *r, Build *b, Step *top)
{
    if (b->toplevel == top)
        return;
    if (b->toplevel)
        ptrvec_remove(&b->toplevel->builds, b);
    b->toplevel = top;
    ptrvec_push(&top->builds, b);
    graph_propagate_priorities(r, b, top);
}

static StepQueue *queue_for(Runner *r, Step *s)
{
    char *key = xasprintf("%s\t%s", s->system, s->features);
    StepQueue *q = map_get(r->queues, key);
    if (!q) {
        q = queue_new(s->system, s->features);
        map_put(r->queues, key, q);
        runner_queue_added(r, q);
    }
    free(key);
    return q;
}

/* All deps of s are done: queue it for resolution (two-phase CA) or for dispatch. */
void graph_step_ready(Runner *r, Step *s)
{
    if (s->state != STEP_WAITING && s->state != STEP_RETRY_WAIT && s->state != STEP_RESOLVING)
        return;
    if (s->two_phase && !s->is_resolved_drv && s->state == STEP_WAITING) {
        s->state = STEP_RESOLVING;
        ptrvec_push(&r->to_resolve, s);
        pthread_cond_broadcast(&r->cond);
        return;
    }
    if (s->state == STEP_RETRY_WAIT)
        ptrvec_remove(&r->retry_wait, s);
    s->state = STEP_RUNNABLE;
    if (!s->runnable_since)
        s->runnable_since = util_time_now();
    queue_push(r, queue_for(r, s), s);
    graph_wake_dispatcher(r);
}

/* A fresh visit mark for a walk of the graph (never 0, the mark of a new step). */
static uint32_t next_mark(Runner *r)
{
    if (++r->mark_epoch == 0)
        r->mark_epoch = 1;
    return r->mark_epoch;
}

/* s and every step that transitively waits for it, each once, marked with m: O(steps
 * + edges) of that subgraph. */
static void collect_rdeps(Step *s, uint32_t m, PtrVec *all)
{
    s->mark = m;
    ptrvec_push(all, s);
    for (uint32_t k = 0; k < all->n; k++) {
        Step *x = all->v[k];
        for (uint32_t i = 0; i < x->rdeps.n; i++) {
            Step *rd = x->rdeps.v[i];
            if (rd->mark != m) {
                rd->mark = m;
                ptrvec_push(all, rd);
            }
        }
    }
}

/* Collect every unfinished build that needs s (its own builds and those of all steps
 * that transitively wait for it).  Each build once. */
void graph_dependent_builds(Runner *r, Step *s, PtrVec *out)
{
    PtrVec all = {0};
    uint32_t m = next_mark(r);
    collect_rdeps(s, m, &all);
    for (uint32_t k = 0; k < all.n; k++) {
        Step *x = all.v[k];
        for (uint32_t i = 0; i < x->builds.n; i++) {
            Build *b = x->builds.v[i];
            if (!b->finished && b->mark != m) {
                b->mark = m;
                ptrvec_push(out, b);
            }
        }
    }
    ptrvec_dispose(&all);
}

/* s finished successfully (built, or its outputs were found): wake the rdeps and hand
 * back the builds whose top level it was (the caller records and forgets them). */
void graph_step_done(Runner *r, Step *s, PtrVec *finished_builds)
{
    s->state = STEP_DONE;
    for (uint32_t i = 0; i < s->rdeps.n; i++) {
        Step *rd = s->rdeps.v[i];
        if (ptrvec_remove(&rd->deps, s) && rd->n_deps_left > 0)
            rd->n_deps_left--;
        if (rd->n_deps_left == 0 && rd->state == STEP_WAITING)
            graph_step_ready(r, rd);
    }
    s->rdeps.n = 0;
    for (uint32_t i = 0; i < s->builds.n; i++)
        if (finished_builds)
            ptrvec_push(finished_builds, s->builds.v[i]);
}

/* Remove s from the graph and free it.  The caller made sure nothing points to it. */
void graph_step_forget(Runner *r, Step *s)
{
    if (map_get(r->steps, s->drv_path) == s)
        map_del(r->steps, s->drv_path);
    if (s->queue)
        queue_remove(r, s->queue, s);
    ptrvec_remove(&r->retry_wait, s);
    ptrvec_remove(&r->to_resolve, s);
    for (uint32_t i = 0; i < s->deps.n; i++)
        ptrvec_remove(&((Step *)s->deps.v[i])->rdeps, s);
    for (uint32_t i = 0; i < s->rdeps.n; i++) {
        Step *rd = s->rdeps.v[i];
        if (ptrvec_remove(&rd->deps, s) && rd->n_deps_left > 0)
            rd->n_deps_left--;
    }
    for (uint32_t i = 0; i < s->builds.n; i++) {
        Build *b = s->builds.v[i];
        if (b->toplevel == s)
            b->toplevel = NULL;
    }
    graph_step_free(s);
}

/* Drop the entries marked m from a step's rdeps (order not kept). */
static void rdeps_drop_marked(Step *d, uint32_t m)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < d->rdeps.n; i++)
        if (((Step *)d->rdeps.v[i])->mark != m)
            d->rdeps.v[n++] = d->rdeps.v[i];
    d->rdeps.n = n;
}

/* Remove s and every step that transitively waits for it; forget their builds.  Linear
 * in the failed subgraph: members are marked, and each dependency outside it has its
 * rdeps compacted once (not one removal per edge). */
void graph_fail_with_rdeps(Runner *r, Step *s)
{
    PtrVec all = {0}, boundary = {0};
    uint32_t m = next_mark(r), bm;
    collect_rdeps(s, m, &all);
    for (uint32_t k = 0; k < all.n; k++) {
        Step *x = all.v[k];
        while (x->builds.n) {
            Build *b = x->builds.v[x->builds.n - 1];
            b->finished = 1;
            graph_build_forget(r, b);
        }
    }
    /* a running rdep cannot exist (it waited for s); should one, it stays, cut loose
     * from the failed steps */
    for (uint32_t k = 0; k < all.n; k++) {
        Step *x = all.v[k];
        if (x != s && x->state == STEP_RUNNING)
            x->mark = 0;
    }
    bm = next_mark(r);
    for (uint32_t k = 0; k < all.n; k++) {
        Step *x = all.v[k];
        if (x->mark != m)
            continue;
        for (uint32_t i = 0; i < x->deps.n; i++) {
            Step *d = x->deps.v[i];
            if (d->mark != m && d->mark != bm) {
                d->mark = bm;
                ptrvec_push(&boundary, d);
            }
        }
    }
    for (uint32_t k = 0; k < all.n; k++) {
        Step *x = all.v[k];
        if (x->mark == m || x == s)
            continue;
        /* the kept running step: its failed deps and rdeps go */
        uint32_t n = 0;
        for (uint32_t i = 0; i < x->deps.n; i++) {
            Step *d = x->deps.v[i];
            if (d->mark == m || d == s) {
                if (x->n_deps_left > 0)
                    x->n_deps_left--;
            } else {
                x->deps.v[n++] = d;
            }
        }
        x->deps.n = n;
        x->rdeps.n = 0;
    }
    for (uint32_t k = 0; k < boundary.n; k++) {
        Step *d = boundary.v[k];
        rdeps_drop_marked(d, m);
        d->mark = 0;
    }
    for (uint32_t k = 0; k < all.n; k++) {
        Step *x = all.v[k];
        if (x->mark != m)
            continue;
        x->state = STEP_FAILED;
        if (map_get(r->steps, x->drv_path) == x)
            map_del(r->steps, x->drv_path);
        if (x->queue)
            queue_remove(r, x->queue, x);
        ptrvec_remove(&r->retry_wait, x);
        ptrvec_remove(&r->to_resolve, x);
    }
    for (uint32_t k = 0; k < all.n; k++) {
        Step *x = all.v[k];
        if (x->mark == m)
            graph_step_free(x);
    }
    ptrvec_dispose(&all);
    ptrvec_dispose(&boundary);
}

void graph_build_forget(Runner *r, Build *b)
{
    char k[32];
    id_key(b->id, k, sizeof k);
    if (b->toplevel)
        ptrvec_remove(&b->toplevel->builds, b);
    if (map_get(r->builds, k) == b)
        map_del(r->builds, k);
    free(b->drv_path);
    free(b->job);
    free(b);
}

void graph_wake_dispatcher(Runner *r)
{
    r->dispatch_pending = 1;
    pthread_cond_broadcast(&r->cond);
}
