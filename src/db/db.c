/*
 * db.c: the backend-independent part of db.  URL parsing and open/close; statements
 * (dispatch to sqlite.c / pg.c, transparent re-open of a lost PostgreSQL connection
 * for reads); transactions with retry and the in-doubt COMMIT check; the runner lock.
 *
 * Transactions (db_tx).  Each attempt: BEGIN; INSERT a fresh random id into
 * sluice_txlog; the caller's body; COMMIT.  A failure is classified by the backend
 * (db->ec): "retry" (busy, serialization failure, deadlock) sleeps and runs the
 * attempt again; "lost" re-opens the connection first.  When the COMMIT itself got no
 * answer the transaction is in doubt: after re-opening, the txlog id is looked up,
 * present = committed (done), absent = not committed (run again).  So the body's
 * effects are applied exactly once or the call fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "db/db_int.h"

void db__sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------- URLs */

/* The URL with a password replaced by ***: "scheme://user:PASS@host", "?password=X",
 * "password=X" in a keyword string. */
char *db_url_redact(const char *url)
{
    Buf b;
    const char *p = url, *scheme = strstr(url, "://");
    buf_init(&b, LIMIT_BUF_DEFAULT);
    if (scheme) {
        const char *auth = scheme + 3;
        const char *end = auth + strcspn(auth, "/?#");
        const char *at = NULL;
        for (const char *q = auth; q < end; q++)
            if (*q == '@')
                at = q;
        if (at) {
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            if (colon) {
                buf_append(&b, url, (size_t)(colon + 1 - url));
                buf_puts(&b, "***");
                p = at;
            }
        }
    }
    /* password=VALUE (query parameter or keyword), value up to & or space, or quoted */
    while (*p) {
        const char *pw = strstr(p, "password");
        const char *q;
        if (!pw) {
            buf_puts(&b, p);
            break;
        }
        q = pw + 8;
        while (*q == ' ')
            q++;
        if (*q != '=' || (pw > url && (pw[-1] != '?' && pw[-1] != '&' && pw[-1] != ' '))) {
            buf_append(&b, p, (size_t)(pw + 8 - p));
            p = pw + 8;
            continue;
        }
        q++;
        while (*q == ' ')
            q++;
        buf_append(&b, p, (size_t)(q - p));
        buf_puts(&b, "***");
        if (*q == '\'') {
            q++;
            while (*q && *q != '\'') {
                if (*q == '\\' && q[1])
                    q++;
                q++;
            }
            if (*q)
                q++;
        } else {
            q += strcspn(q, "& ");
        }
        p = q;
    }
    return buf_take(&b, NULL);
}

