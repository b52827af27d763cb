/*
 * monitor.c: the queue monitor, the runner's main thread between start-up and stop.
 * It waits for database events (builds added, restarted, cancelled, deleted, bumped,
 * jobset shares changed) and turns them into queue passes (ingest.c), cancellations
 * and bumps; it reloads jobset shares, the machines file and GC roots on their
 * schedules, reports progress and writes the machines snapshot.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/monitor.h"
#include "runner/exec.h"
#include "runner/graph.h"
#include "runner/ingest.h"
#include "runner/lock.h"
#include "runner/machines.h"
#include "runner/rdb.h"
#include "runner/record.h"
#include "runner/roots.h"

/* Wait before the next try after `failures` failed queue passes in a row: 1 s, doubled
 * per failure, at most a minute. */
uint64_t runner__pass_backoff_ms(unsigned failures)
{
    uint64_t d = 1000;
    for (unsigned i = 1; i < failures && d < 60000; i++)
        d *= 2;
    return d < 60000 ? d : 60000;
}

static void free_cb(void *p)
{
    free(p);
}

/* Jobset shares and the step seconds charged to each jobset in the last day; the
 * queues are reordered by them. */
int runner__load_jobsets(Runner *r, Db *db, Err *e)
{
    Map *fresh = map_new(free_cb), *old;
    int rc = runner__rdb_load_jobsets(db, fresh, util_time_now() - 86400, r->repeats, e);
    if (rc < 0) {
        map_free(fresh);
        return rc;
    }
    /* the dispatcher reads the map under the lock: a whole new one is swapped in (a
     * queue holds one jobset's steps: no queue needs reordering) */
    runner__lock(r);
    old = r->g.jobsets;
    r->g.jobsets = fresh;
    runner__unlock(r);
    map_free(old);
    return 0;
}

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
    int rc = runner__rdb_unfinished_ids(r->db, prio, e);
    if (rc < 0) {
        map_free(prio);
        return rc;
    }
    runner__lock(r);
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
                runner__graph_propagate_priorities(r, b, b->toplevel);
        }
    }
    gone_ids = xcalloc(gone.n + 1, sizeof *gone_ids);
    for (uint32_t i = 0; i < gone.n; i++) {
        Build *b = gone.v[i];
        gone_ids[i] = b->id;
        b->finished = 1;
        runner__graph_build_forget(r, b);
    }
    runner__workers_cancel_unneeded(r);
    runner__wake_dispatcher(r);
    runner__unlock(r);
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
    "WHERE f.build = b.id AND f.status IN ($1, $2, $3))"
/* The parameters of RESTARTED_BUILDS: the statuses of a failure FailedPaths may hold. */
#define RESTARTED_ARGS                                                                             \
    DB_ARGS(DB_P_INT(DB_STATUS_FAILED), DB_P_INT(DB_STATUS_CACHED_FAILURE),                        \
            DB_P_INT(DB_STATUS_NOT_DETERMINISTIC))

    /* cancelled or deleted: their top-level drvs are not rooted for them any more */
    for (uint32_t i = 0; i < gone.n; i++) {
        Err re = {0};
        if (runner__roots_release_build(r->db, gone_ids[i], &re) < 0)
            log_warn("GC root of build %" PRId64 ": %s", gone_ids[i], re.msg);
    }
    free(gone_ids);
    ptrvec_dispose(&gone);
    map_free(prio);
    return 0;
}

