/*
 * publish.c: what goes into a cache and in which order.
 *
 * What to write: the closure of the paths, walked a level at a time; a path whose
 * narinfo the cache has is left out with everything only it reaches (the cache wrote
 * its references' narinfos before it), so the store is asked only about what the cache
 * lacks, and the cache once per level.
 *
 * One path: NarFromPath streams the NAR from the store into a sink that (1) hashes it
 * (checked against the store's narHash and narSize at the end), (2) feeds the NAR
 * reader when a listing is wanted, and (3) feeds the compressor, whose output is
 * hashed (FileHash) and written to a spool.  The spool then becomes
 * nar/FILEHASH.EXT, the listing HASHPART.ls, and last the narinfo HASHPART.narinfo.
 * Nothing holds the NAR: memory is the compressor's state plus fixed buffers.  The
 * narinfos of one publish are written after all its NARs, with one sync of the
 * filesystem (file://) between, and one after (after the realisations, when it has
 * any: a realisation whose narinfo a crash lost is healed by the next publish).
 *
 * The listing is written as the NAR streams, in Nix's JSON layout:
 *   {"version":1,"root":NODE}
 *   NODE = {"type":"regular","size":N[,"executable":true][,"narOffset":OFF]}
 *        | {"type":"symlink","target":"T"}
 *        | {"type":"directory","entries":{"NAME":NODE,...}}
 * Entries come in NAR order (sorted by name, as Nix lists them); narOffset is the
 * offset of the file's contents in the NAR.
 *
 * Realisations: each id's realisation is read from the store (QueryRealisation), its
 * dependentRealisations followed the same way (Nix's Realisation::closure) down to the
 * ones the cache has; a dependent neither the store nor the cache knows is left out of
 * the published entry (a client would fail to substitute through it).  Every realisation is written
 * after its dependents and after its output's narinfo, signed over its JSON without "signatures"
 * (compact, keys sorted, as Nix prints it).
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <lzma.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "cache/cache_int.h"

/* ---------------------------------------------------------------- init */

/* file://: remove spool files of processes that are gone (a publisher killed mid-upload
 * leaves nar/.tmp-PID-SEQ-XXXXXX behind; no reader ever looks at them). */
static void remove_stale_spools(Cache *c)
{
    char *dir = xasprintf("%s/nar", c->root);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        int64_t pid;
        char num[24];
        const char *p = de->d_name, *dash;
        if (!util_starts_with(p, ".tmp-"))
            continue;
        p += 5;
        dash = strchr(p, '-');
        if (!dash || (size_t)(dash - p) >= sizeof num)
            continue;
        memcpy(num, p, (size_t)(dash - p));
        num[dash - p] = '\0';
        if (util_parse_i64(num, &pid) < 0 || pid <= 0 || pid == (int64_t)getpid() ||
            kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        unlinkat(dirfd(d), de->d_name, 0);
    }
    if (d)
        closedir(d);
    free(dir);
}

int cache_init(Cache *c, Err *e)
{
    static const char *const dirs[] = {"", "/nar", "/realisations", "/log"};
    const char *name = "nix-cache-info";
    int present = 0, rc = 0;
    if (atomic_load(&c->ready))
        return 0;
    pthread_mutex_lock(&c->init_lock);
    if (atomic_load(&c->ready))
        goto out;
    if (c->kind == CACHE_FILE) {
        for (size_t i = 0; i < UTIL_ARRAY_LEN(dirs); i++) {
            char *d = xasprintf("%s%s", c->root, dirs[i]);
            rc = util_mkdir_p(d, 0755, e);
            free(d);
            if (rc < 0)
                goto out;
        }
        remove_stale_spools(c);
    }
    rc = cache__exists(c, &name, 1, &present, e);
    if (rc < 0)
        goto out;
    if (!present) {
        char *text = xasprintf("StoreDir: %s\nWantMassQuery: %d\nPriority: %d\n", NIX_STORE_DIR,
                               c->mass_query, c->priority);
        rc = cache__put_bytes(c, name, text, strlen(text), "text/x-nix-cache-info", e);
        if (rc == 0)
            rc = cache__sync(c, e);
        free(text);
        if (rc < 0)
            goto out;
    }
    atomic_store(&c->ready, 1);
out:
    pthread_mutex_unlock(&c->init_lock);
    return rc;
}

