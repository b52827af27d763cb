/*
 * db: the database of sluice.  One small interface over two backends:
 *
 *   sqlite:PATH              a SQLite file (WAL, busy timeout), created with its schema on
 *                            first use; sluice owns the whole schema.
 *   postgresql://... or      PostgreSQL through libpq (also postgres://..., or a libpq
 *   "host=... dbname=..."    keyword string).  Usually a Hydra database: Hydra's tables are
 *                            read and written but never altered; sluice adds only its own
 *                            `sluice_*` tables (`sluice db init`).
 *
 * Schema: Hydra's table and column names (Projects, Jobsets, Builds, BuildOutputs,
 * BuildSteps, BuildStepOutputs, FailedPaths, BuildProducts, BuildMetrics, Users) plus
 * sluice_meta (schema version), sluice_txlog (ids of committed write transactions),
 * sluice_gcroots (GC roots sluice holds) and, on SQLite, sluice_events.
 *
 * SQL: one dialect for both backends.  Write identifiers unquoted (PostgreSQL folds them
 * to lower case, SQLite ignores case), parameters as $1..$N, and never assemble SQL
 * from data.  Both backends understand RETURNING, ON CONFLICT DO NOTHING, partial
 * indexes, coalesce(), max()/min() as aggregates, CAST(x AS integer).  Not portable:
 * SELECT ... FOR UPDATE (PostgreSQL only: check db_kind()), greatest()/least()
 * (PostgreSQL) vs two-argument max()/min() (SQLite), `::` casts, ILIKE, booleans as
 * true/false literals (write 1/0 and compare booleans with = 1 only on SQLite).
 * On PostgreSQL parameters are sent untyped and the server infers their type from the
 * context; where it cannot (`$1 IS NULL`, a bare `SELECT $1`), write CAST($1 AS type).
 * On a Hydra database FailedPaths has an INSERT rule, so INSERT ... ON CONFLICT is
 * refused there; a plain INSERT is idempotent on every sluice schema (a rule on
 * PostgreSQL, a trigger on SQLite) and on Hydra's.
 *
 * Threads: a Db is one connection and is used by one thread at a time; open one Db per
 * thread that talks to the database.  db_interrupt() is the one call that may come from
 * any thread.
 *
 * Errors: every fallible function returns 0 (or a count) on success and a negative
 * ERR_* code on failure, with a one-line message in the caller's Err (which may be
 * NULL).  Codes: ERR_INVALID (bad URL or misuse), ERR_NOTFOUND (no sluice schema: the
 * message names `sluice db init`), ERR_UNSUPPORTED (schema of a newer sluice),
 * ERR_CONFLICT (a unique, foreign-key or check constraint failed), ERR_BUSY (locked by
 * another process, or still busy/serialization failures after every retry), ERR_DB
 * (anything else the database reported, or a connection that could not be re-opened).
 * Messages never contain a password from the URL.
 */
#ifndef SLUICE_DB_H
#define SLUICE_DB_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

typedef struct Db Db;
typedef struct DbStmt DbStmt;

typedef enum { DB_SQLITE = 1, DB_POSTGRES = 2 } DbKind;

/* ---------------------------------------------------------------- open/close */

typedef enum {
    /* Default: SQLite creates the schema on first use; PostgreSQL requires sluice's
     * tables (ERR_NOTFOUND naming `sluice db init` otherwise).  Both apply pending
     * sluice migrations and refuse a schema newer than this sluice (ERR_UNSUPPORTED). */
    DB_OPEN_DEFAULT = 0,
    /* Connect only: no schema created, checked or migrated (db init, db check, tests). */
    DB_OPEN_NO_SCHEMA = 1 << 0,
    /* Only a database that exists (read-only commands): SQLite creates no file and no
     * directory, a missing file is ERR_NOTFOUND. */
    DB_OPEN_EXISTING = 1 << 1,
} DbOpenFlags;

/* Open a database by URL (see the top of this file).  For SQLite the parent directory
 * is created when missing.  A server that is down, a URL that does not parse, a file
 * that is not a database: a message naming the problem.  *out is caller-owned
 * (db_close).  Errors: ERR_INVALID, ERR_DB, ERR_NOTFOUND, ERR_UNSUPPORTED. */
int db_open(const char *url, DbOpenFlags flags, Db **out, Err *e) UTIL_WUR;
/* Close the connection, release the runner lock (if held), free everything.  NULL ok. */
void db_close(Db *db);

