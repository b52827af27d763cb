/*
 * queue.c: runnable-step queues and the one priority order over all of them.
 *
 * A queue holds the runnable steps of one machine type (system + required features)
 * and one jobset (the step's share jobset), as a binary heap.  The order is Hydra's
 * runner's (its dispatcher sorts every runnable step so), highest first:
 *
 *   global priority desc, jobset share used asc, local priority desc,
 *   number of required features desc, number of rdeps desc, lowest build id asc
 *   (then drv path, for a total order).
 *
 * Within one queue the share is the same for every step, so a queue's order never
 * changes when shares do (a step finishing charges its jobsets).  Dispatch looks at
 * the queues' heads only (QueueHeads, a heap of queues by their heads): the best
 * runnable step of the runner, whatever its system's features, is the top queue's
 * head, and because every step of one queue has the same requirements, either that
 * head fits a free machine or no step of its queue does.  A dispatch round costs
 * O(queues) plus O(log) per dispatched step, never a scan of a queue.  Caller holds
 * Runner.lock.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runner/lock.h"
#include "runner/queue.h"

/* The order without the share: what decides within one queue (one jobset). */
static int cmp_same_share(const Step *a, const Step *b)
{
    if (a->highest_global_prio != b->highest_global_prio)
        return a->highest_global_prio > b->highest_global_prio ? -1 : 1;
    if (a->highest_local_prio != b->highest_local_prio)
        return a->highest_local_prio > b->highest_local_prio ? -1 : 1;
    if (a->n_features != b->n_features)
        return a->n_features > b->n_features ? -1 : 1;
    if (a->rdeps.n != b->rdeps.n)
        return a->rdeps.n > b->rdeps.n ? -1 : 1;
    if (a->lowest_build_id != b->lowest_build_id)
        return a->lowest_build_id < b->lowest_build_id ? -1 : 1;
    return strcmp(a->drv_path, b->drv_path);
}

int runner__step_cmp_priority(const Runner *r, const Step *a, const Step *b)
{
    if (a->highest_global_prio != b->highest_global_prio)
        return a->highest_global_prio > b->highest_global_prio ? -1 : 1;
    if (a->share_jobset_id != b->share_jobset_id) {
        double sa = runner__jobset_share_used(r, a->share_jobset_id);
        double sb = runner__jobset_share_used(r, b->share_jobset_id);
        if (sa != sb)
            return sa < sb ? -1 : 1;
    }
    return cmp_same_share(a, b);
}

static void heap_swap(StepQueue *q, uint32_t i, uint32_t j)
{
    Step *t = q->heap[i];
    q->heap[i] = q->heap[j];
    q->heap[j] = t;
    q->heap[i]->heap_index = i;
    q->heap[j]->heap_index = j;
}

static void sift_up(StepQueue *q, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (cmp_same_share(q->heap[i], q->heap[p]) >= 0)
            break;
        heap_swap(q, i, p);
        i = p;
    }
}

static void sift_down(StepQueue *q, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, rr = l + 1, best = i;
        if (l < q->n && cmp_same_share(q->heap[l], q->heap[best]) < 0)
            best = l;
        if (rr < q->n && cmp_same_share(q->heap[rr], q->heap[best]) < 0)
            best = rr;
        if (best == i)
            break;
        heap_swap(q, i, best);
        i = best;
    }
}

static StepQueue *queue_new(const char *system, const char *features, int64_t jobset_id)
{
    StepQueue *q = xcalloc(1, sizeof *q);
    q->system = xstrdup(system);
    q->features = xstrdup(features);
    q->jobset_id = jobset_id;
    return q;
}

void runner__queue_free(StepQueue *q)
{
    if (!q)
        return;
    free(q->heap);
    free(q->system);
    free(q->features);
    free(q);
}

/* The queue of s's machine type and share jobset. */
StepQueue *runner__queue_for_step(Runner *r, const Step *s)
{
    RUNNER_ASSERT_LOCKED(r);
    char *key = xasprintf("%s\t%s\t%" PRId64, s->system, s->features, s->share_jobset_id);
    StepQueue *q = map_get(r->g.queues, key);
    if (!q) {
        q = queue_new(s->system, s->features, s->share_jobset_id);
        map_put(r->g.queues, key, q);
    }
    free(key);
    return q;
}

