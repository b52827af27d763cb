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
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner/publish.h"
#include "runner/rdb.h"
#include "runner/results.h"
#include "runner/roots.h"
#include "runner/services.h"

/* ---------------------------------------------------------------- output facts */

void runner__output_facts_dispose(OutputFacts *f)
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

/* A nix-support file of an output: its contents when it is a regular file (at most
 * 1 MiB), else NULL. */
static char *read_small(const char *path)
{
    Buf b;
    Err e = {0};
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return NULL;
    buf_init(&b, 1024 * 1024);
    if (util_read_file(path, &b, &e) < 0) {
        log_warn("cannot read %s: %s", path, e.msg);
        buf_dispose(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

/* Every character of s[0..n) is alphanumeric or in extra. */
static int all_in(const char *s, size_t n, const char *extra)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              (ch && strchr(extra, ch))))
            return 0;
    }
    return 1;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* One word of [a-zA-Z0-9_-]+ then at least one space, at *p. */
static char *take_word(char **p)
{
    char *s = *p, *w = s;
    while (*s && !is_space(*s))
        s++;
    if (s == w || !all_in(w, (size_t)(s - w), "_-") || !is_space(*s))
        return NULL;
    *s++ = '\0';
    while (is_space(*s))
        s++;
    *p = s;
    return w;
}

/* path with "." and ".." segments and repeated slashes resolved (no symlinks); NULL
 * when it climbs above the root. */
static char *canon_path(const char *path)
{
    StrVec segs;
    Buf b;
    const char *s = path;
    strvec_init(&segs);
    while (*s) {
        size_t n;
        while (*s == '/')
            s++;
        n = strcspn(s, "/");
        if (n == 0)
            break;
        if (n == 1 && s[0] == '.') {
        } else if (n == 2 && s[0] == '.' && s[1] == '.') {
            if (!segs.n) {
                strvec_dispose(&segs);
                return NULL;
            }
            free(segs.v[--segs.n]);
        } else {
            strvec_push_take(&segs, xstrndup(s, n));
        }
        s += n;
    }
    buf_init(&b, 1 << 16);
    for (size_t i = 0; i < segs.n; i++)
        buf_printf(&b, "/%s", segs.v[i]);
    if (!segs.n)
        buf_puts(&b, "/");
    strvec_dispose(&segs);
    return buf_take(&b, NULL);
}

/* sha256 (base16) of a regular file, read in chunks. */
static int file_sha256(const char *path, char *hex, Err *e)
{
    NixHashCtx *h = nix_hash_ctx_new(NIX_HASH_SHA256);
    uint8_t chunk[65536];
    NixHash out;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        nix_hash_ctx_free(h);
        return err_sys(e, ERR_IO, "cannot read %s", path);
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int rc = err_sys(e, ERR_IO, "cannot read %s", path);
            close(fd);
            nix_hash_ctx_free(h);
            return rc;
        }
        if (n == 0)
            break;
        nix_hash_ctx_update(h, chunk, (size_t)n);
    }
    close(fd);
    nix_hash_ctx_final(h, &out);
    nix_hash_to_base16(&out, hex);
    return 0;
}

static RdbProduct *new_product(OutputFacts *f)
{
    RdbProduct *p;
    f->products = xrealloc(f->products, (f->n_products + 1) * sizeof *f->products);
    p = &f->products[f->n_products++];
    memset(p, 0, sizeof *p);
    p->file_size = -1;
    return p;
}

/* One line of nix-support/hydra-build-products, as Hydra's runner reads it:
 * TYPE SUBTYPE PATH [DEFAULT-PATH], TYPE and SUBTYPE of [a-zA-Z0-9_-], PATH absolute
 * (quoted when it has spaces), naming a file of one of the step's outputs.  Anything
 * else is dropped with a warning saying why. */
