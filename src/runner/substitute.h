/*
 * substitute.h: substitute.c's functions: use-substitutes: querying outputs at ingest,
 * the pool that substitutes them while the builds that need them are attached, their
 * type-1 rows, and the substitutions the runner remembers.  For src/runner/ only.
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

/* One QuerySubstitutablePathInfos of `ask` (counted in stats.subst_queries, and in
 * *questions when not NULL); the substitutable ones are added to `subst`. */
int runner__subst_query(Runner *r, StoreConn *c, const StrVec *ask, Map *subst, uint64_t *questions,
                        Err *e);

/* The substitutions of a chunk in flight: up to max-substitution-jobs threads, started as
 * jobs come, each taking its share of the jobs waiting and asking the local store for them
 * in one request.  Jobs (borrowed: they must stay put until they come back) go in with
 * runner__subst_pool_submit and come back from runner__subst_pool_wait as each share ends,
 * counted and (failures) logged.  The threads touch no graph state.  Ingest only. */
typedef struct RunnerSubstPool RunnerSubstPool;

RunnerSubstPool *runner__subst_pool_new(Runner *r);
void runner__subst_pool_submit(RunnerSubstPool *p, RunnerSubstJob *const *jobs, size_t n);
/* Wait until jobs have ended and move them onto `done`: their number, or 0 when none is
 * waiting or running any more. */
size_t runner__subst_pool_wait(RunnerSubstPool *p, PtrVec *done);
/* Every job submitted must have come back first; NULL is fine. */
void runner__subst_pool_free(RunnerSubstPool *p);

void runner__subst_job_dispose(RunnerSubstJob *j);

/* Root a substituted job's outputs and give each of `builds` its type-1 row (not twice:
 * a build that has a type-1 row of the drv already gets none). */
int runner__subst_record(Runner *r, Db *db, const RunnerSubstJob *j, const char *system,
                         char *const *names, const int64_t *builds, size_t n_builds, Err *e);

/* What the runner remembers of its substitutions while it is up (ingest only): the last
 * LIMIT_SUBST_REMEMBERED derivations substituted (their outputs, start and stop), for the
 * type-1 rows of builds read later that need them. */
void runner__subst_remember(Runner *r, const RunnerSubstJob *j);
/* 1 when drv_path is remembered: its outputs are copied onto paths (initialised by the
 * caller), its start and stop set. */
int runner__subst_recall(Runner *r, const char *drv_path, StrVec *paths, int64_t *start,
                         int64_t *stop);
void runner__subst_memory_free(Runner *r);

#endif
