/*
 * drvhash.c: hashing of derivations as Nix 2.8 does it: hashDerivationModulo (masked
 * and unmasked) memoised over a graph in a NixHashCache, the static output paths of
 * every output kind, and realisation ids ("sha256:<hex>!<output>").
 *
 * hashDerivationModulo(drv, mask):
 *   fixed    H_o = sha256("fixed:out:" + [r:]algo + ":" + hex(hash) + ":" + path_o)
 *            where path_o is recomputed from the hash and the drv name (Nix ignores
 *            the path written in the ATerm); kind regular.
 *   impure   H_o = sha256("impure"); kind deferred.
 *   others   the ATerm with each inputDrv replaced by hex(H_o(input, mask=false)) of
 *            the outputs used (grouped by hash, sorted), and when masking every output
 *            path and every env entry named after an output emptied; H = sha256 of
 *            that text for every output; deferred when the drv is floating CA or an
 *            input is deferred.
 *
 * The cache maps a drv path to its unmasked hashes (one hex string per output) and its
 * deferred flag, so each input is loaded and hashed once however often it is reached.
 * Inputs are computed with an explicit stack, never by recursion, so a deep chain of
 * derivations cannot exhaust the C stack; a drv met again while its own inputs are
 * being computed is a cycle (ERR_MALFORMED).
 */
#include <stdlib.h>
#include <string.h>

#include "nix/nix_int.h"

#define HEX_LEN 64 /* base16 of a sha256 */

/* Unmasked hashDerivationModulo of one drv path. */
typedef struct HcEntry {
    int done;     /* 0 while its inputs are being computed (cycle check) */
    int deferred; /* DrvHash::Kind::Deferred */
    size_t n;
    char **names;             /* output names, in the drv's order (sorted) */
    char (*hex)[HEX_LEN + 1]; /* per output */
} HcEntry;

typedef struct InPair {
    const char *hex;
    const char *name;
} InPair;

struct NixHashCache {
    NixDrvLoader loader;
    void *payload;
    Map *map;      /* drv path -> HcEntry */
    Buf aterm;     /* scratch: the ATerm being hashed */
    InPair *pairs; /* scratch: (input hash, output) pairs */
    size_t pairs_cap;
    NixDrvInput *groups; /* scratch: the inputDrvs list as hashes (borrowed strings) */
    char **names;
    size_t groups_cap;
};

static void entry_free(void *p)
{
    HcEntry *h = p;
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        free(h->names[i]);
    free(h->names);
    free(h->hex);
    free(h);
}

static int default_loader(void *payload, const char *drv_path, NixDrv **out, Err *e)
{
    (void)payload;
    return nix_drv_read(drv_path, out, e);
}

NixHashCache *nix_hash_cache_new(NixDrvLoader loader, void *payload)
{
    NixHashCache *c = xcalloc(1, sizeof *c);
    c->loader = loader ? loader : default_loader;
    c->payload = payload;
    c->map = map_new(entry_free);
    buf_init(&c->aterm, LIMIT_BUF_DEFAULT);
    return c;
}

void nix_hash_cache_free(NixHashCache *c)
{
    if (!c)
        return;
    map_free(c->map);
    buf_dispose(&c->aterm);
    free(c->pairs);
    free(c->groups);
    free(c->names);
    free(c);
}

void nix_modulo_dispose(NixModulo *m)
{
    if (!m)
        return;
    free(m->hashes);
    m->hashes = NULL;
    m->n = 0;
}

/* ---------------------------------------------------------------- helpers */

/* Name of the derivation: its own, else env "name"; NULL if neither. */
static const char *drv_name_of(const NixDrv *d)
{
    if (d->name)
        return d->name;
    return nix_drv_env(d, "name");
}

/* "[r:]algo" -> recursive flag and algorithm. */
static int parse_method_algo(const char *s, int *recursive, NixHashAlgo *algo, Err *e)
{
    const char *a = s;
    *recursive = 0;
    if (strncmp(s, "r:", 2) == 0) {
        *recursive = 1;
        a = s + 2;
    }
    if (nix_hash_algo_parse(a, algo) < 0)
        return err_set(e, ERR_MALFORMED, "unknown hash algorithm '%s'", s);
    return 0;
}

