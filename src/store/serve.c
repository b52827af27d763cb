/*
 * serve.c: client of the serve protocol (`nix-store --serve --write`, 2.7 in Nix
 * 2.4-2.34), the protocol of ssh:// stores and of hydra-queue-runner.
 *
 * There is no stderr channel: stdout carries only replies, and the builder's output
 * and every error go to the process's stderr (over ssh, ssh's stderr), which the wire
 * drains while waiting; during a build it is the build log.  Any error makes the
 * server print "error: ..." and exit, so errors reach us as EOF plus the stderr tail.
 *
 *   | cmd                | request after u64 cmd                   | reply               |
 *   |--------------------|-----------------------------------------|---------------------|
 *   | 1 QueryValidPaths  | u64 lock, u64 substitute, strings paths | strings valid       |
 *   | 2 QueryPathInfos   | strings paths                           | per valid path:     |
 *   |                    |                                         | path, deriver, refs,|
 *   |                    |                                         | u64 dlSize, narSize,|
 *   |                    |                                         | [>=4] narHash, ca,  |
 *   |                    |                                         | sigs; then ""       |
 *   | 3 DumpStorePath    | string path                             | raw NAR             |
 *   | 8 BuildDerivation  | path, BasicDerivation, BuildOptions     | BuildResult         |
 *   | 9 AddToStoreNar    | [>=5] path info, narSize raw NAR bytes  | u64 1               |
 *
 * BuildOptions: u64 maxSilentTime, buildTimeout, [>=2] maxLogSize, [>=3] nrRepeats,
 * enforceDeterminism, [>=7] keepFailed.  The 2.8 server uses the client's minor as-is.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

int store__serve_handshake(StoreConn *c, Err *e)
{
    StoreWire *w = &c->w;
    uint64_t magic, peer;
    char tail[400];
    int rc;
    if ((rc = store__wire_put_u64(w, STORE_SERVE_MAGIC_1, e)) < 0 ||
        (rc = store__wire_put_u64(w, STORE_SERVE_VERSION, e)) < 0 ||
        (rc = store__wire_flush_lenient(w, e)) < 0 || (rc = store__wire_u64(w, &magic, e)) < 0)
        return rc;
    if (magic != STORE_SERVE_MAGIC_2) {
        store__wire_drain_stderr(w, 300);
        store__wire_stderr_tail(w, tail, sizeof tail);
        return err_set(e, ERR_MALFORMED,
                       "protocol mismatch: not 'nix-store --serve' (magic 0x%llx)%s%s",
                       (unsigned long long)magic, tail[0] ? ": " : "", tail);
    }
    rc = store__wire_u64(w, &peer, e);
    if (rc < 0)
        return rc;
    if ((peer & 0xff00) != 0x200 || peer > 0xffff)
        return err_set(e, ERR_UNSUPPORTED, "unsupported serve protocol version 0x%llx",
                       (unsigned long long)peer);
    if (peer < STORE_SERVE_MIN)
        return err_set(e, ERR_UNSUPPORTED,
                       "the peer speaks serve protocol %u.%u; at least %u.%u is needed",
                       (unsigned)(peer >> 8), (unsigned)(peer & 0xff), STORE_SERVE_MIN >> 8,
                       STORE_SERVE_MIN & 0xff);
    c->peer_version = (unsigned)peer;
    c->version = c->peer_version < STORE_SERVE_VERSION ? c->peer_version : STORE_SERVE_VERSION;
    return 0;
}

static int put_query_valid_paths(StoreWire *w, const char *const *paths, size_t n, int lock,
                                 int substitute, Err *e)
{
    int rc;
    if ((rc = store__wire_put_u64(w, STORE_SCMD_QUERY_VALID_PATHS, e)) < 0 ||
        (rc = store__wire_put_u64(w, (uint64_t)(lock != 0), e)) < 0 ||
        (rc = store__wire_put_u64(w, (uint64_t)(substitute != 0), e)) < 0)
        return rc;
    return store__wire_put_strings(w, paths, n, e);
}

static int read_valid_paths(StoreWire *w, StrVec *valid, Err *e)
{
    int rc = store__wire_paths(w, valid, e);
    if (rc >= 0)
        strvec_sort_unique(valid);
    return rc;
}

int store__serve_query_valid_paths(StoreConn *c, const char *const *paths, size_t n, int lock,
                                   int substitute, StrVec *valid, Err *e)
{
    int rc;
    if ((rc = put_query_valid_paths(&c->w, paths, n, lock, substitute, e)) < 0 ||
        (rc = store__wire_flush_lenient(&c->w, e)) < 0)
        return rc;
    return read_valid_paths(&c->w, valid, e);
}

int store__serve_read_path_infos(StoreWire *w, unsigned version, StorePathInfo ***out, size_t *n,
                                 Err *e)
{
    StorePathInfo **v = NULL, *pi = NULL;
    size_t cnt = 0, cap = 0;
    char *hash = NULL;
    uint64_t dl;
    int rc = 0;
    for (;;) {
        char *path = NULL;
        rc = store__wire_path(w, 1, &path, e);
        if (rc < 0)
            goto out;
        if (!path)
            break;
        if (cnt >= LIMIT_WIRE_LIST) {
            free(path);
            rc = err_set(e, ERR_TOOBIG, "too many path infos from %s", w->peer);
            goto out;
        }
        pi = xcalloc(1, sizeof *pi);
        store__path_info_init(pi);
        pi->path = path;
        if ((rc = store__wire_path(w, 1, &pi->deriver, e)) < 0 ||
            (rc = store__wire_paths(w, &pi->references, e)) < 0 ||
            (rc = store__wire_u64(w, &dl, e)) < 0 ||
            (rc = store__wire_u64(w, &pi->nar_size, e)) < 0)
            goto out;
        strvec_sort_unique(&pi->references);
        if (STORE_MINOR(version) >= 4) {
            rc = store__wire_string(w, 256, &hash, NULL, e);
            if (rc < 0)
                goto out;
            rc = nix_hash_parse(hash, NIX_HASH_SHA256, &pi->nar_hash, e);
            if (rc < 0) {
                rc = err_set(e, ERR_MALFORMED, "bad narHash '%.80s' from %s", hash, w->peer);
                goto out;
            }
            free(hash);
            hash = NULL;
            rc = store__wire_string(w, 1024, &pi->ca, NULL, e);
            if (rc < 0)
                goto out;
            if (!pi->ca[0]) {
                free(pi->ca);
                pi->ca = NULL;
            }
            rc = store__wire_strings(w, 1024, 4096, &pi->sigs, e);
            if (rc < 0)
                goto out;
        } else {
            rc = err_set(e, ERR_UNSUPPORTED, "serve peer < 2.4 sends no NAR hash");
            goto out;
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            v = xrealloc(v, cap * sizeof *v);
        }
        v[cnt++] = pi;
        pi = NULL;
    }
    *out = v;
    *n = cnt;
    v = NULL;
    cnt = 0;
out:
    store_path_info_free(pi);
    free(hash);
    for (size_t i = 0; i < cnt; i++)
        store_path_info_free(v[i]);
    free(v);
    return rc;
}

/* The QueryPathInfos reply, matched to paths: out[i] for paths[i]. */
static int read_path_infos(StoreConn *c, const char *const *paths, size_t n, StorePathInfo **out,
                           Err *e)
{
    StoreWire *w = &c->w;
    StorePathInfo **got = NULL;
    size_t ngot = 0;
    Map *idx = NULL;
    int rc = store__serve_read_path_infos(w, c->version, &got, &ngot, e);
    if (rc < 0)
        return rc;
    idx = map_new(NULL);
    for (size_t i = 0; i < n; i++)
        map_put(idx, paths[i], (void *)(uintptr_t)(i + 1));
    for (size_t i = 0; i < ngot; i++) {
        uintptr_t k = (uintptr_t)map_get(idx, got[i]->path);
        if (k == 0 || out[k - 1]) {
            if (rc >= 0)
                rc = err_set(e, ERR_MALFORMED, "%s sent info about '%s', which was not asked",
                             w->peer, got[i]->path);
            store_path_info_free(got[i]);
            continue;
        }
        out[k - 1] = got[i];
    }
    free(got);
    map_free(idx);
    return rc;
}

