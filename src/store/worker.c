/*
 * worker.c: client of the Nix worker protocol (nix-daemon; Nix 2.8 speaks 1.34).
 *
 * We announce min(ours, the daemon's) and use that number for every "if minor >= N"
 * decision: a 2.8 daemon does not negotiate, it follows what the client says, so both
 * sides then agree.  Each operation is `u64 op, arguments`, then the stderr loop
 * (log text, activities, results, STDERR_READ requests) until STDERR_LAST and the
 * reply, or STDERR_ERROR and no reply.
 *
 * stderr messages (nix-protocols.md section 2.3):
 *
 *   | msg            | value      | payload                                           |
 *   |----------------|------------|---------------------------------------------------|
 *   | NEXT           | 0x6f6c6d67 | string                                            |
 *   | READ           | 0x64617461 | u64 max; we answer with a string of <= max bytes  |
 *   | WRITE          | 0x64617416 | string (we never expect one)                      |
 *   | LAST           | 0x616c7473 | -                                                 |
 *   | ERROR (>=1.26) | 0x63787470 | str "Error", u64 level, str name, str msg, u64 0, |
 *   |                |            | u64 nTraces, nTraces x (u64 0, str hint)          |
 *   | ERROR (<1.26)  |            | str msg, u64 status                               |
 *   | START_ACTIVITY | 0x53545254 | u64 id, u64 level, u64 type, str text, fields,    |
 *   |                |            | u64 parent                                        |
 *   | STOP_ACTIVITY  | 0x53544f50 | u64 id                                            |
 *   | RESULT         | 0x52534c54 | u64 id, u64 type, fields                          |
 *
 * fields = u64 n, n x (u64 kind: 0 -> u64, 1 -> string).  Build output arrives as
 * RESULT type 101 (buildLogLine, field 0 = the line) of the build activity.
 *
 * Substitutions run with useSubstitutes on, maxBuildJobs 0 and keepGoing (builds off),
 * at Nix's warning level, or its debug level when the caller wants the misses Nix
 * names (substitutes_on).
 *
 * Requests whose arguments the daemon could reject while still reading them (a
 * string that is not a store path) make a 2.8 daemon send the error twice and hang
 * up; we validate every path before sending, so that does not happen.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define RES_BUILD_LOG_LINE      101
#define RES_POST_BUILD_LOG_LINE 107
#define ACT_BUILD               105

/* ---------------------------------------------------------------- helpers */

/* Where a piece of log text goes: the connection's log callback, as `kind`. */
typedef struct LogDest {
    StoreConn *c;
    StoreLogKind kind;
} LogDest;

static void emit(void *payload, const char *s, size_t n)
{
    LogDest *d = payload;
    if (d->c->log_cb && n > 0)
        d->c->log_cb(d->c->log_payload, d->kind, s, n);
}

/* Log text from the daemon is data: any bytes, any length, split into pieces of at
 * most LIMIT_WIRE_LOG_CHUNK (the log keeps every byte; the log-size limit is the only
 * limit on it).  d NULL discards the text. */
static int read_text(StoreWire *w, LogDest *d, const char *suffix, Err *e)
{
    return store__wire_text(w, LIMIT_WIRE_LOG_CHUNK, suffix, d ? emit : NULL, d, e);
}

/* Read the fields of an activity or result; the first string field goes to first
 * (NULL to discard it) followed by suffix, the others are skipped.  A builder sets
 * their count (`@nix` messages): no limit, each field is consumed as it comes. */