static void add_product(OutputFacts *f, char *line, const char *from, char *const *outs, size_t n)
{
    char *copy = xstrdup(line), *s = line, *type, *subtype, *raw, *defp = NULL, *path = NULL;
    const char *out = NULL, *why = NULL;
    struct stat st;
    RdbProduct *p;
    if (!(type = take_word(&s)) || !(subtype = take_word(&s))) {
        why = "not 'TYPE SUBTYPE PATH [DEFAULT]' (TYPE, SUBTYPE of letters, digits, _ and -)";
        goto drop;
    }
    raw = s;
    if (*s == '"') {
        char *close = strchr(s + 1, '"');
        if (!close || close == s + 1) {
            why = "unterminated or empty quoted path";
            goto drop;
        }
        raw = s + 1;
        *close = '\0';
        s = close + 1;
        if (*s && !is_space(*s)) {
            why = "bad path";
            goto drop;
        }
    } else {
        while (*s && !is_space(*s) && !strchr("<>\"", *s))
            s++;
        if (s == raw || (*s && !is_space(*s))) {
            why = "bad path";
            goto drop;
        }
        if (*s)
            *s++ = '\0';
        else
            s = raw + strlen(raw);
    }
    if (*s && is_space(*s))
        *s++ = '\0';
    if (*s) {
        while (is_space(*s))
            s++;
        defp = s;
        while (*s && !is_space(*s) && !strchr("<>", *s))
            s++;
        if (s == defp || *s) {
            why = "bad default path";
            goto drop;
        }
    }
    if (raw[0] != '/') {
        why = "path is not absolute";
        goto drop;
    }
    path = canon_path(raw);
    for (size_t i = 0; path && i < n; i++)
        if (outs[i] && (strcmp(path, outs[i]) == 0 ||
                        (util_starts_with(path, outs[i]) && path[strlen(outs[i])] == '/')))
            out = outs[i];
    if (!out) {
        why = "path is outside the step's outputs";
        goto drop;
    }
    if (lstat(path, &st) < 0) {
        why = "no such file";
        goto drop;
    }
    p = new_product(f);
    p->type = xstrdup(type);
    p->subtype = xstrdup(subtype);
    p->path = path;
    path = NULL;
    {
        const char *base = strcmp(p->path, out) == 0 ? "" : strrchr(p->path, '/') + 1;
        p->name = xstrdup(all_in(base, strlen(base), ".@:_ -") ? base : "");
    }
    p->default_path = xstrdup(defp ? defp : "");
    if (S_ISREG(st.st_mode)) {
        char hex[NIX_HASH_TEXT_MAX];
        Err e = {0};
        p->file_size = (int64_t)st.st_size;
        if (file_sha256(p->path, hex, &e) == 0)
            p->sha256 = xstrdup(hex);
        else
            log_warn("%s: product %s: %s", from, p->path, e.msg);
    }
    free(copy);
    return;
drop:
    log_warn("%s: dropping product line '%s': %s", from, copy, why);
    free(copy);
    free(path);
}

/* One line of nix-support/hydra-metrics: NAME VALUE [UNIT], as Hydra's runner reads
 * it (a later line of the same name wins; a unit not of [a-zA-Z0-9._%-] is none). */
static void add_metric(OutputFacts *f, char *line, const char *from)
{
    char *save = NULL, *name, *value, *unit, *end = NULL, *copy = xstrdup(line);
    double v;
    RdbMetric *m = NULL;
    name = strtok_r(line, " \t\r", &save);
    value = name ? strtok_r(NULL, " \t\r", &save) : NULL;
    unit = value ? strtok_r(NULL, " \t\r", &save) : NULL;
    if (!value || !all_in(name, strlen(name), "._-")) {
        log_warn("%s: dropping metric line '%s': not 'NAME VALUE [UNIT]'", from, copy);
        free(copy);
        return;
    }
    free(copy);
    v = strtod(value, &end);
    if (end == value) {
        log_warn("%s: dropping metric %s: '%s' is not a number", from, name, value);
        return;
    }
    for (size_t i = 0; i < f->n_metrics; i++)
        if (strcmp(f->metrics[i].name, name) == 0)
            m = &f->metrics[i];
    if (m) {
        free((char *)m->unit);
    } else {
        f->metrics = xrealloc(f->metrics, (f->n_metrics + 1) * sizeof *f->metrics);
        m = &f->metrics[f->n_metrics++];
        m->name = xstrdup(name);
    }
    m->unit = unit && all_in(unit, strlen(unit), "._%-") ? xstrdup(unit) : NULL;
    m->value = v;
}

/* Each line of text (split on newlines, nothing skipped or trimmed: Hydra's rules
 * reject what they do not match). */
static void each_line(char *text, const char *from, void (*fn)(char *, const char *, void *),
                      void *arg)
{
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        fn(l, from, arg);
}

typedef struct ProductCtx {
    OutputFacts *f;
    char *const *outs;
    size_t n;
} ProductCtx;

static void product_line(char *l, const char *from, void *arg)
{
    ProductCtx *c = arg;
    add_product(c->f, l, from, c->outs, c->n);
}

static void metric_line(char *l, const char *from, void *arg)
{
    add_metric(arg, l, from);
}

/* hydra-release-name: the whole file, trimmed, when it is [a-zA-Z0-9.@:_-]+. */
static void take_release_name(OutputFacts *f, char *text, const char *from)
{
    char *s = text, *e;
    while (*s && (is_space(*s) || *s == '\n'))
        s++;
    e = s + strlen(s);
    while (e > s && (is_space(e[-1]) || e[-1] == '\n'))
        *--e = '\0';
    if (!*s || !all_in(s, strlen(s), ".@:_-")) {
        log_warn("%s: ignored: not a release name ([a-zA-Z0-9.@:_-])", from);
        return;
    }
    free(f->release_name);
    f->release_name = xstrdup(s);
}

/* No output declares products: each output that is a directory is a "nix-build"
 * product (subtype: its output name, '' for out), in output-name order. */
