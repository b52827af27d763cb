/*
 * copy.c: closure copy between two stores.
 *
 *   1. the closure, and what `to` already has of it: every path asked of `to` is first
 *      rooted there and its validity asked after (serve: QueryValidPaths with its lock
 *      flag; worker: pipelined AddTempRoot, then QueryValidPaths), so a path `to` has
 *      stays, with its closure, for as long as the session, like the copied ones
 *      (AddToStoreNar roots what it adds).  Two walks, by which side is far away:
 *      - store_copy_closure (a builder's outputs coming back): level by level, each
 *        level asked of `to` first and only the paths `to` lacks asked of `from`
 *        (QueryPathInfo pipelined, worker; QueryPathInfos in one batch, serve) and
 *        followed down, so the builder answers one level whatever the closure's depth
 *        (store_copy_closure_known: none for the first level, whose infos the caller
 *        already has);
 *      - store_copy_closure_subst (a step's inputs going to a builder): the whole
 *        closure walked on `from`, then asked of `to` in one batch;
 *   2. when the walk has ended, the missing paths in dependency order (references
 *      first), each streamed: NarFromPath / DumpStorePath on `from` -> AddToStoreNar on
 *      `to` (framed for the worker protocol, narSize raw bytes for serve), 64 KiB at a
 *      time.  The unframed NAR is delimited by nix/'s NAR reader, and its size and
 *      sha256 are checked against the path info as it passes; a mismatch stops the
 *      stream before `to` could register anything.
 *
 * Memory: the path infos of the closure plus one chunk and the wire buffers; never a
 * whole NAR.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

static void free_infos(StorePathInfo **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_path_info_free(v[i]);
    free(v);
}

static int cmp_info(const void *a, const void *b)
{
    const StorePathInfo *x = *(StorePathInfo *const *)a, *y = *(StorePathInfo *const *)b;
    return strcmp(x->path, y->path);
}

/* Order nodes so that references come first (iterative DFS, deterministic). */
static void topo_sort(StorePathInfo **nodes, size_t n, StorePathInfo **out)
{
    Map *index = map_new(NULL);
    unsigned char *state = xcalloc(n ? n : 1, 1);
    size_t *stack = xmalloc((n ? n : 1) * sizeof *stack);
    size_t *next = xcalloc(n ? n : 1, sizeof *next);
    size_t sp = 0, no = 0;
    if (n > 1)
        qsort(nodes, n, sizeof *nodes, cmp_info);
    for (size_t i = 0; i < n; i++)
        map_put(index, nodes[i]->path, (void *)(uintptr_t)(i + 1));
    for (size_t root = 0; root < n; root++) {
        if (state[root])
            continue;
        state[root] = 1;
        stack[sp++] = root;
        while (sp > 0) {
            size_t top = stack[sp - 1];
            StorePathInfo *pi = nodes[top];
            if (next[top] < pi->references.n) {
                const char *ref = pi->references.v[next[top]++];
                uintptr_t j = (uintptr_t)map_get(index, ref);
                if (j == 0 || strcmp(ref, pi->path) == 0)
                    continue;
                if (state[j - 1] == 0) {
                    state[j - 1] = 1;
                    stack[sp++] = j - 1;
                }
                continue;
            }
            state[top] = 2;
            out[no++] = pi;
            sp--;
        }
    }
    map_free(index);
    free(state);
    free(stack);
    free(next);
}

/* frontier without the paths prune skips (frontier's order kept) */
static int prune_level(StrVec *frontier, StorePruneFn prune, void *payload, Err *e)
{
    int *skip;
    size_t keep = 0;
    int rc;
    if (!prune || frontier->n == 0)
        return 0;
    skip = xcalloc(frontier->n, sizeof *skip);
    rc = prune(payload, (const char *const *)frontier->v, frontier->n, skip, e);
    for (size_t i = 0; rc == 0 && i < frontier->n; i++) {
        if (skip[i])
            free(frontier->v[i]);
        else
            frontier->v[keep++] = frontier->v[i];
    }
    if (rc == 0)
        frontier->n = keep;
    free(skip);
    return rc;
}

int store_query_closure(StoreConn *c, const char *const *paths, size_t n, StorePathInfo ***infos,
                        size_t *n_infos, Err *e)
{
    return store_query_closure_pruned(c, paths, n, NULL, NULL, infos, n_infos, e);
}

/* The infos of a level: asked of c, or, for the first level when known is given (the
 * infos of the n paths the walk starts from, in their order), taken from there. */
