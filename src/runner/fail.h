/*
 * fail.h: fail.c's functions: failing a step that is not running.  For src/runner/
 * only.
 */
#ifndef SLUICE_RUNNER_FAIL_H
#define SLUICE_RUNNER_FAIL_H

#include "runner/core.h"

void runner__fail_step(Runner *r, Db *db, const char *drv_path, int status, const char *msg,
                       int pinned);

#endif
