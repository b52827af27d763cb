/*
 * dashboard.c: the web dashboard of the HTTP server.  `/` is src/http/static/index.html
 * unless the request asks for JSON (Accept: application/json: the index of endpoints),
 * as Hydra's web server decides; the page loads app.js and
 * style.css from /static/ and draws everything from JSON:
 *
 *   GET /api/builds                 one page of builds, newest first (below)
 *   GET /api/queue                  queued builds, runnable and running steps per system,
 *                                   the runner's counters, log streams open
 *   GET /api/build/ID/graph         the build's steps as a graph (nodes, edges)
 *   GET /build/ID/step/N/log/stream the step's log as server-sent events, live
 *
 * plus the server's own /status/machines and /build/ID.  The static files are
 * compiled into the binary (scripts/embed.sh writes them as byte arrays into the
 * build directory) and served with a Content-Security-Policy that allows nothing but
 * this server, so the dashboard never loads anything from elsewhere.
 *
 * Lists never dump a table: /api/builds takes at most HTTP_LIST_MAX rows per request,
 * filters (finished, buildStatus, running, job substring, project, jobset, system) and
 * pagination (keyset on id: ?before=ID, answered with "next") are in SQL with bound
 * parameters; the SQL text is assembled from constant fragments only.  Counts per
 * system are GROUP BY queries over the partial indexes on unfinished builds and busy
 * steps.
 *
 * Log streams (text/event-stream): a new stream first sends the last HTTP_SSE_BACKLOG
 * bytes of what has been flushed so far (or everything from ?offset=N or the
 * Last-Event-ID header of a reconnecting browser), then new bytes as the runner
 * flushes them, read incrementally from the zstd file (the decompression context is
 * kept, the file is read from where the last read stopped).  Events:
 *
 *   event: log     data: {"offset": O, "text": "..."}   id: O + bytes of this event
 *   event: reset   data: {}    the log file started again (a new attempt)
 *   event: end     data: {"status": S|null, "offset": O}   the step finished (with
 *                  "statusName", db_status_name(S), when S is not null)
 *   event: fault   data: {"error": "..."}   the log file cannot be read (the stream ends)
 *
 * "text" is valid UTF-8 (an invalid byte becomes U+FFFD, a sequence cut by a chunk
 * waits for its end), offsets count bytes of the log.  One stream runs in its
 * connection's thread (libmicrohttpd's content reader, which blocks between polls);
 * at most HTTP_SSE_MAX streams run at once (503 beyond), each ends when its step is
 * no longer busy, when the client hangs up (the socket is polled), when the server
 * stops (libmicrohttpd shuts the socket down) or after HTTP_SSE_LIFETIME_S (the
 * browser reconnects and resumes).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "http/http_int.h"
#include "nix/nix.h"

/* ---------------------------------------------------------------- static files */

/* Linked when the generated table is not (fuzz targets link the sources alone). */
__attribute__((weak)) const HttpAsset *http__static_assets(size_t *n)
{
    *n = 0;
    return NULL;
}

static const char dash_csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

static const char *content_type_of(const char *name)
{
    if (util_ends_with(name, ".html"))
        return "text/html; charset=utf-8";
    if (util_ends_with(name, ".js"))
        return "text/javascript; charset=utf-8";
    if (util_ends_with(name, ".css"))
        return "text/css; charset=utf-8";
    if (util_ends_with(name, ".svg"))
        return "image/svg+xml";
    if (util_ends_with(name, ".png"))
        return "image/png";
    return "application/octet-stream";
}

/* Serve an embedded file (no copy: the response points at the array).  0 when there
 * is no such file. */
static int reply_asset(HttpReply *r, const char *name)
{
    size_t n = 0;
    const HttpAsset *a = http__static_assets(&n);
    struct MHD_Response *resp;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a[i].name, name) != 0)
            continue;
        resp = MHD_create_response_from_buffer(a[i].len, (void *)a[i].data, MHD_RESPMEM_PERSISTENT);
        if (!resp) {
            http__reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
            return 1;
        }
        MHD_add_response_header(resp, "Content-Security-Policy", dash_csp);
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        r->response = resp;
        r->status = MHD_HTTP_OK;
        r->content_type = content_type_of(name);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- JSON text */

/* Length of the UTF-8 sequence at p[0..n): 1..4 when valid, 0 when invalid, -1 when
 * p ends inside a sequence that is valid so far. */
static int utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0], lo = 0x80, hi = 0xBF;
    int len;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0) {
        len = 2;
    } else if (c < 0xF0) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c < 0xF5) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    for (int i = 1; i < len; i++) {
        uint8_t b;
        if ((size_t)i >= n)
            return -1;
        b = p[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF))
            return 0;
    }
    return len;
}

size_t http__utf8_complete(const uint8_t *p, size_t n)
{
    /* only one of the last three bytes can start a sequence that is cut short */
    for (size_t i = n > 3 ? n - 3 : 0; i < n; i++)
        if (p[i] >= 0xC2 && p[i] < 0xF5 && utf8_seq(p + i, n - i) < 0)
            return i;
    return n;
}

