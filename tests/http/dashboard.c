/* Tests of src/http/dashboard.c: the JSON text of log events (UTF-8 kept, invalid
 * bytes replaced, escapes, sequences cut by a chunk), the embedded files, and the
 * list, queue and graph queries on every database backend (dbtest.h), with 100,000
 * builds on SQLite (90% queued): pages agree with plain SQL, keyset pagination walks a filtered
 * list without gaps or repeats, LIKE wildcards in a job filter are literal, and a
 * page costs little however deep it is. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "db/dbtest.h"
#include "http/http_int.h"
#include "test.h"

/* ---------------------------------------------------------------- JSON text */

static const char *esc(Buf *b, const char *s, size_t n)
{
    buf_reset(b);
    http__json_escape_utf8(b, (const uint8_t *)s, n);
    return buf_cstr(b);
}

#define ESC(lit) esc(&b, lit, sizeof(lit) - 1)

TEST(http, dashboard, json_escape_utf8)
{
    Buf b;
    buf_init(&b, 1 << 20);
    CHECK_STR(ESC("plain text"), "plain text");
    CHECK_STR(ESC("a\"b\\c"), "a\\\"b\\\\c");
    CHECK_STR(ESC("l1\nl2\r\t\b\f"), "l1\\nl2\\r\\t\\b\\f");
    CHECK_STR(ESC("\x01\x1b[0m\x7f"), "\\u0001\\u001b[0m\x7f");
    CHECK_STR(ESC(""), "");
    CHECK_STR(ESC("nul\0x"), "nul\\u0000x");
    /* valid UTF-8 of 2, 3 and 4 bytes stays as it is */
    CHECK_STR(ESC("gr\xc3\xbc\xc3\x9f\x65 \xe2\x9c\x93 \xf0\x9f\x98\x80"),
              "gr\xc3\xbc\xc3\x9f\x65 \xe2\x9c\x93 \xf0\x9f\x98\x80");
    /* invalid: a lone continuation byte, 0xff, overlong forms, a surrogate, above
     * U+10FFFF, a sequence cut short in the middle: each bad byte is U+FFFD */
    CHECK_STR(ESC("a\x80z"), "a\\ufffdz");
    CHECK_STR(ESC("\xff"), "\\ufffd");
    CHECK_STR(ESC("\xc0\x80"), "\\ufffd\\ufffd");
    CHECK_STR(ESC("\xe0\x80\xaf"), "\\ufffd\\ufffd\\ufffd");
    CHECK_STR(ESC("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");
    CHECK_STR(ESC("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");
    CHECK_STR(ESC("\xe2\x9cx"), "\\ufffd\\ufffdx");
    CHECK_STR(ESC("end\xe2\x9c"), "end\\ufffd\\ufffd");
    /* what it writes is a JSON string that decodes to the text */
    {
        const char *src = "tick-1\t<b>&\n\"q\" \\ \xe2\x9c\x93";
        char *doc;
        json_t *j;
        esc(&b, src, strlen(src));
        doc = xasprintf("\"%s\"", buf_cstr(&b));
        j = json_loads(doc, JSON_DECODE_ANY, NULL);
        free(doc);
        CHECK(j != NULL);
        CHECK_STR(json_string_value(j), src);
        json_decref(j);
    }
    buf_dispose(&b);
}

TEST(http, dashboard, utf8_complete)
{
#define C(s) http__utf8_complete((const uint8_t *)(s), sizeof(s) - 1)
    CHECK_INT(C(""), 0);
    CHECK_INT(C("abc"), 3);
    CHECK_INT(C("ab\xc3"), 2);
    CHECK_INT(C("ab\xc3\xbc"), 4);
    CHECK_INT(C("ab\xe2"), 2);
    CHECK_INT(C("ab\xe2\x9c"), 2);
    CHECK_INT(C("ab\xe2\x9c\x93"), 5);
    CHECK_INT(C("\xf0\x9f\x98"), 0);
    CHECK_INT(C("x\xf0\x9f\x98\x80"), 5);
    /* bytes that can never become valid are not held back */
    CHECK_INT(C("ab\xff"), 3);
    CHECK_INT(C("ab\x80"), 3);
    CHECK_INT(C("ab\xe2x"), 4);
    CHECK_INT(C("ab\xe0\x80"), 4); /* overlong: invalid already */
#undef C
}

/* ---------------------------------------------------------------- files */

TEST(http, dashboard, embedded_files)
{
    size_t n = 0;
    const HttpAsset *a = http__static_assets(&n);
    const char *want[] = {"index.html", "app.js", "style.css"};
    for (size_t k = 0; k < UTIL_ARRAY_LEN(want); k++) {
        size_t i;
        for (i = 0; i < n; i++)
            if (strcmp(a[i].name, want[k]) == 0)
                break;
        CHECK_MSG(i < n, "%s is not embedded", want[k]);
        CHECK(a[i].len > 100);
        /* byte for byte the source file */
        {
            Buf src;
            Err err_ = {0}, *e = &err_;
            char *path = xasprintf("%s../../src/http/static/%s", test_data(""), want[k]);
            buf_init(&src, 1 << 24);
            CHECK_OK(util_read_file(path, &src, e), e);
            free(path);
            CHECK_INT(src.len, a[i].len);
            CHECK(memcmp(src.p, a[i].data, src.len) == 0);
            buf_dispose(&src);
        }
    }
    for (size_t i = 0; i < n; i++) {
        /* nothing is loaded from elsewhere */
        char *text = xstrndup((const char *)a[i].data, a[i].len);
        CHECK_MSG(!strstr(text, "src=\"http") && !strstr(text, "href=\"http") &&
                      !strstr(text, "src=\"//") && !strstr(text, "href=\"//") &&
                      !strstr(text, "url(") && !strstr(text, "@import") &&
                      !strstr(text, "fetch('http") && !strstr(text, "innerHTML"),
                  "%s refers to something outside the server or writes HTML", a[i].name);
        free(text);
    }
}

/* ---------------------------------------------------------------- queries */

/* Builds in the list tests: 100,000 on SQLite (the default backend); 20,000 on
 * PostgreSQL, where inserting them costs seconds and the plans use the same indexes. */
static int n_builds(const DbTest *t)
{
    return t->kind == DB_SQLITE ? 100000 : 20000;
}

static int setup_builds(Db *db, int n, Err *e)
{
    int64_t js = 0;
    int rc =
        db_exec(db, "INSERT INTO Users (userName, emailAddress, password) VALUES ('t', '', '!')",
                NULL, 0, e);
    if (rc >= 0)
        rc = db_exec(db,
                     "INSERT INTO Projects (name, displayName, description, owner) "
                     "VALUES ('p', 'p', '', 't')",
                     NULL, 0, e);
    if (rc >= 0)
        rc = db_query_int64(db,
                            "INSERT INTO Jobsets (name, project, description, nixExprInput, "
                            "nixExprPath, enabled, emailOverride) VALUES ('js', 'p', '', 'x', "
                            "'x.nix', 0, '') RETURNING id",
                            NULL, 0, &js, e);
    if (rc < 0)
        return rc;
    /* 90% queued, 10% finished (statuses 0, 1, 2), a quarter on aarch64-linux */
    rc = db_exec(
        db,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) "
        "INSERT INTO Builds (finished, timestamp, jobset_id, job, nixName, drvPath, system, "
        "priority, globalPriority, isChannel, isCurrent, keep, startTime, stopTime, buildStatus) "
        "SELECT CASE WHEN i % 10 = 0 THEN 1 ELSE 0 END, i, $2, 'job-' || (i % 50), 'n', "
        "'/nix/store/00000000000000000000000000000000-b.drv', "
        "CASE WHEN i % 4 = 0 THEN 'aarch64-linux' ELSE 'x86_64-linux' END, 100, 0, 0, 1, 0, "
        "CASE WHEN i % 10 = 0 THEN i END, CASE WHEN i % 10 = 0 THEN i + 1 END, "
        "CASE WHEN i % 10 = 0 THEN (i / 10) % 3 END FROM n",
        DB_ARGS(DB_P_INT(n), DB_P_INT(js)), e);
    return rc < 0 ? rc : 0;
}

/* ids of a page */
static int page_ids(json_t *doc, int64_t *out, int max)
{
    size_t i;
    json_t *b;
    int n = 0;
    json_array_foreach(json_object_get(doc, "builds"), i, b)
    {
        if (n < max)
            out[n] = json_integer_value(json_object_get(b, "id"));
        n++;
    }
    return n;
}

/* ids from plain SQL */
static int sql_ids(Db *db, const char *sql, const DbParam *p, size_t np, int64_t *out, int max,
                   Err *e)
{
    DbStmt *st = NULL;
    int rc = db_query(db, sql, p, np, &st, e), n = 0;
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1) {
        if (n < max)
            out[n] = db_col_int64(st, 0);
        n++;
    }
    db_stmt_done(st);
    return rc < 0 ? rc : n;
}