int store__serve_query_path_infos(StoreConn *c, const char *const *paths, size_t n,
                                  StorePathInfo **out, Err *e)
{
    StoreWire *w = &c->w;
    int rc;
    if ((rc = store__wire_put_u64(w, STORE_SCMD_QUERY_PATH_INFOS, e)) < 0 ||
        (rc = store__wire_put_strings(w, paths, n, e)) < 0 ||
        (rc = store__wire_flush_lenient(w, e)) < 0)
        return rc;
    return read_path_infos(c, paths, n, out, e);
}

int store__serve_root_path_infos(StoreConn *c, const char *const *paths, size_t n,
                                 StorePathInfo **out, Err *e)
{
    StoreWire *w = &c->w;
    StrVec valid;
    int rc;
    strvec_init(&valid);
    if ((rc = put_query_valid_paths(w, paths, n, 1, 0, e)) < 0 ||
        (rc = store__wire_put_u64(w, STORE_SCMD_QUERY_PATH_INFOS, e)) < 0 ||
        (rc = store__wire_put_strings(w, paths, n, e)) < 0 ||
        (rc = store__wire_flush_lenient(w, e)) < 0 || (rc = read_valid_paths(w, &valid, e)) < 0)
        goto out;
    rc = read_path_infos(c, paths, n, out, e);
out:
    strvec_dispose(&valid);
    return rc;
}

