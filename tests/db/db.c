/* Tests of src/db/db.c: statements, parameters, errors, transactions with retry and the
 * in-doubt COMMIT check, reconnecting, the runner lock.  Each runs on every backend
 * (dbtest.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db_int.h"
#include "dbtest.h"
#include "test.h"

#define T_TABLE                                                                                    \
    "CREATE TABLE t (id integer primary key not null, s text, d double precision, n bigint)"

TEST(db, db, exec_and_query_with_parameters)
{
    DbTest t = {0};
    while (dbtest_next(&t, 0)) {
        Db *db = NULL;
        DbStmt *st;
        Err err_ = {0}, *e = &err_;
        int64_t v = 0;
        char *txt = NULL;
        const char *evil = "it's \"quoted\"; DROP TABLE t; -- \xc3\xa9";
        CHECK_OK(db_open(t.url, 0, &db, e), e);
        CHECK_INT(db_kind(db), t.kind);
        CHECK_OK(db_exec(db, T_TABLE, NULL, 0, e), e);
        CHECK_INT(db_exec(db, "INSERT INTO t (id, s, d, n) VALUES ($1, $2, $3, $4)",
                          DB_ARGS(DB_P_INT(1), DB_P_TEXT(evil), DB_P_DOUBLE(2.5),
                                  DB_P_INT(INT64_C(9000000000))),
                          e),
                  1);
        CHECK_INT(db_exec(db, "INSERT INTO t (id, s, d, n) VALUES ($1, $2, $3, $4)",
                          DB_ARGS(DB_P_INT(2), DB_P_TEXT(NULL), DB_P_NULL, DB_P_INT(-5)), e),
                  1);
        /* RETURNING, and ON CONFLICT DO NOTHING changing nothing */
        CHECK_INT(db_query_int64(db, "INSERT INTO t (id, s) VALUES ($1, $2) RETURNING id",
                                 DB_ARGS(DB_P_INT(3), DB_P_TEXT("x")), &v, e),
                  1);
        CHECK_INT(v, 3);
        CHECK_INT(db_exec(db, "INSERT INTO t (id, s) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                          DB_ARGS(DB_P_INT(3), DB_P_TEXT("y")), e),
                  0);
        CHECK_INT(db_query_int64(db,
                                 "INSERT INTO t (id) VALUES ($1) ON CONFLICT DO NOTHING "
                                 "RETURNING id",
                                 DB_ARGS(DB_P_INT(3)), &v, e),
                  0);
        /* a parameter used twice; parameters in any order */
        CHECK_OK(db_query(db,
                          "SELECT id, s, d, n FROM t WHERE id = $2 OR (id = $1 AND $1 > 0) "
                          "ORDER BY id",
                          DB_ARGS(DB_P_INT(1), DB_P_INT(2)), &st, e),
                 e);
        CHECK_INT(db_step(st, e), 1);
        CHECK_INT(db_col_count(st), 4);
        CHECK_INT(db_col_int64(st, 0), 1);
        CHECK_STR(db_col_text(st, 1), evil);
        CHECK(db_col_double(st, 2) == 2.5);
        CHECK_INT(db_col_int64(st, 3), INT64_C(9000000000));
        CHECK(!db_col_is_null(st, 1));
        CHECK_INT(db_step(st, e), 1);
        CHECK_INT(db_col_int64(st, 0), 2);
        CHECK(db_col_text(st, 1) == NULL);
        CHECK(db_col_is_null(st, 1));
        CHECK(db_col_is_null(st, 2));
        CHECK_INT(db_col_int64(st, 3), -5);
        CHECK_INT(db_step(st, e), 0);
        db_stmt_done(st);
        /* text result, count, update count */
        CHECK_INT(db_query_text(db, "SELECT s FROM t WHERE id = $1", DB_ARGS(DB_P_INT(3)), &txt, e),
                  1);
        CHECK_STR(txt, "x");
        free(txt);
        CHECK_INT(db_query_text(db, "SELECT s FROM t WHERE id = $1", DB_ARGS(DB_P_INT(2)), &txt, e),
                  1);
        CHECK(txt == NULL);
        CHECK_INT(db_exec(db, "UPDATE t SET n = coalesce(n, 0) + 1", NULL, 0, e), 3);
        CHECK_INT(db_query_int64(db, "SELECT count(*) FROM t WHERE s = $1",
                                 DB_ARGS(DB_P_TEXT(evil)), &v, e),
                  1);
        CHECK_INT(v, 1);
        /* the cached statement runs again with other values, also nested in an open query */
        CHECK_OK(db_query(db, "SELECT id FROM t ORDER BY id", NULL, 0, &st, e), e);
        while (db_step(st, e) == 1) {
            int64_t id = db_col_int64(st, 0), again = 0;
            CHECK_INT(db_query_int64(db, "SELECT id FROM t WHERE id = $1", DB_ARGS(DB_P_INT(id)),
                                     &again, e),
                      1);
            CHECK_INT(again, id);
            {
                DbStmt *inner;
                CHECK_OK(db_query(db, "SELECT id FROM t ORDER BY id", NULL, 0, &inner, e), e);
                CHECK_INT(db_step(inner, e), 1);
                CHECK_INT(db_col_int64(inner, 0), 1);
                db_stmt_done(inner);
            }
        }
        db_stmt_done(st);
        db_close(db);
    }
}

