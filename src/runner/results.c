/*
 * results.c: what Nix's results mean for Hydra's rows (hydra-behaviour §3.8, §3.9,
 * §6.2): the mapping of Nix's BuildResult to a step status, retry and FailedPaths
 * (never for 3, 4, 7, 9, 10, 11), and the builds that end at ingest: cached builds
 * (isCachedBuild = 1, their outputs' facts collected and published first) and builds
 * failed before any step ran.  Their transactions are record.c's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner/publish.h"
#include "runner/record.h"
#include "runner/rdb.h"
#include "runner/results.h"
#include "runner/roots.h"
#include "runner/services.h"

/* ---------------------------------------------------------------- BuildResult mapping */

/* Nix BuildResult status -> step status, retry, cache (C++ runner mapping, §6.2). */
void runner__map_result(int nix_status, int *step_status, int *can_retry, int *can_cache)
{
    *can_retry = 0;
    *can_cache = 0;
    switch (nix_status) {
    case STORE_BUILD_BUILT:
    case STORE_BUILD_SUBSTITUTED:
    case STORE_BUILD_ALREADY_VALID:
    case STORE_BUILD_RESOLVES_TO_ALREADY_VALID: *step_status = DB_STATUS_SUCCESS; break;
    case STORE_BUILD_PERMANENT_FAILURE:
    case STORE_BUILD_INPUT_REJECTED:
    case STORE_BUILD_OUTPUT_REJECTED:
        *step_status = DB_STATUS_FAILED;
        *can_cache = 1;
        break;
    case STORE_BUILD_TRANSIENT_FAILURE:
        *step_status = DB_STATUS_FAILED;
        *can_retry = 1;
        break;
    case STORE_BUILD_TIMED_OUT: *step_status = DB_STATUS_TIMED_OUT; break;
    case STORE_BUILD_MISC_FAILURE:
        *step_status = DB_STATUS_ABORTED;
        *can_retry = 1;
        break;
    case STORE_BUILD_LOG_LIMIT_EXCEEDED: *step_status = DB_STATUS_LOG_LIMIT; break;
    case STORE_BUILD_NOT_DETERMINISTIC:
        *step_status = DB_STATUS_NOT_DETERMINISTIC;
        *can_cache = 1;
        break;
    default: /* cached failure, dependency failed, no substituters, hash mismatch */
        *step_status = DB_STATUS_ABORTED;
        break;
    }
}

/* ---------------------------------------------------------------- cached builds */

/* A build whose top-level outputs all exist: finished at once (isCachedBuild = 1). */
int runner__finish_cached_build(Runner *r, Db *db, const RdbBuildRow *row, const char *drv_path,
                                const StrVec *names, const StrVec *static_paths,
                                const StrVec *found_paths, Err *e)
{
    OutputFacts facts;
    StoreConn *c = NULL;
    char **paths = xcalloc(names->n ? names->n : 1, sizeof *paths);
    RecordOutputs o = {names->v, paths, names->n};
    int rc;
    for (size_t i = 0; i < names->n; i++)
        paths[i] = static_paths->v[i][0] ? static_paths->v[i] : found_paths->v[i];
    memset(&facts, 0, sizeof facts);
    rc = store_machine_query_get(r->local_store, &c, e);
    if (rc < 0)
        goto out;
    rc = runner__output_facts_collect(c, o.names, paths, o.n, &facts, e);
    store_machine_query_put(r->local_store, c);
    if (rc < 0)
        goto out;
    if (r->cache) {
        rc = runner__cache_publish_cached(r, drv_path, paths, o.n, e);
        if (rc < 0)
            goto out;
    }
    rc = runner__record_cached_build(db, row->id, &o, &facts, e);
    if (rc == 0) {
        for (size_t i = 0; i < o.n; i++)
            runner__root_output(r, db, paths[i], row->id);
        atomic_fetch_add(&r->stats.builds_done, 1);
        atomic_fetch_add(&r->stats.builds_succeeded, 1);
        atomic_fetch_add(&r->stats.builds_cached, 1);
        runner__build_finished(r, row->id);
    }
out:
    runner__output_facts_dispose(&facts);
    free(paths);
    return rc;
}

/* ---------------------------------------------------------------- failures at ingest */

int runner__fail_build_at_ingest(Runner *r, Db *db, const RdbBuildRow *row, const char *drv_path,
                                 const char *system, int step_status, const char *msg, int is_top,
                                 Err *e)
{
    RecordIngestFailure t = {
        row->id, drv_path, system ? system : "", step_status, msg ? msg : "cached failure", is_top};
    int rc = runner__record_ingest_failure(db, &t, e);
    if (rc == 0) {
        atomic_fetch_add(&r->stats.builds_done, 1);
        atomic_fetch_add(&r->stats.builds_failed, 1);
        if (step_status == DB_STATUS_CACHED_FAILURE)
            atomic_fetch_add(&r->stats.steps_cached_failure, 1);
        if (step_status == DB_STATUS_ABORTED && is_top)
            log_warn("aborting build %" PRId64 ": %s", row->id, t.msg);
        else
            log_info("build %" PRId64 " failed at ingest: %s", row->id, t.msg);
        runner__build_finished(r, row->id);
    }
    return rc;
}
