/*
 * phases.h: phases.c's functions: the phase clock of a step and the duration
 * histograms.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_PHASES_H
#define SLUICE_RUNNER_PHASES_H

#include "runner/core.h"

/* phases.c: the worker's phase clock.  phase_start begins it (the prepare phase),
 * phase_enter charges the time since the last mark to the current phase and moves to
 * the next, phase_report charges the last one, adds the step to the phase histograms
 * and logs the step's phase line at -v. */
void runner__phase_start(Worker *w);
void runner__phase_enter(Worker *w, int phase);
void runner__phase_report(Runner *r, Worker *w);

#endif
