/*
 * results.h: results.c's functions: a step's outputs' facts, Nix's results mapped to
 * Hydra's statuses, cached and ingest-time build ends.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_RESULTS_H
#define SLUICE_RUNNER_RESULTS_H

#include "runner/core.h"
#include "runner/rdb.h"

/* Facts about the outputs of a step, read from the local store. */
typedef struct OutputFacts {
    int failed; /* nix-support/failed */
    char *release_name;
    int64_t size, closure_size;
    struct RdbProduct *products;
    size_t n_products;
    struct RdbMetric *metrics;
    size_t n_metrics;
} OutputFacts;
void runner__output_facts_dispose(OutputFacts *f);

/* names: the output names (NULL: all "out"), for the default nix-build products. */
int runner__output_facts_collect(StoreConn *c, char *const *names, char *const *paths, size_t n,
                                 OutputFacts *f, Err *e);
void runner__map_result(int nix_status, int *step_status, int *can_retry, int *can_cache);
int runner__dependent_status(int step_status, int is_toplevel);

int runner__finish_cached_build(Runner *r, Db *db, const RdbBuildRow *row, const char *drv_path,
                                const StrVec *names, const StrVec *static_paths,
                                const StrVec *found_paths, Err *e);

int runner__fail_build_at_ingest(Runner *r, Db *db, const RdbBuildRow *row, const char *drv_path,
                                 const char *system, int step_status, const char *msg, int is_top,
                                 Err *e);

#endif
