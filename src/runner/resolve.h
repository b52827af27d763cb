/*
 * resolve.h: resolve.c's functions: the resolver thread (phase two of CA
 * derivations).  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_RESOLVE_H
#define SLUICE_RUNNER_RESOLVE_H

#include "runner/core.h"

void *runner__resolver_main(void *arg);

#endif
