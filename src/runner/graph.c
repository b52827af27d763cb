/*
 * graph.c: the in-memory step graph.  Steps are deduplicated by drv path; a step knows
 * its unfinished deps, the steps waiting for it (rdeps) and the builds whose top level
 * it is.  Priorities flow from builds down through deps (hydra-behaviour §3.6).  Every
 * function here runs with Runner.lock held and does no I/O.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runner/graph.h"
#include "runner/lock.h"
#include "runner/queue.h"
#include "runner/step.h"

static void id_key(int64_t id, char *buf, size_t n)
{
    snprintf(buf, n, "%" PRId64, id);
}

Step *runner__graph_step_get(Runner *r, const char *drv_path)
{
    RUNNER_ASSERT_LOCKED(r);
    return map_get(r->g.steps, drv_path);
}

/* Steps share their system and features strings (few distinct values). */
static char *intern(Runner *r, const char *str)
{
    char *v = map_get(r->g.strings, str);
    if (!v) {
        v = xstrdup(str);
        map_put(r->g.strings, str, v);
    }
    return v;
}

Step *runner__graph_step_new(Runner *r, const char *drv_path, const char *system,
                             const char *features, int kind, int two_phase)
{
    RUNNER_ASSERT_LOCKED(r);
    Step *s = xcalloc(1, sizeof *s);
    s->drv_path = xstrdup(drv_path);
    s->system = intern(r, system);
    s->features = intern(r, features ? features : "");
    for (const char *f = s->features; *f;) {
        const char *sp = strchr(f, ' ');
        if (s->n_features < UINT8_MAX)
            s->n_features++;
        if (!sp)
            break;
        f = sp + 1;
    }
    s->kind = (uint8_t)kind;
    s->two_phase = (uint8_t)two_phase;
    s->state = STEP_WAITING;
    s->highest_global_prio = INT32_MIN;
    s->highest_local_prio = INT32_MIN;
    s->lowest_build_id = INT64_MAX;
    s->heap_index = UINT32_MAX;
    map_put(r->g.steps, s->drv_path, s); /* the map borrows the step's own path */
    return s;
}

void runner__graph_step_free(Step *s)
{
    if (!s)
        return;
    ptrvec_dispose(&s->deps);
    ptrvec_dispose(&s->rdeps);
    ptrvec_dispose(&s->builds);
    strvec_dispose(&s->resolved_from);
    free(s->jobsets);
    free(s->drv_path);
    free(s);
}

/* Record that a build of jobset_id needs s (the jobsets charged for its build time). */
void runner__graph_step_add_jobset(Runner *r, Step *s, int64_t jobset_id)
{
    RUNNER_ASSERT_LOCKED(r);
    (void)r;
    if (!jobset_id)
        return;
    for (uint32_t i = 0; i < s->n_jobsets; i++)
        if (s->jobsets[i] == jobset_id)
            return;
    s->jobsets = xrealloc(s->jobsets, (s->n_jobsets + 1) * sizeof *s->jobsets);
    s->jobsets[s->n_jobsets++] = jobset_id;
}

/* s ran from start to stop: the time is charged to its jobsets, split evenly, as Hydra's
 * runner charges a finished step (the queue pass reloads the window from the database
 * now and then, which also drops what is older than a day).  Queues need no reordering:
 * a queue holds one jobset's steps, and the dispatcher compares queues by their heads. */
void runner__graph_charge_jobsets(Runner *r, const Step *s, int64_t start, int64_t stop)
{
    RUNNER_ASSERT_LOCKED(r);
    double each;
    if (!s->n_jobsets || stop <= start)
        return;
    each = (double)(stop - start) / s->n_jobsets;
    for (uint32_t i = 0; i < s->n_jobsets; i++) {
        char k[32];
        Jobset *js;
        id_key(s->jobsets[i], k, sizeof k);
        js = map_get(r->g.jobsets, k);
        if (js)
            js->seconds += each;
    }
}

