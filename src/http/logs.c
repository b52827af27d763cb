/*
 * logs.c: build logs over HTTP.  /log/DRV_BASENAME takes a drv basename checked by
 * http__drv_basename_valid; /build/ID/step/N/log and /build/ID/log look the drv up in
 * BuildSteps and check the basename of what the database holds the same way, so no
 * byte from a client or the database reaches the file system unchecked.
 *
 * A whole log is streamed from its file (runner_log_reader: plain, or decompressed in
 * pieces through a bounded window; also while the step runs: what was flushed so far),
 * so a slow reader holds one piece, not the log.  For ?tail=N (the last N lines) or a
 * single Range (206 with Content-Range; 416 when unsatisfiable) the log is decompressed
 * into memory, at most HTTP_LOG_MAX bytes, by at most HTTP_LOG_READERS requests at once.  A
 * status-13 (Resolved) step has no log of its own: 404, as in Hydra, naming the resolved drv.
 */
#include <inttypes.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/http_int.h"

static int readers_enter(HttpServer *s)
{
    struct timespec until;
    int rc = 0, ok;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&s->lock);
    while (s->n_log_readers >= HTTP_LOG_READERS && rc == 0)
        rc = pthread_cond_timedwait(&s->cond, &s->lock, &until);
    ok = s->n_log_readers < HTTP_LOG_READERS;
    if (ok)
        s->n_log_readers++;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static void readers_leave(HttpServer *s)
{
    pthread_mutex_lock(&s->lock);
    s->n_log_readers--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* libmicrohttpd pulls a streamed log piece by piece: memory is the reader's bound. */
static ssize_t stream_piece(void *cls, uint64_t pos, char *buf, size_t max)
{
    Err e = {0};
    int64_t n = runner_log_reader_read(cls, buf, max, &e);
    (void)pos;
    if (n < 0)
        log_warn("log stream: %s", e.msg);
    return n > 0    ? (ssize_t)n
           : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM
                    : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
    runner_log_reader_free(cls);
}

/* The whole log, streamed from its file (plain or decompressed in pieces): nothing of
 * it is held in memory beyond one piece and the decompressor's bounded window. */
static void stream_log(HttpReq *q, HttpReply *r, const char *drv)
{
    RunnerLogReader *lr = NULL;
    Err e = {0};
    int rc = runner_log_reader_open(q->srv->log_dir, drv, &lr, &e);
    if (rc < 0) {
        if (rc == ERR_NOTFOUND)
            http__reply_error(r, MHD_HTTP_NOT_FOUND, "no log for %s", drv);
        else
            http__reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read the log: %s", e.msg);
        return;
    }
    r->response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTP_LOG_PIECE, stream_piece,
                                                    lr, stream_free);
    if (!r->response) {
        runner_log_reader_free(lr);
        http__reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot start the log stream");
        return;
    }
    r->status = MHD_HTTP_OK;
    r->content_type = "text/plain; charset=utf-8";
    r->accept_ranges = 1;
}

/* Serve the log of drv (a full path or a basename, already validated). */
static void serve_log(HttpReq *q, HttpReply *r, const char *drv, int tail_default)
{
    const char *tail_s = http__req_arg(q, "tail");
    uint64_t tail = 0, start = 0, n = 0;
    int have_tail = 0, rc;
    Buf b;
    Err e = {0};
    char *body;
    size_t len;

    if (tail_s) {
        if (http__parse_tail(tail_s, &tail) < 0) {
            http__reply_error(r, MHD_HTTP_BAD_REQUEST, "tail must be a number of lines up to %d",
                              HTTP_TAIL_MAX);
            return;
        }
        have_tail = 1;
    } else if (tail_default >= 0) {
        tail = (uint64_t)tail_default;
        have_tail = 1;
    }
    /* HEAD answers the length, which only a whole read knows for a compressed log */
    if (!have_tail && !http__req_header(q, MHD_HTTP_HEADER_RANGE) &&
        !strcmp(q->method, MHD_HTTP_METHOD_GET)) {
        stream_log(q, r, drv);
        return;
    }
    if (!readers_enter(q->srv)) {
        http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "too many log requests; try again");
        return;
    }
    buf_init(&b, HTTP_LOG_MAX);
    rc = runner_log_read(q->srv->log_dir, drv, &b, &e);
    readers_leave(q->srv);
    if (rc < 0) {
        buf_dispose(&b);
        if (rc == ERR_NOTFOUND)
            http__reply_error(r, MHD_HTTP_NOT_FOUND, "no log for %s", drv);
        else if (rc == ERR_TOOBIG)
            http__reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
                              "log of %s is larger than %u bytes; read it on the server", drv,
                              HTTP_LOG_MAX);
        else
            http__reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read the log: %s", e.msg);
        return;
    }
    len = b.len;
    body = len ? buf_take(&b, &len) : xstrdup("");
    buf_dispose(&b);
    r->accept_ranges = 1;
    if (have_tail) {
        size_t off = http__tail_offset(body, len, tail);
        memmove(body, body + off, len - off);
        http__reply_text(r, MHD_HTTP_OK, "text/plain; charset=utf-8", body, len - off);
        return;
    }
    switch (http__parse_range(http__req_header(q, MHD_HTTP_HEADER_RANGE), len, &start, &n)) {
    case HTTP_RANGE_OK:
        memmove(body, body + start, (size_t)n);
        snprintf(r->content_range, sizeof r->content_range, "bytes %" PRIu64 "-%" PRIu64 "/%zu",
                 start, start + n - 1, len);
        http__reply_text(r, MHD_HTTP_PARTIAL_CONTENT, "text/plain; charset=utf-8", body, (size_t)n);
        return;
    case HTTP_RANGE_UNSATISFIABLE:
        free(body);
        snprintf(r->content_range, sizeof r->content_range, "bytes */%zu", len);
        http__reply_error(r, MHD_HTTP_RANGE_NOT_SATISFIABLE,
                          "range not satisfiable (log has %zu bytes)", len);
        return;
    case HTTP_RANGE_NONE: break;
    }
    http__reply_text(r, MHD_HTTP_OK, "text/plain; charset=utf-8", body, len);
}