static int read_fields(StoreWire *w, LogDest *first, const char *suffix, Err *e)
{
    uint64_t n;
    int rc = store__wire_u64(w, &n, e);
    if (rc < 0)
        return rc;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t kind, v;
        rc = store__wire_u64(w, &kind, e);
        if (rc < 0)
            return rc;
        if (kind == 0) {
            rc = store__wire_u64(w, &v, e);
        } else if (kind == 1) {
            rc = read_text(w, first, suffix, e);
            first = NULL;
        } else {
            return err_set(e, ERR_MALFORMED, "unknown log field type %llu",
                           (unsigned long long)kind);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int read_error(StoreConn *c, Err *e)
{
    StoreWire *w = &c->w;
    char *msg = NULL, *hint = NULL;
    uint64_t v, ntraces;
    Buf b;
    int rc;
    buf_init(&b, ERR_MSG_MAX * 4);
    if (STORE_MINOR(c->version) >= 26) {
        char *type = NULL;
        rc = store__wire_string(w, 256, &type, NULL, e);
        if (rc < 0)
            goto out;
        if (strcmp(type, "Error") != 0) {
            rc = err_set(e, ERR_MALFORMED, "error message of type '%.40s'", type);
            free(type);
            goto out;
        }
        free(type);
        rc = store__wire_u64(w, &v, e); /* level */
        if (rc < 0)
            goto out;
        rc = store__wire_skip_string(w, 256, e); /* name */
        if (rc < 0)
            goto out;
        rc = store__wire_message(w, LIMIT_WIRE_MESSAGE, &msg, e);
        if (rc < 0)
            goto out;
        rc = store__wire_num(w, 0, &v, e); /* havePos: always 0 */
        if (rc < 0)
            goto out;
        rc = store__wire_num(w, STORE_WIRE_TRACES, &ntraces, e);
        if (rc < 0)
            goto out;
        buf_puts(&b, msg);
        for (uint64_t i = 0; i < ntraces; i++) {
            rc = store__wire_num(w, 0, &v, e);
            if (rc < 0)
                goto out;
            rc = store__wire_message(w, LIMIT_WIRE_MESSAGE, &hint, e);
            if (rc < 0)
                goto out;
            buf_puts(&b, "; ");
            buf_puts(&b, hint);
            free(hint);
            hint = NULL;
        }
    } else {
        rc = store__wire_message(w, LIMIT_WIRE_MESSAGE, &msg, e);
        if (rc < 0)
            goto out;
        rc = store__wire_u64(w, &v, e); /* exit status */
        if (rc < 0)
            goto out;
        buf_puts(&b, msg);
    }
    {
        char *text = xstrdup(buf_cstr(&b));
        store__clean_message(text);
        rc = err_set(e, ERR_PEER, "%s", text);
        free(text);
    }
out:
    free(msg);
    free(hint);
    buf_dispose(&b);
    return rc;
}

int store__worker_stderr(StoreConn *c, const StoreReadSource *src, Err *e)
{
    StoreWire *w = &c->w;
    for (;;) {
        uint64_t msg, v;
        int rc = store__wire_u64(w, &msg, e);
        if (rc < 0)
            return rc;
        switch (msg) {
        case STORE_STDERR_LAST: return 0;
        case STORE_STDERR_ERROR: return read_error(c, e);
        case STORE_STDERR_NEXT: {
            LogDest d = {c, STORE_LOG_MSG};
            rc = read_text(w, &d, NULL, e);
            if (rc < 0)
                return rc;
            break;
        }
        case STORE_STDERR_READ: {
            uint8_t *buf;
            size_t got = 0;
            rc = store__wire_num(w, LIMIT_WIRE_FRAME, &v, e);
            if (rc < 0)
                return rc;
            if (!src || !src->fn)
                return err_set(e, ERR_MALFORMED, "unexpected STDERR_READ from %s", w->peer);
            buf = xmalloc(v ? (size_t)v : 1);
            rc = v ? src->fn(src->payload, buf, (size_t)v, &got, e) : 0;
            if (rc >= 0)
                rc = store__wire_put_string(w, buf, got, e);
            free(buf);
            if (rc >= 0)
                rc = store__wire_flush(w, e);
            if (rc < 0)
                return rc;
            break;
        }
        case STORE_STDERR_WRITE:
            return err_set(e, ERR_MALFORMED, "unexpected STDERR_WRITE from %s", w->peer);
        case STORE_STDERR_START_ACTIVITY: {
            uint64_t id, level, type;
            LogDest d = {c, STORE_LOG_ACTIVITY};
            if ((rc = store__wire_u64(w, &id, e)) < 0 || (rc = store__wire_u64(w, &level, e)) < 0 ||
                (rc = store__wire_u64(w, &type, e)) < 0 ||
                (rc = read_text(w, type == ACT_BUILD || level <= 3 ? &d : NULL, NULL, e)) < 0 ||
                (rc = read_fields(w, NULL, NULL, e)) < 0 ||
                (rc = store__wire_u64(w, &v, e)) < 0) /* parent */
                return rc;
            break;
        }
        case STORE_STDERR_STOP_ACTIVITY:
            rc = store__wire_u64(w, &v, e);
            if (rc < 0)
                return rc;
            break;
        case STORE_STDERR_RESULT: {
            uint64_t id, type;
            LogDest d = {c, STORE_LOG_BUILD};
            if ((rc = store__wire_u64(w, &id, e)) < 0 || (rc = store__wire_u64(w, &type, e)) < 0)
                return rc;
            if (type == RES_BUILD_LOG_LINE || type == RES_POST_BUILD_LOG_LINE)
                rc = read_fields(w, &d, "\n", e);
            else
                rc = read_fields(w, NULL, NULL, e);
            if (rc < 0)
                return rc;
            break;
        }
        default:
            return err_set(e, ERR_MALFORMED, "unknown stderr message 0x%llx from %s",
                           (unsigned long long)msg, w->peer);
        }
    }
}

/* Flush the request and run the stderr loop.  A daemon that hung up while we were
 * writing may have said why first: the loop reads that (or reports the EOF). */
static int send_and_wait(StoreConn *c, const StoreReadSource *src, Err *e)
{
    int rc = store__wire_flush_lenient(&c->w, e);
    if (rc < 0)
        return rc;
    return store__worker_stderr(c, src, e);
}

/* ---------------------------------------------------------------- handshake */

int store__worker_handshake(StoreConn *c, Err *e)
{
    StoreWire *w = &c->w;
    uint64_t magic, peer;
    unsigned v;
    char tail[400];
    int rc;
    if ((rc = store__wire_put_u64(w, STORE_WORKER_MAGIC_1, e)) < 0 ||
        (rc = store__wire_flush_lenient(w, e)) < 0 || (rc = store__wire_u64(w, &magic, e)) < 0)
        return rc;
    if (magic != STORE_WORKER_MAGIC_2) {
        store__wire_drain_stderr(w, 300);
        store__wire_stderr_tail(w, tail, sizeof tail);
        return err_set(e, ERR_MALFORMED, "protocol mismatch: not a Nix daemon (magic 0x%llx)%s%s",
                       (unsigned long long)magic, tail[0] ? ": " : "", tail);
    }
    rc = store__wire_u64(w, &peer, e);
    if (rc < 0)
        return rc;
    if ((peer & 0xff00) != 0x100 || peer > 0xffff)
        return err_set(e, ERR_UNSUPPORTED, "unsupported worker protocol version 0x%llx",
                       (unsigned long long)peer);
    if (peer < STORE_WORKER_MIN)
        return err_set(e, ERR_UNSUPPORTED,
                       "the daemon speaks worker protocol %u.%u; at least %u.%u is needed",
                       (unsigned)(peer >> 8), (unsigned)(peer & 0xff), STORE_WORKER_MIN >> 8,
                       STORE_WORKER_MIN & 0xff);
    c->peer_version = (unsigned)peer;
    v = c->peer_version < STORE_WORKER_VERSION ? c->peer_version : STORE_WORKER_VERSION;
    c->version = v;
    rc = store__wire_put_u64(w, v, e);
    if (rc >= 0 && STORE_MINOR(v) >= 14)
        rc = store__wire_put_u64(w, 0, e); /* no CPU affinity */
    if (rc >= 0 && STORE_MINOR(v) >= 11)
        rc = store__wire_put_u64(w, 0, e); /* reserveSpace */
    if (rc >= 0)
        rc = store__wire_flush_lenient(w, e);
    if (rc < 0)
        return rc;
    if (STORE_MINOR(v) >= 33) {
        rc = store__wire_string(w, 1024, &c->nix_version, NULL, e);
        if (rc < 0)
            return rc;
    }
    if (STORE_MINOR(v) >= 35) {
        uint64_t t;
        rc = store__wire_u64(w, &t, e);
        if (rc < 0)
            return rc;
    }
    return store__worker_stderr(c, NULL, e);
}

/* ---------------------------------------------------------------- composite types */

int store__worker_read_path_info(StoreConn *c, StorePathInfo *pi, Err *e)
{
    StoreWire *w = &c->w;
    char *hash = NULL;
    uint64_t v;
    int rc;
    rc = store__wire_path(w, 1, &pi->deriver, e);
    if (rc < 0)
        goto out;
    rc = store__wire_string(w, 256, &hash, NULL, e);
    if (rc < 0)
        goto out;
    rc = nix_hash_parse(hash, NIX_HASH_SHA256, &pi->nar_hash, e);
    if (rc < 0) {
        rc = err_set(e, ERR_MALFORMED, "bad narHash '%.80s' from %s", hash, w->peer);
        goto out;
    }
    rc = store__wire_paths(w, &pi->references, e);
    if (rc < 0)
        goto out;
    strvec_sort_unique(&pi->references);
    if ((rc = store__wire_u64(w, &v, e)) < 0)
        goto out;
    pi->registration_time = (int64_t)v;
    if ((rc = store__wire_u64(w, &pi->nar_size, e)) < 0)
        goto out;
    if (STORE_MINOR(c->version) >= 16) {
        if ((rc = store__wire_num(w, 1, &v, e)) < 0)
            goto out;
        pi->ultimate = (int)v;
        rc = store__wire_strings(w, 1024, 4096, &pi->sigs, e);
        if (rc < 0)
            goto out;
        rc = store__wire_string(w, 1024, &pi->ca, NULL, e);
        if (rc < 0)
            goto out;
        if (!pi->ca[0]) {
            free(pi->ca);
            pi->ca = NULL;
        }
    }
out:
    free(hash);
    return rc;
}

int store__put_basic_drv(StoreWire *w, const NixDrv *d, Err *e)
{
    int rc = store__wire_put_u64(w, d->n_outputs, e);
    for (size_t i = 0; rc >= 0 && i < d->n_outputs; i++) {
        const NixDrvOutput *o = &d->outputs[i];
        if ((rc = store__wire_put_cstr(w, o->name, e)) < 0 ||
            (rc = store__wire_put_cstr(w, o->path, e)) < 0 ||
            (rc = store__wire_put_cstr(w, o->hash_algo, e)) < 0)
            break;
        rc = store__wire_put_cstr(w, o->hash, e);
    }
    if (rc >= 0)
        rc = store__wire_put_strings(w, (const char *const *)d->srcs, d->n_srcs, e);
    if (rc >= 0)
        rc = store__wire_put_cstr(w, d->platform, e);
    if (rc >= 0)
        rc = store__wire_put_cstr(w, d->builder, e);
    if (rc >= 0)
        rc = store__wire_put_strings(w, (const char *const *)d->args, d->n_args, e);
    if (rc >= 0)
        rc = store__wire_put_u64(w, d->n_env, e);
    for (size_t i = 0; rc >= 0 && i < d->n_env; i++) {
        rc = store__wire_put_cstr(w, d->env[i].key, e);
        if (rc >= 0)
            rc = store__wire_put_cstr(w, d->env[i].value, e);
    }
    return rc;
}

int store__read_build_result(StoreWire *w, StoreProto proto, unsigned version,
                             StoreBuildResult **out, Err *e)
{
    StoreBuildResult *r = xcalloc(1, sizeof *r);
    unsigned minor = STORE_MINOR(version);
    uint64_t v, n;
    int rc;
    int times = proto == STORE_PROTO_WORKER ? minor >= 29 : minor >= 3;
    /* serve: a 2.4-2.10 server sends builtOutputs to every client; servers that
     * announce < 2.6 (Nix <= 2.3) never do; we announce 2.7, so minor >= 6 decides */
    int outputs = proto == STORE_PROTO_WORKER ? minor >= 28 : minor >= 6;
    if ((rc = store__wire_num(w, 255, &v, e)) < 0)
        goto out;
    r->status = (int)v;
    rc = store__wire_message(w, LIMIT_WIRE_MESSAGE, &r->error_msg, e);
    if (rc < 0)
        goto out;
    store__clean_message(r->error_msg);
    if (times) {
        if ((rc = store__wire_u64(w, &r->times_built, e)) < 0 ||
            (rc = store__wire_num(w, 1, &v, e)) < 0)
            goto out;
        r->is_non_deterministic = (int)v;
        if ((rc = store__wire_u64(w, &v, e)) < 0)
            goto out;
        r->start_time = (int64_t)v;
        if ((rc = store__wire_u64(w, &v, e)) < 0)
            goto out;
        r->stop_time = (int64_t)v;
    }
    if (outputs) {
        rc = store__wire_num(w, LIMIT_DRV_OUTPUTS, &n, e);
        if (rc < 0)
            goto out;
        r->outputs = xcalloc(n ? (size_t)n : 1, sizeof *r->outputs);
        for (uint64_t i = 0; i < n; i++) {
            StoreBuiltOutput *o = &r->outputs[i];
            char *base = NULL;
            const char *bang;
            r->n_outputs++;
            rc = store__wire_string(w, 1024, &o->id, NULL, e);
            if (rc < 0)
                goto out;
            rc = store__wire_string(w, LIMIT_WIRE_STRING, &o->json, NULL, e);
            if (rc < 0)
                goto out;
            bang = strchr(o->id, '!');
            if (!bang || !bang[1]) {
                rc =
                    err_set(e, ERR_MALFORMED, "built output id '%.100s' has no output name", o->id);
                goto out;
            }
            o->output = xstrdup(bang + 1);
            rc = store__realisation_parse(o->json, &base, NULL, e);
            if (rc < 0)
                goto out;
            o->out_path = xasprintf("%s/%s", NIX_STORE_DIR, base);
            free(base);
        }
    }
    *out = r;
    r = NULL;
out:
    store_build_result_free(r);
    return rc;
}

/* ---------------------------------------------------------------- operations */

int store__worker_query_valid_paths(StoreConn *c, const char *const *paths, size_t n,
                                    int substitute, StrVec *valid, Err *e)
{
    StoreWire *w = &c->w;
    int rc;
    if ((rc = store__wire_put_u64(w, STORE_WOP_QUERY_VALID_PATHS, e)) < 0 ||
        (rc = store__wire_put_strings(w, paths, n, e)) < 0)
        return rc;
    if (STORE_MINOR(c->version) >= 27 &&
        (rc = store__wire_put_u64(w, (uint64_t)(substitute != 0), e)) < 0)
        return rc;
    rc = send_and_wait(c, NULL, e);
    if (rc < 0)
        return rc;
    rc = store__wire_paths(w, valid, e);
    if (rc < 0)
        return rc;
    strvec_sort_unique(valid);
    return 0;
}

int store__worker_is_valid_path(StoreConn *c, const char *path, int *valid, Err *e)
{
    uint64_t v;
    int rc;
    if ((rc = store__wire_put_u64(&c->w, STORE_WOP_IS_VALID_PATH, e)) < 0 ||
        (rc = store__wire_put_cstr(&c->w, path, e)) < 0 || (rc = send_and_wait(c, NULL, e)) < 0 ||
        (rc = store__wire_num(&c->w, 1, &v, e)) < 0)
        return rc;
    *valid = (int)v;
    return 0;
}

/* One request per path (op, path), not flushed. */
static int put_path_ops(StoreWire *w, uint64_t op, const char *const *paths, size_t n, Err *e)
{
    int rc = 0;
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        rc = store__wire_put_u64(w, op, e);
        if (rc >= 0)
            rc = store__wire_put_cstr(w, paths[i], e);
    }
    return rc;
}

/* The replies to n AddTempRoot requests. */
static int read_temp_roots(StoreConn *c, size_t n, Err *e)
{
    uint64_t v;
    int rc = 0;
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        rc = store__worker_stderr(c, NULL, e);
        if (rc >= 0)
            rc = store__wire_u64(&c->w, &v, e);
    }
    return rc;
}