void runner__graph_add_dep(Runner *r, Step *s, Step *dep)
{
    RUNNER_ASSERT_LOCKED(r);
    (void)r;
    if (ptrvec_contains(&s->deps, dep))
        return;
    ptrvec_push(&s->deps, dep);
    ptrvec_push(&dep->rdeps, s);
    s->n_deps_left++;
    if (dep->queue)
        runner__queue_update(r, dep); /* rdeps count changed */
}

Build *runner__graph_build_get(Runner *r, int64_t id)
{
    RUNNER_ASSERT_LOCKED(r);
    char k[32];
    id_key(id, k, sizeof k);
    return map_get(r->g.builds, k);
}

/* Raise priorities from build b on `top` and everything below it.  Stops descending
 * where nothing changes, so a build sharing a well-prioritised closure costs little. */
void runner__graph_propagate_priorities(Runner *r, Build *b, Step *top)
{
    RUNNER_ASSERT_LOCKED(r);
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
        if (b->jobset_id) {
            uint32_t had = s->n_jobsets;
            runner__graph_step_add_jobset(r, s, b->jobset_id);
            if (s->n_jobsets != had)
                changed = 1;
        }
        if (!s->share_jobset_id || runner__jobset_share_used(r, b->jobset_id) <
                                       runner__jobset_share_used(r, s->share_jobset_id)) {
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
            runner__queue_update(r, s);
        for (uint32_t i = 0; i < s->deps.n; i++)
            ptrvec_push(&stack, s->deps.v[i]);
        if (s->resolved_to)
            ptrvec_push(&stack, s->resolved_to);
    }
    ptrvec_dispose(&stack);
}

void runner__graph_build_attach(Runner *r, Build *b, Step *top)
{
    RUNNER_ASSERT_LOCKED(r);
    if (b->toplevel == top)
        return;
    if (b->toplevel)
        ptrvec_remove(&b->toplevel->builds, b);
    b->toplevel = top;
    ptrvec_push(&top->builds, b);
    runner__graph_propagate_priorities(r, b, top);
}

/* All deps of s are done: queue it for resolution (two-phase CA) or for dispatch. */
void runner__graph_step_ready(Runner *r, Step *s)
{
    RUNNER_ASSERT_LOCKED(r);
    if (s->state != STEP_WAITING && s->state != STEP_RETRY_WAIT && s->state != STEP_RESOLVING)
        return;
    if (s->two_phase && !s->is_resolved_drv && s->state == STEP_WAITING)
        runner__step_move(r, s, STEP_RESOLVING);
    else
        runner__step_move(r, s, STEP_RUNNABLE);
}