int cache_has_files(Cache *c, const char *const *names, size_t n, int *present, Err *e)
{
    return cache__exists(c, names, n, present, e);
}

/* ---------------------------------------------------------------- compressor */

typedef struct Compressor {
    CacheCompression kind;
    lzma_stream xz;
    int xz_on;
    ZSTD_CCtx *zs;
    uint8_t *out;
    /* where compressed bytes go */
    CacheSpool *spool;
    NixHashCtx *file_hash;
} Compressor;

/* size: the input's size in bytes (the NAR's narSize); zstd sizes its window and tables
 * by it.  xz keeps the preset's own settings, so that its files are byte for byte those
 * Nix writes. */
static int comp_init(Cache *c, Compressor *z, CacheSpool *spool, uint64_t size, Err *e)
{
    memset(z, 0, sizeof *z);
    z->kind = c->compression;
    z->spool = spool;
    z->file_hash = nix_hash_ctx_new(NIX_HASH_SHA256);
    z->out = xmalloc(CACHE_OUT_CHUNK);
    if (z->kind == CACHE_COMP_XZ) {
        uint32_t preset = c->level < 0 ? LZMA_PRESET_DEFAULT : (uint32_t)c->level;
        lzma_ret r;
        lzma_stream init = LZMA_STREAM_INIT;
        z->xz = init;
        if (c->parallel) {
            lzma_mt mt;
            memset(&mt, 0, sizeof mt);
            mt.threads = lzma_cputhreads();
            if (mt.threads == 0)
                mt.threads = 1;
            mt.preset = preset;
            mt.check = LZMA_CHECK_CRC64;
            r = lzma_stream_encoder_mt(&z->xz, &mt);
        } else {
            r = lzma_easy_encoder(&z->xz, preset, LZMA_CHECK_CRC64);
        }
        if (r != LZMA_OK)
            return err_set(e, ERR_NOMEM, "cannot start the xz compressor (liblzma error %d)",
                           (int)r);
        z->xz_on = 1;
    } else if (z->kind == CACHE_COMP_ZSTD) {
        z->zs = ZSTD_createCCtx();
        if (!z->zs)
            return err_set(e, ERR_NOMEM, "cannot start the zstd compressor");
        ZSTD_CCtx_setParameter(z->zs, ZSTD_c_compressionLevel,
                               c->level < 0 ? ZSTD_CLEVEL_DEFAULT : c->level);
        /* the size sizes zstd's window and tables, and goes into the frame header */
        ZSTD_CCtx_setPledgedSrcSize(z->zs, size);
        if (c->parallel) {
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            ZSTD_CCtx_setParameter(z->zs, ZSTD_c_nbWorkers, n > 1 ? (int)n : 1);
        }
    }
    return 0;
}

static void comp_dispose(Compressor *z)
{
    if (z->xz_on)
        lzma_end(&z->xz);
    ZSTD_freeCCtx(z->zs);
    nix_hash_ctx_free(z->file_hash);
    free(z->out);
    memset(z, 0, sizeof *z);
}

static int comp_emit(Compressor *z, const uint8_t *p, size_t n, Err *e)
{
    if (n == 0)
        return 0;
    nix_hash_ctx_update(z->file_hash, p, n);
    return cache__spool_write(z->spool, p, n, e);
}

