/*
 * ca.c: the graph side of CA resolution and realisations.
 *
 *  - runner__attach_resolved: P's rdeps and builds move onto the one step for P'
 *    (created or joined); P leaves the graph.  Builds.drvPath never changes.  When P'
 *    is already built, P's builds finish at once as cached (with a type-1 row for P').
 *  - runner__register_realisations: after P' is built, its realisation and those of
 *    every P resolving to it go into the local store (dependentRealisations limited to
 *    input realisations present locally; missing ones registered first from the DB).
 *    A refusal is logged and counted, never fails the build: the DB stays the truth.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/ca.h"
#include "runner/graph.h"
#include "runner/inputs.h"
#include "runner/lock.h"
#include "runner/machines.h"
#include "runner/queue.h"
#include "runner/rdb.h"
#include "runner/results.h"
#include "runner/roots.h"
#include "runner/services.h"
#include "runner/step.h"

/* ---------------------------------------------------------------- attach P' */

typedef struct PrebuiltTx {
    const char *resolved; /* P' */
    const char *system;
    int64_t *builds; /* builds to finish (top level P) */
    size_t n_builds;
    int64_t row_build; /* when none: the build that records P''s outputs */
    char *const *names;
    char *const *paths;
    size_t n;
    const OutputFacts *facts;
    int64_t *finished; /* OUT */
    size_t n_finished;
} PrebuiltTx;

static int prebuilt_tx(Db *db, void *payload, Err *e)
{
    PrebuiltTx *t = payload;
    int64_t now = util_time_now();
    int rc = 0;
    t->n_finished = 0;
    if (!t->n_builds && t->row_build) {
        /* P is only a dependency: still record P''s outputs (type 1) so the steps
         * waiting for P find them */
        rc = runner__rdb_build_has_success(db, t->row_build, t->resolved, e);
        if (rc == 0) {
            RdbStepRow row = {0};
            int32_t nr;
            row.build = t->row_build;
            row.type = 1;
            row.drv_path = t->resolved;
            row.start_time = now;
            row.stop_time = now;
            row.system = t->system;
            row.status = 0;
            row.machine = "";
            row.out_names = t->names;
            row.out_paths = t->paths;
            row.n_outputs = t->n;
            rc = runner__rdb_insert_step(db, &row, &nr, e);
        }
        if (rc < 0)
            return rc;
        rc = 0;
    }
    for (size_t i = 0; i < t->n_builds; i++) {
        RdbBuildResult br = {0};
        rc = runner__rdb_build_has_success(db, t->builds[i], t->resolved, e);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            RdbStepRow row = {0};
            int32_t nr;
            row.build = t->builds[i];
            row.type = 1;
            row.drv_path = t->resolved;
            row.start_time = now;
            row.stop_time = now;
            row.system = t->system;
            row.status = 0;
            row.machine = "";
            row.out_names = t->names;
            row.out_paths = t->paths;
            row.n_outputs = t->n;
            rc = runner__rdb_insert_step(db, &row, &nr, e);
            if (rc < 0)
                return rc;
        }
        br.id = t->builds[i];
        br.status = t->facts->failed ? 6 : 0;
        br.start_time = now;
        br.stop_time = now;
        br.is_cached = 1;
        br.size = t->facts->size;
        br.closure_size = t->facts->closure_size;
        br.release_name = t->facts->release_name;
        br.out_names = t->names;
        br.out_paths = t->paths;
        br.n_outputs = t->n;
        br.products = t->facts->products;
        br.n_products = t->facts->n_products;
        br.metrics = t->facts->metrics;
        br.n_metrics = t->facts->n_metrics;
        rc = runner__rdb_finish_build(db, &br, e);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            t->finished[t->n_finished++] = br.id;
            rc = runner__roots_release_build(db, br.id, e);
            if (rc < 0)
                return rc;
            rc = db_notify_build_finished(db, br.id, NULL, 0, e);
            if (rc < 0)
                return rc;
        }
        rc = 0;
    }
    return rc;
}