/* The replies to QueryPathInfo for paths[0..n): out[i] stays NULL for an invalid path.
 * A daemon < 1.17 reports an invalid path as an error: the first such error is kept in
 * *saved (*first_err set) and the other replies still read. */
static int read_path_infos(StoreConn *c, const char *const *paths, size_t n, StorePathInfo **out,
                           int *first_err, Err *saved, Err *e)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t valid = 1;
        Err e1;
        int rc;
        err_clear(&e1);
        rc = store__worker_stderr(c, NULL, &e1);
        if (rc == ERR_PEER) {
            if (!*first_err) {
                *first_err = rc;
                *saved = e1;
            }
            continue;
        }
        if (rc < 0) {
            if (e)
                *e = e1;
            return rc;
        }
        if (STORE_MINOR(c->version) >= 17 && (rc = store__wire_num(&c->w, 1, &valid, e)) < 0)
            return rc;
        if (!valid)
            continue;
        out[i] = xcalloc(1, sizeof *out[i]);
        store__path_info_init(out[i]);
        out[i]->path = xstrdup(paths[i]);
        if ((rc = store__worker_read_path_info(c, out[i], e)) < 0)
            return rc;
    }
    return 0;
}

/* In windows of `window` paths: with root, AddTempRoot for each path of the window,
 * then QueryPathInfo for each, flushed together, then every reply read. */
