/*
 * substitute.c: use-substitutes (Hydra's name).  At ingest the outputs of a level of the
 * walk that are neither valid nor recorded are asked of the local store's own
 * substituters in one request (QuerySubstitutablePathInfos: Nix's `substituters` and
 * `trusted-public-keys` decide; sluice adds no trust of its own).  A derivation whose
 * outputs all are there is substituted instead of built: the local store fetches them
 * and checks their signatures (BuildPaths of the paths).
 *
 * The substitutions of a chunk run on a pool (RunnerSubstPool) while its builds are
 * attached and their other steps built: up to max-substitution-jobs threads, started as
 * jobs come; each takes its share of the jobs waiting (the jobs waiting over the number
 * of threads) and asks for them in one BuildPaths (Nix keeps going past a failure), then
 * one QueryValidPaths when that failed, to tell which came.  A share's jobs go back to
 * ingest as soon as it ends, so a step waits only for the substitution it needs.  A
 * failed substitution (cache gone, bad signature, corrupt NAR) is logged with Nix's
 * reasons and counted, and ingest builds the derivation instead.  The threads touch no
 * graph state; the pool's queues are guarded by its own lock.
 *
 * Every build that needed a substituted derivation gets a type-1 BuildSteps row (status
 * 0, its outputs, start and stop), once.  The runner remembers its last
 * LIMIT_SUBST_REMEMBERED substitutions while it is up (ingest only): a build read later
 * that needs one of them gets its row too, with the substitution's own start and stop.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runner/hooks.h"
#include "runner/record.h"
#include "runner/rdb.h"
#include "runner/roots.h"
#include "runner/substitute.h"

int runner__subst_query(Runner *r, StoreConn *c, const StrVec *ask, Map *subst, uint64_t *questions,
                        Err *e)
{
    StrVec got;
    int rc;
    if (!ask->n)
        return 0;
    strvec_init(&got);
    atomic_fetch_add(&r->stats.subst_queries, 1);
    if (questions)
        (*questions)++;
    rc = store_query_substitutable(c, (const char *const *)ask->v, ask->n, &got, e);
    for (size_t i = 0; rc == 0 && i < got.n; i++)
        map_put(subst, got.v[i], (void *)1);
    strvec_dispose(&got);
    return rc;
}

struct RunnerSubstPool {
    Runner *r;
    pthread_mutex_t lock;
    pthread_cond_t work; /* jobs waiting, or closing */
    pthread_cond_t done_cond;
    PtrVec queue;       /* lock: RunnerSubstJob* waiting for a thread, from queue_at on */
    uint32_t queue_at;  /* lock */
    PtrVec done;        /* lock: ended, not taken by runner__subst_pool_wait yet */
    size_t busy;        /* lock: jobs a thread is substituting */
    int closing;        /* lock */
    pthread_t *threads; /* the submitting thread only */
    size_t n_threads, max_threads;
};

/* 1 when every path of j is in valid. */
static int job_valid(const RunnerSubstJob *j, const StrVec *valid)
{
    for (size_t k = 0; k < j->n; k++)
        if (!strvec_contains(valid, j->paths[k]))
            return 0;
    return 1;
}

/* One share: one BuildPaths of all its paths; their outcomes onto the jobs. */
static void subst_batch(Runner *r, RunnerSubstJob *const *jobs, size_t n, StoreConn **c)
{
    StrVec paths, valid;
    Err e = {0}, ve = {0};
    int64_t start = util_time_now(), stop;
    int rc = 0, known = 0, any = 0;
    strvec_init(&paths);
    strvec_init(&valid);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < jobs[i]->n; k++)
            strvec_push(&paths, jobs[i]->paths[k]);
    if (atomic_load(&r->stopping))
        rc = err_set(&e, ERR_CANCELLED, "the runner is stopping");
    if (rc == 0 && !*c)
        rc = store_machine_query_get(r->local_store, c, &e);
    if (rc == 0)
        rc = store_substitute_paths(*c, (const char *const *)paths.v, paths.n, &e);
    stop = util_time_now();
    if (rc < 0 && *c && !store_conn_broken(*c))
        known =
            store_query_valid_paths(*c, (const char *const *)paths.v, paths.n, &valid, &ve) == 0;
    for (size_t i = 0; i < n; i++) {
        RunnerSubstJob *j = jobs[i];
        j->start = start;
        j->stop = stop;
        j->ok = rc == 0 || (known && job_valid(j, &valid));
        any |= j->ok;
        if (!j->ok)
            j->error = xstrdup(e.msg[0] ? e.msg : "substitution failed");
        if (j->ok) {
            atomic_fetch_add(&r->stats.subst_done, 1);
        } else {
            atomic_fetch_add(&r->stats.subst_failed, 1);
            log_warn("substituting %s failed, building it instead: %s", j->drv_path, j->error);
        }
    }
    if (any) /* tests: substituted, nothing recorded yet */
        runner__crash_point(r, "substituted");
    if (*c && store_conn_broken(*c)) {
        store_machine_query_put(r->local_store, *c);
        *c = NULL;
    }
    strvec_dispose(&paths);
    strvec_dispose(&valid);
}

