/*
 * resolve.c: Derivation::tryResolve of Nix 2.8, and the "force" variant a queue runner
 * sends to remote builders.
 *
 * Given the actual output path of every (input drv, output) pair:
 *   1. inputDrvs are dropped and every such path joins inputSrcs (sorted, unique);
 *   2. downstreamPlaceholder(drv, output) -> path is substituted in the builder, every
 *      arg, every env key and every env value (not in outputs or inputSrcs; own-output
 *      placeholders stay).  Nix applies the rewrites one after the other; a placeholder
 *      is "/" + 52 nix32 chars and a store path cannot contain or complete one, so a
 *      single left-to-right pass over each string gives the same result.  When two env
 *      keys become equal the first (in the original order) wins, as std::map::emplace;
 *   3. (not in force mode) deferred outputs are filled: H = hashModulo(resolved,
 *      mask=true), path_o = makeOutputPath(o, H, name), env[o] = path_o.
 */
#include <stdlib.h>
#include <string.h>

#include "nix/nix_int.h"

typedef struct Rewrite {
    char ph[NIX_PLACEHOLDER_LEN + 1];
    const char *path; /* borrowed from the caller's NixInputPath */
} Rewrite;

typedef struct EnvTmp {
    char *key;
    char *value;
    size_t idx; /* position in the original env */
} EnvTmp;

static int cmp_rewrite(const void *a, const void *b)
{
    return memcmp(((const Rewrite *)a)->ph, ((const Rewrite *)b)->ph, NIX_PLACEHOLDER_LEN);
}

static int cmp_envtmp(const void *a, const void *b)
{
    const EnvTmp *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* s with every placeholder in rw replaced (newly allocated). */
static char *rewrite(const char *s, const Rewrite *rw, size_t nrw)
{
    const char *p = s, *run = s;
    Buf out;
    int any = 0;

    if (nrw == 0)
        return xstrdup(s);
    buf_init(&out, LIMIT_BUF_DEFAULT);
    while ((p = strchr(p, '/')) != NULL) {
        Rewrite key;
        const Rewrite *hit;
        if (strnlen(p, NIX_PLACEHOLDER_LEN) < NIX_PLACEHOLDER_LEN)
            break;
        memcpy(key.ph, p, NIX_PLACEHOLDER_LEN);
        hit = bsearch(&key, rw, nrw, sizeof *rw, cmp_rewrite);
        if (!hit) {
            p++;
            continue;
        }
        buf_append(&out, run, (size_t)(p - run));
        buf_puts(&out, hit->path);
        p += NIX_PLACEHOLDER_LEN;
        run = p;
        any = 1;
    }
    if (!any) {
        buf_dispose(&out);
        return xstrdup(s);
    }
    buf_puts(&out, run);
    if (buf_status(&out)) {
        /* only on memory exhaustion: abort like the x* allocators */
        log_error("out of memory while rewriting placeholders");
        abort();
    }
    return buf_take(&out, NULL);
}

/* Path given for (drv_path, output), or NULL. */
static const char *find_input(const NixInputPath *inputs, size_t n, Map *index,
                              const char *drv_path, const char *output)
{
    if (index) {
        char *key = xasprintf("%s!%s", drv_path, output);
        const char *p = map_get(index, key);
        free(key);
        return p;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(inputs[i].drv_path, drv_path) == 0 && strcmp(inputs[i].output, output) == 0)
            return inputs[i].path;
    return NULL;
}

/* Set env[key] = value in a sorted env (replace or insert). */
static void env_set(NixDrv *r, const char *key, const char *value)
{
    size_t lo = 0, hi = r->n_env;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->env[mid].key, key);
        if (c == 0) {
            free(r->env[mid].value);
            r->env[mid].value = xstrdup(value);
            return;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    r->env = xrealloc(r->env, (r->n_env + 1) * sizeof *r->env);
    memmove(&r->env[lo + 1], &r->env[lo], (r->n_env - lo) * sizeof *r->env);
    r->env[lo].key = xstrdup(key);
    r->env[lo].value = xstrdup(value);
    r->n_env++;
}

/* Fill deferred outputs from hashModulo(r, mask=true). */
static int fill_deferred(NixHashCache *c, NixDrv *r, Err *e)
{
    NixModulo m = {0};
    const char *name = r->name ? r->name : nix_drv_env(r, "name");
    char *name_copy = NULL;
    int rc;

    if (!name)
        return err_set(e, ERR_INVALID, "the derivation has no name");
    name_copy = xstrdup(name); /* env_set may free the env value it points to */
    rc = nix_drv_hash_modulo(c, r, 1, &m, e);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < r->n_outputs; i++) {
        NixDrvOutput *o = &r->outputs[i];
        char *path;
        if (nix_drv_output_kind(o) != NIX_OUT_DEFERRED)
            continue;
        path = nix_make_output_path(o->name, &m.hashes[i], name_copy);
        if (!path) {
            rc = err_set(e, ERR_MALFORMED, "invalid output path name for output '%s' of '%s'",
                         o->name, name_copy);
            goto out;
        }
        free(o->path);
        o->path = path;
        env_set(r, o->name, path);
    }
out:
    nix_modulo_dispose(&m);
    free(name_copy);
    return rc;
}

