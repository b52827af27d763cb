/*
 * ingest.c: turning queued builds into steps (hydra-behaviour §3.2, §3.3).
 *
 * A queue pass loads the unfinished builds in priority order and walks their
 * derivation closures breadth first, one level at a time, several builds at once (a
 * chunk: 1 build, then 2, 4, ... up to INGEST_CHUNK_MAX, so the first steps are
 * runnable within moments while later chunks amortise the round trips).  The store and
 * database questions of a level go out in batches: one QueryValidPaths, pipelined
 * QueryRealisation for content-addressed nodes the database knows nothing about, and
 * `IN (...)` queries for recorded outputs and FailedPaths.  A derivation whose outputs
 * are all valid is not a step; one with a known failed output makes a cached failure
 * of the builds that need it; a missing .drv aborts them.  The I/O of a walk happens
 * without the graph lock; the result is attached to the graph in one short locked
 * section per chunk, after which new steps without deps are runnable at once (so
 * dispatch starts while ingest goes on).
 *
 * With use-substitutes (substitute.c) a level's missing outputs are also asked of the
 * local store's substituters in one request; nodes whose outputs all are there are
 * substituted (their inputs are not walked) once the walk of the chunk ends, and what
 * failed to substitute is walked on and built.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/finish.h"
#include "runner/record.h"
#include "runner/graph.h"
#include "runner/hooks.h"
#include "runner/ingest.h"
#include "runner/lock.h"
#include "runner/machines.h"
#include "runner/rdb.h"
#include "runner/results.h"
#include "runner/roots.h"
#include "runner/step.h"
#include "runner/substitute.h"

enum {
    NODE_NEEDED = 0,
    NODE_AVAILABLE,
    NODE_EXISTING,
    NODE_FAILED_CACHED,
    NODE_MISSING,
    NODE_SUBSTITUTABLE /* use-substitutes: its outputs are to be substituted */
};

typedef struct WalkNode {
    char *drv_path;
    char *system;
    char *features;
    int kind;
    int two_phase;
    int status;
    int via_realisation; /* outputs found only through local realisations */
    int substituted;     /* outputs substituted: 1 by this walk, 2 by an earlier chunk */
    RunnerSubstJob sub_job;
    PtrVec sub_builds; /* ids of the builds of the chunk that needed it (intptr_t) */
    char *error;       /* NODE_MISSING */
    StrVec out_names;
    StrVec out_paths;   /* "" when not statically known */
    StrVec found_paths; /* paths found (DB or realisation), parallel to out_names */
    StrVec inputs;
    NixDrv *drv;   /* while its level is checked (two-phase nodes) */
    size_t owner;  /* index in the chunk of the first build whose walk reached it */
    uint32_t mark; /* closure searches after the walk */
} WalkNode;

/* Builds walked together at most; parameters of one `IN (...)` query. */
#define INGEST_CHUNK_MAX 512
#define INGEST_IN_PARAMS 128

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
    nix_drv_free(n->drv);
    runner__subst_job_dispose(&n->sub_job);
    ptrvec_dispose(&n->sub_builds);
    free(n);
}

/* --build-one: the rows of the only_builds alone (the others stay queued, untouched). */
static void keep_only_builds(const Runner *r, RdbBuildRow *rows, size_t *n)
{
    size_t kept = 0;
    for (size_t i = 0; i < *n; i++) {
        int wanted = 0;
        for (size_t j = 0; j < r->opt.n_only_builds; j++)
            wanted |= rows[i].id == r->opt.only_builds[j];
        if (wanted)
            rows[kept++] = rows[i];
        else
            runner__rdb_build_row_dispose(&rows[i]);
    }
    *n = kept;
}

/* Drvs the hash cache reads while a queue pass hashes content-addressed nodes top down
 * (their inputs, before the walk reaches them) are kept for the walk, at most this many
 * at a time. */
#define INGEST_STASH_MAX 100000

static void stash_free(void *p)
{
    nix_drv_free(p);
}

/* The hash cache's loader (called with hash_lock held). */
int runner__drv_loader(void *payload, const char *drv_path, NixDrv **out, Err *e)
{
    Runner *r = payload;
    int rc = nix_drv_read(drv_path, out, e);
    if (rc < 0)
        return rc;
    if (r->drv_stash && map_size(r->drv_stash) < INGEST_STASH_MAX &&
        !map_get(r->drv_stash, drv_path))
        map_put(r->drv_stash, drv_path, nix_drv_clone(*out));
    return 0;
}

