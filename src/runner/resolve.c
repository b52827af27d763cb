/*
 * resolve.c: phase two of content-addressed derivations (hydra-behaviour §4, without
 * the defects of §4.14 and §10).
 *
 * A floating-CA or deferred drv P whose deps are all done is resolved before it is
 * dispatched: every input (A, out) is replaced by its recorded output path (the DB,
 * following status-13 rows; then the local store's realisations), giving P'.
 *
 *   P' = P    P is built as any step.
 *   P' != P   P' is written into the local store and GC-rooted; then one transaction
 *             gives each unfinished build whose top level is P (or, when none, the
 *             lowest-id build needing P) one status-13 row for P, unless it already
 *             holds one (a build keeps its first resolution for good).  P's rdeps and
 *             builds move onto the one step for P' (shared by every build resolving to
 *             it).  If P' is already built, those builds finish at once as cached.
 *
 * An input whose output is gone becomes a step again (as many rebuilds as P has input
 * drvs, so each can be rebuilt once); when that is not possible P fails with status 3
 * and "cannot resolve P: no output 'OUT' of A".  A FailedPaths entry for P' makes a
 * cached failure.  With use-substitutes, P''s outputs not known yet are asked of the
 * caches through P''s realisations first: a miss (no cache has them) and a failed
 * substitution are counted apart, and either way P' is built.  Runs in the resolver
 * thread, never under the graph lock except for the short attach at the end.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/ca.h"
#include "runner/record.h"
#include "runner/fail.h"
#include "runner/graph.h"
#include "runner/hooks.h"
#include "runner/inputs.h"
#include "runner/lock.h"
#include "runner/rdb.h"
#include "runner/requeue.h"
#include "runner/resolve.h"
#include "runner/roots.h"
#include "runner/services.h"
#include "runner/step.h"

/* The resolution a build already holds for P whose drv is still in the store. */
static char *existing_resolution(Db *db, const int64_t *targets, size_t n, const char *drv, Err *e)
{
    for (size_t i = 0; i < n; i++) {
        char *have = NULL;
        if (runner__rdb_build_resolution(db, targets[i], drv, &have, e) < 0)
            return NULL;
        if (have && access(have, F_OK) == 0)
            return have;
        free(have);
    }
    return NULL;
}

/* Write P' into the local store and root it before any row mentions it. */
static int store_resolved(Runner *r, Db *db, const NixDrv *rd, const char *expect, Err *e)
{
    Buf text;
    StoreConn *c = NULL;
    char *got = NULL;
    int rc;
    buf_init(&text, LIMIT_DRV_FILE_SIZE);
    rc = nix_drv_print(rd, &text);
    if (rc < 0) {
        rc = err_set(e, rc, "cannot print the resolved derivation %s", expect);
        goto out;
    }
    rc = store_machine_query_get(r->local_store, &c, e);
    if (rc < 0)
        goto out;
    {
        char *name = xasprintf("%s.drv", rd->name);
        rc = store_add_text_to_store(c, name, buf_cstr(&text), text.len,
                                     (const char *const *)rd->srcs, rd->n_srcs, &got, e);
        free(name);
    }
    if (rc == 0 && strcmp(got, expect) != 0)
        rc = err_set(e, ERR_CONFLICT,
                     "the store put the resolved derivation at '%s', expected '%s'", got, expect);
    runner__crash_point(r, "before-resolved-root");
    if (rc == 0)
        rc = runner__root_path(r, db, c, expect, "resolved", 0, e);
    store_machine_query_put(r->local_store, c);
out:
    free(got);
    buf_dispose(&text);
    return rc;
}

/* 1 when Nix named every output of P' as one no cache has: by its realisation id or
 * by its statically known path (a resolved input-addressed drv). */
