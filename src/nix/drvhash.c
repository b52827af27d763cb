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
 * It is its own open-addressing table (linear probing, backward-shift deletion) keyed
 * by a 64-bit hash of the path, mixed from the 32 random chars of the store hash part,
 * with the full path compared on a match; each entry is one allocation holding path,
 * output names and hashes.  Hashing a graph does about ten lookups per drv, so this
 * matters (a generic string map was a fifth of the time).
 * Inputs are computed with an explicit stack, never by recursion, so a deep chain of
 * derivations cannot exhaust the C stack; a drv met again while its own inputs are
 * being computed is a cycle (ERR_MALFORMED).
 */
#include <stdlib.h>
#include <string.h>

#include "nix/nix_int.h"

#define HEX_LEN 64 /* base16 of a sha256 */

/* Unmasked hashDerivationModulo of one drv path: one allocation holding the struct,
 * the path, the output names and their hashes. */
typedef struct HcEntry {
    uint64_t h;   /* hash of path */
    int done;     /* 0 while its inputs are being computed (cycle check) */
    int deferred; /* DrvHash::Kind::Deferred */
    size_t n;
    const char *path;
    const char **names;       /* output names, in the drv's order (sorted) */
    char (*hex)[HEX_LEN + 1]; /* per output */
} HcEntry;

typedef struct HcSlot {
    uint64_t h;
    HcEntry *e; /* NULL: empty */
} HcSlot;

/* One drv on the explicit DFS stack. */
typedef struct Frame {
    HcEntry *ent; /* its cache entry (not done yet); NULL for an anonymous root */
    NixDrv *drv;  /* owned, except for a drv given by the caller */
    int borrowed;
    size_t next; /* next input to visit */
} Frame;

typedef struct InPair {
    const char *hex;
    const char *name;
} InPair;

struct NixHashCache {
    NixDrvLoader loader;
    void *payload;
    HcSlot *slots; /* drv path -> HcEntry; cap is a power of two, load <= 1/2 */
    size_t cap, n;
    Buf aterm;     /* scratch: the ATerm being hashed */
    InPair *pairs; /* scratch: (input hash, output) pairs */
    size_t pairs_cap;
    NixDrvInput *groups; /* scratch: the inputDrvs list as hashes (borrowed strings) */
    char **names;
    size_t groups_cap;
    Frame *stack; /* scratch: the DFS stack of cache_ensure (not reentrant) */
    size_t stack_cap;
};

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
    c->cap = 64;
    c->slots = xcalloc(c->cap, sizeof *c->slots);
    buf_init(&c->aterm, LIMIT_BUF_DEFAULT);
    return c;
}

void nix_hash_cache_free(NixHashCache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->cap; i++)
        free(c->slots[i].e);
    free(c->slots);
    buf_dispose(&c->aterm);
    free(c->pairs);
    free(c->groups);
    free(c->names);
    free(c->stack);
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

/* ---------------------------------------------------------------- the table */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Store paths: the 32 hash-part chars (random) mixed in 8-byte words, plus the length;
 * anything else: FNV-1a.  Equality is always checked on the whole path. */
static uint64_t path_hash(const char *p)
{
    static const size_t dir = sizeof NIX_STORE_DIR; /* "/nix/store/" */
    size_t n = strlen(p);
    uint64_t h = 1469598103934665603ull;
    if (n >= dir + NIX_HASH_PART_LEN && memcmp(p, NIX_STORE_DIR "/", dir) == 0) {
        h ^= n;
        for (size_t i = 0; i < NIX_HASH_PART_LEN; i += 8) {
            uint64_t w;
            memcpy(&w, p + dir + i, 8);
            h = mix64(h ^ w);
        }
        return h;
    }
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static HcEntry *hc_find(const NixHashCache *c, const char *path, uint64_t h)
{
    size_t mask = c->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const HcSlot *s = &c->slots[i];
        if (!s->e)
            return NULL;
        if (s->h == h && strcmp(s->e->path, path) == 0)
            return s->e;
    }
}

static void hc_place(HcSlot *slots, size_t cap, HcEntry *e)
{
    size_t i = (size_t)e->h & (cap - 1);
    while (slots[i].e)
        i = (i + 1) & (cap - 1);
    slots[i].h = e->h;
    slots[i].e = e;
}

/* Insert e (its path is not in the table). */
static void hc_insert(NixHashCache *c, HcEntry *e)
{
    if ((c->n + 1) * 2 > c->cap) {
        size_t ncap = c->cap * 2;
        HcSlot *ns = xcalloc(ncap, sizeof *ns);
        for (size_t i = 0; i < c->cap; i++)
            if (c->slots[i].e)
                hc_place(ns, ncap, c->slots[i].e);
        free(c->slots);
        c->slots = ns;
        c->cap = ncap;
    }
    hc_place(c->slots, c->cap, e);
    c->n++;
}