DbKind db_kind(const Db *db);
/* The URL with any password replaced by "***" (borrowed, for messages). */
const char *db_url_display(const Db *db);

/* The URL with any password replaced by "***" (caller frees), as db_url_display. */
char *db_url_redact(const char *url);

/* ---------------------------------------------------------------- status names */

/* Builds.buildStatus and BuildSteps.status (hydra-behaviour.md §2.2).  A busy step's
 * status is NULL; "builds" marks codes Hydra writes to Builds only, "steps" to
 * BuildSteps only. */
typedef enum {
    DB_STATUS_SUCCESS = 0,
    DB_STATUS_FAILED = 1,
    DB_STATUS_DEP_FAILED = 2, /* builds: a dependency failed with DB_STATUS_FAILED */
    DB_STATUS_ABORTED = 3,    /* transient failure out of retries, machine lost, ... */
    DB_STATUS_CANCELLED = 4,
    DB_STATUS_OBSOLETE = 5,           /* no longer written; old rows read "obsolete" */
    DB_STATUS_FAILED_WITH_OUTPUT = 6, /* builds: an output has nix-support/failed */
    DB_STATUS_TIMED_OUT = 7,          /* maxSilent or timeout */
    DB_STATUS_CACHED_FAILURE = 8,     /* a FailedPaths output or drv */
    DB_STATUS_UNSUPPORTED = 9,        /* no machine for the system type or features */
    DB_STATUS_LOG_LIMIT = 10,
    DB_STATUS_NAR_SIZE_LIMIT = 11, /* an output NAR over the size limit */
    DB_STATUS_NOT_DETERMINISTIC = 12,
    DB_STATUS_RESOLVED = 13, /* steps: redirection to resolvedDrvPath (CA) */
} DbBuildStatus;

/* BuildSteps.busy: 0 for a finished step, else the phase of a running one
 * (hydra-behaviour.md §2.3; hydra.sql's own comment on the column is stale). */
typedef enum {
    DB_BUSY_NOT_BUSY = 0,
    DB_BUSY_PREPARING = 1, /* written with the row ("busy = true") */
    DB_BUSY_CONNECTING = 10,
    DB_BUSY_SENDING_INPUTS = 20,
    DB_BUSY_BUILDING = 30,
    DB_BUSY_WAITING_FOR_LOCAL_SLOT = 35, /* Hydra's C++ runner only */
    DB_BUSY_RECEIVING_OUTPUTS = 40,
    DB_BUSY_POST_PROCESSING = 50,
} DbStepBusy;

/* BuildSteps.type. */
typedef enum {
    DB_STEP_BUILD = 0,
    DB_STEP_SUBSTITUTION = 1,
} DbStepType;

/* In SQL a code is a parameter (`status <> $3` with DB_P_INT(DB_STATUS_RESOLVED)), except
 * `busy <> 0` ("running"), which stays literal: it is the predicate of the partial index
 * IndexBuildStepsOnBusy, which a parameter would not match. */

/* Hydra's name of a Builds.buildStatus or BuildSteps.status code (DbBuildStatus:
 * "succeeded", "failed", "dependency failed", "cached failure", ..., "resolved");
 * "unknown" for a code Hydra does not define.  Borrowed, static. */
const char *db_status_name(int64_t status);
/* The phase of a running step (BuildSteps.busy, DbStepBusy): "" for DB_BUSY_NOT_BUSY,
 * "building", ...; "busy" for a code Hydra does not define.  Borrowed, static. */
const char *db_busy_name(int64_t busy);

/* ---------------------------------------------------------------- parameters */

typedef enum { DB_NULL = 0, DB_INT, DB_TEXT, DB_DOUBLE } DbType;

/* One bound parameter.  Text is borrowed for the duration of the call. */
typedef struct DbParam {
    DbType type;
    int64_t i;
    double d;
    const char *s;
} DbParam;

#define DB_P_INT(v) ((DbParam){.type = DB_INT, .i = (int64_t)(v)})
/* A NULL pointer binds SQL NULL. */
static inline DbParam db_p_text(const char *s)
{
    DbParam p = {.type = s ? DB_TEXT : DB_NULL, .s = s};
    return p;
}
#define DB_P_TEXT(v)   db_p_text(v)
#define DB_P_DOUBLE(v) ((DbParam){.type = DB_DOUBLE, .d = (v)})
#define DB_P_NULL      ((DbParam){.type = DB_NULL})
/* An int64 that is SQL NULL when `isnull` is true. */
#define DB_P_INT_OR_NULL(v, isnull)                                                                \
    ((DbParam){.type = (isnull) ? DB_NULL : DB_INT, .i = (int64_t)(v)})