static int path_infos(StoreConn *c, const char *const *paths, size_t n, int root, size_t window,
                      StorePathInfo **out, Err *e)
{
    StoreWire *w = &c->w;
    int first_err = 0;
    Err saved;
    err_clear(&saved);
    for (size_t base = 0; base < n; base += window) {
        size_t k = base + window < n ? window : n - base;
        int rc = root ? put_path_ops(w, STORE_WOP_ADD_TEMP_ROOT, paths + base, k, e) : 0;
        if (rc >= 0)
            rc = put_path_ops(w, STORE_WOP_QUERY_PATH_INFO, paths + base, k, e);
        if (rc >= 0)
            rc = store__wire_flush_lenient(w, e);
        if (rc >= 0 && root)
            rc = read_temp_roots(c, k, e);
        if (rc >= 0)
            rc = read_path_infos(c, paths + base, k, out + base, &first_err, &saved, e);
        if (rc < 0)
            return rc;
    }
    if (first_err) {
        if (e)
            *e = saved;
        return first_err;
    }
    return 0;
}

int store__worker_query_path_infos(StoreConn *c, const char *const *paths, size_t n,
                                   StorePathInfo **out, Err *e)
{
    return path_infos(c, paths, n, 0, STORE_PIPELINE_WINDOW, out, e);
}

