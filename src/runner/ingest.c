/*
 * ingest.c: turning queued builds into steps (hydra-behaviour §3.2, §3.3).
 *
 * A queue pass loads the unfinished builds in priority order and walks each build's
 * derivation closure breadth first, one level at a time, so the store questions of a
 * level go out as one batch (QueryValidPaths) and local realisations only for what the
 * database did not answer.  A derivation whose outputs are all valid is not a step;
 * one with a known failed output makes a cached failure; a missing .drv aborts the
 * build.  The I/O of a walk happens without the graph lock; the result is attached to
 * the graph in one short locked section, after which new steps without deps are
 * runnable at once (so dispatch starts while ingest goes on).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/runner_int.h"

enum { NODE_NEEDED = 0, NODE_AVAILABLE, NODE_EXISTING, NODE_FAILED_CACHED, NODE_MISSING };

typedef struct WalkNode {
    char *drv_path;
    char *system;
    char *features;
    int kind;
    int two_phase;
    int status;
    int via_realisation; /* outputs found only through local realisations */
    char *error;         /* NODE_MISSING */
    StrVec out_names;
    StrVec out_paths; /* "" when not statically known */
    StrVec found_paths; /* paths found (DB or realisation), parallel to out_names */
    StrVec inputs;
} WalkNode;

static void node_free(void *p)
{
    WalkNode *n = p;
    if (!n)
        return;
    free(n->drv_path);
    free(n->system);
    free(n->features);
    free(n->error);
    strvec_dispose(&n->out_names);
    strvec_dispose(&n->out_paths);
    strvec_dispose(&n->found_paths);
    strvec_dispose(&n->inputs);
    free(n);
}

char *runner_features_string(const NixDrv *d, int two_phase)
{
    StrVec f;
    Buf b;
    strvec_init(&f);
    nix_drv_required_features(d, &f);
    if (two_phase && !strvec_contains(&f, "ca-derivations"))
        strvec_push(&f, "ca-derivations");
    strvec_sort_unique(&f);
    buf_init(&b, LIMIT_BUF_DEFAULT);
    for (size_t i = 0; i < f.n; i++) {
        if (i)
            buf_putc(&b, ' ');
        buf_puts(&b, f.v[i]);
    }
    strvec_dispose(&f);
    return buf_take(&b, NULL);
}

/* Read a drv and fill the scheduling facts of a node. */
static int node_read(WalkNode *n, Err *e)
{
    NixDrv *d = NULL;
    NixDrvKind kind;
    int rc = nix_drv_read(n->drv_path, &d, e);
    if (rc < 0)
        return rc;
    rc = nix_drv_kind(d, &kind, e);
    if (rc < 0)
        goto out;
    n->kind = (int)kind;
    n->two_phase = kind == NIX_DRV_FLOATING || kind == NIX_DRV_DEFERRED;
    n->system = xstrdup(d->platform);
    n->features = runner_features_string(d, n->two_phase);
    for (size_t i = 0; i < d->n_outputs; i++) {
        strvec_push(&n->out_names, d->outputs[i].name);
        strvec_push(&n->out_paths, d->outputs[i].path);
        strvec_push(&n->found_paths, "");
    }
    for (size_t i = 0; i < d->n_inputs; i++)
        strvec_push(&n->inputs, d->inputs[i].drv_path);
out:
    nix_drv_free(d);
    return rc;
}

/* Outputs known from the DB (recorded rows, following resolutions) for a CA node. */
static int node_db_outputs(Runner *r, Db *db, WalkNode *n, Err *e)
{
    StrVec names, paths;
    int rc;
    strvec_init(&names);
    strvec_init(&paths);
    rc = rdb_recorded_outputs(db, n->drv_path, &names, &paths, e);
    if (rc == 0) {
        for (size_t i = 0; i < n->out_names.n; i++)
            for (size_t j = 0; j < names.n; j++)
                if (strcmp(names.v[j], n->out_names.v[i]) == 0) {
                    free(n->found_paths.v[i]);
                    n->found_paths.v[i] = xstrdup(paths.v[j]);
                }
    }
    (void)r;
    strvec_dispose(&names);
    strvec_dispose(&paths);
    return rc;
}