TEST(db, db, errors_are_classified)
{
    DbTest t = {0};
    while (dbtest_next(&t, 0)) {
        Db *db = NULL;
        Err err_ = {0}, *e = &err_;
        int64_t v;
        CHECK_OK(db_open(t.url, 0, &db, e), e);
        CHECK_OK(db_exec(db, T_TABLE, NULL, 0, e), e);
        CHECK_OK(db_exec(db, "INSERT INTO t (id) VALUES (1)", NULL, 0, e), e);
        CHECK_INT(db_exec(db, "INSERT INTO t (id) VALUES (1)", NULL, 0, e), ERR_CONFLICT);
        CHECK_OK(db_exec(db, "CREATE TABLE u (x text not null)", NULL, 0, e), e);
        CHECK_INT(db_exec(db, "INSERT INTO u (x) VALUES (NULL)", NULL, 0, e), ERR_CONFLICT);
        CHECK_INT(db_exec(db, "INSERT INTO u (x) VALUES ($1)", DB_ARGS(DB_P_NULL), e),
                  ERR_CONFLICT);
        CHECK_INT(db_exec(db, "SELEKT 1", NULL, 0, e), ERR_DB);
        CHECK_MSG(strstr(e->msg, "SELEKT") || strstr(e->msg, "syntax"), "%s: %s", t.label, e->msg);
        CHECK(db_exec(db, "INSERT INTO no_such_table VALUES (1)", NULL, 0, e) < 0);
        /* the statement still works after an error */
        CHECK_INT(db_query_int64(db, "SELECT count(*) FROM t", NULL, 0, &v, e), 1);
        CHECK_INT(v, 1);
        CHECK(db_exec(db, "SELECT 1; SELECT 2", NULL, 0, e) < 0);
        db_close(db);
    }
}

