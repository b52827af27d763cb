/*
 * services.h: services.c's functions: the services every runner thread shares: DB
 * pool, counted threads, stop.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_SERVICES_H
#define SLUICE_RUNNER_SERVICES_H

#include "runner/core.h"

int runner__db_get(Runner *r, Db **out, Err *e);
void runner__db_put(Runner *r, Db *db);
void runner__build_finished(Runner *r, int64_t id);
void runner__stop_locked(Runner *r);

/* Start a detached thread fn(arg) counted in the runner's threads (it ends with
 * runner__thread_exit); 0 or pthread_create's error. */
int runner__thread_start(Runner *r, void *(*fn)(void *), void *arg);

/* A worker thread's last act (it may free the Runner: touch nothing after it). */
void runner__thread_exit(Runner *r);

#endif