/* Outputs of a CA node from the local store's realisations (built outside sluice, or
 * before a crash). */
static int node_realisations(Runner *r, StoreConn *c, WalkNode *n, Err *e)
{
    NixDrv *d = NULL;
    char **ids = NULL;
    int rc;
    rc = nix_drv_read(n->drv_path, &d, e);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&r->hash_lock);
    rc = nix_drv_realisation_ids(r->hash_cache, d, &ids, e);
    pthread_mutex_unlock(&r->hash_lock);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < d->n_outputs; i++) {
        char *base = NULL;
        if (n->found_paths.v[i][0])
            continue;
        rc = store_query_realisation(c, ids[i], &base, NULL, e);
        if (rc < 0)
            goto out;
        if (base) {
            free(n->found_paths.v[i]);
            n->found_paths.v[i] = xasprintf("%s/%s", NIX_STORE_DIR, base);
            n->via_realisation = 1;
            free(base);
        }
    }
out:
    if (ids) {
        for (size_t i = 0; i < d->n_outputs; i++)
            free(ids[i]);
        free(ids);
    }
    nix_drv_free(d);
    return rc;
}

static int all_found(const WalkNode *n, const StrVec *valid)
{
    for (size_t i = 0; i < n->out_names.n; i++) {
        const char *p = n->out_paths.v[i][0] ? n->out_paths.v[i] : n->found_paths.v[i];
        if (!p[0] || !strvec_contains(valid, p))
            return 0;
    }
    return 1;
}

/* Decide availability for a level of freshly read nodes. */
static int level_check(Runner *r, Db *db, StoreConn *c, WalkNode **lv, size_t n, Err *e)
{
    StrVec ask, valid;
    int rc = 0;
    strvec_init(&ask);
    strvec_init(&valid);
    for (size_t i = 0; i < n; i++) {
        WalkNode *w = lv[i];
        if (w->two_phase) {
            rc = node_db_outputs(r, db, w, e);
            if (rc < 0)
                goto out;
        }
        for (size_t j = 0; j < w->out_names.n; j++) {
            if (w->out_paths.v[j][0])
                strvec_push(&ask, w->out_paths.v[j]);
            else if (w->found_paths.v[j][0])
                strvec_push(&ask, w->found_paths.v[j]);
        }
    }
    if (ask.n) {
        rc = store_query_valid_paths(c, (const char *const *)ask.v, ask.n, &valid, e);
        if (rc < 0)
            goto out;
    }
    for (size_t i = 0; i < n; i++) {
        WalkNode *w = lv[i];
        if (all_found(w, &valid)) {
            w->status = NODE_AVAILABLE;
            continue;
        }
        if (w->two_phase) {
            /* recorded outputs gone or never recorded: ask the local realisations */
            StrVec more;
            for (size_t j = 0; j < w->out_names.n; j++) {
                if (w->found_paths.v[j][0] && !strvec_contains(&valid, w->found_paths.v[j])) {
                    free(w->found_paths.v[j]);
                    w->found_paths.v[j] = xstrdup("");
                }
            }
            /* without ca-derivations the store has no realisations to ask about (Nix
             * 2.8's daemon even dies on the question) */
            rc = r->ca_enabled ? node_realisations(r, c, w, e) : 0;
            if (rc < 0)
                goto out;
            strvec_init(&more);
            for (size_t j = 0; j < w->found_paths.n; j++)
                if (w->found_paths.v[j][0])
                    strvec_push(&more, w->found_paths.v[j]);
            if (more.n) {
                StrVec v2;
                strvec_init(&v2);
                rc = store_query_valid_paths(c, (const char *const *)more.v, more.n, &v2, e);
                if (rc == 0 && all_found(w, &v2))
                    w->status = NODE_AVAILABLE;
                strvec_dispose(&v2);
            }
            strvec_dispose(&more);
            if (rc < 0)
                goto out;
            if (w->status == NODE_AVAILABLE)
                continue;
            w->via_realisation = 0;
        } else {
            /* statically known outputs: a known failure? */
            rc = rdb_failed_paths_any(db, w->out_paths.v, w->out_paths.n, e);
            if (rc < 0)
                goto out;
            if (rc == 1) {
                w->status = NODE_FAILED_CACHED;
                rc = 0;
                continue;
            }
        }
        w->status = NODE_NEEDED;
    }
out:
    strvec_dispose(&ask);
    strvec_dispose(&valid);
    return rc;
}