void http__handle_log_drv(HttpReq *q, HttpReply *r, const char *drv_base)
{
    serve_log(q, r, drv_base, -1);
}

/* A drv path from the database: its basename must be a valid drv basename. */
static const char *db_drv_base(const char *drv_path)
{
    const char *base = drv_path ? strrchr(drv_path, '/') : NULL;
    base = base ? base + 1 : drv_path;
    return http__drv_basename_valid(base) ? base : NULL;
}

typedef struct StepRow {
    char *drv_path;
    char *resolved;
    int status; /* -1: NULL */
} StepRow;

static int load_step(Db *db, int64_t build, int64_t stepnr, StepRow *out, Err *e)
{
    DbStmt *st = NULL;
    int rc;
    if (stepnr > 0)
        rc = db_query(db,
                      "SELECT drvPath, status, resolvedDrvPath FROM BuildSteps "
                      "WHERE build = $1 AND stepnr = $2",
                      DB_ARGS(DB_P_INT(build), DB_P_INT(stepnr)), &st, e);
    else
        /* the build's log: its last step that runs or ran (not a cached failure, a
         * resolution or a propagated failure) */
        rc = db_query(db,
                      "SELECT drvPath, status, resolvedDrvPath FROM BuildSteps "
                      "WHERE build = $1 AND type = $3 "
                      "AND (status IS NULL OR status NOT IN ($4, $5)) "
                      "AND propagatedFrom IS NULL ORDER BY stepnr DESC LIMIT $2",
                      DB_ARGS(DB_P_INT(build), DB_P_INT(1), DB_P_INT(DB_STEP_BUILD),
                              DB_P_INT(DB_STATUS_CACHED_FAILURE), DB_P_INT(DB_STATUS_RESOLVED)),
                      &st, e);
    if (rc < 0)
        return rc;
    rc = db_step(st, e);
    if (rc == 1) {
        out->drv_path = xstrdup(db_col_text(st, 0) ? db_col_text(st, 0) : "");
        out->status = db_col_is_null(st, 1) ? -1 : (int)db_col_int64(st, 1);
        out->resolved = db_col_text(st, 2) ? xstrdup(db_col_text(st, 2)) : NULL;
    }
    db_stmt_done(st);
    return rc;
}

static void step_log(HttpReq *q, HttpReply *r, int64_t build, int64_t stepnr, int tail_default)
{
    Db *db = NULL;
    Err e = {0};
    StepRow s = {NULL, NULL, -1};
    const char *base;
    int rc = http__db_get(q->srv, &db, &e);
    if (rc == 0)
        rc = load_step(db, build, stepnr, &s, &e);
    http__db_put(q->srv, db, rc < 0);
    if (rc < 0) {
        http__reply_db_error(r, &e);
        goto out;
    }
    if (rc == 0) {
        if (stepnr > 0)
            http__reply_error(r, MHD_HTTP_NOT_FOUND, "build %" PRId64 " has no step %" PRId64,
                              build, stepnr);
        else
            http__reply_error(r, MHD_HTTP_NOT_FOUND, "build %" PRId64 " has no step that ran",
                              build);
        goto out;
    }
    if (s.status == DB_STATUS_RESOLVED) {
        http__reply_error(r, MHD_HTTP_NOT_FOUND,
                          "step %" PRId64 " of build %" PRId64
                          " is a resolution: the log is that of the resolved derivation %s",
                          stepnr, build, s.resolved ? s.resolved : "?");
        goto out;
    }
    base = db_drv_base(s.drv_path);
    if (!base) {
        http__reply_error(r, MHD_HTTP_NOT_FOUND, "the step's derivation path is not valid");
        goto out;
    }
    serve_log(q, r, base, tail_default);
out:
    free(s.drv_path);
    free(s.resolved);
}

void http__handle_log_step(HttpReq *q, HttpReply *r, int64_t build, int64_t stepnr,
                           int tail_default)
{
    step_log(q, r, build, stepnr, tail_default);
}

void http__handle_log_build(HttpReq *q, HttpReply *r, int64_t build)
{
    step_log(q, r, build, 0, -1);
}
