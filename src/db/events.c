/*
 * events.c: notifications.  PostgreSQL: pg_notify inside the caller's transaction,
 * LISTEN, and libpq's notification queue read while polling the connection's socket.
 *
 * SQLite stand-in: a notification is a row in sluice_events (id, channel, payload,
 * time), written by db_notify inside the caller's transaction and by triggers on Builds
 * and Jobsets where Hydra's PostgreSQL triggers would NOTIFY.  A waiter reads rows with
 * an id above the last one it saw.  It looks again when this process committed a write
 * (the process-wide hub below: a generation counter with a condition variable, bumped
 * after every SQLite commit) or when PRAGMA data_version says another connection
 * committed, checked every DB_SQLITE_POLL_MS.  So a waiter in this process wakes at
 * once and one in another process within a poll interval.
 *
 * Identical (channel, payload) pairs still queued are delivered once, as PostgreSQL
 * folds identical notifications of one transaction.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/db_int.h"

/* The process-wide SQLite write hub.  `gen` is guarded by `mu`. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t gen;
} hub = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

void db__sq_hub_bump(void)
{
    pthread_mutex_lock(&hub.mu);
    hub.gen++;
    pthread_cond_broadcast(&hub.cv);
    pthread_mutex_unlock(&hub.mu);
}

static uint64_t hub_gen(void)
{
    uint64_t g;
    pthread_mutex_lock(&hub.mu);
    g = hub.gen;
    pthread_mutex_unlock(&hub.mu);
    return g;
}

/* Wait until the hub generation differs from `seen`, or ms pass. */
static void hub_wait(uint64_t seen, int ms)
{
    struct timespec ts = util_deadline_in((uint64_t)(ms > 0 ? ms : 0));
    pthread_mutex_lock(&hub.mu);
    while (hub.gen == seen) {
        if (pthread_cond_timedwait(&hub.cv, &hub.mu, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&hub.mu);
}

static void item_free(DbEventItem *it)
{
    if (!it)
        return;
    free(it->channel);
    free(it->payload);
    free(it);
}

void db__events_free(Db *db)
{
    DbEventItem *it = db->ev_head;
    while (it) {
        DbEventItem *next = it->next;
        item_free(it);
        it = next;
    }
    db->ev_head = db->ev_tail = NULL;
    item_free(db->ev_cur);
    db->ev_cur = NULL;
}

static void enqueue(Db *db, const char *channel, const char *payload)
{
    DbEventItem *it;
    if (!payload)
        payload = "";
    for (it = db->ev_head; it; it = it->next)
        if (strcmp(it->channel, channel) == 0 && strcmp(it->payload, payload) == 0)
            return;
    it = xcalloc(1, sizeof *it);
    it->channel = xstrdup(channel);
    it->payload = xstrdup(payload);
    if (db->ev_tail)
        db->ev_tail->next = it;
    else
        db->ev_head = it;
    db->ev_tail = it;
}

/* Channel names go into LISTEN as identifiers, so only [a-z0-9_] are accepted. */
static int check_channel(const char *ch, Err *e)
{
    size_t n = ch ? strlen(ch) : 0;
    if (n == 0 || n >= DB_CHANNEL_MAX)
        return err_set(e, ERR_INVALID, "bad notification channel name '%s'", ch ? ch : "");
    for (size_t i = 0; i < n; i++)
        if (!((ch[i] >= 'a' && ch[i] <= 'z') || (ch[i] >= '0' && ch[i] <= '9') || ch[i] == '_'))
            return err_set(e, ERR_INVALID, "bad notification channel name '%s'", ch);
    return 0;
}

int db_notify(Db *db, const char *channel, const char *payload, Err *e)
{
    int rc = check_channel(channel, e);
    if (rc < 0)
        return rc;
    if (!payload)
        payload = "";
    if (strlen(payload) > DB_NOTIFY_PAYLOAD_MAX)
        return err_set(e, ERR_TOOBIG, "notification payload on %s has %zu bytes (limit %d)",
                       channel, strlen(payload), DB_NOTIFY_PAYLOAD_MAX);
    if (db->kind == DB_POSTGRES)
        rc = db_exec(db, "SELECT pg_notify($1, $2)",
                     DB_ARGS(DB_P_TEXT(channel), DB_P_TEXT(payload)), e);
    else
        rc = db_exec(db, "INSERT INTO sluice_events (channel, payload, time) VALUES ($1, $2, $3)",
                     DB_ARGS(DB_P_TEXT(channel), DB_P_TEXT(payload), DB_P_INT(util_time_now())), e);
    return rc < 0 ? rc : 0;
}

int db_notify_build_finished(Db *db, int64_t build_id, const int64_t *deps, size_t n, Err *e)
{
    char head[32], num[32];
    Buf b;
    int rc = 0;
    snprintf(head, sizeof head, "%lld", (long long)build_id);
    buf_init(&b, DB_NOTIFY_PAYLOAD_MAX + 1);
    buf_puts(&b, head);
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(num, sizeof num, "%lld", (long long)deps[i]);
        if (b.len + 1 + (size_t)k > DB_NOTIFY_PAYLOAD_MAX) {
            rc = db_notify(db, DB_CH_BUILD_FINISHED, buf_cstr(&b), e);
            if (rc < 0)
                goto out;
            buf_reset(&b);
            buf_puts(&b, head);
        }
        buf_putc(&b, '\t');
        buf_puts(&b, num);
    }
    rc = buf_status(&b);
    if (rc < 0) {
        rc = err_set(e, rc, "build_finished payload");
        goto out;
    }
    rc = db_notify(db, DB_CH_BUILD_FINISHED, buf_cstr(&b), e);
out:
    buf_dispose(&b);
    return rc;
}

static int pg_listen_one(Db *db, const char *ch, Err *e)
{
    char sql[DB_CHANNEL_MAX + 16];
    snprintf(sql, sizeof sql, "LISTEN %s", ch); /* ch checked by check_channel */
    return db__exec_script(db, sql, e);
}

int db__relisten(Db *db, Err *e)
{
    if (db->kind != DB_POSTGRES)
        return 0;
    for (size_t i = 0; i < db->listening.n; i++) {
        int rc = pg_listen_one(db, db->listening.v[i], e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int sq_data_version(Db *db, int64_t *out, Err *e)
{
    return db_query_int64(db, "PRAGMA data_version", NULL, 0, out, e);
}

int db_listen(Db *db, const char *const *channels, size_t n, Err *e)
{
    int rc;
    for (size_t i = 0; i < n; i++) {
        rc = check_channel(channels[i], e);
        if (rc < 0)
            return rc;
    }
    if (db->kind == DB_SQLITE && db->listening.n == 0 && n > 0) {
        int64_t last = 0;
        db->sq_hub_gen = hub_gen();
        rc = sq_data_version(db, &db->sq_data_version, e);
        if (rc >= 0)
            rc = db_query_int64(db, "SELECT coalesce(max(id), 0) FROM sluice_events", NULL, 0,
                                &last, e);
        if (rc < 0)
            return rc;
        db->sq_last_event = last;
        db->sq_last_prune = util_time_now();
    }
    for (size_t i = 0; i < n; i++) {
        if (strvec_contains(&db->listening, channels[i]))
            continue;
        if (db->kind == DB_POSTGRES) {
            rc = pg_listen_one(db, channels[i], e);
            if (rc < 0 && db->ec == DB_EC_LOST) {
                rc = db__reconnect(db, e); /* re-listens to the ones already added */
                if (rc == 0)
                    rc = pg_listen_one(db, channels[i], e);
            }
            if (rc < 0)
                return rc;
        }
        strvec_push(&db->listening, channels[i]);
    }
    return 0;
}

/* SQLite: read new rows of sluice_events when something was committed. */
static int sq_poll(Db *db, Err *e)
{
    DbStmt *st;
    int64_t dv = 0;
    uint64_t gen = hub_gen();
    int rc = sq_data_version(db, &dv, e);
    if (rc < 0)
        return rc;
    if (dv == db->sq_data_version && gen == db->sq_hub_gen)
        return 0;
    db->sq_data_version = dv;
    db->sq_hub_gen = gen;
    rc = db_query(db, "SELECT id, channel, payload FROM sluice_events WHERE id > $1 ORDER BY id",
                  DB_ARGS(DB_P_INT(db->sq_last_event)), &st, e);
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1) {
        const char *ch = db_col_text(st, 1);
        db->sq_last_event = db_col_int64(st, 0);
        if (ch && strvec_contains(&db->listening, ch))
            enqueue(db, ch, db_col_text(st, 2));
    }
    db_stmt_done(st);
    if (rc < 0)
        return rc;
    if (util_time_now() - db->sq_last_prune >= 60) {
        Err ignored = {0};
        int r;
        db->sq_last_prune = util_time_now();
        r = db_exec(db, "DELETE FROM sluice_events WHERE time < $1",
                    DB_ARGS(DB_P_INT(util_time_now() - DB_EVENTS_KEEP_S)), &ignored);
        (void)r; /* pruning again in a minute if the database was busy */
    }
    return 0;
}

/* PostgreSQL: take what libpq has received. 0, or < 0 when the connection is gone. */
static int pg_collect(Db *db)
{
    PGnotify *nf;
    if (!db->pg || !PQconsumeInput(db->pg) || PQstatus(db->pg) == CONNECTION_BAD)
        return -1;
    while ((nf = PQnotifies(db->pg)) != NULL) {
        if (strvec_contains(&db->listening, nf->relname))
            enqueue(db, nf->relname, nf->extra);
        PQfreemem(nf);
    }
    return 0;
}

static void drain_pipe(Db *db)
{
    char buf[64];
    while (read(db->intr_pipe[0], buf, sizeof buf) > 0)
        ;
}

int db_wait_event(Db *db, int timeout_ms, DbEvent *out, Err *e)
{
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : util_now_ms() + (uint64_t)timeout_ms;
    int rc;
    memset(out->channel, 0, sizeof out->channel);
    out->payload = "";
    item_free(db->ev_cur);
    db->ev_cur = NULL;
    if (db->tx_depth > 0)
        return err_set(e, ERR_INVALID, "db_wait_event inside a transaction");
    for (;;) {
        uint64_t now;
        if (atomic_exchange(&db->interrupted, 0)) {
            drain_pipe(db);
            return 0;
        }
        if (db->reconnected_event) {
            db->reconnected_event = 0;
            snprintf(out->channel, sizeof out->channel, "%s", DB_CH_RECONNECTED);
            return 1;
        }
        if (db->ev_head) {
            DbEventItem *it = db->ev_head;
            db->ev_head = it->next;
            if (!db->ev_head)
                db->ev_tail = NULL;
            it->next = NULL;
            db->ev_cur = it;
            snprintf(out->channel, sizeof out->channel, "%s", it->channel);
            out->payload = it->payload;
            return 1;
        }
        if (db->kind == DB_POSTGRES) {
            struct pollfd pfd[2];
            int wait_ms;
            if (pg_collect(db) < 0) {
                rc = db__reconnect(db, e);
                if (rc < 0)
                    return rc;
                continue;
            }
            if (db->ev_head)
                continue;
            now = util_now_ms();
            if (now >= deadline)
                return 0;
            wait_ms = deadline == UINT64_MAX     ? -1
                      : deadline - now > 3600000 ? 3600000
                                                 : (int)(deadline - now);
            pfd[0].fd = PQsocket(db->pg);
            pfd[0].events = POLLIN;
            pfd[1].fd = db->intr_pipe[0];
            pfd[1].events = POLLIN;
            if (poll(pfd, 2, wait_ms) < 0 && errno != EINTR)
                return err_sys(e, ERR_IO, "poll");
        } else {
            int slice;
            uint64_t seen;
            rc = sq_poll(db, e);
            if (rc < 0)
                return rc;
            if (db->ev_head)
                continue;
            now = util_now_ms();
            if (now >= deadline)
                return 0;
            slice = deadline - now < DB_SQLITE_POLL_MS ? (int)(deadline - now) : DB_SQLITE_POLL_MS;
            seen = db->sq_hub_gen;
            hub_wait(seen, slice);
        }
    }
}

void db_interrupt(Db *db)
{
    char c = 1;
    ssize_t k;
    atomic_store(&db->interrupted, 1);
    k = write(db->intr_pipe[1], &c, 1);
    (void)k;
}
