/*
 * record.h: record.c's functions: the record layer: the transactions that end a step.
 * For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_RECORD_H
#define SLUICE_RUNNER_RECORD_H

#include "runner/core.h"
#include "runner/facts.h"
#include "runner/rdb.h"

/* A step's row in one build: what every row of it repeats (borrowed strings). */
typedef struct StepRef {
    int64_t build;
    const char *drv_path;
    const char *system;
} StepRef;

/* The outputs a row or a build records (borrowed). */
typedef struct RecordOutputs {
    char *const *names;
    char *const *paths; /* may hold NULLs in a row (unknown CA outputs) */
    size_t n;
} RecordOutputs;

/* A type-1 row with status 0: outputs found, substituted, or built for another build
 * (the composite every such row is written with, here and in ingest and substitute). */
int runner__record_found_row(Db *db, StepRef ref, int64_t start, int64_t stop,
                             const RecordOutputs *o, Err *e);
/* Hydra's rule: the status a dependent build gets when a step failed with step_status. */
int runner__dependent_status(int step_status, int is_toplevel);

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

/* A step dispatched: its busy row (build_started first for the builds whose top level
 * it is, step_started after), or `cancelled` when the build finished meanwhile. */
typedef struct RecordStart {
    Worker *w;
    const char *system;
    char *const *out_names;
    char *const *out_paths;
    size_t n;
    int32_t stepnr; /* OUT */
    int cancelled;  /* OUT: the build is finished already */
    int64_t *tops;  /* builds whose top-level step this is: build_started for each */
    size_t n_tops;
} RecordStart;
int runner__record_step_start(Db *db, RecordStart *t, Err *e);

/* P resolved to P': a status-13 row in each unfinished target build that has none. */
typedef struct RecordResolution {
    const char *drv_path; /* P */
    const char *system;
    const char *resolved;   /* P' (full path) */
    const int64_t *targets; /* builds that get a status-13 row */
    size_t n_targets;
    char *const *out_names; /* P's outputs */
    char *const *out_paths; /* static paths or NULL */
    size_t n_outputs;
    int written; /* OUT */
} RecordResolution;
int runner__record_resolution(Db *db, RecordResolution *t, Err *e);

/* P' was built before (or found): P's builds finish as cached, each with a type-1 row
 * for P'; with no build to finish, row_build gets P''s type-1 row. */
typedef struct RecordPrebuilt {
    const char *resolved; /* P' */
    const char *system;
    int64_t *builds; /* builds to finish (top level P) */
    size_t n_builds;
    int64_t row_build; /* when none: the build that records P''s outputs */
    char *const *names;
    char *const *paths;
    size_t n;
    const OutputFacts *facts;
    int64_t *finished; /* OUT */
    size_t n_finished;
} RecordPrebuilt;
int runner__record_prebuilt(Db *db, RecordPrebuilt *t, Err *e);

/* A build whose top-level outputs all exist: finished at once as cached. */
int runner__record_cached_build(Db *db, int64_t build, const RecordOutputs *o,
                                const OutputFacts *facts, Err *e);

/* A build that fails at ingest: its drv is gone (aborted, no row), a cached failure
 * (status 8, propagatedFrom the build that failed it), or CA work with CA off (9). */
typedef struct RecordIngestFailure {
    int64_t build;
    const char *drv_path;
    const char *system;
    int step_status; /* 3 (missing drv), 8 (cached failure), 9 (CA work, CA off) */
    const char *msg;
    int is_top;
} RecordIngestFailure;
int runner__record_ingest_failure(Db *db, const RecordIngestFailure *t, Err *e);

#endif