/* The path Nix computes for a fixed output (it ignores the path in the ATerm). */
static char *fixed_output_path(const NixDrv *d, const NixDrvOutput *o, NixHash *h, int *recursive,
                               Err *e)
{
    NixHashAlgo algo;
    const char *name = drv_name_of(d);
    char *pname, *path;
    if (parse_method_algo(o->hash_algo, recursive, &algo, e) < 0)
        return NULL;
    if (nix_hash_parse(o->hash, (int)algo, h, e) < 0) {
        err_prefix(e, "output '%s'", o->name);
        return NULL;
    }
    if (!name) {
        err_set(e, ERR_INVALID, "the derivation has no name");
        return NULL;
    }
    pname = nix_output_path_name(name, o->name);
    path = nix_make_fixed_output_path(*recursive, h, pname, NULL, 0, 0);
    free(pname);
    if (!path)
        err_set(e, ERR_MALFORMED, "invalid name for fixed output '%s'", o->name);
    return path;
}

static int cmp_pairs(const void *a, const void *b)
{
    const InPair *x = a, *y = b;
    int c = memcmp(x->hex, y->hex, HEX_LEN);
    return c ? c : strcmp(x->name, y->name);
}

static const char *entry_hex(const HcEntry *h, const char *output)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->names[i], output) == 0)
            return h->hex[i];
    return NULL;
}

/*
 * hashDerivationModulo of d, whose inputs must all be done in the cache.
 * hashes: d->n_outputs entries (OUT).  *deferred: DrvHash kind (OUT).
 */
static int modulo_compute(NixHashCache *c, const NixDrv *d, int mask, NixHash *hashes,
                          int *deferred, Err *e)
{
    NixDrvKind kind;
    Buf *b = &c->aterm;
    size_t np = 0, ng = 0, nn = 0;
    NixHash h;
    int rc;

    rc = nix_drv_kind(d, &kind, e);
    if (rc < 0)
        return rc;

    if (kind == NIX_DRV_FIXED) {
        for (size_t i = 0; i < d->n_outputs; i++) {
            const NixDrvOutput *o = &d->outputs[i];
            char hex[2 * 64 + 1];
            NixHash fh;
            int recursive;
            char *path = fixed_output_path(d, o, &fh, &recursive, e);
            NixHashCtx *ctx;
            if (!path)
                return e ? e->code : ERR_MALFORMED;
            nix__hex_encode(fh.d, fh.len, hex);
            ctx = nix_hash_ctx_new(NIX_HASH_SHA256);
            nix_hash_ctx_update(ctx, "fixed:out:", 10);
            if (recursive)
                nix_hash_ctx_update(ctx, "r:", 2);
            nix_hash_ctx_update(ctx, nix_hash_algo_name(fh.algo),
                                strlen(nix_hash_algo_name(fh.algo)));
            nix_hash_ctx_update(ctx, ":", 1);
            nix_hash_ctx_update(ctx, hex, 2 * fh.len);
            nix_hash_ctx_update(ctx, ":", 1);
            nix_hash_ctx_update(ctx, path, strlen(path));
            nix_hash_ctx_final(ctx, &hashes[i]);
            free(path);
        }
        *deferred = 0;
        return 0;
    }
    if (kind == NIX_DRV_IMPURE) {
        nix_hash_bytes(NIX_HASH_SHA256, "impure", 6, &h);
        for (size_t i = 0; i < d->n_outputs; i++)
            hashes[i] = h;
        *deferred = 1;
        return 0;
    }

    *deferred = kind == NIX_DRV_FLOATING;

    /* inputs2: (hex of the input's unmasked hash, output) pairs, sorted */
    for (size_t i = 0; i < d->n_inputs; i++) {
        const NixDrvInput *in = &d->inputs[i];
        const HcEntry *ent = map_get(c->map, in->drv_path);
        if (!ent || !ent->done)
            return err_set(e, ERR_NOTFOUND, "input '%s' has not been hashed", in->drv_path);
        if (ent->deferred)
            *deferred = 1;
        for (size_t k = 0; k < in->n_outputs; k++) {
            const char *hex = entry_hex(ent, in->outputs[k]);
            if (!hex)
                return err_set(e, ERR_MALFORMED, "derivation '%s' has no output '%s'", in->drv_path,
                               in->outputs[k]);
            if (np == c->pairs_cap) {
                c->pairs_cap = c->pairs_cap ? 2 * c->pairs_cap : 64;
                c->pairs = xrealloc(c->pairs, c->pairs_cap * sizeof *c->pairs);
            }
            c->pairs[np].hex = hex;
            c->pairs[np].name = in->outputs[k];
            np++;
        }
    }
    if (np > 1)
        qsort(c->pairs, np, sizeof *c->pairs, cmp_pairs);

    /* group the pairs into inputDrvs entries keyed by hash */
    if (np > c->groups_cap) {
        c->groups_cap = np;
        c->groups = xrealloc(c->groups, np * sizeof *c->groups);
        c->names = xrealloc(c->names, np * sizeof *c->names);
    }
    for (size_t i = 0; i < np;) {
        NixDrvInput *g = &c->groups[ng++];
        size_t j = i;
        g->drv_path = (char *)c->pairs[i].hex;
        g->outputs = &c->names[nn];
        g->n_outputs = 0;
        for (; j < np && memcmp(c->pairs[j].hex, c->pairs[i].hex, HEX_LEN) == 0; j++) {
            if (j > i && strcmp(c->pairs[j].name, c->pairs[j - 1].name) == 0)
                continue; /* the same output reached through two equal hashes */
            c->names[nn++] = (char *)c->pairs[j].name;
            g->n_outputs++;
        }
        i = j;
    }
    buf_reset(b);
    rc = nix__drv_print_with(d, c->groups, ng, mask, b);
    if (rc < 0)
        return err_set(e, rc, "derivation too large to hash");

    nix_hash_bytes(NIX_HASH_SHA256, b->p, b->len, &h);
    for (size_t i = 0; i < d->n_outputs; i++)
        hashes[i] = h;
    return 0;
}