/* Take a share of the jobs waiting (lock held): ceil(waiting / threads). */
static size_t take_share(RunnerSubstPool *p, RunnerSubstJob ***out)
{
    size_t waiting = p->queue.n - p->queue_at;
    size_t k = (waiting + p->n_threads - 1) / (p->n_threads ? p->n_threads : 1);
    *out = xcalloc(k + 1, sizeof **out);
    for (size_t i = 0; i < k; i++)
        (*out)[i] = p->queue.v[p->queue_at++];
    if (p->queue_at == p->queue.n)
        p->queue.n = p->queue_at = 0;
    p->busy += k;
    return k;
}

static void share_done(RunnerSubstPool *p, RunnerSubstJob **share, size_t k)
{
    for (size_t i = 0; i < k; i++)
        ptrvec_push(&p->done, share[i]);
    p->busy -= k;
    pthread_cond_broadcast(&p->done_cond);
    free(share);
}

static void *pool_thread(void *arg)
{
    RunnerSubstPool *p = arg;
    StoreConn *c = NULL;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        RunnerSubstJob **share;
        size_t k;
        while (p->queue_at == p->queue.n && !p->closing)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->queue_at == p->queue.n)
            break;
        k = take_share(p, &share);
        pthread_mutex_unlock(&p->lock);
        subst_batch(p->r, share, k, &c);
        pthread_mutex_lock(&p->lock);
        share_done(p, share, k);
    }
    pthread_mutex_unlock(&p->lock);
    if (c)
        store_machine_query_put(p->r->local_store, c);
    return NULL;
}

RunnerSubstPool *runner__subst_pool_new(Runner *r)
{
    RunnerSubstPool *p = xcalloc(1, sizeof *p);
    p->r = r;
    p->max_threads = r->opt.max_substitution_jobs > 0 ? (size_t)r->opt.max_substitution_jobs : 1;
    p->threads = xcalloc(p->max_threads, sizeof *p->threads);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done_cond, NULL);
    return p;
}

void runner__subst_pool_submit(RunnerSubstPool *p, RunnerSubstJob *const *jobs, size_t n)
{
    size_t outstanding;
    if (!n)
        return;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < n; i++)
        ptrvec_push(&p->queue, jobs[i]);
    outstanding = p->queue.n - p->queue_at + p->busy;
    while (p->n_threads < p->max_threads && p->n_threads < outstanding &&
           pthread_create(&p->threads[p->n_threads], NULL, pool_thread, p) == 0)
        p->n_threads++;
    if (!p->n_threads) { /* no thread: this one does the work */
        RunnerSubstJob **share;
        size_t k;
        p->n_threads = 1; /* one share: everything */
        k = take_share(p, &share);
        p->n_threads = 0;
        pthread_mutex_unlock(&p->lock);
        {
            StoreConn *c = NULL;
            subst_batch(p->r, share, k, &c);
            if (c)
                store_machine_query_put(p->r->local_store, c);
        }
        pthread_mutex_lock(&p->lock);
        share_done(p, share, k);
    }
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
}

size_t runner__subst_pool_wait(RunnerSubstPool *p, PtrVec *done)
{
    size_t n;
    pthread_mutex_lock(&p->lock);
    while (!p->done.n && (p->queue_at < p->queue.n || p->busy))
        pthread_cond_wait(&p->done_cond, &p->lock);
    n = p->done.n;
    for (uint32_t i = 0; i < p->done.n; i++)
        ptrvec_push(done, p->done.v[i]);
    p->done.n = 0;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void runner__subst_pool_free(RunnerSubstPool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->closing = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    ptrvec_dispose(&p->queue);
    ptrvec_dispose(&p->done);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done_cond);
    free(p);
}

void runner__subst_job_dispose(RunnerSubstJob *j)
{
    free(j->error);
    j->error = NULL;
}

