/*
 * rdb.h: rdb.c's functions: the runner's database statements on Hydra's tables.  For
 * src/runner/ only.
 */
#ifndef SLUICE_RUNNER_RDB_H
#define SLUICE_RUNNER_RDB_H

#include "runner/core.h"

#define RDB_INTERRUPTED_MSG "step interrupted: the runner stopped"

typedef struct RdbBuildRow {
    int64_t id, jobset_id, timestamp;
    char *job, *drv_path;
    int32_t global_priority, local_priority;
    int32_t max_silent, timeout; /* -1 when NULL */
} RdbBuildRow;

typedef struct RdbStepRow {
    int64_t build;
    int type; /* 0 build, 1 substitution / found */
    const char *drv_path;
    int busy;                      /* 0 or a phase */
    int64_t start_time, stop_time; /* stop 0 -> NULL */
    const char *system;
    int status;              /* -1 -> NULL */
    int64_t propagated_from; /* 0 -> NULL */
    const char *error_msg;
    const char *machine;
    const char *resolved_drv_path; /* basename or NULL */
    char *const *out_names;
    char *const *out_paths; /* may be NULL or hold NULLs */
    size_t n_outputs;
} RdbStepRow;

typedef struct RdbProduct {
    const char *type, *subtype, *path, *name, *default_path, *sha256;
    int64_t file_size; /* -1 -> NULL */
} RdbProduct;

typedef struct RdbMetric {
    const char *name, *unit;
    double value;
} RdbMetric;

typedef struct RdbBuildResult {
    int64_t id;
    int status;
    int64_t start_time, stop_time;
    int is_cached;
    int64_t size, closure_size;
    const char *release_name;
    char *const *out_names;
    char *const *out_paths;
    size_t n_outputs;
    const RdbProduct *products;
    size_t n_products;
    const RdbMetric *metrics;
    size_t n_metrics;
} RdbBuildResult;
int runner__rdb_clear_busy(Db *db, Err *e);
void runner__rdb_build_row_dispose(RdbBuildRow *b);
int runner__rdb_load_unfinished(Db *db, RdbBuildRow **rows, size_t *n, Err *e);
int runner__rdb_unfinished_ids(Db *db, Map *out_prio, Err *e);

/* repeats: "project:jobset" -> N (intptr), or NULL */
int runner__rdb_load_jobsets(Db *db, Map *jobsets, int64_t since, const Map *repeats, Err *e);
int runner__rdb_recorded_outputs(Db *db, const char *drv_path, StrVec *names, StrVec *paths,
                                 Err *e);
int runner__rdb_build_resolution(Db *db, int64_t build, const char *drv_path, char **out, Err *e);
int runner__rdb_failed_paths_any(Db *db, char *const *paths, size_t n, Err *e);
int runner__rdb_failed_paths_add(Db *db, char *const *paths, size_t n, Err *e);
int runner__rdb_last_failure_build(Db *db, const char *drv_path, int64_t *out, Err *e);
int runner__rdb_insert_step(Db *db, const RdbStepRow *r, int32_t *stepnr, Err *e);

/* timesBuilt (and isNonDeterministic when built more than once) of a finished row, as
 * Hydra's runner writes them; nothing when times_built is 0. */
int runner__rdb_step_times_built(Db *db, int64_t build, int32_t stepnr, uint64_t times_built,
                                 int non_det, Err *e);

int runner__rdb_finish_step(Db *db, int64_t build, int32_t stepnr, int status,
                            const char *error_msg, int64_t stop_time, const char *machine,
                            int64_t overhead_ms, char *const *out_names, char *const *out_paths,
                            size_t n, Err *e);
int runner__rdb_set_busy(Db *db, int64_t build, int32_t stepnr, int phase, Err *e);
int runner__rdb_finish_build(Db *db, const RdbBuildResult *b, Err *e);
int runner__rdb_builds_resolving_to(Db *db, const char *resolved_base, PtrVec *ids_out, Err *e);
int runner__rdb_build_has_success(Db *db, int64_t build, const char *drv_path, Err *e);
int runner__rdb_build_unfinished(Db *db, int64_t build, Err *e);

int runner__rdb_root_add(Db *db, const char *root, const char *path, const char *kind,
                         int64_t build, Err *e);
int runner__rdb_root_del(Db *db, const char *root, Err *e);

/* sluice_uploads: a built step's outputs on their way to the binary cache, kept until
 * the cache has them, so that a runner stopped before the upload ended leaves the next
 * one a record of it. */
typedef struct RdbUpload {
    char *drv_path;       /* the drv built (a resolved P' for a resolved step) */
    StrVec outputs;       /* its output paths */
    StrVec resolved_from; /* the Ps resolving to it, whose realisations go too */
    int realisations;     /* 1: publish drv_path's own realisations (CA, deferred, resolved) */
} RdbUpload;
int runner__rdb_upload_add(Db *db, const RdbUpload *u, Err *e);
int runner__rdb_upload_del(Db *db, const char *drv_path, Err *e);
/* every row, oldest first, as RdbUpload * (free each with runner__rdb_upload_free) */
int runner__rdb_uploads_load(Db *db, PtrVec *out, Err *e);
void runner__rdb_upload_free(RdbUpload *u);

#endif
