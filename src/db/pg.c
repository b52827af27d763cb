/*
 * pg.c: the PostgreSQL backend of db (libpq).  Statements are prepared once per
 * connection (named s1, s2, ... and cached by SQL text) and run with text parameters
 * whose types the server infers; results are fetched whole.  Failures are classified
 * by SQLSTATE and connection state: a broken connection (or 08xxx, 57P01-57P03) is
 * "lost", 40001 and 40P01 may succeed when the transaction runs again, class 23 is
 * ERR_CONFLICT.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"

static void notice_fn(void *arg, const char *msg)
{
    (void)arg;
    log_debug("PostgreSQL: %s", msg);
}

/* First line of a libpq message, without the trailing newline, into buf. */
static const char *first_line(const char *msg, char *buf, size_t size)
{
    size_t n;
    if (!msg)
        msg = "";
    n = strcspn(msg, "\n");
    if (n >= size)
        n = size - 1;
    memcpy(buf, msg, n);
    buf[n] = '\0';
    return buf;
}

int db__pg_check_conninfo(const char *conninfo, Err *e)
{
    char *errmsg = NULL, line[512];
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
    if (!opts) {
        int rc = err_set(e, ERR_INVALID, "database URL does not parse: %s",
                         errmsg ? first_line(errmsg, line, sizeof line) : "out of memory");
        PQfreemem(errmsg);
        return rc;
    }
    PQconninfoFree(opts);
    return 0;
}

int db__pg_connect(Db *db, Err *e)
{
    const char *kw[] = {"application_name", "connect_timeout", "dbname", NULL};
    const char *val[] = {"sluice", "10", db->url, NULL};
    char line[512];
    PGconn *c = PQconnectdbParams(kw, val, 1);
    if (!c)
        return err_set(e, ERR_NOMEM, "libpq: out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        int rc = err_set(e, ERR_DB, "cannot connect to PostgreSQL at %s: %s", db->url_safe,
                         first_line(PQerrorMessage(c), line, sizeof line));
        PQfinish(c);
        return rc;
    }
    PQsetNoticeProcessor(c, notice_fn, NULL);
    db->pg = c;
    db->pg_next_stmt = 0;
    return 0;
}

void db__pg_close(Db *db)
{
    if (db->pg)
        PQfinish(db->pg);
    db->pg = NULL;
}

static int is_lost_state(const char *s)
{
    if (!s)
        return 0;
    return strncmp(s, "08", 2) == 0 || strcmp(s, "57P01") == 0 || strcmp(s, "57P02") == 0 ||
           strcmp(s, "57P03") == 0;
}

int db__pg_error(Db *db, PGresult *res, const char *what, Err *e)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *prim = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char line[1024];
    DbErrClass ec;
    int code;
    if (!prim)
        prim = first_line(res      ? PQresultErrorMessage(res)
                          : db->pg ? PQerrorMessage(db->pg)
                                   : "no connection",
                          line, sizeof line);
    if (!*prim && db->pg)
        prim = first_line(PQerrorMessage(db->pg), line, sizeof line);
    /* An error without SQLSTATE was found by libpq itself, not the server: in practice
     * a connection that broke (libpq does not always mark it bad at once). */
    if (!db->pg || PQstatus(db->pg) == CONNECTION_BAD || is_lost_state(state) || !state) {
        ec = DB_EC_LOST;
        code = ERR_DB;
    } else if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)) {
        ec = DB_EC_RETRY;
        code = ERR_BUSY;
    } else if (state && strncmp(state, "23", 2) == 0) {
        ec = DB_EC_OTHER;
        code = ERR_CONFLICT;
    } else {
        ec = DB_EC_OTHER;
        code = ERR_DB;
    }
    if (db->ec == DB_EC_NONE || db->tx_depth == 0)
        db->ec = ec;
    if (ec == DB_EC_LOST)
        return err_set(e, code, "connection to PostgreSQL at %s lost (%s): %s", db->url_safe, what,
                       prim);
    return err_set(e, code, "PostgreSQL: %s%s%s%s", prim, state ? " (SQLSTATE " : "",
                   state ? state : "", state ? ")" : "");
}

