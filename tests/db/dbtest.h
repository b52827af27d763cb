/*
 * dbtest.h: helpers for tests that use a database.  Every database test runs once per
 * backend:
 *
 *   sqlite             a fresh file in the test's temporary directory
 *   postgresql         a fresh schema (namespace) in this test process's database on
 *                      the test PostgreSQL server, chosen by search_path in the URL;
 *                      tables by db_schema_init (Hydra's tables created by sluice)
 *   postgresql+hydra   only when $HYDRA_SQL names Hydra's hydra.sql: a fresh schema
 *                      loaded from that file (as hydra-init does), then db_schema_init
 *
 * The PostgreSQL server is $SLUICE_TEST_PG_URL when set (CI), else one started once
 * per test process with tests/harness/pg.sh and stopped at exit.
 *
 *   DbTest t = {0};
 *   while (dbtest_next(&t, 0)) {
 *       Db *db;
 *       CHECK_OK(db_open(t.url, 0, &db, &e), &e);
 *       ...                       (messages should name t.label)
 *       db_close(db);
 *   }
 *
 * dbtest_next drops the previous schema, so close every Db before calling it again.
 * (A schema rather than a database per test: CREATE DATABASE takes a second or two.)
 */
#ifndef SLUICE_TESTS_DBTEST_H
#define SLUICE_TESTS_DBTEST_H

#include "db/db.h"

enum {
    DBTEST_EMPTY = 1 << 0,    /* no schema: an empty database (and no hydra.sql backend) */
    DBTEST_NO_HYDRA = 1 << 1, /* skip the postgresql+hydra backend */
};

typedef struct DbTest {
    int i;             /* backend index (internal) */
    const char *label; /* "sqlite", "postgresql", "postgresql+hydra" */
    DbKind kind;
    char *url;     /* the fresh database (owned by the helper) */
    char *pg_name; /* PostgreSQL database name (owned by the helper) */
    int hydra;     /* 1 for the hydra.sql backend */
} DbTest;

/* Advance to the next backend with a fresh database; 0 when done (or when a backend
 * could not be prepared: the test is then marked failed with the reason). */
int dbtest_next(DbTest *t, int flags);

/* A fresh, empty PostgreSQL database on the test server: its URL (caller frees), or
 * NULL after marking the test failed. */
char *dbtest_pg_new_db(char **name_out);
/* Run SQL on the test server's admin database (CREATE/DROP DATABASE ...). */
int dbtest_pg_admin(const char *sql);
/* Run psql with -f FILE against url; 0 on success. */
int dbtest_psql_file(const char *url, const char *file);

/* A private PostgreSQL server (for tests that kill it): start one in a new directory
 * and return its base URL (caller frees both). */
int dbtest_pg_private_start(char **dir, char **url);
int dbtest_pg_private_kill(const char *dir);
int dbtest_pg_private_resume(const char *dir);
void dbtest_pg_private_stop(const char *dir);

#endif
