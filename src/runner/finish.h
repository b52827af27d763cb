/*
 * finish.h: finish.c's functions: a worker's step outcome recorded, then the graph
 * brought in line.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_FINISH_H
#define SLUICE_RUNNER_FINISH_H

#include "runner/core.h"
#include "runner/results.h"

int64_t runner__retry_time(const Runner *r, int tries, int64_t last_stop);

void runner__step_finished(Runner *r, Db *db, Worker *w, int *pstatus, int can_retry, int can_cache,
                           Blame blame, const char *requeue_drv, const char *msg, StrVec *names,
                           StrVec *paths, OutputFacts *facts, int64_t start, int64_t stop);

#endif