TEST(db, db, bad_urls_and_servers)
{
    Db *db = NULL;
    Err err_ = {0}, *e = &err_;
    char *path;
    FILE *f;
    CHECK_INT(db_open("mysql://x/y", 0, &db, e), ERR_INVALID);
    CHECK(strstr(e->msg, "mysql://x/y") && strstr(e->msg, "sqlite:PATH"));
    CHECK_INT(db_open("", 0, &db, e), ERR_INVALID);
    CHECK_INT(db_open("sqlite:", 0, &db, e), ERR_INVALID);
    CHECK_INT(db_open("postgresql://host:port:x/db?sslmode", 0, &db, e), ERR_INVALID);
    CHECK_MSG(strstr(e->msg, "does not parse"), "%s", e->msg);
    /* a server that is not there; the password never shows */
    CHECK_INT(db_open("postgresql://u:s3cret@/db?host=/nonexistent-dir", 0, &db, e), ERR_DB);
    CHECK_MSG(strstr(e->msg, "cannot connect to PostgreSQL") && !strstr(e->msg, "s3cret") &&
                  strstr(e->msg, "u:***@"),
              "%s", e->msg);
    CHECK_INT(db_open("host=/nonexistent-dir password=s3cret dbname=x", 0, &db, e), ERR_DB);
    CHECK_MSG(!strstr(e->msg, "s3cret") && strstr(e->msg, "password=***"), "%s", e->msg);
    CHECK(db == NULL);
    /* a file that is not a database */
    path = xasprintf("%s/not-a-db", test_tmpdir());
    f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("this is not a SQLite database, not at all, it is just text......................\n", f);
    fclose(f);
    {
        char *url = xasprintf("sqlite:%s", path);
        int rc = db_open(url, 0, &db, e);
        free(url);
        CHECK_MSG(rc == ERR_DB && strstr(e->msg, "not a database"), "%d %s", rc, e->msg);
    }
    free(path);
    /* SQLite: the parent directory is created, the schema too */
    path = xasprintf("sqlite:%s/a/b/c.db", test_tmpdir());
    CHECK_OK(db_open(path, 0, &db, e), e);
    {
        char *mode = NULL;
        CHECK_INT(db_query_text(db, "PRAGMA journal_mode", NULL, 0, &mode, e), 1);
        CHECK_STR(mode, "wal");
        free(mode);
    }
    db_close(db);
    free(path);
}

/* ---- transactions */

typedef struct Ins {
    int64_t id;
    int fail;
    int runs;
} Ins;

static int ins_body(Db *db, void *payload, Err *e)
{
    Ins *p = payload;
    int rc;
    p->runs++;
    rc = db_exec(db, "INSERT INTO t (id, s) VALUES ($1, 'tx')", DB_ARGS(DB_P_INT(p->id)), e);
    if (rc < 0)
        return rc;
    if (p->fail)
        return err_set(e, ERR_INVALID, "body says no");
    return 0;
}

static int nested_body(Db *db, void *payload, Err *e)
{
    Ins *p = payload;
    Ins inner = {p->id + 100, 0, 0};
    int rc = ins_body(db, p, e);
    if (rc < 0)
        return rc;
    if (!db_in_tx(db))
        return err_set(e, ERR_INVALID, "not in a transaction");
    return db_tx(db, ins_body, &inner, e);
}

TEST(db, db, tx_commit_rollback_nested)
{
    DbTest t = {0};
    while (dbtest_next(&t, 0)) {
        Db *db = NULL;
        Err err_ = {0}, *e = &err_;
        Ins a = {1, 0, 0}, b = {2, 1, 0}, c = {3, 0, 0};
        int64_t v;
        CHECK_OK(db_open(t.url, 0, &db, e), e);
        CHECK_OK(db_exec(db, T_TABLE, NULL, 0, e), e);
        CHECK_OK(db_tx(db, ins_body, &a, e), e);
        CHECK_INT(db_tx(db, ins_body, &b, e), ERR_INVALID);
        CHECK_STR(e->msg, "body says no");
        CHECK_INT(b.runs, 1);
        CHECK_OK(db_tx(db, nested_body, &c, e), e);
        CHECK(!db_in_tx(db));
        CHECK_INT(db_query_int64(db, "SELECT count(*) FROM t", NULL, 0, &v, e), 1);
        CHECK_INT(v, 3); /* 1, 3, 103 */
        CHECK_INT(db_query_int64(db, "SELECT count(*) FROM t WHERE id = 2", NULL, 0, &v, e), 1);
        CHECK_INT(v, 0);
        /* a failing statement inside the body rolls everything back (no retry) */
        a.runs = 0;
        CHECK_INT(db_tx(db, ins_body, &a, e), ERR_CONFLICT);
        CHECK_INT(a.runs, 1);
        /* every write transaction left its id in sluice_txlog */
        CHECK_INT(db_query_int64(db, "SELECT count(*) FROM sluice_txlog", NULL, 0, &v, e), 1);
        CHECK_MSG(v >= 2, "%s: %lld txlog rows", t.label, (long long)v);
        db_close(db);
    }
}

