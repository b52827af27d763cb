/*
 * step.h: step.c's functions: the state machine of a step (legal moves, pins, retry
 * waits).  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_STEP_H
#define SLUICE_RUNNER_STEP_H

#include "runner/core.h"

const char *step_state_name(int state);
int step_move_legal(int from, int to);

void step_move(Runner *r, Step *s, int to); /* asserts the move is legal */
void step_retry_at(Runner *r, Step *s, int64_t after);
void step_pin(Runner *r, Step *s);

#endif