/* Read a drv and fill the scheduling facts of a node. */
static int node_read(Runner *r, WalkNode *n, Err *e)
{
    NixDrv *d = NULL;
    NixDrvKind kind;
    int rc = 0;
    pthread_mutex_lock(&r->hash_lock);
    if (r->drv_stash)
        d = map_del(r->drv_stash, n->drv_path);
    pthread_mutex_unlock(&r->hash_lock);
    if (!d)
        rc = nix_drv_read(n->drv_path, &d, e);
    if (rc < 0)
        return rc;
    rc = nix_drv_kind(d, &kind, e);
    if (rc < 0)
        goto out;
    n->kind = (int)kind;
    n->two_phase = kind == NIX_DRV_FLOATING || kind == NIX_DRV_DEFERRED;
    n->system = xstrdup(d->platform);
    n->features = runner__features_string(d, n->two_phase);
    for (size_t i = 0; i < d->n_outputs; i++) {
        strvec_push(&n->out_names, d->outputs[i].name);
        strvec_push(&n->out_paths, d->outputs[i].path);
        strvec_push(&n->found_paths, "");
    }
    for (size_t i = 0; i < d->n_inputs; i++)
        strvec_push(&n->inputs, d->inputs[i].drv_path);
    if (n->two_phase) {
        n->drv = d; /* for its realisation ids */
        d = NULL;
    }
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
    rc = runner__rdb_recorded_outputs(db, n->drv_path, &names, &paths, e);
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

/* Paths among `paths` that a one-column query `sql_head` + "IN ($1..$K)" returns, in
 * batches of INGEST_IN_PARAMS (the last batch padded with its first path, so every
 * batch is the same prepared statement). */
static int db_in_query(Db *db, const char *sql_head, const DbParam *head_params, size_t n_head,
                       char *const *paths, size_t n, Map *hit, Err *e)
{
    DbParam params[INGEST_IN_PARAMS + 4];
    Buf sql;
    int rc = 0;
    if (n_head > 4)
        return err_set(e, ERR_INVALID, "db_in_query: %zu head parameters (limit 4)", n_head);
    buf_init(&sql, LIMIT_BUF_DEFAULT);
    buf_puts(&sql, sql_head);
    buf_puts(&sql, " IN (");
    for (int i = 0; i < INGEST_IN_PARAMS; i++)
        buf_printf(&sql, "%s$%d", i ? ", " : "", (int)n_head + i + 1);
    buf_putc(&sql, ')');
    rc = buf_status(&sql);
    for (size_t i = 0; i < n_head; i++)
        params[i] = head_params[i];
    for (size_t at = 0; at < n && rc >= 0; at += INGEST_IN_PARAMS) {
        DbStmt *st = NULL;
        for (size_t i = 0; i < INGEST_IN_PARAMS; i++)
            params[n_head + i] = DB_P_TEXT(at + i < n ? paths[at + i] : paths[at]);
        rc = db_query(db, (const char *)sql.p, params, n_head + INGEST_IN_PARAMS, &st, e);
        if (rc < 0)
            break;
        while ((rc = db_step(st, e)) == 1)
            if (db_col_text(st, 0))
                map_put(hit, db_col_text(st, 0), (void *)1);
        db_stmt_done(st);
    }
    buf_dispose(&sql);
    return rc < 0 ? rc : 0;
}

static int all_found(const WalkNode *n, const Map *valid)
{
    for (size_t i = 0; i < n->out_names.n; i++) {
        const char *p = n->out_paths.v[i][0] ? n->out_paths.v[i] : n->found_paths.v[i];
        if (!p[0] || !map_get(valid, p))
            return 0;
    }
    return 1;
}

/* QueryValidPaths of `ask`, the answer added to `valid`. */
static int ask_valid(StoreConn *c, StrVec *ask, Map *valid, Err *e)
{
    StrVec got;
    int rc;
    if (!ask->n)
        return 0;
    strvec_init(&got);
    rc = store_query_valid_paths(c, (const char *const *)ask->v, ask->n, &got, e);
    for (size_t i = 0; rc == 0 && i < got.n; i++)
        map_put(valid, got.v[i], (void *)1);
    strvec_dispose(&got);
    return rc;
}

/* use-substitutes: needed input-addressed nodes of a level whose outputs are valid or
 * substitutable become NODE_SUBSTITUTABLE (one question for the level). */
static int level_substitutable(Runner *r, StoreConn *c, WalkNode **lv, size_t n, const Map *valid,
                               Err *e)
{
    StrVec ask;
    Map *subst = map_new(NULL);
    int rc;
    strvec_init(&ask);
    for (size_t i = 0; i < n; i++) {
        const WalkNode *w = lv[i];
        if (w->status != NODE_NEEDED || w->two_phase)
            continue;
        for (size_t j = 0; j < w->out_paths.n; j++)
            if (w->out_paths.v[j][0] && !map_get(valid, w->out_paths.v[j]))
                strvec_push(&ask, w->out_paths.v[j]);
    }
    rc = runner__subst_query(r, c, &ask, subst, e);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        WalkNode *w = lv[i];
        int all = w->status == NODE_NEEDED && !w->two_phase && w->out_paths.n > 0;
        for (size_t j = 0; all && j < w->out_paths.n; j++)
            all = w->out_paths.v[j][0] &&
                  (map_get(valid, w->out_paths.v[j]) || map_get(subst, w->out_paths.v[j]));
        if (all)
            w->status = NODE_SUBSTITUTABLE;
    }
    strvec_dispose(&ask);
    map_free(subst);
    return rc;
}

/* The realisation ids of w's outputs not found yet onto ids, and (w, output index) pairs
 * onto id_nodes.  memo: w's drv is memoised under its path first (the nodes above it then
 * find its hash instead of reading it again). */
static int push_missing_ids(Runner *r, WalkNode *w, int memo, StrVec *ids, PtrVec *id_nodes, Err *e)
{
    char **rids = NULL;
    int rc = 0;
    pthread_mutex_lock(&r->hash_lock);
    if (memo)
        rc = nix_hash_cache_add(r->hash_cache, w->drv_path, w->drv, e);
    if (rc == 0)
        rc = nix_drv_realisation_ids(r->hash_cache, w->drv, &rids, e);
    pthread_mutex_unlock(&r->hash_lock);
    if (rc < 0)
        return rc;
    for (size_t j = 0; j < w->drv->n_outputs; j++) {
        if (j < w->found_paths.n && !w->found_paths.v[j][0]) {
            strvec_push_take(ids, rids[j]);
            ptrvec_push(id_nodes, w);
            ptrvec_push(id_nodes, (void *)(uintptr_t)j);
        } else {
            free(rids[j]);
        }
    }
    free(rids);
    return 0;
}

/* Ask the local realisations of ids (pushed by push_missing_ids): the outputs found are
 * set (via_realisation too, when asked) and pushed onto found (may be NULL). */
