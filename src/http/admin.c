/*
 * admin.c: the two mutations, done through the database exactly as Hydra's web UI does
 * them (db_build_cancel, db_build_bump), so the runner (or Hydra's) learns about them
 * from the usual notification:
 *
 *   cancel  UPDATE Builds SET finished = 1, buildStatus = 4 (cancelled),
 *           isCachedBuild = 0, startTime = stopTime = now WHERE id = ? AND finished = 0
 *           -> trigger: builds_cancelled (NOTIFY on PostgreSQL, a sluice_events row on
 *           SQLite)
 *   bump    UPDATE Builds SET globalPriority = ? WHERE id = ?   (default: now, as Hydra)
 *           -> trigger: builds_bumped
 *   restart finished 1 -> 0 and the build's cached failures cleared (db_build_restart)
 *           -> trigger: builds_restarted
 *   clear   the cached failures (FailedPaths) of one step (db_step_failed_paths_clear)
 *
 * server.c lets a request through only as POST with the configured bearer token.
 */
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <string.h>

#include "http/http_int.h"

/* After an action's transaction: the connection back to the pool, and 1 when an error
 * was answered (404 for what does not exist, named by db/actions.c's message). */
static int action_failed(HttpReq *q, HttpReply *r, Db *db, int rc, const Err *e)
{
    http__db_put(q->srv, db, rc < 0 && rc != ERR_NOTFOUND);
    if (rc == ERR_NOTFOUND) {
        http__reply_error(r, MHD_HTTP_NOT_FOUND, "%s", e->msg);
        return 1;
    }
    if (rc < 0) {
        http__reply_db_error(r, e);
        return 1;
    }
    return 0;
}

void http__handle_restart(HttpReq *q, HttpReply *r, int64_t id)
{
    Db *db = NULL;
    Err e = {0};
    int64_t cleared = 0;
    int rc = http__db_get(q->srv, &db, &e);
    if (rc == 0)
        rc = db_build_restart(db, id, &cleared, &e);
    if (action_failed(q, r, db, rc, &e))
        return;
    if (rc == 0) {
        http__reply_error(r, MHD_HTTP_CONFLICT,
                          "build %" PRId64 " is not finished: it cannot be restarted", id);
        return;
    }
    log_info("http: build %" PRId64 " restarted", id);
    http__reply_json(r, MHD_HTTP_OK,
                     json_pack("{s:I,s:b,s:I}", "id", (json_int_t)id, "restarted", 1,
                               "failedPathsCleared", (json_int_t)cleared));
}

void http__handle_clear_failed(HttpReq *q, HttpReply *r, int64_t id, int64_t stepnr)
{
    Db *db = NULL;
    Err e = {0};
    int rc = http__db_get(q->srv, &db, &e);
    if (rc == 0)
        rc = db_step_failed_paths_clear(db, id, stepnr, &e);
    if (action_failed(q, r, db, rc, &e))
        return;
    log_info("http: %d cached failure(s) of build %" PRId64 " step %" PRId64 " cleared", rc, id,
             stepnr);
    http__reply_json(r, MHD_HTTP_OK,
                     json_pack("{s:I,s:I,s:i}", "id", (json_int_t)id, "stepnr", (json_int_t)stepnr,
                               "cleared", rc));
}

void http__handle_cancel(HttpReq *q, HttpReply *r, int64_t id)
{
    Db *db = NULL;
    Err e = {0};
    int rc = http__db_get(q->srv, &db, &e);
    if (rc == 0)
        rc = db_build_cancel(db, id, util_time_now(), &e);
    if (action_failed(q, r, db, rc, &e))
        return;
    if (rc == 0) {
        http__reply_error(r, MHD_HTTP_CONFLICT,
                          "build %" PRId64 " is finished: it cannot be cancelled", id);
        return;
    }
    log_info("http: build %" PRId64 " cancelled", id);
    http__reply_json(r, MHD_HTTP_OK, json_pack("{s:I,s:b}", "id", (json_int_t)id, "cancelled", 1));
}

void http__handle_bump(HttpReq *q, HttpReply *r, int64_t id)
{
    const char *p = http__req_arg(q, "priority");
    Db *db = NULL;
    Err e = {0};
    int64_t prio = util_time_now();
    int rc;
    if (p && (util_parse_i64(p, &prio) < 0 || prio < INT32_MIN || prio > INT32_MAX)) {
        http__reply_error(r, MHD_HTTP_BAD_REQUEST, "priority must be a 32-bit integer");
        return;
    }
    rc = http__db_get(q->srv, &db, &e);
    if (rc == 0)
        rc = db_build_bump(db, id, prio, &e);
    if (action_failed(q, r, db, rc, &e))
        return;
    log_info("http: build %" PRId64 " bumped to global priority %" PRId64, id, prio);
    http__reply_json(
        r, MHD_HTTP_OK,
        json_pack("{s:I,s:I}", "id", (json_int_t)id, "globalpriority", (json_int_t)prio));
}