static int same(const int64_t *a, int na, const int64_t *b, int nb)
{
    return na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
}

TEST(http, dashboard, builds_pages_on_many_builds)
{
    DbTest t = {0};
    while (dbtest_next(&t, 0)) {
        Db *db = NULL;
        Err err_ = {0}, *e = &err_;
        json_t *doc = NULL;
        int64_t got[HTTP_LIST_MAX + 1], want[HTTP_LIST_MAX + 1], before = 0, max_id = 0;
        int ng, nw, pages = 0, total = 0;
        uint64_t t0, worst = 0;
        HttpBuildFilter f = {.finished = -1, .status = -1, .limit = 50};
        const int N_BUILDS = n_builds(&t);

        CHECK_OK(db_open(t.url, 0, &db, e), e);
        CHECK_OK(setup_builds(db, N_BUILDS, e), e);
        CHECK_INT(db_query_int64(db, "SELECT max(id) FROM Builds", NULL, 0, &max_id, e), 1);

        /* the first page: the newest 50, and the cursor */
        CHECK_OK(http__dash_builds(db, &f, &doc, e), e);
        ng = page_ids(doc, got, 60);
        nw = sql_ids(db, "SELECT id FROM Builds ORDER BY id DESC LIMIT 50", NULL, 0, want, 60, e);
        CHECK_MSG(same(got, ng, want, nw), "%s: first page", t.label);
        CHECK_INT(got[0], max_id);
        CHECK_INT(json_integer_value(json_object_get(doc, "next")), want[49]);
        json_decref(doc);

        /* walk every failed build (status 1) with the cursor: no gap, no repeat */
        f.status = DB_STATUS_FAILED;
        f.limit = HTTP_LIST_MAX;
        for (;;) {
            json_t *next;
            f.before = before;
            t0 = util_now_ms();
            CHECK_OK(http__dash_builds(db, &f, &doc, e), e);
            if (util_now_ms() - t0 > worst)
                worst = util_now_ms() - t0;
            ng = page_ids(doc, got, HTTP_LIST_MAX + 1);
            CHECK(ng <= HTTP_LIST_MAX);
            nw = sql_ids(db,
                         "SELECT id FROM Builds WHERE finished = 1 AND buildStatus = 1 "
                         "AND ($1 = 0 OR id < $1) ORDER BY id DESC LIMIT 200",
                         DB_ARGS(DB_P_INT(before)), want, HTTP_LIST_MAX + 1, e);
            CHECK_MSG(same(got, ng, want, nw), "%s: page %d of failed builds", t.label, pages);
            if (ng > 0) /* the status as /build/ID names it */
                CHECK_STR(
                    json_string_value(json_object_get(
                        json_array_get(json_object_get(doc, "builds"), 0), "buildstatusName")),
                    "failed");
            total += ng;
            pages++;
            next = json_object_get(doc, "next");
            if (json_is_null(next)) {
                json_decref(doc);
                break;
            }
            CHECK_INT(json_integer_value(next), got[ng - 1]);
            before = got[ng - 1];
            json_decref(doc);
            CHECK(pages < 1000);
        }
        {
            int64_t n_failed = 0;
            CHECK_INT(db_query_int64(db,
                                     "SELECT count(*) FROM Builds WHERE finished = 1 AND "
                                     "buildStatus = 1",
                                     NULL, 0, &n_failed, e),
                      1);
            CHECK_INT(total, n_failed);
            CHECK(pages == (int)(n_failed + HTTP_LIST_MAX - 1) / HTTP_LIST_MAX ||
                  pages == (int)(n_failed + HTTP_LIST_MAX - 1) / HTTP_LIST_MAX + 1);
        }
        CHECK_MSG(worst < 2000, "%s: a page of failed builds took %llu ms", t.label,
                  (unsigned long long)worst);

        /* queued on one system, deep in the list */
        f = (HttpBuildFilter){.finished = 0,
                              .status = -1,
                              .limit = HTTP_LIST_MAX,
                              .system = "aarch64-linux",
                              .before = N_BUILDS / 2};
        t0 = util_now_ms();
        CHECK_OK(http__dash_builds(db, &f, &doc, e), e);
        CHECK_MSG(util_now_ms() - t0 < 2000, "%s: a deep page took %llu ms", t.label,
                  (unsigned long long)(util_now_ms() - t0));
        ng = page_ids(doc, got, HTTP_LIST_MAX + 1);
        nw = sql_ids(db,
                     "SELECT id FROM Builds WHERE finished = 0 AND system = 'aarch64-linux' "
                     "AND id < $1 ORDER BY id DESC LIMIT 200",
                     DB_ARGS(DB_P_INT(N_BUILDS / 2)), want, HTTP_LIST_MAX + 1, e);
        CHECK_MSG(same(got, ng, want, nw) && ng == HTTP_LIST_MAX, "%s: deep queued page", t.label);
        json_decref(doc);

        /* a job substring; LIKE's wildcards are literal */
        f = (HttpBuildFilter){.finished = -1, .status = -1, .limit = 100, .job = "ob-4"};
        CHECK_OK(http__dash_builds(db, &f, &doc, e), e);
        ng = page_ids(doc, got, 101);
        nw = sql_ids(db,
                     "SELECT id FROM Builds WHERE job = 'job-4' OR job LIKE 'job-4_' "
                     "ORDER BY id DESC LIMIT 100",
                     NULL, 0, want, 101, e);
        CHECK_MSG(same(got, ng, want, nw) && ng == 100, "%s: job substring", t.label);
        json_decref(doc);
        {
            const char *wild[] = {"%", "_", "job_4", "job-%", "\\"};
            for (size_t k = 0; k < UTIL_ARRAY_LEN(wild); k++) {
                f.job = wild[k];
                CHECK_OK(http__dash_builds(db, &f, &doc, e), e);
                CHECK_MSG(page_ids(doc, got, 1) == 0, "%s: job '%s' matched", t.label, wild[k]);
                json_decref(doc);
            }
        }
        f = (HttpBuildFilter){
            .finished = -1, .status = -1, .limit = 10, .project = "p", .jobset = "nope"};
        CHECK_OK(http__dash_builds(db, &f, &doc, e), e);
        CHECK_INT(page_ids(doc, got, 1), 0);
        CHECK(json_is_null(json_object_get(doc, "next")));
        json_decref(doc);

        /* running: builds with a busy step */
        CHECK_OK(
            db_exec(db,
                    "INSERT INTO BuildSteps (build, stepnr, type, drvPath, busy, system) "
                    "VALUES ($1, 1, 0, 'x', 30, 'x86_64-linux'), "
                    "($2, 1, 0, 'y', 10, 'aarch64-linux'), ($2, 2, 0, 'z', 30, 'x86_64-linux')",
                    DB_ARGS(DB_P_INT(7), DB_P_INT(N_BUILDS - 1)), e),
            e);
        f = (HttpBuildFilter){.finished = -1, .status = -1, .running = 1, .limit = 50};
        CHECK_OK(http__dash_builds(db, &f, &doc, e), e);
        ng = page_ids(doc, got, 3);
        CHECK_INT(ng, 2);
        CHECK_INT(got[0], N_BUILDS - 1);
        CHECK_INT(got[1], 7);
        CHECK_INT(json_integer_value(json_object_get(
                      json_array_get(json_object_get(doc, "builds"), 0), "busysteps")),
                  2);
        json_decref(doc);

        /* counts per system */
        CHECK_OK(http__dash_queue(db, &doc, e), e);
        {
            json_t *sys = json_object_get(doc, "systems");
            int64_t a = 0, x = 0;
            CHECK_INT(db_query_int64(db,
                                     "SELECT count(*) FROM Builds WHERE finished = 0 AND "
                                     "system = 'aarch64-linux'",
                                     NULL, 0, &a, e),
                      1);
            CHECK_INT(db_query_int64(db,
                                     "SELECT count(*) FROM Builds WHERE finished = 0 AND "
                                     "system = 'x86_64-linux'",
                                     NULL, 0, &x, e),
                      1);
            CHECK_INT(json_integer_value(
                          json_object_get(json_object_get(sys, "aarch64-linux"), "queuedBuilds")),
                      a);
            CHECK_INT(json_integer_value(
                          json_object_get(json_object_get(sys, "x86_64-linux"), "queuedBuilds")),
                      x);
            CHECK_INT(json_integer_value(json_object_get(doc, "queuedBuilds")), a + x);
            CHECK_INT(json_integer_value(
                          json_object_get(json_object_get(sys, "x86_64-linux"), "runningSteps")),
                      2);
            CHECK_INT(json_integer_value(
                          json_object_get(json_object_get(sys, "aarch64-linux"), "runningSteps")),
                      1);
        }
        json_decref(doc);
        db_close(db);
    }
}