/* Two threads, each with its own connection, increment one counter N times in
 * transactions that read then write (SQLite: busy; PostgreSQL: row locks). */
typedef struct Counter {
    const char *url;
    int n;
    int failed;
    Err e;
} Counter;

static int incr_body(Db *db, void *payload, Err *e)
{
    int64_t v = 0;
    int rc = db_query_int64(db, "SELECT n FROM c WHERE id = 1", NULL, 0, &v, e);
    (void)payload;
    if (rc < 0)
        return rc;
    rc = db_exec(db, "UPDATE c SET n = $1 WHERE id = 1", DB_ARGS(DB_P_INT(v + 1)), e);
    return rc < 0 ? rc : 0;
}

static void *counter_thread(void *arg)
{
    Counter *c = arg;
    Db *db = NULL;
    if (db_open(c->url, 0, &db, &c->e) < 0) {
        c->failed = 1;
        return NULL;
    }
    for (int i = 0; i < c->n; i++) {
        /* PostgreSQL read committed would lose updates with read-then-write: lock first */
        if (db_tx(db, incr_body, NULL, &c->e) < 0) {
            c->failed = 1;
            break;
        }
    }
    db_close(db);
    return NULL;
}

static int incr_locked_body(Db *db, void *payload, Err *e)
{
    int rc;
    (void)payload;
    if (db_kind(db) == DB_POSTGRES) {
        rc = db_exec(db, "SELECT n FROM c WHERE id = 1 FOR UPDATE", NULL, 0, e);
        if (rc < 0)
            return rc;
    }
    return incr_body(db, payload, e);
}

static void *counter_thread_locked(void *arg)
{
    Counter *c = arg;
    Db *db = NULL;
    if (db_open(c->url, 0, &db, &c->e) < 0) {
        c->failed = 1;
        return NULL;
    }
    for (int i = 0; i < c->n; i++) {
        if (db_tx(db, incr_locked_body, NULL, &c->e) < 0) {
            c->failed = 1;
            break;
        }
    }
    db_close(db);
    return NULL;
}

TEST(db, db, tx_concurrent_writers)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_NO_HYDRA)) {
        Db *db = NULL;
        Err err_ = {0}, *e = &err_;
        Counter c[3];
        pthread_t th[3];
        int64_t v = 0;
        CHECK_OK(db_open(t.url, 0, &db, e), e);
        CHECK_OK(
            db_exec(db, "CREATE TABLE c (id integer primary key not null, n integer)", NULL, 0, e),
            e);
        CHECK_OK(db_exec(db, "INSERT INTO c VALUES (1, 0)", NULL, 0, e), e);
        for (int i = 0; i < 3; i++) {
            memset(&c[i], 0, sizeof c[i]);
            c[i].url = t.url;
            c[i].n = 100;
            pthread_create(&th[i], NULL, counter_thread_locked, &c[i]);
        }
        for (int i = 0; i < 3; i++)
            pthread_join(th[i], NULL);
        for (int i = 0; i < 3; i++)
            CHECK_MSG(!c[i].failed, "%s: thread %d: %s", t.label, i, c[i].e.msg);
        CHECK_INT(db_query_int64(db, "SELECT n FROM c WHERE id = 1", NULL, 0, &v, e), 1);
        CHECK_INT(v, 300);
        (void)counter_thread;
        db_close(db);
    }
}

/* Two transactions taking two rows in opposite order: PostgreSQL aborts one with a
 * deadlock (40P01) and db_tx runs it again; both end up applied. */
typedef struct Dl {
    const char *url;
    int first, second;
    int runs;
    int failed;
    Err e;
} Dl;

