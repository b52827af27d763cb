/*
 * runner.c: the runner's life: a new runner and its end (the last thread out frees it),
 * start-up (lock, busy rows cleared, GC roots reconciled, machines loaded, the local
 * store probed), the threads started, the queue monitor run on this thread (monitor.c),
 * and a clean stop (running steps aborted, their rows finished, no busy row left).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/dispatch.h"
#include "runner/graph.h"
#include "runner/lock.h"
#include "runner/machines.h"
#include "runner/monitor.h"
#include "runner/publish.h"
#include "runner/queue.h"
#include "runner/rdb.h"
#include "runner/resolve.h"
#include "runner/roots.h"
#include "runner/runner.h"
#include "runner/services.h"
#include "runner/ingest.h"
#include "runner/substitute.h"

void runner_options_defaults(RunnerOptions *o)
{
    memset(o, 0, sizeof *o);
    o->local_store = "local";
    o->max_retries = 5;
    o->retry_interval = 60;
    o->retry_backoff = 3.0;
    o->max_silent_default = 3600;
    o->timeout_default = 36000;
    o->max_log_size = 64ull * 1024 * 1024;
    o->max_output_size = 2ull * 1024 * 1024 * 1024;
    o->max_unsupported_time = 120;
    o->keep_outputs_days = 30;
    o->local_daemon_max_steps = 1000;
    o->warm_sessions = 4;
    o->session_steps = 8;
    o->local_daemon_idle_time = 600;
    o->ssh_alive_interval = 15;
    o->ssh_alive_count_max = 4;
    o->max_substitution_jobs = 16;
}

const RunnerStats *runner_stats(const Runner *r)
{
    return &r->stats;
}

/* ---------------------------------------------------------------- lifecycle */

static void free_cb(void *p)
{
    free(p);
}

static void step_free_cb(void *p)
{
    runner__graph_step_free(p);
}

static void build_free_cb(void *p)
{
    Build *b = p;
    free(b->drv_path);
    free(b->job);
    free(b);
}

static void queue_free_cb(void *p)
{
    runner__queue_free(p);
}

/* Hydra's xxx-jobset-repeats: whitespace-separated PROJECT:JOBSET:N, N extra rounds for
 * the steps of those jobsets' builds. */