static int resolved_missed(Runner *r, const NixDrv *rd, const StrVec *misses)
{
    char **ids = NULL;
    Err e = {0};
    int rc, all = rd->n_outputs > 0;
    pthread_mutex_lock(&r->hash_lock);
    rc = nix_drv_realisation_ids(r->hash_cache, rd, &ids, &e);
    pthread_mutex_unlock(&r->hash_lock);
    if (rc < 0)
        return 0;
    for (size_t i = 0; i < rd->n_outputs; i++) {
        const char *path = rd->outputs[i].path;
        if (!strvec_contains(misses, ids[i]) && !(path[0] && strvec_contains(misses, path)))
            all = 0;
        free(ids[i]);
    }
    free(ids);
    return all;
}

/* use-substitutes: P''s outputs asked of the substituters through P''s realisations (Nix
 * substitutes what it finds, builds nothing).  1 when they came.  When they did not, P'
 * is built: a miss when no cache has them (counted), else a failed substitution
 * (counted and logged with Nix's reasons). */
static int resolved_substitute(Runner *r, StoreConn *c, const NixDrv *rd, const char *rpath)
{
    Buf b;
    Err e = {0};
    StrVec misses;
    char *derived;
    int rc;
    buf_init(&b, LIMIT_BUF_DEFAULT);
    buf_printf(&b, "%s!", rpath);
    for (size_t i = 0; i < rd->n_outputs; i++)
        buf_printf(&b, "%s%s", i ? "," : "", rd->outputs[i].name);
    derived = buf_take(&b, NULL);
    strvec_init(&misses);
    atomic_fetch_add(&r->stats.subst_queries, 1);
    rc = store_substitute_outputs(c, (const char *const *)&derived, 1, &misses, &e);
    if (rc == 0) {
        atomic_fetch_add(&r->stats.subst_done, 1);
        log_info("substituted %s", derived);
    } else if (resolved_missed(r, rd, &misses)) {
        atomic_fetch_add(&r->stats.subst_misses, 1);
        log_debug("no cache has %s (content-addressed lookup): building it", rpath);
    } else {
        atomic_fetch_add(&r->stats.subst_failed, 1);
        log_warn("substituting %s failed, building it instead: %s", derived, e.msg);
    }
    strvec_dispose(&misses);
    free(derived);
    return rc == 0;
}

/* Output paths recorded and valid for P' (NULL when not all are). */
static int resolved_outputs(Runner *r, Db *db, const NixDrv *rd, const char *rpath, StrVec *names,
                            StrVec *paths, Err *e)
{
    StoreConn *c = NULL;
    StrVec dbn, dbp, valid;
    char **ids = NULL;
    int rc, all = 1, tried = 0;
    strvec_init(&dbn);
    strvec_init(&dbp);
    strvec_init(&valid);
    /* recorded in the DB, else statically known (a filled deferred drv), else the local
     * store's realisation (built by Nix outside sluice, or before a crash) */
    rc = runner__rdb_recorded_outputs(db, rpath, &dbn, &dbp, e);
    if (rc < 0)
        goto out;
    rc = store_machine_query_get(r->local_store, &c, e);
    if (rc < 0)
        goto out;
again:
    for (size_t i = 0; i < rd->n_outputs && all; i++) {
        const char *name = rd->outputs[i].name;
        char *found = NULL;
        for (size_t j = 0; j < dbn.n && !found; j++)
            if (strcmp(dbn.v[j], name) == 0 && dbp.v[j][0])
                found = xstrdup(dbp.v[j]);
        if (!found && rd->outputs[i].path[0])
            found = xstrdup(rd->outputs[i].path);
        if (!found) {
            char *base = NULL;
            if (!ids) {
                pthread_mutex_lock(&r->hash_lock);
                rc = nix_drv_realisation_ids(r->hash_cache, rd, &ids, e);
                pthread_mutex_unlock(&r->hash_lock);
                if (rc < 0)
                    goto out;
            }
            rc = store_query_realisation(c, ids[i], &base, NULL, e);
            if (rc < 0)
                goto out;
            if (base)
                found = xasprintf("%s/%s", NIX_STORE_DIR, base);
            free(base);
        }
        if (!found) {
            all = 0;
            break;
        }
        strvec_push(names, name);
        strvec_push_take(paths, found);
    }
    if (all && paths->n) {
        rc = store_query_valid_paths(c, (const char *const *)paths->v, paths->n, &valid, e);
        if (rc < 0)
            goto out;
        for (size_t i = 0; i < paths->n; i++)
            if (!strvec_contains(&valid, paths->v[i]))
                all = 0;
    }
    if ((!all || !paths->n) && !tried && r->opt.use_substitutes && r->ca_enabled) {
        tried = 1;
        if (resolved_substitute(r, c, rd, rpath)) {
            strvec_dispose(names);
            strvec_dispose(paths);
            strvec_dispose(&valid);
            strvec_init(names);
            strvec_init(paths);
            strvec_init(&valid);
            all = 1;
            goto again;
        }
    }
    rc = all && paths->n ? 1 : 0;
out:
    if (c)
        store_machine_query_put(r->local_store, c);
    if (ids) {
        for (size_t i = 0; i < rd->n_outputs; i++)
            free(ids[i]);
        free(ids);
    }
    strvec_dispose(&dbn);
    strvec_dispose(&dbp);
    strvec_dispose(&valid);
    return rc;
}

