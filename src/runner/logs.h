/*
 * logs.h: logs.c's functions: build log files (size-limited writer, reader).  For
 * src/runner/ only.
 */
#ifndef SLUICE_RUNNER_LOGS_H
#define SLUICE_RUNNER_LOGS_H

#include "runner/core.h"

typedef struct RunnerLog RunnerLog;

int runner__log_open(const char *log_dir, const char *drv_path, uint64_t limit, RunnerLog **out,
                     Err *e);
int runner__log_write(RunnerLog *l, const void *data, size_t n, Err *e);
int runner__log_close(RunnerLog *l, Err *e);

#endif