int store__worker_root_path_infos(StoreConn *c, const char *const *paths, size_t n,
                                  StorePathInfo **out, Err *e)
{
    return path_infos(c, paths, n, 1, STORE_PIPELINE_WINDOW / 2, out, e);
}

int store__worker_query_output_map(StoreConn *c, const char *drv, StoreOutputMap **out, Err *e)
{
    StoreWire *w = &c->w;
    StoreOutputMap *m = NULL;
    uint64_t n;
    int rc;
    if (STORE_MINOR(c->version) < 22)
        return err_set(e, ERR_UNSUPPORTED, "QueryDerivationOutputMap needs worker protocol 1.22");
    if ((rc = store__wire_put_u64(w, STORE_WOP_QUERY_DERIVATION_OUTPUT_MAP, e)) < 0 ||
        (rc = store__wire_put_cstr(w, drv, e)) < 0 || (rc = send_and_wait(c, NULL, e)) < 0 ||
        (rc = store__wire_num(w, LIMIT_DRV_OUTPUTS, &n, e)) < 0)
        return rc;
    m = xcalloc(1, sizeof *m);
    m->v = xcalloc(n ? (size_t)n : 1, sizeof *m->v);
    for (uint64_t i = 0; i < n; i++) {
        rc = store__wire_string(w, LIMIT_STORE_PATH_NAME, &m->v[i].name, NULL, e);
        if (rc < 0)
            goto out;
        m->n++;
        rc = store__wire_path(w, 1, &m->v[i].path, e);
        if (rc < 0)
            goto out;
    }
    *out = m;
    m = NULL;
out:
    store_output_map_free(m);
    return rc;
}

static int realisation_reply(StoreConn *c, char **out_path, char **out_json, Err *e);

int store__worker_query_realisation(StoreConn *c, const char *id, char **out_path, char **out_json,
                                    Err *e)
{
    StoreWire *w = &c->w;
    int rc;
    *out_path = NULL;
    if (out_json)
        *out_json = NULL;
    if (STORE_MINOR(c->version) < 27)
        return err_set(e, ERR_UNSUPPORTED, "the daemon is too old for realisations");
    if ((rc = store__wire_put_u64(w, STORE_WOP_QUERY_REALISATION, e)) < 0 ||
        (rc = store__wire_put_cstr(w, id, e)) < 0 || (rc = send_and_wait(c, NULL, e)) < 0)
        return rc;
    return realisation_reply(c, out_path, out_json, e);
}

/* Pipelined: a window of requests is written before their replies are read (the daemon
 * answers in order); the window keeps both directions far below the socket buffers. */
#define REALISATION_WINDOW 64

int store__worker_query_realisations(StoreConn *c, char *const *ids, size_t n, char **out_paths,
                                     Err *e)
{
    StoreWire *w = &c->w;
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        out_paths[i] = NULL;
    if (STORE_MINOR(c->version) < 27)
        return err_set(e, ERR_UNSUPPORTED, "the daemon is too old for realisations");
    for (size_t at = 0; at < n && rc >= 0; at += REALISATION_WINDOW) {
        size_t end = n - at < REALISATION_WINDOW ? n : at + REALISATION_WINDOW;
        for (size_t i = at; i < end && rc >= 0; i++) {
            rc = store__wire_put_u64(w, STORE_WOP_QUERY_REALISATION, e);
            if (rc >= 0)
                rc = store__wire_put_cstr(w, ids[i], e);
        }
        if (rc >= 0)
            rc = store__wire_flush_lenient(w, e);
        for (size_t i = at; i < end && rc >= 0; i++) {
            rc = store__worker_stderr(c, NULL, e);
            if (rc >= 0)
                rc = realisation_reply(c, &out_paths[i], NULL, e);
        }
    }
    return rc < 0 ? rc : 0;
}

/* The reply of one QueryRealisation (after its stderr loop). */
static int realisation_reply(StoreConn *c, char **out_path, char **out_json, Err *e)
{
    StoreWire *w = &c->w;
    int rc = 0;
    if (STORE_MINOR(c->version) >= 31) {
        uint64_t n;
        char *json = NULL;
        rc = store__wire_num(w, 16, &n, e);
        if (rc < 0)
            return rc;
        for (uint64_t i = 0; i < n; i++) {
            rc = store__wire_string(w, LIMIT_WIRE_STRING, &json, NULL, e);
            if (rc < 0)
                return rc;
            if (i == 0 && !*out_path) {
                rc = store__realisation_parse(json, out_path, NULL, e);
                if (rc < 0) {
                    free(json);
                    return rc;
                }
                if (out_json) {
                    *out_json = json;
                    json = NULL;
                }
            }
            free(json);
            json = NULL;
        }
    } else {
        StrVec paths;
        strvec_init(&paths);
        rc = store__wire_paths(w, &paths, e);
        if (rc >= 0 && paths.n > 0)
            *out_path = xstrdup(nix_store_path_base(paths.v[0]));
        strvec_dispose(&paths);
    }
    return rc;
}

