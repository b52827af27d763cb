/*
 * dispatch.c: the dispatcher thread.  Woken when a step becomes runnable, a step
 * finishes, a machine changes, or every second (retries, unsupported steps).
 *
 * Each round: due retries become runnable; then the runnable steps go out in one
 * priority order over every queue (queue.c: Hydra's order, whatever a step's machine
 * type): the best step goes to the best free machine that fits it (fewest current jobs
 * per speed factor, then the higher speed factor), and a queue whose head no free
 * machine fits is left for this round.  The work of a round is proportional to the
 * steps dispatched plus the number of queues, not to the size of the queues.
 * Steps no machine supports fail with status 9 after max-unsupported-time.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runner/dispatch.h"
#include "runner/exec.h"
#include "runner/fail.h"
#include "runner/graph.h"
#include "runner/lock.h"
#include "runner/machines.h"
#include "runner/queue.h"
#include "runner/step.h"

static Machine *best_machine(Runner *r, StepQueue *q, int64_t now, int *any_fits)
{
    RUNNER_ASSERT_LOCKED(r);
    Machine *best = NULL;
    double best_load = 0;
    *any_fits = 0;
    for (uint32_t i = 0; i < r->machines.n; i++) {
        Machine *m = r->machines.v[i];
        double load;
        if (m->removed || !runner__machine_fits(m, q->system, q->features))
            continue;
        *any_fits = 1;
        if (m->disabled_until > now || m->current_jobs >= m->max_jobs)
            continue;
        load = (double)m->current_jobs / m->speed_factor;
        if (!best || load < best_load ||
            (load == best_load && m->speed_factor > best->speed_factor)) {
            best = m;
            best_load = load;
        }
    }
    return best;
}

/* Pick the build a step's row belongs to: the lowest-id build whose top level it is,
 * else the lowest-id build needing it.  0 when no unfinished build needs it. */
static int64_t pick_build(Runner *r, Step *s)
{
    RUNNER_ASSERT_LOCKED(r);
    int64_t best = 0;
    for (uint32_t i = 0; i < s->builds.n; i++) {
        Build *b = s->builds.v[i];
        if (!b->finished && (!best || b->id < best))
            best = b->id;
    }
    if (best)
        return best;
    {
        Build *b =
            s->lowest_build_id != INT64_MAX ? runner__graph_build_get(r, s->lowest_build_id) : NULL;
        if (b && !b->finished) {
            /* still needed by it?  (cheap check first: it is a dependent by propagation) */
            return b->id;
        }
    }
    {
        PtrVec deps = {0};
        runner__graph_dependent_builds(r, s, &deps);
        for (uint32_t i = 0; i < deps.n; i++) {
            Build *b = deps.v[i];
            if (!best || b->id < best)
                best = b->id;
        }
        ptrvec_dispose(&deps);
    }
    return best;
}

static Worker *make_worker(Runner *r, Step *s, Machine *m, int64_t build)
{
    Worker *w = xcalloc(1, sizeof *w);
    w->r = r;
    w->step = s;
    w->machine = m;
    w->drv_path = xstrdup(s->drv_path);
    w->system = xstrdup(s->system);
    w->build_id = build;
    w->max_silent = s->max_silent > 0 ? s->max_silent : r->opt.max_silent_default;
    w->timeout = s->timeout > 0 ? s->timeout : r->opt.timeout_default;
    if (!s->builds.n) {
        /* a dependency of the builds: at least the defaults (Hydra 72e1e550) */
        if (w->max_silent < r->opt.max_silent_default)
            w->max_silent = r->opt.max_silent_default;
        if (w->timeout < r->opt.timeout_default)
            w->timeout = r->opt.timeout_default;
    }
    w->is_resolved = s->is_resolved_drv && s->resolved_from.n > 0;
    w->two_phase = s->two_phase;
    strvec_init(&w->resolved_from);
    for (size_t i = 0; i < s->resolved_from.n; i++)
        strvec_push(&w->resolved_from, s->resolved_from.v[i]);
    atomic_init(&w->cancel, 0);
    pthread_mutex_init(&w->conn_lock, NULL);
    return w;
}

/* Nothing can run queue q: its steps are unsupported after the grace time. */
static void unsupported_since(Runner *r, StepQueue *q, int64_t now, PtrVec *unsupported)
{
    RUNNER_ASSERT_LOCKED(r);
    for (uint32_t i = 0; i < q->n; i++) {
        Step *s = q->heap[i];
        int64_t since = s->runnable_since ? s->runnable_since : now;
        if (now - since >= r->opt.max_unsupported_time)
            ptrvec_push(unsupported, s);
    }
}

