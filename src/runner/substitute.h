/*
 * substitute.h: substitute.c's functions: use-substitutes: querying and substituting
 * outputs at ingest.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_SUBSTITUTE_H
#define SLUICE_RUNNER_SUBSTITUTE_H

#include "runner/core.h"

/* One derivation to substitute: its output paths (borrowed); the outcome. */
typedef struct RunnerSubstJob {
    const char *drv_path;
    char *const *paths;
    size_t n;
    int ok;
    char *error; /* owned: why it failed */
    int64_t start, stop;
} RunnerSubstJob;

/* One QuerySubstitutablePathInfos of `ask` (counted in stats.subst_queries); the
 * substitutable ones are added to `subst`. */
int runner__subst_query(Runner *r, StoreConn *c, const StrVec *ask, Map *subst, Err *e);

/* Substitute jobs[0..n) through the local store on up to max-substitution-jobs threads
 * (this one included); returns when all are done.  Failures are logged and counted. */
void runner__subst_run(Runner *r, RunnerSubstJob *jobs, size_t n);
void runner__subst_job_dispose(RunnerSubstJob *j);

/* Root a substituted job's outputs and give each of `builds` its type-1 row (not twice). */
int runner__subst_record(Runner *r, Db *db, const RunnerSubstJob *j, const char *system,
                         char *const *names, const int64_t *builds, size_t n_builds, Err *e);

#endif