int store__worker_register_drv_output(StoreConn *c, const char *json, Err *e)
{
    StoreWire *w = &c->w;
    int rc;
    if (STORE_MINOR(c->version) < 27)
        return err_set(e, ERR_UNSUPPORTED, "the daemon is too old for realisations");
    rc = store__wire_put_u64(w, STORE_WOP_REGISTER_DRV_OUTPUT, e);
    if (rc < 0)
        return rc;
    if (STORE_MINOR(c->version) >= 31) {
        rc = store__wire_put_cstr(w, json, e);
    } else {
        char *base = NULL, *id = NULL;
        rc = store__realisation_parse(json, &base, &id, e);
        if (rc >= 0)
            rc = store__wire_put_cstr(w, id, e);
        if (rc >= 0)
            rc = store__wire_put_cstr(w, base, e);
        free(base);
        free(id);
    }
    if (rc < 0)
        return rc;
    return send_and_wait(c, NULL, e);
}

int store__worker_add_text(StoreConn *c, const char *name, const char *text, size_t len,
                           const char *const *refs, size_t nrefs, char **out_path, Err *e)
{
    StoreWire *w = &c->w;
    int rc;
    if ((rc = store__wire_put_u64(w, STORE_WOP_ADD_TEXT_TO_STORE, e)) < 0 ||
        (rc = store__wire_put_cstr(w, name, e)) < 0 ||
        (rc = store__wire_put_string(w, text, len, e)) < 0 ||
        (rc = store__wire_put_strings(w, refs, nrefs, e)) < 0 ||
        (rc = send_and_wait(c, NULL, e)) < 0)
        return rc;
    return store__wire_path(w, 0, out_path, e);
}

static int simple_path_op(StoreConn *c, uint64_t op, const char *arg, Err *e)
{
    uint64_t v;
    int rc;
    if ((rc = store__wire_put_u64(&c->w, op, e)) < 0 ||
        (rc = store__wire_put_cstr(&c->w, arg, e)) < 0 || (rc = send_and_wait(c, NULL, e)) < 0)
        return rc;
    return store__wire_u64(&c->w, &v, e);
}

int store__worker_add_temp_root(StoreConn *c, const char *path, Err *e)
{
    return simple_path_op(c, STORE_WOP_ADD_TEMP_ROOT, path, e);
}