/* Resolve one step. */
/* What one resolution works on. */
typedef struct Resolution {
    const char *drv_path; /* P */
    NixDrv *d;            /* P */
    int64_t *targets;     /* builds that get the status-13 row */
    size_t n_targets;
    int requeues; /* P's inputs rebuilt already */
    NixDrv *rd;   /* P' */
    char *rpath;  /* P' (full path) */
} Resolution;

/* The builds that get the status-13 row: P's own builds, else the lowest build that
 * depends on P.  0, or -1 when P is not waiting for its resolution. */
static int resolution_targets(Runner *r, Resolution *res)
{
    Step *s;
    runner__lock(r);
    s = runner__graph_step_get(r, res->drv_path);
    if (!s || s->state != STEP_RESOLVING) {
        runner__unlock(r);
        return -1;
    }
    res->requeues = s->requeues;
    if (s->builds.n) {
        res->targets = xcalloc(s->builds.n, sizeof *res->targets);
        for (uint32_t i = 0; i < s->builds.n; i++)
            res->targets[res->n_targets++] = ((Build *)s->builds.v[i])->id;
    } else {
        PtrVec deps = {0};
        int64_t low = INT64_MAX;
        runner__graph_dependent_builds(r, s, &deps);
        for (uint32_t i = 0; i < deps.n; i++)
            if (((Build *)deps.v[i])->id < low)
                low = ((Build *)deps.v[i])->id;
        ptrvec_dispose(&deps);
        if (low != INT64_MAX) {
            res->targets = xcalloc(1, sizeof *res->targets);
            res->targets[res->n_targets++] = low;
        }
    }
    runner__unlock(r);
    return 0;
}

/* Nobody needs P any more: it leaves the graph. */
static void drop_unneeded(Runner *r, const char *drv_path)
{
    Step *s;
    runner__lock(r);
    s = runner__graph_step_get(r, drv_path);
    if (s && s->state == STEP_RESOLVING && !s->builds.n && !s->rdeps.n) {
        runner__step_move(r, s, STEP_FAILED);
        runner__graph_step_forget(r, s);
    }
    runner__unlock(r);
}

/* A resolution a target build holds already (a build keeps its first resolution for
 * good: restarts, Hydra's "restart"), when its drv is still in the store. */
static void reuse_resolution(Runner *r, Db *db, Resolution *res)
{
    Err e = {0};
    char *have = existing_resolution(db, res->targets, res->n_targets, res->drv_path, &e);
    if (!have)
        return;
    if (nix_drv_read(have, &res->rd, &e) == 0) {
        res->rpath = have;
        atomic_fetch_add(&r->stats.ca_resolved_reused, 1);
    } else {
        free(have);
    }
}

/* P's inputs' recorded outputs replace its inputs: P' (res->rd, res->rpath).  0; 1 when
 * P was failed or requeued instead (an input's output is missing, P cannot be
 * resolved); -1 on a transient error (e). */