int store__serve_nar_begin(StoreConn *c, const char *path, Err *e)
{
    int rc;
    if ((rc = store__wire_put_u64(&c->w, STORE_SCMD_DUMP_STORE_PATH, e)) < 0 ||
        (rc = store__wire_put_cstr(&c->w, path, e)) < 0)
        return rc;
    return store__wire_flush_lenient(&c->w, e);
}

int store__serve_add_nar(StoreConn *c, const StorePathInfo *info, StoreNarSource src, void *payload,
                         Err *e)
{
    StoreWire *w = &c->w;
    char hex[NIX_HASH_TEXT_MAX];
    uint8_t *chunk = NULL;
    uint64_t sent = 0, v;
    int rc;
    if (info->nar_size == 0)
        return err_set(e, ERR_INVALID, "AddToStoreNar needs the NAR size of %s", info->path);
    nix_hash_to_base16(&info->nar_hash, hex);
    if ((rc = store__wire_put_u64(w, STORE_SCMD_ADD_TO_STORE_NAR, e)) < 0 ||
        (rc = store__wire_put_cstr(w, info->path, e)) < 0 ||
        (rc = store__wire_put_cstr(w, info->deriver, e)) < 0 ||
        (rc = store__wire_put_cstr(w, hex, e)) < 0 ||
        (rc = store__wire_put_strings(w, (const char *const *)info->references.v,
                                      info->references.n, e)) < 0 ||
        (rc = store__wire_put_u64(w, (uint64_t)info->registration_time, e)) < 0 ||
        (rc = store__wire_put_u64(w, info->nar_size, e)) < 0 ||
        (rc = store__wire_put_u64(w, (uint64_t)(info->ultimate != 0), e)) < 0 ||
        (rc = store__wire_put_strings(w, (const char *const *)info->sigs.v, info->sigs.n, e)) < 0 ||
        (rc = store__wire_put_cstr(w, info->ca, e)) < 0)
        return rc;
    chunk = xmalloc(STORE_NAR_CHUNK);
    while (sent < info->nar_size) {
        size_t got = 0, want = STORE_NAR_CHUNK;
        if (info->nar_size - sent < want)
            want = (size_t)(info->nar_size - sent);
        rc = src(payload, chunk, want, &got, e);
        if (rc < 0)
            goto out;
        if (got == 0) {
            rc = err_set(e, ERR_MALFORMED, "NAR of %s ended after %llu of %llu bytes", info->path,
                         (unsigned long long)sent, (unsigned long long)info->nar_size);
            goto out;
        }
        rc = store__wire_put_bytes(w, chunk, got, e);
        if (rc < 0)
            goto out;
        sent += got;
    }
    rc = store__wire_flush_lenient(w, e);
    if (rc < 0)
        goto out;
    rc = store__wire_u64(w, &v, e);
    if (rc < 0)
        goto out;
    if (v != 1)
        rc = err_set(e, ERR_PEER, "%s failed to add %s", w->peer, info->path);
out:
    free(chunk);
    return rc;
}

