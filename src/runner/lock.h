/*
 * lock.h: lock.c's functions: the graph lock (Runner.lock), its checks and the
 * dispatcher wake-up.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_LOCK_H
#define SLUICE_RUNNER_LOCK_H

#include "runner/core.h"

void runner__lock(Runner *r);
void runner__unlock(Runner *r);
int runner__lock_held(const Runner *r);
void runner__cond_wait(Runner *r, const struct timespec *abs);

/* Aborts (debug builds) when the calling thread does not hold the graph lock. */
#define RUNNER_ASSERT_LOCKED(r) assert(runner__lock_held(r))
void runner__graph_wake_dispatcher(Runner *r);

#endif
