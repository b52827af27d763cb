/*
 * exec.h: exec.c's functions: a worker: one step on one machine.  For src/runner/
 * only.
 */
#ifndef SLUICE_RUNNER_EXEC_H
#define SLUICE_RUNNER_EXEC_H

#include "runner/core.h"

int runner__worker_start(Runner *r, Worker *w, Err *e);
void runner__worker_free(Worker *w);
/* Running steps no unfinished build needs any more are aborted (their rows finish as
 * cancelled).  Lock held. */
void runner__workers_cancel_unneeded(Runner *r);

#endif