void runner__attach_resolved(Runner *r, Db *db, const char *drv_path, const char *rpath,
                             const NixDrv *rd, int prebuilt, const StrVec *names,
                             const StrVec *paths)
{
    Step *p, *q;
    NixDrvKind kind = NIX_DRV_INPUT_ADDRESSED;
    char *features;
    Err e = {0};

    if (nix_drv_kind(rd, &kind, &e) < 0)
        kind = NIX_DRV_FLOATING;
    features = runner__features_string(rd, kind == NIX_DRV_FLOATING);

    if (prebuilt) {
        PrebuiltTx t = {0};
        OutputFacts facts = {0};
        StoreConn *c = NULL;
        int rc;
        runner__lock(r);
        p = runner__graph_step_get(r, drv_path);
        if (!p || p->state != STEP_RESOLVING) {
            runner__unlock(r);
            free(features);
            return;
        }
        t.builds = xcalloc(p->builds.n + 1, sizeof *t.builds);
        for (uint32_t i = 0; i < p->builds.n; i++)
            t.builds[t.n_builds++] = ((Build *)p->builds.v[i])->id;
        if (!t.n_builds) {
            PtrVec deps = {0};
            runner__graph_dependent_builds(r, p, &deps);
            for (uint32_t i = 0; i < deps.n; i++)
                if (!t.row_build || ((Build *)deps.v[i])->id < t.row_build)
                    t.row_build = ((Build *)deps.v[i])->id;
            ptrvec_dispose(&deps);
        }
        runner__unlock(r);
        t.finished = xcalloc(t.n_builds + 1, sizeof *t.finished);
        t.resolved = rpath;
        t.system = rd->platform;
        t.names = names->v;
        t.paths = paths->v;
        t.n = names->n;
        rc = store_machine_query_get(r->local_store, &c, &e);
        if (rc == 0) {
            rc = runner__output_facts_collect(c, names->v, paths->v, paths->n, &facts, &e);
            store_machine_query_put(r->local_store, c);
        }
        t.facts = &facts;
        /* the outputs are rooted before the rows that record them commit */
        for (size_t i = 0; rc == 0 && i < paths->n; i++)
            runner__root_output(r, db, paths->v[i], t.n_builds ? t.builds[0] : t.row_build);
        if (rc == 0)
            rc = db_tx(db, prebuilt_tx, &t, &e);
        if (rc < 0) {
            log_warn("finishing builds of %s as cached: %s", drv_path, e.msg);
        } else {
            runner__lock(r);
            p = runner__graph_step_get(r, drv_path);
            if (p && p->state == STEP_RESOLVING) {
                PtrVec done = {0};
                runner__graph_step_done(r, p, &done); /* wakes the rdeps */
                for (uint32_t i = 0; i < done.n; i++) {
                    Build *b = done.v[i];
                    b->finished = 1;
                    runner__graph_build_forget(r, b);
                }
                ptrvec_dispose(&done);
                runner__graph_step_forget(r, p);
            }
            for (size_t i = 0; i < t.n_finished; i++) {
                atomic_fetch_add(&r->stats.builds_done, 1);
                atomic_fetch_add(&r->stats.builds_succeeded, 1);
                atomic_fetch_add(&r->stats.builds_cached, 1);
            }
            runner__graph_wake_dispatcher(r);
            runner__unlock(r);
            for (size_t i = 0; i < t.n_finished; i++)
                runner__build_finished(r, t.finished[i]);
        }
        runner__output_facts_dispose(&facts);
        free(t.builds);
        free(t.finished);
        free(features);
        return;
    }

    runner__lock(r);
    p = runner__graph_step_get(r, drv_path);
    if (!p || p->state != STEP_RESOLVING) {
        runner__unlock(r);
        free(features);
        return;
    }
    q = runner__graph_step_get(r, rpath);
    if (!q) {
        q = runner__graph_step_new(r, rpath, rd->platform, features, (int)kind, 0);
        q->is_resolved_drv = 1;
    }
    if (!strvec_contains(&q->resolved_from, drv_path))
        strvec_push(&q->resolved_from, drv_path);
    /* priorities of P carry over */
    if (p->highest_global_prio > q->highest_global_prio)
        q->highest_global_prio = p->highest_global_prio;
    if (p->highest_local_prio > q->highest_local_prio)
        q->highest_local_prio = p->highest_local_prio;
    if (p->lowest_build_id < q->lowest_build_id)
        q->lowest_build_id = p->lowest_build_id;
    if (!q->share_jobset_id)
        q->share_jobset_id = p->share_jobset_id;
    for (uint32_t i = 0; i < p->n_jobsets; i++)
        runner__graph_step_add_jobset(r, q, p->jobsets[i]);
    if (p->max_silent > q->max_silent)
        q->max_silent = p->max_silent;
    if (p->timeout > q->timeout)
        q->timeout = p->timeout;
    /* rdeps: P -> P' */
    for (uint32_t i = 0; i < p->rdeps.n; i++) {
        Step *rdep = p->rdeps.v[i];
        if (ptrvec_remove(&rdep->deps, p) && rdep->n_deps_left > 0)
            rdep->n_deps_left--;
        runner__graph_add_dep(r, rdep, q);
    }
    p->rdeps.n = 0;
    /* builds: top level P -> P' */
    while (p->builds.n) {
        Build *b = p->builds.v[p->builds.n - 1];
        runner__graph_build_attach(r, b, q); /* removes b from p->builds */
    }
    runner__step_move(r, p, STEP_RESOLVED);
    runner__graph_step_forget(r, p);
    if (q->state == STEP_WAITING && q->n_deps_left == 0)
        runner__graph_step_ready(r, q);
    if (q->queue)
        runner__queue_update(r, q);
    runner__unlock(r);
    free(features);
}