static int do_resolve(NixHashCache *c, const NixDrv *d, const NixInputPath *inputs, size_t n,
                      int force, NixDrv **out, Err *e)
{
    Rewrite *rw = NULL;
    size_t nrw = 0, total = 0;
    StrVec srcs;
    EnvTmp *env = NULL;
    NixDrv *r = NULL;
    Map *index = NULL;
    NixDrvKind kind;
    int rc = 0;

    *out = NULL;
    strvec_init(&srcs);
    rc = nix_drv_kind(d, &kind, e);
    if (rc < 0)
        goto out;
    if (n > 16) {
        index = map_new(NULL);
        for (size_t i = 0; i < n; i++) {
            char *key = xasprintf("%s!%s", inputs[i].drv_path, inputs[i].output);
            map_put(index, key, (void *)inputs[i].path);
            free(key);
        }
    }
    for (size_t i = 0; i < d->n_inputs; i++)
        total += d->inputs[i].n_outputs;
    rw = xcalloc(total ? total : 1, sizeof *rw);
    for (size_t i = 0; i < d->n_srcs; i++)
        strvec_push(&srcs, d->srcs[i]);
    for (size_t i = 0; i < d->n_inputs; i++) {
        const NixDrvInput *in = &d->inputs[i];
        for (size_t k = 0; k < in->n_outputs; k++) {
            const char *p = find_input(inputs, n, index, in->drv_path, in->outputs[k]);
            if (!p) {
                rc = err_set(e, ERR_NOTFOUND, "no output '%s' of %s", in->outputs[k], in->drv_path);
                goto out;
            }
            rc = nix_store_path_check(p, e);
            if (rc < 0) {
                err_prefix(e, "output '%s' of %s", in->outputs[k], in->drv_path);
                goto out;
            }
            rc = nix_placeholder_downstream(in->drv_path, in->outputs[k], rw[nrw].ph, e);
            if (rc < 0)
                goto out;
            rw[nrw].path = p;
            nrw++;
            strvec_push(&srcs, p);
        }
    }
    strvec_sort_unique(&srcs);
    if (nrw > 1)
        qsort(rw, nrw, sizeof *rw, cmp_rewrite);

    r = xcalloc(1, sizeof *r);
    r->name = d->name ? xstrdup(d->name) : NULL;
    r->outputs = xcalloc(d->n_outputs ? d->n_outputs : 1, sizeof *r->outputs);
    for (size_t i = 0; i < d->n_outputs; i++) {
        r->outputs[i].name = xstrdup(d->outputs[i].name);
        r->outputs[i].path = xstrdup(d->outputs[i].path);
        r->outputs[i].hash_algo = xstrdup(d->outputs[i].hash_algo);
        r->outputs[i].hash = xstrdup(d->outputs[i].hash);
    }
    r->n_outputs = d->n_outputs;
    r->srcs = srcs.v;
    r->n_srcs = srcs.n;
    strvec_init(&srcs);
    r->platform = xstrdup(d->platform);
    r->builder = rewrite(d->builder, rw, nrw);
    if (d->n_args) {
        r->args = xcalloc(d->n_args, sizeof *r->args);
        for (size_t i = 0; i < d->n_args; i++)
            r->args[i] = rewrite(d->args[i], rw, nrw);
    }
    r->n_args = d->n_args;

    if (d->n_env) {
        size_t k = 0;
        env = xcalloc(d->n_env, sizeof *env);
        for (size_t i = 0; i < d->n_env; i++) {
            env[i].key = rewrite(d->env[i].key, rw, nrw);
            env[i].value = rewrite(d->env[i].value, rw, nrw);
            env[i].idx = i;
        }
        qsort(env, d->n_env, sizeof *env, cmp_envtmp);
        r->env = xcalloc(d->n_env, sizeof *r->env);
        for (size_t i = 0; i < d->n_env; i++) {
            if (k > 0 && strcmp(r->env[k - 1].key, env[i].key) == 0) {
                free(env[i].key); /* a later duplicate: the first one stays */
                free(env[i].value);
                continue;
            }
            r->env[k].key = env[i].key;
            r->env[k].value = env[i].value;
            k++;
        }
        r->n_env = k;
    }

    if (!force && kind == NIX_DRV_DEFERRED) {
        rc = fill_deferred(c, r, e);
        if (rc < 0)
            goto out;
    }
    *out = r;
    r = NULL;
out:
    nix_drv_free(r);
    free(env);
    free(rw);
    strvec_dispose(&srcs);
    map_free(index);
    return rc;
}

int nix_drv_resolve(NixHashCache *c, const NixDrv *d, const NixInputPath *inputs, size_t n,
                    NixDrv **out, Err *e)
{
    return do_resolve(c, d, inputs, n, 0, out, e);
}

int nix_drv_resolve_force(NixHashCache *c, const NixDrv *d, const NixInputPath *inputs, size_t n,
                          NixDrv **out, Err *e)
{
    return do_resolve(c, d, inputs, n, 1, out, e);
}