/* The two trailing arguments (params, n) of db_exec/db_query from a list of DB_P_*:
 *   db_exec(db, "UPDATE Builds SET priority = $1 WHERE id = $2",
 *           DB_ARGS(DB_P_INT(5), DB_P_INT(id)), e);
 * With no parameters pass NULL, 0. */
#define DB_ARGS(...)                                                                               \
    (const DbParam[]){__VA_ARGS__}, (sizeof((const DbParam[]){__VA_ARGS__}) / sizeof(DbParam))

/* ---------------------------------------------------------------- statements */

/* Run one statement that returns no rows we want (INSERT, UPDATE, DELETE, DDL,
 * SELECT pg_notify(...)).  Prepared statements are cached per connection by SQL text.
 * Returns the number of rows changed (>= 0) or an error.  Outside db_tx: a statement
 * is its own transaction; on PostgreSQL a lost connection is re-opened, and a SELECT is
 * run again, any other statement fails with ERR_DB ("may or may not have been
 * applied") - do writes in db_tx. */
int db_exec(Db *db, const char *sql, const DbParam *params, size_t n, Err *e) UTIL_WUR;

/* Run a query and iterate its rows:
 *     DbStmt *st;
 *     if ((rc = db_query(db, sql, DB_ARGS(DB_P_INT(id)), &st, e)) < 0) goto out;
 *     while ((rc = db_step(st, e)) == 1) { ... db_col_int64(st, 0) ... }
 *     db_stmt_done(st);
 *     if (rc < 0) goto out;
 * *out is owned by the caller until db_stmt_done(), which must come before the next
 * db_tx commit and before db_close.  Other statements may run on the same Db while a
 * query is open (nested loops are fine). */
int db_query(Db *db, const char *sql, const DbParam *params, size_t n, DbStmt **out,
             Err *e) UTIL_WUR;
/* 1: a row is current; 0: no more rows; < 0: error. */
int db_step(DbStmt *st, Err *e) UTIL_WUR;
void db_stmt_done(DbStmt *st); /* NULL ok */

/* Columns of the current row, 0-based.  A NULL reads as 0 / 0.0 / NULL pointer.
 * PostgreSQL booleans read as 1/0.  Text is borrowed until the next db_step or
 * db_stmt_done. */
int db_col_count(DbStmt *st);
int db_col_is_null(DbStmt *st, int i);
int64_t db_col_int64(DbStmt *st, int i);
double db_col_double(DbStmt *st, int i);
const char *db_col_text(DbStmt *st, int i);

/* First column of the first row as an integer: 1 when there was a row (*out set; 0
 * for a NULL value, *is_null set when not NULL), 0 when there were no rows, < 0 on
 * error.  Handy for INSERT ... RETURNING id and SELECT count(*). */
int db_query_int64(Db *db, const char *sql, const DbParam *params, size_t n, int64_t *out,
                   Err *e) UTIL_WUR;
/* Same for text: *out is caller-owned (NULL for a NULL value). */
int db_query_text(Db *db, const char *sql, const DbParam *params, size_t n, char **out,
                  Err *e) UTIL_WUR;

/* ---------------------------------------------------------------- transactions */

/* The body of a transaction.  It may run several times (after a busy database, a
 * serialization failure, a deadlock or a lost connection), so it must only do DB work
 * through `db` and write its results into `payload`, resetting them at its start.
 * Return 0 to commit, < 0 (with e set) to roll back. */
typedef int (*DbTxFn)(Db *db, void *payload, Err *e);

/* Run fn inside BEGIN/COMMIT (SQLite: BEGIN IMMEDIATE).  Retries the whole transaction
 * up to 10 times with a growing sleep (50 ms x attempt) on SQLITE_BUSY/LOCKED,
 * PostgreSQL 40001 (serialization failure) and 40P01 (deadlock), and after re-opening
 * a lost connection.  Every transaction records a unique id in sluice_txlog; when the
 * COMMIT got no answer, the connection is re-opened and the id looked up: present
 * means committed (no retry), absent means retry.  So a transaction is applied exactly
 * once or reported as failed.  A db_tx called inside fn runs its fn inline (no nested
 * transaction).  An error inside fn aborts the whole transaction on PostgreSQL: use
 * ON CONFLICT DO NOTHING and similar instead of catching errors.
 * Returns fn's error (fn's code and message) or the database's. */
