/*
 * runner.c: the runner's life: start-up (lock, busy rows cleared, GC roots reconciled,
 * machines loaded, the local store probed), the queue monitor (this thread: DB events,
 * queue passes, cancellation, bumps, jobset shares, periodic chores), and a clean stop
 * (running steps aborted, their rows finished, no busy row left).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/runner_int.h"

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
    o->local_daemon_idle_time = 600;
    o->ssh_alive_interval = 15;
    o->ssh_alive_count_max = 4;
    o->max_substitution_jobs = 16;
}

const RunnerStats *runner_stats(const Runner *r)
{
    return &r->stats;
}

/* ---------------------------------------------------------------- DB pool */

/* ---------------------------------------------------------------- queue passes */

/* Wait before the next try after `failures` failed queue passes in a row: 1 s, doubled
 * per failure, at most a minute. */
uint64_t runner_pass_backoff_ms(unsigned failures)
{
    uint64_t d = 1000;
    for (unsigned i = 1; i < failures && d < 60000; i++)
        d *= 2;
    return d < 60000 ? d : 60000;
}

/* ---------------------------------------------------------------- jobsets */

static void free_cb(void *p);

/* Jobset shares and the step seconds charged to each jobset in the last day; the
 * queues are reordered by them. */
int runner_load_jobsets(Runner *r, Db *db, Err *e)
{
    Map *fresh = map_new(free_cb), *old;
    int rc = rdb_load_jobsets(db, fresh, util_time_now() - 86400, r->repeats, e);
    if (rc < 0) {
        map_free(fresh);
        return rc;
    }
    /* the dispatcher reads the map under the lock: a whole new one is swapped in (a
     * queue holds one jobset's steps: no queue needs reordering) */
    runner_lock(r);
    old = r->g.jobsets;
    r->g.jobsets = fresh;
    runner_unlock(r);
    map_free(old);
    return 0;
}

/* ---------------------------------------------------------------- builds done */

/* ---------------------------------------------------------------- lifecycle */

static void step_free_cb(void *p)
{
    graph_step_free(p);
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
    queue_free(p);
}

