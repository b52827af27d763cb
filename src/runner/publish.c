/*
 * publish.c: the runner's side of the binary cache (store-uri), and the upload pool.
 *
 * A step that built successfully gives its machine slot back and hands its upload to
 * the upload pool (at most RUNNER_UPLOAD_THREADS threads, never the dispatcher's), so a
 * slow cache delays no other step's dispatch; its success is recorded only after the
 * upload: the closures of its outputs, the realisations of the built drv and of every
 * P resolving to it (CA and deferred steps; those the local store holds, with their
 * dependents) and, with upload-logs-to-binary-cache, its log as log/DRV_BASENAME.  A
 * failed upload fails the step as a retryable status 3 with the cache's error as its
 * message, so the step is retried with the usual back-off and its builds finish only
 * once the cache has everything.  When the runner stops, uploads not begun yet end
 * their steps as interrupted (retried without counting).  A build found already built
 * at ingest publishes what the cache lacks of its outputs (and of its realisations)
 * before it is finished as cached; when that fails it stays queued and the queue pass
 * reports a failure, so that it is tried again with the pass's back-off.  Paths the
 * cache has already are skipped after one batched lookup, so a retry or a restart
 * finishes an interrupted upload without writing anything twice.  Every upload is
 * recorded in sluice_uploads before it is handed over and the row dropped once the
 * cache has it; a runner starting finds the rows a previous one left (stopped or killed
 * before the upload ended) and hands them to the pool, so a dependency that no build
 * needs to build again (its outputs are valid now) is still published.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner/lock.h"
#include "runner/logs.h"
#include "runner/machines.h"
#include "runner/publish.h"
#include "runner/rdb.h"
#include "runner/services.h"

/* ---------------------------------------------------------------- upload pool */

typedef struct UploadJob {
    RunnerUploadFn fn;
    void *arg;
    struct UploadJob *next;
} UploadJob;

/* The pool's queue and threads; everything guarded by lock (never taken with the graph
 * lock held, nor the other way round). */
struct RunnerUploads {
    pthread_mutex_t lock;
    pthread_cond_t work; /* a job queued, or the runner stops */
    pthread_cond_t room; /* the queue shrank */
    UploadJob *head, *tail;
    uint32_t queued, active, threads, idle;
};

static RunnerUploads *uploads_new(void)
{
    RunnerUploads *u = xcalloc(1, sizeof *u);
    pthread_mutex_init(&u->lock, NULL);
    pthread_cond_init(&u->work, NULL);
    pthread_cond_init(&u->room, NULL);
    return u;
}

void runner__uploads_free(Runner *r)
{
    RunnerUploads *u = r->uploads;
    if (!u)
        return;
    pthread_mutex_destroy(&u->lock);
    pthread_cond_destroy(&u->work);
    pthread_cond_destroy(&u->room);
    free(u);
    r->uploads = NULL;
}

void runner__uploads_wake(Runner *r)
{
    RunnerUploads *u = r->uploads;
    if (!u)
        return;
    pthread_mutex_lock(&u->lock);
    pthread_cond_broadcast(&u->work);
    pthread_cond_broadcast(&u->room);
    pthread_mutex_unlock(&u->lock);
}

static void *upload_thread(void *arg)
{
    Runner *r = arg;
    RunnerUploads *u = r->uploads;
    pthread_mutex_lock(&u->lock);
    for (;;) {
        UploadJob *j;
        while (!u->head && !atomic_load(&r->stopping)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            u->idle++;
            pthread_cond_timedwait(&u->work, &u->lock, &ts);
            u->idle--;
        }
        j = u->head;
        if (!j)
            break; /* stopping, nothing left */
        u->head = j->next;
        if (!u->head)
            u->tail = NULL;
        u->queued--;
        u->active++;
        pthread_cond_broadcast(&u->room);
        pthread_mutex_unlock(&u->lock);
        j->fn(j->arg, atomic_load(&r->stopping));
        free(j);
        pthread_mutex_lock(&u->lock);
        u->active--;
    }
    u->threads--;
    pthread_mutex_unlock(&u->lock);
    runner__thread_exit(r);
    return NULL;
}

/* A new pool thread (no lock held); 0 or -1. */
static int upload_thread_start(Runner *r)
{
    int rc = runner__thread_start(r, upload_thread, r);
    if (rc == 0)
        return 0;
    log_warn("cannot start an upload thread: %s", strerror(rc));
    return -1;
}

