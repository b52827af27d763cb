/*
 * http: the HTTP server inside `sluice run` (libmicrohttpd).  Read-only views of the
 * runner and the database, build logs, Prometheus metrics, and two mutations (cancel a
 * build, bump its priority) that go through the database exactly as Hydra's web UI
 * does them, so the runner learns about them from its usual notifications.
 *
 *   GET  /status                    runner summary (Hydra's /status shape)
 *   GET  /status/machines           machines (Hydra's keys plus sluice's own)
 *   GET  /status/build/ID/active    {"active": bool}: Builds.finished = 0
 *   GET  /build/ID                  the build with its steps; status-13 steps link to
 *                                   the step of their resolved drv
 *   GET  /build/ID/log              log of the build's last step (running or done)
 *   GET  /build/ID/step/N/log       a step's log (Range requests, ?tail=N)
 *   GET  /build/ID/step/N/log/tail  its last 50 lines
 *   GET  /log/DRV_BASENAME          a log by drv basename (Range requests, ?tail=N)
 *   GET  /metrics                   Prometheus text format 0.0.4, names sluice_*
 *   POST /build/ID/cancel           Authorization: Bearer TOKEN
 *   POST /build/ID/bump[?priority=N]
 *   GET  /  (a browser)             the dashboard; /static/NAME its files (dashboard.c)
 *   GET  /api/builds, /api/queue, /api/build/ID/graph   the dashboard's JSON
 *   GET  /build/ID/step/N/log/stream  the step's log live, as server-sent events
 *
 * Threads: libmicrohttpd runs one thread per connection (bounded); handlers take the
 * runner's snapshots (a short lock) and read the database on their own connections
 * from a small pool, so a request never blocks the runner.
 */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include "runner/runner.h"
#include "util/util.h"

typedef struct HttpServer HttpServer;

typedef struct HttpOptions {
    const char *bind;        /* "ADDR:PORT", "[V6ADDR]:PORT", "PORT" (127.0.0.1); port 0 = any */
    const char *db_url;      /* the runner's database (own connections are opened) */
    const char *log_dir;     /* the runner's log directory */
    const char *admin_token; /* NULL or "": every mutation is refused (403) */
    Runner *runner;          /* borrowed; must outlive the server (NULL: no runner views) */
} HttpOptions;

/* Bind and start serving.  The strings in *o are copied; the runner is borrowed until
 * http_stop.  *out is caller-owned (http_stop).  Errors: ERR_INVALID (a bind address
 * that does not parse), ERR_IO (cannot listen: address in use, permission). */
int http_start(const HttpOptions *o, HttpServer **out, Err *e) UTIL_WUR;
/* The port the server listens on (useful with port 0). */
int http_port(const HttpServer *h);
/* Stop serving (waits for running requests), close the database connections, free.
 * NULL ok. */
void http_stop(HttpServer *h);

#endif
