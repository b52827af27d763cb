/* dbtest.c: per-backend fresh databases for the database tests (see dbtest.h). */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbtest.h"
#include "test.h"

static char *server_dir;    /* our own server, stopped at exit */
static StrVec private_dirs; /* private servers still running (stopped at exit) */
static char *base_url;      /* admin URL of the test server */
static char *server_error;  /* why the test server could not be had (every later use fails) */
static unsigned db_counter;

static const char *pg_sh(void)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s", test_data("../harness/pg.sh"));
    return path;
}

static void stop_servers(void)
{
    while (private_dirs.n)
        dbtest_pg_private_stop(private_dirs.v[private_dirs.n - 1]);
    strvec_dispose(&private_dirs);
    free(server_dir);
    server_dir = NULL;
}

int dbtest_pg_private_start(char **dir, char **url)
{
    char cmd[8192], line[4096];
    FILE *f;
    char tmpl[] = "/tmp/sluice-pg.XXXXXX";
    *dir = NULL;
    *url = NULL;
    if (!mkdtemp(tmpl)) {
        test_fail(__FILE__, __LINE__, "mkdtemp failed");
        return -1;
    }
    snprintf(cmd, sizeof cmd, "bash '%s' start '%s' 2>&1", pg_sh(), tmpl);
    f = popen(cmd, "r");
    if (!f)
        return -1;
    line[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "PGTEST_DIR="))
            break;
        fputs(line, stdout);
    }
    if (pclose(f) != 0 || !strstr(line, "PGTEST_DIR=")) {
        test_fail(__FILE__, __LINE__, "cannot start PostgreSQL with %s: %s", pg_sh(), line);
        rmdir(tmpl);
        return -1;
    }
    *dir = xstrdup(tmpl);
    *url = xasprintf("postgresql://postgres@/postgres?host=%s", tmpl);
    if (!private_dirs.v && !private_dirs.n)
        atexit(stop_servers);
    strvec_push(&private_dirs, tmpl);
    return 0;
}

int dbtest_pg_private_kill(const char *dir)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "bash '%s' kill '%s'", pg_sh(), dir);
    return system(cmd) == 0 ? 0 : -1;
}

int dbtest_pg_private_resume(const char *dir)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "bash '%s' resume '%s'", pg_sh(), dir);
    return system(cmd) == 0 ? 0 : -1;
}

void dbtest_pg_private_stop(const char *dir)
{
    char cmd[8192];
    int r;
    snprintf(cmd, sizeof cmd, "bash '%s' stop '%s'", pg_sh(), dir);
    r = system(cmd);
    (void)r;
    for (size_t i = 0; i < private_dirs.n; i++)
        if (strcmp(private_dirs.v[i], dir) == 0) {
            free(private_dirs.v[i]);
            private_dirs.v[i] = private_dirs.v[--private_dirs.n];
            break;
        }
}

static const char *server(void)
{
    const char *env = getenv("SLUICE_TEST_PG_URL");
    if (base_url)
        return base_url;
    if (server_error) {
        /* every PostgreSQL case of every test fails, not only the first one */
        test_fail(__FILE__, __LINE__, "no test PostgreSQL: %s", server_error);
        return NULL;
    }
    if (env && *env) {
        base_url = xstrdup(env);
        return base_url;
    }
    env = getenv("PGHOST");
    if (env && *env) {
        const char *port = getenv("PGPORT"), *user = getenv("PGUSER"), *name = getenv("PGDATABASE");
        base_url = xasprintf("postgresql://%s@/%s?host=%s&port=%s", user ? user : "postgres",
                             name ? name : "postgres", env, port ? port : "5432");
        return base_url;
    }
    if (dbtest_pg_private_start(&server_dir, &base_url) < 0) {
        server_error = xasprintf("%s start failed (set SLUICE_TEST_PG_URL to use a running "
                                 "server)",
                                 pg_sh());
        return NULL;
    }
    return base_url;
}

