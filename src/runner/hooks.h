/*
 * hooks.h: hooks.c's functions: test hooks: crash and pause points.  For src/runner/
 * only.
 */
#ifndef SLUICE_RUNNER_HOOKS_H
#define SLUICE_RUNNER_HOOKS_H

#include "runner/core.h"

void runner__crash_point(Runner *r, const char *name);
void runner__pause_point(Runner *r, const char *name, const char *what);

#endif