void runner__upload_submit(Runner *r, Worker *w, RunnerUploadFn fn, void *arg)
{
    RunnerUploads *u = r->uploads;
    UploadJob *j = xcalloc(1, sizeof *j), *orphans = NULL;
    int spawn = 0, interrupted = 0;

    /* back-pressure: wait for room while holding the machine slot */
    pthread_mutex_lock(&u->lock);
    while (u->queued >= RUNNER_UPLOAD_QUEUE && !atomic_load(&r->stopping))
        pthread_cond_wait(&u->room, &u->lock);
    pthread_mutex_unlock(&u->lock);

    if (w) {
        runner__lock(r);
        runner__worker_release_slot(r, w);
        runner__unlock(r);
        log_debug("step %s: built; machine slot freed while its outputs are uploaded", w->drv_path);
    }

    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&u->lock);
    if (atomic_load(&r->stopping)) {
        interrupted = 1; /* the pool threads may be gone */
    } else {
        if (u->tail)
            u->tail->next = j;
        else
            u->head = j;
        u->tail = j;
        u->queued++;
        if (u->idle < u->queued && u->threads < RUNNER_UPLOAD_THREADS) {
            u->threads++; /* counted now, so that no other submit starts it too */
            spawn = 1;
        }
        pthread_cond_signal(&u->work);
        j = NULL;
    }
    pthread_mutex_unlock(&u->lock);
    if (spawn && upload_thread_start(r) < 0) {
        pthread_mutex_lock(&u->lock);
        if (--u->threads == 0) {
            /* no thread at all: what waits is uploaded here */
            orphans = u->head;
            u->head = u->tail = NULL;
            u->queued = 0;
        }
        pthread_mutex_unlock(&u->lock);
    }
    if (j) {
        j->fn(j->arg, interrupted);
        free(j);
    }
    while (orphans) {
        UploadJob *next = orphans->next;
        orphans->fn(orphans->arg, atomic_load(&r->stopping));
        free(orphans);
        orphans = next;
    }
}

/* ---------------------------------------------------------------- cache */

int runner__cache_open(Runner *r, Err *e)
{
    int rc;
    if (!r->opt.store_uri || !*r->opt.store_uri)
        return 0;
    rc = cache_open(r->opt.store_uri, &r->cache, e);
    if (rc == 0)
        r->uploads = uploads_new();
    return rc;
}

json_t *runner__cache_status_json(Runner *r)
{
    CacheCounters k;
    uint32_t queued = 0, active = 0;
    if (!r->cache)
        return NULL;
    cache_counters(r->cache, &k);
    if (r->uploads) {
        pthread_mutex_lock(&r->uploads->lock);
        queued = r->uploads->queued;
        active = r->uploads->active;
        pthread_mutex_unlock(&r->uploads->lock);
    }
    return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I}", "url", cache_url(r->cache),
                     "nrNars", (json_int_t)k.nars, "narBytes", (json_int_t)k.nar_bytes,
                     "uploadedBytes", (json_int_t)k.file_bytes, "nrNarinfos",
                     (json_int_t)k.narinfos, "nrRealisations", (json_int_t)k.realisations, "nrLogs",
                     (json_int_t)k.logs, "nrFailures", (json_int_t)k.failures, "uploadSeconds",
                     (double)k.upload_ms / 1000.0, "nrUploadsQueued", (json_int_t)queued,
                     "nrUploadsActive", (json_int_t)active);
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

/* Publish what u describes: the closures of its outputs, the realisations of its drv
 * (when u->realisations; d is the drv when the caller has it read) and of every P
 * resolving to it, and with upload-logs-to-binary-cache its log. */
static int publish(Runner *r, const RdbUpload *u, const NixDrv *d, Err *e)
{
    StoreConn *c = NULL;
    StrVec ids;
    CachePublishStats st;
    int rc;

    strvec_init(&ids);
    if (u->realisations)
        add_ids(r, u->drv_path, d, &ids);
    for (size_t k = 0; k < u->resolved_from.n; k++)
        add_ids(r, u->resolved_from.v[k], NULL, &ids);
    rc = store_machine_query_get(r->local_store, &c, e);
    if (rc < 0)
        goto out;
    rc = cache_publish(r->cache, c, (const char *const *)u->outputs.v, u->outputs.n,
                       (const char *const *)ids.v, ids.n, CACHE_IDS_OPTIONAL, &st, e);
    store_machine_query_put(r->local_store, c);
    if (rc < 0)
        goto out;
    log_debug("step %s: published %zu of %zu paths, %zu realisations", u->drv_path, st.uploaded,
              st.paths, st.realisations);
    if (r->opt.upload_logs) {
        char *log = runner_log_path(r->opt.log_dir, u->drv_path);
        struct stat sb;
        if (log && stat(log, &sb) == 0)
            rc = cache_publish_log(r->cache, u->drv_path, log, 1, e);
        free(log);
    }
out:
    strvec_dispose(&ids);
    return rc;
}

/* The upload a built step w needs (borrowing w's and out_paths' strings: not to be
 * freed). */