/* Is url a PostgreSQL conninfo: a postgres(ql):// URI or a libpq keyword string? */
static int is_pg_url(const char *url)
{
    if (util_starts_with(url, "postgresql://") || util_starts_with(url, "postgres://"))
        return 1;
    /* "host=... dbname=..." : a word followed by '=' and no scheme */
    if (!strstr(url, "://")) {
        const char *eq = strchr(url, '=');
        if (eq && eq > url) {
            for (const char *q = url; q < eq; q++)
                if (!((*q >= 'a' && *q <= 'z') || *q == '_' || *q == ' '))
                    return 0;
            return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- open/close */

int db_open(const char *url, DbOpenFlags flags, Db **out, Err *e)
{
    Db *db = NULL;
    int rc;
    *out = NULL;
    if (!url || !*url)
        return err_set(e, ERR_INVALID, "no database URL given");
    db = xcalloc(1, sizeof *db);
    db->lock_fd = -1;
    db->sq_lock_fd = -1;
    db->intr_pipe[0] = db->intr_pipe[1] = -1;
    db->reconnect_timeout_ms = DB_RECONNECT_TIMEOUT_MS;
    atomic_init(&db->interrupted, 0);
    strvec_init(&db->listening);
    db->url = xstrdup(url);
    db->url_safe = db_url_redact(url);
    if (pipe2(db->intr_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = err_sys(e, ERR_IO, "pipe");
        goto out;
    }
    if (util_starts_with(url, "sqlite:")) {
        const char *path = url + 7;
        if (util_starts_with(path, "//"))
            path += 2; /* sqlite:///abs/path */
        if (!*path) {
            rc = err_set(e, ERR_INVALID, "database URL '%s' names no file (expected sqlite:PATH)",
                         db->url_safe);
            goto out;
        }
        db->kind = DB_SQLITE;
        db->stmts = map_new(db__sq_cache_free);
        rc = db__sq_open(db, path, (flags & DB_OPEN_EXISTING) != 0, e);
    } else if (is_pg_url(url)) {
        db->kind = DB_POSTGRES;
        db->stmts = map_new(free);
        rc = db__pg_check_conninfo(url, e);
        if (rc == 0)
            rc = db__pg_connect(db, e);
    } else {
        rc = err_set(e, ERR_INVALID,
                     "database URL '%s' is not understood: expected sqlite:PATH, "
                     "postgresql://... or a libpq keyword string",
                     db->url_safe);
    }
    if (rc < 0)
        goto out;
    if (!(flags & DB_OPEN_NO_SCHEMA)) {
        rc = db__schema_open(db, e);
        if (rc < 0)
            goto out;
    }
    *out = db;
    db = NULL;
out:
    db_close(db);
    return rc < 0 ? rc : 0;
}

void db_close(Db *db)
{
    if (!db)
        return;
    map_free(db->stmts); /* finalizes SQLite statements before the close */
    db->stmts = NULL;
    if (db->kind == DB_SQLITE)
        db__sq_close(db);
    else
        db__pg_close(db);
    if (db->lock_fd >= 0)
        close(db->lock_fd);
    if (db->sq_lock_fd >= 0)
        close(db->sq_lock_fd);
    for (int i = 0; i < 2; i++)
        if (db->intr_pipe[i] >= 0)
            close(db->intr_pipe[i]);
    db__events_free(db);
    strvec_dispose(&db->listening);
    free(db->sq_path);
    free(db->url);
    free(db->url_safe);
    free(db);
}

DbKind db_kind(const Db *db)
{
    return db->kind;
}

const char *db_url_display(const Db *db)
{
    return db->url_safe;
}

void db_set_reconnect_hook(Db *db, DbReconnectFn fn, void *payload)
{
    db->reconnect_fn = fn;
    db->reconnect_payload = payload;
}

int db_connection_gone(const Db *db)
{
    return db->gave_up;
}

void db_set_reconnect_timeout(Db *db, int timeout_ms)
{
    db->reconnect_timeout_ms = timeout_ms < 0 ? 0 : timeout_ms;
}

int db_in_tx(const Db *db)
{
    return db->tx_depth > 0;
}

void db__test_commit_fault(Db *db, int mode)
{
    db->test_commit_fault = mode;
}

/* ---------------------------------------------------------------- reconnect */

static int take_pg_lock(Db *db, int *got, Err *e)
{
    int64_t v = 0;
    int rc = db_query_int64(db, "SELECT pg_try_advisory_lock($1)",
                            DB_ARGS(DB_P_INT(DB_PG_RUNNER_LOCK_KEY)), &v, e);
    if (rc < 0)
        return rc;
    *got = v == 1;
    return 0;
}

int db__reconnect(Db *db, Err *e)
{
    uint64_t deadline;
    int delay = 100, rc;
    Err le = {0};
    if (db->kind != DB_POSTGRES)
        return err_set(e, ERR_DB, "database connection lost");
    db__pg_close(db);
    map_free(db->stmts);
    db->stmts = map_new(free);
    deadline = util_now_ms() + (uint64_t)db->reconnect_timeout_ms;
    log_warn("connection to PostgreSQL at %s lost; reconnecting", db->url_safe);
    for (;;) {
        rc = db__pg_connect(db, &le);
        if (rc == 0)
            break;
        if (util_now_ms() >= deadline) {
            db->gave_up = 1;
            return err_set(e, ERR_DB,
                           "connection to PostgreSQL at %s lost and not re-established within "
                           "%d s: %s",
                           db->url_safe, db->reconnect_timeout_ms / 1000, le.msg);
        }
        /* db_interrupt (a stop) ends the wait; the flag stays for db_wait_event */
        for (int slept = 0; slept < delay; slept += 50) {
            if (atomic_load(&db->interrupted))
                return err_set(e, ERR_CANCELLED,
                               "reconnecting to PostgreSQL at %s: interrupted (%s)", db->url_safe,
                               le.msg);
            db__sleep_ms(50);
        }
        delay = delay * 2 > 2000 ? 2000 : delay * 2;
    }
    db->gave_up = 0;
    log_warn("reconnected to PostgreSQL at %s", db->url_safe);
    db->ec = DB_EC_NONE;
    db->reconnected_event = 1;
    rc = db__relisten(db, e);
    if (rc < 0)
        return rc;
    if (db->pg_lock_held) {
        int got = 0;
        rc = take_pg_lock(db, &got, e);
        if (rc < 0)
            return rc;
        if (!got) {
            db->pg_lock_held = 0;
            db->lock_lost = 1;
            return err_set(e, ERR_BUSY,
                           "another sluice runner took the database lock of %s while the "
                           "connection was lost",
                           db->url_safe);
        }
    }
    if (db->reconnect_fn) {
        rc = db->reconnect_fn(db, db->reconnect_payload, e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- statements */

int db__sql_is_select(const char *sql)
{
    while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '(')
        sql++;
    return strncasecmp(sql, "select", 6) == 0;
}

static int backend_query(Db *db, const char *sql, const DbParam *p, size_t n, DbStmt *st, Err *e)
{
    if (db->kind == DB_SQLITE)
        return db__sq_query(db, sql, p, n, st, e);
    return db__pg_query(db, sql, p, n, st, e);
}

static int query_impl(Db *db, const char *sql, const DbParam *p, size_t n, DbStmt **out,
                      int may_reconnect, Err *e)
{
    DbStmt *st;
    int rc;
    *out = NULL;
    if (!sql)
        return err_set(e, ERR_INVALID, "no SQL");
    if (n && !p)
        return err_set(e, ERR_INVALID, "SQL parameters missing");
    if (db->tx_depth == 0)
        db->ec = DB_EC_NONE;
    st = xcalloc(1, sizeof *st);
    st->db = db;
    rc = backend_query(db, sql, p, n, st, e);
    if (rc < 0 && may_reconnect && db->kind == DB_POSTGRES && db->ec == DB_EC_LOST &&
        db->tx_depth == 0) {
        int sel = db__sql_is_select(sql);
        rc = db__reconnect(db, e);
        if (rc == 0 && !sel)
            rc = err_set(e, ERR_DB,
                         "connection to PostgreSQL at %s was lost during a statement outside "
                         "a transaction; it may or may not have been applied",
                         db->url_safe);
        if (rc == 0) {
            memset(st, 0, sizeof *st);
            st->db = db;
            rc = backend_query(db, sql, p, n, st, e);
        }
    }
    if (rc < 0) {
        free(st);
        return rc;
    }
    *out = st;
    return 0;
}

int db_query(Db *db, const char *sql, const DbParam *params, size_t n, DbStmt **out, Err *e)
{
    if (db->lock_lost) {
        *out = NULL;
        return err_set(e, ERR_BUSY, "the runner lock of %s was lost to another runner",
                       db->url_safe);
    }
    return query_impl(db, sql, params, n, out, 1, e);
}

int db_step(DbStmt *st, Err *e)
{
    if (st->db->kind == DB_SQLITE)
        return db__sq_step(st, e);
    if (!st->res || st->row + 1 >= st->nrows)
        return 0;
    st->row++;
    return 1;
}

void db_stmt_done(DbStmt *st)
{
    if (!st)
        return;
    if (st->db->kind == DB_SQLITE)
        db__sq_done(st);
    PQclear(st->res);
    free(st);
}

int db_col_count(DbStmt *st)
{
    if (st->db->kind == DB_SQLITE)
        return st->sq ? sqlite3_column_count(st->sq) : 0;
    return st->res ? PQnfields(st->res) : 0;
}

int db_col_is_null(DbStmt *st, int i)
{
    if (st->db->kind == DB_SQLITE)
        return sqlite3_column_type(st->sq, i) == SQLITE_NULL;
    if (!st->res || st->row < 0 || i < 0 || i >= PQnfields(st->res))
        return 1;
    return PQgetisnull(st->res, st->row, i);
}

int64_t db_col_int64(DbStmt *st, int i)
{
    const char *v;
    if (st->db->kind == DB_SQLITE)
        return sqlite3_column_int64(st->sq, i);
    if (db_col_is_null(st, i))
        return 0;
    v = PQgetvalue(st->res, st->row, i);
    if (v[0] == 't' && v[1] == '\0')
        return 1;
    if (v[0] == 'f' && v[1] == '\0')
        return 0;
    return strtoll(v, NULL, 10);
}

double db_col_double(DbStmt *st, int i)
{
    if (st->db->kind == DB_SQLITE)
        return sqlite3_column_double(st->sq, i);
    if (db_col_is_null(st, i))
        return 0.0;
    return strtod(PQgetvalue(st->res, st->row, i), NULL);
}

const char *db_col_text(DbStmt *st, int i)
{
    if (st->db->kind == DB_SQLITE)
        return (const char *)sqlite3_column_text(st->sq, i);
    if (db_col_is_null(st, i))
        return NULL;
    return PQgetvalue(st->res, st->row, i);
}

static int exec_impl(Db *db, const char *sql, const DbParam *p, size_t n, int may_reconnect, Err *e)
{
    DbStmt *st;
    int64_t changes;
    int rc = query_impl(db, sql, p, n, &st, may_reconnect, e);
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1)
        ;
    changes = st->changes;
    db_stmt_done(st);
    if (rc < 0)
        return rc;
    return changes > INT32_MAX ? INT32_MAX : (int)changes;
}

int db_exec(Db *db, const char *sql, const DbParam *params, size_t n, Err *e)
{
    if (db->lock_lost)
        return err_set(e, ERR_BUSY, "the runner lock of %s was lost to another runner",
                       db->url_safe);
    return exec_impl(db, sql, params, n, 1, e);
}

int db__exec_raw(Db *db, const char *sql, const DbParam *p, size_t n, Err *e)
{
    return exec_impl(db, sql, p, n, 0, e);
}

int db__exec_script(Db *db, const char *sql, Err *e)
{
    if (db->tx_depth == 0)
        db->ec = DB_EC_NONE;
    if (db->kind == DB_SQLITE)
        return db__sq_script(db, sql, e);
    return db__pg_script(db, sql, e);
}

int db_query_int64(Db *db, const char *sql, const DbParam *params, size_t n, int64_t *out, Err *e)
{
    DbStmt *st;
    int rc = db_query(db, sql, params, n, &st, e);
    *out = 0;
    if (rc < 0)
        return rc;
    rc = db_step(st, e);
    if (rc == 1)
        *out = db_col_int64(st, 0);
    db_stmt_done(st);
    return rc;
}

int db_query_text(Db *db, const char *sql, const DbParam *params, size_t n, char **out, Err *e)
{
    DbStmt *st;
    int rc = db_query(db, sql, params, n, &st, e);
    *out = NULL;
    if (rc < 0)
        return rc;
    rc = db_step(st, e);
    if (rc == 1) {
        const char *v = db_col_text(st, 0);
        *out = v ? xstrdup(v) : NULL;
    }
    db_stmt_done(st);
    return rc;
}

int db__table_exists(Db *db, const char *name, int *out, Err *e)
{
    int64_t n = 0;
    int rc;
    if (db->kind == DB_SQLITE)
        rc = db_query_int64(db,
                            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                            "lower(name) = lower($1)",
                            DB_ARGS(DB_P_TEXT(name)), &n, e);
    else
        rc = db_query_int64(db,
                            "SELECT count(*) FROM information_schema.tables WHERE "
                            "table_schema = current_schema() AND table_name = lower($1)",
                            DB_ARGS(DB_P_TEXT(name)), &n, e);
    *out = n > 0;
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- transactions */

static void make_txid(char out[33])
{
    uint8_t r[16];
    static const char hex[] = "0123456789abcdef";
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t k = getrandom(r + got, sizeof r - got, 0);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            /* no entropy source: time and address still make a collision unlikely */
            uint64_t t = util_now_ms() ^ (uint64_t)(uintptr_t)out ^ ((uint64_t)getpid() << 32);
            for (size_t i = got; i < sizeof r; i++)
                r[i] = (uint8_t)(t >> ((i % 8) * 8)) ^ (uint8_t)i;
            break;
        }
        got += (size_t)k;
    }
    for (size_t i = 0; i < sizeof r; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[32] = '\0';
}

/* COMMIT, with the test hook that loses its answer. */
static int commit(Db *db, Err *e)
{
    if (db->kind == DB_POSTGRES && db->test_commit_fault) {
        int mode = db->test_commit_fault;
        db->test_commit_fault = 0;
        if (mode == 1) {
            PGresult *r = PQexec(db->pg, "COMMIT");
            PQclear(r);
        }
        db__pg_close(db); /* the answer never arrives */
        return db__pg_error(db, NULL, "COMMIT", e);
    }
    return db__exec_raw(db, "COMMIT", NULL, 0, e);
}

/* Does sluice_txlog exist here?  Cached after the first look. */
static int have_txlog(Db *db, Err *e)
{
    int yes = 0, rc;
    if (db->txlog_state)
        return db->txlog_state > 0;
    rc = db__table_exists(db, "sluice_txlog", &yes, e);
    if (rc < 0)
        return rc;
    db->txlog_state = yes ? 1 : -1;
    return yes;
}

int db__tx(Db *db, DbTxFn fn, void *payload, int use_txlog, Err *e)
{
    Err le = {0};
    char txid[33];
    int rc = 0, attempt;
    if (db->tx_depth > 0)
        return fn(db, payload, e);
    if (db->lock_lost)
        return err_set(e, ERR_BUSY, "the runner lock of %s was lost to another runner",
                       db->url_safe);
    if (use_txlog) {
        rc = have_txlog(db, e);
        if (rc < 0)
            return rc;
        use_txlog = rc;
    }
    for (attempt = 1;; attempt++) {
        DbErrClass ec;
        int committed = 0;
        err_clear(&le);
        db->ec = DB_EC_NONE;
        if (db->kind == DB_POSTGRES && !db->pg) {
            rc = db__reconnect(db, &le);
            if (rc < 0)
                goto fail;
        }
        rc = db__exec_raw(db, db->kind == DB_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN", NULL, 0, &le);
        if (rc >= 0) {
            db->tx_depth = 1;
            if (use_txlog) {
                make_txid(txid);
                rc = db__exec_raw(db, "INSERT INTO sluice_txlog (id, time) VALUES ($1, $2)",
                                  DB_ARGS(DB_P_TEXT(txid), DB_P_INT(util_time_now())), &le);
                if (rc >= 0 && db->n_commits % 4096 == 0)
                    rc = db__exec_raw(db, "DELETE FROM sluice_txlog WHERE time < $1",
                                      DB_ARGS(DB_P_INT(util_time_now() - DB_TXLOG_KEEP_S)), &le);
            }
            if (rc >= 0)
                rc = fn(db, payload, &le);
            ec = db->ec;
            if (rc >= 0) {
                rc = commit(db, &le);
                ec = db->ec;
                db->tx_depth = 0;
                if (rc >= 0) {
                    committed = 1;
                } else if (ec == DB_EC_LOST && db->kind == DB_POSTGRES) {
                    /* in doubt: did the COMMIT happen? */
                    int64_t found = 0;
                    rc = db__reconnect(db, &le);
                    if (rc < 0)
                        goto fail;
                    if (!use_txlog) {
                        rc = err_set(&le, ERR_DB,
                                     "the COMMIT on %s got no answer; the transaction may or "
                                     "may not have been applied",
                                     db->url_safe);
                        goto fail;
                    }
                    rc = db_query_int64(db, "SELECT count(*) FROM sluice_txlog WHERE id = $1",
                                        DB_ARGS(DB_P_TEXT(txid)), &found, &le);
                    if (rc < 0) {
                        err_prefix(&le, "the COMMIT on %s got no answer and checking it failed",
                                   db->url_safe);
                        goto fail;
                    }
                    if (found) {
                        log_warn("the COMMIT on %s got no answer; it did commit", db->url_safe);
                        committed = 1;
                    } else {
                        log_warn("the COMMIT on %s got no answer; it did not commit: running "
                                 "the transaction again",
                                 db->url_safe);
                        ec = DB_EC_LOST;
                        rc = ERR_DB;
                    }
                    /* already reconnected */
                    if (!committed) {
                        if (attempt >= DB_TX_MAX_ATTEMPTS)
                            goto give_up;
                        continue;
                    }
                }
                if (committed) {
                    db->n_commits++;
                    if (db->kind == DB_SQLITE)
                        db__sq_hub_bump();
                    return 0;
                }
            } else {
                /* the body or the txlog insert failed: roll back (errors ignored) */
                if (!(ec == DB_EC_LOST && db->kind == DB_POSTGRES)) {
                    Err ignored = {0};
                    DbErrClass keep = db->ec;
                    (void)db__exec_raw(db, "ROLLBACK", NULL, 0, &ignored);
                    db->ec = keep;
                }
                db->tx_depth = 0;
            }
        } else {
            ec = db->ec;
        }
        /* not committed */
        if (ec == DB_EC_LOST && db->kind == DB_POSTGRES) {
            int r2 = db__reconnect(db, &le);
            if (r2 < 0) {
                rc = r2;
                goto fail;
            }
        } else if (ec != DB_EC_RETRY) {
            goto fail;
        }
        if (attempt >= DB_TX_MAX_ATTEMPTS)
            goto give_up;
        log_debug("transaction attempt %d on %s failed (%s); retrying", attempt, db->url_safe,
                  le.msg);
        if (ec == DB_EC_RETRY)
            db__sleep_ms(DB_TX_BACKOFF_MS * attempt);
    }
give_up:
    rc = err_set(e, rc == ERR_DB ? ERR_DB : ERR_BUSY, "transaction on %s failed %d times: %s",
                 db->url_safe, attempt, le.msg);
    return rc;
fail:
    db->tx_depth = 0;
    if (e)
        *e = le;
    return rc < 0 ? rc : ERR_DB;
}

int db_tx(Db *db, DbTxFn fn, void *payload, Err *e)
{
    return db__tx(db, fn, payload, 1, e);
}

/* ---------------------------------------------------------------- runner lock */

/* flock lock_file (created with its directory), our pid written in it; *fd_out the
 * open descriptor that holds it.  ERR_BUSY with the holder's pid when another has it;
 * `what` says whose lock it is. */
static int lock_file_take(const char *lock_file, const char *what, int *fd_out, Err *e)
{
    char *tmp = xstrdup(lock_file), pid[32];
    const char *dir = dirname(tmp);
    int fd, n, rc = 0;
    if (strcmp(dir, ".") != 0)
        rc = util_mkdir_p(dir, 0755, e);
    free(tmp);
    if (rc < 0)
        return rc;
    fd = open(lock_file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_sys(e, ERR_IO, "cannot open lock file %s", lock_file);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char other[32] = "";
        ssize_t k;
        if (errno != EWOULDBLOCK) {
            rc = err_sys(e, ERR_IO, "cannot lock %s", lock_file);
            close(fd);
            return rc;
        }
        k = pread(fd, other, sizeof other - 1, 0);
        other[k > 0 ? k : 0] = '\0';
        other[strcspn(other, "\n")] = '\0';
        close(fd);
        return err_set(e, ERR_BUSY, "another sluice runner is running %s (lock file %s held%s%s)",
                       what, lock_file, other[0] ? " by pid " : "", other);
    }
    n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        rc = err_sys(e, ERR_IO, "cannot write lock file %s", lock_file);
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

/* The lock of a SQLite database belongs to the file, whatever the state directory:
 * DBFILE.runner-lock next to it (by its real path, so every name of the file finds the
 * same lock).  Not the database file itself: closing a second descriptor of it would
 * drop SQLite's own POSIX locks. */
static int lock_sqlite_file(Db *db, Err *e)
{
    char *real, *lock;
    int rc;
    if (db->kind != DB_SQLITE || db->sq_lock_fd >= 0)
        return 0;
    real = realpath(db->sq_path, NULL);
    if (!real)
        return err_sys(e, ERR_IO, "cannot resolve the database path %s", db->sq_path);
    lock = xasprintf("%s.runner-lock", real);
    free(real);
    rc = lock_file_take(lock, "on this database", &db->sq_lock_fd, e);
    free(lock);
    return rc;
}

int db_lock_runner(Db *db, const char *lock_file, Err *e)
{
    int fd = -1, rc = 0;
    if (lock_file) {
        rc = lock_file_take(lock_file, "in this state directory", &fd, e);
        if (rc < 0)
            return rc;
    }
    rc = lock_sqlite_file(db, e);
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    if (db->kind == DB_POSTGRES && !db->pg_lock_held) {
        int got = 0;
        rc = take_pg_lock(db, &got, e);
        if (rc == 0 && !got)
            rc = err_set(e, ERR_BUSY,
                         "another sluice runner is using the PostgreSQL database %s (advisory "
                         "lock %lld is held)",
                         db->url_safe, (long long)DB_PG_RUNNER_LOCK_KEY);
        if (rc < 0) {
            if (fd >= 0)
                close(fd);
            return rc;
        }
        db->pg_lock_held = 1;
    }
    if (fd >= 0) {
        if (db->lock_fd >= 0)
            close(db->lock_fd);
        db->lock_fd = fd;
    }
    return 0;
}
