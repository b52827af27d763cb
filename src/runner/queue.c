/*
 * queue.c: runnable-step queues, one per machine type (system + required features),
 * each a binary heap ordered by scheduling priority (hydra-behaviour §3.6, WithRdeps):
 *
 *   global priority desc, jobset share used asc, number of rdeps desc,
 *   local priority desc, lowest build id asc (then drv path, for a total order).
 *
 * Because every step of one queue has the same requirements, either the head of a
 * queue fits a free machine or no step of it does: a dispatch round costs O(log n) per
 * dispatched step plus O(queues), never a scan of the queue.  Caller holds Runner.lock.
 */
#include <stdlib.h>
#include <string.h>

#include "runner/runner_int.h"

static double share_used(const Runner *r, int64_t jobset_id)
{
    return runner_jobset_share_used(r, jobset_id);
}

int step_cmp_priority(const Runner *r, const Step *a, const Step *b)
{
    double sa, sb;
    if (a->highest_global_prio != b->highest_global_prio)
        return a->highest_global_prio > b->highest_global_prio ? -1 : 1;
    sa = share_used(r, a->share_jobset_id);
    sb = share_used(r, b->share_jobset_id);
    if (sa != sb)
        return sa < sb ? -1 : 1;
    if (a->rdeps.n != b->rdeps.n)
        return a->rdeps.n > b->rdeps.n ? -1 : 1;
    if (a->highest_local_prio != b->highest_local_prio)
        return a->highest_local_prio > b->highest_local_prio ? -1 : 1;
    if (a->lowest_build_id != b->lowest_build_id)
        return a->lowest_build_id < b->lowest_build_id ? -1 : 1;
    return strcmp(a->drv_path, b->drv_path);
}

static void heap_swap(StepQueue *q, uint32_t i, uint32_t j)
{
    Step *t = q->heap[i];
    q->heap[i] = q->heap[j];
    q->heap[j] = t;
    q->heap[i]->heap_index = i;
    q->heap[j]->heap_index = j;
}

static void sift_up(const Runner *r, StepQueue *q, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (step_cmp_priority(r, q->heap[i], q->heap[p]) >= 0)
            break;
        heap_swap(q, i, p);
        i = p;
    }
}

static void sift_down(const Runner *r, StepQueue *q, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, rr = l + 1, best = i;
        if (l < q->n && step_cmp_priority(r, q->heap[l], q->heap[best]) < 0)
            best = l;
        if (rr < q->n && step_cmp_priority(r, q->heap[rr], q->heap[best]) < 0)
            best = rr;
        if (best == i)
            break;
        heap_swap(q, i, best);
        i = best;
    }
}

StepQueue *queue_new(const char *system, const char *features)
{
    StepQueue *q = xcalloc(1, sizeof *q);
    q->system = xstrdup(system);
    q->features = xstrdup(features);
    return q;
}

void queue_free(StepQueue *q)
{
    if (!q)
        return;
    free(q->heap);
    free(q->system);
    free(q->features);
    free(q);
}

void queue_push(const Runner *r, StepQueue *q, Step *s)
{
    RUNNER_ASSERT_LOCKED(r);
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 64;
        q->heap = xrealloc(q->heap, q->cap * sizeof *q->heap);
    }
    q->heap[q->n] = s;
    s->heap_index = q->n;
    s->queue = q;
    q->n++;
    sift_up(r, q, q->n - 1);
}

Step *queue_peek(StepQueue *q)
{
    return q->n ? q->heap[0] : NULL;
}

void queue_remove(const Runner *r, StepQueue *q, Step *s)
{
    RUNNER_ASSERT_LOCKED(r);
    uint32_t i = s->heap_index;
    if (s->queue != q || i >= q->n || q->heap[i] != s)
        return;
    q->n--;
    if (i != q->n) {
        q->heap[i] = q->heap[q->n];
        q->heap[i]->heap_index = i;
        sift_down(r, q, i);
        sift_up(r, q, i);
    }
    s->queue = NULL;
    s->heap_index = UINT32_MAX;
}

Step *queue_pop(const Runner *r, StepQueue *q)
{
    RUNNER_ASSERT_LOCKED(r);
    Step *s = queue_peek(q);
    if (s)
        queue_remove(r, q, s);
    return s;
}

/* A step's priority changed: restore the heap property around it. */
void queue_update(const Runner *r, Step *s)
{
    RUNNER_ASSERT_LOCKED(r);
    StepQueue *q = s->queue;
    if (!q)
        return;
    sift_up(r, q, s->heap_index);
    sift_down(r, q, s->heap_index);
}

/* Rebuild the heap after many keys changed (jobset shares): O(n). */
void queue_reheapify(const Runner *r, StepQueue *q)
{
    RUNNER_ASSERT_LOCKED(r);
    if (q->n < 2)
        return;
    for (uint32_t i = q->n / 2; i-- > 0;)
        sift_down(r, q, i);
}