static int level_infos(StoreConn *c, const StrVec *level, const StorePathInfo *const *known,
                       size_t n, StorePathInfo **got, Err *e)
{
    if (!known)
        return store_query_path_infos(c, (const char *const *)level->v, level->n, got, e);
    for (size_t i = 0; i < level->n; i++)
        for (size_t k = 0; k < n && !got[i]; k++)
            if (strcmp(known[k]->path, level->v[i]) == 0)
                got[i] = store_path_info_clone(known[k]);
    return 0;
}

static int closure_walk(StoreConn *c, const char *const *paths, const StorePathInfo *const *known,
                        size_t n, StorePruneFn prune, void *payload, StorePathInfo ***infos,
                        size_t *n_infos, Err *e)
{
    Map *queued = map_new(NULL);
    StrVec frontier, next;
    StorePathInfo **all = NULL, **got = NULL, **sorted = NULL;
    size_t nall = 0, cap = 0;
    int rc = 0;
    strvec_init(&frontier);
    strvec_init(&next);
    *infos = NULL;
    *n_infos = 0;
    for (size_t i = 0; i < n; i++) {
        if (map_get(queued, paths[i]))
            continue;
        map_put(queued, paths[i], (void *)1);
        strvec_push(&frontier, paths[i]);
    }
    while (frontier.n > 0) {
        rc = prune_level(&frontier, prune, payload, e);
        if (rc < 0)
            goto out;
        if (frontier.n == 0)
            break;
        got = xcalloc(frontier.n, sizeof *got);
        rc = level_infos(c, &frontier, known, n, got, e);
        known = NULL;
        if (rc < 0)
            goto out;
        for (size_t i = 0; i < frontier.n; i++) {
            StorePathInfo *pi = got[i];
            if (!pi) {
                rc = err_set(e, ERR_NOTFOUND, "%s: path '%s' is not valid", c->name, frontier.v[i]);
                goto out;
            }
            got[i] = NULL;
            if (nall == cap) {
                cap = cap ? cap * 2 : 64;
                all = xrealloc(all, cap * sizeof *all);
            }
            all[nall++] = pi;
            for (size_t r = 0; r < pi->references.n; r++) {
                const char *ref = pi->references.v[r];
                if (map_get(queued, ref))
                    continue;
                map_put(queued, ref, (void *)1);
                strvec_push(&next, ref);
            }
        }
        free(got);
        got = NULL;
        strvec_dispose(&frontier);
        frontier = next;
        strvec_init(&next);
    }
    sorted = xmalloc((nall ? nall : 1) * sizeof *sorted);
    topo_sort(all, nall, sorted);
    free(all);
    all = NULL;
    *infos = sorted;
    *n_infos = nall;
    nall = 0;
out:
    if (got) {
        for (size_t i = 0; i < frontier.n; i++)
            store_path_info_free(got[i]);
        free(got);
    }
    free_infos(all, nall);
    strvec_dispose(&frontier);
    strvec_dispose(&next);
    map_free(queued);
    return rc;
}

int store_query_closure_pruned(StoreConn *c, const char *const *paths, size_t n, StorePruneFn prune,
                               void *payload, StorePathInfo ***infos, size_t *n_infos, Err *e)
{
    return closure_walk(c, paths, NULL, n, prune, payload, infos, n_infos, e);
}

/* Pulls one NAR off `from`'s wire, checking it against the path info. */
typedef struct NarPump {
    StoreConn *from;
    const StorePathInfo *info;
    NixNarReader *r;
    NixHashCtx *h;
    uint64_t n;
    int done;
    int from_failed;
} NarPump;