/* Compress n bytes; finish: end the stream (data may be empty). */
static int comp_feed(Compressor *z, const uint8_t *data, size_t n, int finish, Err *e)
{
    int rc = 0;
    if (z->kind == CACHE_COMP_NONE)
        return comp_emit(z, data, n, e);
    if (z->kind == CACHE_COMP_XZ) {
        lzma_action act = finish ? LZMA_FINISH : LZMA_RUN;
        z->xz.next_in = data;
        z->xz.avail_in = n;
        for (;;) {
            lzma_ret r;
            z->xz.next_out = z->out;
            z->xz.avail_out = CACHE_OUT_CHUNK;
            r = lzma_code(&z->xz, act);
            if (r != LZMA_OK && r != LZMA_STREAM_END)
                return err_set(e, ERR_IO, "xz compression failed (liblzma error %d)", (int)r);
            rc = comp_emit(z, z->out, CACHE_OUT_CHUNK - z->xz.avail_out, e);
            if (rc < 0)
                return rc;
            if (r == LZMA_STREAM_END)
                break;
            if (!finish && z->xz.avail_in == 0 && z->xz.avail_out != 0)
                break;
        }
        return 0;
    }
    {
        ZSTD_inBuffer in = {data, n, 0};
        ZSTD_EndDirective mode = finish ? ZSTD_e_end : ZSTD_e_continue;
        for (;;) {
            ZSTD_outBuffer out = {z->out, CACHE_OUT_CHUNK, 0};
            size_t left = ZSTD_compressStream2(z->zs, &out, &in, mode);
            if (ZSTD_isError(left))
                return err_set(e, ERR_IO, "zstd compression failed: %s", ZSTD_getErrorName(left));
            rc = comp_emit(z, z->out, out.pos, e);
            if (rc < 0)
                return rc;
            if (finish ? left == 0 : in.pos == in.size)
                break;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- listing */

typedef struct Listing {
    Buf json;
    NixNarReader *reader;
    size_t open_depth; /* directories whose "entries" object is open */
    uint8_t has_entries[LIMIT_NAR_DEPTH + 2];
} Listing;

/* A JSON string as Nix 2.8's JSON writer prints it. */
static void json_str(Buf *b, const char *s, size_t n)
{
    buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, ch);
        } else if (ch == '\n') {
            buf_puts(b, "\\n");
        } else if (ch == '\r') {
            buf_puts(b, "\\r");
        } else if (ch == '\t') {
            buf_puts(b, "\\t");
        } else if (ch < 0x20) {
            buf_printf(b, "\\u%04X", ch);
        } else {
            buf_putc(b, ch);
        }
    }
    buf_putc(b, '"');
}

/* Close directories deeper than the new node's and write its "NAME": key. */
static int ls_enter(Listing *l, const char *path, Err *e)
{
    size_t depth = 0;
    const char *name = path;
    if (*path) {
        depth = 1;
        for (const char *p = path; *p; p++) {
            if (*p == '/') {
                depth++;
                name = p + 1;
            }
        }
    }
    if (depth > LIMIT_NAR_DEPTH)
        return err_set(e, ERR_TOOBIG, "NAR listing: deeper than %u", LIMIT_NAR_DEPTH);
    while (l->open_depth > depth) {
        buf_puts(&l->json, "}}");
        l->open_depth--;
    }
    if (depth > 0) {
        if (l->has_entries[depth])
            buf_putc(&l->json, ',');
        l->has_entries[depth] = 1;
        json_str(&l->json, name, strlen(name));
        buf_putc(&l->json, ':');
    }
    return buf_status(&l->json) < 0
               ? err_set(e, ERR_TOOBIG, "NAR listing larger than %u bytes", CACHE_LISTING_MAX)
               : 0;
}

static int ls_directory(void *payload, const char *path, Err *e)
{
    Listing *l = payload;
    int rc = ls_enter(l, path, e);
    if (rc < 0)
        return rc;
    buf_puts(&l->json, "{\"type\":\"directory\",\"entries\":{");
    l->open_depth++;
    l->has_entries[l->open_depth] = 0;
    return 0;
}

static int ls_file(void *payload, const char *path, int executable, uint64_t size, Err *e)
{
    Listing *l = payload;
    uint64_t off = nix_nar_reader_offset(l->reader);
    int rc = ls_enter(l, path, e);
    if (rc < 0)
        return rc;
    buf_printf(&l->json, "{\"type\":\"regular\",\"size\":%llu", (unsigned long long)size);
    if (executable)
        buf_puts(&l->json, ",\"executable\":true");
    if (off)
        buf_printf(&l->json, ",\"narOffset\":%llu", (unsigned long long)off);
    buf_putc(&l->json, '}');
    return 0;
}

static int ls_symlink(void *payload, const char *path, const char *target, Err *e)
{
    Listing *l = payload;
    int rc = ls_enter(l, path, e);
    if (rc < 0)
        return rc;
    buf_puts(&l->json, "{\"type\":\"symlink\",\"target\":");
    json_str(&l->json, target, strlen(target));
    buf_putc(&l->json, '}');
    return 0;
}

static const NixNarCallbacks ls_callbacks = {
    .directory = ls_directory,
    .file_begin = ls_file,
    .symlink = ls_symlink,
};