/* Run sql on the database of url; 0 or -1 (test marked failed). */
static int exec_on(const char *url, const char *sql)
{
    PGconn *c;
    PGresult *r;
    int ok;
    c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        test_fail(__FILE__, __LINE__, "test PostgreSQL %s: %s", url, PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    PQsetNoticeProcessor(c, NULL, NULL);
    r = PQexec(c, sql);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        test_fail(__FILE__, __LINE__, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

int dbtest_pg_admin(const char *sql)
{
    const char *url = server();
    if (!url)
        return -1;
    return exec_on(url, sql);
}

/* Percent-encode the few characters that matter in a URI query value. */
static void enc(Buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '&' || *s == '%' || *s == '#' || *s == ' ' || *s == '=' || *s == '?')
            buf_printf(b, "%%%02X", (unsigned char)*s);
        else
            buf_putc(b, *s);
    }
}

char *dbtest_pg_new_db(char **name_out)
{
    const char *url = server();
    char name[64], sql[128];
    PGconn *c;
    Buf b;
    if (!url)
        return NULL;
    snprintf(name, sizeof name, "sluice_t_%ld_%u", (long)getpid(), ++db_counter);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (dbtest_pg_admin(sql) < 0)
        return NULL;
    c = PQconnectdb(url);
    buf_init(&b, 65536);
    buf_printf(&b, "postgresql:///%s?host=", name);
    enc(&b, PQhost(c) ? PQhost(c) : "");
    if (PQport(c) && *PQport(c)) {
        buf_puts(&b, "&port=");
        enc(&b, PQport(c));
    }
    buf_puts(&b, "&user=");
    enc(&b, PQuser(c) ? PQuser(c) : "postgres");
    PQfinish(c);
    if (name_out)
        *name_out = xstrdup(name);
    return buf_take(&b, NULL);
}

/* One database per test process (CREATE DATABASE takes a second or two); each test
 * backend gets its own schema in it, selected by search_path in the URL. */
static char *proc_db_url, *proc_db_name;

static void drop_proc_db(void)
{
    char sql[128];
    if (!proc_db_name)
        return;
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", proc_db_name);
    (void)dbtest_pg_admin(sql);
    free(proc_db_url);
    free(proc_db_name);
    proc_db_url = proc_db_name = NULL;
}

static char *new_schema_url(char **schema_out)
{
    char name[64], sql[128];
    if (!proc_db_url) {
        proc_db_url = dbtest_pg_new_db(&proc_db_name);
        if (!proc_db_url)
            return NULL;
        atexit(drop_proc_db);
    }
    snprintf(name, sizeof name, "t%u", ++db_counter);
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", name);
    if (exec_on(proc_db_url, sql) < 0)
        return NULL;
    *schema_out = xstrdup(name);
    return xasprintf("%s&options=-csearch_path%%3D%s", proc_db_url, name);
}

int dbtest_psql_file(const char *url, const char *file)
{
    char *cmd =
        xasprintf("psql -q -X -v ON_ERROR_STOP=1 -d '%s' -f '%s' >/dev/null 2>&1", url, file);
    int r = system(cmd);
    free(cmd);
    return r == 0 ? 0 : -1;
}

static void drop_previous(DbTest *t)
{
    if (t->pg_name && proc_db_url) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", t->pg_name);
        (void)exec_on(proc_db_url, sql);
    }
    free(t->url);
    free(t->pg_name);
    t->url = NULL;
    t->pg_name = NULL;
}

int dbtest_next(DbTest *t, int flags)
{
    const char *hydra_sql = getenv("HYDRA_SQL"), *dir = getenv("HYDRA_SQL_DIR");
    char from_dir[4096];
    Err e = {0};
    Db *db = NULL;
    drop_previous(t);
    if ((!hydra_sql || !*hydra_sql) && dir && *dir) {
        snprintf(from_dir, sizeof from_dir, "%s/hydra.sql", dir);
        hydra_sql = from_dir;
    }
    for (;;) {
        int idx = t->i++;
        t->hydra = 0;
        if (idx == 0) {
            t->label = "sqlite";
            t->kind = DB_SQLITE;
            t->url = xasprintf("sqlite:%s/db-%u.sqlite", test_tmpdir(), ++db_counter);
            if (!(flags & DBTEST_EMPTY)) {
                if (db_open(t->url, DB_OPEN_DEFAULT, &db, &e) < 0) {
                    test_fail(__FILE__, __LINE__, "sqlite: %s", e.msg);
                    return 0;
                }
                db_close(db);
            }
            return 1;
        }
        if (idx == 1 || idx == 2) {
            if (idx == 2 &&
                (!hydra_sql || !*hydra_sql || (flags & (DBTEST_EMPTY | DBTEST_NO_HYDRA))))
                continue;
            t->label = idx == 1 ? "postgresql" : "postgresql+hydra";
            t->kind = DB_POSTGRES;
            t->hydra = idx == 2;
            t->url = new_schema_url(&t->pg_name);
            if (!t->url)
                return 0;
            if (t->hydra) {
                if (dbtest_psql_file(t->url, hydra_sql) < 0) {
                    test_fail(__FILE__, __LINE__, "cannot load %s into %s", hydra_sql, t->url);
                    return 0;
                }
            }
            if (!(flags & DBTEST_EMPTY)) {
                int rc = db_open(t->url, DB_OPEN_NO_SCHEMA, &db, &e);
                if (rc == 0 && t->hydra)
                    rc =
                        db_exec(db, "INSERT INTO SchemaVersion (version) VALUES (87)", NULL, 0, &e);
                if (rc >= 0)
                    rc = db_schema_init(db, NULL, &e);
                db_close(db);
                if (rc < 0) {
                    test_fail(__FILE__, __LINE__, "%s: %s", t->label, e.msg);
                    return 0;
                }
            }
            return 1;
        }
        return 0;
    }
}