static int pump_src(void *payload, uint8_t *buf, size_t cap, size_t *got, Err *e)
{
    NarPump *p = payload;
    *got = 0;
    while (!p->done && *got == 0) {
        const uint8_t *d;
        size_t n, used = 0;
        int rc, done;
        rc = store__wire_peek(&p->from->w, &d, &n, e);
        if (rc < 0) {
            p->from_failed = 1;
            return rc;
        }
        if (n > cap)
            n = cap;
        done = nix_nar_reader_feed(p->r, d, n, &used, e);
        if (done < 0) {
            p->from_failed = 1;
            if (p->from->proto == STORE_PROTO_WORKER)
                store__worker_nar_error(p->from, p->n, e);
            return err_prefix(e, "NAR of %s from %s", p->info->path, p->from->name);
        }
        if (used > n || (used == 0 && done == 0)) {
            p->from_failed = 1;
            return err_set(e, ERR_MALFORMED, "NAR reader made no progress");
        }
        memcpy(buf, d, used);
        store__wire_consume(&p->from->w, used);
        nix_hash_ctx_update(p->h, buf, used);
        p->n += used;
        *got = used;
        if (p->n > p->info->nar_size) {
            p->from_failed = 1;
            return err_set(e, ERR_MALFORMED, "NAR of %s from %s is larger than its narSize %llu",
                           p->info->path, p->from->name, (unsigned long long)p->info->nar_size);
        }
        if (done == 1) {
            NixHash h;
            p->done = 1;
            nix_hash_ctx_final(p->h, &h);
            p->h = NULL;
            p->from_failed = p->n != p->info->nar_size || h.len != p->info->nar_hash.len ||
                             memcmp(h.d, p->info->nar_hash.d, h.len) != 0;
            if (p->n != p->info->nar_size)
                return err_set(e, ERR_MALFORMED, "NAR of %s from %s has %llu bytes, not %llu",
                               p->info->path, p->from->name, (unsigned long long)p->n,
                               (unsigned long long)p->info->nar_size);
            if (h.len != p->info->nar_hash.len || memcmp(h.d, p->info->nar_hash.d, h.len) != 0)
                return err_set(e, ERR_MALFORMED, "NAR of %s from %s does not match its narHash",
                               p->info->path, p->from->name);
        }
    }
    return 0;
}

/* One path; *from_failed tells whether a failure was `from`'s. */
static int copy_one(StoreConn *from, StoreConn *to, const StorePathInfo *info, int *from_failed,
                    Err *e)
{
    static const NixNarCallbacks none;
    NarPump p;
    StorePathInfo *info2 = NULL;
    int rc;
    memset(&p, 0, sizeof p);
    store__io_timeout(from);
    store__io_timeout(to);
    if (from->proto == STORE_PROTO_WORKER)
        rc = store__worker_nar_begin(from, info->path, e);
    else
        rc = store__serve_nar_begin(from, info->path, e);
    *from_failed = rc < 0;
    if (rc < 0)
        return store__finish(from, rc, e);
    p.from = from;
    p.info = info;
    p.r = nix_nar_reader_new(&none, NULL);
    p.h = nix_hash_ctx_new(NIX_HASH_SHA256);
    info2 = store_path_info_clone(info);
    info2->ultimate = 0; /* a copy is not where the path was made */
    if (to->proto == STORE_PROTO_WORKER)
        rc = store__worker_add_nar(to, info2, pump_src, &p, e);
    else
        rc = store__serve_add_nar(to, info2, pump_src, &p, e);
    if (rc >= 0 && !p.done) {
        p.from_failed = 1;
        rc = err_set(e, ERR_MALFORMED, "NAR of %s from %s is longer than its narSize", info->path,
                     from->name);
    }
    if (!p.done)
        from->broken = 1; /* the rest of the NAR is still on the wire */
    *from_failed = rc < 0 && p.from_failed;
    if (rc < 0) {
        if (p.from_failed)
            rc = store__finish(from, rc, e);
        else
            rc = store__finish(to, rc, e);
        /* a stream cut half-way leaves `to` waiting for the rest */
        if (!p.done)
            to->broken = 1;
    }
    nix_hash_ctx_free(p.h);
    nix_nar_reader_free(p.r);
    store_path_info_free(info2);
    return rc;
}

/* What `to` has of one level of the walk: the paths get a temp root on the `to` session
 * first and their validity is asked after (serve: lock=1 does both in that order in one
 * request), so a path found valid is rooted already, never collected between the answer
 * and its root; and a rooted path keeps its closure, which the walk then skips. */
typedef struct HaveCtx {
    StoreConn *to;
    int substitute;
    size_t looked;
} HaveCtx;

static int to_has(void *payload, const char *const *level, size_t n, int *skip, Err *e)
{
    HaveCtx *h = payload;
    StoreConn *to = h->to;
    StrVec valid;
    Map *have;
    int rc;
    strvec_init(&valid);
    h->looked += n;
    if (to->proto == STORE_PROTO_SERVE) {
        store__io_timeout(to);
        rc = store__serve_query_valid_paths(to, level, n, 1, h->substitute, &valid, e);
        rc = store__finish(to, rc, e);
    } else {
        store__io_timeout(to);
        rc = store__worker_add_temp_roots(to, level, n, e);
        rc = store__finish(to, rc, e);
        if (rc >= 0 && h->substitute) {
            store__io_timeout(to);
            rc = store__worker_query_valid_paths(to, level, n, 1, &valid, e);
            rc = store__finish(to, rc, e);
        } else if (rc >= 0) {
            rc = store_query_valid_paths(to, level, n, &valid, e);
        }
    }
    if (rc < 0) {
        strvec_dispose(&valid);
        return rc;
    }
    have = map_new(NULL);
    for (size_t i = 0; i < valid.n; i++)
        map_put(have, valid.v[i], (void *)1);
    for (size_t i = 0; i < n; i++)
        skip[i] = map_get(have, level[i]) != NULL;
    map_free(have);
    strvec_dispose(&valid);
    return 0;
}

