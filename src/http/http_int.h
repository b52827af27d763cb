/*
 * http_int.h: internals of the HTTP server, for src/http/ (and its unit tests) only.
 *
 * A request is handled in three parts: server.c accepts it, checks the method, the
 * headers and the body size, and routes it; the handlers (status.c, logs.c,
 * metrics.c, admin.c) build an HttpReply; server.c turns the reply into a
 * libmicrohttpd response.  Handlers never see libmicrohttpd types except through the
 * HttpReq accessors, so they can be tested and reasoned about on their own.
 *
 * Functions declared here are module-internal and named http__x (as store__x and
 * db__x); http.h keeps the public http_x names.
 */
#ifndef SLUICE_HTTP_INT_H
#define SLUICE_HTTP_INT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include "db/db.h"
#include "http/http.h"
#include "runner/runner.h"
#include "util/util.h"

struct json_t;
struct MHD_Response;

/* ---------------------------------------------------------------- limits */

/* Memory libmicrohttpd may use for one connection: request line, headers and read
 * buffer.  Our URLs and headers are short (a drv basename is under 260 bytes, a token
 * under 200); 32 KiB leaves room for proxies' headers and refuses header floods with
 * 431 before any handler runs. */
#define HTTP_CONN_MEMORY (32u * 1024)
/* Open connections at once, and per client address.  Each has its own thread. */
#define HTTP_MAX_CONNECTIONS 64
/* Per client address: under a fifth of all, so four addresses holding connections
 * open (slowloris) cannot take every slot, while one browser keeps its HTTP_SSE_MAX
 * log streams and its polls. */
#define HTTP_MAX_PER_IP 12
/* Seconds a connection may stay idle. */
#define HTTP_CONN_TIMEOUT 30
/* Seconds from a connection's start (or its previous reply) to the end of the request
 * head: a client trickling its headers a byte at a time is cut off then, whatever the
 * idle timeout says. */
#define HTTP_HEAD_DEADLINE 10
/* Request bodies: the mutations take their arguments in the query string; a body is
 * accepted (and ignored) up to this size, larger ones get 413. */
#define HTTP_BODY_MAX (4u * 1024)
/* URL path: segments and the length of each. */
#define HTTP_PATH_SEGMENTS 8
#define HTTP_SEGMENT_MAX   (32 + 1 + LIMIT_STORE_PATH_NAME)
/* A decompressed log held in memory to serve one request.  Logs are capped by the
 * runner's max-log-size (64 MiB by default); this is the ceiling whatever that says. */
#define HTTP_LOG_MAX (256u * 1024 * 1024)
/* A streamed log is sent in pieces of this size (one buffer per connection). */
#define HTTP_LOG_PIECE (64u * 1024)
/* Requests decompressing a log at the same time (each may hold HTTP_LOG_MAX). */
#define HTTP_LOG_READERS 2
/* All response bodies held at once for clients still reading them: a reply that would
 * go past this gets 503 instead (16 slow readers of a 64 MiB log would pin 1 GiB). */
#define HTTP_RESPONSE_MEM (192u * 1024 * 1024)
/* Bodies up to this size (status JSON, pages) are not counted: 64 connections at most. */
#define HTTP_HELD_MIN (64u * 1024)
/* ?tail=N: at most this many lines. */
#define HTTP_TAIL_MAX 1000000
/* Lines of .../log/tail (as Hydra's web UI). */
#define HTTP_TAIL_DEFAULT 50
/* Steps listed by /build/ID (a build with more is cut, "stepsTruncated": true). */
#define HTTP_BUILD_STEPS_MAX 20000
/* Database connections used by requests at once, and kept open between requests. */
#define HTTP_DB_MAX  4
#define HTTP_DB_IDLE 2
/* Longest admin token accepted in a header (and in the configuration). */
#define HTTP_TOKEN_MAX 512
/* Dashboard lists (/api/builds): rows per page by default and at most; a filter value
 * (job, project, jobset, system) longer than HTTP_FILTER_MAX is refused (400). */
#define HTTP_LIST_DEFAULT 50
#define HTTP_LIST_MAX     200
#define HTTP_FILTER_MAX   256
/* /api/build/ID/graph reads every step's .drv: beyond this many steps the graph has
 * nodes only ("truncated": true). */
#define HTTP_GRAPH_STEPS_MAX 500
/* Server-sent log streams: open at once (each holds a connection thread and about
 * 400 KiB), what a new stream sends of the log so far, bytes of log per event,
 * formatted bytes waiting to be sent before the stream stops decompressing, how often
 * it looks for new bytes, a comment line after this much silence (keeps proxies and
 * the idle timeout away), and how long one stream lives (the browser then reconnects
 * with Last-Event-ID and resumes where it was). */
#define HTTP_SSE_MAX          8
#define HTTP_SSE_BACKLOG      (64u * 1024)
#define HTTP_SSE_EVENT        (16u * 1024)
#define HTTP_SSE_OUT_HIGH     (256u * 1024)
#define HTTP_SSE_POLL_MS      250
#define HTTP_SSE_KEEPALIVE_MS 15000
#define HTTP_SSE_LIFETIME_S   3600