static void ls_init(Listing *l)
{
    memset(l, 0, sizeof *l);
    buf_init(&l->json, CACHE_LISTING_MAX);
    buf_puts(&l->json, "{\"version\":1,\"root\":");
    l->reader = nix_nar_reader_new(&ls_callbacks, l);
}

static int ls_finish(Listing *l, Err *e)
{
    while (l->open_depth > 0) {
        buf_puts(&l->json, "}}");
        l->open_depth--;
    }
    buf_putc(&l->json, '}');
    if (buf_status(&l->json) < 0)
        return err_set(e, ERR_TOOBIG, "NAR listing larger than %u bytes", CACHE_LISTING_MAX);
    return 0;
}

static void ls_dispose(Listing *l)
{
    buf_dispose(&l->json);
    nix_nar_reader_free(l->reader);
}

/* ---------------------------------------------------------------- one path */

typedef struct NarUp {
    Compressor z;
    NixHashCtx *nar_hash;
    uint64_t nar_size;
    Listing *ls; /* NULL: no listing */
} NarUp;

static int nar_sink(void *payload, const uint8_t *data, size_t n, Err *e)
{
    NarUp *u = payload;
    int rc;
    nix_hash_ctx_update(u->nar_hash, data, n);
    u->nar_size += n;
    if (u->ls) {
        size_t used = 0;
        rc = nix_nar_reader_feed(u->ls->reader, data, n, &used, e);
        if (rc < 0)
            return rc;
    }
    return comp_feed(&u->z, data, n, 0, e);
}

/* Upload one path's NAR (and listing); *narinfo receives the narinfo text to write once
 * the NAR is durable. */
static int upload_nar(Cache *c, StoreConn *store, const StorePathInfo *pi, uint64_t *file_bytes,
                      char **narinfo, Err *e)
{
    NarUp u;
    Listing ls;
    CacheSpool spool = {.fd = -1};
    NixHash nar_h, file_h;
    char h32[NIX_HASH_TEXT_MAX], hash_part[NIX_HASH_PART_LEN + 1];
    char *nar_rel = NULL, *rel = NULL;
    uint64_t fsize;
    int rc;

    memset(&u, 0, sizeof u);
    memcpy(hash_part, nix_store_path_base(pi->path), NIX_HASH_PART_LEN);
    hash_part[NIX_HASH_PART_LEN] = '\0';
    if (c->listing) {
        ls_init(&ls);
        u.ls = &ls;
    }
    u.nar_hash = nix_hash_ctx_new(NIX_HASH_SHA256);
    rc = cache__spool_open(c, &spool, e);
    if (rc < 0)
        goto out;
    rc = comp_init(c, &u.z, &spool, pi->nar_size, e);
    if (rc < 0)
        goto out;
    rc = store_nar_from_path(store, pi->path, nar_sink, &u, e);
    if (rc < 0)
        goto out;
    rc = comp_feed(&u.z, NULL, 0, 1, e);
    if (rc < 0)
        goto out;
    nix_hash_ctx_final(u.nar_hash, &nar_h);
    u.nar_hash = NULL;
    if (u.nar_size != pi->nar_size || nar_h.len != pi->nar_hash.len ||
        memcmp(nar_h.d, pi->nar_hash.d, nar_h.len) != 0) {
        rc = err_set(e, ERR_CONFLICT,
                     "%s: the store's NAR (%llu bytes) does not match its recorded hash and size "
                     "(%llu bytes)",
                     pi->path, (unsigned long long)u.nar_size, (unsigned long long)pi->nar_size);
        goto out;
    }
    nix_hash_ctx_final(u.z.file_hash, &file_h);
    u.z.file_hash = NULL;
    fsize = spool.size;
    nix_hash_to_base32(&file_h, h32);
    nar_rel = xasprintf("nar/%s.%s", h32, cache__compression_ext(c->compression));
    rc = cache__spool_put(c, &spool, nar_rel, "application/x-nix-nar", e);
    if (rc < 0)
        goto out;
    if (u.ls) {
        rc = ls_finish(u.ls, e);
        if (rc < 0)
            goto out;
        rel = xasprintf("%s.ls", hash_part);
        rc = cache__put_bytes(c, rel, u.ls->json.p, u.ls->json.len, "application/json", e);
        if (rc < 0)
            goto out;
    }
    *narinfo =
        cache_narinfo_text(c, pi, nar_rel, cache__compression_name(c->compression), &file_h, fsize);
    atomic_fetch_add(&c->nars, 1);
    atomic_fetch_add(&c->nar_bytes, pi->nar_size);
    atomic_fetch_add(&c->file_bytes, fsize);
    *file_bytes = fsize;
out:
    if (rc < 0)
        err_prefix(e, "publishing %s", pi->path);
    cache__spool_discard(&spool);
    comp_dispose(&u.z);
    nix_hash_ctx_free(u.nar_hash);
    if (u.ls)
        ls_dispose(u.ls);
    free(nar_rel);
    free(rel);
    return rc;
}

