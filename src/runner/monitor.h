/*
 * monitor.h: monitor.c's functions: the queue monitor (events, passes, chores).  For
 * src/runner/ only.
 */
#ifndef SLUICE_RUNNER_MONITOR_H
#define SLUICE_RUNNER_MONITOR_H

#include "runner/core.h"

int runner__load_jobsets(Runner *r, Db *db, Err *e);
uint64_t runner__pass_backoff_ms(unsigned failures);

/* The monitor loop until the runner stops: 0, or the fatal error that ended it. */
int runner__monitor(Runner *r, Err *e);

/* Builds restarted while no runner listened (or now): their cached failures go. */
int runner__handle_restarted(Runner *r, Err *e);

/* The progress line (RunnerOptions.progress), and where the machines snapshot goes. */
void runner__progress(Runner *r);
char *runner__machines_status_path(Runner *r);

#endif
