/*
 * substitute.c: use-substitutes (Hydra's name).  At ingest the outputs of a level of the
 * walk that are neither valid nor recorded are asked of the local store's own
 * substituters in one request (QuerySubstitutablePathInfos: Nix's `substituters` and
 * `trusted-public-keys` decide; sluice adds no trust of its own).  A derivation whose
 * outputs all are there is substituted instead of built: the local store fetches them
 * and checks their signatures (BuildPaths of the paths), on up to max-substitution-jobs
 * threads at once, and every build that needed it gets a type-1 BuildSteps row (status 0,
 * its outputs, start and stop), once.  A failed substitution (cache gone, bad signature,
 * corrupt NAR) is logged with Nix's reasons and counted, and the derivation is built
 * instead.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "runner/hooks.h"
#include "runner/record.h"
#include "runner/rdb.h"
#include "runner/roots.h"
#include "runner/substitute.h"

int runner__subst_query(Runner *r, StoreConn *c, const StrVec *ask, Map *subst, Err *e)
{
    StrVec got;
    int rc;
    if (!ask->n)
        return 0;
    strvec_init(&got);
    atomic_fetch_add(&r->stats.subst_queries, 1);
    rc = store_query_substitutable(c, (const char *const *)ask->v, ask->n, &got, e);
    for (size_t i = 0; rc == 0 && i < got.n; i++)
        map_put(subst, got.v[i], (void *)1);
    strvec_dispose(&got);
    return rc;
}

/* The jobs are cut into batches, one per thread at most: a batch is one BuildPaths of all
 * its paths (Nix keeps going past a failure), and one QueryValidPaths when it failed, to
 * tell which of its jobs came. */
typedef struct SubstRun {
    Runner *r;
    RunnerSubstJob *jobs;
    size_t n, per_batch;
    atomic_size_t next; /* next batch */
} SubstRun;

/* 1 when every path of j is in valid (sorted). */
static int job_valid(const RunnerSubstJob *j, const StrVec *valid)
{
    for (size_t k = 0; k < j->n; k++)
        if (!strvec_contains(valid, j->paths[k]))
            return 0;
    return 1;
}

static void subst_batch(Runner *r, RunnerSubstJob *jobs, size_t n, StoreConn **c)
{
    StrVec paths, valid;
    Err e = {0}, ve = {0};
    int64_t start = util_time_now(), stop;
    int rc = 0, known = 0, any = 0;
    strvec_init(&paths);
    strvec_init(&valid);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < jobs[i].n; k++)
            strvec_push(&paths, jobs[i].paths[k]);
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
        RunnerSubstJob *j = &jobs[i];
        j->start = start;
        j->stop = stop;
        j->ok = rc == 0 || (known && job_valid(j, &valid));
        any |= j->ok;
        if (!j->ok)
            j->error = xstrdup(e.msg[0] ? e.msg : "substitution failed");
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

static void *subst_thread(void *arg)
{
    SubstRun *sr = arg;
    StoreConn *c = NULL;
    for (;;) {
        size_t at = atomic_fetch_add(&sr->next, 1) * sr->per_batch;
        if (at >= sr->n)
            break;
        subst_batch(sr->r, &sr->jobs[at], sr->n - at < sr->per_batch ? sr->n - at : sr->per_batch,
                    &c);
    }
    if (c)
        store_machine_query_put(sr->r->local_store, c);
    return NULL;
}

void runner__subst_run(Runner *r, RunnerSubstJob *jobs, size_t n)
{
    SubstRun sr = {.r = r, .jobs = jobs, .n = n};
    size_t nt = r->opt.max_substitution_jobs > 0 ? (size_t)r->opt.max_substitution_jobs : 1;
    pthread_t *t;
    size_t started = 0;
    if (!n)
        return;
    if (nt > n)
        nt = n;
    sr.per_batch = (n + nt - 1) / nt;
    atomic_init(&sr.next, 0);
    t = xcalloc(nt, sizeof *t);
    /* this thread is one of them */
    for (size_t i = 1; i < nt; i++) {
        if (pthread_create(&t[started], NULL, subst_thread, &sr) != 0)
            break;
        started++;
    }
    subst_thread(&sr);
    for (size_t i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    free(t);
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].ok) {
            atomic_fetch_add(&r->stats.subst_done, 1);
        } else {
            atomic_fetch_add(&r->stats.subst_failed, 1);
            log_warn("substituting %s failed, building it instead: %s", jobs[i].drv_path,
                     jobs[i].error);
        }
    }
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
