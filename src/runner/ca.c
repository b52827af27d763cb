/*
 * ca.c: the graph side of CA resolution and realisations.
 *
 *  - runner__attach_resolved: P's rdeps and builds move onto the one step for P'
 *    (created or joined; runner__graph_step_redirect); P leaves the graph.
 *    Builds.drvPath never changes.  When P' is already built, P's builds finish at
 *    once as cached (with a type-1 row for P').
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
#include "runner/record.h"
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

/* The builds P' finishes as cached: P's own, else (P is only a dependency) none, and
 * row_build (the lowest build needing P) gets P''s type-1 row.  0, or -1 when P is not
 * waiting for its resolution any more. */
static int prebuilt_builds(Runner *r, const char *drv_path, RecordPrebuilt *t)
{
    Step *p;
    runner__lock(r);
    p = runner__graph_step_get(r, drv_path);
    if (!p || p->state != STEP_RESOLVING) {
        runner__unlock(r);
        return -1;
    }
    t->builds = xcalloc(p->builds.n + 1, sizeof *t->builds);
    for (uint32_t i = 0; i < p->builds.n; i++)
        t->builds[t->n_builds++] = ((Build *)p->builds.v[i])->id;
    if (!t->n_builds) {
        PtrVec deps = {0};
        runner__graph_dependent_builds(r, p, &deps);
        for (uint32_t i = 0; i < deps.n; i++)
            if (!t->row_build || ((Build *)deps.v[i])->id < t->row_build)
                t->row_build = ((Build *)deps.v[i])->id;
        ptrvec_dispose(&deps);
    }
    runner__unlock(r);
    t->finished = xcalloc(t->n_builds + 1, sizeof *t->finished);
    return 0;
}

/* P' was built before: P's builds finish at once as cached (outputs rooted before the
 * rows that record them commit), then P leaves the graph as a success. */
static void attach_prebuilt(Runner *r, Db *db, const char *drv_path, const char *rpath,
                            const NixDrv *rd, const StrVec *names, const StrVec *paths)
{
    RecordPrebuilt t = {0};
    OutputFacts facts = {0};
    StoreConn *c = NULL;
    Step *p;
    Err e = {0};
    int rc;
    if (prebuilt_builds(r, drv_path, &t) < 0)
        return;
    t.resolved = rpath;
    t.system = rd->platform;
    t.names = names->v;
    t.paths = paths->v;
    t.n = names->n;
    t.facts = &facts;
    rc = store_machine_query_get(r->local_store, &c, &e);
    if (rc == 0) {
        rc = runner__output_facts_collect(c, names->v, paths->v, paths->n, &facts, &e);
        store_machine_query_put(r->local_store, c);
    }
    for (size_t i = 0; rc == 0 && i < paths->n; i++)
        runner__root_output(r, db, paths->v[i], t.n_builds ? t.builds[0] : t.row_build);
    if (rc == 0)
        rc = runner__record_prebuilt(db, &t, &e);
    if (rc < 0) {
        log_warn("finishing builds of %s as cached: %s", drv_path, e.msg);
        goto out;
    }
    runner__lock(r);
    p = runner__graph_step_get(r, drv_path);
    if (p && p->state == STEP_RESOLVING)
        runner__graph_step_succeeded(r, p); /* wakes the rdeps */
    for (size_t i = 0; i < t.n_finished; i++) {
        atomic_fetch_add(&r->stats.builds_done, 1);
        atomic_fetch_add(&r->stats.builds_succeeded, 1);
        atomic_fetch_add(&r->stats.builds_cached, 1);
    }
    runner__wake_dispatcher(r);
    runner__unlock(r);
    for (size_t i = 0; i < t.n_finished; i++)
        runner__build_finished(r, t.finished[i]);
out:
    runner__output_facts_dispose(&facts);
    free(t.builds);
    free(t.finished);
}

void runner__attach_resolved(Runner *r, Db *db, const char *drv_path, const char *rpath,
                             const NixDrv *rd, int prebuilt, const StrVec *names,
                             const StrVec *paths)
{
    Step *p, *q;
    NixDrvKind kind = NIX_DRV_INPUT_ADDRESSED;
    char *features;
    Err e = {0};

    if (prebuilt) {
        attach_prebuilt(r, db, drv_path, rpath, rd, names, paths);
        return;
    }
    if (nix_drv_kind(rd, &kind, &e) < 0)
        kind = NIX_DRV_FLOATING;
    features = runner__features_string(rd, kind == NIX_DRV_FLOATING);
    runner__lock(r);
    p = runner__graph_step_get(r, drv_path);
    if (p && p->state == STEP_RESOLVING) {
        q = runner__graph_step_get(r, rpath);
        if (!q) {
            q = runner__graph_step_new(r, rpath, rd->platform, features, (int)kind, 0);
            q->is_resolved_drv = 1;
        }
        if (!strvec_contains(&q->resolved_from, drv_path))
            strvec_push(&q->resolved_from, drv_path);
        runner__graph_step_redirect(r, p, q);
    }
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
