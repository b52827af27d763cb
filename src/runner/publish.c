/*
 * publish.c: the runner's side of the binary cache (store-uri).
 *
 * A step that built successfully publishes, on its own worker thread (never the
 * dispatcher's), before its success is recorded: the closures of its outputs, the
 * realisations of the built drv and of every P resolving to it (CA and deferred steps;
 * those the local store holds, with their dependents) and, with
 * upload-logs-to-binary-cache, its log as log/DRV_BASENAME.  A failed upload fails the
 * step as a retryable status 3 with the cache's error as its message, so the step is
 * retried with the usual back-off and its builds finish only once the cache has
 * everything.  A build found already built at ingest publishes what the cache lacks of
 * its outputs (and of its realisations) before it is finished as cached; when that
 * fails it stays queued and the queue pass reports a failure, so that it is tried again
 * with the pass's back-off.  Paths the cache has already are
 * skipped after one batched lookup, so a retry or a restart finishes an interrupted upload without
 * writing anything twice.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runner/runner_int.h"

int runner_cache_open(Runner *r, Err *e)
{
    if (!r->opt.store_uri || !*r->opt.store_uri)
        return 0;
    return cache_open(r->opt.store_uri, &r->cache, e);
}

Cache *runner_cache(const Runner *r)
{
    return r->cache;
}

json_t *runner_cache_status_json(Runner *r)
{
    CacheCounters k;
    if (!r->cache)
        return NULL;
    cache_counters(r->cache, &k);
    return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "url", cache_url(r->cache), "nrNars",
                     (json_int_t)k.nars, "narBytes", (json_int_t)k.nar_bytes, "uploadedBytes",
                     (json_int_t)k.file_bytes, "nrNarinfos", (json_int_t)k.narinfos,
                     "nrRealisations", (json_int_t)k.realisations, "nrLogs", (json_int_t)k.logs,
                     "nrFailures", (json_int_t)k.failures, "uploadSeconds",
                     (double)k.upload_ms / 1000.0);
}

/* Realisation ids of every output of drv_path (or of d when given). */
static void add_ids(Runner *r, const char *drv_path, const NixDrv *d, StrVec *ids)
{
    NixDrv *own = NULL;
    char **v = NULL;
    Err e = {0};
    if (!d) {
        if (nix_drv_read(drv_path, &own, &e) < 0) {
            log_warn("binary cache: %s", e.msg);
            return;
        }
        d = own;
    }
    pthread_mutex_lock(&r->hash_lock);
    if (nix_drv_realisation_ids(r->hash_cache, d, &v, &e) < 0)
        v = NULL;
    pthread_mutex_unlock(&r->hash_lock);
    for (size_t i = 0; v && i < d->n_outputs; i++) {
        strvec_push(ids, v[i]);
        free(v[i]);
    }
    free(v);
    nix_drv_free(own);
}

static int publish(Runner *r, Worker *w, const NixDrv *drv, int two_phase, const StrVec *out_paths,
                   Err *e)
{
    StoreConn *c = NULL;
    StrVec ids;
    CachePublishStats st;
    int rc;

    strvec_init(&ids);
    if (two_phase || w->is_resolved)
        add_ids(r, w->drv_path, drv, &ids);
    for (size_t k = 0; k < w->resolved_from.n; k++)
        add_ids(r, w->resolved_from.v[k], NULL, &ids);
    rc = store_machine_query_get(r->local_store, &c, e);
    if (rc < 0)
        goto out;
    rc = cache_publish(r->cache, c, (const char *const *)out_paths->v, out_paths->n,
                       (const char *const *)ids.v, ids.n, CACHE_IDS_OPTIONAL, &st, e);
    store_machine_query_put(r->local_store, c);
    if (rc < 0)
        goto out;
    log_debug("step %s: published %zu of %zu paths, %zu realisations", w->drv_path, st.uploaded,
              st.paths, st.realisations);
    if (r->opt.upload_logs) {
        char *log = runner_log_path(r->opt.log_dir, w->drv_path);
        struct stat sb;
        if (log && stat(log, &sb) == 0)
            rc = cache_publish_log(r->cache, w->drv_path, log, 1, e);
        free(log);
    }
out:
    strvec_dispose(&ids);
    return rc;
}

int runner_cache_publish_cached(Runner *r, const char *drv_path, char *const *out_paths, size_t n,
                                Err *e)
{
    StoreConn *c = NULL;
    StrVec ids;
    NixDrv *d = NULL;
    NixDrvKind kind;
    CachePublishStats st;
    int rc;

    strvec_init(&ids);
    if (nix_drv_read(drv_path, &d, e) == 0 && nix_drv_kind(d, &kind, e) == 0 &&
        (kind == NIX_DRV_FLOATING || kind == NIX_DRV_DEFERRED))
        add_ids(r, drv_path, d, &ids);
    nix_drv_free(d);
    rc = store_machine_query_get(r->local_store, &c, e);
    if (rc == 0) {
        rc = cache_publish(r->cache, c, (const char *const *)out_paths, n,
                           (const char *const *)ids.v, ids.n, CACHE_IDS_OPTIONAL, &st, e);
        store_machine_query_put(r->local_store, c);
    }
    if (rc < 0) {
        err_prefix(e, "binary cache %s", cache_url(r->cache));
        atomic_store(&r->cache_retry, 1);
    } else if (st.uploaded || st.realisations)
        log_info("cached build of %s: published %zu of %zu paths, %zu realisations", drv_path,
                 st.uploaded, st.paths, st.realisations);
    strvec_dispose(&ids);
    return rc;
}

void runner_cache_publish_step(Runner *r, Worker *w, const NixDrv *drv, int two_phase,
                               const StrVec *out_paths, int *status, int *can_retry, char **msg)
{
    Err e = {0};
    if (publish(r, w, drv, two_phase, out_paths, &e) == 0)
        return;
    log_warn("step %s: %s", w->drv_path, e.msg);
    *status = 3;
    *can_retry = 1;
    free(*msg);
    *msg = xasprintf("binary cache %s: %s", cache_url(r->cache), e.msg);
}