static void default_products(OutputFacts *f, char *const *names, char *const *paths, size_t n)
{
    size_t *order = xcalloc(n ? n : 1, sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && names && strcmp(names[order[j - 1]], names[order[j]]) > 0;
             j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        struct stat st;
        RdbProduct *p;
        const char *name = names ? names[i] : "out";
        if (!paths[i] || lstat(paths[i], &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        p = new_product(f);
        p->type = xstrdup("nix-build");
        p->subtype = xstrdup(strcmp(name, "out") == 0 ? "" : name);
        p->path = xstrdup(paths[i]);
        p->name = xstrdup(strchr(nix_store_path_base(paths[i]), '-') + 1);
        p->default_path = xstrdup("");
    }
    free(order);
}

/* Facts of a set of output paths valid in the local store.  c: a local session. */
int runner__output_facts_collect(StoreConn *c, char *const *names, char *const *paths, size_t n,
                                 OutputFacts *f, Err *e)
{
    StorePathInfo **infos = NULL;
    StorePathInfo **closure = NULL;
    size_t n_closure = 0;
    int rc, explicit = 0;
    ProductCtx pc = {f, paths, n};
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        char *p, *text;
        struct stat st;
        if (!paths[i] || nix_store_path_check(paths[i], NULL) < 0)
            continue;
        p = xasprintf("%s/nix-support/failed", paths[i]);
        if (lstat(p, &st) == 0)
            f->failed = 1;
        free(p);
        p = xasprintf("%s/nix-support/hydra-build-products", paths[i]);
        text = read_small(p);
        if (text) {
            explicit = 1;
            each_line(text, p, product_line, &pc);
        }
        free(text);
        free(p);
        p = xasprintf("%s/nix-support/hydra-release-name", paths[i]);
        text = read_small(p);
        if (text)
            take_release_name(f, text, p);
        free(text);
        free(p);
        p = xasprintf("%s/nix-support/hydra-metrics", paths[i]);
        text = read_small(p);
        if (text)
            each_line(text, p, metric_line, f);
        free(text);
        free(p);
    }
    if (!explicit)
        default_products(f, names, paths, n);
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
void runner__map_result(int nix_status, int *step_status, int *can_retry, int *can_cache)
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
int runner__dependent_status(int step_status, int is_toplevel)
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
    rc = runner__rdb_finish_build(db, &br, e);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return 0;
    rc = runner__roots_release_build(db, t->row->id, e);
    if (rc < 0)
        return rc;
    return db_notify_build_finished(db, t->row->id, NULL, 0, e);
}

/* A build whose top-level outputs all exist: finished at once (isCachedBuild = 1). */
int runner__finish_cached_build(Runner *r, Db *db, const RdbBuildRow *row, const char *drv_path,
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
    rc = runner__output_facts_collect(c, t.out_names, t.out_paths, t.n, &facts, e);
    store_machine_query_put(r->local_store, c);
    if (rc < 0)
        goto out;
    t.facts = &facts;
    if (r->cache) {
        rc = runner__cache_publish_cached(r, drv_path, t.out_paths, t.n, e);
        if (rc < 0)
            goto out;
    }
    rc = db_tx(db, cached_tx, &t, e);
    if (rc == 0) {
        for (size_t i = 0; i < t.n; i++)
            runner__root_output(r, db, t.out_paths[i], row->id);
        atomic_fetch_add(&r->stats.builds_done, 1);
        atomic_fetch_add(&r->stats.builds_succeeded, 1);
        atomic_fetch_add(&r->stats.builds_cached, 1);
        runner__build_finished(r, row->id);
    }
out:
    runner__output_facts_dispose(&facts);
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
    if (t->step_status == 3 && t->is_top) {
        /* the build's own .drv is gone: aborted as Hydra's runner aborts it, with no
         * step row and no notification */
        rc = db_exec(db,
                     "UPDATE Builds SET finished = 1, buildStatus = 3, startTime = $2, "
                     "stopTime = $2 WHERE id = $1 AND finished = 0",
                     DB_ARGS(DB_P_INT(t->row->id), DB_P_INT(now)), e);
        if (rc < 0)
            return rc;
        rc = runner__roots_release_build(db, t->row->id, e);
        return rc < 0 ? rc : 0;
    }
    if (t->step_status == 8) {
        rc = runner__rdb_last_failure_build(db, t->drv_path, &from, e);
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
    rc = runner__rdb_insert_step(db, &row, &nr, e);
    if (rc < 0)
        return rc;
    br.id = t->row->id;
    br.status = t->step_status == 8 ? (t->is_top ? 1 : 2) : t->step_status;
    br.start_time = now;
    br.stop_time = now;
    br.is_cached = t->step_status == 8;
    rc = runner__rdb_finish_build(db, &br, e);
    if (rc <= 0)
        return rc;
    rc = runner__roots_release_build(db, t->row->id, e);
    if (rc < 0)
        return rc;
    return db_notify_build_finished(db, t->row->id, NULL, 0, e);
}

int runner__fail_build_at_ingest(Runner *r, Db *db, const RdbBuildRow *row, const char *drv_path,
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
        if (step_status == 3 && is_top)
            log_warn("aborting build %" PRId64 ": %s", row->id, t.msg);
        else
            log_info("build %" PRId64 " failed at ingest: %s", row->id, t.msg);
        runner__build_finished(r, row->id);
    }
    return rc;
}