static int dl_body(Db *db, void *payload, Err *e)
{
    Dl *d = payload;
    int rc;
    d->runs++;
    rc = db_exec(db, "UPDATE c SET n = n + 1 WHERE id = $1", DB_ARGS(DB_P_INT(d->first)), e);
    if (rc < 0)
        return rc;
    usleep(300 * 1000);
    rc = db_exec(db, "UPDATE c SET n = n + 1 WHERE id = $1", DB_ARGS(DB_P_INT(d->second)), e);
    return rc < 0 ? rc : 0;
}

static void *dl_thread(void *arg)
{
    Dl *d = arg;
    Db *db = NULL;
    if (db_open(d->url, 0, &db, &d->e) < 0 || db_tx(db, dl_body, d, &d->e) < 0)
        d->failed = 1;
    db_close(db);
    return NULL;
}

TEST(db, db, tx_deadlock_is_retried)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_NO_HYDRA)) {
        Db *db = NULL;
        Err err_ = {0}, *e = &err_;
        Dl a = {0}, b = {0};
        pthread_t ta, tb;
        int64_t v = 0;
        CHECK_OK(db_open(t.url, 0, &db, e), e);
        CHECK_OK(
            db_exec(db, "CREATE TABLE c (id integer primary key not null, n integer)", NULL, 0, e),
            e);
        CHECK_OK(db_exec(db, "INSERT INTO c VALUES (1, 0), (2, 0)", NULL, 0, e), e);
        a.url = b.url = t.url;
        a.first = 1, a.second = 2;
        b.first = 2, b.second = 1;
        pthread_create(&ta, NULL, dl_thread, &a);
        pthread_create(&tb, NULL, dl_thread, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        CHECK_MSG(!a.failed && !b.failed, "%s: %s / %s", t.label, a.e.msg, b.e.msg);
        CHECK_INT(db_query_int64(db, "SELECT sum(n) FROM c", NULL, 0, &v, e), 1);
        CHECK_INT(v, 4);
        if (t.kind == DB_POSTGRES)
            CHECK_MSG(a.runs + b.runs == 3, "%s: runs %d + %d (expected one deadlock retry)",
                      t.label, a.runs, b.runs);
        db_close(db);
    }
}

/* The COMMIT's answer is lost: committed -> not run again; not committed -> run again.
 * Either way the row is there exactly once. */
TEST(db, db, tx_in_doubt_commit)
{
    DbTest t = {0};
    while (dbtest_next(&t, 0)) {
        Db *db = NULL;
        Err err_ = {0}, *e = &err_;
        Ins a = {1, 0, 0}, b = {2, 0, 0};
        int64_t v = 0;
        CHECK_OK(db_open(t.url, 0, &db, e), e);
        db_set_reconnect_timeout(db, 10000);
        CHECK_OK(db_exec(db, T_TABLE, NULL, 0, e), e);
        db__test_commit_fault(db, 1);
        CHECK_OK(db_tx(db, ins_body, &a, e), e);
        CHECK_INT(a.runs, 1);
        db__test_commit_fault(db, 2);
        CHECK_OK(db_tx(db, ins_body, &b, e), e);
        CHECK_INT(b.runs, t.kind == DB_POSTGRES ? 2 : 1);
        CHECK_INT(db_query_int64(db, "SELECT count(*) FROM t", NULL, 0, &v, e), 1);
        CHECK_INT(v, 2);
        db_close(db);
    }
}

/* ---- reconnecting */

static int hook_calls;
static int count_hook(Db *db, void *payload, Err *e)
{
    (void)db, (void)payload, (void)e;
    hook_calls++;
    return 0;
}

static int backend_pid(Db *db, int64_t *pid, Err *e)
{
    return db_query_int64(db, "SELECT pg_backend_pid()", NULL, 0, pid, e);
}

static int terminate(int64_t pid)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", (long long)pid);
    return dbtest_pg_admin(sql);
}

/* Inserts, then (on its first run only) has the server drop this connection. */
static int killing_body(Db *db, void *payload, Err *e)
{
    Ins *p = payload;
    int64_t pid = 0;
    int rc = ins_body(db, p, e);
    if (rc < 0 || p->runs > 1)
        return rc;
    rc = backend_pid(db, &pid, e);
    if (rc < 0)
        return rc;
    if (terminate(pid) < 0)
        return err_set(e, ERR_DB, "terminate failed");
    rc = db_exec(db, "UPDATE t SET s = 'after' WHERE id = $1", DB_ARGS(DB_P_INT(p->id)), e);
    return rc < 0 ? rc : 0;
}

