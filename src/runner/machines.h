/*
 * machines.h: machines.c's functions: the machines file, machine matching, slots and
 * backoff.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_MACHINES_H
#define SLUICE_RUNNER_MACHINES_H

#include "runner/core.h"

int runner__load_machines(Runner *r, Err *e);
uint32_t runner__local_max_jobs(int max_jobs);
void runner__machine_free(Machine *m);
int runner__machines_parse(const char *text, const char *file, PtrVec *out, Err *e);
int runner__machine_fits(const Machine *m, const char *system, const char *features);
/* 1 when m is busy: steps run on it, or runnable steps wait that it could take (takes
 * the graph lock). */
int runner__machine_has_work(Runner *r, const Machine *m);
void runner__machine_release(Runner *r, Worker *w, int status, Blame blame, const char *msg);
char *runner__features_string(const NixDrv *d, int two_phase);

/* finish.c: the worker's machine slot, given back once: early (the build on a remote
 * machine is done, only the copy back is left, so the machine's next step starts
 * meanwhile) or at the step's end.  Lock held. */
void runner__worker_release_slot(Runner *r, Worker *w);

#endif