/* Compute the unmasked entry of d (inputs done) and store it under path. */
static int entry_fill(NixHashCache *c, HcEntry *ent, const NixDrv *d, Err *e)
{
    NixHash *hs = xcalloc(d->n_outputs ? d->n_outputs : 1, sizeof *hs);
    int deferred = 0;
    int rc = modulo_compute(c, d, 0, hs, &deferred, e);
    if (rc < 0)
        goto out;
    ent->n = d->n_outputs;
    ent->names = xcalloc(ent->n ? ent->n : 1, sizeof *ent->names);
    ent->hex = xcalloc(ent->n ? ent->n : 1, sizeof *ent->hex);
    for (size_t i = 0; i < ent->n; i++) {
        ent->names[i] = xstrdup(d->outputs[i].name);
        nix__hex_encode(hs[i].d, 32, ent->hex[i]);
    }
    ent->deferred = deferred;
    ent->done = 1;
out:
    free(hs);
    return rc;
}

/* Fixed and impure drvs are hashed without their inputs (Nix does not read them). */
static int skips_inputs(const NixDrv *d)
{
    NixDrvKind kind;
    if (nix_drv_kind(d, &kind, NULL) < 0)
        return 1; /* the error is reported when it is hashed */
    return kind == NIX_DRV_FIXED || kind == NIX_DRV_IMPURE;
}

/* One drv on the explicit DFS stack. */
typedef struct Frame {
    char *path;
    NixDrv *drv; /* owned, except for a drv given by the caller */
    int borrowed;
    size_t next; /* next input to visit */
} Frame;

/*
 * Make sure every input of `root` (and, when root_path is set, root itself under that
 * path) is done in the cache.  `root` is borrowed.  Iterative DFS: a frame is pushed
 * for every drv not yet in the cache, its entry inserted as not done (cycle marker);
 * when all its inputs are done it is hashed and marked done.  On error every entry
 * this call left unfinished is removed.
 */
static int cache_ensure(NixHashCache *c, const char *root_path, const NixDrv *root, Err *e)
{
    Frame *st = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    cap = 16;
    st = xmalloc(cap * sizeof *st);
    st[0].path = root_path ? xstrdup(root_path) : NULL;
    st[0].drv = (NixDrv *)root;
    st[0].borrowed = 1;
    st[0].next = skips_inputs(root) ? root->n_inputs : 0;
    n = 1;
    if (root_path)
        map_put(c->map, root_path, xcalloc(1, sizeof(HcEntry)));

    while (n > 0) {
        Frame *f = &st[n - 1];
        if (f->next < f->drv->n_inputs) {
            const char *p = f->drv->inputs[f->next++].drv_path;
            HcEntry *ent = map_get(c->map, p);
            NixDrv *child = NULL;
            if (ent) {
                if (!ent->done) {
                    rc = err_set(e, ERR_MALFORMED, "derivation '%s' depends on itself", p);
                    goto out;
                }
                continue;
            }
            rc = c->loader(c->payload, p, &child, e);
            if (rc < 0)
                goto out;
            if (!child) {
                rc = err_set(e, ERR_NOTFOUND, "derivation '%s' could not be loaded", p);
                goto out;
            }
            if (!child->name && nix_store_path_check(p, NULL) == 0)
                child->name = nix_drv_name_from_path(p);
            if (n == cap) {
                cap *= 2;
                st = xrealloc(st, cap * sizeof *st);
            }
            st[n].path = xstrdup(p);
            st[n].drv = child;
            st[n].borrowed = 0;
            st[n].next = skips_inputs(child) ? child->n_inputs : 0;
            n++;
            map_put(c->map, p, xcalloc(1, sizeof(HcEntry)));
            continue;
        }
        if (f->path) {
            HcEntry *ent = map_get(c->map, f->path);
            rc = entry_fill(c, ent, f->drv, e);
            if (rc < 0) {
                err_prefix(e, "hashing '%s'", f->path);
                goto out;
            }
        }
        if (!f->borrowed)
            nix_drv_free(f->drv);
        free(f->path);
        n--;
    }
out:
    while (n > 0) {
        Frame *f = &st[--n];
        if (f->path) {
            HcEntry *ent = map_get(c->map, f->path);
            if (ent && !ent->done)
                entry_free(map_del(c->map, f->path));
        }
        if (!f->borrowed)
            nix_drv_free(f->drv);
        free(f->path);
    }
    free(st);
    return rc;
}