static RdbUpload step_upload(Worker *w, int two_phase, const StrVec *out_paths)
{
    RdbUpload u;
    memset(&u, 0, sizeof u);
    u.drv_path = (char *)w->drv_path;
    u.outputs = *out_paths;
    u.resolved_from = w->resolved_from;
    u.realisations = two_phase || w->is_resolved;
    return u;
}

/* Run fn(db) on a connection of the pool; a failure is logged only (the row it writes is
 * a record for a restart, the step does not depend on it). */
static void with_db(Runner *r, const char *what, const char *drv_path,
                    int (*fn)(Db *, const void *, Err *), const void *arg)
{
    Db *db = NULL;
    Err e = {0};
    if (runner__db_get(r, &db, &e) == 0) {
        fn(db, arg, &e);
        runner__db_put(r, db);
    }
    if (e.code)
        log_warn("step %s: %s: %s", drv_path, what, e.msg);
}

static int pending_add(Db *db, const void *arg, Err *e)
{
    return runner__rdb_upload_add(db, arg, e);
}

static int pending_del(Db *db, const void *arg, Err *e)
{
    return runner__rdb_upload_del(db, arg, e);
}

void runner__cache_pending_add(Runner *r, Worker *w, int two_phase, const StrVec *out_paths)
{
    RdbUpload u = step_upload(w, two_phase, out_paths);
    with_db(r, "cannot record the pending upload", w->drv_path, pending_add, &u);
}

int runner__cache_publish_cached(Runner *r, const char *drv_path, char *const *out_paths, size_t n,
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

void runner__cache_publish_step(Runner *r, Worker *w, const NixDrv *drv, int two_phase,
                                const StrVec *out_paths, int *status, int *can_retry, char **msg)
{
    Err e = {0};
    RdbUpload u = step_upload(w, two_phase, out_paths);
    if (publish(r, &u, drv, &e) == 0) {
        with_db(r, "cannot drop the pending upload", w->drv_path, pending_del, w->drv_path);
        return;
    }
    log_warn("step %s: %s", w->drv_path, e.msg);
    *status = DB_STATUS_ABORTED;
    *can_retry = 1;
    free(*msg);
    *msg = xasprintf("binary cache %s: %s", cache_url(r->cache), e.msg);
}

/* ---------------------------------------------------------------- resumed uploads */

/* One row of sluice_uploads left by a runner that stopped before the upload ended: the
 * outputs are published (what the cache has is skipped) and the row dropped; while the
 * cache fails it is tried again after 1, 2, 4 ... s (at most a minute); outputs the store no
 * longer has leave nothing to publish. */
typedef struct Resumed {
    Runner *r;
    RdbUpload *u;
} Resumed;

static void resumed_run(void *arg, int interrupted)
{
    Resumed *j = arg;
    Runner *r = j->r;
    unsigned failures = 0;
    while (!interrupted && !atomic_load(&r->stopping)) {
        Err e = {0};
        int rc = publish(r, j->u, NULL, &e);
        if (rc == 0 || e.code == ERR_NOTFOUND) {
            if (rc == 0)
                log_info("step %s: upload of a previous run finished", j->u->drv_path);
            else
                log_info("step %s: nothing left to publish: %s", j->u->drv_path, e.msg);
            with_db(r, "cannot drop the pending upload", j->u->drv_path, pending_del,
                    j->u->drv_path);
            break;
        }
        {
            uint64_t delay = failures < 6 ? 1000ull << failures : 60000; /* 1 s .. 1 min */
            failures++;
            log_warn("step %s: upload of a previous run: %s (trying again in %llu ms)",
                     j->u->drv_path, e.msg, (unsigned long long)delay);
            for (uint64_t slept = 0; slept < delay && !atomic_load(&r->stopping); slept += 50)
                usleep(50 * 1000);
        }
    }
    runner__rdb_upload_free(j->u);
    free(j);
}

static void *resume_thread(void *arg)
{
    Runner *r = arg;
    PtrVec rows = {0};
    Db *db = NULL;
    Err e = {0};
    if (runner__db_get(r, &db, &e) == 0) {
        runner__rdb_uploads_load(db, &rows, &e);
        runner__db_put(r, db);
    }
    if (e.code)
        log_warn("binary cache: cannot read the pending uploads: %s", e.msg);
    if (rows.n)
        log_info("binary cache: %u upload(s) of a previous run to finish", (unsigned)rows.n);
    for (uint32_t i = 0; i < rows.n; i++) {
        Resumed *j = xcalloc(1, sizeof *j);
        j->r = r;
        j->u = rows.v[i];
        runner__upload_submit(r, NULL, resumed_run, j);
    }
    ptrvec_dispose(&rows);
    runner__thread_exit(r);
    return NULL;
}

void runner__uploads_resume(Runner *r)
{
    int rc;
    if (!r->cache)
        return;
    rc = runner__thread_start(r, resume_thread, r);
    if (rc != 0)
        log_warn("cannot start the thread of the pending uploads: %s", strerror(rc));
}