int http__json_escape_utf8(Buf *out, const uint8_t *p, size_t n)
{
    size_t i = 0, run = 0;
    while (i < n) {
        uint8_t c = p[i];
        int k;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            k = utf8_seq(p + i, n - i);
            if (k > 0) {
                i += (size_t)k;
                continue;
            }
        }
        buf_append(out, p + run, i - run);
        switch (c) {
        case '"': buf_puts(out, "\\\""); break;
        case '\\': buf_puts(out, "\\\\"); break;
        case '\n': buf_puts(out, "\\n"); break;
        case '\r': buf_puts(out, "\\r"); break;
        case '\t': buf_puts(out, "\\t"); break;
        case '\b': buf_puts(out, "\\b"); break;
        case '\f': buf_puts(out, "\\f"); break;
        default:
            if (c < 0x20)
                buf_printf(out, "\\u%04x", c);
            else
                buf_puts(out, "\\ufffd"); /* a byte of an invalid sequence */
        }
        i++;
        run = i;
    }
    buf_append(out, p + run, i - run);
    return buf_status(out);
}

/* ---------------------------------------------------------------- request helpers */

static int is_read(const HttpReq *q)
{
    return strcmp(q->method, MHD_HTTP_METHOD_GET) == 0 ||
           strcmp(q->method, MHD_HTTP_METHOD_HEAD) == 0;
}

/* ?name=TEXT: NULL when absent or empty; 400 (and -1) when longer than
 * HTTP_FILTER_MAX. */
static int arg_text(HttpReq *q, HttpReply *r, const char *name, const char **out)
{
    const char *v = http__req_arg(q, name);
    *out = NULL;
    if (!v || !v[0])
        return 0;
    if (strlen(v) > HTTP_FILTER_MAX) {
        http__reply_error(r, MHD_HTTP_BAD_REQUEST, "%s is longer than %d bytes", name,
                          HTTP_FILTER_MAX);
        return -1;
    }
    *out = v;
    return 0;
}

/* ?name=N with lo <= N <= hi; *out unchanged when absent or empty; 400 (and -1)
 * otherwise. */