static void free_cb(void *p)
{
    free(p);
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
    r->hash_cache = nix_hash_cache_new(runner_drv_loader, r);
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
    rc = runner_cache_open(r, e);
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
    runner_lock(r);
    left = r->threads;
    if (left)
        r->free_pending = 1;
    runner_unlock(r);
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
    runner_uploads_free(r);
    for (uint32_t i = 0; i < r->machines.n; i++) {
        Machine *m = r->machines.v[i];
        if (m->shares_local)
            m->store = NULL;
        machine_free(m);
    }
    for (uint32_t i = 0; i < r->old_machines.n; i++) {
        Machine *m = r->old_machines.v[i];
        if (m->shares_local)
            m->store = NULL;
        machine_free(m);
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

/* Builds no longer unfinished in the DB leave memory; priorities only rise; running
 * steps no unfinished build needs are aborted (their rows finish as 4). */
static int handle_cancel_bump(Runner *r, Err *e)
{
    Map *prio = map_new(NULL);
    size_t it = 0;
    const char *k;
    void *v;
    PtrVec gone = {0};
    int64_t *gone_ids = NULL;
    int rc = rdb_unfinished_ids(r->db, prio, e);
    if (rc < 0) {
        map_free(prio);
        return rc;
    }
    runner_lock(r);
    while (map_next(r->g.builds, &it, &k, &v)) {
        Build *b = v;
        void *p = map_get(prio, k);
        if (!p) {
            ptrvec_push(&gone, b);
            continue;
        }
        int32_t gp = (int32_t)((intptr_t)p - 1);
        if (gp > b->global_priority) {
            b->global_priority = gp;
            if (b->toplevel)
                graph_propagate_priorities(r, b, b->toplevel);
        }
    }
    gone_ids = xcalloc(gone.n + 1, sizeof *gone_ids);
    for (uint32_t i = 0; i < gone.n; i++) {
        Build *b = gone.v[i];
        gone_ids[i] = b->id;
        b->finished = 1;
        graph_build_forget(r, b);
    }
    /* running steps nobody needs */
    for (uint32_t i = 0; i < r->workers.n; i++) {
        Worker *w = r->workers.v[i];
        PtrVec deps = {0};
        if (!w->step)
            continue;
        graph_dependent_builds(r, w->step, &deps);
        if (deps.n == 0) {
            atomic_store(&w->cancel, 1);
            pthread_mutex_lock(&w->conn_lock);
            if (w->conn)
                store_conn_abort(w->conn);
            pthread_mutex_unlock(&w->conn_lock);
            log_info("cancelling %s: no build needs it any more", w->drv_path);
        }
        ptrvec_dispose(&deps);
    }
    graph_wake_dispatcher(r);
    runner_unlock(r);
    /* cancelled or deleted: their top-level drvs are not rooted for them any more */
    for (uint32_t i = 0; i < gone.n; i++) {
        Err re = {0};
        if (runner_roots_release_build(r->db, gone_ids[i], &re) < 0)
            log_warn("GC root of build %" PRId64 ": %s", gone_ids[i], re.msg);
    }
    free(gone_ids);
    ptrvec_dispose(&gone);
    map_free(prio);
    return 0;
}

/* Restarted builds lose the FailedPaths entries of their failures first, as Hydra's
 * restart does.  A restarted build is an unfinished one holding failure rows (a failure
 * always finishes every build it reaches).  Hydra's trigger sends builds_restarted
 * without the build id, and a restart may happen while no runner listens, so this
 * looks at every such build, on the event and at start-up.  Cleared: the outputs
 * recorded on those rows, the static outputs of their drvs (cached-failure and
 * propagated rows record none), the drvs themselves (CA failures are keyed by the
 * drv), the resolved drvs of the build's status-13 rows, and the build's own outputs. */
#define RESTARTED_BUILDS                                                                           \
    "SELECT b.id FROM Builds b WHERE b.finished = 0 AND EXISTS (SELECT 1 FROM BuildSteps f "       \
    "WHERE f.build = b.id AND f.status IN (1, 8, 12))"
static int handle_restarted(Runner *r, Err *e)
{
    DbStmt *st = NULL;
    StrVec drvs;
    int rc;
    strvec_init(&drvs);
    rc = db_exec(r->db,
                 "DELETE FROM FailedPaths WHERE path IN (SELECT o.path FROM BuildStepOutputs o "
                 "JOIN BuildSteps s ON s.build = o.build AND s.stepnr = o.stepnr WHERE "
                 "s.build IN (" RESTARTED_BUILDS ") AND s.status IN (1, 8, 12) AND "
                 "o.path IS NOT NULL)",
                 NULL, 0, e);
    if (rc < 0)
        goto out;
    rc = db_exec(r->db,
                 "DELETE FROM FailedPaths WHERE path IN (SELECT o.path FROM BuildOutputs o "
                 "WHERE o.build IN (" RESTARTED_BUILDS ") AND o.path IS NOT NULL)",
                 NULL, 0, e);
    if (rc < 0)
        goto out;
    rc = db_exec(r->db,
                 "DELETE FROM FailedPaths WHERE path IN (SELECT '" NIX_STORE_DIR
                 "/' || s.resolvedDrvPath FROM BuildSteps s WHERE s.build IN (" RESTARTED_BUILDS
                 ") AND s.status = 13)",
                 NULL, 0, e);
    if (rc < 0)
        goto out;
    rc = db_query(r->db,
                  "SELECT DISTINCT s.drvPath FROM BuildSteps s WHERE s.build IN (" RESTARTED_BUILDS
                  ") AND s.status IN (1, 8, 12)",
                  NULL, 0, &st, e);
    if (rc < 0)
        goto out;
    while ((rc = db_step(st, e)) == 1)
        if (db_col_text(st, 0))
            strvec_push(&drvs, db_col_text(st, 0));
    db_stmt_done(st);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < drvs.n; i++) {
        NixDrv *d = NULL;
        Err de = {0};
        if (nix_store_path_check(drvs.v[i], NULL) < 0)
            continue;
        rc = db_exec(r->db, "DELETE FROM FailedPaths WHERE path = $1",
                     DB_ARGS(DB_P_TEXT(drvs.v[i])), e);
        if (rc < 0)
            goto out;
        if (nix_drv_read(drvs.v[i], &d, &de) < 0)
            continue; /* gone from the store: ingest aborts the build */
        for (size_t j = 0; j < d->n_outputs && rc >= 0; j++)
            if (d->outputs[j].path[0])
                rc = db_exec(r->db, "DELETE FROM FailedPaths WHERE path = $1",
                             DB_ARGS(DB_P_TEXT(d->outputs[j].path)), e);
        nix_drv_free(d);
        if (rc < 0)
            goto out;
    }
    rc = 0;
out:
    strvec_dispose(&drvs);
    return rc;
}

static int queue_is_idle(Runner *r)
{
    int idle;
    runner_lock(r);
    idle = map_size(r->g.builds) == 0 && r->running == 0 && r->g.to_resolve.n == 0;
    runner_unlock(r);
    return idle;
}

static void progress(Runner *r)
{
    char line[512];
    size_t running, runnable = 0, waiting;
    const char *what = "";
    char whatbuf[300] = "";
    size_t it = 0;
    const char *k;
    void *v;
    if (!r->opt.progress)
        return;
    runner_lock(r);
    running = r->running;
    waiting = map_size(r->g.steps);
    while (map_next(r->g.queues, &it, &k, &v))
        runnable += ((StepQueue *)v)->n;
    if (r->workers.n) {
        Worker *w = r->workers.v[0];
        static const char *phases[] = {"preparing", "connecting",        "sending inputs",
                                       "building",  "receiving outputs", "post-processing"};
        int pi = w->phase >= 50 ? 5 : w->phase / 10;
        snprintf(whatbuf, sizeof whatbuf, "; %s on %s: %s", nix_store_path_name(w->drv_path),
                 w->machine->row_name[0] ? w->machine->row_name : "localhost",
                 phases[pi < 0 ? 0 : pi]);
        what = whatbuf;
    }
    runner_unlock(r);
    snprintf(line, sizeof line, "[%llu done, %zu running, %zu queued%s]",
             (unsigned long long)atomic_load(&r->stats.steps_done), running,
             waiting > running ? waiting - running : 0, what);
    (void)runnable;
    r->opt.progress(r->opt.progress_payload, line);
}

static void stop_workers(Runner *r)
{
    uint64_t t0 = util_now_ms();
    runner_uploads_wake(r);
    runner_lock(r);
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
        runner_cond_wait(r, &ts);
    }
    runner_unlock(r);
}