int store__worker_add_temp_roots(StoreConn *c, const char *const *paths, size_t n, Err *e)
{
    for (size_t base = 0; base < n; base += STORE_PIPELINE_WINDOW) {
        size_t k = base + STORE_PIPELINE_WINDOW < n ? STORE_PIPELINE_WINDOW : n - base;
        int rc = put_path_ops(&c->w, STORE_WOP_ADD_TEMP_ROOT, paths + base, k, e);
        if (rc >= 0)
            rc = store__wire_flush_lenient(&c->w, e);
        if (rc >= 0)
            rc = read_temp_roots(c, k, e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int store__worker_add_indirect_root(StoreConn *c, const char *link, Err *e)
{
    return simple_path_op(c, STORE_WOP_ADD_INDIRECT_ROOT, link, e);
}

/* CollectGarbage with gcDeleteSpecific: the paths go unless alive (a root, a temp root,
 * a referrer); the daemon then fails the request with its message. */
int store__worker_delete_paths(StoreConn *c, const char *const *paths, size_t n, Err *e)
{
    StoreWire *w = &c->w;
    StrVec deleted;
    uint64_t v;
    int rc;
    strvec_init(&deleted);
    if ((rc = store__wire_put_u64(w, STORE_WOP_COLLECT_GARBAGE, e)) < 0 ||
        (rc = store__wire_put_u64(w, 3, e)) < 0 || /* gcDeleteSpecific */
        (rc = store__wire_put_strings(w, paths, n, e)) < 0 ||
        (rc = store__wire_put_u64(w, 0, e)) < 0 ||          /* ignoreLiveness */
        (rc = store__wire_put_u64(w, UINT64_MAX, e)) < 0 || /* maxFreed */
        (rc = store__wire_put_u64(w, 0, e)) < 0 || (rc = store__wire_put_u64(w, 0, e)) < 0 ||
        (rc = store__wire_put_u64(w, 0, e)) < 0 || /* obsolete */
        (rc = send_and_wait(c, NULL, e)) < 0)
        goto out;
    if ((rc = store__wire_strings(w, n, LIMIT_STORE_PATH, &deleted, e)) < 0 ||
        (rc = store__wire_u64(w, &v, e)) < 0 || /* bytes freed */
        (rc = store__wire_u64(w, &v, e)) < 0)   /* obsolete */
        goto out;
    rc = 0;
out:
    strvec_dispose(&deleted);
    return rc;
}

int store__worker_add_signatures(StoreConn *c, const char *path, const char *const *sigs, size_t n,
                                 Err *e)
{
    uint64_t v;
    int rc;
    if ((rc = store__wire_put_u64(&c->w, STORE_WOP_ADD_SIGNATURES, e)) < 0 ||
        (rc = store__wire_put_cstr(&c->w, path, e)) < 0 ||
        (rc = store__wire_put_strings(&c->w, sigs, n, e)) < 0 ||
        (rc = send_and_wait(c, NULL, e)) < 0)
        return rc;
    return store__wire_u64(&c->w, &v, e);
}

int store__worker_set_options(StoreConn *c, const StoreOptions *o, Err *e)
{
    StoreWire *w = &c->w;
    char num[32];
    int rc;
    uint64_t head[] = {
        STORE_WOP_SET_OPTIONS,
        (uint64_t)(o->keep_failed != 0),
        (uint64_t)(o->no_builds != 0), /* keepGoing */
        0,                             /* tryFallback */
        (uint64_t)o->verbosity,
        o->no_builds ? 0 : 1, /* maxBuildJobs: builds run in this daemon */
        o->max_silent_time,
        1, /* obsolete useBuildHook */
        0, /* verboseBuild: lvlError = verbose */
        0, /* obsolete logType */
        0, /* obsolete printBuildTrace */
        o->build_cores,
        (uint64_t)(o->substitute != 0), /* useSubstitutes */
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(head); i++) {
        rc = store__wire_put_u64(w, head[i], e);
        if (rc < 0)
            return rc;
    }
    if (STORE_MINOR(c->version) >= 12) {
        /* repeat and enforce-determinism only once asked for (Nix releases without
         * them ignore unknown settings; they stay on the daemon until sent again) */
        int rep =
            o->repeat || o->enforce_determinism || c->opts.repeat || c->opts.enforce_determinism;
        rc = store__wire_put_u64(w, rep ? 5 : 3, e);
        if (rc >= 0)
            rc = store__wire_put_cstr(w, "builders", e); /* never forward */
        if (rc >= 0)
            rc = store__wire_put_cstr(w, "", e);
        snprintf(num, sizeof num, "%llu", (unsigned long long)o->max_log_size);
        if (rc >= 0)
            rc = store__wire_put_cstr(w, "max-log-size", e);
        if (rc >= 0)
            rc = store__wire_put_cstr(w, num, e);
        snprintf(num, sizeof num, "%llu", (unsigned long long)o->build_timeout);
        if (rc >= 0)
            rc = store__wire_put_cstr(w, "timeout", e);
        if (rc >= 0)
            rc = store__wire_put_cstr(w, num, e);
        if (rep) {
            snprintf(num, sizeof num, "%llu", (unsigned long long)o->repeat);
            if (rc >= 0)
                rc = store__wire_put_cstr(w, "repeat", e);
            if (rc >= 0)
                rc = store__wire_put_cstr(w, num, e);
            if (rc >= 0)
                rc = store__wire_put_cstr(w, "enforce-determinism", e);
            if (rc >= 0)
                rc = store__wire_put_cstr(w, o->enforce_determinism ? "true" : "false", e);
        }
        if (rc < 0)
            return rc;
    }
    rc = send_and_wait(c, NULL, e);
    if (rc < 0)
        return rc;
    c->opts = *o;
    c->opts_sent = 1;
    return 0;
}

/* useSubstitutes on and builds off for this session (builds turn them back), at Nix's
 * `verbosity` (at least 1: warnings too, why a substitution failed), or at any level
 * from 1 up when `verbosity` is 0. */
static int substitutes_on(StoreConn *c, int verbosity, Err *e)
{
    StoreOptions o = {0};
    if (c->opts_sent) {
        if (c->opts.substitute && c->opts.no_builds &&
            (verbosity ? c->opts.verbosity == verbosity
                       : c->opts.verbosity >= STORE_VERBOSITY_WARN))
            return 0;
        o = c->opts;
    }
    o.substitute = 1;
    o.no_builds = 1;
    if (verbosity)
        o.verbosity = verbosity;
    else if (o.verbosity < STORE_VERBOSITY_WARN)
        o.verbosity = STORE_VERBOSITY_WARN;
    return store__worker_set_options(c, &o, e);
}

int store__worker_query_substitutable(StoreConn *c, const char *const *paths, size_t n, StrVec *out,
                                      Err *e)
{
    StoreWire *w = &c->w;
    uint64_t m;
    int rc = substitutes_on(c, 0, e);
    if (rc < 0 || (rc = store__wire_put_u64(w, STORE_WOP_QUERY_SUBSTITUTABLE_PATH_INFOS, e)) < 0)
        return rc;
    if (STORE_MINOR(c->version) < 22) {
        rc = store__wire_put_strings(w, paths, n, e);
    } else {
        /* a map path -> content address ("": none known) */
        rc = store__wire_put_u64(w, n, e);
        for (size_t i = 0; rc >= 0 && i < n; i++) {
            rc = store__wire_put_cstr(w, paths[i], e);
            if (rc >= 0)
                rc = store__wire_put_cstr(w, "", e);
        }
    }
    if (rc < 0 || (rc = send_and_wait(c, NULL, e)) < 0 || (rc = store__wire_num(w, n, &m, e)) < 0)
        return rc;
    for (uint64_t i = 0; i < m; i++) {
        char *path = NULL, *deriver = NULL;
        StrVec refs;
        uint64_t size;
        strvec_init(&refs);
        if ((rc = store__wire_path(w, 0, &path, e)) >= 0 &&
            (rc = store__wire_path(w, 1, &deriver, e)) >= 0 &&
            (rc = store__wire_strings(w, LIMIT_WIRE_LIST, LIMIT_STORE_PATH, &refs, e)) >= 0 &&
            (rc = store__wire_u64(w, &size, e)) >= 0) /* downloadSize */
            rc = store__wire_u64(w, &size, e);        /* narSize */
        free(deriver);
        strvec_dispose(&refs);
        if (rc < 0) {
            free(path);
            return rc;
        }
        strvec_push_take(out, path);
    }
    strvec_sort_unique(out);
    return 0;
}

int store__worker_substitute(StoreConn *c, const char *const *paths, size_t n, int verbosity,
                             Err *e)
{
    StoreWire *w = &c->w;
    uint64_t v;
    int rc = substitutes_on(c, verbosity, e);
    if (rc < 0 || (rc = store__wire_put_u64(w, STORE_WOP_BUILD_PATHS, e)) < 0 ||
        (rc = store__wire_put_strings(w, paths, n, e)) < 0)
        return rc;
    if (STORE_MINOR(c->version) >= 15 && (rc = store__wire_put_u64(w, 0, e)) < 0) /* bmNormal */
        return rc;
    if ((rc = send_and_wait(c, NULL, e)) < 0)
        return rc;
    return store__wire_u64(w, &v, e);
}

void store__worker_nar_error(StoreConn *c, uint64_t at, Err *e)
{
    const uint8_t *d;
    size_t n;
    Err de = {0};
    if (store__wire_peek(&c->w, &d, &n, &de) < 0)
        return;
    for (size_t k = (size_t)((8 - at % 8) % 8); k + 8 <= n; k += 8) {
        if (store__le64(d + k) != STORE_STDERR_ERROR)
            continue;
        store__wire_consume(&c->w, k + 8);
        if (read_error(c, &de) == ERR_PEER && e)
            *e = de;
        return;
    }
}

int store__worker_nar_begin(StoreConn *c, const char *path, Err *e)
{
    int rc;
    if ((rc = store__wire_put_u64(&c->w, STORE_WOP_NAR_FROM_PATH, e)) < 0 ||
        (rc = store__wire_put_cstr(&c->w, path, e)) < 0)
        return rc;
    return send_and_wait(c, NULL, e);
}

static int put_path_info_body(StoreWire *w, const StorePathInfo *info, Err *e)
{
    char hex[NIX_HASH_TEXT_MAX];
    int rc;
    nix_hash_to_base16(&info->nar_hash, hex);
    if ((rc = store__wire_put_cstr(w, info->path, e)) < 0 ||
        (rc = store__wire_put_cstr(w, info->deriver, e)) < 0 ||
        (rc = store__wire_put_cstr(w, hex, e)) < 0 ||
        (rc = store__wire_put_strings(w, (const char *const *)info->references.v,
                                      info->references.n, e)) < 0 ||
        (rc = store__wire_put_u64(w, (uint64_t)info->registration_time, e)) < 0 ||
        (rc = store__wire_put_u64(w, info->nar_size, e)) < 0 ||
        (rc = store__wire_put_u64(w, (uint64_t)(info->ultimate != 0), e)) < 0 ||
        (rc = store__wire_put_strings(w, (const char *const *)info->sigs.v, info->sigs.n, e)) < 0)
        return rc;
    return store__wire_put_cstr(w, info->ca, e);
}

int store__worker_add_nar(StoreConn *c, const StorePathInfo *info, StoreNarSource src,
                          void *payload, Err *e)
{
    StoreWire *w = &c->w;
    uint8_t *chunk = NULL;
    int rc;
    if ((rc = store__wire_put_u64(w, STORE_WOP_ADD_TO_STORE_NAR, e)) < 0 ||
        (rc = put_path_info_body(w, info, e)) < 0 || (rc = store__wire_put_u64(w, 0, e)) < 0 ||
        (rc = store__wire_put_u64(w, 1, e)) < 0) /* repair 0, dontCheckSigs 1 */
        return rc;
    if (STORE_MINOR(c->version) < 23) {
        StoreReadSource rs = {.fn = src, .payload = payload};
        return send_and_wait(c, &rs, e);
    }
    chunk = xmalloc(STORE_NAR_CHUNK);
    for (;;) {
        size_t got = 0;
        rc = src(payload, chunk, STORE_NAR_CHUNK, &got, e);
        if (rc < 0)
            goto out;
        if (got == 0)
            break;
        rc = store__wire_put_frame(w, chunk, got, e);
        if (rc < 0) {
            if (rc == ERR_EOF)
                goto daemon_error;
            goto out;
        }
    }
    rc = store__wire_put_frame(w, NULL, 0, e);
    if (rc < 0)
        goto out;
    rc = send_and_wait(c, NULL, e);
    goto out;
daemon_error:
    /* the daemon gave up while reading the NAR: it may have said why */
    {
        Err e2;
        err_clear(&e2);
        if (store__worker_stderr(c, NULL, &e2) == ERR_PEER) {
            if (e)
                *e = e2;
            c->broken = 1;
            rc = ERR_PEER;
        }
    }
out:
    free(chunk);
    return rc;
}

int store__worker_build(StoreConn *c, const char *drv_path, const NixDrv *d,
                        const StoreBuildOptions *o, StoreBuildResult **out, Err *e)
{
    StoreWire *w = &c->w;
    StoreOptions want = c->opts;
    int rc;
    want.max_silent_time = o->max_silent_time;
    want.build_timeout = o->build_timeout;
    want.max_log_size = o->max_log_size;
    want.build_cores = o->build_cores;
    want.substitute = 0;
    want.no_builds = 0;
    if (c->opts.substitute)
        want.verbosity = 0; /* raised for substitutions (substitutes_on) */
    want.repeat = o->repeat;
    want.enforce_determinism = o->enforce_determinism != 0;
    if (!c->opts_sent || c->opts.substitute || c->opts.no_builds ||
        want.max_silent_time != c->opts.max_silent_time ||
        want.build_timeout != c->opts.build_timeout || want.max_log_size != c->opts.max_log_size ||
        want.build_cores != c->opts.build_cores || want.repeat != c->opts.repeat ||
        want.enforce_determinism != c->opts.enforce_determinism) {
        rc = store__worker_set_options(c, &want, e);
        if (rc < 0)
            return rc;
    }
    if ((rc = store__wire_put_u64(w, STORE_WOP_BUILD_DERIVATION, e)) < 0 ||
        (rc = store__wire_put_cstr(w, drv_path, e)) < 0 ||
        (rc = store__put_basic_drv(w, d, e)) < 0 ||
        (rc = store__wire_put_u64(w, (uint64_t)o->build_mode, e)) < 0)
        return rc;
    rc = send_and_wait(c, NULL, e);
    if (rc < 0)
        return rc;
    return store__read_build_result(w, STORE_PROTO_WORKER, c->version, out, e);
}