/* ---------------------------------------------------------------- realisations */

typedef struct Real {
    char *id;
    char *out_base;
    json_t *deps; /* object id -> basename, as the store has it */
    json_t *sigs; /* array */
    int done;     /* written or found in the cache */
    int visiting;
} Real;

static void real_free(void *p)
{
    Real *r = p;
    if (!r)
        return;
    free(r->id);
    free(r->out_base);
    json_decref(r->deps);
    json_decref(r->sigs);
    free(r);
}

/* Read one realisation from the store; *out NULL when the store does not know it. */
static int real_read(StoreConn *store, const char *id, Real **out, Err *e)
{
    char *base = NULL, *json = NULL;
    json_t *root = NULL, *deps, *sigs;
    json_error_t je;
    Real *r = NULL;
    int rc;

    *out = NULL;
    rc = store_query_realisation(store, id, &base, &json, e);
    if (rc < 0 || !base)
        goto out;
    if (json)
        root = json_loads(json, 0, &je);
    deps = root ? json_object_get(root, "dependentRealisations") : NULL;
    sigs = root ? json_object_get(root, "signatures") : NULL;
    r = xcalloc(1, sizeof *r);
    r->id = xstrdup(id);
    r->out_base = base;
    base = NULL;
    r->deps = json_is_object(deps) ? json_incref(deps) : json_object();
    r->sigs = json_is_array(sigs) ? json_incref(sigs) : json_array();
    {
        const char *k;
        json_t *v;
        Err ve = {0};
        json_object_foreach(r->deps, k, v)
        {
            if (!json_is_string(v) || nix_store_basename_check(json_string_value(v), &ve) < 0) {
                rc = err_set(e, ERR_MALFORMED, "realisation %s: bad dependent realisation '%s'", id,
                             k);
                real_free(r);
                r = NULL;
                goto out;
            }
        }
    }
    *out = r;
out:
    json_decref(root);
    free(base);
    free(json);
    return rc;
}

static char *real_rel(const char *id)
{
    return xasprintf("realisations/%s.doi", id);
}