/* STATE_DIR/machines.json: the machines snapshot (runner_machines_json) plus the time it
 * was taken, rewritten every two seconds while the runner runs and removed when it
 * stops; `sluice status` shows it (enabled or disabled and why, jobs, steps). */
static char *machines_status_path(Runner *r)
{
    return xasprintf("%s/machines.json", r->opt.state_dir);
}

static void write_machines_status(Runner *r)
{
    json_t *j = runner_machines_json(r);
    char *text = NULL, *path = machines_status_path(r);
    Err e = {0};
    json_object_set_new(j, "time", json_integer(util_time_now()));
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    if (text && util_write_file_atomic(path, text, strlen(text), &e) < 0)
        log_debug("%s", e.msg);
    free(text);
    free(path);
    json_decref(j);
}

/* The start-up statements, each idempotent: busy rows of a previous runner cleared,
 * builds restarted while no runner listened, GC roots, machines, LISTEN. */
static int start_up_once(Runner *r, Err *e)
{
    static const char *channels[] = {DB_CH_BUILDS_ADDED,     DB_CH_BUILDS_RESTARTED,
                                     DB_CH_BUILDS_CANCELLED, DB_CH_BUILDS_DELETED,
                                     DB_CH_BUILDS_BUMPED,    DB_CH_JOBSET_SHARES_CHANGED};
    int rc = rdb_clear_busy(r->db, e);
    if (rc < 0)
        return rc;
    rc = handle_restarted(r, e);
    if (rc < 0)
        return rc;
    rc = runner_roots_reconcile(r, r->db, e);
    if (rc < 0)
        return rc;
    rc = runner_load_machines(r, e);
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
        delay = runner_pass_backoff_ms(++failures);
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
    int rc, need_pass = 1, need_cancel = 0, need_shares = 1, fatal = 0;
    unsigned pass_failures = 0;
    uint64_t pass_retry_at = 0;
    uint64_t last_chores = 0, last_progress = 0, last_status = 0, last_shares = 0;
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
    pthread_create(&dispatcher, NULL, runner_dispatcher_main, r);
    pthread_create(&resolver, NULL, runner_resolver_main, r);

    while (!atomic_load(&r->stopping)) {
        DbEvent ev;
        Err le = {0};
        uint64_t now = util_now_ms();
        /* the shares' window of a day moves on: steps charged more than a day ago drop
         * out when it is read again (finished steps are charged as they finish) */
        if (need_shares || now - last_shares >= 600000) {
            if (runner_load_jobsets(r, r->db, &le) < 0)
                log_warn("jobset shares: %s", le.msg);
            need_shares = 0;
            last_shares = now;
        }
        if (need_cancel) {
            if (handle_cancel_bump(r, &le) < 0)
                log_warn("cancel/bump: %s", le.msg);
            need_cancel = 0;
        }
        runner_mark_unrecorded(r, r->db); /* rows of results the DB refused before */
        if (need_pass && now >= pass_retry_at) {
            int n = runner_queue_pass(r, r->db, &le);
            if (n < 0) {
                /* tried again until it succeeds (builds queued meanwhile are in it) */
                uint64_t delay = runner_pass_backoff_ms(++pass_failures);
                log_error("queue pass: %s (trying again in %llu ms)", le.msg,
                          (unsigned long long)delay);
                pass_retry_at = util_now_ms() + delay;
                need_pass = 1;
            } else {
                pass_failures = 0;
                pass_retry_at = 0;
                need_pass = r->pass_again;
            }
            r->pass_again = 0;
            runner_lock(r);
            if (r->shares_stale)
                need_shares = 1;
            r->shares_stale = 0;
            runner_unlock(r);
        }
        if (now - last_chores > 60000) {
            if (runner_roots_reconcile(r, r->db, &le) < 0)
                log_warn("GC roots: %s", le.msg);
            if (runner_load_machines(r, &le) < 0)
                log_warn("machines file: %s", le.msg);
            store_machine_reap(r->local_store);
            last_chores = now;
        }
        if (now - last_progress >= 1000) {
            progress(r);
            /* a changed machines file is picked up within a second or two */
            if (r->opt.machines_file && runner_load_machines(r, &le) < 0)
                log_warn("machines file: %s", le.msg);
            if (now - last_status >= 2000) {
                write_machines_status(r);
                last_status = now;
            }
            last_progress = now;
        }
        if (r->opt.once && queue_is_idle(r)) {
            int64_t left = 0;
            if (db_query_int64(r->db, "SELECT count(*) FROM Builds WHERE finished = 0", NULL, 0,
                               &left, &le) >= 0 &&
                left == 0)
                break;
            need_pass = 1;
        }
        if (db_connection_gone(r->db)) {
            fatal = err_set(e, ERR_DB, "%s", le.msg[0] ? le.msg : "database connection lost");
            break;
        }
        /* a pass due now: no wait; after a failed one, until its retry (at most 1 s) */
        {
            uint64_t t = util_now_ms(), wait_ms = 1000;
            if (need_pass && pass_retry_at <= t)
                wait_ms = 0;
            else if (need_pass && pass_retry_at - t < wait_ms)
                wait_ms = pass_retry_at - t;
            rc = db_wait_event(r->db, (int)wait_ms, &ev, &le);
        }
        if (rc < 0 && db_connection_gone(r->db)) {
            /* the database stayed away beyond the reconnect timeout: a fatal error */
            fatal = err_set(e, ERR_DB, "%s", le.msg);
            break;
        }
        if (rc < 0) {
            log_error("waiting for events: %s", le.msg);
            sleep(1);
            continue;
        }
        while (rc == 1) {
            if (!strcmp(ev.channel, DB_CH_BUILDS_ADDED) || !strcmp(ev.channel, DB_CH_RECONNECTED))
                need_pass = 1;
            else if (!strcmp(ev.channel, DB_CH_BUILDS_RESTARTED)) {
                if (handle_restarted(r, &le) < 0)
                    log_warn("restart: %s", le.msg);
                need_pass = 1;
            } else if (!strcmp(ev.channel, DB_CH_JOBSET_SHARES_CHANGED))
                need_shares = 1;
            else
                need_cancel = 1;
            rc = db_wait_event(r->db, 0, &ev, &le);
        }
    }
    runner_stop(r);
    runner_lock(r);
    if (r->stop_error && !fatal)
        fatal = err_set(e, ERR_CANCELLED, "%s", r->stop_error);
    runner_unlock(r);
    /* the rows below are cleared if the database answers soon; else the next start does */
    db_set_reconnect_timeout(r->db, 2000);
    stop_workers(r);
    pthread_join(dispatcher, NULL);
    pthread_join(resolver, NULL);
    {
        Err ce = {0};
        if (rdb_clear_busy(r->db, &ce) < 0)
            log_error("clearing busy rows: %s", ce.msg);
    }
    {
        char *sp = machines_status_path(r);
        unlink(sp);
        free(sp);
    }
    progress(r);
    return fatal;
}