/* ---------------------------------------------------------------- server */

struct HttpServer {
    struct MHD_Daemon *mhd;
    char *db_url, *log_dir, *admin_token;
    Runner *runner;
    int port;
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t cond;
    Db *db_idle[HTTP_DB_IDLE];
    int n_db_idle;
    int n_db_busy; /* connections handed out */
    int n_log_readers;
    int n_streams;     /* log streams open (dashboard.c) */
    size_t resp_bytes; /* response bodies held for clients (server.c) */
    /* request-head deadline (server.c): one watch per open connection */
    struct HttpHeadWatch *watches; /* HTTP_MAX_CONNECTIONS slots */
    pthread_t watchdog;
    int watchdog_started, stopping;
};

/* ---------------------------------------------------------------- requests */

/* One request as the handlers see it.  Strings are borrowed for the request. */
typedef struct HttpReq {
    HttpServer *srv;
    const char *method; /* "GET", "HEAD", "POST" */
    const char *path;   /* decoded path */
    const char *seg[HTTP_PATH_SEGMENTS];
    int n_seg;
    void *conn; /* struct MHD_Connection * */
} HttpReq;

/* Query-string argument or request header (borrowed; NULL when absent). */
const char *http__req_arg(const HttpReq *q, const char *name);
const char *http__req_header(const HttpReq *q, const char *name);

/* What a handler answers.  body is owned (freed by the server). */
typedef struct HttpReply {
    int status;
    const char *content_type; /* static string */
    char *body;
    size_t len;
    char content_range[96]; /* "bytes a-b/n" or "bytes * /n" when set */
    int accept_ranges;
    const char *allow; /* for 405 */
    /* a response the handler built itself (static files, log streams); sent instead of
     * body, with the same common headers; owned until sent */
    struct MHD_Response *response;
} HttpReply;

/* Fill a reply: JSON (takes the reference to j), a JSON error {"error": msg}, plain text. */
void http__reply_json(HttpReply *r, int status, struct json_t *j);
/* Column i of the current row as JSON: 'i' integer, 's' text, 'b' boolean; NULL -> null. */
struct json_t *http__json_col(DbStmt *st, int i, char kind);
void http__reply_error(HttpReply *r, int status, const char *fmt, ...) UTIL_PRINTF(3, 4);
void http__reply_text(HttpReply *r, int status, const char *content_type, char *body_take,
                      size_t len);

/* Database connections for handlers: at most HTTP_DB_MAX at once (waits for one).
 * http__db_put(db, broken) returns it (closes it when broken or the idle pool is full). */
int http__db_get(HttpServer *s, Db **out, Err *e);
void http__db_put(HttpServer *s, Db *db, int broken);
/* Map an Err from the database to a reply (500 with the message, 503 when busy). */
void http__reply_db_error(HttpReply *r, const Err *e);

/* Handlers (each fills *r). */
void http__handle_status(HttpReq *q, HttpReply *r);
void http__handle_machines(HttpReq *q, HttpReply *r);
void http__handle_active(HttpReq *q, HttpReply *r, int64_t id);
void http__handle_build(HttpReq *q, HttpReply *r, int64_t id);
void http__handle_metrics(HttpReq *q, HttpReply *r);
void http__handle_log_drv(HttpReq *q, HttpReply *r, const char *drv_base);
void http__handle_log_step(HttpReq *q, HttpReply *r, int64_t build, int64_t stepnr,
                           int tail_default);
void http__handle_log_build(HttpReq *q, HttpReply *r, int64_t build);
void http__handle_cancel(HttpReq *q, HttpReply *r, int64_t id);
void http__handle_bump(HttpReq *q, HttpReply *r, int64_t id);
void http__handle_restart(HttpReq *q, HttpReply *r, int64_t id);
void http__handle_clear_failed(HttpReq *q, HttpReply *r, int64_t id, int64_t stepnr);

/* ---------------------------------------------------------------- dashboard (dashboard.c) */

/* Routes of the dashboard: `/` for a browser (Accept: text/html; other clients keep the
 * JSON index), /static/NAME, /api/builds, /api/queue, /api/build/ID/graph and
 * /build/ID/step/N/log/stream.  1 when the request was one of them (*r filled), 0 to
 * let server.c route it. */
int http__dash_route(HttpReq *q, HttpReply *r);

/* A file of src/http/static/, embedded by scripts/embed.sh at build time. */
typedef struct HttpAsset {
    const char *name; /* file name, e.g. "app.js" */
    const unsigned char *data;
    size_t len;
} HttpAsset;
/* The embedded files (static table; *n receives the count).  A weak definition in
 * dashboard.c returns none, for links without the generated file (fuzz targets). */
const HttpAsset *http__static_assets(size_t *n);