int db_tx(Db *db, DbTxFn fn, void *payload, Err *e) UTIL_WUR;

/* 1 inside db_tx, else 0. */
int db_in_tx(const Db *db);

/* ---------------------------------------------------------------- connection loss */

/* Called after every successful re-open of a lost PostgreSQL connection, before the
 * statement or transaction that noticed the loss is run again (the runner lock of
 * db_lock_runner is re-taken before the hook).  Returning < 0 fails that operation
 * with the hook's error.  The hook may run statements on db (not db_tx). */
typedef int (*DbReconnectFn)(Db *db, void *payload, Err *e);
void db_set_reconnect_hook(Db *db, DbReconnectFn fn, void *payload);
/* How long a lost connection is retried (default 60000 ms) before giving up with
 * ERR_DB.  0 = fail at once. */
void db_set_reconnect_timeout(Db *db, int timeout_ms);
/* 1 when the last reconnect gave up (the timeout passed); a reconnect that succeeds
 * clears it.  A reconnect also gives up early, with ERR_CANCELLED, on db_interrupt. */
int db_connection_gone(const Db *db);

/* ---------------------------------------------------------------- locks */

/* Make this process the only runner on this database.  lock_file (may be NULL): a file
 * in the state dir held with an exclusive flock(2) (created when missing; holds the
 * pid).  PostgreSQL also: a session advisory lock (pg_try_advisory_lock on a fixed
 * key), re-taken after every reconnect before anything else runs.  Held until
 * db_close.  ERR_BUSY with a clear message when another runner holds either. */
int db_lock_runner(Db *db, const char *lock_file, Err *e) UTIL_WUR;

/* ---------------------------------------------------------------- events */

/* Channels the runner listens to (sent by Hydra's triggers and evaluator, or by
 * sluice's own triggers and `sluice submit`). */
#define DB_CH_BUILDS_ADDED          "builds_added"
#define DB_CH_BUILDS_RESTARTED      "builds_restarted"
#define DB_CH_BUILDS_CANCELLED      "builds_cancelled"
#define DB_CH_BUILDS_DELETED        "builds_deleted"
#define DB_CH_BUILDS_BUMPED         "builds_bumped"
#define DB_CH_JOBSET_SHARES_CHANGED "jobset_shares_changed"
/* Channels the runner sends (Hydra's payloads, see hydra-behaviour.md §2.4). */
#define DB_CH_STEP_STARTED   "step_started"   /* "build\tstepnr" */
#define DB_CH_STEP_FINISHED  "step_finished"  /* "build\tstepnr\tlogfile" */
#define DB_CH_BUILD_STARTED  "build_started"  /* "build" */
#define DB_CH_BUILD_FINISHED "build_finished" /* "build[\tdep...]" (db_notify_build_finished) */
/* Pseudo-channel delivered by db_wait_event after a lost connection was re-opened:
 * notifications may have been missed, so re-read the queue. */
#define DB_CH_RECONNECTED "sluice_reconnected"

#define DB_CHANNEL_MAX        64   /* channel names are shorter than this */
#define DB_NOTIFY_PAYLOAD_MAX 7000 /* Hydra's split size (PostgreSQL's limit is ~8000) */

/* Send a notification; inside db_tx it is delivered when (and only if) the transaction
 * commits.  PostgreSQL: pg_notify.  SQLite: a row in sluice_events, seen by waiters in
 * this process at once and by other processes within a second.  payload at most
 * DB_NOTIFY_PAYLOAD_MAX bytes (ERR_TOOBIG). */
int db_notify(Db *db, const char *channel, const char *payload, Err *e) UTIL_WUR;
/* build_finished for build_id and the dependent builds deps[0..n), split into several
 * notifications of at most DB_NOTIFY_PAYLOAD_MAX bytes that each start with build_id,
 * as Hydra does. */
int db_notify_build_finished(Db *db, int64_t build_id, const int64_t *deps, size_t n,
                             Err *e) UTIL_WUR;

/* Start listening to the given channels (adds to the set).  Re-issued after every
 * reconnect.  Events from before this call are not delivered. */
int db_listen(Db *db, const char *const *channels, size_t n, Err *e) UTIL_WUR;

typedef struct DbEvent {
    char channel[DB_CHANNEL_MAX];
    const char *payload; /* borrowed until the next db_wait_event or db_close; never NULL */
} DbEvent;

/* Wait up to timeout_ms (< 0: forever) for a notification on a listened channel.
 * Returns 1 with *out filled, 0 on timeout or db_interrupt(), < 0 on error.  Must not
 * be called inside db_tx.  After a lost PostgreSQL connection is re-opened it returns
 * one event on DB_CH_RECONNECTED. */
