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
 * local store's substituters in one request; nodes whose outputs all are there are to be
 * substituted (their inputs are not walked).  Once the walk of the chunk ends, its builds
 * are attached first: a node being substituted that a step needs is a step of its own in
 * STEP_SUBSTITUTING, which the step waits for like any dep, and every other step is
 * runnable at once.  Then the substitutions run on the pool of substitute.c while the
 * chunk builds, and each share of them is taken as it ends: the substituted nodes get
 * their type-1 rows and their steps are done (waking what waits for them); what failed
 * to substitute is walked on and its step becomes an ordinary step to build, waiting for
 * its own inputs.  A build whose top level is being substituted waits aside: substituted,
 * it is a cached build; else it is attached to the step that builds it.  A build whose
 * closure turns out bad on such a fallback (a cached failure, a missing drv) fails at
 * ingest as it would have at once, and leaves the graph.
 *
 * Content-addressed nodes are looked up through realisations, one request per level
 * (level_substitute_ca): Nix substitutes what it finds and says what no cache has (a
 * miss, counted apart from the failures).  Builds read later that need a derivation this
 * runner substituted get their type-1 rows from what it remembers (substitute.c).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/exec.h"
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
    int substituted;     /* outputs substituted: 1 by this chunk, 2 earlier (remembered) */
    uint8_t submitted;   /* its substitution went to the pool */
    uint8_t placeholder; /* this chunk made its STEP_SUBSTITUTING step */
    uint8_t stepped;     /* a step was made or found for it (needed nodes) */
    uint8_t rows_done;   /* its type-1 rows are written (or it was looked up in memory) */
    RunnerSubstJob sub_job;
    StrVec memo_paths; /* substituted == 2: the outputs remembered (sub_job.paths) */
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
    strvec_dispose(&n->memo_paths);
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
 * substitutable become NODE_SUBSTITUTABLE (one question for the level, counted in
 * *questions). */
static int level_substitutable(Runner *r, StoreConn *c, WalkNode **lv, size_t n, const Map *valid,
                               uint64_t *questions, Err *e)
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
    rc = runner__subst_query(r, c, &ask, subst, questions, e);
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

/* 1 when every output of w not obtained is one Nix named as a miss (map `missed`): by
 * its realisation id (ids[k], id_nodes as push_missing_ids made them), or by its path
 * when that was known before. */
static int node_missed(const WalkNode *w, const StrVec *ids, const PtrVec *id_nodes,
                       const Map *missed, const Map *valid)
{
    for (size_t j = 0; j < w->out_names.n; j++) {
        const char *path = w->found_paths.v[j];
        const char *key = NULL;
        if (path[0] && map_get(valid, path))
            continue; /* it came */
        for (size_t k = 0; k < ids->n && !key; k++)
            if (id_nodes->v[2 * k] == w && (size_t)(uintptr_t)id_nodes->v[2 * k + 1] == j)
                key = ids->v[k];
        if (!key && path[0])
            key = path;
        if (!key || !map_get(missed, key))
            return 0;
    }
    return 1;
}

/* use-substitutes, content-addressed nodes still needed: their outputs are looked up
 * through the substituters' realisations of the queued drvs, in one BuildPaths of every
 * DRV!OUTPUTS of the level that builds nothing (Nix substitutes what it finds and names
 * what no cache has), then the local realisations once more.  Nodes whose outputs all
 * came are available and substituted; of the others, those no cache has are misses
 * (counted), the rest failed substitutions (counted and logged with Nix's reasons); both
 * are built. */
