/*
 * results.c: recording outcomes in the database (hydra-behaviour §3.8, §3.9, §6.2).
 *
 *  - facts about outputs: sizes, closure sizes, and what `nix-support` says
 *    (failed, hydra-release-name, hydra-build-products, hydra-metrics);
 *  - finishing builds whose top-level step succeeded (status 0 or 6), cached builds
 *    (isCachedBuild = 1), failed builds with Hydra's status rules and propagatedFrom;
 *  - FailedPaths for permanent failures (never for 3, 4, 7, 9, 10, 11);
 *  - the mapping of Nix's BuildResult to step status and retry.
 * Every change of state is one transaction; notifications go out inside it.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner/runner_int.h"

/* ---------------------------------------------------------------- output facts */

void output_facts_dispose(OutputFacts *f)
{
    for (size_t i = 0; i < f->n_products; i++) {
        free((char *)f->products[i].type);
        free((char *)f->products[i].subtype);
        free((char *)f->products[i].path);
        free((char *)f->products[i].name);
        free((char *)f->products[i].default_path);
        free((char *)f->products[i].sha256);
    }
    free(f->products);
    for (size_t i = 0; i < f->n_metrics; i++) {
        free((char *)f->metrics[i].name);
        free((char *)f->metrics[i].unit);
    }
    free(f->metrics);
    free(f->release_name);
    memset(f, 0, sizeof *f);
}

static char *read_small(const char *path)
{
    Buf b;
    Err e = {0};
    char *s;
    buf_init(&b, 1024 * 1024);
    if (util_read_file(path, &b, &e) < 0) {
        buf_dispose(&b);
        return NULL;
    }
    s = buf_take(&b, NULL);
    return s;
}

static void add_product(OutputFacts *f, char *line, const char *out_path)
{
    char *save = NULL, *type, *subtype, *path, *defp;
    RdbProduct *p;
    struct stat st;
    type = strtok_r(line, " \t", &save);
    subtype = type ? strtok_r(NULL, " \t", &save) : NULL;
    path = subtype ? strtok_r(NULL, " \t", &save) : NULL;
    defp = path ? strtok_r(NULL, " \t", &save) : NULL;
    if (!path)
        return;
    if (path[0] == '"') {
        size_t n = strlen(path);
        if (n < 2 || path[n - 1] != '"')
            return;
        path[n - 1] = '\0';
        path++;
    }
    /* only paths inside the store */
    if (!util_starts_with(path, NIX_STORE_DIR "/") || strstr(path, "/../"))
        return;
    f->products = xrealloc(f->products, (f->n_products + 1) * sizeof *f->products);
    p = &f->products[f->n_products++];
    memset(p, 0, sizeof *p);
    p->type = xstrdup(type);
    p->subtype = xstrdup(subtype);
    p->path = xstrdup(path);
    {
        const char *base = strrchr(path, '/');
        p->name = xstrdup(base && base[1] ? base + 1 : path);
    }
    p->default_path = defp ? xstrdup(defp) : NULL;
    p->file_size = -1;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        NixHash h;
        uint64_t sz = 0;
        Err e = {0};
        p->file_size = (int64_t)st.st_size;
        /* sha256 of the file contents, base16 as Hydra stores it */
        Buf fb;
        buf_init(&fb, 256u * 1024 * 1024);
        if (util_read_file(path, &fb, &e) == 0) {
            char hex[NIX_HASH_TEXT_MAX];
            nix_hash_bytes(NIX_HASH_SHA256, fb.p ? fb.p : (const uint8_t *)"", fb.len, &h);
            nix_hash_to_base16(&h, hex);
            p->sha256 = xstrdup(hex);
        }
        buf_dispose(&fb);
        (void)sz;
    }
    (void)out_path;
}

static void add_metric(OutputFacts *f, char *line)
{
    char *save = NULL, *name, *value, *unit, *end = NULL;
    double v;
    RdbMetric *m;
    name = strtok_r(line, " \t", &save);
    value = name ? strtok_r(NULL, " \t", &save) : NULL;
    unit = value ? strtok_r(NULL, " \t", &save) : NULL;
    if (!value)
        return;
    v = strtod(value, &end);
    if (!end || *end)
        return;
    f->metrics = xrealloc(f->metrics, (f->n_metrics + 1) * sizeof *f->metrics);
    m = &f->metrics[f->n_metrics++];
    m->name = xstrdup(name);
    m->unit = unit ? xstrdup(unit) : NULL;
    m->value = v;
}

static void for_lines(char *text, void (*fn)(OutputFacts *, char *, const char *), OutputFacts *f,
                      const char *out)
{
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        while (*l == ' ' || *l == '\t')
            l++;
        if (*l && *l != '#')
            fn(f, l, out);
    }
}