/* ---------------------------------------------------------------- realisations */

static int strvec_contains_n(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return 1;
    return 0;
}

static char *realisation_json(const char *id, const char *out_base, json_t *deps)
{
    json_t *o = json_object();
    char *s;
    json_object_set_new(o, "dependentRealisations", deps ? deps : json_object());
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "outPath", json_string(out_base));
    json_object_set_new(o, "signatures", json_array());
    s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(o);
    return s;
}

static void register_one(Runner *r, StoreConn *c, const char *json)
{
    Err e = {0};
    if (store_register_drv_output(c, json, &e) < 0) {
        atomic_fetch_add(&r->stats.realisations_refused, 1);
        log_warn("realisation refused by the local store: %s (%s)", e.msg, json);
    }
}

/* Realisations of the inputs of P present locally (registering missing ones from the
 * DB first) whose output is referenced by `refs`. */
static json_t *input_realisations(Runner *r, StoreConn *c, const NixDrv *p, const StrVec *refs)
{
    json_t *deps = json_object();
    Db *db = NULL;
    Err e = {0};
    if (runner__db_get(r, &db, &e) < 0)
        return deps;
    for (size_t i = 0; i < p->n_inputs; i++) {
        NixDrv *a = NULL;
        char **ids = NULL;
        NixDrvKind kind;
        if (nix_drv_read(p->inputs[i].drv_path, &a, &e) < 0)
            continue;
        /* every kind of input: Nix lists input-addressed and fixed-output inputs'
         * realisations too */
        if (nix_drv_kind(a, &kind, &e) < 0) {
            nix_drv_free(a);
            continue;
        }
        pthread_mutex_lock(&r->hash_lock);
        if (nix_drv_realisation_ids(r->hash_cache, a, &ids, &e) < 0)
            ids = NULL;
        pthread_mutex_unlock(&r->hash_lock);
        for (size_t j = 0; ids && j < a->n_outputs; j++) {
            char *base = NULL, *full;
            if (!strvec_contains_n(p->inputs[i].outputs, p->inputs[i].n_outputs,
                                   a->outputs[j].name))
                continue;
            if (store_query_realisation(c, ids[j], &base, NULL, &e) < 0)
                continue;
            if (!base) {
                char *op = NULL;
                if (runner__input_output_path(r, db, c, p->inputs[i].drv_path, a->outputs[j].name,
                                              &op, &e) == 0 &&
                    op) {
                    char *js = realisation_json(ids[j], nix_store_path_base(op), NULL);
                    register_one(r, c, js);
                    free(js);
                    base = xstrdup(nix_store_path_base(op));
                }
                free(op);
            }
            if (!base)
                continue;
            full = xasprintf("%s/%s", NIX_STORE_DIR, base);
            if (strvec_contains(refs, full))
                json_object_set_new(deps, ids[j], json_string(base));
            free(full);
            free(base);
        }
        if (ids) {
            for (size_t j = 0; j < a->n_outputs; j++)
                free(ids[j]);
            free(ids);
        }
        nix_drv_free(a);
    }
    runner__db_put(r, db);
    return deps;
}

void runner__register_realisations(Runner *r, StoreConn *c, Worker *w, const NixDrv *basic,
                                   const StoreBuildResult *res, char *const *names,
                                   char *const *paths, size_t n)
{
    (void)basic;
    /* P' itself, as the builder reported it */
    for (size_t i = 0; i < res->n_outputs; i++)
        if (res->outputs[i].json && res->outputs[i].json[0])
            register_one(r, c, res->outputs[i].json);
    /* every P resolving to P' */
    for (size_t k = 0; k < w->resolved_from.n; k++) {
        NixDrv *p = NULL;
        char **ids = NULL;
        Err e = {0};
        if (nix_drv_read(w->resolved_from.v[k], &p, &e) < 0)
            continue;
        pthread_mutex_lock(&r->hash_lock);
        if (nix_drv_realisation_ids(r->hash_cache, p, &ids, &e) < 0)
            ids = NULL;
        pthread_mutex_unlock(&r->hash_lock);
        for (size_t j = 0; ids && j < p->n_outputs; j++) {
            for (size_t i = 0; i < n; i++) {
                StorePathInfo *pi = NULL;
                json_t *deps;
                char *js;
                if (strcmp(names[i], p->outputs[j].name) != 0)
                    continue;
                if (store_query_path_info(c, paths[i], &pi, &e) < 0)
                    continue;
                deps = input_realisations(r, c, p, &pi->references);
                js = realisation_json(ids[j], nix_store_path_base(paths[i]), deps);
                register_one(r, c, js);
                free(js);
                store_path_info_free(pi);
            }
        }
        if (ids) {
            for (size_t j = 0; j < p->n_outputs; j++)
                free(ids[j]);
            free(ids);
        }
        nix_drv_free(p);
    }
}