/* A fresh visit mark for a walk of the graph (never 0, the mark of a new step). */
static uint32_t next_mark(Runner *r)
{
    if (++r->g.mark_epoch == 0)
        r->g.mark_epoch = 1;
    return r->g.mark_epoch;
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
void runner__graph_dependent_builds(Runner *r, Step *s, PtrVec *out)
{
    RUNNER_ASSERT_LOCKED(r);
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
void runner__graph_step_done(Runner *r, Step *s, PtrVec *finished_builds)
{
    RUNNER_ASSERT_LOCKED(r);
    runner__step_move(r, s, STEP_DONE);
    for (uint32_t i = 0; i < s->rdeps.n; i++) {
        Step *rd = s->rdeps.v[i];
        if (ptrvec_remove(&rd->deps, s) && rd->n_deps_left > 0)
            rd->n_deps_left--;
        if (rd->n_deps_left == 0 && rd->state == STEP_WAITING)
            runner__graph_step_ready(r, rd);
    }
    s->rdeps.n = 0;
    for (uint32_t i = 0; i < s->builds.n; i++)
        if (finished_builds)
            ptrvec_push(finished_builds, s->builds.v[i]);
}

/* Remove s from the graph and free it.  The caller made sure nothing points to it. */
void runner__graph_step_forget(Runner *r, Step *s)
{
    RUNNER_ASSERT_LOCKED(r);
    if (map_get(r->g.steps, s->drv_path) == s)
        map_del(r->g.steps, s->drv_path);
    assert(s->state == STEP_DONE || s->state == STEP_FAILED || s->state == STEP_RESOLVED);
    assert(!s->queue);
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
    runner__graph_step_free(s);
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
void runner__graph_fail_with_rdeps(Runner *r, Step *s)
{
    RUNNER_ASSERT_LOCKED(r);
    PtrVec all = {0}, boundary = {0};
    uint32_t m = next_mark(r), bm;
    collect_rdeps(s, m, &all);
    for (uint32_t k = 0; k < all.n; k++) {
        Step *x = all.v[k];
        while (x->builds.n) {
            Build *b = x->builds.v[x->builds.n - 1];
            b->finished = 1;
            runner__graph_build_forget(r, b);
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
        runner__step_move(r, x, STEP_FAILED);
        if (map_get(r->g.steps, x->drv_path) == x)
            map_del(r->g.steps, x->drv_path);
    }
    for (uint32_t k = 0; k < all.n; k++) {
        Step *x = all.v[k];
        if (x->mark == m)
            runner__graph_step_free(x);
    }
    ptrvec_dispose(&all);
    ptrvec_dispose(&boundary);
}

void runner__graph_build_forget(Runner *r, Build *b)
{
    RUNNER_ASSERT_LOCKED(r);
    char k[32];
    id_key(b->id, k, sizeof k);
    if (b->toplevel)
        ptrvec_remove(&b->toplevel->builds, b);
    if (map_get(r->g.builds, k) == b)
        map_del(r->g.builds, k);
    free(b->drv_path);
    free(b->job);
    free(b);
}

/* P resolved to P': P's priorities, jobsets and limits carry over to P', its rdeps and
 * builds move onto P', and P leaves the graph as resolved. */
void runner__graph_step_redirect(Runner *r, Step *p, Step *q)
{
    RUNNER_ASSERT_LOCKED(r);
    if (p->highest_global_prio > q->highest_global_prio)
        q->highest_global_prio = p->highest_global_prio;
    if (p->highest_local_prio > q->highest_local_prio)
        q->highest_local_prio = p->highest_local_prio;
    if (p->lowest_build_id < q->lowest_build_id)
        q->lowest_build_id = p->lowest_build_id;
    if (!q->share_jobset_id)
        q->share_jobset_id = p->share_jobset_id;
    for (uint32_t i = 0; i < p->n_jobsets; i++)
        runner__graph_step_add_jobset(r, q, p->jobsets[i]);
    if (p->max_silent > q->max_silent)
        q->max_silent = p->max_silent;
    if (p->timeout > q->timeout)
        q->timeout = p->timeout;
    for (uint32_t i = 0; i < p->rdeps.n; i++) {
        Step *rdep = p->rdeps.v[i];
        if (ptrvec_remove(&rdep->deps, p) && rdep->n_deps_left > 0)
            rdep->n_deps_left--;
        runner__graph_add_dep(r, rdep, q);
    }
    p->rdeps.n = 0;
    while (p->builds.n) {
        Build *b = p->builds.v[p->builds.n - 1];
        runner__graph_build_attach(r, b, q); /* removes b from p->builds */
    }
    runner__step_move(r, p, STEP_RESOLVED);
    runner__graph_step_forget(r, p);
    if (q->state == STEP_WAITING && q->n_deps_left == 0)
        runner__graph_step_ready(r, q);
    if (q->queue)
        runner__queue_update(r, q);
}

/* s succeeded (or its outputs were found): the steps waiting for it are woken, the
 * builds whose top level it was are finished and forgotten, and s leaves the graph. */
void runner__graph_step_succeeded(Runner *r, Step *s)
{
    PtrVec done = {0};
    RUNNER_ASSERT_LOCKED(r);
    runner__graph_step_done(r, s, &done);
    for (uint32_t i = 0; i < done.n; i++) {
        Build *b = done.v[i];
        b->finished = 1;
        runner__graph_build_forget(r, b);
    }
    ptrvec_dispose(&done);
    runner__graph_step_forget(r, s);
}
