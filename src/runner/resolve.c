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
 * An input whose output is gone becomes a step again (one rebuild); when that is not
 * possible P fails with status 3 and "cannot resolve P: no output 'OUT' of A".  A
 * FailedPaths entry for P' makes a cached failure.  Runs in the resolver thread, never
 * under the graph lock except for the short attach at the end.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/ca.h"
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

typedef struct ResolveTx {
    const char *drv_path; /* P */
    const char *system;
    const char *resolved;   /* P' (full path) */
    const int64_t *targets; /* builds that get a status-13 row */
    size_t n_targets;
    char *const *out_names; /* P's outputs */
    char *const *out_paths; /* static paths or NULL */
    size_t n_outputs;
    int written; /* OUT */
} ResolveTx;

static int resolve_tx(Db *db, void *payload, Err *e)
{
    ResolveTx *t = payload;
    const char *base = nix_store_path_base(t->resolved);
    int64_t now = util_time_now();
    int rc = 0;
    t->written = 0;
    for (size_t i = 0; i < t->n_targets; i++) {
        char *have = NULL;
        RdbStepRow row = {0};
        int32_t nr;
        rc = runner__rdb_build_unfinished(db, t->targets[i], e);
        if (rc < 0)
            return rc;
        if (rc == 0)
            continue;
        rc = runner__rdb_build_resolution(db, t->targets[i], t->drv_path, &have, e);
        if (rc < 0)
            return rc;
        if (have) {
            free(have);
            continue;
        }
        row.build = t->targets[i];
        row.type = 0;
        row.drv_path = t->drv_path;
        row.start_time = now;
        row.stop_time = now;
        row.system = t->system;
        row.status = 13;
        row.machine = "";
        row.resolved_drv_path = base;
        row.out_names = t->out_names;
        row.out_paths = t->out_paths;
        row.n_outputs = t->n_outputs;
        rc = runner__rdb_insert_step(db, &row, &nr, e);
        if (rc < 0)
            return rc;
        t->written++;
    }
    return 0;
}

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

/* use-substitutes: P''s outputs asked of the substituters through P''s realisations (Nix
 * substitutes what it finds, builds nothing).  1 when they came. */