static int parse_repeats(const char *text, Map **out, Err *e)
{
    char *copy = xstrdup(text ? text : ""), *save = NULL, *tok;
    Map *m = map_new(NULL);
    int rc = 0;
    for (tok = strtok_r(copy, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
        char *c1 = strchr(tok, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        int64_t n = -1;
        if (!c1 || !c2 || c1 == tok || c2 == c1 + 1 || strchr(c2 + 1, ':') ||
            util_parse_i64(c2 + 1, &n) < 0 || n < 0 || n > LIMIT_JOBSET_REPEATS) {
            rc = err_set(e, ERR_INVALID,
                         "jobset-repeats: bad value '%s' (PROJECT:JOBSET:N, N from 0 to %d)", tok,
                         LIMIT_JOBSET_REPEATS);
            break;
        }
        *c2 = '\0';
        map_put(m, tok, (void *)(uintptr_t)n);
    }
    free(copy);
    if (rc < 0) {
        map_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

static void runner_destroy(Runner *r);

int runner_new(const RunnerOptions *opt, Runner **out, Err *e)
{
    Runner *r = xcalloc(1, sizeof *r);
    StoreOpenOptions so = {0};
    StorePoolOptions po = {0};
    int rc;
    r->opt = *opt;
    r->destroy = runner_destroy;
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->db_lock, NULL);
    pthread_mutex_init(&r->hash_lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->g.steps = map_new_borrowed(step_free_cb); /* keyed by Step.drv_path */
    r->g.strings = map_new(free_cb);
    r->g.builds = map_new(build_free_cb);
    r->g.queues = map_new(queue_free_cb);
    r->g.jobsets = map_new(free_cb);
    r->g.finished_drvs = map_new(NULL);
    r->g.attempts = map_new(free_cb);
    r->hash_cache = nix_hash_cache_new(runner__drv_loader, r);
    r->only_left = (int64_t)opt->n_only_builds;
    r->no_machine.row_name = "";
    r->no_machine.uri = "";
    atomic_store(&r->stats.start_time, util_time_now());
    so.server_alive_interval = opt->ssh_alive_interval;
    so.server_alive_count_max = opt->ssh_alive_count_max;
    po.max_uses = (unsigned)opt->local_daemon_max_steps;
    po.max_idle_s = (unsigned)opt->local_daemon_idle_time;
    r->local_store = store_machine_new(opt->local_store ? opt->local_store : "local", &so, &po);
    rc = parse_repeats(opt->jobset_repeats, &r->repeats, e);
    if (rc < 0)
        goto fail;
    rc = runner__cache_open(r, e);
    if (rc < 0)
        goto fail;
    rc = db_open(opt->db_url, DB_OPEN_DEFAULT, &r->db, e);
    if (rc < 0)
        goto fail;
    {
        char *lock = xasprintf("%s/runner.lock", opt->state_dir);
        Err le = {0};
        util_mkdir_p(opt->state_dir, 0755, &le);
        rc = db_lock_runner(r->db, lock, e);
        free(lock);
        if (rc < 0)
            goto fail;
    }
    *out = r;
    return 0;
fail:
    runner_free(r);
    return rc;
}

/* Worker threads are detached; one that outlived shutdown's wait (stuck in a call
 * that cannot be aborted) still uses the Runner, so the last of them frees it. */
void runner_free(Runner *r)
{
    uint32_t left;
    if (!r)
        return;
    runner__lock(r);
    left = r->threads;
    if (left)
        r->free_pending = 1;
    runner__unlock(r);
    if (left) {
        log_warn("%u worker thread(s) still running: the runner is freed when they end",
                 (unsigned)left);
        return;
    }
    runner_destroy(r);
}

static void runner_destroy(Runner *r)
{
    cache_free(r->cache);
    runner__uploads_free(r);
    for (uint32_t i = 0; i < r->machines.n; i++) {
        Machine *m = r->machines.v[i];
        if (m->shares_local)
            m->store = NULL;
        runner__machine_free(m);
    }
    for (uint32_t i = 0; i < r->old_machines.n; i++) {
        Machine *m = r->old_machines.v[i];
        if (m->shares_local)
            m->store = NULL;
        runner__machine_free(m);
    }
    ptrvec_dispose(&r->machines);
    ptrvec_dispose(&r->old_machines);
    map_free(r->g.steps);
    map_free(r->g.strings);
    map_free(r->g.builds);
    map_free(r->g.queues);
    map_free(r->g.jobsets);
    map_free(r->g.finished_drvs);
    map_free(r->g.attempts);
    runner__subst_memory_free(r);
    free(r->unrecorded);
    free(r->stop_error);
    map_free(r->repeats);
    ptrvec_dispose(&r->g.retry_wait);
    ptrvec_dispose(&r->g.to_resolve);
    ptrvec_dispose(&r->workers);
    for (uint32_t i = 0; i < r->db_idle.n; i++)
        db_close(r->db_idle.v[i]);
    ptrvec_dispose(&r->db_idle);
    ptrvec_dispose(&r->db_all);
    db_close(r->db);
    if (r->local_store)
        store_machine_free(r->local_store);
    nix_hash_cache_free(r->hash_cache);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->db_lock);
    pthread_mutex_destroy(&r->hash_lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}

/* ---------------------------------------------------------------- monitor */

static void stop_workers(Runner *r)
{
    uint64_t t0 = util_now_ms();
    runner__uploads_wake(r);
    runner__lock(r);
    for (uint32_t i = 0; i < r->workers.n; i++) {
        Worker *w = r->workers.v[i];
        atomic_store(&w->cancel, 1);
        pthread_mutex_lock(&w->conn_lock);
        if (w->conn)
            store_conn_abort(w->conn);
        pthread_mutex_unlock(&w->conn_lock);
    }
    while (r->threads > 0 && util_now_ms() - t0 < 30000) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        runner__cond_wait(r, &ts);
    }
    runner__unlock(r);
}

/* The start-up statements, each idempotent: busy rows of a previous runner cleared,
 * builds restarted while no runner listened, GC roots, machines, LISTEN. */
static int start_up_once(Runner *r, Err *e)
{
    static const char *channels[] = {DB_CH_BUILDS_ADDED,     DB_CH_BUILDS_RESTARTED,
                                     DB_CH_BUILDS_CANCELLED, DB_CH_BUILDS_DELETED,
                                     DB_CH_BUILDS_BUMPED,    DB_CH_JOBSET_SHARES_CHANGED};
    int rc = runner__rdb_clear_busy(r->db, e);
    if (rc < 0)
        return rc;
    rc = runner__handle_restarted(r, e);
    if (rc < 0)
        return rc;
    rc = runner__roots_reconcile(r, r->db, e);
    if (rc < 0)
        return rc;
    rc = runner__load_machines(r, e);
    if (rc < 0)
        return rc;
    return db_listen(r->db, channels, UTIL_ARRAY_LEN(channels), e);
}

/* A connection lost during start-up (the database restarted) is not the end of the
 * run: the statements are run again, with backoff, for as long as the database layer
 * keeps reconnecting.  Other errors, and a connection given up, end the run. */
static int start_up(Runner *r, Err *e)
{
    unsigned failures = 0;
    for (;;) {
        int rc = start_up_once(r, e);
        uint64_t delay;
        if (rc >= 0 || e->code != ERR_DB || db_connection_gone(r->db) || atomic_load(&r->stopping))
            return rc;
        delay = runner__pass_backoff_ms(++failures);
        log_warn("start-up: %s (trying again in %llu ms)", e->msg, (unsigned long long)delay);
        err_clear(e);
        for (uint64_t slept = 0; slept < delay && !atomic_load(&r->stopping); slept += 50)
            usleep(50 * 1000);
    }
}

/* --build-one: 1 when the build is queued, 0 when it is finished already (nothing to
 * do), or an error when there is no such build. */
static int build_one_queued(Runner *r, Err *e)
{
    for (size_t i = 0; i < r->opt.n_only_builds; i++) {
        int64_t id = r->opt.only_builds[i], unfinished = 0, exists = 0;
        int rc = db_query_int64(r->db, "SELECT count(*) FROM Builds WHERE id = $1",
                                DB_ARGS(DB_P_INT(id)), &exists, e);
        if (rc < 0)
            return rc;
        if (!exists)
            return err_set(e, ERR_NOTFOUND, "build %" PRId64 " does not exist", id);
        rc = db_query_int64(r->db, "SELECT count(*) FROM Builds WHERE id = $1 AND finished = 0",
                            DB_ARGS(DB_P_INT(id)), &unfinished, e);
        if (rc < 0)
            return rc;
        if (!unfinished) {
            log_info("build %" PRId64 " is finished already", id);
            return 0;
        }
    }
    return 1;
}

int runner_run(Runner *r, Err *e)
{
    pthread_t dispatcher, resolver;
    int rc, fatal;
    StoreProbe probe = {0};

    /* the local store: is ca-derivations on? */
    {
        StoreOpenOptions so = {0};
        Err pe = {0};
        if (store_probe(r->opt.local_store ? r->opt.local_store : "local", &so, &probe, &pe) < 0) {
            rc = err_set(e, pe.code ? pe.code : ERR_IO, "cannot talk to the local store: %s",
                         pe.msg);
            return rc;
        }
        r->ca_enabled = probe.ca_derivations == 1;
        store_probe_dispose(&probe);
        if (!r->ca_enabled)
            log_warn("the local store has ca-derivations off: content-addressed derivations "
                     "will fail (enable experimental-features = ca-derivations)");
    }
    if (r->opt.build_one) {
        rc = build_one_queued(r, e);
        if (rc <= 0)
            return rc;
    }
    rc = start_up(r, e);
    if (rc < 0)
        return rc;
    runner__uploads_resume(r);
    pthread_create(&dispatcher, NULL, runner__dispatcher_main, r);
    pthread_create(&resolver, NULL, runner__resolver_main, r);

    fatal = runner__monitor(r, e);
    runner_stop(r);
    runner__lock(r);
    if (r->stop_error && !fatal)
        fatal = err_set(e, ERR_CANCELLED, "%s", r->stop_error);
    runner__unlock(r);
    /* the rows below are cleared if the database answers soon; else the next start does */
    db_set_reconnect_timeout(r->db, 2000);
    stop_workers(r);
    pthread_join(dispatcher, NULL);
    pthread_join(resolver, NULL);
    {
        Err ce = {0};
        if (runner__rdb_clear_busy(r->db, &ce) < 0)
            log_error("clearing busy rows: %s", ce.msg);
    }
    {
        char *sp = runner__machines_status_path(r);
        unlink(sp);
        free(sp);
    }
    runner__progress(r);
    return fatal;
}