void runner__queue_push(const Runner *r, StepQueue *q, Step *s)
{
    RUNNER_ASSERT_LOCKED(r);
    (void)r;
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 64;
        q->heap = xrealloc(q->heap, q->cap * sizeof *q->heap);
    }
    q->heap[q->n] = s;
    s->heap_index = q->n;
    s->queue = q;
    q->n++;
    sift_up(q, q->n - 1);
}

static Step *queue_peek(StepQueue *q)
{
    return q->n ? q->heap[0] : NULL;
}

void runner__queue_remove(const Runner *r, StepQueue *q, Step *s)
{
    RUNNER_ASSERT_LOCKED(r);
    (void)r;
    uint32_t i = s->heap_index;
    if (s->queue != q || i >= q->n || q->heap[i] != s)
        return;
    q->n--;
    if (i != q->n) {
        q->heap[i] = q->heap[q->n];
        q->heap[i]->heap_index = i;
        sift_down(q, i);
        sift_up(q, i);
    }
    s->queue = NULL;
    s->heap_index = UINT32_MAX;
}

Step *runner__queue_pop(const Runner *r, StepQueue *q)
{
    RUNNER_ASSERT_LOCKED(r);
    Step *s = queue_peek(q);
    if (s)
        runner__queue_remove(r, q, s);
    return s;
}

/* A step's priority (or its share jobset) changed: restore the heap property around
 * it, or move it to the queue of its new jobset. */
void runner__queue_update(Runner *r, Step *s)
{
    RUNNER_ASSERT_LOCKED(r);
    StepQueue *q = s->queue;
    if (!q)
        return;
    if (q->jobset_id != s->share_jobset_id) {
        runner__queue_remove(r, q, s);
        runner__queue_push(r, runner__queue_for_step(r, s), s);
        return;
    }
    sift_up(q, s->heap_index);
    sift_down(q, s->heap_index);
}

/* ---------------------------------------------------------------- QueueHeads */

static int heads_less(const Runner *r, const StepQueue *a, const StepQueue *b)
{
    return runner__step_cmp_priority(r, a->heap[0], b->heap[0]) < 0;
}

static void heads_sift_down(const Runner *r, QueueHeads *h, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, rr = l + 1, best = i;
        StepQueue *t;
        if (l < h->n && heads_less(r, h->v[l], h->v[best]))
            best = l;
        if (rr < h->n && heads_less(r, h->v[rr], h->v[best]))
            best = rr;
        if (best == i)
            break;
        t = h->v[i];
        h->v[i] = h->v[best];
        h->v[best] = t;
        i = best;
    }
}

void runner__queue_heads_init(Runner *r, QueueHeads *h)
{
    RUNNER_ASSERT_LOCKED(r);
    size_t it = 0;
    const char *key;
    void *val;
    h->n = 0;
    while (map_next(r->g.queues, &it, &key, &val)) {
        StepQueue *q = val;
        if (!q->n)
            continue;
        if (h->n == h->cap) {
            h->cap = h->cap ? h->cap * 2 : 16;
            h->v = xrealloc(h->v, h->cap * sizeof *h->v);
        }
        h->v[h->n++] = q;
    }
    for (uint32_t i = h->n / 2; i-- > 0;)
        heads_sift_down(r, h, i);
}

StepQueue *runner__queue_heads_top(const QueueHeads *h)
{
    return h->n ? h->v[0] : NULL;
}

void runner__queue_heads_drop_top(const Runner *r, QueueHeads *h)
{
    RUNNER_ASSERT_LOCKED(r);
    if (!h->n)
        return;
    h->v[0] = h->v[--h->n];
    heads_sift_down(r, h, 0);
}

void runner__queue_heads_update_top(const Runner *r, QueueHeads *h)
{
    RUNNER_ASSERT_LOCKED(r);
    if (!h->n)
        return;
    if (!h->v[0]->n)
        runner__queue_heads_drop_top(r, h);
    else
        heads_sift_down(r, h, 0);
}

void runner__queue_heads_dispose(QueueHeads *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

double runner__jobset_share_used(const Runner *r, int64_t jobset_id)
{
    RUNNER_ASSERT_LOCKED(r);
    char k[32];
    Jobset *js;
    if (!jobset_id)
        return 0;
    snprintf(k, sizeof k, "%" PRId64, jobset_id);
    js = map_get(r->g.jobsets, k);
    if (!js || js->shares <= 0)
        return 0;
    return js->seconds / (double)js->shares;
}