static void product_line(OutputFacts *f, char *l, const char *out)
{
    add_product(f, l, out);
}

static void metric_line(OutputFacts *f, char *l, const char *out)
{
    (void)out;
    add_metric(f, l);
}

/* Facts of a set of output paths valid in the local store.  c: a local session. */
int output_facts_collect(StoreConn *c, char *const *paths, size_t n, OutputFacts *f, Err *e)
{
    StorePathInfo **infos = NULL;
    StorePathInfo **closure = NULL;
    size_t n_closure = 0;
    int rc;
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        char *p, *text;
        if (!paths[i] || nix_store_path_check(paths[i], NULL) < 0)
            continue;
        p = xasprintf("%s/nix-support/failed", paths[i]);
        if (access(p, F_OK) == 0)
            f->failed = 1;
        free(p);
        p = xasprintf("%s/nix-support/hydra-release-name", paths[i]);
        text = read_small(p);
        free(p);
        if (text && !f->release_name) {
            char *nl = strchr(text, '\n');
            if (nl)
                *nl = '\0';
            f->release_name = xstrdup(text);
        }
        free(text);
        p = xasprintf("%s/nix-support/hydra-build-products", paths[i]);
        text = read_small(p);
        free(p);
        if (text)
            for_lines(text, product_line, f, paths[i]);
        free(text);
        p = xasprintf("%s/nix-support/hydra-metrics", paths[i]);
        text = read_small(p);
        free(p);
        if (text)
            for_lines(text, metric_line, f, paths[i]);
        free(text);
    }
    infos = xcalloc(n ? n : 1, sizeof *infos);
    rc = store_query_path_infos(c, (const char *const *)paths, n, infos, e);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (infos[i])
            f->size += (int64_t)infos[i]->nar_size;
    rc = store_query_closure(c, (const char *const *)paths, n, &closure, &n_closure, e);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < n_closure; i++)
        f->closure_size += (int64_t)closure[i]->nar_size;
out:
    for (size_t i = 0; i < n; i++)
        store_path_info_free(infos[i]);
    free(infos);
    for (size_t i = 0; i < n_closure; i++)
        store_path_info_free(closure[i]);
    free(closure);
    return rc;
}

/* ---------------------------------------------------------------- BuildResult mapping */

/* Nix BuildResult status -> step status, retry, cache (C++ runner mapping, §6.2). */
void runner_map_result(int nix_status, int *step_status, int *can_retry, int *can_cache)
{
    *can_retry = 0;
    *can_cache = 0;
    switch (nix_status) {
    case STORE_BUILD_BUILT:
    case STORE_BUILD_SUBSTITUTED:
    case STORE_BUILD_ALREADY_VALID:
    case STORE_BUILD_RESOLVES_TO_ALREADY_VALID: *step_status = 0; break;
    case STORE_BUILD_PERMANENT_FAILURE:
    case STORE_BUILD_INPUT_REJECTED:
    case STORE_BUILD_OUTPUT_REJECTED:
        *step_status = 1;
        *can_cache = 1;
        break;
    case STORE_BUILD_TRANSIENT_FAILURE:
        *step_status = 1;
        *can_retry = 1;
        break;
    case STORE_BUILD_TIMED_OUT: *step_status = 7; break;
    case STORE_BUILD_MISC_FAILURE:
        *step_status = 3;
        *can_retry = 1;
        break;
    case STORE_BUILD_LOG_LIMIT_EXCEEDED: *step_status = 10; break;
    case STORE_BUILD_NOT_DETERMINISTIC:
        *step_status = 12;
        *can_cache = 1;
        break;
    default: /* cached failure, dependency failed, no substituters, hash mismatch */
        *step_status = 3;
        break;
    }
}

/* Status a dependent build gets when step (drv) failed with step_status. */
int runner_dependent_status(int step_status, int is_toplevel)
{
    if (step_status == 1 || step_status == 8)
        return is_toplevel ? 1 : 2;
    return step_status;
}

/* ---------------------------------------------------------------- cached builds */

typedef struct CachedTx {
    const RdbBuildRow *row;
    char **out_names, **out_paths;
    size_t n;
    const OutputFacts *facts;
    int64_t prev; /* earlier build with the same outputs, 0 when none */
} CachedTx;

static int cached_tx(Db *db, void *payload, Err *e)
{
    CachedTx *t = payload;
    RdbBuildResult br = {0};
    int64_t now = util_time_now();
    int rc;
    br.id = t->row->id;
    br.status = t->facts->failed ? 6 : 0;
    br.start_time = now;
    br.stop_time = now;
    br.is_cached = 1;
    br.size = t->facts->size;
    br.closure_size = t->facts->closure_size;
    br.release_name = t->facts->release_name;
    br.out_names = t->out_names;
    br.out_paths = t->out_paths;
    br.n_outputs = t->n;
    br.products = t->facts->products;
    br.n_products = t->facts->n_products;
    br.metrics = t->facts->metrics;
    br.n_metrics = t->facts->n_metrics;
    rc = rdb_finish_build(db, &br, e);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return 0;
    rc = runner_roots_release_build(db, t->row->id, e);
    if (rc < 0)
        return rc;
    return db_notify_build_finished(db, t->row->id, NULL, 0, e);
}

