/*
 * dispatch.h: dispatch.c's functions: the dispatcher thread.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_DISPATCH_H
#define SLUICE_RUNNER_DISPATCH_H

#include "runner/core.h"

void *runner__dispatcher_main(void *arg);

#endif