/* Record outputs found only through local realisations (type-1 rows) so later
 * resolutions find them in the DB.  No such rows for input-addressed outputs. */
typedef struct FoundTx {
    WalkNode *n;
    int64_t build;
} FoundTx;

static int found_tx(Db *db, void *payload, Err *e)
{
    FoundTx *f = payload;
    RdbStepRow row = {0};
    int32_t nr;
    int64_t now = util_time_now();
    row.build = f->build;
    row.type = 1;
    row.drv_path = f->n->drv_path;
    row.start_time = now;
    row.stop_time = now;
    row.system = f->n->system;
    row.status = 0;
    row.machine = "";
    row.out_names = f->n->out_names.v;
    row.out_paths = f->n->found_paths.v;
    row.n_outputs = f->n->out_names.n;
    return rdb_insert_step(db, &row, &nr, e);
}

/* Walk one build's closure and attach it to the graph. */
static int ingest_build(Runner *r, Db *db, StoreConn *c, const RdbBuildRow *row, Err *e)
{
    Map *nodes = map_new(node_free);
    PtrVec frontier = {0}, level = {0};
    WalkNode *top = NULL, *bad = NULL;
    Build *b = NULL;
    int rc = 0;

    pthread_mutex_lock(&r->lock);
    b = graph_build_get(r, row->id);
    pthread_mutex_unlock(&r->lock);
    if (b)
        goto out; /* already in memory */

    top = xcalloc(1, sizeof *top);
    top->drv_path = xstrdup(row->drv_path);
    map_put(nodes, top->drv_path, top);
    ptrvec_push(&frontier, top);
    while (frontier.n && !bad) {
        level.n = 0;
        for (uint32_t i = 0; i < frontier.n; i++) {
            WalkNode *w = frontier.v[i];
            int exists;
            pthread_mutex_lock(&r->lock);
            exists = graph_step_get(r, w->drv_path) != NULL ||
                     map_get(r->finished_drvs, w->drv_path) != NULL;
            pthread_mutex_unlock(&r->lock);
            if (exists) {
                w->status = NODE_EXISTING;
                continue;
            }
            if (nix_store_path_check(w->drv_path, NULL) < 0 ||
                access(w->drv_path, F_OK) != 0) {
                w->status = NODE_MISSING;
                w->error = xasprintf("derivation '%s' is missing from the store", w->drv_path);
                bad = w;
                break;
            }
            Err re = {0};
            if (node_read(w, &re) < 0) {
                w->status = NODE_MISSING;
                w->error = xstrdup(re.msg);
                bad = w;
                break;
            }
            ptrvec_push(&level, w);
        }
        frontier.n = 0;
        if (bad)
            break;
        rc = level_check(r, db, c, (WalkNode **)level.v, level.n, e);
        if (rc < 0)
            goto out;
        for (uint32_t i = 0; i < level.n && !bad; i++) {
            WalkNode *w = level.v[i];
            if (w->status == NODE_FAILED_CACHED) {
                bad = w;
                break;
            }
            if (w->status == NODE_AVAILABLE && w->via_realisation && w->two_phase) {
                FoundTx f = {w, row->id};
                /* rooted before the row that records them commits */
                for (size_t j = 0; j < w->found_paths.n; j++)
                    if (w->found_paths.v[j][0])
                        runner_root_output(r, db, w->found_paths.v[j], f.build);
                rc = db_tx(db, found_tx, &f, e);
                if (rc < 0)
                    goto out;
            }
            if (w->status != NODE_NEEDED)
                continue;
            for (size_t j = 0; j < w->inputs.n; j++) {
                if (map_get(nodes, w->inputs.v[j]))
                    continue;
                WalkNode *in = xcalloc(1, sizeof *in);
                in->drv_path = xstrdup(w->inputs.v[j]);
                map_put(nodes, in->drv_path, in);
                ptrvec_push(&frontier, in);
            }
        }
    }

    if (bad) {
        rc = runner_fail_build_at_ingest(r, db, row, bad->drv_path, bad->system,
                                         bad->status == NODE_MISSING ? 3 : 8, bad->error,
                                         bad == top, e);
        goto out;
    }
    if (!r->ca_enabled && top->status != NODE_AVAILABLE) {
        /* content-addressed work needs ca-derivations in the local store: refuse it at
         * once with a clear message rather than leave it unsupported */
        size_t it = 0;
        const char *k;
        void *v;
        while (map_next(nodes, &it, &k, &v)) {
            WalkNode *w = v;
            char *msg;
            if (w->status != NODE_NEEDED || !w->two_phase)
                continue;
            msg = xasprintf("cannot build the content-addressed derivation '%s': the local "
                            "store has the ca-derivations experimental feature off",
                            w->drv_path);
            rc = runner_fail_build_at_ingest(r, db, row, w->drv_path, w->system, 9, msg,
                                             w == top, e);
            free(msg);
            goto out;
        }
    }
    if (top->status == NODE_AVAILABLE) {
        rc = runner_finish_cached_build(r, db, row, top->drv_path, &top->out_names,
                                        &top->out_paths, &top->found_paths, e);
        goto out;
    }
    rc = runner_attach_walk(r, row, nodes, top->drv_path);
out:
    ptrvec_dispose(&frontier);
    ptrvec_dispose(&level);
    map_free(nodes);
    return rc;
}

