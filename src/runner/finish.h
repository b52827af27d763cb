/*
 * finish.h: finish.c's functions: a worker's step outcome recorded, then the graph
 * brought in line.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_FINISH_H
#define SLUICE_RUNNER_FINISH_H

#include "runner/core.h"
#include "runner/results.h"

int64_t runner__retry_time(const Runner *r, int tries, int64_t last_stop);

typedef struct Outcome {
    int status; /* step status (0 success) */
    int can_retry;
    int can_cache;
    Blame blame;
    char *requeue_drv; /* its drv */
    char *msg;
    StrVec out_names;
    StrVec out_paths;
    OutputFacts facts;
    int64_t start, stop;
    int interrupted; /* the runner is stopping: not the step's fault */
} Outcome;
void runner__outcome_dispose(Outcome *o);
/* o->msg becomes a copy of msg ("" for NULL). */
void runner__outcome_set_msg(Outcome *o, const char *msg);

/* A worker is done with its step: the outcome recorded in one transaction (record.c),
 * then the graph brought in line; o->status ends as what was recorded (3 when the
 * database refused it: the step is retried). */
void runner__step_finished(Runner *r, Db *db, Worker *w, Outcome *o);

#endif