/* Remove and free e (backward-shift deletion keeps probe chains intact). */
static void hc_remove(NixHashCache *c, HcEntry *e)
{
    size_t mask = c->cap - 1, i = (size_t)e->h & mask, j;
    while (c->slots[i].e != e)
        i = (i + 1) & mask;
    j = i;
    for (;;) {
        size_t home;
        j = (j + 1) & mask;
        if (!c->slots[j].e)
            break;
        home = (size_t)c->slots[j].h & mask;
        /* move j back to i unless its home lies cyclically in (i, j] */
        if ((i < j) ? (home <= i || home > j) : (home <= i && home > j)) {
            c->slots[i] = c->slots[j];
            i = j;
        }
    }
    c->slots[i].e = NULL;
    c->slots[i].h = 0;
    c->n--;
    free(e);
}

/* A new, not yet done entry for path with d's outputs (hashes filled later). */
static HcEntry *hc_entry_new(const char *path, uint64_t h, const NixDrv *d)
{
    size_t plen = strlen(path) + 1, size = sizeof(HcEntry), hex_at, names_at, str_at;
    HcEntry *e;
    char *mem;
    /* layout: HcEntry | names[n] | hex[n] | path | name strings */
    names_at = size;
    size += d->n_outputs * sizeof(char *);
    hex_at = size;
    size += d->n_outputs * sizeof *e->hex;
    str_at = size;
    size += plen;
    for (size_t i = 0; i < d->n_outputs; i++)
        size += strlen(d->outputs[i].name) + 1;
    mem = xmalloc(size);
    e = (HcEntry *)mem;
    e->h = h;
    e->done = 0;
    e->deferred = 0;
    e->n = d->n_outputs;
    e->names = (const char **)(mem + names_at);
    e->hex = (char(*)[HEX_LEN + 1])(mem + hex_at);
    memcpy(mem + str_at, path, plen);
    e->path = mem + str_at;
    str_at += plen;
    for (size_t i = 0; i < e->n; i++) {
        size_t len = strlen(d->outputs[i].name) + 1;
        memcpy(mem + str_at, d->outputs[i].name, len);
        e->names[i] = mem + str_at;
        e->hex[i][0] = '\0';
        str_at += len;
    }
    return e;
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
        const HcEntry *ent = hc_find(c, in->drv_path, path_hash(in->drv_path));
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

/* Compute the unmasked hashes of d (inputs done) into its entry. */
static int entry_fill(NixHashCache *c, HcEntry *ent, const NixDrv *d, Err *e)
{
    NixHash small[8], *hs = d->n_outputs <= 8 ? small : xcalloc(d->n_outputs, sizeof *hs);
    int deferred = 0;
    int rc = modulo_compute(c, d, 0, hs, &deferred, e);
    if (rc == 0) {
        for (size_t i = 0; i < ent->n; i++)
            nix__hex_encode(hs[i].d, 32, ent->hex[i]);
        ent->deferred = deferred;
        ent->done = 1;
    }
    if (hs != small)
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

static Frame *push(NixHashCache *c, size_t n)
{
    if (n == c->stack_cap) {
        c->stack_cap = c->stack_cap ? 2 * c->stack_cap : 64;
        c->stack = xrealloc(c->stack, c->stack_cap * sizeof *c->stack);
    }
    return &c->stack[n];
}

/*
 * Make sure every input of `root` (and, when root_path is set, root itself under that
 * path) is done in the cache.  `root` is borrowed.  Iterative DFS: a frame is pushed,
 * with a new entry that is not done yet (cycle check), for every drv not in the
 * cache; when all its inputs are done it is hashed and marked done.  On error every
 * entry this call left unfinished is removed.  Not reentrant (a loader must not use
 * the same cache).
 */
static int cache_ensure(NixHashCache *c, const char *root_path, const NixDrv *root, Err *e)
{
    Frame *f;
    size_t n = 0;
    int rc = 0;

    f = push(c, n++);
    f->ent = NULL;
    f->drv = (NixDrv *)root;
    f->borrowed = 1;
    f->next = skips_inputs(root) ? root->n_inputs : 0;
    if (root_path) {
        f->ent = hc_entry_new(root_path, path_hash(root_path), root);
        hc_insert(c, f->ent);
    }

    while (n > 0) {
        f = &c->stack[n - 1];
        if (f->next < f->drv->n_inputs) {
            const char *p = f->drv->inputs[f->next++].drv_path;
            uint64_t h = path_hash(p);
            HcEntry *ent = hc_find(c, p, h);
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
            f = push(c, n++);
            f->ent = hc_entry_new(p, h, child);
            f->drv = child;
            f->borrowed = 0;
            f->next = skips_inputs(child) ? child->n_inputs : 0;
            hc_insert(c, f->ent);
            continue;
        }
        if (f->ent) {
            rc = entry_fill(c, f->ent, f->drv, e);
            if (rc < 0) {
                err_prefix(e, "hashing '%s'", f->ent->path);
                goto out;
            }
        }
        if (!f->borrowed)
            nix_drv_free(f->drv);
        n--;
    }
out:
    while (n > 0) {
        f = &c->stack[--n];
        if (f->ent && !f->ent->done)
            hc_remove(c, f->ent);
        if (!f->borrowed)
            nix_drv_free(f->drv);
    }
    return rc;
}

/* ---------------------------------------------------------------- public */

int nix_hash_cache_add(NixHashCache *c, const char *drv_path, const NixDrv *d, Err *e)
{
    const HcEntry *ent = hc_find(c, drv_path, path_hash(drv_path));
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