int db_wait_event(Db *db, int timeout_ms, DbEvent *out, Err *e) UTIL_WUR;
/* Make a db_wait_event that is waiting (or the next one) return 0 at once.  Safe from
 * any thread and from a signal handler. */
void db_interrupt(Db *db);

/* ---------------------------------------------------------------- actions */

/* What Hydra's web server does to a build (actions.c), each in its own transaction,
 * with the notification its trigger sends.  Each returns 1 when the build changed, 0
 * when it was not in the state the action needs (cancel: already finished; restart:
 * not finished), ERR_NOTFOUND when there is no such build. */
int db_build_cancel(Db *db, int64_t id, int64_t now, Err *e) UTIL_WUR;
/* Also deletes the FailedPaths rows of the build's and its steps' outputs
 * (*failed_paths_cleared, may be NULL). */
int db_build_restart(Db *db, int64_t id, int64_t *failed_paths_cleared, Err *e) UTIL_WUR;
int db_build_bump(Db *db, int64_t id, int64_t global_priority, Err *e) UTIL_WUR;
/* Delete the cached failures of one step's outputs (and of its drv, as the runner
 * records resolved and two-phase failures); the number deleted or ERR_NOTFOUND. */
int db_step_failed_paths_clear(Db *db, int64_t build, int64_t stepnr, Err *e) UTIL_WUR;
/* Delete cached failures: every FailedPaths row (n = 0) or those of paths[0..n).
 * Returns the number deleted. */
int db_failed_paths_clear(Db *db, const char *const *paths, size_t n, Err *e) UTIL_WUR;

/* ---------------------------------------------------------------- schema */

/* sluice's own schema version (sluice_meta) this build knows. */
int db_schema_latest(void);

/* Create the schema (`sluice db init`) in one transaction: on an empty database
 * Hydra's tables the runner uses (with their indexes and notification triggers) and
 * sluice's own; on a database that already holds Hydra's tables, only sluice's own.
 * Applies pending sluice migrations.  Idempotent.  *created_hydra (may be NULL) is set
 * to 1 when Hydra's tables were created.  A database with only some of Hydra's tables
 * is refused (ERR_CONFLICT, naming what is missing); nothing is left behind on error. */
int db_schema_init(Db *db, int *created_hydra, Err *e) UTIL_WUR;

/* What `sluice db check` reports. */
typedef struct DbSchemaReport {
    int version;       /* sluice_meta schema version; 0 when sluice's tables are absent */
    int latest;        /* db_schema_latest() */
    int hydra_version; /* Hydra's SchemaVersion, or -1 when that table is absent */
    StrVec missing;    /* "table Builds", "column BuildSteps.resolvedDrvPath",
                          "index IndexBuildsOnFinished", "type of Builds.size: ..." */
} DbSchemaReport;

/* Inspect the schema without changing it.  Fills *out (caller disposes). */
int db_schema_check(Db *db, DbSchemaReport *out, Err *e) UTIL_WUR;
void db_schema_report_dispose(DbSchemaReport *r);

/* ---------------------------------------------------------------- Hydra's schema */

/* Hydra's SchemaVersion the runner needs (BuildSteps.resolvedDrvPath, nullable output
 * paths, BuildSteps.drvPath NOT NULL).  On PostgreSQL, opening a database whose
 * SchemaVersion is older fails with ERR_UNSUPPORTED naming `sluice db upgrade`. */
#define DB_HYDRA_SCHEMA_NEEDED 87
int db_hydra_schema_needed(void);
/* Hydra's SchemaVersion, or -1 when the database has no SchemaVersion table. */
int db_hydra_schema_version(Db *db, int *out, Err *e) UTIL_WUR;
/* What Hydra's migration to `version` changes (one line), or NULL. */
const char *db_hydra_migration_what(int version);
typedef void (*DbHydraStepFn)(void *arg, int version, const char *what);
/* Apply Hydra's migrations after its SchemaVersion (83 or later) up to
 * DB_HYDRA_SCHEMA_NEEDED, one transaction each as hydra-init does, calling on_step
 * (may be NULL) before each.  *from gets the version found (-1: no Hydra schema,
 * nothing done).  Older than 83: ERR_UNSUPPORTED. */
int db_hydra_upgrade(Db *db, DbHydraStepFn on_step, void *arg, int *from, Err *e) UTIL_WUR;

#endif