/* Which of ids (realisation ids) the cache has: present[i] */
static int real_in_cache(Cache *c, const StrVec *ids, int *present, Err *e)
{
    char **names = xcalloc(ids->n ? ids->n : 1, sizeof *names);
    int rc;
    for (size_t i = 0; i < ids->n; i++)
        names[i] = real_rel(ids->v[i]);
    rc = cache__exists(c, (const char *const *)names, ids->n, present, e);
    for (size_t i = 0; i < ids->n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* Read one level of ids from the store into reals; their dependents not seen yet go to
 * next.  top: these are the requested ids (a missing one is an error unless optional). */
static int real_read_level(StoreConn *store, const StrVec *level, int top, int optional, Map *reals,
                           Map *seen, StrVec *next, Err *e)
{
    for (size_t i = 0; i < level->n; i++) {
        Real *r = NULL;
        const char *k;
        json_t *v;
        int rc = real_read(store, level->v[i], &r, e);
        if (rc < 0)
            return rc;
        if (!r) {
            if (top && !optional)
                return err_set(e, ERR_NOTFOUND, "the store has no realisation %s", level->v[i]);
            continue;
        }
        map_put(reals, r->id, r);
        json_object_foreach(r->deps, k, v)
        {
            if (map_get(seen, k))
                continue;
            map_put(seen, k, (void *)1);
            strvec_push(next, k);
        }
    }
    return 0;
}

/* Drop from every entry of reals the dependents that are neither in reals nor in the
 * cache (the store did not have them): their signatures no longer match. */
static void real_drop_missing(Map *reals, Map *cached)
{
    size_t it = 0;
    const char *key;
    void *val;
    while (map_next(reals, &it, &key, &val)) {
        Real *r = val;
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(r->deps, tmp, k, v)
        {
            if (strcmp(k, r->id) != 0 && !map_get(reals, k) && !map_get(cached, k)) {
                json_object_del(r->deps, k);
                json_array_clear(r->sigs); /* their fingerprint changed */
            }
        }
    }
}

/* Collect ids and what they depend on into reals (id -> Real), a level of
 * dependentRealisations at a time.  A dependent the cache has already is not read: it
 * was written after its own dependents (and its output's narinfo), so nothing below it
 * is missing; one existence check per level.  A requested id the store lacks is
 * ERR_NOTFOUND; a dependent that is in neither the store nor the cache is dropped from
 * its parent. */
static int real_collect(Cache *c, StoreConn *store, const char *const *ids, size_t n, int optional,
                        Map *reals, Err *e)
{
    Map *seen = map_new(NULL), *cached = map_new(NULL);
    StrVec level, next;
    int top = 1, rc = 0;
    strvec_init(&level);
    strvec_init(&next);
    for (size_t i = 0; i < n; i++) {
        if (map_get(seen, ids[i]))
            continue;
        map_put(seen, ids[i], (void *)1);
        strvec_push(&level, ids[i]);
    }
    while (rc == 0 && level.n > 0) {
        if (!top) {
            int *present = xcalloc(level.n, sizeof *present);
            size_t keep = 0;
            rc = real_in_cache(c, &level, present, e);
            for (size_t i = 0; rc == 0 && i < level.n; i++) {
                if (present[i]) {
                    map_put(cached, level.v[i], (void *)1);
                    free(level.v[i]);
                } else
                    level.v[keep++] = level.v[i];
            }
            if (rc == 0)
                level.n = keep;
            free(present);
        }
        if (rc == 0)
            rc = real_read_level(store, &level, top, optional, reals, seen, &next, e);
        strvec_dispose(&level);
        level = next;
        strvec_init(&next);
        top = 0;
    }
    if (rc == 0)
        real_drop_missing(reals, cached);
    strvec_dispose(&level);
    strvec_dispose(&next);
    map_free(seen);
    map_free(cached);
    return rc;
}

static int real_write(Cache *c, Real *r, Err *e)
{
    json_t *o = json_object(), *sigs = json_array();
    char *fp = NULL, *text = NULL, *rel = NULL;
    StrVec sv;
    int rc;
    strvec_init(&sv);
    json_object_set(o, "dependentRealisations", r->deps);
    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "outPath", json_string(r->out_base));
    fp = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    for (size_t i = 0; i < json_array_size(r->sigs); i++) {
        const char *s = json_string_value(json_array_get(r->sigs, i));
        if (s)
            strvec_push(&sv, s);
    }
    if (c->pkey)
        strvec_push_take(&sv, cache_sign(c, fp, strlen(fp)));
    strvec_sort_unique(&sv);
    for (size_t i = 0; i < sv.n; i++)
        json_array_append_new(sigs, json_string(sv.v[i]));
    json_object_set_new(o, "signatures", sigs);
    text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    rel = real_rel(r->id);
    rc = cache__put_bytes(c, rel, text, strlen(text), "application/json", e);
    if (rc == 0)
        atomic_fetch_add(&c->realisations, 1);
    else
        err_prefix(e, "publishing realisation %s", r->id);
    json_decref(o);
    strvec_dispose(&sv);
    free(fp);
    free(text);
    free(rel);
    return rc;
}

/* Dependents first (depth-first, post-order). */
static int real_write_tree(Cache *c, Map *reals, Real *r, size_t *written, Err *e)
{
    const char *k;
    json_t *v;
    int rc;
    if (r->done || r->visiting)
        return 0;
    r->visiting = 1;
    json_object_foreach(r->deps, k, v)
    {
        Real *d = map_get(reals, k);
        if (d && d != r) {
            rc = real_write_tree(c, reals, d, written, e);
            if (rc < 0)
                return rc;
        }
    }
    rc = real_write(c, r, e);
    if (rc < 0)
        return rc;
    r->done = 1;
    (*written)++;
    return 0;
}

/* ---------------------------------------------------------------- publish */

/* final_sync 0: the caller syncs after what it writes next (realisations), which makes
 * the narinfos durable too (a realisation whose narinfo a crash lost is healed by the
 * next publish, which finds the narinfo missing and writes it). */
/* The walk of publish_paths: a path whose narinfo the cache has is left out with what
 * only it reaches (its narinfo was written after those of its references). */
typedef struct CachePrune {
    Cache *c;
    size_t present;
} CachePrune;

static int prune_present(void *payload, const char *const *level, size_t n, int *skip, Err *e)
{
    CachePrune *p = payload;
    char **names = xcalloc(n ? n : 1, sizeof *names);
    int rc;
    for (size_t i = 0; i < n; i++)
        names[i] = xasprintf("%.*s.narinfo", NIX_HASH_PART_LEN, nix_store_path_base(level[i]));
    rc = cache__exists(p->c, (const char *const *)names, n, skip, e);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && skip[i])
            p->present++;
        free(names[i]);
    }
    free(names);
    return rc;
}

