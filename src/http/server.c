/*
 * server.c: the HTTP server's frame: libmicrohttpd set-up and shutdown, request
 * limits, routing, replies, and the pool of database connections the handlers use.
 *
 * Design:
 *   - one thread per connection, at most HTTP_MAX_CONNECTIONS (HTTP_MAX_PER_IP per
 *     client), idle connections closed after HTTP_CONN_TIMEOUT seconds;
 *   - libmicrohttpd keeps each connection within HTTP_CONN_MEMORY, so an oversized
 *     request line or header block is refused (431/414) before a handler runs;
 *   - methods: GET and HEAD for views, POST for the two mutations, 405 (with Allow)
 *     otherwise;
 *     request bodies are counted and dropped (413 above HTTP_BODY_MAX);
 *   - the URL path is split into at most HTTP_PATH_SEGMENTS checked segments (no
 *     empty, "." or ".." segment); every id and drv basename is validated by parse.c
 *     before it reaches SQL or the file system; anything not routed is 404.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/http_int.h"

/* Per-request state kept across libmicrohttpd's calls of the handler. */
typedef struct ReqState {
    uint64_t body_len;
} ReqState;

/* ---------------------------------------------------------------- replies */

void http__reply_json(HttpReply *r, int status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    free(r->body);
    r->body = NULL;
    r->status = status;
    r->content_type = "application/json";
    if (!s) {
        r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        r->body = xstrdup("{\"error\":\"cannot encode the reply\"}\n");
        r->len = strlen(r->body);
        return;
    }
    r->len = strlen(s);
    r->body = xrealloc(s, r->len + 2);
    r->body[r->len++] = '\n';
    r->body[r->len] = '\0';
}

void http__reply_error(HttpReply *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    http__reply_json(r, status, json_pack("{s:s,s:i}", "error", msg, "status", status));
}

void http__reply_text(HttpReply *r, int status, const char *content_type, char *body_take,
                      size_t len)
{
    free(r->body);
    r->status = status;
    r->content_type = content_type;
    r->body = body_take;
    r->len = len;
}

void http__reply_db_error(HttpReply *r, const Err *e)
{
    if (e->code == ERR_BUSY || e->code == ERR_TIMEOUT)
        http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "database busy: %s", e->msg);
    else
        http__reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "database: %s", e->msg);
}

/* ---------------------------------------------------------------- database pool */

int http__db_get(HttpServer *s, Db **out, Err *e)
{
    Db *db = NULL;
    struct timespec until;
    int rc = 0;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&s->lock);
    while (s->n_db_busy >= HTTP_DB_MAX && rc == 0)
        rc = pthread_cond_timedwait(&s->cond, &s->lock, &until);
    if (s->n_db_busy >= HTTP_DB_MAX) {
        pthread_mutex_unlock(&s->lock);
        return err_set(e, ERR_BUSY, "all %d database connections of the HTTP server are in use",
                       HTTP_DB_MAX);
    }
    s->n_db_busy++;
    if (s->n_db_idle > 0)
        db = s->db_idle[--s->n_db_idle];
    pthread_mutex_unlock(&s->lock);
    if (!db) {
        rc = db_open(s->db_url, DB_OPEN_NO_SCHEMA, &db, e);
        if (rc < 0) {
            pthread_mutex_lock(&s->lock);
            s->n_db_busy--;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->lock);
            return rc;
        }
        /* a request must not wait a minute for a lost PostgreSQL server */
        db_set_reconnect_timeout(db, 2000);
    }
    *out = db;
    return 0;
}

void http__db_put(HttpServer *s, Db *db, int broken)
{
    if (!db)
        return;
    pthread_mutex_lock(&s->lock);
    s->n_db_busy--;
    if (!broken && s->n_db_idle < HTTP_DB_IDLE) {
        s->db_idle[s->n_db_idle++] = db;
        db = NULL;
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    db_close(db);
}

/* ---------------------------------------------------------------- requests */

const char *http__req_arg(const HttpReq *q, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)q->conn, MHD_GET_ARGUMENT_KIND,
                                       name);
}

const char *http__req_header(const HttpReq *q, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)q->conn, MHD_HEADER_KIND, name);
}

static int is_read_method(const char *m)
{
    return strcmp(m, MHD_HTTP_METHOD_GET) == 0 || strcmp(m, MHD_HTTP_METHOD_HEAD) == 0;
}

