/*
 * db_int.h: internals of the db module, for src/db/ (and its tests) alone.
 *
 * Layout:
 *   db.c      URL parsing, open/close, statements, transactions with retry and the
 *             in-doubt COMMIT check, reconnect, runner lock
 *   sqlite.c  the SQLite backend (statement cache, binding $N by name, error classes)
 *   pg.c      the PostgreSQL backend (libpq, prepared statements, error classes)
 *   events.c  NOTIFY/LISTEN and the SQLite stand-in (sluice_events + in-process wakeups)
 *   schema.c  DDL for both backends, migrations, `db init` and `db check`
 *
 * A backend statement failure records an error class in db->ec; db_tx and the
 * statement wrappers decide from it whether to retry, reconnect or give up.
 */
#ifndef SLUICE_DB_INT_H
#define SLUICE_DB_INT_H

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "db/db.h"

/* Retries of db_tx and the sleep between attempts (Hydra: 10 tries, 50 ms x attempt). */
#define DB_TX_MAX_ATTEMPTS 10
#define DB_TX_BACKOFF_MS   50
/* SQLite busy timeout: how long one statement waits for another writer. */
#define DB_SQLITE_BUSY_MS 10000
/* Default for db_set_reconnect_timeout. */
#define DB_RECONNECT_TIMEOUT_MS 60000
/* SQLite: how often a waiter looks for events written by other processes (a PRAGMA
 * data_version, a few microseconds; it bounds how late a runner sees a build queued by
 * `sluice submit` or Hydra's evaluator). */
#define DB_SQLITE_POLL_MS 10
/* sluice_txlog rows older than this are deleted (an in-doubt check happens seconds
 * after the COMMIT; a day is ample). */
#define DB_TXLOG_KEEP_S (24 * 3600)
/* sluice_events rows older than this are deleted. */
#define DB_EVENTS_KEEP_S 3600
/* Session advisory lock key of the runner on PostgreSQL ("sluice" in ASCII). */
#define DB_PG_RUNNER_LOCK_KEY 0x736c75696365LL
/* Transaction-scoped advisory lock key serialising `db init` ("sluicf"). */
#define DB_PG_INIT_LOCK_KEY 0x736c75696366LL
/* Rows kept in memory from one PostgreSQL result: the whole result is fetched at once.
 * The largest result the runner reads is the list of unfinished builds. */
#define DB_PG_MAX_RESULT_ROWS (16 * 1024 * 1024)

/* What kind of failure the last statement had. */
typedef enum {
    DB_EC_NONE = 0,
    DB_EC_RETRY, /* busy, locked, serialization failure, deadlock: run the tx again */
    DB_EC_LOST,  /* the connection is gone: reconnect, then maybe run again */
    DB_EC_OTHER, /* anything else: report */
} DbErrClass;

/* A queued notification (events.c). */
typedef struct DbEventItem {
    struct DbEventItem *next;
    char *channel;
    char *payload;
} DbEventItem;

struct Db {
    DbKind kind;
    char *url;      /* as given (may hold a password: never printed) */
    char *url_safe; /* password replaced by *** */

    /* SQLite */
    sqlite3 *sq;
    char *sq_path;
    int64_t sq_data_version; /* PRAGMA data_version at the last event poll */
    uint64_t sq_hub_gen;     /* in-process write generation at the last event poll */
    int64_t sq_last_event;   /* highest sluice_events.id seen */
    int64_t sq_last_prune;   /* wall clock of the last sluice_events prune */

    /* PostgreSQL */
    PGconn *pg;
    unsigned pg_next_stmt; /* names of prepared statements: s1, s2, ... */

    /* Statement cache: SQL text -> DbSqCached* (SQLite) or prepared name (PostgreSQL). */
    Map *stmts;

    /* transactions */
    int tx_depth;       /* > 0 inside db_tx */
    DbErrClass ec;      /* class of the first failure (sticky inside a tx) */
    uint64_t n_commits; /* to prune sluice_txlog now and then */
    int txlog_state;    /* sluice_txlog exists: 0 unknown, 1 yes, -1 no */

    /* reconnect */
    int reconnect_timeout_ms;
    DbReconnectFn reconnect_fn;
    void *reconnect_payload;
    int reconnected_event; /* deliver DB_CH_RECONNECTED on the next db_wait_event */