int runner__handle_restarted(Runner *r, Err *e)
{
    DbStmt *st = NULL;
    StrVec drvs;
    int rc;
    strvec_init(&drvs);
    rc = db_exec(r->db,
                 "DELETE FROM FailedPaths WHERE path IN (SELECT o.path FROM BuildStepOutputs o "
                 "JOIN BuildSteps s ON s.build = o.build AND s.stepnr = o.stepnr WHERE "
                 "s.build IN (" RESTARTED_BUILDS ") AND s.status IN ($1, $2, $3) AND "
                 "o.path IS NOT NULL)",
                 RESTARTED_ARGS, e);
    if (rc < 0)
        goto out;
    rc = db_exec(r->db,
                 "DELETE FROM FailedPaths WHERE path IN (SELECT o.path FROM BuildOutputs o "
                 "WHERE o.build IN (" RESTARTED_BUILDS ") AND o.path IS NOT NULL)",
                 RESTARTED_ARGS, e);
    if (rc < 0)
        goto out;
    rc = db_exec(r->db,
                 "DELETE FROM FailedPaths WHERE path IN (SELECT '" NIX_STORE_DIR
                 "/' || s.resolvedDrvPath FROM BuildSteps s WHERE s.build IN (" RESTARTED_BUILDS
                 ") AND s.status = $4)",
                 DB_ARGS(DB_P_INT(DB_STATUS_FAILED), DB_P_INT(DB_STATUS_CACHED_FAILURE),
                         DB_P_INT(DB_STATUS_NOT_DETERMINISTIC), DB_P_INT(DB_STATUS_RESOLVED)),
                 e);
    if (rc < 0)
        goto out;
    rc = db_query(r->db,
                  "SELECT DISTINCT s.drvPath FROM BuildSteps s WHERE s.build IN (" RESTARTED_BUILDS
                  ") AND s.status IN ($1, $2, $3)",
                  RESTARTED_ARGS, &st, e);
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
    runner__lock(r);
    idle = map_size(r->g.builds) == 0 && r->running == 0 && r->g.to_resolve.n == 0;
    runner__unlock(r);
    return idle;
}

void runner__progress(Runner *r)
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
    runner__lock(r);
    running = r->running;
    waiting = map_size(r->g.steps);
    while (map_next(r->g.queues, &it, &k, &v))
        runnable += ((StepQueue *)v)->n;
    if (r->workers.n) {
        Worker *w = r->workers.v[0];
        snprintf(whatbuf, sizeof whatbuf, "; %s on %s: %s", nix_store_path_name(w->drv_path),
                 w->machine->row_name[0] ? w->machine->row_name : "localhost",
                 db_busy_name(w->phase ? w->phase : DB_BUSY_PREPARING));
        what = whatbuf;
    }
    runner__unlock(r);
    snprintf(line, sizeof line, "[%llu done, %zu running, %zu queued%s]",
             (unsigned long long)atomic_load(&r->stats.steps_done), running,
             waiting > running ? waiting - running : 0, what);
    (void)runnable;
    r->opt.progress(r->opt.progress_payload, line);
}

/* STATE_DIR/machines.json: the machines snapshot (runner_machines_json) plus the time it
 * was taken, rewritten every two seconds while the runner runs and removed when it
 * stops; `sluice status` shows it (enabled or disabled and why, jobs, steps). */
char *runner__machines_status_path(Runner *r)
{
    return xasprintf("%s/machines.json", r->opt.state_dir);
}

static void write_machines_status(Runner *r)
{
    json_t *j = runner_machines_json(r);
    char *text = NULL, *path = runner__machines_status_path(r);
    Err e = {0};
    json_object_set_new(j, "time", json_integer(util_time_now()));
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    if (text && util_write_file_atomic(path, text, strlen(text), &e) < 0)
        log_debug("%s", e.msg);
    free(text);
    free(path);
    json_decref(j);
}

/* What the monitor has to do and when it last did its periodic chores. */
typedef struct Monitor {
    Err err; /* the last error of a step (the message of a fatal end) */
    int need_pass, need_cancel, need_shares;
    unsigned pass_failures;
    uint64_t pass_retry_at;
    uint64_t last_chores, last_progress, last_status, last_shares;
} Monitor;

/* A queue pass when one is due (failed passes are tried again with backoff; builds
 * queued meanwhile are in the next one). */
static void monitor_pass(Runner *r, Monitor *m, uint64_t now)
{
    int n;
    if (!m->need_pass || now < m->pass_retry_at)
        return;
    n = runner__queue_pass(r, r->db, &m->err);
    if (n < 0) {
        uint64_t delay = runner__pass_backoff_ms(++m->pass_failures);
        log_error("queue pass: %s (trying again in %llu ms)", m->err.msg,
                  (unsigned long long)delay);
        m->pass_retry_at = util_now_ms() + delay;
        m->need_pass = 1;
    } else {
        m->pass_failures = 0;
        m->pass_retry_at = 0;
        m->need_pass = r->pass_again;
    }
    r->pass_again = 0;
    runner__lock(r);
    if (r->shares_stale)
        m->need_shares = 1;
    r->shares_stale = 0;
    runner__unlock(r);
}

/* Jobset shares (the window of a day moves on: steps charged more than a day ago drop
 * out when it is read again), cancellations and bumps, rows the DB refused before. */