/* /api/builds filters.  Strings borrowed; NULL or "": no filter. */
typedef struct HttpBuildFilter {
    int finished;    /* -1 any, 0 queued, 1 finished */
    int status;      /* -1 any, else Builds.buildStatus */
    int running;     /* 1: only builds with a busy step */
    const char *job; /* substring of the job name */
    const char *project, *jobset, *system;
    int64_t before; /* 0 or: only ids below (keyset pagination, newest first) */
    int limit;      /* 1..HTTP_LIST_MAX */
} HttpBuildFilter;
/* One page of builds, newest first, filtered and limited in SQL:
 * {"builds": [...], "next": ID|null}.  *out caller-owned. */
int http__dash_builds(Db *db, const HttpBuildFilter *f, struct json_t **out, Err *e);
/* Queued builds and busy steps per system, counted in SQL:
 * {"systems": {SYS: {"queuedBuilds", "runningSteps"}}, "queuedBuilds": total}. */
int http__dash_queue(Db *db, struct json_t **out, Err *e);
/* Steps of a build as a graph: {"nodes": [...], "edges": [{from, to, kind}],
 * "truncated"}; kinds "input" (an input drv), "output" (an input path built by that
 * step: resolved drvs), "resolved" (a status-13 row to the step of its resolved drv).
 * 1 and *out, or 0 for an unknown build. */
int http__dash_graph(Db *db, int64_t build, struct json_t **out, Err *e);
/* Append p[0..n) to out as the inside of a JSON string: valid UTF-8 as it is, control
 * characters, quote and backslash escaped, each byte of an invalid sequence as
 * \ufffd.  Returns buf_status. */
int http__json_escape_utf8(Buf *out, const uint8_t *p, size_t n);
/* Length of the longest prefix of p[0..n) that does not end inside a UTF-8 sequence
 * (a truncated but so far valid multi-byte sequence at the end is left out). */
size_t http__utf8_complete(const uint8_t *p, size_t n);

/* ---------------------------------------------------------------- parsing (parse.c) */

/* Bind address: "PORT", ":PORT", "ADDR:PORT" (IPv4 dotted or "localhost"),
 * "[IPV6]:PORT".  A missing address means 127.0.0.1.  *len receives the size of the
 * address written to *out.  0 or ERR_INVALID with a message. */
int http__parse_bind(const char *s, struct sockaddr_storage *out, socklen_t *len, Err *e);
/* A decimal id in 1..2^53 (no sign, no leading zeros beyond "0", no spaces). */
int http__parse_id(const char *s, int64_t *out);
/* A drv basename: "<32 nix32 chars>-<name>.drv" with Nix's name rules. 1 valid, 0 not. */
int http__drv_basename_valid(const char *s);
/* Split a decoded URL path into segments (at most HTTP_PATH_SEGMENTS, each at most
 * HTTP_SEGMENT_MAX bytes, none empty except a single trailing "/" which is dropped,
 * none "." or "..").  seg[i] point into buf, which receives a copy of path.
 * Returns the segment count or ERR_MALFORMED. */
int http__split_path(const char *path, char *buf, size_t buf_size, const char **seg, int max);

/* Percent-decode s in place (libmicrohttpd's unescape callback, for the path and
 * query arguments).  "%00" and malformed escapes stay as they are, so a NUL never cuts
 * a path or an argument short (they then fail validation).  Returns the new length. */
size_t http__unescape(char *s);
/* Range header, for a body of `len` bytes.  Only a single byte range is honoured:
 * "bytes=A-B", "bytes=A-", "bytes=-N". */
typedef enum {
    HTTP_RANGE_NONE = 0,          /* absent, malformed or several ranges: serve everything */
    HTTP_RANGE_OK = 1,            /* serve [*start, *start + *n) */
    HTTP_RANGE_UNSATISFIABLE = 2, /* 416 */
} HttpRange;
HttpRange http__parse_range(const char *hdr, uint64_t len, uint64_t *start, uint64_t *n);
/* ?tail=N: 0 and *n set, or ERR_INVALID (not a number, or above HTTP_TAIL_MAX). */
int http__parse_tail(const char *s, uint64_t *n);
/* Offset in p[0..len) where its last n lines start (a final "\n" does not start a
 * line). */
size_t http__tail_offset(const char *p, size_t len, uint64_t n);
/* Compare a presented token with the configured one in constant time (for equal
 * lengths).  1 when equal and the configured token is non-empty. */
int http__token_equal(const char *presented, const char *configured);
/* "Bearer TOKEN" -> TOKEN (borrowed, NULL when the header has another form). */
const char *http__bearer_token(const char *authorization);

/* ---------------------------------------------------------------- metrics (metrics.c) */

/* Render Prometheus text format 0.0.4 from the runner's counters and its two
 * snapshots (runner_status_json, runner_machines_json; either may be NULL). */
void http__metrics_render(const RunnerStats *st, struct json_t *status, struct json_t *machines,
                          Buf *out);

/* Hydra's /status and /status/machines shapes from the runner's snapshots (new
 * references; the inputs are not changed). */
struct json_t *http__status_doc(struct json_t *status, struct json_t *machines);
struct json_t *http__machines_doc(struct json_t *machines);

#endif
