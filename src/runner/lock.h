/*
 * lock.h: lock.c's functions: the graph lock (Runner.lock), its checks and the
 * dispatcher wake-up.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_LOCK_H
#define SLUICE_RUNNER_LOCK_H

#include "runner/core.h"

void runner_lock(Runner *r);
void runner_unlock(Runner *r);
int runner_lock_held(const Runner *r);
void runner_cond_wait(Runner *r, const struct timespec *abs);

/* Aborts (debug builds) when the calling thread does not hold the graph lock. */
#define RUNNER_ASSERT_LOCKED(r) assert(runner_lock_held(r))
void graph_wake_dispatcher(Runner *r);

#endif