static int publish_paths(Cache *c, StoreConn *store, const char *const *paths, size_t n,
                         int final_sync, CachePublishStats *st, Err *e)
{
    StorePathInfo **infos = NULL;
    size_t ninfos = 0;
    char **names = NULL, **texts = NULL;
    CachePrune prune = {.c = c};
    int rc;

    /* what the cache lacks of the closure: one existence check per level, and the store
     * is asked only about paths the cache lacks */
    rc = store_query_closure_pruned(store, paths, n, prune_present, &prune, &infos, &ninfos, e);
    if (rc < 0)
        goto out;
    st->paths = ninfos + prune.present;
    names = xcalloc(ninfos ? ninfos : 1, sizeof *names);
    for (size_t i = 0; i < ninfos; i++)
        names[i] =
            xasprintf("%.*s.narinfo", NIX_HASH_PART_LEN, nix_store_path_base(infos[i]->path));
    /* NARs first; once they are durable (one sync), the narinfos, in the closure's order
     * (references first), so a narinfo appears only after its NAR and after the
     * narinfos it names.  A failure still writes the narinfos of the NARs done. */
    texts = xcalloc(ninfos ? ninfos : 1, sizeof *texts);
    for (size_t i = 0; i < ninfos && rc == 0; i++) {
        uint64_t fb = 0;
        rc = upload_nar(c, store, infos[i], &fb, &texts[i], e);
        if (rc < 0)
            break;
        st->uploaded++;
        st->nar_bytes += infos[i]->nar_size;
        st->file_bytes += fb;
    }
    if (st->uploaded > 0) {
        Err se = {0};
        int src = cache__sync(c, &se);
        for (size_t i = 0; src == 0 && i < ninfos; i++) {
            if (!texts[i])
                continue;
            src = cache__put_bytes(c, names[i], texts[i], strlen(texts[i]), "text/x-nix-narinfo",
                                   &se);
            if (src == 0)
                atomic_fetch_add(&c->narinfos, 1);
        }
        if (src == 0 && final_sync)
            src = cache__sync(c, &se);
        if (src < 0 && rc == 0) {
            *e = se;
            rc = src;
        }
    }
out:
    for (size_t i = 0; i < ninfos; i++) {
        store_path_info_free(infos[i]);
        free(names[i]);
        if (texts)
            free(texts[i]);
    }
    free(texts);
    free(infos);
    free(names);
    return rc;
}

