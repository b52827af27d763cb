/*
 * sqlite.c: the SQLite backend of db.  Opens the file in WAL mode with a busy timeout
 * and foreign keys on, caches prepared statements per connection by SQL text, binds
 * the $1..$N parameters of the common dialect by name (SQLite reads `$1` as a named
 * parameter), and classifies failures: SQLITE_BUSY/LOCKED may succeed when the
 * transaction runs again, constraint failures are ERR_CONFLICT, the rest ERR_DB.
 *
 * db__sq_query takes the first sqlite3_step itself so that errors (constraints, busy)
 * surface from db_query/db_exec as they do on PostgreSQL; db__sq_step hands that
 * first result out before stepping further.
 */
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db_int.h"

void db__sq_cache_free(void *v)
{
    DbSqCached *c = v;
    if (!c)
        return;
    sqlite3_finalize(c->st);
    free(c);
}

int db__sq_error(Db *db, int rc, const char *what, Err *e)
{
    int prim = rc & 0xff, code;
    DbErrClass ec;
    const char *msg = db->sq ? sqlite3_errmsg(db->sq) : sqlite3_errstr(rc);
    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED) {
        ec = DB_EC_RETRY;
        code = ERR_BUSY;
    } else if (prim == SQLITE_CONSTRAINT) {
        ec = DB_EC_OTHER;
        code = ERR_CONFLICT;
    } else {
        ec = DB_EC_OTHER;
        code = ERR_DB;
    }
    if (db->ec == DB_EC_NONE || db->tx_depth == 0)
        db->ec = ec;
    return err_set(e, code, "SQLite %s: %s: %s", db->sq_path ? db->sq_path : "", what, msg);
}

/* Run one PRAGMA (or other statement) and ignore its rows. */
static int simple(Db *db, const char *sql, Err *e)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db__sq_error(db, rc, sql, e);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db__sq_error(db, rc, sql, e);
    return 0;
}

int db__sq_open(Db *db, const char *path, int existing, Err *e)
{
    int rc;
    char *dir = NULL;
    if (existing && strcmp(path, ":memory:") != 0 && access(path, F_OK) != 0)
        return err_set(e, ERR_NOTFOUND, "no SQLite database at %s (sluice db init creates one)",
                       path);
    if (!existing && strcmp(path, ":memory:") != 0) {
        char *tmp = xstrdup(path);
        dir = xstrdup(dirname(tmp));
        free(tmp);
        if (strcmp(dir, ".") != 0 && strcmp(dir, "/") != 0) {
            rc = util_mkdir_p(dir, 0755, e);
            if (rc < 0) {
                err_prefix(e, "SQLite database %s", path);
                goto out;
            }
        }
    }
    db->sq_path = xstrdup(path);
    rc = sqlite3_open_v2(
        path, &db->sq,
        SQLITE_OPEN_READWRITE | (existing ? 0 : SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = err_set(e, ERR_DB, "cannot open SQLite database %s: %s", path,
                     db->sq ? sqlite3_errmsg(db->sq) : sqlite3_errstr(rc));
        goto out;
    }
    sqlite3_extended_result_codes(db->sq, 1);
    sqlite3_busy_timeout(db->sq, DB_SQLITE_BUSY_MS);
    /* journal_mode can meet a concurrent opener's lock even with the busy timeout on
     * some paths; a few tries cover it.  This is also the first read of the file, so
     * "file is not a database" shows up here. */
    for (int i = 0;; i++) {
        rc = simple(db, "PRAGMA journal_mode = WAL", e);
        if (rc == 0 || rc != ERR_BUSY || i >= 20)
            break;
        db__sleep_ms(50);
    }
    if (rc < 0)
        goto out;
    rc = simple(db, "PRAGMA foreign_keys = ON", e);
    if (rc == 0)
        rc = simple(db, "PRAGMA synchronous = NORMAL", e);
out:
    free(dir);
    return rc < 0 ? rc : 0;
}

void db__sq_close(Db *db)
{
    if (db->sq)
        sqlite3_close_v2(db->sq);
    db->sq = NULL;
}

/* Bind params to st by the names $1..$N. */
static int bind_all(Db *db, sqlite3_stmt *st, const DbParam *p, size_t n, Err *e)
{
    int np = sqlite3_bind_parameter_count(st);
    /* As strict as PostgreSQL: every value given is used ($1..$N all appear). */
    if ((size_t)np != n)
        return err_set(e, ERR_INVALID,
                       "the SQL statement has %d parameters but %zu values were given", np, n);
    for (int i = 1; i <= np; i++) {
        const char *name = sqlite3_bind_parameter_name(st, i);
        int64_t k;
        int rc;
        if (!name || name[0] != '$' || util_parse_i64(name + 1, &k) < 0 || k < 1)
            return err_set(e, ERR_INVALID, "SQL parameter '%s' is not of the form $N",
                           name ? name : "?");
        if ((uint64_t)k > n)
            return err_set(e, ERR_INVALID, "SQL parameter %s has no value (%zu given)", name, n);
        switch (p[k - 1].type) {
        case DB_INT: rc = sqlite3_bind_int64(st, i, p[k - 1].i); break;
        case DB_DOUBLE: rc = sqlite3_bind_double(st, i, p[k - 1].d); break;
        case DB_TEXT: rc = sqlite3_bind_text(st, i, p[k - 1].s, -1, SQLITE_TRANSIENT); break;
        default: rc = sqlite3_bind_null(st, i); break;
        }
        if (rc != SQLITE_OK)
            return db__sq_error(db, rc, "bind", e);
    }
    return 0;
}

static int only_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == ';')
        s++;
    return *s == '\0';
}