static int ask_realisations(StoreConn *c, const StrVec *ids, const PtrVec *id_nodes, int via,
                            StrVec *found, Err *e)
{
    char **got = xcalloc(ids->n + 1, sizeof *got);
    int rc = store_query_realisations(c, ids->v, ids->n, got, e);
    for (size_t k = 0; k < ids->n; k++) {
        WalkNode *w = id_nodes->v[2 * k];
        size_t j = (size_t)(uintptr_t)id_nodes->v[2 * k + 1];
        if (rc == 0 && got[k]) {
            free(w->found_paths.v[j]);
            w->found_paths.v[j] = xasprintf("%s/%s", NIX_STORE_DIR, got[k]);
            w->via_realisation |= via;
            if (found)
                strvec_push(found, w->found_paths.v[j]);
        }
        free(got[k]);
    }
    free(got);
    return rc;
}

/* "DRV!OUT1,OUT2" of a node (caller frees). */
static char *derived_path(const WalkNode *w)
{
    Buf b;
    buf_init(&b, LIMIT_BUF_DEFAULT);
    buf_printf(&b, "%s!", w->drv_path);
    for (size_t j = 0; j < w->out_names.n; j++)
        buf_printf(&b, "%s%s", j ? "," : "", w->out_names.v[j]);
    return buf_take(&b, NULL);
}

/* use-substitutes, content-addressed nodes still needed: their outputs are looked up
 * through the substituters' realisations of the queued drvs, in one BuildPaths of every
 * DRV!OUTPUTS of the level that builds nothing (Nix substitutes what it finds; a miss is
 * no error of ours), then the local realisations once more.  Nodes whose outputs all
 * came are available and substituted. */
static int level_substitute_ca(Runner *r, StoreConn *c, WalkNode **lv, size_t n, Err *e)
{
    StrVec derived, ids;
    PtrVec id_nodes = {0}, cand = {0};
    Map *valid = map_new(NULL);
    Err se = {0};
    int64_t start, stop;
    int rc = 0;
    strvec_init(&derived);
    strvec_init(&ids);
    for (size_t i = 0; i < n; i++) {
        WalkNode *w = lv[i];
        if (w->status != NODE_NEEDED || !w->two_phase || !w->drv)
            continue;
        rc = push_missing_ids(r, w, 0, &ids, &id_nodes, e);
        if (rc < 0)
            goto out;
        strvec_push_take(&derived, derived_path(w));
        ptrvec_push(&cand, w);
    }
    if (!derived.n)
        goto out;
    start = util_time_now();
    atomic_fetch_add(&r->stats.subst_queries, 1);
    rc = store_substitute_outputs(c, (const char *const *)derived.v, derived.n, &se);
    stop = util_time_now();
    if (rc < 0 && store_conn_broken(c)) {
        *e = se;
        goto out;
    }
    if (rc < 0)
        log_debug("substituting content-addressed outputs: %s", se.msg);
    strvec_dispose(&derived); /* reused: the paths found */
    strvec_init(&derived);
    rc = ask_realisations(c, &ids, &id_nodes, 0, &derived, e);
    if (rc < 0)
        goto out;
    rc = ask_valid(c, &derived, valid, e);
    for (uint32_t i = 0; rc == 0 && i < cand.n; i++) {
        WalkNode *w = cand.v[i];
        if (!all_found(w, valid))
            continue;
        w->status = NODE_AVAILABLE;
        w->substituted = 1;
        w->sub_job.drv_path = w->drv_path;
        w->sub_job.paths = w->found_paths.v;
        w->sub_job.n = w->found_paths.n;
        w->sub_job.ok = 1;
        w->sub_job.start = start;
        w->sub_job.stop = stop;
        atomic_fetch_add(&r->stats.subst_done, 1);
    }
out:
    strvec_dispose(&derived);
    strvec_dispose(&ids);
    ptrvec_dispose(&id_nodes);
    ptrvec_dispose(&cand);
    map_free(valid);
    return rc;
}

/* Content-addressed nodes: their outputs recorded in the DB (only those with rows at
 * all are asked in detail). */
static int level_recorded(Runner *r, Db *db, WalkNode **lv, size_t n, Err *e)
{
    StrVec ask;
    Map *recorded = map_new(NULL);
    int rc;
    strvec_init(&ask);
    for (size_t i = 0; i < n; i++)
        if (lv[i]->two_phase)
            strvec_push(&ask, lv[i]->drv_path);
    rc = db_in_query(db,
                     "SELECT DISTINCT drvPath FROM BuildSteps WHERE status IN ($1, $2) AND drvPath",
                     DB_ARGS(DB_P_INT(DB_STATUS_SUCCESS), DB_P_INT(DB_STATUS_RESOLVED)), ask.v,
                     ask.n, recorded, e);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (lv[i]->two_phase && map_get(recorded, lv[i]->drv_path))
            rc = node_db_outputs(r, db, lv[i], e);
    strvec_dispose(&ask);
    map_free(recorded);
    return rc;
}

/* Which known outputs (static, or recorded for CA nodes) are valid in the local store. */
static int level_valid(StoreConn *c, WalkNode **lv, size_t n, Map *valid, Err *e)
{
    StrVec ask;
    int rc;
    strvec_init(&ask);
    for (size_t i = 0; i < n; i++) {
        WalkNode *w = lv[i];
        for (size_t j = 0; j < w->out_names.n; j++) {
            if (w->out_paths.v[j][0])
                strvec_push(&ask, w->out_paths.v[j]);
            else if (w->found_paths.v[j][0])
                strvec_push(&ask, w->found_paths.v[j]);
        }
    }
    rc = ask_valid(c, &ask, valid, e);
    strvec_dispose(&ask);
    return rc;
}

/* What the level asks next: CA nodes whose recorded outputs are gone (or were never
 * recorded) ask the local realisations (without ca-derivations the store has none to
 * ask about, and Nix 2.8's daemon even dies on the question); input-addressed nodes ask
 * FailedPaths for their outputs. */
typedef struct LevelAsk {
    StrVec ids; /* realisation ids */
    PtrVec id_nodes;
    StrVec failed; /* output paths for FailedPaths */
} LevelAsk;