static int resolved_substitute(Runner *r, StoreConn *c, const NixDrv *rd, const char *rpath)
{
    Buf b;
    Err e = {0};
    char *derived;
    int rc;
    buf_init(&b, LIMIT_BUF_DEFAULT);
    buf_printf(&b, "%s!", rpath);
    for (size_t i = 0; i < rd->n_outputs; i++)
        buf_printf(&b, "%s%s", i ? "," : "", rd->outputs[i].name);
    derived = buf_take(&b, NULL);
    atomic_fetch_add(&r->stats.subst_queries, 1);
    rc = store_substitute_outputs(c, (const char *const *)&derived, 1, &e);
    if (rc == 0) {
        atomic_fetch_add(&r->stats.subst_done, 1);
        log_info("substituted %s", derived);
    } else {
        log_debug("substituting %s: %s", derived, e.msg);
    }
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
static void resolve_one(Runner *r, Db *db, const char *drv_path)
{
    NixDrv *d = NULL, *rd = NULL;
    NixInputPath *inputs = NULL;
    size_t n_inputs = 0;
    char *missing = NULL, *missing_out = NULL, *rpath = NULL, *have = NULL;
    int64_t *targets = NULL;
    size_t n_targets = 0;
    StrVec out_names, out_paths, done_names, done_paths;
    StoreConn *local = NULL;
    Err e = {0};
    int rc, requeues = 0, prebuilt = 0;
    Step *s;

    strvec_init(&out_names);
    strvec_init(&out_paths);
    strvec_init(&done_names);
    strvec_init(&done_paths);

    /* which builds get the status-13 row */
    runner__lock(r);
    s = runner__graph_step_get(r, drv_path);
    if (!s || s->state != STEP_RESOLVING) {
        runner__unlock(r);
        return;
    }
    requeues = s->requeues;
    if (s->builds.n) {
        targets = xcalloc(s->builds.n, sizeof *targets);
        for (uint32_t i = 0; i < s->builds.n; i++)
            targets[n_targets++] = ((Build *)s->builds.v[i])->id;
    } else {
        PtrVec deps = {0};
        int64_t low = INT64_MAX;
        runner__graph_dependent_builds(r, s, &deps);
        for (uint32_t i = 0; i < deps.n; i++)
            if (((Build *)deps.v[i])->id < low)
                low = ((Build *)deps.v[i])->id;
        ptrvec_dispose(&deps);
        if (low != INT64_MAX) {
            targets = xcalloc(1, sizeof *targets);
            targets[n_targets++] = low;
        }
    }
    runner__unlock(r);
    if (n_targets == 0) {
        /* nobody needs it any more */
        runner__lock(r);
        s = runner__graph_step_get(r, drv_path);
        if (s && s->state == STEP_RESOLVING && !s->builds.n && !s->rdeps.n) {
            runner__step_move(r, s, STEP_FAILED);
            runner__graph_step_forget(r, s);
        }
        runner__unlock(r);
        goto out;
    }

    rc = nix_drv_read(drv_path, &d, &e);
    if (rc < 0) {
        runner__fail_step(r, db, drv_path, 3, e.msg, 0);
        goto out;
    }
    for (size_t i = 0; i < d->n_outputs; i++) {
        strvec_push(&out_names, d->outputs[i].name);
        if (d->outputs[i].path[0])
            strvec_push(&out_paths, d->outputs[i].path);
        else
            strvec_push_take(&out_paths, NULL);
    }

    /* a build keeps its first resolution for good (restarts, Hydra's "restart") */
    have = existing_resolution(db, targets, n_targets, drv_path, &e);
    if (have) {
        Buf b;
        buf_init(&b, LIMIT_DRV_FILE_SIZE);
        rc = nix_drv_read(have, &rd, &e);
        buf_dispose(&b);
        if (rc == 0) {
            rpath = have;
            have = NULL;
            atomic_fetch_add(&r->stats.ca_resolved_reused, 1);
        } else {
            free(have);
            have = NULL;
        }
    }
    if (!rd) {
        runner__pause_point(r, "before-resolve", drv_path);
        rc = store_machine_query_get(r->local_store, &local, &e);
        if (rc < 0)
            goto transient;
        rc =
            runner__collect_inputs(r, db, local, d, &inputs, &n_inputs, &missing, &missing_out, &e);
        store_machine_query_put(r->local_store, local);
        local = NULL;
        if (rc < 0)
            goto transient;
        if (missing) {
            char *msg = xasprintf("cannot resolve %s: no output '%s' of %s", drv_path, missing_out,
                                  missing);
            if (requeues >= 1 || access(missing, F_OK) != 0) {
                atomic_fetch_add(&r->stats.ca_resolve_failed, 1);
                runner__fail_step(r, db, drv_path, 3, msg, 0);
            } else {
                log_warn("%s: rebuilding the input first", msg);
                runner__requeue_resolving(r, db, drv_path, missing);
            }
            free(msg);
            goto out;
        }
        pthread_mutex_lock(&r->hash_lock);
        rc = nix_drv_resolve(r->hash_cache, d, inputs, n_inputs, &rd, &e);
        pthread_mutex_unlock(&r->hash_lock);
        if (rc < 0) {
            char *msg = xasprintf("cannot resolve %s: %s", drv_path, e.msg);
            atomic_fetch_add(&r->stats.ca_resolve_failed, 1);
            runner__fail_step(r, db, drv_path, 3, msg, 0);
            free(msg);
            goto out;
        }
        rpath = nix_drv_store_path(rd, d->name);
    }

    if (strcmp(rpath, drv_path) == 0) {
        /* P' = P: build P itself */
        rc = runner__rdb_failed_paths_any(db, &rpath, 1, &e);
        if (rc == 1) {
            runner__fail_step(r, db, drv_path, 8, "cached failure", 0);
            goto out;
        }
        runner__lock(r);
        s = runner__graph_step_get(r, drv_path);
        if (s && s->state == STEP_RESOLVING) {
            s->is_resolved_drv = 1; /* no further resolution */
            runner__graph_step_ready(r, s);
        }
        runner__unlock(r);
        goto out;
    }

    /* P' != P.  The status-13 rows come before the FailedPaths check (Hydra writes them
     * before it creates P''s step): a build failed by a cached failure of P' then holds
     * P', and restarting it clears P''s FailedPaths entry. */
    if (access(rpath, F_OK) != 0 || 1) {
        rc = store_resolved(r, db, rd, rpath, &e);
        if (rc < 0)
            goto transient;
    }
    {
        ResolveTx t = {drv_path,    d->platform, rpath,       targets, n_targets,
                       out_names.v, out_paths.v, out_names.n, 0};
        rc = db_tx(db, resolve_tx, &t, &e);
        if (rc < 0)
            goto transient;
    }
    runner__crash_point(r, "after-resolved-row");
    atomic_fetch_add(&r->stats.ca_resolved, 1);
    log_info("resolved %s -> %s", drv_path, rpath);
    rc = runner__rdb_failed_paths_any(db, &rpath, 1, &e);
    if (rc < 0)
        goto transient;
    if (rc == 1) {
        runner__fail_step(r, db, drv_path, 8, "cached failure of the resolved derivation", 0);
        goto out;
    }

    rc = resolved_outputs(r, db, rd, rpath, &done_names, &done_paths, &e);
    if (rc < 0)
        goto transient;
    prebuilt = rc == 1;
    runner__attach_resolved(r, db, drv_path, rpath, rd, prebuilt, &done_names, &done_paths);
    goto out;

transient:
    log_warn("resolving %s: %s (will try again)", drv_path, e.msg);
    runner__lock(r);
    s = runner__graph_step_get(r, drv_path);
    if (s && s->state == STEP_RESOLVING) {
        /* try again a little later */
        runner__step_retry_at(r, s, util_time_now() + 5);
    }
    runner__unlock(r);
out:
    runner__inputs_free(inputs, n_inputs);
    for (size_t i = 0; i < out_paths.n; i++)
        free(out_paths.v[i]);
    free(out_paths.v);
    strvec_dispose(&out_names);
    strvec_dispose(&done_names);
    strvec_dispose(&done_paths);
    free(missing);
    free(missing_out);
    free(rpath);
    free(have);
    free(targets);
    nix_drv_free(d);
    nix_drv_free(rd);
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
