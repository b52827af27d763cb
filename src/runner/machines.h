/*
 * machines.h: machines.c's functions: the machines file, machine matching, slots and
 * backoff.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_MACHINES_H
#define SLUICE_RUNNER_MACHINES_H

#include "runner/core.h"

void runner_machine_disable(Runner *r, Machine *m, const char *why, int untrusted);
int runner_load_machines(Runner *r, Err *e);
uint32_t runner_local_max_jobs(int max_jobs);
const char *runner_local_system(void);
void machine_free(Machine *m);
int runner_machines_parse(const char *text, const char *file, PtrVec *out, Err *e);
int machine_fits(const Machine *m, const char *system, const char *features);
void runner_machine_release(Runner *r, Worker *w, int status, Blame blame, const char *msg);
char *runner_features_string(const NixDrv *d, int two_phase);

/* finish.c: the worker's machine slot, given back once: early (the build on a remote
 * machine is done, only the copy back is left, so the machine's next step starts
 * meanwhile) or at the step's end.  Lock held. */
void runner_worker_release_slot(Runner *r, Worker *w);

#endif