/* Text form of each parameter. bufs holds n * 32 bytes for the numbers. */
static void param_texts(const DbParam *p, size_t n, const char **vals, char *bufs)
{
    for (size_t i = 0; i < n; i++) {
        char *b = bufs + i * 32;
        switch (p[i].type) {
        case DB_INT:
            snprintf(b, 32, "%lld", (long long)p[i].i);
            vals[i] = b;
            break;
        case DB_DOUBLE:
            if (isnan(p[i].d))
                vals[i] = "NaN";
            else if (isinf(p[i].d))
                vals[i] = p[i].d > 0 ? "Infinity" : "-Infinity";
            else {
                snprintf(b, 32, "%.17g", p[i].d);
                vals[i] = b;
            }
            break;
        case DB_TEXT: vals[i] = p[i].s; break;
        default: vals[i] = NULL; break;
        }
    }
}

int db__pg_query(Db *db, const char *sql, const DbParam *p, size_t n, DbStmt *st, Err *e)
{
    const char *name;
    const char **vals = NULL;
    char *bufs = NULL;
    PGresult *res = NULL;
    ExecStatusType s;
    int rc = 0;
    if (!db->pg)
        return db__pg_error(db, NULL, "statement", e);
    if (n > 65535)
        return err_set(e, ERR_INVALID, "too many SQL parameters (%zu)", n);
    name = map_get(db->stmts, sql);
    if (!name) {
        char nm[32];
        snprintf(nm, sizeof nm, "s%u", ++db->pg_next_stmt);
        res = PQprepare(db->pg, nm, sql, 0, NULL);
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = db__pg_error(db, res, "prepare", e);
            goto out;
        }
        PQclear(res);
        res = NULL;
        map_put(db->stmts, sql, xstrdup(nm));
        name = map_get(db->stmts, sql);
    }
    if (n) {
        vals = xcalloc(n, sizeof *vals);
        bufs = xmalloc(n * 32);
        param_texts(p, n, vals, bufs);
    }
    res = PQexecPrepared(db->pg, name, (int)n, vals, NULL, NULL, 0);
    s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) {
        int64_t ch = 0;
        const char *ct = PQcmdTuples(res);
        if (ct && *ct)
            (void)util_parse_i64(ct, &ch);
        if (PQntuples(res) > (int)DB_PG_MAX_RESULT_ROWS) {
            rc = err_set(e, ERR_TOOBIG, "PostgreSQL result has %d rows (limit %u)", PQntuples(res),
                         (unsigned)DB_PG_MAX_RESULT_ROWS);
            goto out;
        }
        st->res = res;
        res = NULL;
        st->nrows = PQntuples(st->res);
        st->row = -1;
        st->changes = ch;
    } else {
        rc = db__pg_error(db, res, "statement", e);
        /* A statement that failed to plan (e.g. the table changed) can leave a stale
         * prepared statement behind; forget it so the next call prepares again. */
        if (db->pg && PQstatus(db->pg) == CONNECTION_OK && db->tx_depth == 0) {
            PGresult *d;
            char dealloc[64];
            snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", name);
            d = PQexec(db->pg, dealloc);
            PQclear(d);
            map_del(db->stmts, sql);
            free((char *)name);
        }
    }
out:
    PQclear(res);
    free(vals);
    free(bufs);
    return rc;
}

int db__pg_script(Db *db, const char *sql, Err *e)
{
    PGresult *res;
    ExecStatusType s;
    int rc = 0;
    if (!db->pg)
        return db__pg_error(db, NULL, "script", e);
    res = PQexec(db->pg, sql);
    s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        rc = db__pg_error(db, res, "script", e);
    PQclear(res);
    return rc;
}