/* The serve build log is the peer's stderr. */
static void serve_log(void *payload, const uint8_t *data, size_t n)
{
    StoreConn *c = payload;
    if (c->log_cb)
        c->log_cb(c->log_payload, STORE_LOG_BUILD, (const char *)data, n);
}

/* The rest of the log up to the end of stderr; log_cb is set by the caller. */
void store__serve_drain_log(StoreConn *c, int max_ms)
{
    StoreWire *w = &c->w;
    w->on_stderr = serve_log;
    w->on_stderr_payload = c;
    store__wire_drain_stderr_idle(w, max_ms, max_ms);
    w->on_stderr = NULL;
    w->on_stderr_payload = NULL;
}

int store__serve_sync_log(StoreConn *c, Err *e)
{
    StoreWire *w = &c->w;
    int rc = 0;
    w->on_stderr = serve_log;
    w->on_stderr_payload = c;
    for (int i = 0; i < 2 && rc >= 0; i++) {
        StrVec valid;
        strvec_init(&valid);
        rc = store__serve_query_valid_paths(c, NULL, 0, 0, 0, &valid, e);
        if (rc >= 0 && valid.n)
            rc = err_set(e, ERR_PEER, "%s: %zu valid paths of none", w->peer, valid.n);
        strvec_dispose(&valid);
    }
    if (rc >= 0)
        store__wire_drain_stderr_idle(w, 5, 1000);
    w->on_stderr = NULL;
    w->on_stderr_payload = NULL;
    return rc;
}

int store__serve_build(StoreConn *c, const char *drv_path, const NixDrv *d,
                       const StoreBuildOptions *o, StoreBuildResult **out, Err *e)
{
    StoreWire *w = &c->w;
    unsigned minor = STORE_MINOR(c->version);
    int rc;
    if ((rc = store__wire_put_u64(w, STORE_SCMD_BUILD_DERIVATION, e)) < 0 ||
        (rc = store__wire_put_cstr(w, drv_path, e)) < 0 ||
        (rc = store__put_basic_drv(w, d, e)) < 0 ||
        (rc = store__wire_put_u64(w, o->max_silent_time, e)) < 0 ||
        (rc = store__wire_put_u64(w, o->build_timeout, e)) < 0)
        return rc;
    if (minor >= 2 && (rc = store__wire_put_u64(w, o->max_log_size, e)) < 0)
        return rc;
    if (minor >= 3 &&
        ((rc = store__wire_put_u64(w, o->repeat, e)) < 0 ||
         (rc = store__wire_put_u64(w, (uint64_t)(o->enforce_determinism != 0), e)) < 0))
        return rc;
    if (minor >= 7 && (rc = store__wire_put_u64(w, (uint64_t)(c->opts.keep_failed != 0), e)) < 0)
        return rc;
    w->on_stderr = serve_log;
    w->on_stderr_payload = c;
    rc = store__wire_flush_lenient(w, e);
    if (rc >= 0)
        rc = store__read_build_result(w, STORE_PROTO_SERVE, c->version, out, e);
    if (rc >= 0)
        /* The log is the peer's stderr, a pipe apart from the reply: ssh may have
         * delivered the reply while log bytes are still on their way (a long line
         * waits in ssh's buffer for the pipe).  Take them while they keep coming. */
        store__wire_drain_stderr_idle(w, 20, 10000);
    w->on_stderr = NULL;
    w->on_stderr_payload = NULL;
    return rc;
}