/* A build whose top-level outputs all exist: finished at once (isCachedBuild = 1). */
int runner_finish_cached_build(Runner *r, Db *db, const RdbBuildRow *row, const char *drv_path,
                               const StrVec *names, const StrVec *static_paths,
                               const StrVec *found_paths, Err *e)
{
    CachedTx t = {0};
    OutputFacts facts;
    StoreConn *c = NULL;
    int rc;
    t.row = row;
    t.n = names->n;
    t.out_names = names->v;
    t.out_paths = xcalloc(names->n ? names->n : 1, sizeof *t.out_paths);
    for (size_t i = 0; i < names->n; i++)
        t.out_paths[i] = static_paths->v[i][0] ? static_paths->v[i] : found_paths->v[i];
    memset(&facts, 0, sizeof facts);
    rc = store_machine_query_get(r->local_store, &c, e);
    if (rc < 0)
        goto out;
    rc = output_facts_collect(c, t.out_paths, t.n, &facts, e);
    store_machine_query_put(r->local_store, c);
    if (rc < 0)
        goto out;
    t.facts = &facts;
    if (r->cache) {
        rc = runner_cache_publish_cached(r, drv_path, t.out_paths, t.n, e);
        if (rc < 0)
            goto out;
    }
    rc = db_tx(db, cached_tx, &t, e);
    if (rc == 0) {
        for (size_t i = 0; i < t.n; i++)
            runner_root_output(r, db, t.out_paths[i], row->id);
        atomic_fetch_add(&r->stats.builds_done, 1);
        atomic_fetch_add(&r->stats.builds_succeeded, 1);
        atomic_fetch_add(&r->stats.builds_cached, 1);
        runner_build_finished(r, row->id);
    }
out:
    output_facts_dispose(&facts);
    free(t.out_paths);
    return rc;
}

/* ---------------------------------------------------------------- failures at ingest */

typedef struct IngestFailTx {
    const RdbBuildRow *row;
    const char *drv_path;
    const char *system;
    int step_status; /* 3 (missing drv), 8 (cached failure), 9 (CA work, CA off) */
    const char *msg;
    int is_top;
} IngestFailTx;

static int ingest_fail_tx(Db *db, void *payload, Err *e)
{
    IngestFailTx *t = payload;
    RdbStepRow row = {0};
    RdbBuildResult br = {0};
    int64_t now = util_time_now(), from = 0;
    int32_t nr;
    int rc;
    if (t->step_status == 8) {
        rc = rdb_last_failure_build(db, t->drv_path, &from, e);
        if (rc < 0)
            return rc;
    }
    row.build = t->row->id;
    row.type = 0;
    row.drv_path = t->drv_path;
    row.start_time = now;
    row.stop_time = now;
    row.system = t->system;
    row.status = t->step_status;
    row.propagated_from = from;
    row.error_msg = t->msg;
    row.machine = "";
    rc = rdb_insert_step(db, &row, &nr, e);
    if (rc < 0)
        return rc;
    br.id = t->row->id;
    br.status = t->step_status == 8 ? (t->is_top ? 1 : 2) : t->step_status;
    br.start_time = now;
    br.stop_time = now;
    br.is_cached = t->step_status == 8;
    rc = rdb_finish_build(db, &br, e);
    if (rc <= 0)
        return rc;
    rc = runner_roots_release_build(db, t->row->id, e);
    if (rc < 0)
        return rc;
    return db_notify_build_finished(db, t->row->id, NULL, 0, e);
}

int runner_fail_build_at_ingest(Runner *r, Db *db, const RdbBuildRow *row, const char *drv_path,
                                const char *system, int step_status, const char *msg, int is_top,
                                Err *e)
{
    IngestFailTx t = {
        row, drv_path, system ? system : "", step_status, msg ? msg : "cached failure", is_top};
    int rc = db_tx(db, ingest_fail_tx, &t, e);
    if (rc == 0) {
        atomic_fetch_add(&r->stats.builds_done, 1);
        atomic_fetch_add(&r->stats.builds_failed, 1);
        if (step_status == 8)
            atomic_fetch_add(&r->stats.steps_cached_failure, 1);
        log_info("build %" PRId64 " failed at ingest: %s", row->id, t.msg);
        runner_build_finished(r, row->id);
    }
    return rc;
}