static int level_substitute_ca(Runner *r, StoreConn *c, WalkNode **lv, size_t n,
                               uint64_t *questions, Err *e)
{
    StrVec derived, ids, misses;
    PtrVec id_nodes = {0}, cand = {0};
    Map *valid = map_new(NULL), *missed = map_new(NULL);
    Err se = {0};
    int64_t start, stop;
    int rc = 0, subst_rc;
    strvec_init(&derived);
    strvec_init(&ids);
    strvec_init(&misses);
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
    (*questions)++;
    subst_rc = store_substitute_outputs(c, (const char *const *)derived.v, derived.n, &misses, &se);
    stop = util_time_now();
    if (subst_rc < 0 && store_conn_broken(c)) {
        *e = se;
        rc = subst_rc;
        goto out;
    }
    if (subst_rc < 0)
        log_debug("substituting content-addressed outputs: %s", se.msg);
    for (size_t i = 0; i < misses.n; i++)
        map_put(missed, misses.v[i], (void *)1);
    strvec_dispose(&derived); /* reused: the paths found */
    strvec_init(&derived);
    rc = ask_realisations(c, &ids, &id_nodes, 0, &derived, e);
    if (rc < 0)
        goto out;
    for (uint32_t i = 0; i < cand.n; i++) { /* outputs known before: did they come? */
        const WalkNode *w = cand.v[i];
        for (size_t j = 0; j < w->found_paths.n; j++)
            if (w->found_paths.v[j][0])
                strvec_push(&derived, w->found_paths.v[j]);
    }
    rc = ask_valid(c, &derived, valid, e);
    for (uint32_t i = 0; rc == 0 && i < cand.n; i++) {
        WalkNode *w = cand.v[i];
        if (!all_found(w, valid)) {
            if (subst_rc == 0) {
                continue; /* Nix saw nothing wrong: neither a miss nor a failure */
            } else if (node_missed(w, &ids, &id_nodes, missed, valid)) {
                atomic_fetch_add(&r->stats.subst_misses, 1);
                log_debug("no cache has %s (content-addressed lookup): building it", w->drv_path);
            } else {
                atomic_fetch_add(&r->stats.subst_failed, 1);
                log_warn("substituting %s failed, building it instead: %s", w->drv_path,
                         se.msg[0] ? se.msg : "substitution failed");
            }
            continue;
        }
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
    strvec_dispose(&misses);
    ptrvec_dispose(&id_nodes);
    ptrvec_dispose(&cand);
    map_free(valid);
    map_free(missed);
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
 * is available, needed, a cached failure, substitutable (the substitution questions
 * counted in *questions). */
static int level_check(Runner *r, Db *db, StoreConn *c, WalkNode **lv, size_t n,
                       uint64_t *questions, Err *e)
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
            rc = level_substitute_ca(r, c, lv, n, questions, e);
        if (rc == 0 && r->opt.use_substitutes)
            rc = level_substitutable(r, c, lv, n, valid, questions, e);
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

/* A build of a chunk, as the chunk goes on. */
enum {
    BUILD_SKIP = 0, /* in memory already: not walked */
    BUILD_WALKED,   /* walked, not decided yet */
    BUILD_WAITING,  /* its top level is being substituted: decided once that ends */
    BUILD_ATTACHED, /* in the graph */
    BUILD_ENDED     /* finished at ingest (failed, cached) */
};

/* One chunk of a queue pass: its builds, the nodes of their closures, the walk, the
 * substitutions in flight. */
typedef struct Chunk {
    const RdbBuildRow *rows;
    size_t n;
    Map *nodes;
    WalkNode **tops; /* per build: its top node, NULL when in memory already */
    uint8_t *state;  /* per build: BUILD_* */
    PtrVec frontier, level;
    PtrVec pending; /* NODE_SUBSTITUTABLE nodes not given to the pool yet */
    uint32_t mark;
    int any_bad, any_ca;
    uint64_t *questions;   /* the pass's substitution questions */
    RunnerSubstPool *pool; /* made at the first substitution */
    int again;             /* settle once more before waiting for substitutions */
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
        ch->state[i] = BUILD_WALKED;
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
 * row that records them commits); the runner remembers it, so the other builds that
 * need it get theirs too (record_known). */
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
    runner__subst_remember(r, &w->sub_job);
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

/* The walk, level by level, until the frontier is empty (after a failed substitution:
 * the inputs of what is built instead). */
static int walk(Runner *r, Db *db, StoreConn *c, Chunk *ch, Err *e)
{
    while (ch->frontier.n) {
        int rc;
        read_frontier(r, ch);
        if (ch->level.n)
            atomic_fetch_add(&r->stats.ingest_levels, 1);
        rc = level_check(r, db, c, (WalkNode **)ch->level.v, ch->level.n, ch->questions, e);
        if (rc == 0)
            rc = level_outcomes(r, db, ch, e);
        if (rc < 0)
            return rc;
    }
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

/* ---------------------------------------------------------------- substitution rows */

/* Type-1 rows for the substituted nodes `subs` (their sub_job), in every build of the
 * chunk not ended whose closure reaches them through needed nodes; their outputs rooted
 * first (runner__subst_record). */
static int write_rows(Runner *r, Db *db, Chunk *ch, const PtrVec *subs, Err *e)
{
    PtrVec *ids;
    int rc = 0;
    if (!subs->n)
        return 0;
    ids = xcalloc(subs->n, sizeof *ids);
    for (size_t i = 0; i < ch->n; i++) {
        uint32_t m;
        if (ch->state[i] == BUILD_SKIP || ch->state[i] == BUILD_ENDED)
            continue;
        m = ++ch->mark;
        closure_mark(ch->nodes, ch->tops[i], m);
        for (uint32_t k = 0; k < subs->n; k++)
            if (((WalkNode *)subs->v[k])->mark == m)
                ptrvec_push(&ids[k], (void *)(intptr_t)ch->rows[i].id);
    }
    for (uint32_t k = 0; k < subs->n; k++) {
        WalkNode *w = subs->v[k];
        int64_t *b = xcalloc(ids[k].n + 1, sizeof *b);
        for (uint32_t i = 0; i < ids[k].n; i++)
            b[i] = (int64_t)(intptr_t)ids[k].v[i];
        if (rc == 0)
            rc =
                runner__subst_record(r, db, &w->sub_job, w->system, w->out_names.v, b, ids[k].n, e);
        w->rows_done = 1;
        free(b);
        ptrvec_dispose(&ids[k]);
    }
    free(ids);
    return rc;
}

/* The type-1 rows the walk made due: content-addressed nodes it substituted
 * (level_substitute_ca), and available nodes this runner substituted before (an earlier
 * chunk, an earlier queue pass: remembered), each looked up once. */
static int record_known(Runner *r, Db *db, Chunk *ch, Err *e)
{
    PtrVec subs = {0};
    size_t it = 0;
    const char *key;
    void *val;
    int remembered = 0, rc;
    while (map_next(ch->nodes, &it, &key, &val)) {
        WalkNode *w = val;
        int64_t start, stop;
        if (w->rows_done || w->status != NODE_AVAILABLE)
            continue;
        if (w->substituted == 1) {
            runner__subst_remember(r, &w->sub_job);
            ptrvec_push(&subs, w);
            continue;
        }
        w->rows_done = 1;
        if (w->substituted || !runner__subst_recall(r, w->drv_path, &w->memo_paths, &start, &stop))
            continue;
        w->substituted = 2;
        w->sub_job = (RunnerSubstJob){.drv_path = w->drv_path,
                                      .paths = w->memo_paths.v,
                                      .n = w->memo_paths.n,
                                      .ok = 1,
                                      .start = start,
                                      .stop = stop};
        ptrvec_push(&subs, w);
        remembered = 1;
    }
    rc = write_rows(r, db, ch, &subs, e);
    if (rc == 0 && remembered) /* tests: rows from memory, the build not attached yet */
        runner__crash_point(r, "after-remembered-rows");
    ptrvec_dispose(&subs);
    return rc;
}

/* ---------------------------------------------------------------- builds and steps */

/* A build of the chunk fails at ingest: `bad` (a cached failure, a missing drv) in its
 * closure, or (refuse) a content-addressed node it needs without ca-derivations. */
static void end_failed(Runner *r, Db *db, Chunk *ch, size_t i, const WalkNode *bad, int refuse)
{
    const RdbBuildRow *row = &ch->rows[i];
    Err be = {0};
    int brc;
    if (refuse)
        brc = refuse_ca(r, db, row, ch->tops[i], bad, &be);
    else
        brc = runner__fail_build_at_ingest(r, db, row, bad->drv_path, bad->system,
                                           bad->status == NODE_MISSING ? DB_STATUS_ABORTED
                                                                       : DB_STATUS_CACHED_FAILURE,
                                           bad->error, bad == ch->tops[i], &be);
    if (brc < 0)
        log_error("build %" PRId64 ": %s", row->id, be.msg);
    ch->state[i] = BUILD_ENDED;
}

/* Why build i cannot be built: a bad node in its closure, or (*refuse) a
 * content-addressed one without ca-derivations; NULL when none. */
static WalkNode *closure_bad(Runner *r, Chunk *ch, size_t i, int *refuse)
{
    WalkNode *top = ch->tops[i], *bad = NULL;
    *refuse = 0;
    if (ch->any_bad)
        bad = closure_find(ch->nodes, top, ++ch->mark, is_bad);
    if (!bad && !r->ca_enabled && ch->any_ca && top->status != NODE_AVAILABLE) {
        bad = closure_find(ch->nodes, top, ++ch->mark, is_needed_ca);
        *refuse = bad != NULL;
    }
    return bad;
}

/* A STEP_SUBSTITUTING step for node w (lock held). */
static Step *placeholder_new(Runner *r, WalkNode *w)
{
    Step *s;
    RUNNER_ASSERT_LOCKED(r);
    s = runner__graph_step_new(r, w->drv_path, w->system, w->features, w->kind, w->two_phase);
    runner__step_move(r, s, STEP_SUBSTITUTING);
    w->placeholder = 1;
    return s;
}

/* The step of needed node w (lock held): made, or (a failed substitution) its
 * STEP_SUBSTITUTING step turned into a waiting one; NULL when a step was there already
 * or it finished meanwhile (nothing to do). */
static Step *step_for(Runner *r, WalkNode *w)
{
    Step *s = runner__graph_step_get(r, w->drv_path);
    RetryInfo *ri;
    if (s && w->placeholder && s->state == STEP_SUBSTITUTING) {
        runner__step_move(r, s, STEP_WAITING);
        return s;
    }
    if (s || map_get(r->g.finished_drvs, w->drv_path))
        return NULL;
    ri = map_get(r->g.attempts, w->drv_path);
    s = runner__graph_step_new(r, w->drv_path, w->system, w->features, w->kind, w->two_phase);
    if (ri) {
        s->tries = (uint16_t)ri->tries;
        s->after = runner__retry_time(r, ri->tries, ri->last_stop);
    }
    return s;
}

/* s (of needed node w) waits for the steps of w's inputs; an input being substituted
 * gets its STEP_SUBSTITUTING step here (lock held). */
static void step_deps(Runner *r, Map *nodes, WalkNode *w, Step *s)
{
    for (size_t j = 0; j < w->inputs.n; j++) {
        Step *dep = runner__graph_step_get(r, w->inputs.v[j]);
        if (!dep) {
            WalkNode *in = map_get(nodes, w->inputs.v[j]);
            if (in && in->status == NODE_SUBSTITUTABLE &&
                !map_get(r->g.finished_drvs, in->drv_path))
                dep = placeholder_new(r, in);
        }
        if (dep && dep != s && dep->state != STEP_DONE && dep->state != STEP_FAILED)
            runner__graph_add_dep(r, s, dep);
    }
}

/* The builds to attach and those to detach in one locked section. */
typedef struct Attach {
    const RdbBuildRow **rows; /* builds to attach, with their top drvs */
    const char **tops;
    size_t n;
    size_t *detach; /* attached builds failing now (indices in the chunk); 0 after
                       attach_builds for one that had ended meanwhile */
    const WalkNode **detach_bad;
    int *detach_refuse;
    size_t n_detach;
} Attach;

/* One locked section: the attached builds in a->detach leave the graph; steps for the
 * needed nodes of the live builds' closures (marked `live`) that have none yet, with
 * their deps; a STEP_SUBSTITUTING step of a failed substitution that no live build needs
 * any more leaves the graph with what waits for it; then the builds of `a` on top of
 * their top steps. */
static void attach_builds(Runner *r, Chunk *ch, Attach *a, uint32_t live)
{
    PtrVec fresh = {0}, created = {0};
    size_t it = 0;
    const char *key;
    void *val;
    int64_t now = util_time_now();

    runner__lock(r);
    for (size_t k = 0; k < a->n_detach; k++) {
        Build *b = runner__graph_build_get(r, ch->rows[a->detach[k]].id);
        if (!b) {
            a->detach_bad[k] = NULL; /* it ended meanwhile */
            continue;
        }
        b->finished = 1;
        runner__graph_build_forget(r, b);
    }
    if (a->n_detach)
        runner__workers_cancel_unneeded(r);
    while (map_next(ch->nodes, &it, &key, &val)) {
        WalkNode *w = val;
        Step *s;
        if (w->status != NODE_NEEDED || w->stepped)
            continue;
        if (w->mark != live) {
            s = runner__graph_step_get(r, w->drv_path);
            if (s && w->placeholder && s->state == STEP_SUBSTITUTING) {
                /* built instead, but no build of the chunk needs it any more */
                runner__graph_fail_with_rdeps(r, s);
                r->pass_again = 1; /* any other build that waited is read again */
                w->stepped = 1;
            }
            continue;
        }
        w->stepped = 1;
        s = step_for(r, w);
        if (!s)
            continue;
        ptrvec_push(&fresh, w);
        ptrvec_push(&created, s);
    }
    for (uint32_t i = 0; i < fresh.n; i++)
        step_deps(r, ch->nodes, fresh.v[i], created.v[i]);
    for (size_t i = 0; i < a->n; i++) {
        const RdbBuildRow *row = a->rows[i];
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
        top = runner__graph_step_get(r, a->tops[i]);
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
        if (s->state == STEP_WAITING && s->n_deps_left == 0) {
            if (s->after > now && !s->two_phase) {
                runner__step_retry_at(r, s, s->after);
            } else {
                runner__graph_step_ready(r, s);
            }
        }
    }
    atomic_fetch_add(&r->stats.builds_read, a->n);
    runner__unlock(r);
    ptrvec_dispose(&fresh);
    ptrvec_dispose(&created);
}

/* Per build of the chunk not decided yet, in order: a top level being substituted (the
 * build waits), a failure in its closure, a cached success, or attach; per attached
 * build, when the chunk has bad or content-addressed nodes (a failed substitution may
 * have led its closure to one): a failure.  Then the attach (attach_builds), and the
 * failures of the attached builds that left the graph.  Returns the mark of the live
 * builds' closures (attached or waiting). */
static uint32_t settle(Runner *r, Db *db, Chunk *ch)
{
    Attach a = {0};
    uint32_t live;
    int check_attached = ch->any_bad || (ch->any_ca && !r->ca_enabled);
    a.rows = xcalloc(ch->n + 1, sizeof *a.rows);
    a.tops = xcalloc(ch->n + 1, sizeof *a.tops);
    a.detach = xcalloc(ch->n + 1, sizeof *a.detach);
    a.detach_bad = xcalloc(ch->n + 1, sizeof *a.detach_bad);
    a.detach_refuse = xcalloc(ch->n + 1, sizeof *a.detach_refuse);
    for (size_t i = 0; i < ch->n; i++) {
        uint8_t st = ch->state[i];
        WalkNode *top = ch->tops[i], *bad;
        int refuse;
        if (st == BUILD_SKIP || st == BUILD_ENDED || (st == BUILD_ATTACHED && !check_attached))
            continue;
        if (st != BUILD_ATTACHED && top->status == NODE_SUBSTITUTABLE) {
            ch->state[i] = BUILD_WAITING;
            continue;
        }
        bad = closure_bad(r, ch, i, &refuse);
        if (bad && st == BUILD_ATTACHED) {
            a.detach[a.n_detach] = i;
            a.detach_bad[a.n_detach] = bad;
            a.detach_refuse[a.n_detach++] = refuse;
            ch->state[i] = BUILD_ENDED;
        } else if (bad) {
            end_failed(r, db, ch, i, bad, refuse);
        } else if (st == BUILD_ATTACHED) {
            continue;
        } else if (top->status == NODE_AVAILABLE) {
            Err be = {0};
            if (runner__finish_cached_build(r, db, &ch->rows[i], top->drv_path, &top->out_names,
                                            &top->out_paths, &top->found_paths, &be) < 0)
                log_error("build %" PRId64 ": %s", ch->rows[i].id, be.msg);
            ch->state[i] = BUILD_ENDED;
        } else {
            a.rows[a.n] = &ch->rows[i];
            a.tops[a.n++] = top->drv_path;
            ch->state[i] = BUILD_ATTACHED;
        }
    }
    /* steps only for what the live builds need */
    live = ++ch->mark;
    for (size_t i = 0; i < ch->n; i++)
        if (ch->state[i] == BUILD_ATTACHED || ch->state[i] == BUILD_WAITING)
            closure_mark(ch->nodes, ch->tops[i], live);
    attach_builds(r, ch, &a, live);
    for (size_t k = 0; k < a.n_detach; k++)
        if (a.detach_bad[k])
            end_failed(r, db, ch, a.detach[k], a.detach_bad[k], a.detach_refuse[k]);
    free(a.rows);
    free(a.tops);
    free(a.detach);
    free(a.detach_bad);
    free(a.detach_refuse);
    return live;
}

/* ---------------------------------------------------------------- substitutions */

/* The nodes waiting to be substituted that a live build needs (marked `live`) go to the
 * pool; one that has someone else's step meanwhile, or finished, is left to that (and
 * the builds are settled again). */
static void submit_pending(Runner *r, Chunk *ch, uint32_t live)
{
    PtrVec go = {0};
    uint32_t kept = 0;
    runner__lock(r);
    for (uint32_t i = 0; i < ch->pending.n; i++) {
        WalkNode *w = ch->pending.v[i];
        Step *s;
        if (w->status != NODE_SUBSTITUTABLE)
            continue;
        if (w->mark != live) {
            ch->pending.v[kept++] = w; /* a failed substitution may make it needed */
            continue;
        }
        s = runner__graph_step_get(r, w->drv_path);
        if ((s && !w->placeholder) || map_get(r->g.finished_drvs, w->drv_path)) {
            w->status = NODE_EXISTING;
            ch->again = 1;
            continue;
        }
        w->submitted = 1;
        w->sub_job.drv_path = w->drv_path;
        w->sub_job.paths = w->out_paths.v;
        w->sub_job.n = w->out_paths.n;
        ptrvec_push(&go, &w->sub_job);
    }
    ch->pending.n = kept;
    runner__unlock(r);
    if (go.n) {
        if (!ch->pool)
            ch->pool = runner__subst_pool_new(r);
        runner__subst_pool_submit(ch->pool, (RunnerSubstJob *const *)go.v, go.n);
    }
    ptrvec_dispose(&go);
}

/* Jobs that ended: the substituted nodes are available (and remembered), their type-1
 * rows written, then their STEP_SUBSTITUTING steps done (what waits for them runs);
 * the others are built instead: their inputs are walked next. */
static int take_results(Runner *r, Db *db, Chunk *ch, const PtrVec *done, Err *e)
{
    PtrVec ok = {0};
    int rc;
    for (uint32_t i = 0; i < done->n; i++) {
        RunnerSubstJob *j = done->v[i];
        WalkNode *w = (WalkNode *)(void *)((char *)j - offsetof(WalkNode, sub_job));
        if (j->ok) {
            w->status = NODE_AVAILABLE;
            w->substituted = 1;
            runner__subst_remember(r, j);
            ptrvec_push(&ok, w);
        } else {
            w->status = NODE_NEEDED;
            expand_inputs(ch->nodes, w, &ch->frontier);
        }
    }
    rc = write_rows(r, db, ch, &ok, e);
    if (rc == 0 && ok.n) /* tests: the rows written, the steps that wait not woken yet */
        runner__crash_point(r, "after-substitution-rows");
    if (rc == 0) {
        runner__lock(r);
        for (uint32_t i = 0; i < ok.n; i++) {
            WalkNode *w = ok.v[i];
            Step *s = runner__graph_step_get(r, w->drv_path);
            if (s && w->placeholder && s->state == STEP_SUBSTITUTING)
                runner__graph_step_succeeded(r, s);
        }
        runner__unlock(r);
    }
    ptrvec_dispose(&ok);
    return rc;
}

/* After an error (or when stopping): the chunk's STEP_SUBSTITUTING steps leave the graph
 * with what waits for them; their builds are read again by a later pass. */
static void drop_placeholders(Runner *r, Chunk *ch)
{
    size_t it = 0;
    const char *key;
    void *val;
    runner__lock(r);
    while (map_next(ch->nodes, &it, &key, &val)) {
        WalkNode *w = val;
        Step *s = w->placeholder ? runner__graph_step_get(r, w->drv_path) : NULL;
        if (s && s->state == STEP_SUBSTITUTING) {
            runner__graph_fail_with_rdeps(r, s);
            r->pass_again = 1;
        }
    }
    runner__unlock(r);
}

/* Walk the closures of rows[0..n) together, attach them to the graph, and substitute
 * what the caches have while the rest builds. */
static int ingest_chunk(Runner *r, Db *db, StoreConn *c, const RdbBuildRow *rows, size_t n,
                        uint64_t *questions, Err *e)
{
    Chunk ch = {.rows = rows, .n = n, .questions = questions};
    PtrVec done = {0};
    int rc;
    ch.nodes = map_new(node_free);
    ch.tops = xcalloc(n, sizeof *ch.tops);
    ch.state = xcalloc(n, sizeof *ch.state);
    chunk_tops(r, &ch);
    rc = walk(r, db, c, &ch, e);
    while (rc == 0 && !atomic_load(&r->stopping)) {
        uint32_t live;
        ch.again = 0;
        rc = record_known(r, db, &ch, e);
        if (rc < 0)
            break;
        live = settle(r, db, &ch);
        submit_pending(r, &ch, live);
        if (ch.again)
            continue;
        done.n = 0;
        if (!ch.pool || !runner__subst_pool_wait(ch.pool, &done))
            break; /* nothing in flight: every build attached or ended */
        rc = take_results(r, db, &ch, &done, e);
        if (rc == 0)
            rc = walk(r, db, c, &ch, e);
    }
    if (ch.pool) {
        while (runner__subst_pool_wait(ch.pool, &done))
            done.n = 0;
        runner__subst_pool_free(ch.pool);
    }
    drop_placeholders(r, &ch);
    runner__lock(r);
    for (size_t i = 0; i < n; i++)
        if (ch.state[i] == BUILD_WAITING || (rc < 0 && ch.state[i] == BUILD_WALKED))
            r->pass_again = 1; /* not attached: read again */
    runner__unlock(r);
    ptrvec_dispose(&done);
    ptrvec_dispose(&ch.frontier);
    ptrvec_dispose(&ch.level);
    ptrvec_dispose(&ch.pending);
    free(ch.tops);
    free(ch.state);
    map_free(ch.nodes);
    return rc;
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
    uint64_t questions = 0; /* this pass's own (resolutions ask too, meanwhile) */
    int rc;

    rc = load_attempts(r, db, e);
    if (rc < 0)
        return rc;
    rc = runner__rdb_load_unfinished(db, &rows, &n, e);
    if (rc < 0)
        return rc;
    if (r->opt.build_one)
        keep_only_builds(r, rows, &n);
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
        rc = ingest_chunk(r, db, c, &rows[i], k, &questions, &be);
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
    atomic_store(&r->stats.ingest_time_ms, util_now_ms() - t0);
    atomic_fetch_add(&r->stats.ingest_passes, 1);
    log_debug("queue pass: %zu builds read in %llu ms, %llu levels walked, %llu substitution "
              "questions",
              done, (unsigned long long)(util_now_ms() - t0),
              (unsigned long long)(atomic_load(&r->stats.ingest_levels) - levels0),
              (unsigned long long)questions);
    if (rc >= 0 && atomic_exchange(&r->cache_retry, 0))
        rc = err_set(e, ERR_IO, "builds found built could not be published to the binary cache");
    return rc < 0 ? rc : (int)done;
}