static int resolve_inputs(Runner *r, Db *db, Resolution *res, Err *e)
{
    StoreConn *local = NULL;
    NixInputPath *inputs = NULL;
    size_t n_inputs = 0;
    char *missing = NULL, *missing_out = NULL, *msg = NULL;
    int rc;
    runner__pause_point(r, "before-resolve", res->drv_path);
    if (store_machine_query_get(r->local_store, &local, e) < 0)
        return -1;
    rc =
        runner__collect_inputs(r, db, local, res->d, &inputs, &n_inputs, &missing, &missing_out, e);
    store_machine_query_put(r->local_store, local);
    if (rc < 0)
        goto out;
    if (missing) {
        msg = xasprintf("cannot resolve %s: no output '%s' of %s", res->drv_path, missing_out,
                        missing);
        /* one rebuild per input: the next attempt may find another input gone */
        if ((size_t)res->requeues >= res->d->n_inputs || access(missing, F_OK) != 0) {
            atomic_fetch_add(&r->stats.ca_resolve_failed, 1);
            runner__fail_step(r, db, res->drv_path, DB_STATUS_ABORTED, msg, 0);
        } else {
            log_warn("%s: rebuilding the input first", msg);
            runner__requeue_resolving(r, db, res->drv_path, missing);
        }
        rc = 1;
        goto out;
    }
    pthread_mutex_lock(&r->hash_lock);
    rc = nix_drv_resolve(r->hash_cache, res->d, inputs, n_inputs, &res->rd, e);
    pthread_mutex_unlock(&r->hash_lock);
    if (rc < 0) {
        msg = xasprintf("cannot resolve %s: %s", res->drv_path, e->msg);
        atomic_fetch_add(&r->stats.ca_resolve_failed, 1);
        runner__fail_step(r, db, res->drv_path, DB_STATUS_ABORTED, msg, 0);
        rc = 1;
        goto out;
    }
    res->rpath = nix_drv_store_path(res->rd, res->d->name);
out:
    runner__inputs_free(inputs, n_inputs);
    free(missing);
    free(missing_out);
    free(msg);
    return rc;
}

/* P' = P: P itself is built (unless it failed before). */
static void build_itself(Runner *r, Db *db, const char *drv_path, char *rpath)
{
    Err e = {0};
    Step *s;
    if (runner__rdb_failed_paths_any(db, &rpath, 1, &e) == 1) {
        runner__fail_step(r, db, drv_path, DB_STATUS_CACHED_FAILURE, "cached failure", 0);
        return;
    }
    runner__lock(r);
    s = runner__graph_step_get(r, drv_path);
    if (s && s->state == STEP_RESOLVING) {
        s->is_resolved_drv = 1; /* no further resolution */
        runner__graph_step_ready(r, s);
    }
    runner__unlock(r);
}

/* P' != P: P' in the store, the status-13 rows (before the FailedPaths check, as Hydra
 * writes them before it creates P''s step: a build failed by a cached failure of P'
 * then holds P', and restarting it clears P''s FailedPaths entry), then P''s step
 * (attached, or P's builds finished at once when P' was built before).  0, or -1 on a
 * transient error (e). */
