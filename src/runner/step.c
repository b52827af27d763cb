/*
 * step.c: the step state machine.  A step's state says which container of the graph
 * holds it, and only runner__step_move changes the state, keeping the two in line:
 *
 *   WAITING     unfinished deps                     (no container)
 *   RESOLVING   deps done, a CA drv to resolve      Runner.to_resolve (FIFO)
 *   RUNNABLE    waiting for a machine               its StepQueue (type + jobset)
 *   RETRY_WAIT  runnable again at Step.after        Runner.retry_wait
 *   RUNNING     a worker owns it                    (Step.worker)
 *   PINNED      a thread took it for I/O outside    (no container)
 *               the lock (failing it, unsupported); only that thread moves it on
 *   SUBSTITUTING  its outputs are being substituted  (no container: ingest holds it)
 *               at ingest (use-substitutes); done when they came, else built (waiting)
 *   DONE FAILED RESOLVED   terminal: the step leaves the graph
 *
 *   WAITING    -> RESOLVING RUNNABLE RETRY_WAIT PINNED FAILED SUBSTITUTING
 *   RESOLVING  -> WAITING RUNNABLE RETRY_WAIT PINNED DONE FAILED RESOLVED
 *   RUNNABLE   -> WAITING RUNNING PINNED FAILED
 *   RETRY_WAIT -> WAITING RESOLVING RUNNABLE PINNED FAILED
 *   RUNNING    -> WAITING RETRY_WAIT DONE FAILED
 *   PINNED     -> RETRY_WAIT FAILED
 *   SUBSTITUTING -> WAITING DONE FAILED
 *
 * An illegal move aborts debug builds (assert).  All with the graph lock held.
 */
#include <stdlib.h>

#include "runner/lock.h"
#include "runner/queue.h"
#include "runner/step.h"

#define B(s) (1u << (s))

static const unsigned legal[STEP_N_STATES] = {
    [STEP_WAITING] = B(STEP_RESOLVING) | B(STEP_RUNNABLE) | B(STEP_RETRY_WAIT) | B(STEP_PINNED) |
                     B(STEP_FAILED) | B(STEP_SUBSTITUTING),
    [STEP_RESOLVING] = B(STEP_WAITING) | B(STEP_RUNNABLE) | B(STEP_RETRY_WAIT) | B(STEP_PINNED) |
                       B(STEP_DONE) | B(STEP_FAILED) | B(STEP_RESOLVED),
    [STEP_RUNNABLE] = B(STEP_WAITING) | B(STEP_RUNNING) | B(STEP_PINNED) | B(STEP_FAILED),
    [STEP_RETRY_WAIT] =
        B(STEP_WAITING) | B(STEP_RESOLVING) | B(STEP_RUNNABLE) | B(STEP_PINNED) | B(STEP_FAILED),
    [STEP_RUNNING] = B(STEP_WAITING) | B(STEP_RETRY_WAIT) | B(STEP_DONE) | B(STEP_FAILED),
    [STEP_PINNED] = B(STEP_RETRY_WAIT) | B(STEP_FAILED),
    [STEP_SUBSTITUTING] = B(STEP_WAITING) | B(STEP_DONE) | B(STEP_FAILED),
};

static const char *const names[STEP_N_STATES] = {
    [STEP_WAITING] = "waiting",   [STEP_RESOLVING] = "resolving",
    [STEP_RUNNABLE] = "runnable", [STEP_RETRY_WAIT] = "retry-wait",
    [STEP_RUNNING] = "running",   [STEP_DONE] = "done",
    [STEP_FAILED] = "failed",     [STEP_RESOLVED] = "resolved",
    [STEP_PINNED] = "pinned",     [STEP_SUBSTITUTING] = "substituting",
};

const char *runner__step_state_name(int state)
{
    return state >= 0 && state < STEP_N_STATES ? names[state] : "?";
}

int runner__step_move_legal(int from, int to)
{
    if (from < 0 || from >= STEP_N_STATES || to < 0 || to >= STEP_N_STATES)
        return 0;
    return (legal[from] & B(to)) != 0;
}

static void leave(Runner *r, Step *s)
{
    switch (s->state) {
    case STEP_RESOLVING: ptrvec_remove_ordered(&r->g.to_resolve, s); break;
    case STEP_RUNNABLE:
        if (s->queue)
            runner__queue_remove(r, s->queue, s);
        break;
    case STEP_RETRY_WAIT: ptrvec_remove(&r->g.retry_wait, s); break;
    default: break;
    }
}

static void enter(Runner *r, Step *s)
{
    switch (s->state) {
    case STEP_RESOLVING:
        ptrvec_push(&r->g.to_resolve, s);
        pthread_cond_broadcast(&r->cond); /* the resolver */
        break;
    case STEP_RUNNABLE:
        if (!s->runnable_since)
            s->runnable_since = util_time_now();
        s->runnable_ms = util_now_ms();
        runner__queue_push(r, runner__queue_for_step(r, s), s);
        runner__wake_dispatcher(r);
        break;
    case STEP_RETRY_WAIT: ptrvec_push(&r->g.retry_wait, s); break;
    default: break;
    }
}

void runner__step_move(Runner *r, Step *s, int to)
{
    RUNNER_ASSERT_LOCKED(r);
    assert(runner__step_move_legal(s->state, to));
    leave(r, s);
    s->state = (uint8_t)to;
    enter(r, s);
}

void runner__step_retry_at(Runner *r, Step *s, int64_t after)
{
    s->after = after;
    runner__step_move(r, s, STEP_RETRY_WAIT);
}

void runner__step_pin(Runner *r, Step *s)
{
    runner__step_move(r, s, STEP_PINNED);
}