int cache_publish(Cache *c, StoreConn *store, const char *const *paths, size_t n,
                  const char *const *ids, size_t n_ids, int flags, CachePublishStats *st_out,
                  Err *e)
{
    CachePublishStats st;
    Map *reals = map_new(real_free);
    StrVec all;
    Real **rv = NULL;
    char **names = NULL;
    int *present = NULL;
    size_t nr = 0;
    uint64_t t0 = util_now_ms();
    int rc;

    memset(&st, 0, sizeof st);
    strvec_init(&all);
    rc = cache_init(c, e);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        strvec_push(&all, paths[i]);
    if (n_ids > 0) {
        size_t it = 0;
        const char *key;
        void *val;
        rc = real_collect(c, store, ids, n_ids, flags & CACHE_IDS_OPTIONAL, reals, e);
        if (rc < 0)
            goto out;
        nr = map_size(reals);
        rv = xcalloc(nr ? nr : 1, sizeof *rv);
        names = xcalloc(nr ? nr : 1, sizeof *names);
        present = xcalloc(nr ? nr : 1, sizeof *present);
        for (size_t i = 0; map_next(reals, &it, &key, &val); i++) {
            rv[i] = val;
            names[i] = real_rel(rv[i]->id);
            strvec_push_take(&all, xasprintf("%s/%s", NIX_STORE_DIR, rv[i]->out_base));
        }
        rc = cache__exists(c, (const char *const *)names, nr, present, e);
        if (rc < 0)
            goto out;
        for (size_t i = 0; i < nr; i++)
            rv[i]->done = present[i];
    }
    strvec_sort_unique(&all);
    rc = publish_paths(c, store, (const char *const *)all.v, all.n, nr == 0, &st, e);
    if (rc < 0)
        goto out;
    st.realisations_n = nr;
    for (size_t i = 0; i < nr && rc == 0; i++)
        rc = real_write_tree(c, reals, rv[i], &st.realisations, e);
    if (st.realisations > 0 || (nr > 0 && st.uploaded > 0)) {
        /* the realisations and the narinfos before them (also after a failure) */
        Err se = {0};
        int src = cache__sync(c, &se);
        if (src < 0 && rc == 0) {
            *e = se;
            rc = src;
        }
    }
out:
    if (rc < 0)
        atomic_fetch_add(&c->failures, 1);
    atomic_fetch_add(&c->upload_ms, util_now_ms() - t0);
    if (st_out)
        *st_out = st;
    for (size_t i = 0; names && i < nr; i++)
        free(names[i]);
    free(names);
    free(present);
    free(rv);
    map_free(reals);
    strvec_dispose(&all);
    return rc;
}

/* ---------------------------------------------------------------- logs */

int cache_publish_log(Cache *c, const char *drv_path, const char *log_file, int zstd, Err *e)
{
    CacheSpool spool = {.fd = -1};
    FILE *f = NULL;
    ZSTD_DCtx *dz = NULL;
    uint8_t *in = NULL, *outb = NULL;
    char *rel = NULL;
    uint64_t t0 = util_now_ms();
    int rc;

    rc = cache_init(c, e);
    if (rc < 0)
        goto out;
    f = fopen(log_file, "rbe");
    if (!f) {
        rc = err_sys(e, ERR_IO, "cannot open the log '%s'", log_file);
        goto out;
    }
    rc = cache__spool_open(c, &spool, e);
    if (rc < 0)
        goto out;
    in = xmalloc(CACHE_OUT_CHUNK);
    outb = xmalloc(CACHE_OUT_CHUNK);
    if (zstd)
        dz = ZSTD_createDCtx();
    for (;;) {
        size_t got = fread(in, 1, CACHE_OUT_CHUNK, f);
        if (got == 0) {
            if (ferror(f))
                rc = err_sys(e, ERR_IO, "cannot read the log '%s'", log_file);
            break;
        }
        if (!dz) {
            rc = cache__spool_write(&spool, in, got, e);
        } else {
            ZSTD_inBuffer ib = {in, got, 0};
            while (rc == 0 && ib.pos < ib.size) {
                ZSTD_outBuffer ob = {outb, CACHE_OUT_CHUNK, 0};
                size_t r = ZSTD_decompressStream(dz, &ob, &ib);
                if (ZSTD_isError(r))
                    rc = err_set(e, ERR_MALFORMED, "log '%s': %s", log_file, ZSTD_getErrorName(r));
                else
                    rc = cache__spool_write(&spool, outb, ob.pos, e);
            }
        }
        if (rc < 0)
            break;
    }
    if (rc < 0)
        goto out;
    rel = xasprintf("log/%s", nix_store_path_base(drv_path));
    rc = cache__spool_put(c, &spool, rel, "text/plain; charset=utf-8", e);
    if (rc == 0)
        rc = cache__sync(c, e);
    if (rc == 0)
        atomic_fetch_add(&c->logs, 1);
out:
    if (rc < 0) {
        atomic_fetch_add(&c->failures, 1);
        err_prefix(e, "publishing the log of %s", drv_path);
    }
    atomic_fetch_add(&c->upload_ms, util_now_ms() - t0);
    cache__spool_discard(&spool);
    if (f)
        fclose(f);
    ZSTD_freeDCtx(dz);
    free(in);
    free(outb);
    free(rel);
    return rc;
}