/* Attach the walked nodes to the graph (one locked section). */
int runner_attach_walk(Runner *r, const RdbBuildRow *row, Map *nodes, const char *top_drv)
{
    PtrVec created = {0};
    size_t it = 0;
    const char *key;
    void *val;
    Build *b;
    Step *top;

    pthread_mutex_lock(&r->lock);
    /* steps for every needed node (an equal step may have appeared meanwhile) */
    while (map_next(nodes, &it, &key, &val)) {
        WalkNode *w = val;
        Step *s;
        if (w->status != NODE_NEEDED)
            continue;
        s = graph_step_get(r, w->drv_path);
        if (!s && map_get(r->finished_drvs, w->drv_path))
            continue; /* finished while we looked */
        if (!s) {
            RetryInfo *ri = map_get(r->attempts, w->drv_path);
            s = graph_step_new(r, w->drv_path, w->system, w->features, w->kind, w->two_phase);
            if (ri) {
                s->tries = (uint16_t)ri->tries;
                s->after = runner_retry_time(r, ri->tries, ri->last_stop);
            }
            ptrvec_push(&created, s);
        }
    }
    /* deps */
    it = 0;
    while (map_next(nodes, &it, &key, &val)) {
        WalkNode *w = val;
        Step *s;
        if (w->status != NODE_NEEDED)
            continue;
        s = graph_step_get(r, w->drv_path);
        if (!s || !ptrvec_contains(&created, s))
            continue;
        for (size_t j = 0; j < w->inputs.n; j++) {
            Step *dep = graph_step_get(r, w->inputs.v[j]);
            if (dep && dep != s && dep->state != STEP_DONE && dep->state != STEP_FAILED)
                graph_add_dep(r, s, dep);
        }
    }
    b = xcalloc(1, sizeof *b);
    b->id = row->id;
    b->drv_path = xstrdup(row->drv_path);
    b->jobset_id = row->jobset_id;
    b->job = xstrdup(row->job);
    b->global_priority = row->global_priority;
    b->local_priority = row->local_priority;
    b->max_silent = row->max_silent >= 0 ? row->max_silent : r->opt.max_silent_default;
    b->timeout = row->timeout >= 0 ? row->timeout : r->opt.timeout_default;
    b->timestamp = row->timestamp;
    {
        char k[32];
        snprintf(k, sizeof k, "%" PRId64, b->id);
        map_put(r->builds, k, b);
    }
    top = graph_step_get(r, top_drv);
    if (top && top->state == STEP_RESOLVED && top->resolved_to)
        top = top->resolved_to;
    if (top) {
        graph_build_attach(r, b, top);
    } else {
        /* the top level finished between the walk and now: the next pass finishes the
         * build as cached */
        r->pass_again = 1;
    }
    for (uint32_t i = 0; i < created.n; i++) {
        Step *s = created.v[i];
        if (s->n_deps_left == 0) {
            if (s->after > util_time_now() && !s->two_phase) {
                s->state = STEP_RETRY_WAIT;
                ptrvec_push(&r->retry_wait, s);
            } else {
                graph_step_ready(r, s);
            }
        }
    }
    atomic_fetch_add(&r->stats.builds_read, 1);
    pthread_mutex_unlock(&r->lock);
    ptrvec_dispose(&created);
    return 0;
}