static void monitor_events_due(Runner *r, Monitor *m, uint64_t now)
{
    if (m->need_shares || now - m->last_shares >= 600000) {
        if (runner__load_jobsets(r, r->db, &m->err) < 0)
            log_warn("jobset shares: %s", m->err.msg);
        m->need_shares = 0;
        m->last_shares = now;
    }
    if (m->need_cancel) {
        if (handle_cancel_bump(r, &m->err) < 0)
            log_warn("cancel/bump: %s", m->err.msg);
        m->need_cancel = 0;
    }
    runner__mark_unrecorded(r, r->db);
}

/* Every minute: GC roots, the machines file, idle local daemons.  Every second:
 * progress and a changed machines file; every two: the machines snapshot. */
static void monitor_chores(Runner *r, Monitor *m, uint64_t now)
{
    if (now - m->last_chores > 60000) {
        if (runner__roots_reconcile(r, r->db, &m->err) < 0)
            log_warn("GC roots: %s", m->err.msg);
        if (runner__load_machines(r, &m->err) < 0)
            log_warn("machines file: %s", m->err.msg);
        store_machine_reap(r->local_store);
        m->last_chores = now;
    }
    if (now - m->last_progress >= 1000) {
        runner__progress(r);
        if (r->opt.machines_file && runner__load_machines(r, &m->err) < 0)
            log_warn("machines file: %s", m->err.msg);
        if (now - m->last_status >= 2000) {
            write_machines_status(r);
            m->last_status = now;
        }
        m->last_progress = now;
    }
}

/* --once: 1 when nothing is left to do (no unfinished build in the DB either). */
static int monitor_done(Runner *r, Monitor *m)
{
    int64_t left = 0;
    if (!r->opt.once || !queue_is_idle(r))
        return 0;
    if (db_query_int64(r->db, "SELECT count(*) FROM Builds WHERE finished = 0", NULL, 0, &left,
                       &m->err) >= 0 &&
        left == 0)
        return 1;
    m->need_pass = 1;
    return 0;
}

static void monitor_event(Runner *r, Monitor *m, const DbEvent *ev)
{
    Err e = {0};
    if (!strcmp(ev->channel, DB_CH_BUILDS_ADDED) || !strcmp(ev->channel, DB_CH_RECONNECTED)) {
        m->need_pass = 1;
    } else if (!strcmp(ev->channel, DB_CH_BUILDS_RESTARTED)) {
        if (runner__handle_restarted(r, &e) < 0)
            log_warn("restart: %s", e.msg);
        m->need_pass = 1;
    } else if (!strcmp(ev->channel, DB_CH_JOBSET_SHARES_CHANGED)) {
        m->need_shares = 1;
    } else {
        m->need_cancel = 1;
    }
}

/* Wait for events: none when a pass is due now; after a failed one, until its retry;
 * at most a second.  0, or the fatal error of a database that stayed away beyond the
 * reconnect timeout. */
static int monitor_wait(Runner *r, Monitor *m, Err *e)
{
    Err le = {0};
    DbEvent ev;
    uint64_t t = util_now_ms(), wait_ms = 1000;
    int rc;
    if (m->need_pass && m->pass_retry_at <= t)
        wait_ms = 0;
    else if (m->need_pass && m->pass_retry_at - t < wait_ms)
        wait_ms = m->pass_retry_at - t;
    rc = db_wait_event(r->db, (int)wait_ms, &ev, &le);
    if (rc < 0 && db_connection_gone(r->db))
        return err_set(e, ERR_DB, "%s", le.msg);
    if (rc < 0) {
        log_error("waiting for events: %s", le.msg);
        sleep(1);
        return 0;
    }
    while (rc == 1) {
        monitor_event(r, m, &ev);
        rc = db_wait_event(r->db, 0, &ev, &le);
    }
    return 0;
}

int runner__monitor(Runner *r, Err *e)
{
    Monitor m = {.need_pass = 1, .need_shares = 1};
    while (!atomic_load(&r->stopping)) {
        uint64_t now = util_now_ms();
        int rc;
        monitor_events_due(r, &m, now);
        monitor_pass(r, &m, now);
        monitor_chores(r, &m, now);
        if (monitor_done(r, &m))
            break;
        if (db_connection_gone(r->db))
            return err_set(e, ERR_DB, "%s", m.err.msg[0] ? m.err.msg : "database connection lost");
        rc = monitor_wait(r, &m, e);
        if (rc < 0)
            return rc;
    }
    return 0;
}
