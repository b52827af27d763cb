/*
 * admin.c: the two mutations, done through the database exactly as Hydra's web UI does
 * them, so the runner (or Hydra's) learns about them from the usual notification:
 *
 *   cancel  UPDATE Builds SET finished = 1, buildStatus = 4 (cancelled),
 *           isCachedBuild = 0, startTime = stopTime = now WHERE id = ? AND finished = 0
 *           -> trigger: builds_cancelled (NOTIFY on PostgreSQL, a sluice_events row on
 *           SQLite)
 *   bump    UPDATE Builds SET globalPriority = ? WHERE id = ?   (default: now, as Hydra)
 *           -> trigger: builds_bumped
 *
 * server.c lets a request through only as POST with the configured bearer token.
 */
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <string.h>

#include "http/http_int.h"

typedef struct CancelTx {
    int64_t id, now;
    int changed; /* OUT */
    int exists;  /* OUT */
} CancelTx;

static int cancel_tx(Db *db, void *payload, Err *e)
{
    CancelTx *t = payload;
    int64_t n = 0;
    int rc;
    t->changed = t->exists = 0;
    rc = db_exec(db,
                 "UPDATE Builds SET finished = 1, buildStatus = 4, isCachedBuild = 0, "
                 "startTime = $2, stopTime = $2 WHERE id = $1 AND finished = 0",
                 DB_ARGS(DB_P_INT(t->id), DB_P_INT(t->now)), e);
    if (rc < 0)
        return rc;
    t->changed = rc;
    if (rc == 0) {
        rc = db_query_int64(db, "SELECT count(*) FROM Builds WHERE id = $1",
                            DB_ARGS(DB_P_INT(t->id)), &n, e);
        if (rc < 0)
            return rc;
    }
    t->exists = t->changed || n > 0;
    return 0;
}

void http_handle_cancel(HttpReq *q, HttpReply *r, int64_t id)
{
    Db *db = NULL;
    Err e = {0};
    CancelTx t = {id, util_time_now(), 0, 0};
    int rc = http_db_get(q->srv, &db, &e);
    if (rc == 0)
        rc = db_tx(db, cancel_tx, &t, &e);
    http_db_put(q->srv, db, rc < 0);
    if (rc < 0) {
        http_reply_db_error(r, &e);
        return;
    }
    if (!t.exists) {
        http_reply_error(r, MHD_HTTP_NOT_FOUND, "no build %" PRId64, id);
        return;
    }
    if (!t.changed) {
        http_reply_error(r, MHD_HTTP_CONFLICT,
                         "build %" PRId64 " is finished: it cannot be cancelled", id);
        return;
    }
    log_info("http: build %" PRId64 " cancelled", id);
    http_reply_json(r, MHD_HTTP_OK, json_pack("{s:I,s:b}", "id", (json_int_t)id, "cancelled", 1));
}

typedef struct BumpTx {
    int64_t id, prio;
    int changed; /* OUT */
} BumpTx;

static int bump_tx(Db *db, void *payload, Err *e)
{
    BumpTx *t = payload;
    int rc = db_exec(db, "UPDATE Builds SET globalPriority = $2 WHERE id = $1",
                     DB_ARGS(DB_P_INT(t->id), DB_P_INT(t->prio)), e);
    if (rc < 0)
        return rc;
    t->changed = rc;
    return 0;
}

void http_handle_bump(HttpReq *q, HttpReply *r, int64_t id)
{
    const char *p = http_req_arg(q, "priority");
    Db *db = NULL;
    Err e = {0};
    BumpTx t = {id, util_time_now(), 0};
    int rc;
    if (p && (util_parse_i64(p, &t.prio) < 0 || t.prio < INT32_MIN || t.prio > INT32_MAX)) {
        http_reply_error(r, MHD_HTTP_BAD_REQUEST, "priority must be a 32-bit integer");
        return;
    }
    rc = http_db_get(q->srv, &db, &e);
    if (rc == 0)
        rc = db_tx(db, bump_tx, &t, &e);
    http_db_put(q->srv, db, rc < 0);
    if (rc < 0) {
        http_reply_db_error(r, &e);
        return;
    }
    if (!t.changed) {
        http_reply_error(r, MHD_HTTP_NOT_FOUND, "no build %" PRId64, id);
        return;
    }
    log_info("http: build %" PRId64 " bumped to global priority %" PRId64, id, t.prio);
    http_reply_json(
        r, MHD_HTTP_OK,
        json_pack("{s:I,s:I}", "id", (json_int_t)id, "globalpriority", (json_int_t)t.prio));
}