TEST(http, dashboard, graph)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_NO_HYDRA)) {
        Db *db = NULL;
        Err err_ = {0}, *e = &err_;
        json_t *doc = NULL, *edges;
        int64_t js = 0, b1 = 0, b2 = 0;
        static const char dep[] = "/nix/store/00000000000000000000000000000001-dep.drv";
        static const char p[] = "/nix/store/00000000000000000000000000000002-top.drv";
        static const char pr[] = "/nix/store/00000000000000000000000000000003-top.drv";

        CHECK_OK(db_open(t.url, 0, &db, e), e);
        CHECK_OK(db_exec(db,
                         "INSERT INTO Users (userName, emailAddress, password) "
                         "VALUES ('t', '', '!')",
                         NULL, 0, e),
                 e);
        CHECK_OK(db_exec(db,
                         "INSERT INTO Projects (name, displayName, description, owner) "
                         "VALUES ('p', 'p', '', 't')",
                         NULL, 0, e),
                 e);
        CHECK_INT(db_query_int64(db,
                                 "INSERT INTO Jobsets (name, project, description, nixExprInput, "
                                 "nixExprPath, enabled, emailOverride) VALUES ('js', 'p', '', "
                                 "'x', 'x.nix', 0, '') RETURNING id",
                                 NULL, 0, &js, e),
                  1);
        CHECK_INT(db_query_int64(db,
                                 "INSERT INTO Builds (finished, timestamp, jobset_id, job, "
                                 "drvPath, system) VALUES (0, 1, $1, 'top', $2, 'x') RETURNING id",
                                 DB_ARGS(DB_P_INT(js), DB_P_TEXT(p)), &b1, e),
                  1);
        CHECK_INT(db_query_int64(db,
                                 "INSERT INTO Builds (finished, timestamp, jobset_id, job, "
                                 "drvPath, system) VALUES (0, 1, $1, 'big', $2, 'x') RETURNING id",
                                 DB_ARGS(DB_P_INT(js), DB_P_TEXT(p)), &b2, e),
                  1);
        /* dep built, P resolved to P', P' running (the drvs are not in the store: no
         * input edges, the resolution edge comes from the rows alone) */
        CHECK_OK(db_exec(db,
                         "INSERT INTO BuildSteps (build, stepnr, type, drvPath, busy, status, "
                         "resolvedDrvPath) VALUES ($1, 1, 0, $2, 0, 0, NULL), "
                         "($1, 2, 0, $3, 0, 13, $4), ($1, 3, 0, $5, 30, NULL, NULL)",
                         DB_ARGS(DB_P_INT(b1), DB_P_TEXT(dep), DB_P_TEXT(p),
                                 DB_P_TEXT(pr + strlen("/nix/store/")), DB_P_TEXT(pr)),
                         e),
                 e);
        CHECK_INT(http__dash_graph(db, b1, &doc, e), 1);
        CHECK_INT(json_array_size(json_object_get(doc, "nodes")), 3);
        edges = json_object_get(doc, "edges");
        CHECK_INT(json_array_size(edges), 1);
        CHECK_INT(json_integer_value(json_object_get(json_array_get(edges, 0), "from")), 2);
        CHECK_INT(json_integer_value(json_object_get(json_array_get(edges, 0), "to")), 3);
        CHECK_STR(json_string_value(json_object_get(json_array_get(edges, 0), "kind")), "resolved");
        CHECK(json_is_null(
            json_object_get(json_array_get(json_object_get(doc, "nodes"), 2), "status")));
        /* the names the dashboard shows, as /build/ID's steps have them */
        {
            static const char *const status_names[] = {"succeeded", "resolved", "running"};
            static const char *const busy_names[] = {"", "", "building"};
            json_t *nodes = json_object_get(doc, "nodes");
            for (size_t i = 0; i < 3; i++) {
                json_t *node = json_array_get(nodes, i);
                CHECK_STR(json_string_value(json_object_get(node, "statusName")), status_names[i]);
                CHECK_STR(json_string_value(json_object_get(node, "busyName")), busy_names[i]);
            }
        }
        json_decref(doc);

        /* unknown build */
        doc = NULL;
        CHECK_INT(http__dash_graph(db, 999999, &doc, e), 0);
        CHECK(doc == NULL);

        /* more steps than the graph draws: nodes only, truncated */
        CHECK_OK(
            db_exec(db,
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                    "WHERE i < $2) INSERT INTO BuildSteps (build, stepnr, type, drvPath, busy, "
                    "status) SELECT $1, i, 0, $3, 0, 0 FROM n",
                    DB_ARGS(DB_P_INT(b2), DB_P_INT(HTTP_GRAPH_STEPS_MAX + 5), DB_P_TEXT(dep)), e),
            e);
        CHECK_INT(http__dash_graph(db, b2, &doc, e), 1);
        CHECK_INT(json_array_size(json_object_get(doc, "nodes")), HTTP_GRAPH_STEPS_MAX);
        CHECK(json_is_true(json_object_get(doc, "truncated")));
        CHECK_INT(json_array_size(json_object_get(doc, "edges")), 0);
        json_decref(doc);
        db_close(db);
    }
}