static int resolved_elsewhere(Runner *r, Db *db, Resolution *res, Err *e)
{
    StrVec names, paths, done_names, done_paths;
    RecordResolution t = {0};
    int rc;
    strvec_init(&names);
    strvec_init(&paths);
    strvec_init(&done_names);
    strvec_init(&done_paths);
    for (size_t i = 0; i < res->d->n_outputs; i++) {
        strvec_push(&names, res->d->outputs[i].name);
        if (res->d->outputs[i].path[0])
            strvec_push(&paths, res->d->outputs[i].path);
        else
            strvec_push_take(&paths, NULL);
    }
    rc = store_resolved(r, db, res->rd, res->rpath, e);
    if (rc < 0)
        goto out;
    t = (RecordResolution){res->drv_path, res->d->platform, res->rpath,
                           res->targets,  res->n_targets,   names.v,
                           paths.v,       names.n,          0};
    rc = runner__record_resolution(db, &t, e);
    if (rc < 0)
        goto out;
    runner__crash_point(r, "after-resolved-row");
    atomic_fetch_add(&r->stats.ca_resolved, 1);
    log_info("resolved %s -> %s", res->drv_path, res->rpath);
    rc = runner__rdb_failed_paths_any(db, &res->rpath, 1, e);
    if (rc < 0)
        goto out;
    if (rc == 1) {
        runner__fail_step(r, db, res->drv_path, DB_STATUS_CACHED_FAILURE,
                          "cached failure of the resolved derivation", 0);
        rc = 0;
        goto out;
    }
    rc = resolved_outputs(r, db, res->rd, res->rpath, &done_names, &done_paths, e);
    if (rc < 0)
        goto out;
    runner__attach_resolved(r, db, res->drv_path, res->rpath, res->rd, rc == 1, &done_names,
                            &done_paths);
    rc = 0;
out:
    for (size_t i = 0; i < paths.n; i++)
        free(paths.v[i]);
    free(paths.v);
    strvec_dispose(&names);
    strvec_dispose(&done_names);
    strvec_dispose(&done_paths);
    return rc;
}

/* A transient error: P tries again a little later. */
static void retry_later(Runner *r, const char *drv_path, const Err *e)
{
    Step *s;
    log_warn("resolving %s: %s (will try again)", drv_path, e->msg);
    runner__lock(r);
    s = runner__graph_step_get(r, drv_path);
    if (s && s->state == STEP_RESOLVING)
        runner__step_retry_at(r, s, util_time_now() + 5);
    runner__unlock(r);
}

static void resolve_one(Runner *r, Db *db, const char *drv_path)
{
    Resolution res = {.drv_path = drv_path};
    Err e = {0};
    int rc = 0;
    if (resolution_targets(r, &res) < 0)
        return;
    if (res.n_targets == 0) {
        drop_unneeded(r, drv_path);
        goto out;
    }
    if (nix_drv_read(drv_path, &res.d, &e) < 0) {
        runner__fail_step(r, db, drv_path, DB_STATUS_ABORTED, e.msg, 0);
        goto out;
    }
    reuse_resolution(r, db, &res);
    if (!res.rd)
        rc = resolve_inputs(r, db, &res, &e);
    if (rc == 0 && strcmp(res.rpath, drv_path) == 0)
        build_itself(r, db, drv_path, res.rpath);
    else if (rc == 0)
        rc = resolved_elsewhere(r, db, &res, &e);
    if (rc < 0)
        retry_later(r, drv_path, &e);
out:
    free(res.targets);
    free(res.rpath);
    nix_drv_free(res.d);
    nix_drv_free(res.rd);
}

void *runner__resolver_main(void *arg)
{
    Runner *r = arg;
    Db *db = NULL;
    Err e = {0};
    while (!atomic_load(&r->stopping)) {
        char *drv = NULL;
        runner__lock(r);
        while (!r->g.to_resolve.n && !atomic_load(&r->stopping))
            runner__cond_wait(r, NULL);
        if (r->g.to_resolve.n) {
            Step *s = r->g.to_resolve.v[0];
            drv = xstrdup(s->drv_path);
        }
        runner__unlock(r);
        if (!drv)
            continue;
        if (!db && runner__db_get(r, &db, &e) < 0) {
            log_error("resolver: %s", e.msg);
            free(drv);
            sleep(1);
            continue;
        }
        resolve_one(r, db, drv);
        /* make sure a step that was not handled does not block the queue */
        runner__lock(r);
        {
            Step *s = runner__graph_step_get(r, drv);
            if (s && s->state == STEP_RESOLVING && r->g.to_resolve.n && r->g.to_resolve.v[0] == s) {
                ptrvec_remove_ordered(&r->g.to_resolve, s); /* to the back of the queue */
                ptrvec_push(&r->g.to_resolve, s);
            }
        }
        runner__unlock(r);
        free(drv);
    }
    if (db)
        runner__db_put(r, db);
    return NULL;
}