static int arg_int(HttpReq *q, HttpReply *r, const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    const char *v = http__req_arg(q, name);
    int64_t x;
    if (!v || !v[0])
        return 0;
    if (util_parse_i64(v, &x) < 0 || x < lo || x > hi) {
        http__reply_error(r, MHD_HTTP_BAD_REQUEST,
                          "%s must be a number from %" PRId64 " to %" PRId64, name, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* ---------------------------------------------------------------- /api/builds */

static const char *const list_cols[] = {
    "id:i",        "finished:b", "buildstatus:i",    "project:s",       "jobset:s",
    "job:s",       "system:s",   "nixname:s",        "timestamp:i",     "starttime:i",
    "stoptime:i",  "priority:i", "globalpriority:i", "iscachedbuild:b", "drvpath:s",
    "busysteps:i",
};
static const char list_select[] =
    "SELECT b.id, b.finished, b.buildStatus, j.project, j.name, b.job, b.system, b.nixName, "
    "b.timestamp, b.startTime, b.stopTime, b.priority, b.globalPriority, b.isCachedBuild, "
    "b.drvPath, (SELECT count(*) FROM BuildSteps s WHERE s.build = b.id AND s.busy <> 0) "
    "FROM Builds b LEFT JOIN Jobsets j ON j.id = b.jobset_id WHERE 1 = 1";

/* A LIKE pattern matching s anywhere, with '\' as the escape character. */
static char *like_pattern(const char *s)
{
    size_t n = strlen(s);
    char *p = xmalloc(2 * n + 3), *w = p;
    *w++ = '%';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' || s[i] == '_' || s[i] == '\\')
            *w++ = '\\';
        *w++ = s[i];
    }
    *w++ = '%';
    *w = '\0';
    return p;
}

int http__dash_builds(Db *db, const HttpBuildFilter *f, json_t **out, Err *e)
{
    DbParam p[12];
    size_t np = 0;
    Buf sql;
    DbStmt *st = NULL;
    char *pattern = NULL;
    json_t *doc = NULL, *rows;
    int rc, n = 0, limit = f->limit;
    int64_t last = 0;

    *out = NULL;
    if (limit < 1 || limit > HTTP_LIST_MAX)
        limit = HTTP_LIST_DEFAULT;
    buf_init(&sql, 4096);
    buf_puts(&sql, list_select);
    /* constant fragments only; every value is a parameter */
    if (f->finished >= 0) {
        p[np++] = DB_P_INT(f->finished);
        buf_printf(&sql, " AND b.finished = $%zu", np);
    }
    if (f->status >= 0) {
        p[np++] = DB_P_INT(f->status);
        buf_printf(&sql, " AND b.finished = 1 AND b.buildStatus = $%zu", np);
    }
    if (f->running)
        buf_puts(&sql, " AND b.finished = 0 AND b.id IN "
                       "(SELECT s.build FROM BuildSteps s WHERE s.busy <> 0)");
    if (f->job && f->job[0]) {
        pattern = like_pattern(f->job);
        p[np++] = DB_P_TEXT(pattern);
        buf_printf(&sql, " AND b.job LIKE $%zu ESCAPE '\\'", np);
    }
    if (f->project && f->project[0]) {
        p[np++] = DB_P_TEXT(f->project);
        buf_printf(&sql, " AND j.project = $%zu", np);
    }
    if (f->jobset && f->jobset[0]) {
        p[np++] = DB_P_TEXT(f->jobset);
        buf_printf(&sql, " AND j.name = $%zu", np);
    }
    if (f->system && f->system[0]) {
        p[np++] = DB_P_TEXT(f->system);
        buf_printf(&sql, " AND b.system = $%zu", np);
    }
    if (f->before > 0) {
        p[np++] = DB_P_INT(f->before);
        buf_printf(&sql, " AND b.id < $%zu", np);
    }
    p[np++] = DB_P_INT(limit + 1);
    buf_printf(&sql, " ORDER BY b.id DESC LIMIT $%zu", np);
    if (buf_status(&sql) < 0) {
        rc = err_set(e, ERR_NOMEM, "cannot build the query");
        goto out;
    }
    rc = db_query(db, buf_cstr(&sql), p, np, &st, e);
    if (rc < 0)
        goto out;
    doc = json_object();
    rows = json_array();
    json_object_set_new(doc, "builds", rows);
    while ((rc = db_step(st, e)) == 1) {
        json_t *b;
        if (++n > limit)
            break;
        b = json_object();
        for (size_t i = 0; i < UTIL_ARRAY_LEN(list_cols); i++) {
            const char *c = strchr(list_cols[i], ':');
            char key[32];
            snprintf(key, sizeof key, "%.*s", (int)(c - list_cols[i]), list_cols[i]);
            json_object_set_new(b, key, http__json_col(st, (int)i, c[1]));
        }
        if (!db_col_is_null(st, 2)) /* as /build/ID */
            json_object_set_new(b, "buildstatusName",
                                json_string(db_status_name(db_col_int64(st, 2))));
        last = db_col_int64(st, 0);
        json_array_append_new(rows, b);
    }
    db_stmt_done(st);
    if (rc < 0)
        goto out;
    json_object_set_new(doc, "next", n > limit ? json_integer((json_int_t)last) : json_null());
    json_object_set_new(doc, "limit", json_integer(limit));
    *out = doc;
    doc = NULL;
    rc = 0;
out:
    json_decref(doc);
    free(pattern);
    buf_dispose(&sql);
    return rc;
}

static void handle_builds(HttpReq *q, HttpReply *r)
{
    HttpBuildFilter f = {.finished = -1, .status = -1, .limit = HTTP_LIST_DEFAULT};
    int64_t fin = -1, status = -1, running = 0, limit = HTTP_LIST_DEFAULT, before = 0;
    const char *before_s = http__req_arg(q, "before");
    Db *db = NULL;
    Err e = {0};
    json_t *doc = NULL;
    int rc;

    if (arg_int(q, r, "finished", 0, 1, &fin) < 0 || arg_int(q, r, "status", 0, 255, &status) < 0 ||
        arg_int(q, r, "running", 0, 1, &running) < 0 ||
        arg_int(q, r, "limit", 1, HTTP_LIST_MAX, &limit) < 0 || arg_text(q, r, "job", &f.job) < 0 ||
        arg_text(q, r, "project", &f.project) < 0 || arg_text(q, r, "jobset", &f.jobset) < 0 ||
        arg_text(q, r, "system", &f.system) < 0)
        return;
    if (before_s && before_s[0] && http__parse_id(before_s, &before) < 0) {
        http__reply_error(r, MHD_HTTP_BAD_REQUEST, "before must be a build id");
        return;
    }
    f.finished = (int)fin;
    f.status = (int)status;
    f.running = (int)running;
    f.limit = (int)limit;
    f.before = before;
    rc = http__db_get(q->srv, &db, &e);
    if (rc == 0)
        rc = http__dash_builds(db, &f, &doc, &e);
    http__db_put(q->srv, db, rc < 0);
    if (rc < 0) {
        http__reply_db_error(r, &e);
        return;
    }
    http__reply_json(r, MHD_HTTP_OK, doc);
}

/* ---------------------------------------------------------------- /api/queue */

/* Per-system object of doc["systems"] (created with zero counts). */
static json_t *system_entry(json_t *systems, const char *sys)
{
    json_t *o = json_object_get(systems, sys);
    if (!o) {
        o = json_pack("{s:I,s:I,s:I}", "queuedBuilds", (json_int_t)0, "runnableSteps",
                      (json_int_t)0, "runningSteps", (json_int_t)0);
        json_object_set_new(systems, sys, o);
    }
    return o;
}

int http__dash_queue(Db *db, json_t **out, Err *e)
{
    static const char *const sql[2] = {
        "SELECT system, count(*) FROM Builds WHERE finished = 0 GROUP BY system "
        "ORDER BY system LIMIT $1",
        "SELECT coalesce(system, ''), count(*) FROM BuildSteps WHERE busy <> 0 "
        "GROUP BY coalesce(system, '') ORDER BY 1 LIMIT $1",
    };
    static const char *const key[2] = {"queuedBuilds", "runningSteps"};
    json_t *doc = json_object(), *systems = json_object();
    int64_t total = 0;
    int rc = 0;
    *out = NULL;
    json_object_set_new(doc, "systems", systems);
    for (int k = 0; k < 2; k++) {
        DbStmt *st = NULL;
        rc = db_query(db, sql[k], DB_ARGS(DB_P_INT(1000)), &st, e);
        if (rc < 0)
            goto out;
        while ((rc = db_step(st, e)) == 1) {
            const char *sys = db_col_text(st, 0);
            int64_t c = db_col_int64(st, 1);
            json_object_set_new(system_entry(systems, sys && sys[0] ? sys : "?"), key[k],
                                json_integer((json_int_t)c));
            if (k == 0)
                total += c;
        }
        db_stmt_done(st);
        if (rc < 0)
            goto out;
    }
    json_object_set_new(doc, "queuedBuilds", json_integer((json_int_t)total));
    *out = doc;
    doc = NULL;
    rc = 0;
out:
    json_decref(doc);
    return rc;
}

static void handle_queue(HttpReq *q, HttpReply *r)
{
    Db *db = NULL;
    Err e = {0};
    json_t *doc = NULL, *st, *sys;
    const char *name;
    int rc = http__db_get(q->srv, &db, &e);
    if (rc == 0)
        rc = http__dash_queue(db, &doc, &e);
    http__db_put(q->srv, db, rc < 0);
    if (rc < 0) {
        http__reply_db_error(r, &e);
        return;
    }
    st = q->srv->runner ? runner_status_json(q->srv->runner) : NULL;
    json_object_foreach(json_object_get(st, "runnable"), name, sys)
    {
        json_object_set_new(
            system_entry(json_object_get(doc, "systems"), name), "runnableSteps",
            json_integer(json_integer_value(json_object_get(sys, "totalRunnable"))));
    }
    json_object_set_new(doc, "runner", st ? st : json_null());
    pthread_mutex_lock(&q->srv->lock);
    json_object_set_new(doc, "logStreams", json_integer(q->srv->n_streams));
    pthread_mutex_unlock(&q->srv->lock);
    http__reply_json(r, MHD_HTTP_OK, doc);
}

/* ---------------------------------------------------------------- /api/build/ID/graph */

typedef struct GraphNode {
    int64_t stepnr;
    char *drv_path;
    char *resolved; /* resolvedDrvPath (basename) or NULL */
} GraphNode;

/* Edge from -> to of a kind, once. */
static void add_edge(json_t *edges, Map *seen, int64_t from, int64_t to, const char *kind)
{
    char key[64];
    if (from == to)
        return;
    snprintf(key, sizeof key, "%" PRId64 ">%" PRId64, from, to);
    if (map_get(seen, key))
        return;
    map_put(seen, key, (void *)1);
    json_array_append_new(edges, json_pack("{s:I,s:I,s:s}", "from", (json_int_t)from, "to",
                                           (json_int_t)to, "kind", kind));
}

int http__dash_graph(Db *db, int64_t build, json_t **out, Err *e)
{
    DbStmt *st = NULL;
    GraphNode *nodes = NULL;
    size_t n = 0, cap = 0;
    Map *by_drv = map_new(NULL), *by_out = map_new(NULL), *seen = map_new(NULL);
    json_t *doc = NULL, *jn, *edges;
    int64_t exists = 0;
    int rc, truncated = 0;

    *out = NULL;
    rc = db_query_int64(db, "SELECT count(*) FROM Builds WHERE id = $1", DB_ARGS(DB_P_INT(build)),
                        &exists, e);
    if (rc < 0)
        goto out;
    if (exists == 0) {
        rc = 0;
        goto out;
    }
    doc = json_object();
    jn = json_array();
    edges = json_array();
    json_object_set_new(doc, "nodes", jn);
    json_object_set_new(doc, "edges", edges);
    rc = db_query(db,
                  "SELECT stepnr, drvPath, status, busy, resolvedDrvPath, type, machine, "
                  "startTime, stopTime FROM BuildSteps WHERE build = $1 ORDER BY stepnr LIMIT $2",
                  DB_ARGS(DB_P_INT(build), DB_P_INT(HTTP_GRAPH_STEPS_MAX + 1)), &st, e);
    if (rc < 0)
        goto out;
    while ((rc = db_step(st, e)) == 1) {
        const char *drv = db_col_text(st, 1) ? db_col_text(st, 1) : "";
        if (n == HTTP_GRAPH_STEPS_MAX) {
            truncated = 1;
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            nodes = xrealloc(nodes, cap * sizeof *nodes);
        }
        nodes[n].stepnr = db_col_int64(st, 0);
        nodes[n].drv_path = xstrdup(drv);
        nodes[n].resolved = db_col_text(st, 4) ? xstrdup(db_col_text(st, 4)) : NULL;
        /* the latest row of a drv (retries add rows) */
        map_put(by_drv, drv, (void *)(uintptr_t)(n + 1));
        /* statusName and busyName as in /build/ID */
        json_array_append_new(
            jn, json_pack("{s:I,s:s,s:o,s:s,s:I,s:s,s:o,s:I,s:o,s:o,s:o}", "stepnr",
                          (json_int_t)nodes[n].stepnr, "drvpath", drv, "status",
                          http__json_col(st, 2, 'i'), "statusName",
                          db_col_is_null(st, 2) ? "running" : db_status_name(db_col_int64(st, 2)),
                          "busy", (json_int_t)db_col_int64(st, 3), "busyName",
                          db_busy_name(db_col_int64(st, 3)), "resolveddrvpath",
                          http__json_col(st, 4, 's'), "type", (json_int_t)db_col_int64(st, 5),
                          "machine", http__json_col(st, 6, 's'), "starttime",
                          http__json_col(st, 7, 'i'), "stoptime", http__json_col(st, 8, 'i')));
        n++;
    }
    db_stmt_done(st);
    st = NULL;
    if (rc < 0)
        goto out;
    json_object_set_new(doc, "truncated", json_boolean(truncated));
    if (truncated) {
        rc = 1;
        goto out;
    }
    rc = db_query(db,
                  "SELECT stepnr, path FROM BuildStepOutputs WHERE build = $1 AND path IS NOT NULL",
                  DB_ARGS(DB_P_INT(build)), &st, e);
    if (rc < 0)
        goto out;
    while ((rc = db_step(st, e)) == 1)
        map_put(by_out, db_col_text(st, 1), (void *)(uintptr_t)db_col_int64(st, 0));
    db_stmt_done(st);
    st = NULL;
    if (rc < 0)
        goto out;

    for (size_t i = 0; i < n; i++) {
        GraphNode *g = &nodes[i];
        NixDrv *d = NULL;
        Err de = {0};
        if (g->resolved) {
            /* status 13: the step of the resolved drv, when it is in this build */
            const char *slash = strrchr(g->drv_path, '/');
            if (slash && !strchr(g->resolved, '/')) {
                char *target =
                    xasprintf("%.*s/%s", (int)(slash - g->drv_path), g->drv_path, g->resolved);
                uintptr_t k = (uintptr_t)map_get(by_drv, target);
                if (k)
                    add_edge(edges, seen, g->stepnr, nodes[k - 1].stepnr, "resolved");
                free(target);
            }
        }
        /* nix_drv_read validates the path before it touches the file system; a drv
         * that is gone (garbage-collected) just has no edges */
        if (nix_drv_read(g->drv_path, &d, &de) < 0)
            continue;
        for (size_t k = 0; k < d->n_inputs; k++) {
            uintptr_t x = (uintptr_t)map_get(by_drv, d->inputs[k].drv_path);
            if (x)
                add_edge(edges, seen, nodes[x - 1].stepnr, g->stepnr, "input");
        }
        for (size_t k = 0; k < d->n_srcs; k++) {
            uintptr_t nr = (uintptr_t)map_get(by_out, d->srcs[k]);
            if (nr)
                add_edge(edges, seen, (int64_t)nr, g->stepnr, "output");
        }
        nix_drv_free(d);
    }
    rc = 1;
out:
    db_stmt_done(st);
    if (rc == 1) {
        *out = doc;
        doc = NULL;
    }
    json_decref(doc);
    for (size_t i = 0; i < n; i++) {
        free(nodes[i].drv_path);
        free(nodes[i].resolved);
    }
    free(nodes);
    map_free(by_drv);
    map_free(by_out);
    map_free(seen);
    return rc;
}

static void handle_graph(HttpReq *q, HttpReply *r, int64_t id)
{
    Db *db = NULL;
    Err e = {0};
    json_t *doc = NULL;
    int rc = http__db_get(q->srv, &db, &e);
    if (rc == 0)
        rc = http__dash_graph(db, id, &doc, &e);
    http__db_put(q->srv, db, rc < 0);
    if (rc < 0)
        http__reply_db_error(r, &e);
    else if (rc == 0)
        http__reply_error(r, MHD_HTTP_NOT_FOUND, "no build %" PRId64, id);
    else
        http__reply_json(r, MHD_HTTP_OK, doc);
}

/* ---------------------------------------------------------------- log streams */

#define SSE_IN_SIZE  (16u * 1024)
#define SSE_TMP_SIZE (64u * 1024)

typedef struct LogStream {
    HttpServer *srv;
    int64_t build, stepnr;
    char *zst_path, *plain_path;
    int sock;  /* the client's socket (hang-up check), -1 when unknown */
    int fd;    /* the log file, -1 until it exists */
    int plain; /* Hydra's uncompressed layout */
    ZSTD_DCtx *dctx;
    uint8_t *in, *tmp; /* compressed input (SSE_IN_SIZE), decompressed (SSE_TMP_SIZE) */
    size_t in_len, in_pos;
    uint64_t file_off; /* bytes of the file read */
    uint64_t log_off;  /* log bytes decompressed */
    uint64_t skip_to;  /* log bytes below this offset are not sent */
    uint64_t sent_off; /* offset of pending's first byte */
    int catchup;       /* collecting the backlog (only its last HTTP_SSE_BACKLOG bytes) */
    Buf backlog;
    Buf pending; /* log bytes not yet in an event (a cut UTF-8 sequence) */
    Buf out;     /* formatted bytes not yet sent */
    int finished, done;
    int status; /* the step's status at the end, -1 for NULL */
    uint64_t start_ms, last_send_ms, last_check_ms;
} LogStream;

static void stream_free(void *cls)
{
    LogStream *s = cls;
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    ZSTD_freeDCtx(s->dctx);
    free(s->in);
    free(s->tmp);
    free(s->zst_path);
    free(s->plain_path);
    buf_dispose(&s->backlog);
    buf_dispose(&s->pending);
    buf_dispose(&s->out);
    pthread_mutex_lock(&s->srv->lock);
    s->srv->n_streams--;
    pthread_mutex_unlock(&s->srv->lock);
    free(s);
}

/* Format pending bytes into log events (all of them when final, else up to the last
 * complete UTF-8 sequence). */
static void stream_format(LogStream *s, int final)
{
    while (s->pending.len) {
        size_t chunk = s->pending.len < HTTP_SSE_EVENT ? s->pending.len : HTTP_SSE_EVENT;
        size_t k = http__utf8_complete(s->pending.p, chunk);
        if (k == 0 && (final || chunk < s->pending.len))
            k = chunk; /* invalid bytes: they become U+FFFD */
        if (k == 0)
            break;
        buf_printf(&s->out,
                   "id: %" PRIu64 "\nevent: log\ndata: {\"offset\":%" PRIu64 ",\"text\":\"",
                   s->sent_off + k, s->sent_off);
        http__json_escape_utf8(&s->out, s->pending.p, k);
        buf_puts(&s->out, "\"}\n\n");
        s->sent_off += k;
        buf_consume(&s->pending, k);
    }
}

/* Decompressed log bytes, in order. */
static void stream_take(LogStream *s, const uint8_t *p, size_t n)
{
    uint64_t start = s->log_off;
    s->log_off += n;
    if (s->catchup) {
        buf_append(&s->backlog, p, n);
        if (s->backlog.len > HTTP_SSE_BACKLOG)
            buf_consume(&s->backlog, s->backlog.len - HTTP_SSE_BACKLOG);
        return;
    }
    if (s->log_off <= s->skip_to)
        return;
    if (start < s->skip_to) {
        p += s->skip_to - start;
        n -= (size_t)(s->skip_to - start);
    }
    buf_append(&s->pending, p, n);
    stream_format(s, 0);
}

/* The backlog is complete: send it, then follow the log. */
static void stream_catchup_done(LogStream *s)
{
    size_t k = 0;
    uint64_t first = s->log_off - s->backlog.len;
    s->catchup = 0;
    /* the backlog was cut at a byte count: start at a character */
    if (first > 0)
        while (k < 3 && k < s->backlog.len && (s->backlog.p[k] & 0xC0) == 0x80)
            k++;
    s->sent_off = s->skip_to = first + k;
    buf_append(&s->pending, s->backlog.p + k, s->backlog.len - k);
    buf_dispose(&s->backlog);
    stream_format(s, 0);
}

/* The log file was rewritten from the start (a new attempt of the drv). */
static void stream_reset(LogStream *s)
{
    ZSTD_DCtx_reset(s->dctx, ZSTD_reset_session_only);
    s->in_len = s->in_pos = 0;
    s->file_off = s->log_off = s->skip_to = s->sent_off = 0;
    s->catchup = 0;
    buf_reset(&s->backlog);
    buf_reset(&s->pending);
    buf_puts(&s->out, "event: reset\ndata: {}\n\n");
}

/* Up to SSE_TMP_SIZE new log bytes into s->tmp: *got = 0 when nothing is available
 * now; < 0 when the file is not a log. */
static int stream_read_some(LogStream *s, size_t *got)
{
    *got = 0;
    if (s->plain) {
        ssize_t k = pread(s->fd, s->tmp, SSE_TMP_SIZE, (off_t)s->file_off);
        if (k < 0)
            return errno == EINTR ? 0 : ERR_IO;
        s->file_off += (uint64_t)k;
        *got = (size_t)k;
        return 0;
    }
    for (;;) {
        ZSTD_outBuffer ob = {s->tmp, SSE_TMP_SIZE, 0};
        ZSTD_inBuffer ib;
        size_t before, ret;
        if (s->in_pos == s->in_len) {
            ssize_t k = pread(s->fd, s->in, SSE_IN_SIZE, (off_t)s->file_off);
            if (k <= 0)
                return k < 0 && errno != EINTR ? ERR_IO : 0;
            s->file_off += (uint64_t)k;
            s->in_len = (size_t)k;
            s->in_pos = 0;
        }
        ib = (ZSTD_inBuffer){s->in, s->in_len, s->in_pos};
        before = ib.pos;
        ret = ZSTD_decompressStream(s->dctx, &ob, &ib);
        s->in_pos = ib.pos;
        if (ZSTD_isError(ret))
            return ERR_MALFORMED;
        if (ob.pos) {
            *got = ob.pos;
            return 0;
        }
        if (ib.pos == before)
            return 0; /* no progress: wait for more of the file */
    }
}

/* Open the log when it exists (the plain file a running step writes first, then the
 * .zst it is compressed to when the step ends). 1 when open. */
static int stream_open(LogStream *s)
{
    if (s->fd >= 0)
        return 1;
    s->fd = open(s->plain_path, O_RDONLY | O_CLOEXEC);
    s->plain = s->fd >= 0;
    if (s->fd < 0 && errno == ENOENT)
        s->fd = open(s->zst_path, O_RDONLY | O_CLOEXEC);
    return s->fd >= 0;
}

/* Read what is available (bounded by HTTP_SSE_OUT_HIGH of output and 1 MiB of log per
 * call).  1 when bytes were read, 0 when none, < 0 when the log cannot be read. */
static int stream_pump(LogStream *s)
{
    struct stat sb;
    uint64_t total = 0;
    size_t got;
    int rc;
    if (!stream_open(s))
        return 0;
    if (fstat(s->fd, &sb) == 0 && (uint64_t)sb.st_size < s->file_off)
        stream_reset(s);
    while (s->out.len < HTTP_SSE_OUT_HIGH && total < 1024 * 1024) {
        rc = stream_read_some(s, &got);
        if (rc < 0)
            return rc;
        if (got == 0)
            break;
        stream_take(s, s->tmp, got);
        total += got;
    }
    return total > 0;
}

/* 1 when the step is no longer busy (its row says so, or it is gone); 0 while it
 * runs or when the database cannot tell now. */
static int stream_step_done(LogStream *s)
{
    Db *db = NULL;
    DbStmt *st = NULL;
    Err e = {0};
    int rc = http__db_get(s->srv, &db, &e), done = 0;
    if (rc == 0)
        rc = db_query(db, "SELECT status, busy FROM BuildSteps WHERE build = $1 AND stepnr = $2",
                      DB_ARGS(DB_P_INT(s->build), DB_P_INT(s->stepnr)), &st, &e);
    if (rc == 0) {
        rc = db_step(st, &e);
        if (rc == 0) {
            done = 1;
        } else if (rc == 1 && (!db_col_is_null(st, 0) || db_col_int64(st, 1) == 0)) {
            done = 1;
            s->status = db_col_is_null(st, 0) ? -1 : (int)db_col_int64(st, 0);
        }
    }
    db_stmt_done(st);
    http__db_put(s->srv, db, rc < 0);
    if (rc < 0)
        log_debug("http: log stream %" PRId64 "/%" PRId64 ": %s", s->build, s->stepnr, e.msg);
    return done;
}

/* Wait up to ms for the client to hang up.  1 when it did (or the server shut the
 * socket down). */
static int client_gone(int sock, int ms)
{
    struct pollfd pf = {sock, POLLRDHUP, 0};
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    int k;
    if (sock < 0) {
        nanosleep(&ts, NULL);
        return 0;
    }
    k = poll(&pf, 1, ms);
    if (k > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
        return 1;
    if (k > 0) /* the client sent something (it should not): do not spin on it */
        nanosleep(&ts, NULL);
    return 0;
}

/* libmicrohttpd's content reader: blocks until there is something to send. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    LogStream *s = cls;
    (void)pos;
    for (;;) {
        uint64_t now = util_now_ms();
        int rc;
        if (s->out.len) {
            size_t n = s->out.len < max ? s->out.len : max;
            memcpy(buf, s->out.p, n);
            buf_consume(&s->out, n);
            s->last_send_ms = now;
            return (ssize_t)n;
        }
        if (s->done || buf_status(&s->out) < 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (now - s->start_ms >= (uint64_t)HTTP_SSE_LIFETIME_S * 1000)
            return MHD_CONTENT_READER_END_OF_STREAM; /* the browser resumes */
        rc = stream_pump(s);
        if (rc < 0) {
            buf_puts(&s->out,
                     "event: fault\ndata: {\"error\":\"the log file cannot be read\"}\n\n");
            s->done = 1;
            continue;
        }
        if (rc > 0 || s->out.len)
            continue;
        /* nothing new in the file */
        if (s->catchup) {
            stream_catchup_done(s);
            continue;
        }
        if (s->finished) {
            stream_format(s, 1);
            if (s->status >= 0)
                buf_printf(&s->out,
                           "event: end\ndata: {\"status\":%d,\"statusName\":\"%s\","
                           "\"offset\":%" PRIu64 "}\n\n",
                           s->status, db_status_name(s->status), s->sent_off);
            else
                buf_printf(&s->out,
                           "event: end\ndata: {\"status\":null,\"offset\":%" PRIu64 "}\n\n",
                           s->sent_off);
            s->done = 1;
            continue;
        }
        if (now - s->last_check_ms >= 1000) {
            s->last_check_ms = now;
            /* finished: read once more to the end of the file, then end */
            s->finished = stream_step_done(s);
            if (s->finished)
                continue;
        }
        if (now - s->last_send_ms >= HTTP_SSE_KEEPALIVE_MS) {
            buf_puts(&s->out, ": keep-alive\n\n");
            continue;
        }
        if (client_gone(s->sock, HTTP_SSE_POLL_MS))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

/* A drv path from the database: its basename when valid, else NULL (borrowed). */
static const char *db_drv_base(const char *drv_path)
{
    const char *base = drv_path ? strrchr(drv_path, '/') : NULL;
    base = base ? base + 1 : drv_path;
    return base && http__drv_basename_valid(base) ? base : NULL;
}

static void handle_stream(HttpReq *q, HttpReply *r, int64_t build, int64_t stepnr)
{
    Db *db = NULL;
    DbStmt *st = NULL;
    Err e = {0};
    char *drv = NULL, *resolved = NULL;
    int status = -1, found = 0, rc;
    int64_t offset = -1;
    const char *last_id = http__req_header(q, "Last-Event-ID"), *base;
    LogStream *s = NULL;
    struct MHD_Response *resp;
    const union MHD_ConnectionInfo *ci;

    if (arg_int(q, r, "offset", 0, INT64_MAX / 2, &offset) < 0)
        return;
    if (last_id && last_id[0]) {
        int64_t x;
        if (util_parse_i64(last_id, &x) < 0 || x < 0) {
            http__reply_error(r, MHD_HTTP_BAD_REQUEST, "Last-Event-ID must be a log offset");
            return;
        }
        offset = x;
    }
    rc = http__db_get(q->srv, &db, &e);
    if (rc == 0)
        rc = db_query(db,
                      "SELECT drvPath, status, resolvedDrvPath FROM BuildSteps "
                      "WHERE build = $1 AND stepnr = $2",
                      DB_ARGS(DB_P_INT(build), DB_P_INT(stepnr)), &st, &e);
    if (rc == 0) {
        rc = db_step(st, &e);
        if (rc == 1) {
            found = 1;
            drv = xstrdup(db_col_text(st, 0) ? db_col_text(st, 0) : "");
            status = db_col_is_null(st, 1) ? -1 : (int)db_col_int64(st, 1);
            resolved = db_col_text(st, 2) ? xstrdup(db_col_text(st, 2)) : NULL;
        }
    }
    db_stmt_done(st);
    http__db_put(q->srv, db, rc < 0);
    if (rc < 0) {
        http__reply_db_error(r, &e);
        goto out;
    }
    if (!found) {
        http__reply_error(r, MHD_HTTP_NOT_FOUND, "build %" PRId64 " has no step %" PRId64, build,
                          stepnr);
        goto out;
    }
    if (status == DB_STATUS_RESOLVED) {
        http__reply_error(r, MHD_HTTP_NOT_FOUND,
                          "step %" PRId64 " of build %" PRId64
                          " is a resolution: the log is that of the resolved derivation %s",
                          stepnr, build, resolved ? resolved : "?");
        goto out;
    }
    base = db_drv_base(drv);
    if (!base) {
        http__reply_error(r, MHD_HTTP_NOT_FOUND, "the step's derivation path is not valid");
        goto out;
    }
    pthread_mutex_lock(&q->srv->lock);
    if (q->srv->n_streams >= HTTP_SSE_MAX) {
        pthread_mutex_unlock(&q->srv->lock);
        http__reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "too many log streams (%d) are open; try again later", HTTP_SSE_MAX);
        goto out;
    }
    q->srv->n_streams++;
    pthread_mutex_unlock(&q->srv->lock);

    s = xcalloc(1, sizeof *s);
    s->srv = q->srv;
    s->build = build;
    s->stepnr = stepnr;
    s->fd = -1;
    s->status = -1;
    s->zst_path = runner_log_path(q->srv->log_dir, base); /* base has 32+ chars */
    s->plain_path = xstrndup(s->zst_path, strlen(s->zst_path) - 4);
    s->dctx = ZSTD_createDCtx();
    s->in = xmalloc(SSE_IN_SIZE);
    s->tmp = xmalloc(SSE_TMP_SIZE);
    buf_init(&s->backlog, HTTP_SSE_BACKLOG + SSE_TMP_SIZE);
    buf_init(&s->pending, HTTP_SSE_EVENT + SSE_TMP_SIZE + 8);
    /* an event is at most 6 times its text plus a header; OUT_HIGH is checked between
     * chunks of SSE_TMP_SIZE */
    buf_init(&s->out, HTTP_SSE_OUT_HIGH + 8 * (HTTP_SSE_EVENT + SSE_TMP_SIZE));
    if (offset >= 0) {
        s->skip_to = s->sent_off = (uint64_t)offset;
    } else {
        s->catchup = 1;
    }
    s->start_ms = s->last_send_ms = util_now_ms();
    ci = MHD_get_connection_info((struct MHD_Connection *)q->conn,
                                 MHD_CONNECTION_INFO_CONNECTION_FD);
    s->sock = ci ? ci->connect_fd : -1;
    if (!s->dctx) {
        stream_free(s);
        http__reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        goto out;
    }
    buf_puts(&s->out, "retry: 3000\n\n");
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 8192, stream_read, s, stream_free);
    if (!resp) {
        stream_free(s);
        http__reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        goto out;
    }
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    r->response = resp;
    r->status = MHD_HTTP_OK;
    r->content_type = "text/event-stream; charset=utf-8";
out:
    free(drv);
    free(resolved);
}

/* ---------------------------------------------------------------- routing */

int http__dash_route(HttpReq *q, HttpReply *r)
{
    const char **seg = q->seg;
    int n = q->n_seg;
    int64_t id = 0, stepnr = 0;
#define SEG(i, s) (n > (i) && strcmp(seg[i], (s)) == 0)

    if (n == 0) {
        const char *acc = http__req_header(q, MHD_HTTP_HEADER_ACCEPT);
        if (!is_read(q) || (acc && strstr(acc, "application/json")))
            return 0; /* the JSON index, as Hydra's server answers JSON when asked */
        if (!reply_asset(r, "index.html"))
            http__reply_error(r, MHD_HTTP_NOT_FOUND, "this sluice was built without the dashboard");
        return 1;
    }
    if (!SEG(0, "static") && !SEG(0, "api") &&
        !(n == 6 && SEG(0, "build") && SEG(2, "step") && SEG(4, "log") && SEG(5, "stream")))
        return 0;
    if (!is_read(q)) {
        r->allow = "GET, HEAD";
        http__reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed here", q->method);
        return 1;
    }
    if (SEG(0, "static")) {
        if (n != 2 || !reply_asset(r, seg[1]))
            http__reply_error(r, MHD_HTTP_NOT_FOUND, "no such file");
    } else if (SEG(0, "api")) {
        if (n == 2 && SEG(1, "builds"))
            handle_builds(q, r);
        else if (n == 2 && SEG(1, "queue"))
            handle_queue(q, r);
        else if (n == 4 && SEG(1, "build") && SEG(3, "graph")) {
            if (http__parse_id(seg[2], &id) < 0)
                http__reply_error(r, MHD_HTTP_BAD_REQUEST, "malformed build id");
            else
                handle_graph(q, r, id);
        } else
            http__reply_error(r, MHD_HTTP_NOT_FOUND, "no such resource");
    } else {
        if (http__parse_id(seg[1], &id) < 0)
            http__reply_error(r, MHD_HTTP_BAD_REQUEST, "malformed build id");
        else if (http__parse_id(seg[3], &stepnr) < 0)
            http__reply_error(r, MHD_HTTP_BAD_REQUEST, "malformed step number");
        else
            handle_stream(q, r, id, stepnr);
    }
    return 1;
#undef SEG
}
