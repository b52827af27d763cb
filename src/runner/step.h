/*
 * step.h: step.c's functions: the state machine of a step (legal moves, pins, retry
 * waits).  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_STEP_H
#define SLUICE_RUNNER_STEP_H

#include "runner/core.h"

const char *runner__step_state_name(int state);
int runner__step_move_legal(int from, int to);

void runner__step_move(Runner *r, Step *s, int to); /* asserts the move is legal */
void runner__step_retry_at(Runner *r, Step *s, int64_t after);
void runner__step_pin(Runner *r, Step *s);

#endif