/* First verdict: available when every output is valid, else needed (for now). */
static int level_first(Runner *r, WalkNode **lv, size_t n, const Map *valid, LevelAsk *ask, Err *e)
{
    for (size_t i = 0; i < n; i++) {
        WalkNode *w = lv[i];
        w->status = NODE_NEEDED;
        if (all_found(w, valid)) {
            w->status = NODE_AVAILABLE;
            continue;
        }
        if (!w->two_phase) {
            for (size_t j = 0; j < w->out_paths.n; j++)
                if (w->out_paths.v[j][0])
                    strvec_push(&ask->failed, w->out_paths.v[j]);
            continue;
        }
        for (size_t j = 0; j < w->out_names.n; j++) {
            if (w->found_paths.v[j][0] && !map_get(valid, w->found_paths.v[j])) {
                free(w->found_paths.v[j]);
                w->found_paths.v[j] = xstrdup("");
            }
        }
        if (r->ca_enabled && w->drv) {
            int rc = push_missing_ids(r, w, 1, &ask->ids, &ask->id_nodes, e);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Second verdict: CA nodes available through realisations whose outputs are valid;
 * input-addressed nodes with an output in FailedPaths are cached failures. */
static void level_second(WalkNode **lv, size_t n, const Map *valid, const Map *failed)
{
    for (size_t i = 0; i < n; i++) {
        WalkNode *w = lv[i];
        if (w->status != NODE_NEEDED)
            continue;
        if (w->two_phase) {
            if (w->via_realisation && all_found(w, valid))
                w->status = NODE_AVAILABLE;
            else
                w->via_realisation = 0;
        } else {
            for (size_t j = 0; j < w->out_paths.n; j++)
                if (w->out_paths.v[j][0] && map_get(failed, w->out_paths.v[j]))
                    w->status = NODE_FAILED_CACHED;
        }
    }
}

/* Decide availability for a level of freshly read nodes, with batched questions: what
 * is available, needed, a cached failure, substitutable. */
static int level_check(Runner *r, Db *db, StoreConn *c, WalkNode **lv, size_t n, Err *e)
{
    Map *valid = map_new(NULL), *failed = map_new(NULL);
    LevelAsk ask = {0};
    StrVec more;
    int rc;
    strvec_init(&ask.ids);
    strvec_init(&ask.failed);
    strvec_init(&more);
    rc = level_recorded(r, db, lv, n, e);
    if (rc == 0)
        rc = level_valid(c, lv, n, valid, e);
    if (rc == 0)
        rc = level_first(r, lv, n, valid, &ask, e);
    if (rc == 0 && ask.ids.n) {
        rc = ask_realisations(c, &ask.ids, &ask.id_nodes, 1, &more, e);
        if (rc == 0)
            rc = ask_valid(c, &more, valid, e);
    }
    if (rc == 0)
        rc = db_in_query(db, "SELECT path FROM FailedPaths WHERE path", NULL, 0, ask.failed.v,
                         ask.failed.n, failed, e);
    if (rc == 0) {
        level_second(lv, n, valid, failed);
        if (r->opt.use_substitutes && r->ca_enabled)
            rc = level_substitute_ca(r, c, lv, n, e);
        if (rc == 0 && r->opt.use_substitutes)
            rc = level_substitutable(r, c, lv, n, valid, e);
    }
    strvec_dispose(&more);
    strvec_dispose(&ask.ids);
    strvec_dispose(&ask.failed);
    ptrvec_dispose(&ask.id_nodes);
    map_free(valid);
    map_free(failed);
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
    RecordOutputs o = {f->n->out_names.v, f->n->found_paths.v, f->n->out_names.n};
    int64_t now = util_time_now();
    return runner__record_found_row(db, (StepRef){f->build, f->n->drv_path, f->n->system}, now, now,
                                    &o, e);
}

/* Push the inputs of needed node w not yet marked with `mark` (marking them). */
static void push_unmarked_inputs(Map *nodes, const WalkNode *w, uint32_t mark, PtrVec *to)
{
    if (w->status != NODE_NEEDED)
        return;
    for (size_t j = 0; j < w->inputs.n; j++) {
        WalkNode *in = map_get(nodes, w->inputs.v[j]);
        if (in && in->mark != mark) {
            in->mark = mark;
            ptrvec_push(to, in);
        }
    }
}

/* Breadth first from `top` through needed nodes: the first node `pred` accepts, or
 * NULL.  `mark` must be fresh for this search. */
static WalkNode *closure_find(Map *nodes, WalkNode *top, uint32_t mark,
                              int (*pred)(const WalkNode *))
{
    PtrVec q = {0};
    WalkNode *found = NULL;
    top->mark = mark;
    ptrvec_push(&q, top);
    for (uint32_t h = 0; h < q.n && !found; h++) {
        if (pred(q.v[h]))
            found = q.v[h];
        else
            push_unmarked_inputs(nodes, q.v[h], mark, &q);
    }
    ptrvec_dispose(&q);
    return found;
}

static int is_bad(const WalkNode *w)
{
    return w->status == NODE_MISSING || w->status == NODE_FAILED_CACHED;
}

static int is_needed_ca(const WalkNode *w)
{
    return w->status == NODE_NEEDED && w->two_phase;
}

/* Mark (with `mark`) every node reachable from `top` through needed nodes. */
static void closure_mark(Map *nodes, WalkNode *top, uint32_t mark)
{
    PtrVec st = {0};
    if (top->mark == mark)
        return;
    top->mark = mark;
    ptrvec_push(&st, top);
    while (st.n) {
        WalkNode *w = st.v[--st.n];
        push_unmarked_inputs(nodes, w, mark, &st);
    }
    ptrvec_dispose(&st);
}

static int attach_builds(Runner *r, const RdbBuildRow *const *rows, const char *const *tops,
                         size_t n, Map *nodes, uint32_t only_mark);

/* A cold start reads every .drv from disk: ask the kernel for the files of a frontier
 * (those the hash cache did not read already) all at once, so the reads overlap
 * instead of waiting one by one. */
static void prefetch(Runner *r, const PtrVec *frontier)
{
    if (frontier->n < 2)
        return;
    for (uint32_t i = 0; i < frontier->n; i++) {
        const WalkNode *w = frontier->v[i];
        int fd, stashed;
        if (w->status == NODE_EXISTING || nix_store_path_check(w->drv_path, NULL) < 0)
            continue;
        pthread_mutex_lock(&r->hash_lock);
        stashed = r->drv_stash && map_get(r->drv_stash, w->drv_path) != NULL;
        pthread_mutex_unlock(&r->hash_lock);
        if (stashed)
            continue;
        fd = open(w->drv_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
        close(fd);
    }
}

/* New nodes for the inputs of w not walked yet, onto the frontier. */
static void expand_inputs(Map *nodes, const WalkNode *w, PtrVec *frontier)
{
    for (size_t j = 0; j < w->inputs.n; j++) {
        WalkNode *in;
        if (map_get(nodes, w->inputs.v[j]))
            continue;
        in = xcalloc(1, sizeof *in);
        in->drv_path = xstrdup(w->inputs.v[j]);
        in->owner = w->owner;
        map_put(nodes, in->drv_path, in);
        ptrvec_push(frontier, in);
    }
}

/* Substitute the nodes in `pending` (all at once, on the substitution threads): the
 * substituted ones are available; the others are built instead, so their inputs go onto
 * the frontier. */
static void substitute_pending(Runner *r, Map *nodes, PtrVec *pending, PtrVec *frontier)
{
    RunnerSubstJob *jobs = xcalloc(pending->n, sizeof *jobs);
    for (uint32_t i = 0; i < pending->n; i++) {
        WalkNode *w = pending->v[i];
        jobs[i].drv_path = w->drv_path;
        jobs[i].paths = w->out_paths.v;
        jobs[i].n = w->out_paths.n;
    }
    runner__subst_run(r, jobs, pending->n);
    for (uint32_t i = 0; i < pending->n; i++) {
        WalkNode *w = pending->v[i];
        w->sub_job = jobs[i];
        if (jobs[i].ok) {
            w->status = NODE_AVAILABLE;
            w->substituted = 1;
        } else {
            w->status = NODE_NEEDED;
            expand_inputs(nodes, w, frontier);
        }
    }
    free(jobs);
    pending->n = 0;
}

/* A derivation substituted by an earlier chunk of the queue pass (its outputs, for the
 * type-1 rows of the builds of later chunks that need it). */
typedef struct SubstSeen {
    RunnerSubstJob job; /* paths and drv_path owned here */
    StrVec paths;
    char *drv_path;
} SubstSeen;

static void subst_seen_free(void *p)
{
    SubstSeen *s = p;
    if (!s)
        return;
    strvec_dispose(&s->paths);
    free(s->drv_path);
    free(s);
}

static void subst_seen_add(Map *seen, const WalkNode *w)
{
    SubstSeen *s;
    if (map_get(seen, w->drv_path))
        return;
    s = xcalloc(1, sizeof *s);
    strvec_init(&s->paths);
    for (size_t k = 0; k < w->sub_job.n; k++)
        strvec_push(&s->paths, w->sub_job.paths[k]);
    s->drv_path = xstrdup(w->drv_path);
    s->job = w->sub_job;
    s->job.error = NULL;
    s->job.drv_path = s->drv_path;
    s->job.paths = s->paths.v;
    map_put(seen, s->drv_path, s);
}

/* Type-1 rows for the substituted nodes, in every build of the chunk whose closure (through
 * needed nodes) reaches them: those this walk substituted (then remembered in `seen`) and
 * those an earlier chunk of the pass did (found available now). */
static int record_substituted(Runner *r, Db *db, const RdbBuildRow *rows, WalkNode **tops, size_t n,
                              Map *nodes, Map *seen, uint32_t *mark, Err *e)
{
    PtrVec subs = {0};
    size_t it = 0;
    const char *key;
    void *val;
    int rc = 0;
    while (map_next(nodes, &it, &key, &val)) {
        WalkNode *w = val;
        SubstSeen *s;
        if (w->status == NODE_AVAILABLE && !w->substituted &&
            (s = map_get(seen, w->drv_path)) != NULL) {
            w->sub_job = s->job; /* borrowed from seen, which outlives the chunk */
            w->substituted = 2;
        }
        if (w->substituted == 1)
            subst_seen_add(seen, w);
        if (w->substituted)
            ptrvec_push(&subs, val);
    }
    for (size_t i = 0; subs.n && i < n; i++) {
        uint32_t m = ++*mark;
        if (!tops[i])
            continue;
        closure_mark(nodes, tops[i], m);
        for (uint32_t k = 0; k < subs.n; k++) {
            WalkNode *w = subs.v[k];
            if (w->mark == m)
                ptrvec_push(&w->sub_builds, (void *)(intptr_t)rows[i].id);
        }
    }
    for (uint32_t k = 0; k < subs.n && rc == 0; k++) {
        WalkNode *w = subs.v[k];
        int64_t *ids = xcalloc(w->sub_builds.n + 1, sizeof *ids);
        for (uint32_t b = 0; b < w->sub_builds.n; b++)
            ids[b] = (int64_t)(intptr_t)w->sub_builds.v[b];
        rc = runner__subst_record(r, db, &w->sub_job, w->system, w->out_names.v, ids,
                                  w->sub_builds.n, e);
        free(ids);
    }
    ptrvec_dispose(&subs);
    return rc;
}

/* Walk the closures of rows[0..n) together and attach them to the graph. */
/* One chunk of a queue pass: its builds, the nodes of their closures, the walk. */
typedef struct Chunk {
    const RdbBuildRow *rows;
    size_t n;
    Map *seen; /* the pass's substitutions (subst_seen_add) */
    Map *nodes;
    WalkNode **tops; /* per build: its top node, NULL when in memory already */
    PtrVec frontier, level, pending;
    uint32_t mark;
    int any_bad, any_ca, any_dropped;
    const RdbBuildRow **att_rows; /* builds to attach, with their top drvs */
    const char **att_tops;
    size_t n_att;
} Chunk;

/* The top nodes of the builds not in memory yet: the walk's first frontier. */
static void chunk_tops(Runner *r, Chunk *ch)
{
    runner__lock(r);
    for (size_t i = 0; i < ch->n; i++) /* 1: to walk */
        ch->tops[i] = runner__graph_build_get(r, ch->rows[i].id) ? NULL : (WalkNode *)1;
    runner__unlock(r);
    for (size_t i = 0; i < ch->n; i++) {
        WalkNode *w;
        if (!ch->tops[i])
            continue; /* already in memory */
        w = map_get(ch->nodes, ch->rows[i].drv_path);
        if (!w) {
            w = xcalloc(1, sizeof *w);
            w->drv_path = xstrdup(ch->rows[i].drv_path);
            w->owner = i;
            map_put(ch->nodes, w->drv_path, w);
            ptrvec_push(&ch->frontier, w);
        }
        ch->tops[i] = w;
    }
}

/* The frontier's nodes that are steps already (or finished in this pass) are left
 * alone; the others are read (a missing or unreadable drv is a bad node) and make the
 * next level. */
static void read_frontier(Runner *r, Chunk *ch)
{
    ch->level.n = 0;
    runner__lock(r);
    for (uint32_t i = 0; i < ch->frontier.n; i++) {
        WalkNode *w = ch->frontier.v[i];
        if (runner__graph_step_get(r, w->drv_path) != NULL ||
            map_get(r->g.finished_drvs, w->drv_path) != NULL)
            w->status = NODE_EXISTING;
    }
    runner__unlock(r);
    prefetch(r, &ch->frontier);
    for (uint32_t i = 0; i < ch->frontier.n; i++) {
        WalkNode *w = ch->frontier.v[i];
        Err re = {0};
        if (w->status == NODE_EXISTING)
            continue;
        if (nix_store_path_check(w->drv_path, NULL) < 0 || node_read(r, w, &re) < 0) {
            w->status = NODE_MISSING;
            if (nix_store_path_check(w->drv_path, NULL) < 0 || access(w->drv_path, F_OK) != 0)
                w->error = xasprintf("derivation '%s' is missing from the store", w->drv_path);
            else
                w->error = xstrdup(re.msg);
            ch->any_bad = 1;
            continue;
        }
        ptrvec_push(&ch->level, w);
    }
    ch->frontier.n = 0;
}

/* A CA node found through its realisations: its type-1 row (outputs rooted before the
 * row that records them commits), and the other builds of the pass that need it get
 * theirs too. */
static int record_found(Runner *r, Db *db, Chunk *ch, WalkNode *w, Err *e)
{
    FoundTx f = {w, ch->rows[w->owner].id};
    int rc;
    for (size_t j = 0; j < w->found_paths.n; j++)
        if (w->found_paths.v[j][0])
            runner__root_output(r, db, w->found_paths.v[j], f.build);
    rc = db_tx(db, found_tx, &f, e);
    if (rc < 0)
        return rc;
    w->sub_job.drv_path = w->drv_path;
    w->sub_job.paths = w->found_paths.v;
    w->sub_job.n = w->found_paths.n;
    w->sub_job.ok = 1;
    w->sub_job.start = w->sub_job.stop = util_time_now();
    subst_seen_add(ch->seen, w);
    return 0;
}

/* After a level's check: cached failures are bad, substitutable nodes wait for their
 * substitution, needed nodes have their inputs walked next. */
static int level_outcomes(Runner *r, Db *db, Chunk *ch, Err *e)
{
    for (uint32_t i = 0; i < ch->level.n; i++) {
        WalkNode *w = ch->level.v[i];
        nix_drv_free(w->drv);
        w->drv = NULL;
        if (w->status == NODE_FAILED_CACHED) {
            ch->any_bad = 1;
            continue;
        }
        if (w->status == NODE_SUBSTITUTABLE) {
            ptrvec_push(&ch->pending, w); /* its inputs are not walked */
            continue;
        }
        if (w->status == NODE_AVAILABLE && w->via_realisation && w->two_phase) {
            int rc = record_found(r, db, ch, w, e);
            if (rc < 0)
                return rc;
        }
        if (w->status != NODE_NEEDED)
            continue;
        ch->any_ca |= w->two_phase;
        expand_inputs(ch->nodes, w, &ch->frontier);
    }
    return 0;
}

/* The walk, level by level; what failed to substitute is built: its inputs are walked
 * next. */
static int walk(Runner *r, Db *db, StoreConn *c, Chunk *ch, Err *e)
{
    do {
        while (ch->frontier.n) {
            read_frontier(r, ch);
            if (ch->level.n)
                atomic_fetch_add(&r->stats.ingest_levels, 1);
            int rc = level_check(r, db, c, (WalkNode **)ch->level.v, ch->level.n, e);
            if (rc == 0)
                rc = level_outcomes(r, db, ch, e);
            if (rc < 0)
                return rc;
        }
        if (ch->pending.n)
            substitute_pending(r, ch->nodes, &ch->pending, &ch->frontier);
    } while (ch->frontier.n);
    return 0;
}

/* Content-addressed work needs ca-derivations in the local store: refused at once
 * with a clear message rather than left unsupported. */
static int refuse_ca(Runner *r, Db *db, const RdbBuildRow *row, const WalkNode *top,
                     const WalkNode *bad, Err *e)
{
    char *msg = xasprintf("cannot build the content-addressed derivation '%s': the local store "
                          "has the ca-derivations experimental feature off",
                          bad->drv_path);
    int rc = runner__fail_build_at_ingest(r, db, row, bad->drv_path, bad->system,
                                          DB_STATUS_UNSUPPORTED, msg, bad == top, e);
    free(msg);
    return rc;
}

/* Per build, in order: a failure in its closure, a cached success, or attach. */
static void end_or_attach(Runner *r, Db *db, Chunk *ch)
{
    for (size_t i = 0; i < ch->n; i++) {
        const RdbBuildRow *row = &ch->rows[i];
        WalkNode *top = ch->tops[i], *bad = NULL;
        Err be = {0};
        int brc = 0;
        if (!top)
            continue;
        if (ch->any_bad)
            bad = closure_find(ch->nodes, top, ++ch->mark, is_bad);
        if (bad) {
            brc = runner__fail_build_at_ingest(
                r, db, row, bad->drv_path, bad->system,
                bad->status == NODE_MISSING ? DB_STATUS_ABORTED : DB_STATUS_CACHED_FAILURE,
                bad->error, bad == top, &be);
            ch->any_dropped = 1;
        } else if (!r->ca_enabled && ch->any_ca && top->status != NODE_AVAILABLE &&
                   (bad = closure_find(ch->nodes, top, ++ch->mark, is_needed_ca)) != NULL) {
            brc = refuse_ca(r, db, row, top, bad, &be);
            ch->any_dropped = 1;
        } else if (top->status == NODE_AVAILABLE) {
            brc = runner__finish_cached_build(r, db, row, top->drv_path, &top->out_names,
                                              &top->out_paths, &top->found_paths, &be);
        } else {
            ch->att_rows[ch->n_att] = row;
            ch->att_tops[ch->n_att++] = top->drv_path;
        }
        if (brc < 0)
            log_error("build %" PRId64 ": %s", row->id, be.msg);
    }
}

/* Steps only for what the attached builds need. */
static int attach_chunk(Runner *r, Chunk *ch)
{
    uint32_t only = 0;
    if (!ch->n_att)
        return 0;
    if (ch->any_dropped) {
        only = ++ch->mark;
        for (size_t i = 0; i < ch->n_att; i++)
            closure_mark(ch->nodes, map_get(ch->nodes, ch->att_tops[i]), only);
    }
    return attach_builds(r, ch->att_rows, ch->att_tops, ch->n_att, ch->nodes, only);
}

static int ingest_chunk(Runner *r, Db *db, StoreConn *c, const RdbBuildRow *rows, size_t n,
                        Map *seen, Err *e)
{
    Chunk ch = {.rows = rows, .n = n, .seen = seen};
    int rc;
    ch.nodes = map_new(node_free);
    ch.tops = xcalloc(n, sizeof *ch.tops);
    ch.att_rows = xcalloc(n, sizeof *ch.att_rows);
    ch.att_tops = xcalloc(n, sizeof *ch.att_tops);
    chunk_tops(r, &ch);
    rc = walk(r, db, c, &ch, e);
    if (rc == 0)
        rc = record_substituted(r, db, rows, ch.tops, n, ch.nodes, seen, &ch.mark, e);
    if (rc == 0) {
        if (atomic_load(&r->stats.subst_done))
            runner__crash_point(r, "after-substitution-rows");
        end_or_attach(r, db, &ch);
        rc = attach_chunk(r, &ch);
    }
    ptrvec_dispose(&ch.frontier);
    ptrvec_dispose(&ch.level);
    ptrvec_dispose(&ch.pending);
    free(ch.tops);
    free(ch.att_rows);
    free(ch.att_tops);
    map_free(ch.nodes);
    return rc;
}

/* Steps for the needed nodes (only those marked `only_mark`, when not 0), their deps,
 * and the builds rows[i] on top of tops[i]; one locked section. */
static int attach_builds(Runner *r, const RdbBuildRow *const *rows, const char *const *tops,
                         size_t n, Map *nodes, uint32_t only_mark)
{
    PtrVec created = {0};
    size_t it = 0;
    const char *key;
    void *val;
    int64_t now = util_time_now();

    runner__lock(r);
    /* steps for every needed node (an equal step may have appeared meanwhile) */
    while (map_next(nodes, &it, &key, &val)) {
        WalkNode *w = val;
        Step *s;
        if (w->status != NODE_NEEDED || (only_mark && w->mark != only_mark))
            continue;
        s = runner__graph_step_get(r, w->drv_path);
        if (!s && map_get(r->g.finished_drvs, w->drv_path))
            continue; /* finished while we looked */
        if (!s) {
            RetryInfo *ri = map_get(r->g.attempts, w->drv_path);
            s = runner__graph_step_new(r, w->drv_path, w->system, w->features, w->kind,
                                       w->two_phase);
            if (ri) {
                s->tries = (uint16_t)ri->tries;
                s->after = runner__retry_time(r, ri->tries, ri->last_stop);
            }
            ptrvec_push(&created, s);
            w->mark = UINT32_MAX; /* created here: gets its deps below */
        }
    }
    /* deps */
    it = 0;
    while (map_next(nodes, &it, &key, &val)) {
        WalkNode *w = val;
        Step *s;
        if (w->status != NODE_NEEDED || w->mark != UINT32_MAX)
            continue;
        s = runner__graph_step_get(r, w->drv_path);
        if (!s)
            continue;
        for (size_t j = 0; j < w->inputs.n; j++) {
            Step *dep = runner__graph_step_get(r, w->inputs.v[j]);
            if (dep && dep != s && dep->state != STEP_DONE && dep->state != STEP_FAILED)
                runner__graph_add_dep(r, s, dep);
        }
    }
    for (size_t i = 0; i < n; i++) {
        const RdbBuildRow *row = rows[i];
        Build *b = xcalloc(1, sizeof *b);
        Step *top;
        char k[32];
        b->id = row->id;
        b->drv_path = xstrdup(row->drv_path);
        b->jobset_id = row->jobset_id;
        snprintf(k, sizeof k, "%" PRId64, b->jobset_id);
        if (b->jobset_id && !map_get(r->g.jobsets, k))
            r->shares_stale = 1; /* a jobset made after the shares were read */
        b->job = xstrdup(row->job);
        b->global_priority = row->global_priority;
        b->local_priority = row->local_priority;
        b->max_silent = row->max_silent >= 0 ? row->max_silent : r->opt.max_silent_default;
        b->timeout = row->timeout >= 0 ? row->timeout : r->opt.timeout_default;
        b->timestamp = row->timestamp;
        snprintf(k, sizeof k, "%" PRId64, b->id);
        map_put(r->g.builds, k, b);
        top = runner__graph_step_get(r, tops[i]);
        if (top && top->state == STEP_RESOLVED && top->resolved_to)
            top = top->resolved_to;
        if (top) {
            runner__graph_build_attach(r, b, top);
        } else {
            /* the top level finished between the walk and now: the next pass finishes
             * the build as cached */
            r->pass_again = 1;
        }
    }
    for (uint32_t i = 0; i < created.n; i++) {
        Step *s = created.v[i];
        if (s->n_deps_left == 0) {
            if (s->after > now && !s->two_phase) {
                runner__step_retry_at(r, s, s->after);
            } else {
                runner__graph_step_ready(r, s);
            }
        }
    }
    atomic_fetch_add(&r->stats.builds_read, n);
    runner__unlock(r);
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
                      "b ON b.id = s.build WHERE b.finished = 0 AND s.type = $2 AND s.status = $3 "
                      "AND (s.errorMsg IS NULL OR s.errorMsg <> $1) "
                      "AND s.startTime > coalesce(b.stopTime, 0) GROUP BY s.drvPath",
                      DB_ARGS(DB_P_TEXT(RDB_INTERRUPTED_MSG), DB_P_INT(DB_STEP_BUILD),
                              DB_P_INT(DB_STATUS_ABORTED)),
                      &st, e);
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
    runner__lock(r);
    map_free(r->g.attempts);
    r->g.attempts = m;
    runner__unlock(r);
    return rc < 0 ? rc : 0;
}

/* One queue pass: every unfinished build not yet in memory.  Returns the number of
 * builds read or an error. */
int runner__queue_pass(Runner *r, Db *db, Err *e)
{
    RdbBuildRow *rows = NULL;
    size_t n = 0, done = 0;
    StoreConn *c = NULL;
    uint64_t t0 = util_now_ms();
    uint64_t levels0 = atomic_load(&r->stats.ingest_levels);
    uint64_t queries0 = atomic_load(&r->stats.subst_queries);
    Map *seen = NULL; /* derivations substituted during this pass */
    int rc;

    rc = load_attempts(r, db, e);
    if (rc < 0)
        return rc;
    rc = runner__rdb_load_unfinished(db, &rows, &n, e);
    if (rc < 0)
        return rc;
    if (r->opt.build_one)
        keep_only_builds(r, rows, &n);
    seen = map_new(subst_seen_free);
    rc = store_machine_query_get(r->local_store, &c, e);
    if (rc < 0)
        goto out;
    runner__lock(r);
    r->ingest_active = 1;
    r->pass_again = 0;
    runner__unlock(r);
    pthread_mutex_lock(&r->hash_lock);
    r->drv_stash = map_new(stash_free);
    pthread_mutex_unlock(&r->hash_lock);
    for (size_t i = 0, chunk = 1; i < n && !atomic_load(&r->stopping);) {
        Err be = {0};
        size_t k = n - i < chunk ? n - i : chunk;
        rc = ingest_chunk(r, db, c, &rows[i], k, seen, &be);
        if (rc < 0) {
            if (store_conn_broken(c)) {
                store_machine_query_put(r->local_store, c);
                c = NULL;
                *e = be;
                goto out;
            }
            log_error("builds %" PRId64 "...: %s", rows[i].id, be.msg);
            rc = 0;
        }
        /* what the chunk did not take stays unread; the rows are done with */
        pthread_mutex_lock(&r->hash_lock);
        map_clear(r->drv_stash);
        pthread_mutex_unlock(&r->hash_lock);
        for (size_t j = i; j < i + k; j++) {
            runner__rdb_build_row_dispose(&rows[j]);
            rows[j].drv_path = rows[j].job = NULL;
        }
        done += k;
        i += k;
        if (i == k && i < n) /* tests: dispatch goes on while the pass waits here */
            runner__pause_point(r, "after-first-chunk", rows[i].drv_path);
        if (chunk < INGEST_CHUNK_MAX)
            chunk *= 2;
    }
out:
    pthread_mutex_lock(&r->hash_lock);
    map_free(r->drv_stash);
    r->drv_stash = NULL;
    pthread_mutex_unlock(&r->hash_lock);
    runner__lock(r);
    r->ingest_active = 0;
    map_clear(r->g.finished_drvs);
    runner__unlock(r);
    if (c)
        store_machine_query_put(r->local_store, c);
    for (size_t i = 0; i < n; i++)
        runner__rdb_build_row_dispose(&rows[i]);
    free(rows);
    map_free(seen);
    atomic_store(&r->stats.ingest_time_ms, util_now_ms() - t0);
    atomic_fetch_add(&r->stats.ingest_passes, 1);
    log_debug("queue pass: %zu builds read in %llu ms, %llu levels walked, %llu substitution "
              "questions",
              done, (unsigned long long)(util_now_ms() - t0),
              (unsigned long long)(atomic_load(&r->stats.ingest_levels) - levels0),
              (unsigned long long)(atomic_load(&r->stats.subst_queries) - queries0));
    if (rc >= 0 && atomic_exchange(&r->cache_retry, 0))
        rc = err_set(e, ERR_IO, "builds found built could not be published to the binary cache");
    return rc < 0 ? rc : (int)done;
}
