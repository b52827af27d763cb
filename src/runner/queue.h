/*
 * queue.h: queue.c's functions: queues of runnable steps and the one priority order
 * over them.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_QUEUE_H
#define SLUICE_RUNNER_QUEUE_H

#include "runner/core.h"

int runner__step_cmp_priority(const Runner *r, const Step *a, const Step *b);
void runner__queue_free(StepQueue *q);

StepQueue *runner__queue_for_step(Runner *r, const Step *s); /* created when new */
void runner__queue_push(const Runner *r, StepQueue *q, Step *s);
Step *runner__queue_pop(const Runner *r, StepQueue *q);
void runner__queue_remove(const Runner *r, StepQueue *q, Step *s);
void runner__queue_update(Runner *r, Step *s);

/* The merged view of every queue in one priority order: a heap of the non-empty queues
 * ordered by their heads (runner__step_cmp_priority), so the best runnable step of the whole
 * runner is the head of the top queue.  Built once per dispatch round, O(queues). */
typedef struct QueueHeads {
    StepQueue **v;
    uint32_t n, cap;
} QueueHeads;
void runner__queue_heads_init(Runner *r, QueueHeads *h);
StepQueue *runner__queue_heads_top(const QueueHeads *h);

/* The top queue's head was taken: the queue moves to its new place (or out, empty). */
void runner__queue_heads_update_top(const Runner *r, QueueHeads *h);

/* The top queue can do nothing more this round (no free machine fits it). */
void runner__queue_heads_drop_top(const Runner *r, QueueHeads *h);
void runner__queue_heads_dispose(QueueHeads *h);
double runner__jobset_share_used(const Runner *r, int64_t jobset_id);

#endif