static void reply_index(HttpReply *r)
{
    json_t *j = json_pack("{s:s,s:[s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s]}", "service", "sluice",
                          "endpoints", "GET /status", "GET /status/machines",
                          "GET /status/build/ID/active", "GET /build/ID", "GET /build/ID/log",
                          "GET /build/ID/step/N/log[?tail=N]", "GET /build/ID/step/N/log/tail",
                          "GET /log/DRV_BASENAME[?tail=N]", "GET /metrics", "POST /build/ID/cancel",
                          "POST /build/ID/bump[?priority=N]", "POST /build/ID/restart",
                          "POST /build/ID/step/N/clear-failed", "GET /build/ID/step/N/log/stream",
                          "GET /api/builds", "GET /api/queue", "GET /api/build/ID/graph");
    http__reply_json(r, MHD_HTTP_OK, j);
}

/* Mutations: POST with the configured token, else 403. 1 when allowed. */
static int admin_allowed(HttpReq *q, HttpReply *r)
{
    const char *tok = http__bearer_token(http__req_header(q, MHD_HTTP_HEADER_AUTHORIZATION));
    if (!q->srv->admin_token || !q->srv->admin_token[0]) {
        http__reply_error(r, MHD_HTTP_FORBIDDEN,
                          "mutations are disabled: no http-admin-token is configured");
        return 0;
    }
    if (!http__token_equal(tok, q->srv->admin_token)) {
        http__reply_error(r, MHD_HTTP_FORBIDDEN, "missing or wrong admin token");
        return 0;
    }
    return 1;
}

