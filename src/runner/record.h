/*
 * record.h: record.c's functions: the record layer: the transactions that end a step.
 * For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_RECORD_H
#define SLUICE_RUNNER_RECORD_H

#include "runner/core.h"
#include "runner/results.h"

typedef struct DepBuild {
    int64_t id;
    int is_top; /* the failed step is (now) its top level */
} DepBuild;

typedef struct FinishTx {
    Worker *w;
    int status;
    const char *msg;
    int can_cache;
    char *const *out_names;
    char *const *out_paths;
    size_t n_outputs;
    const OutputFacts *facts;
    int64_t start, stop;
    DepBuild *builds; /* success: builds to finish; failure: dependent builds */
    size_t n_builds;
    char **cache_paths; /* FailedPaths entries */
    size_t n_cache;
    const char *resolved_base; /* success of a resolved P': its basename */
    int64_t *finished;         /* OUT: builds finished by this tx */
    size_t n_finished;
} FinishTx;

/* The transaction ending a step, each t->w's row and t->builds: success (outputs,
 * builds finished, type-1 rows for builds resolving to a resolved P'), failure (the
 * dependents' rows and statuses, FailedPaths), retry or cancellation (the row, or an
 * attempt row when no busy row was written).  A NULL db fails with e's error. */
int runner__record_success(Db *db, FinishTx *t, Err *e);
int runner__record_failure(Db *db, FinishTx *t, Err *e);
int runner__record_retry(Db *db, FinishTx *t, Err *e);

/* Builds that depend on s, each with whether s is its top level (lock held). */
void runner__collect_dependents(Runner *r, Step *s, DepBuild **out, size_t *n);

/* The journal's lines after a committed transaction. */
void runner__journal_step_end(Worker *w, const FinishTx *t, int status, int retry, const char *msg);
void runner__journal_builds_finished(const FinishTx *t, int status);

/* A busy row whose result could not be written (lock held); runner__mark_unrecorded
 * marks them once the database takes writes. */
void runner__unrecorded_add(Runner *r, int64_t build, int32_t stepnr, int64_t stop);
void runner__mark_unrecorded(Runner *r, Db *db);
void runner__mark_unrecorded(Runner *r, Db *db);

#endif