int db__sq_query(Db *db, const char *sql, const DbParam *p, size_t n, DbStmt *st, Err *e)
{
    DbSqCached *c = map_get(db->stmts, sql);
    sqlite3_stmt *s = NULL;
    int rc;
    if (c && !c->in_use) {
        s = c->st;
        c->in_use = 1;
        st->cached = c;
    } else {
        const char *tail = NULL;
        rc = sqlite3_prepare_v3(db->sq, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, &tail);
        if (rc != SQLITE_OK)
            return db__sq_error(db, rc, "prepare", e);
        if (!s)
            return err_set(e, ERR_INVALID, "empty SQL statement");
        if (tail && !only_space(tail)) {
            sqlite3_finalize(s);
            return err_set(e, ERR_INVALID, "more than one SQL statement in one call");
        }
        if (!c) {
            c = xcalloc(1, sizeof *c);
            c->st = s;
            c->in_use = 1;
            map_put(db->stmts, sql, c);
            st->cached = c;
        }
    }
    st->sq = s;
    rc = bind_all(db, s, p, n, e);
    if (rc < 0) {
        db__sq_done(st);
        return rc;
    }
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        int r = db__sq_error(db, rc, "statement", e);
        db__sq_done(st);
        return r;
    }
    st->sq_first = 1;
    st->sq_first_rc = rc;
    if (rc == SQLITE_DONE)
        st->changes = sqlite3_changes64(db->sq);
    return 0;
}

int db__sq_step(DbStmt *st, Err *e)
{
    int rc;
    if (!st->sq)
        return 0;
    if (st->sq_first) {
        st->sq_first = 0;
        rc = st->sq_first_rc;
    } else {
        rc = sqlite3_step(st->sq);
    }
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return db__sq_error(st->db, rc, "step", e);
}

void db__sq_done(DbStmt *st)
{
    if (!st->sq)
        return;
    if (st->db->tx_depth == 0 && !sqlite3_stmt_readonly(st->sq))
        db__sq_hub_bump();
    sqlite3_reset(st->sq);
    sqlite3_clear_bindings(st->sq);
    if (st->cached)
        st->cached->in_use = 0;
    else
        sqlite3_finalize(st->sq);
    st->sq = NULL;
    st->cached = NULL;
}

int db__sq_script(Db *db, const char *sql, Err *e)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db->sq, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int r = db__sq_error(db, rc, "script", e);
        if (msg && e)
            err_set(e, r, "SQLite %s: %s", db->sq_path, msg);
        sqlite3_free(msg);
        return r;
    }
    return 0;
}