static void route(HttpReq *q, HttpReply *r)
{
    const char **seg = q->seg;
    int n = q->n_seg, read = is_read_method(q->method);
    int post = strcmp(q->method, MHD_HTTP_METHOD_POST) == 0;
    int64_t id = 0, stepnr = 0;

#define SEG(i, s) (n > (i) && strcmp(seg[i], (s)) == 0)
#define NEED_READ()                                                                                \
    do {                                                                                           \
        if (!read) {                                                                               \
            r->allow = "GET, HEAD";                                                                \
            http__reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed here",        \
                              q->method);                                                          \
            return;                                                                                \
        }                                                                                          \
    } while (0)

    if (http__dash_route(q, r)) /* the dashboard's pages, files, lists and streams */
        return;
    if (n == 0) {
        NEED_READ();
        reply_index(r);
        return;
    }
    if (SEG(0, "status")) {
        if (n == 1) {
            NEED_READ();
            http__handle_status(q, r);
            return;
        }
        if (n == 2 && SEG(1, "machines")) {
            NEED_READ();
            http__handle_machines(q, r);
            return;
        }
        if (n == 4 && SEG(1, "build") && SEG(3, "active")) {
            NEED_READ();
            if (http__parse_id(seg[2], &id) < 0) {
                http__reply_error(r, MHD_HTTP_BAD_REQUEST, "malformed build id");
                return;
            }
            http__handle_active(q, r, id);
            return;
        }
    } else if (SEG(0, "metrics") && n == 1) {
        NEED_READ();
        http__handle_metrics(q, r);
        return;
    } else if (SEG(0, "log") && n == 2) {
        NEED_READ();
        if (!http__drv_basename_valid(seg[1])) {
            http__reply_error(r, MHD_HTTP_BAD_REQUEST,
                              "not a derivation basename (HASH-NAME.drv expected)");
            return;
        }
        http__handle_log_drv(q, r, seg[1]);
        return;
    } else if (SEG(0, "build") && n >= 2) {
        int is_mut = (n == 3 && (SEG(2, "cancel") || SEG(2, "bump") || SEG(2, "restart"))) ||
                     (n == 5 && SEG(2, "step") && SEG(4, "clear-failed"));
        int known = n == 2 || (n == 3 && SEG(2, "log")) || is_mut ||
                    ((n == 5 || (n == 6 && SEG(5, "tail"))) && SEG(2, "step") && SEG(4, "log"));
        if (!known)
            goto not_found;
        if (is_mut) {
            if (!post) {
                r->allow = "POST";
                http__reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST");
                return;
            }
            if (!admin_allowed(q, r))
                return;
        } else {
            NEED_READ();
        }
        if (http__parse_id(seg[1], &id) < 0) {
            http__reply_error(r, MHD_HTTP_BAD_REQUEST, "malformed build id");
            return;
        }
        if (n == 2)
            http__handle_build(q, r, id);
        else if (SEG(2, "log"))
            http__handle_log_build(q, r, id);
        else if (SEG(2, "cancel"))
            http__handle_cancel(q, r, id);
        else if (SEG(2, "bump"))
            http__handle_bump(q, r, id);
        else if (SEG(2, "restart"))
            http__handle_restart(q, r, id);
        else if (http__parse_id(seg[3], &stepnr) < 0)
            http__reply_error(r, MHD_HTTP_BAD_REQUEST, "malformed step number");
        else if (SEG(4, "clear-failed"))
            http__handle_clear_failed(q, r, id, stepnr);
        else
            http__handle_log_step(q, r, id, stepnr, n == 6 ? HTTP_TAIL_DEFAULT : -1);
        return;
    }
not_found:
    http__reply_error(r, MHD_HTTP_NOT_FOUND, "no such resource");
#undef SEG
#undef NEED_READ
}

/* A response body counted against HTTP_RESPONSE_MEM until the response goes. */
typedef struct HeldBody {
    HttpServer *s;
    char *body;
    size_t len;
} HeldBody;

static void held_free(void *cls)
{
    HeldBody *h = cls;
    pthread_mutex_lock(&h->s->lock);
    h->s->resp_bytes -= h->len;
    pthread_mutex_unlock(&h->s->lock);
    free(h->body);
    free(h);
}

/* The body of r as a response counted against HTTP_RESPONSE_MEM; r turned into a 503
 * when it does not fit (the body is freed, nothing is held). */
static struct MHD_Response *held_response(HttpServer *s, HttpReply *r)
{
    HeldBody *h;
    struct MHD_Response *resp;
    int fits;
    pthread_mutex_lock(&s->lock);
    fits = r->len <= HTTP_RESPONSE_MEM - s->resp_bytes;
    if (fits)
        s->resp_bytes += r->len;
    pthread_mutex_unlock(&s->lock);
    if (!fits) {
        free(r->body);
        r->body = NULL;
        r->content_range[0] = '\0';
        http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "too much is being sent to slow clients; try again");
        return MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    }
    h = xcalloc(1, sizeof *h);
    *h = (HeldBody){s, r->body, r->len};
    resp = MHD_create_response_from_buffer_with_free_callback_cls(r->len, r->body, held_free, h);
    if (!resp) {
        h->body = NULL; /* the caller frees it */
        held_free(h);
    }
    return resp;
}

static enum MHD_Result send_reply(HttpServer *s, struct MHD_Connection *conn, HttpReply *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ok;
    if (r->response) {
        resp = r->response;
        r->response = NULL;
        free(r->body);
        r->body = NULL;
    } else if (r->body && r->len > HTTP_HELD_MIN)
        resp = held_response(s, r);
    else if (r->body)
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    r->body = NULL; /* owned by the response now */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "text/plain; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->content_range[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, r->content_range);
    if (r->accept_ranges)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    ok = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

/* ---------------------------------------------------------------- head deadline */

/* A connection waiting for (the rest of) a request head since `since`. */
typedef struct HttpHeadWatch {
    int used;
    int fd;
    int waiting; /* no complete head yet for the current request */
    uint64_t since;
} HttpHeadWatch;

static HttpHeadWatch *watch_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* waiting: 1 when the connection now waits for a request head, 0 when one is in. */
static void watch_set(HttpServer *s, struct MHD_Connection *conn, int waiting)
{
    HttpHeadWatch *w = watch_of(conn);
    if (!w)
        return;
    pthread_mutex_lock(&s->lock);
    w->waiting = waiting;
    w->since = util_now_ms();
    pthread_mutex_unlock(&s->lock);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    HttpServer *s = cls;
    HttpHeadWatch *w = *socket_context;
    pthread_mutex_lock(&s->lock);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        for (int i = 0; i < HTTP_MAX_CONNECTIONS && ci; i++) {
            if (s->watches[i].used)
                continue;
            s->watches[i] = (HttpHeadWatch){1, ci->connect_fd, 1, util_now_ms()};
            *socket_context = &s->watches[i];
            break;
        }
    } else if (w) {
        w->used = 0;
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&s->lock);
}

/* Cut off connections whose request head is overdue: shutting the socket down ends
 * the connection's thread at its next read. */
static void *watchdog_main(void *arg)
{
    HttpServer *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        struct timespec until;
        uint64_t now = util_now_ms();
        for (int i = 0; i < HTTP_MAX_CONNECTIONS; i++) {
            HttpHeadWatch *w = &s->watches[i];
            if (w->used && w->waiting && now - w->since > HTTP_HEAD_DEADLINE * 1000u) {
                log_debug("http: a request head took over %d s; closing", HTTP_HEAD_DEADLINE);
                shutdown(w->fd, SHUT_RDWR);
                w->waiting = 0;
            }
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&s->cond, &s->lock, &until);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    HttpServer *s = cls;
    ReqState *st = *con_cls;
    HttpReply r = {0};
    HttpReq q = {0};
    char pathbuf[HTTP_PATH_SEGMENTS * (HTTP_SEGMENT_MAX + 1) + 2];
    (void)version;
    (void)upload_data;

    if (!st) {
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        int64_t n;
        watch_set(s, conn, 0);
        st = xcalloc(1, sizeof *st);
        *con_cls = st;
        if (cl && (util_parse_i64(cl, &n) < 0 || n < 0 || (uint64_t)n > HTTP_BODY_MAX)) {
            http__reply_error(&r, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
            return send_reply(s, conn, &r);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        st->body_len += *upload_data_size;
        *upload_data_size = 0;
        /* a chunked body past the limit: drop the connection */
        return st->body_len > HTTP_BODY_MAX ? MHD_NO : MHD_YES;
    }

    r.status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    q.srv = s;
    q.method = method;
    q.path = url;
    q.conn = conn;
    q.n_seg = http__split_path(url, pathbuf, sizeof pathbuf, q.seg, HTTP_PATH_SEGMENTS);
    if (q.n_seg < 0) {
        q.n_seg = 0;
        http__reply_error(&r, MHD_HTTP_BAD_REQUEST, "malformed path");
    } else {
        route(&q, &r); /* 405 with Allow for a method the resource does not take */
    }
    log_debug("http: %s %.200s -> %d", method, url, r.status);
    return send_reply(s, conn, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
    watch_set(cls, conn, 1); /* the next request's head, if any, starts now */
}

static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return http__unescape(s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;
    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_debug("http: %s", line);
}

/* ---------------------------------------------------------------- start/stop */

int http_start(const HttpOptions *o, HttpServer **out, Err *e)
{
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    HttpServer *s = NULL;
    const union MHD_DaemonInfo *info;
    unsigned flags =
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    sigset_t all, saved;
    int rc, saved_errno;

    rc = http__parse_bind(o->bind, &sa, &salen, e);
    if (rc < 0)
        return rc;
    if (o->admin_token && strlen(o->admin_token) > HTTP_TOKEN_MAX)
        return err_set(e, ERR_INVALID, "http-admin-token is longer than %d bytes", HTTP_TOKEN_MAX);
    if (sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s = xcalloc(1, sizeof *s);
    s->db_url = xstrdup(o->db_url ? o->db_url : "");
    s->log_dir = xstrdup(o->log_dir ? o->log_dir : "");
    s->admin_token = o->admin_token && o->admin_token[0] ? xstrdup(o->admin_token) : NULL;
    s->runner = o->runner;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->watches = xcalloc(HTTP_MAX_CONNECTIONS, sizeof *s->watches);
    /* the server's threads take no signals: SIGINT/SIGTERM are for the thread that
     * stops the runner (they inherit the mask in force when they are created) */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    errno = 0;
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)HTTP_MAX_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)HTTP_MAX_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_CONN_TIMEOUT,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_UNESCAPE_CALLBACK, on_unescape,
        NULL, MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_END);
    saved_errno = errno;
    /* the watchdog too is created with every signal blocked */
    if (s->mhd && pthread_create(&s->watchdog, NULL, watchdog_main, s) == 0)
        s->watchdog_started = 1;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    errno = saved_errno;
    if (!s->mhd) {
        rc = err_sys(e, ERR_IO, "http: cannot listen on %s", o->bind);
        goto out;
    }
    if (!s->watchdog_started) {
        rc = err_set(e, ERR_IO, "http: cannot start the request-head watchdog");
        goto out;
    }
    info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? (int)info->port : 0;
    {
        char a[INET6_ADDRSTRLEN] = "?";
        if (sa.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, a, sizeof a);
        else
            inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, a, sizeof a);
        log_info("http: listening on %s%s%s:%d%s", sa.ss_family == AF_INET6 ? "[" : "", a,
                 sa.ss_family == AF_INET6 ? "]" : "", s->port,
                 s->admin_token ? " (mutations enabled)" : "");
    }
    *out = s;
    s = NULL;
out:
    http_stop(s);
    return rc;
}

int http_port(const HttpServer *h)
{
    return h ? h->port : 0;
}

void http_stop(HttpServer *h)
{
    if (!h)
        return;
    if (h->mhd)
        MHD_stop_daemon(h->mhd);
    if (h->watchdog_started) {
        pthread_mutex_lock(&h->lock);
        h->stopping = 1;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->watchdog, NULL);
    }
    free(h->watches);
    for (int i = 0; i < h->n_db_idle; i++)
        db_close(h->db_idle[i]);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    free(h->db_url);
    free(h->log_dir);
    free(h->admin_token);
    free(h);
}