TEST(db, db, lost_connection_is_reopened)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_NO_HYDRA)) {
        Db *db = NULL;
        Err err_ = {0}, *e = &err_;
        int64_t pid = 0, v = 0;
        Ins a = {7, 0, 0};
        if (t.kind != DB_POSTGRES)
            continue; /* a SQLite file has no connection to lose */
        CHECK_OK(db_open(t.url, 0, &db, e), e);
        db_set_reconnect_hook(db, count_hook, NULL);
        hook_calls = 0;
        CHECK_OK(db_exec(db, T_TABLE, NULL, 0, e), e);
        /* a read after the server dropped us: re-opened and run again */
        CHECK_OK(backend_pid(db, &pid, e), e);
        CHECK_OK(terminate(pid), e);
        CHECK_INT(db_query_int64(db, "SELECT count(*) FROM t", NULL, 0, &v, e), 1);
        CHECK_INT(hook_calls, 1);
        /* a write outside a transaction: re-opened but reported */
        CHECK_OK(backend_pid(db, &pid, e), e);
        CHECK_OK(terminate(pid), e);
        CHECK_INT(db_exec(db, "INSERT INTO t (id) VALUES (5)", NULL, 0, e), ERR_DB);
        CHECK_MSG(strstr(e->msg, "may or may not"), "%s", e->msg);
        CHECK_INT(hook_calls, 2);
        CHECK_OK(db_exec(db, "INSERT INTO t (id) VALUES (5)", NULL, 0, e), e);
        /* lost before a transaction: re-opened, the body runs once */
        CHECK_OK(backend_pid(db, &pid, e), e);
        CHECK_OK(terminate(pid), e);
        CHECK_OK(db_tx(db, ins_body, &a, e), e);
        CHECK_INT(a.runs, 1);
        CHECK_INT(hook_calls, 3);
        /* lost in the middle of the body: re-opened and the whole body runs again */
        a.id = 8;
        a.runs = 0;
        CHECK_OK(db_tx(db, killing_body, &a, e), e);
        CHECK_INT(a.runs, 2);
        CHECK_INT(hook_calls, 4);
        CHECK_INT(db_query_int64(db, "SELECT count(*) FROM t", NULL, 0, &v, e), 1);
        CHECK_INT(v, 3);
        db_close(db);
    }
}

/* ---- the runner lock */

TEST(db, db, runner_lock_is_exclusive)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_NO_HYDRA)) {
        Db *a = NULL, *b = NULL;
        Err err_ = {0}, *e = &err_;
        char *lf = xasprintf("%s/%s/runner.lock", test_tmpdir(), t.label);
        char *lf2 = xasprintf("%s/%s/other.lock", test_tmpdir(), t.label);
        CHECK_OK(db_open(t.url, 0, &a, e), e);
        CHECK_OK(db_open(t.url, 0, &b, e), e);
        CHECK_OK(db_lock_runner(a, lf, e), e);
        CHECK_INT(db_lock_runner(b, lf, e), ERR_BUSY);
        CHECK_MSG(strstr(e->msg, "another sluice runner") && strstr(e->msg, "pid"), "%s", e->msg);
        /* another state dir, same database: the advisory lock (PostgreSQL) or the lock
         * of the database file (SQLite) refuses */
        CHECK_INT(db_lock_runner(b, lf2, e), ERR_BUSY);
        CHECK_MSG(strstr(e->msg, t.kind == DB_POSTGRES ? "advisory lock" : "on this database"),
                  "%s", e->msg);
        db_close(a);
        CHECK_OK(db_lock_runner(b, lf, e), e);
        db_close(b);
        free(lf);
        free(lf2);
    }
}

/* ---- PostgreSQL killed and restarted in the middle of a run of writes */