/* The closure of paths walked whole on `from`, then rooted on and asked of `to` in one
 * batch: *infos keeps what `to` lacks, references first. */
static int walk_whole(StoreConn *from, HaveCtx *have, const char *const *paths, size_t n,
                      StorePathInfo ***infos, size_t *ninfos, Err *e)
{
    StorePathInfo **all = NULL;
    size_t nall = 0, keep = 0;
    const char **v;
    int *skip, rc;
    *infos = NULL;
    *ninfos = 0;
    if ((rc = store_query_closure(from, paths, n, &all, &nall, e)) < 0)
        return rc;
    v = xcalloc(nall ? nall : 1, sizeof *v);
    skip = xcalloc(nall ? nall : 1, sizeof *skip);
    for (size_t i = 0; i < nall; i++)
        v[i] = all[i]->path;
    rc = nall ? to_has(have, v, nall, skip, e) : 0;
    for (size_t i = 0; i < nall; i++) {
        if (rc < 0 || skip[i])
            store_path_info_free(all[i]);
        else
            all[keep++] = all[i];
    }
    free(v);
    free(skip);
    if (rc < 0) {
        free(all);
        return rc;
    }
    *infos = all;
    *ninfos = keep;
    return 0;
}

/* Copy what `to` lacks, walked whole on `from` or pruned by `to` level by level (known:
 * the paths' own infos, or NULL). */
static int copy_closure(StoreConn *from, StoreConn *to, const char *const *paths,
                        const StorePathInfo *const *known, size_t n, int substitute, int pruned,
                        StoreCopyStats *stats, Err *e)
{
    StorePathInfo **infos = NULL;
    size_t ninfos = 0;
    HaveCtx have = {.to = to, .substitute = substitute};
    StoreCopyStats st;
    int rc;
    memset(&st, 0, sizeof st);
    if (from == to)
        return err_set(e, ERR_INVALID, "copy between one session and itself");
    if ((rc = store__check(from, e)) < 0 || (rc = store__check(to, e)) < 0)
        return rc;
    rc = pruned ? closure_walk(from, paths, known, n, to_has, &have, &infos, &ninfos, e)
                : walk_whole(from, &have, paths, n, &infos, &ninfos, e);
    st.closure_paths = have.looked;
    for (size_t i = 0; rc >= 0 && i < ninfos; i++) {
        log_debug("copying %s from %s to %s (%llu bytes)", infos[i]->path, from->name, to->name,
                  (unsigned long long)infos[i]->nar_size);
        int from_failed = 0;
        rc = copy_one(from, to, infos[i], &from_failed, e);
        if (rc < 0) {
            if (from_failed)
                snprintf(st.from_failed, sizeof st.from_failed, "%s", infos[i]->path);
            break;
        }
        st.copied_paths++;
        st.copied_bytes += infos[i]->nar_size;
    }
    if (stats)
        *stats = st;
    free_infos(infos, ninfos);
    return rc;
}

int store_copy_closure(StoreConn *from, StoreConn *to, const char *const *paths, size_t n,
                       StoreCopyStats *stats, Err *e)
{
    return copy_closure(from, to, paths, NULL, n, 0, 1, stats, e);
}

int store_copy_closure_known(StoreConn *from, StoreConn *to, const StorePathInfo *const *infos,
                             size_t n, StoreCopyStats *stats, Err *e)
{
    const char **paths = xcalloc(n ? n : 1, sizeof *paths);
    int rc;
    for (size_t i = 0; i < n; i++) {
        if (!infos[i] || !infos[i]->path) {
            free(paths);
            return err_set(e, ERR_INVALID, "copy of a path whose info is missing");
        }
        paths[i] = infos[i]->path;
    }
    rc = copy_closure(from, to, paths, infos, n, 0, 1, stats, e);
    free(paths);
    return rc;
}

int store_copy_closure_subst(StoreConn *from, StoreConn *to, const char *const *paths, size_t n,
                             int substitute, StoreCopyStats *stats, Err *e)
{
    return copy_closure(from, to, paths, NULL, n, substitute, 0, stats, e);
}