/* ---------------------------------------------------------------- public */

int nix_hash_cache_add(NixHashCache *c, const char *drv_path, const NixDrv *d, Err *e)
{
    const HcEntry *ent = map_get(c->map, drv_path);
    if (ent && ent->done)
        return 0;
    return cache_ensure(c, drv_path, d, e);
}

int nix_drv_hash_modulo(NixHashCache *c, const NixDrv *d, int mask, NixModulo *out, Err *e)
{
    NixHashCache *tmp = NULL;
    NixDrvKind kind;
    int deferred = 0, rc;

    memset(out, 0, sizeof *out);
    rc = nix_drv_kind(d, &kind, e);
    if (rc < 0)
        return rc;
    if (!c) /* no cache given: a throw-away one that reads inputs from files */
        c = tmp = nix_hash_cache_new(NULL, NULL);
    rc = cache_ensure(c, NULL, d, e);
    if (rc < 0)
        goto out;
    out->hashes = xcalloc(d->n_outputs ? d->n_outputs : 1, sizeof *out->hashes);
    out->n = d->n_outputs;
    rc = modulo_compute(c, d, mask, out->hashes, &deferred, e);
    if (rc < 0) {
        nix_modulo_dispose(out);
        goto out;
    }
    out->deferred = deferred;
    out->kind = deferred ? NIX_DRV_DEFERRED : kind;
out:
    nix_hash_cache_free(tmp);
    return rc;
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int nix_drv_output_paths(NixHashCache *c, const NixDrv *d, char ***out, Err *e)
{
    char **paths = NULL;
    NixDrvKind kind;
    int rc;

    (void)c;
    *out = NULL;
    rc = nix_drv_kind(d, &kind, e);
    if (rc < 0)
        return rc;
    paths = xcalloc(d->n_outputs ? d->n_outputs : 1, sizeof *paths);
    for (size_t i = 0; i < d->n_outputs; i++) {
        const NixDrvOutput *o = &d->outputs[i];
        if (kind == NIX_DRV_INPUT_ADDRESSED) {
            paths[i] = xstrdup(o->path);
        } else if (kind == NIX_DRV_FIXED) {
            NixHash h;
            int recursive;
            paths[i] = fixed_output_path(d, o, &h, &recursive, e);
            if (!paths[i]) {
                rc = e ? e->code : ERR_MALFORMED;
                goto out;
            }
        }
        /* floating, deferred, impure: not statically known (NULL) */
    }
    *out = paths;
    paths = NULL;
out:
    free_strv(paths, d->n_outputs);
    return rc;
}

int nix_drv_realisation_ids(NixHashCache *c, const NixDrv *d, char ***out, Err *e)
{
    NixModulo m;
    char **ids;
    char hex[HEX_LEN + 1];
    int rc;

    *out = NULL;
    rc = nix_drv_hash_modulo(c, d, 1, &m, e);
    if (rc < 0)
        return rc;
    ids = xcalloc(d->n_outputs ? d->n_outputs : 1, sizeof *ids);
    for (size_t i = 0; i < d->n_outputs; i++) {
        nix__hex_encode(m.hashes[i].d, 32, hex);
        ids[i] = xasprintf("sha256:%s!%s", hex, d->outputs[i].name);
    }
    nix_modulo_dispose(&m);
    *out = ids;
    return 0;
}
