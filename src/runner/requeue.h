/*
 * requeue.h: requeue.c's functions: an input whose output is gone becomes a step
 * again.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_REQUEUE_H
#define SLUICE_RUNNER_REQUEUE_H

#include "runner/core.h"

void runner__requeue_resolving(Runner *r, Db *db, const char *drv, const char *input);
void runner__requeue_input(Runner *r, Db *db, Worker *w, const char *input);

#endif
