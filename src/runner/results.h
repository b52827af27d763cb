/*
 * results.h: results.c's functions: a step's outputs' facts, Nix's results mapped to
 * Hydra's statuses, cached and ingest-time build ends.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_RESULTS_H
#define SLUICE_RUNNER_RESULTS_H

#include "runner/core.h"
#include "runner/facts.h"
#include "runner/rdb.h"

void runner__map_result(int nix_status, int *step_status, int *can_retry, int *can_cache);

int runner__finish_cached_build(Runner *r, Db *db, const RdbBuildRow *row, const char *drv_path,
                                const StrVec *names, const StrVec *static_paths,
                                const StrVec *found_paths, Err *e);

int runner__fail_build_at_ingest(Runner *r, Db *db, const RdbBuildRow *row, const char *drv_path,
                                 const char *system, int step_status, const char *msg, int is_top,
                                 Err *e);

#endif