typedef struct SubstRowTx {
    const RunnerSubstJob *j;
    const char *system;
    char *const *names;
    const int64_t *builds;
    size_t n_builds;
} SubstRowTx;

/* 1 when build already has a type-1 row for drv (a pass after a restart). */
static int has_subst_row(Db *db, int64_t build, const char *drv, Err *e)
{
    int64_t n = 0;
    int rc = db_query_int64(
        db,
        "SELECT count(*) FROM BuildSteps WHERE build = $1 AND type = $3 AND "
        "drvPath = $2",
        DB_ARGS(DB_P_INT(build), DB_P_TEXT(drv), DB_P_INT(DB_STEP_SUBSTITUTION)), &n, e);
    return rc < 0 ? rc : n > 0;
}

static int subst_row_tx(Db *db, void *payload, Err *e)
{
    SubstRowTx *t = payload;
    for (size_t i = 0; i < t->n_builds; i++) {
        RecordOutputs o = {t->names, t->j->paths, t->j->n};
        int rc = has_subst_row(db, t->builds[i], t->j->drv_path, e);
        if (rc < 0)
            return rc;
        if (rc == 1)
            continue;
        rc = runner__record_found_row(db, (StepRef){t->builds[i], t->j->drv_path, t->system},
                                      t->j->start, t->j->stop, &o, e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int runner__subst_record(Runner *r, Db *db, const RunnerSubstJob *j, const char *system,
                         char *const *names, const int64_t *builds, size_t n_builds, Err *e)
{
    SubstRowTx t = {j, system, names, builds, n_builds};
    if (!n_builds)
        return 0;
    /* rooted before the rows that record them commit */
    for (size_t i = 0; i < j->n; i++)
        runner__root_output(r, db, j->paths[i], builds[0]);
    return db_tx(db, subst_row_tx, &t, e);
}

/* ---------------------------------------------------------------- memory */

typedef struct SubstMemo {
    char *drv_path;
    StrVec paths;
    int64_t start, stop;
} SubstMemo;

/* The ingest thread only: drv -> SubstMemo, and the memos in the order they came (a
 * ring: the oldest goes when a new one does not fit). */
struct RunnerSubstMemory {
    Map *by_drv;
    SubstMemo **ring;
    size_t at, n;
};

static void memo_free(void *p)
{
    SubstMemo *m = p;
    if (!m)
        return;
    free(m->drv_path);
    strvec_dispose(&m->paths);
    free(m);
}

void runner__subst_remember(Runner *r, const RunnerSubstJob *j)
{
    RunnerSubstMemory *mem = r->subst_memory;
    SubstMemo *m;
    if (!mem) {
        mem = r->subst_memory = xcalloc(1, sizeof *mem);
        mem->by_drv = map_new(memo_free);
        mem->ring = xcalloc(LIMIT_SUBST_REMEMBERED, sizeof *mem->ring);
    }
    if (map_get(mem->by_drv, j->drv_path))
        return;
    if (mem->n == LIMIT_SUBST_REMEMBERED) { /* the oldest goes */
        SubstMemo *old = mem->ring[mem->at];
        memo_free(map_del(mem->by_drv, old->drv_path));
        mem->at = (mem->at + 1) % LIMIT_SUBST_REMEMBERED;
        mem->n--;
    }
    m = xcalloc(1, sizeof *m);
    m->drv_path = xstrdup(j->drv_path);
    strvec_init(&m->paths);
    for (size_t k = 0; k < j->n; k++)
        strvec_push(&m->paths, j->paths[k]);
    m->start = j->start;
    m->stop = j->stop;
    map_put(mem->by_drv, m->drv_path, m);
    mem->ring[(mem->at + mem->n) % LIMIT_SUBST_REMEMBERED] = m;
    mem->n++;
}

int runner__subst_recall(Runner *r, const char *drv_path, StrVec *paths, int64_t *start,
                         int64_t *stop)
{
    SubstMemo *m = r->subst_memory ? map_get(r->subst_memory->by_drv, drv_path) : NULL;
    if (!m)
        return 0;
    for (size_t k = 0; k < m->paths.n; k++)
        strvec_push(paths, m->paths.v[k]);
    *start = m->start;
    *stop = m->stop;
    return 1;
}

void runner__subst_memory_free(Runner *r)
{
    if (!r->subst_memory)
        return;
    map_free(r->subst_memory->by_drv);
    free(r->subst_memory->ring);
    free(r->subst_memory);
    r->subst_memory = NULL;
}