/* Failed attempts per drv in unfinished builds (one query per pass); rows from before a
 * restart (started no later than the build's old stopTime) do not count. */
static void attempts_free(void *p)
{
    free(p);
}

static int load_attempts(Runner *r, Db *db, Err *e)
{
    DbStmt *st = NULL;
    Map *m = map_new(attempts_free);
    int rc = db_query(db,
                      "SELECT s.drvPath, count(*), max(s.stopTime) FROM BuildSteps s JOIN Builds "
                      "b ON b.id = s.build WHERE b.finished = 0 AND s.type = 0 AND s.status = 3 "
                      "AND (s.errorMsg IS NULL OR s.errorMsg <> $1) "
                      "AND s.startTime > coalesce(b.stopTime, 0) GROUP BY s.drvPath",
                      DB_ARGS(DB_P_TEXT(RDB_INTERRUPTED_MSG)), &st, e);
    if (rc < 0) {
        map_free(m);
        return rc;
    }
    while ((rc = db_step(st, e)) == 1) {
        RetryInfo *ri = xcalloc(1, sizeof *ri);
        ri->tries = (int)db_col_int64(st, 1);
        ri->last_stop = db_col_int64(st, 2);
        map_put(m, db_col_text(st, 0), ri);
    }
    db_stmt_done(st);
    pthread_mutex_lock(&r->lock);
    map_free(r->attempts);
    r->attempts = m;
    pthread_mutex_unlock(&r->lock);
    return rc < 0 ? rc : 0;
}

/* One queue pass: every unfinished build not yet in memory.  Returns the number of
 * builds read or an error. */
int runner_queue_pass(Runner *r, Db *db, Err *e)
{
    RdbBuildRow *rows = NULL;
    size_t n = 0, done = 0;
    StoreConn *c = NULL;
    uint64_t t0 = util_now_ms();
    int rc;

    rc = load_attempts(r, db, e);
    if (rc < 0)
        return rc;
    rc = rdb_load_unfinished(db, &rows, &n, e);
    if (rc < 0)
        return rc;
    rc = store_machine_query_get(r->local_store, &c, e);
    if (rc < 0)
        goto out;
    pthread_mutex_lock(&r->lock);
    r->ingest_active = 1;
    r->pass_again = 0;
    pthread_mutex_unlock(&r->lock);
    for (size_t i = 0; i < n && !atomic_load(&r->stopping); i++) {
        Err be = {0};
        rc = ingest_build(r, db, c, &rows[i], &be);
        if (rc < 0) {
            if (store_conn_broken(c)) {
                store_machine_query_put(r->local_store, c);
                c = NULL;
                *e = be;
                goto out;
            }
            log_error("build %" PRId64 ": %s", rows[i].id, be.msg);
            rc = 0;
        }
        done++;
    }
out:
    pthread_mutex_lock(&r->lock);
    r->ingest_active = 0;
    map_clear(r->finished_drvs);
    pthread_mutex_unlock(&r->lock);
    if (c)
        store_machine_query_put(r->local_store, c);
    for (size_t i = 0; i < n; i++)
        rdb_build_row_dispose(&rows[i]);
    free(rows);
    atomic_store(&r->stats.ingest_time_ms, util_now_ms() - t0);
    return rc < 0 ? rc : (int)done;
}