    /* runner lock */
    int lock_fd;      /* flock'ed lock file or -1 */
    int sq_lock_fd;   /* flock'ed DBFILE.runner-lock (SQLite) or -1 */
    int pg_lock_held; /* advisory lock taken (re-taken after reconnect) */
    int lock_lost;    /* another runner took it while we were disconnected */
    int gave_up;      /* the last reconnect ran out of its timeout */

    /* events */
    StrVec listening;
    DbEventItem *ev_head, *ev_tail;
    DbEventItem *ev_cur; /* returned by the last db_wait_event (freed at the next) */
    int intr_pipe[2];    /* db_interrupt writes a byte */
    atomic_int interrupted;

    /* test hook: make the next COMMIT's answer "lost" (see db__test_commit_fault) */
    int test_commit_fault;
};

/* A cached SQLite statement. */
typedef struct DbSqCached {
    sqlite3_stmt *st;
    int in_use;
} DbSqCached;

struct DbStmt {
    Db *db;
    /* SQLite */
    sqlite3_stmt *sq;
    DbSqCached *cached; /* NULL: finalize at done */
    int sq_first;       /* the first sqlite3_step was already taken by the query */
    int sq_first_rc;
    /* PostgreSQL */
    PGresult *res;
    int row, nrows;
    int64_t changes;
};

/* ---- db.c */
/* Re-open a lost PostgreSQL connection (retrying up to the reconnect timeout), then
 * re-listen, re-take the runner lock and run the hook. */
int db__reconnect(Db *db, Err *e);
/* db_tx; use_txlog = 0 for the schema transaction that creates sluice_txlog. */
int db__tx(Db *db, DbTxFn fn, void *payload, int use_txlog, Err *e);
/* Internal statements: not retried after a lost connection, not counted as writes. */
int db__exec_raw(Db *db, const char *sql, const DbParam *p, size_t n, Err *e);
/* Run a multi-statement script without parameters (schema DDL only). */
int db__exec_script(Db *db, const char *sql, Err *e);
int db__table_exists(Db *db, const char *name, int *out, Err *e);
/* 1 when the statement text starts with SELECT (safe to run again). */
int db__sql_is_select(const char *sql);
void db__sleep_ms(int ms);
/* Test hook: 1 = the next COMMIT is sent and then the connection is dropped before
 * its answer is read (committed, answer lost); 2 = the connection is dropped instead
 * of sending COMMIT (not committed, answer lost). */
void db__test_commit_fault(Db *db, int mode);

/* ---- sqlite.c */
/* existing: open only a file that is there (no file, no directory created). */
int db__sq_open(Db *db, const char *path, int existing, Err *e);
void db__sq_close(Db *db);
int db__sq_query(Db *db, const char *sql, const DbParam *p, size_t n, DbStmt *st, Err *e);
int db__sq_step(DbStmt *st, Err *e);
void db__sq_done(DbStmt *st);
int db__sq_script(Db *db, const char *sql, Err *e);
/* Map a SQLite result code to an ERR_* code and error class; sets e. */
int db__sq_error(Db *db, int rc, const char *what, Err *e);
void db__sq_cache_free(void *v);

/* ---- pg.c */
int db__pg_connect(Db *db, Err *e);
void db__pg_close(Db *db);
int db__pg_query(Db *db, const char *sql, const DbParam *p, size_t n, DbStmt *st, Err *e);
int db__pg_script(Db *db, const char *sql, Err *e);
/* Classify a failed result (res may be NULL); sets db->ec and e; returns an ERR_*. */
int db__pg_error(Db *db, PGresult *res, const char *what, Err *e);
/* Validate a libpq URL or keyword string; ERR_INVALID with libpq's reason. */
int db__pg_check_conninfo(const char *conninfo, Err *e);

/* ---- events.c */
/* After a successful SQLite write (commit or autocommit): wake in-process waiters. */
void db__sq_hub_bump(void);
int db__relisten(Db *db, Err *e);
void db__events_free(Db *db);

/* ---- schema.c */
/* db_open's schema step (DB_OPEN_DEFAULT). */
int db__schema_open(Db *db, Err *e);
/* ---- hydra_schema.c */
/* ERR_UNSUPPORTED (naming `sluice db upgrade`) for a PostgreSQL database whose Hydra
 * SchemaVersion is older than DB_HYDRA_SCHEMA_NEEDED; 0 otherwise. */
int db__hydra_schema_refuse_old(Db *db, Err *e);

#endif