typedef struct Writer {
    const char *url;
    int n;
    volatile int done;
    int failed;
    Err e;
    int64_t key;
} Writer;

static int writer_body(Db *db, void *payload, Err *e)
{
    Writer *w = payload;
    int rc = db_exec(db, "INSERT INTO w (k) VALUES ($1)", DB_ARGS(DB_P_INT(w->key)), e);
    if (rc >= 0)
        rc = db_exec(db, "UPDATE c SET n = n + 1 WHERE id = 1", NULL, 0, e);
    return rc < 0 ? rc : 0;
}

static void *writer_thread(void *arg)
{
    Writer *w = arg;
    Db *db = NULL;
    if (db_open(w->url, 0, &db, &w->e) < 0) {
        w->failed = 1;
        return NULL;
    }
    db_set_reconnect_timeout(db, 30000);
    if (db_lock_runner(db, NULL, &w->e) < 0) {
        w->failed = 1;
        db_close(db);
        return NULL;
    }
    for (int i = 0; i < w->n; i++) {
        w->key = i;
        if (db_tx(db, writer_body, w, &w->e) < 0) {
            w->failed = 1;
            break;
        }
        w->done = i + 1;
        usleep(2000);
    }
    /* still the lock holder after the reconnects */
    if (!w->failed) {
        int64_t v = 0;
        if (db_query_int64(db,
                           "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                           "pid = pg_backend_pid()",
                           NULL, 0, &v, &w->e) < 0 ||
            v != 1) {
            w->failed = 1;
            if (!w->e.msg[0])
                snprintf(w->e.msg, sizeof w->e.msg, "advisory lock not held after reconnect");
        }
    }
    db_close(db);
    return NULL;
}

TEST(db, db, server_killed_during_writes)
{
    char *dir = NULL, *base = NULL, *url = NULL;
    Db *db = NULL;
    Err err_ = {0}, *e = &err_;
    Writer w = {0};
    pthread_t th;
    int64_t v = 0, d = 0;
    const int n = 400;
    CHECK(dbtest_pg_private_start(&dir, &base) == 0);
    url = base; /* the postgres database of the private server */
    CHECK_OK(db_open(url, DB_OPEN_NO_SCHEMA, &db, e), e);
    CHECK_OK(db_schema_init(db, NULL, e), e);
    CHECK_OK(db_exec(db, "CREATE TABLE w (k integer primary key not null)", NULL, 0, e), e);
    CHECK_OK(db_exec(db, "CREATE TABLE c (id integer primary key not null, n integer)", NULL, 0, e),
             e);
    CHECK_OK(db_exec(db, "INSERT INTO c VALUES (1, 0)", NULL, 0, e), e);
    db_close(db);
    db = NULL;
    w.url = url;
    w.n = n;
    pthread_create(&th, NULL, writer_thread, &w);
    for (int round = 0; round < 2; round++) {
        int target = (round + 1) * n / 3;
        while (w.done < target && !w.failed)
            usleep(1000);
        CHECK_MSG(dbtest_pg_private_kill(dir) == 0, "kill");
        usleep(700 * 1000);
        CHECK_MSG(dbtest_pg_private_resume(dir) == 0, "resume");
    }
    pthread_join(th, NULL);
    CHECK_MSG(!w.failed, "writer: %s (after %d transactions)", w.e.msg, w.done);
    CHECK_INT(w.done, n);
    CHECK_OK(db_open(url, 0, &db, e), e);
    CHECK_INT(db_query_int64(db, "SELECT count(*) FROM w", NULL, 0, &v, e), 1);
    CHECK_INT(v, n);
    CHECK_INT(db_query_int64(db, "SELECT count(DISTINCT k) FROM w", NULL, 0, &d, e), 1);
    CHECK_INT(d, n);
    CHECK_INT(db_query_int64(db, "SELECT n FROM c", NULL, 0, &v, e), 1);
    CHECK_INT(v, n); /* no transaction applied twice */
    db_close(db);
    dbtest_pg_private_stop(dir);
    free(dir);
    free(base);
}