/* One round; lock held.  Started workers are appended to `start`. */
static void dispatch_round(Runner *r, PtrVec *start, PtrVec *unsupported)
{
    RUNNER_ASSERT_LOCKED(r);
    int64_t now = util_time_now();
    QueueHeads heads = {0};
    StepQueue *q;

    /* due retries */
    for (uint32_t i = 0; i < r->g.retry_wait.n;) {
        Step *s = r->g.retry_wait.v[i];
        if (s->after <= now) {
            /* leaves retry_wait (the last entry takes its place) */
            runner__step_move(r, s,
                              s->two_phase && !s->is_resolved_drv ? STEP_RESOLVING : STEP_RUNNABLE);
            continue;
        }
        i++;
    }

    /* the best runnable step of all queues first, whatever its machine type: the top
     * queue's head goes to the best free machine that fits it; a queue no free machine
     * fits is done for this round (none of its steps fits either) */
    runner__queue_heads_init(r, &heads);
    while ((q = runner__queue_heads_top(&heads))) {
        int any_fits = 0;
        Machine *m = best_machine(r, q, now, &any_fits);
        Step *s;
        int64_t build;
        if (!m) {
            if (!any_fits)
                unsupported_since(r, q, now, unsupported);
            runner__queue_heads_drop_top(r, &heads);
            continue;
        }
        s = runner__queue_pop(r, q);
        build = pick_build(r, s);
        if (!build) {
            /* nobody needs it any more */
            runner__step_move(r, s, STEP_FAILED);
            runner__graph_step_forget(r, s);
        } else {
            runner__step_move(r, s, STEP_RUNNING);
            s->machine = m;
            m->current_jobs++;
            r->running++;
            s->worker = make_worker(r, s, m, build);
            ptrvec_push(&r->workers, s->worker);
            ptrvec_push(start, s->worker);
        }
        runner__queue_heads_update_top(r, &heads);
    }
    runner__queue_heads_dispose(&heads);
}

void *runner__dispatcher_main(void *arg)
{
    Runner *r = arg;
    {
        /* warm the local store's pools: the first step finds a build session and a
         * query connection open instead of spawning nix-daemon on its way to start */
        StoreConn *c = NULL;
        Err e = {0};
        if (store_machine_session(r->local_store, &c, &e) == 0)
            store_machine_release(r->local_store, c);
        if (store_machine_query_get(r->local_store, &c, &e) == 0)
            store_machine_query_put(r->local_store, c);
    }
    while (!atomic_load(&r->stopping)) {
        PtrVec start = {0}, unsupported = {0};
        uint64_t t0, dt;
        struct timespec ts;
        runner__lock(r);
        if (!r->dispatch_pending) {
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            runner__cond_wait(r, &ts);
        }
        if (atomic_load(&r->stopping)) {
            runner__unlock(r);
            break;
        }
        r->dispatch_pending = 0;
        t0 = util_now_ms() * 1000;
        {
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            dispatch_round(r, &start, &unsupported);
            clock_gettime(CLOCK_MONOTONIC, &b);
            dt = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000 +
                 (uint64_t)((b.tv_nsec - a.tv_nsec) / 1000);
        }
        (void)t0;
        atomic_fetch_add(&r->stats.dispatch_rounds, 1);
        atomic_fetch_add(&r->stats.dispatch_time_us_total, dt);
        atomic_store(&r->stats.dispatch_time_us_last, dt);
        /* unsupported steps are failed outside the lock; pinned, nobody else takes
         * them meanwhile */
        for (uint32_t i = 0; i < unsupported.n; i++)
            runner__step_pin(r, unsupported.v[i]);
        runner__unlock(r);
        for (uint32_t i = 0; i < unsupported.n; i++) {
            Step *s = unsupported.v[i];
            char *drv, *msg;
            runner__lock(r);
            drv = xstrdup(s->drv_path);
            msg = xasprintf("unsupported system type '%s'%s%s", s->system,
                            s->features[0] ? " with features " : "", s->features);
            runner__unlock(r);
            runner__fail_step(r, NULL, drv, DB_STATUS_UNSUPPORTED, msg, 1);
            free(drv);
            free(msg);
        }
        for (uint32_t i = 0; i < start.n; i++) {
            Worker *w = start.v[i];
            Err e = {0};
            if (runner__worker_start(r, w, &e) < 0) {
                log_error("%s", e.msg);
                runner__lock(r);
                w->step->worker = NULL;
                runner__step_retry_at(r, w->step, util_time_now() + 5);
                if (w->machine->current_jobs)
                    w->machine->current_jobs--;
                if (r->running)
                    r->running--;
                ptrvec_remove(&r->workers, w);
                runner__unlock(r);
                runner__worker_free(w);
            }
        }
        ptrvec_dispose(&start);
        ptrvec_dispose(&unsupported);
    }
    return NULL;
}
