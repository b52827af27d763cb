/* Tests of src/db/events.c: notifications on every backend: delivered at commit only,
 * Hydra's trigger channels, build_finished splitting, another process's notification
 * on SQLite, interrupting a wait, re-listening after a reconnect. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db/db_int.h"
#include "dbtest.h"
#include "test.h"

static const char *const all_channels[] = {
    DB_CH_BUILDS_ADDED,  DB_CH_BUILDS_RESTARTED,      DB_CH_BUILDS_CANCELLED, DB_CH_BUILDS_DELETED,
    DB_CH_BUILDS_BUMPED, DB_CH_JOBSET_SHARES_CHANGED, DB_CH_BUILD_FINISHED,
};

/* Wait for one event; fills ch/payload ("" on timeout). */
static int next_event(Db *db, int ms, char *ch, size_t chsize, char **payload, Err *e)
{
    DbEvent ev;
    int rc = db_wait_event(db, ms, &ev, e);
    ch[0] = '\0';
    if (payload)
        *payload = NULL;
    if (rc == 1) {
        snprintf(ch, chsize, "%s", ev.channel);
        if (payload)
            *payload = xstrdup(ev.payload);
    }
    return rc;
}

typedef struct NotifyCtx {
    const char *payload;
    int fail;
} NotifyCtx;

static int notify_body(Db *db, void *payload, Err *e)
{
    NotifyCtx *c = payload;
    int rc = db_notify(db, DB_CH_BUILDS_ADDED, c->payload, e);
    if (rc < 0)
        return rc;
    if (c->fail)
        return err_set(e, ERR_INVALID, "roll back");
    return 0;
}

TEST(db, events, notify_delivered_at_commit_only)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_NO_HYDRA)) {
        Db *w = NULL, *l = NULL;
        Err err = {0}, *e = &err;
        char ch[DB_CHANNEL_MAX];
        char *p = NULL;
        NotifyCtx no = {"rolled back", 1}, yes = {"42", 0};
        uint64_t t0;
        CHECK_OK(db_open(t.url, 0, &w, e), e);
        CHECK_OK(db_open(t.url, 0, &l, e), e);
        CHECK_OK(db_listen(l, all_channels, UTIL_ARRAY_LEN(all_channels), e), e);
        CHECK_INT(next_event(l, 0, ch, sizeof ch, NULL, e), 0);
        CHECK_INT(db_tx(w, notify_body, &no, e), ERR_INVALID);
        CHECK_INT(next_event(l, 300, ch, sizeof ch, NULL, e), 0);
        CHECK_OK(db_tx(w, notify_body, &yes, e), e);
        t0 = util_now_ms();
        CHECK_INT(next_event(l, 5000, ch, sizeof ch, &p, e), 1);
        CHECK_MSG(util_now_ms() - t0 < 1000, "%s: event took %llu ms", t.label,
                  (unsigned long long)(util_now_ms() - t0));
        CHECK_STR(ch, DB_CH_BUILDS_ADDED);
        CHECK_STR(p, "42");
        free(p);
        /* outside a transaction too; an unlistened channel is not delivered */
        CHECK_OK(db_notify(w, "step_started", "1\t1", e), e);
        CHECK_OK(db_notify(w, DB_CH_BUILDS_BUMPED, "", e), e);
        CHECK_INT(next_event(l, 5000, ch, sizeof ch, &p, e), 1);
        CHECK_STR(ch, DB_CH_BUILDS_BUMPED);
        CHECK_STR(p, "");
        free(p);
        CHECK_INT(next_event(l, 200, ch, sizeof ch, NULL, e), 0);
        /* bad channel names and payloads */
        CHECK_INT(db_notify(w, "x; drop table Builds", "", e), ERR_INVALID);
        {
            char *big = xmalloc(DB_NOTIFY_PAYLOAD_MAX + 2);
            memset(big, 'a', DB_NOTIFY_PAYLOAD_MAX + 1);
            big[DB_NOTIFY_PAYLOAD_MAX + 1] = '\0';
            CHECK_INT(db_notify(w, DB_CH_BUILDS_ADDED, big, e), ERR_TOOBIG);
            free(big);
        }
        db_close(w);
        db_close(l);
    }
}

/* Hydra's triggers (or sluice's SQLite equivalents) send the runner's channels. */
TEST(db, events, triggers_send_hydra_channels)
{
    DbTest t = {0};
    while (dbtest_next(&t, 0)) {
        Db *w = NULL, *l = NULL;
        Err err = {0}, *e = &err;
        char ch[DB_CHANNEL_MAX];
        int64_t jobset = 0, build = 0;
        CHECK_OK(db_open(t.url, 0, &w, e), e);
        CHECK_OK(db_open(t.url, 0, &l, e), e);
        CHECK_OK(db_listen(l, all_channels, UTIL_ARRAY_LEN(all_channels), e), e);
        CHECK_OK(db_exec(w,
                         "INSERT INTO Users (userName, emailAddress, password) VALUES ('u', '', "
                         "'!')",
                         NULL, 0, e),
                 e);
        CHECK_OK(db_exec(w,
                         "INSERT INTO Projects (name, displayName, owner) VALUES ('p', 'P', 'u')",
                         NULL, 0, e),
                 e);
        CHECK_INT(
            db_query_int64(w,
                           "INSERT INTO Jobsets (name, project, nixExprInput, nixExprPath, "
                           "emailOverride) VALUES ('j', 'p', 'src', 'x.nix', '') RETURNING id",
                           NULL, 0, &jobset, e),
            1);
        CHECK_INT(
            db_query_int64(w,
                           "INSERT INTO Builds (finished, timestamp, jobset_id, job, drvPath, "
                           "system) VALUES (0, 1, $1, 'job', '/nix/store/x.drv', 'x86_64-linux') "
                           "RETURNING id",
                           DB_ARGS(DB_P_INT(jobset)), &build, e),
            1);
        CHECK_INT(next_event(l, 300, ch, sizeof ch, NULL, e), 0); /* inserts: nothing listened */
        CHECK_INT(db_exec(w, "UPDATE Builds SET globalPriority = 5 WHERE id = $1",
                          DB_ARGS(DB_P_INT(build)), e),
                  1);
        CHECK_INT(next_event(l, 5000, ch, sizeof ch, NULL, e), 1);
        CHECK_STR(ch, DB_CH_BUILDS_BUMPED);
        CHECK_INT(db_exec(w,
                          "UPDATE Builds SET finished = 1, buildStatus = 4, startTime = 1, "
                          "stopTime = 1 WHERE id = $1",
                          DB_ARGS(DB_P_INT(build)), e),
                  1);
        CHECK_INT(next_event(l, 5000, ch, sizeof ch, NULL, e), 1);
        CHECK_STR(ch, DB_CH_BUILDS_CANCELLED);
        CHECK_INT(
            db_exec(w, "UPDATE Builds SET finished = 0 WHERE id = $1", DB_ARGS(DB_P_INT(build)), e),
            1);
        CHECK_INT(next_event(l, 5000, ch, sizeof ch, NULL, e), 1);
        CHECK_STR(ch, DB_CH_BUILDS_RESTARTED);
        CHECK_INT(db_exec(w, "UPDATE Jobsets SET schedulingShares = 7 WHERE id = $1",
                          DB_ARGS(DB_P_INT(jobset)), e),
                  1);
        CHECK_INT(next_event(l, 5000, ch, sizeof ch, NULL, e), 1);
        CHECK_STR(ch, DB_CH_JOBSET_SHARES_CHANGED);
        CHECK_INT(db_exec(w, "DELETE FROM Builds WHERE id = $1", DB_ARGS(DB_P_INT(build)), e), 1);
        CHECK_INT(next_event(l, 5000, ch, sizeof ch, NULL, e), 1);
        CHECK_STR(ch, DB_CH_BUILDS_DELETED);
        /* an update that changes none of the watched columns sends nothing */
        CHECK_INT(db_exec(w, "UPDATE Jobsets SET description = 'd' WHERE id = $1",
                          DB_ARGS(DB_P_INT(jobset)), e),
                  1);
        CHECK_INT(next_event(l, 300, ch, sizeof ch, NULL, e), 0);
        db_close(w);
        db_close(l);
    }
}

typedef struct BfCtx {
    int64_t *deps;
    size_t n;
} BfCtx;

static int bf_body(Db *db, void *payload, Err *e)
{
    BfCtx *c = payload;
    return db_notify_build_finished(db, 123456, c->deps, c->n, e);
}

TEST(db, events, build_finished_is_split_like_hydra)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_NO_HYDRA)) {
        Db *w = NULL, *l = NULL;
        Err err = {0}, *e = &err;
        const char *ch1[] = {DB_CH_BUILD_FINISHED};
        BfCtx c;
        size_t seen = 0, parts = 0;
        char ch[DB_CHANNEL_MAX];
        char *p = NULL;
        c.n = 3000;
        c.deps = xcalloc(c.n, sizeof *c.deps);
        for (size_t i = 0; i < c.n; i++)
            c.deps[i] = 1000000 + (int64_t)i;
        CHECK_OK(db_open(t.url, 0, &w, e), e);
        CHECK_OK(db_open(t.url, 0, &l, e), e);
        CHECK_OK(db_listen(l, ch1, 1, e), e);
        CHECK_OK(db_tx(w, bf_body, &c, e), e);
        while (seen < c.n) {
            char *save = NULL, *tok;
            CHECK_INT(next_event(l, 5000, ch, sizeof ch, &p, e), 1);
            CHECK_STR(ch, DB_CH_BUILD_FINISHED);
            CHECK_MSG(strlen(p) <= DB_NOTIFY_PAYLOAD_MAX, "payload of %zu bytes", strlen(p));
            tok = strtok_r(p, "\t", &save);
            CHECK_STR(tok, "123456");
            while ((tok = strtok_r(NULL, "\t", &save)) != NULL) {
                char want[32];
                snprintf(want, sizeof want, "%lld", (long long)c.deps[seen]);
                CHECK_STR(tok, want);
                seen++;
            }
            parts++;
            free(p);
        }
        CHECK_INT(parts, 4); /* 3000 x 8 bytes over 7000-byte payloads */
        /* no deps: just the id */
        c.n = 0;
        CHECK_OK(db_tx(w, bf_body, &c, e), e);
        CHECK_INT(next_event(l, 5000, ch, sizeof ch, &p, e), 1);
        CHECK_STR(p, "123456");
        free(p);
        free(c.deps);
        db_close(w);
        db_close(l);
    }
}

/* `sluice submit` in another process while the runner waits: noticed within a second. */
TEST(db, events, other_process_notification)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_NO_HYDRA)) {
        Db *l = NULL;
        Err err = {0}, *e = &err;
        char ch[DB_CHANNEL_MAX];
        char *p = NULL;
        pid_t pid;
        int status = 0;
        uint64_t t0;
        CHECK_OK(db_open(t.url, 0, &l, e), e);
        CHECK_OK(db_listen(l, all_channels, UTIL_ARRAY_LEN(all_channels), e), e);
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
            Db *w = NULL;
            Err ce = {0};
            usleep(300 * 1000);
            if (db_open(t.url, 0, &w, &ce) < 0 || db_notify(w, DB_CH_BUILDS_ADDED, "7", &ce) < 0)
                _exit(1);
            db_close(w);
            _exit(0);
        }
        t0 = util_now_ms();
        CHECK_INT(next_event(l, 10000, ch, sizeof ch, &p, e), 1);
        CHECK_STR(ch, DB_CH_BUILDS_ADDED);
        CHECK_STR(p, "7");
        free(p);
        CHECK_MSG(util_now_ms() - t0 < 1300, "%s: took %llu ms", t.label,
                  (unsigned long long)(util_now_ms() - t0));
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        db_close(l);
    }
}

static void *interrupter(void *arg)
{
    usleep(200 * 1000);
    db_interrupt(arg);
    return NULL;
}

TEST(db, events, interrupt_ends_a_wait)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_NO_HYDRA)) {
        Db *l = NULL;
        Err err = {0}, *e = &err;
        DbEvent ev;
        pthread_t th;
        uint64_t t0;
        CHECK_OK(db_open(t.url, 0, &l, e), e);
        CHECK_OK(db_listen(l, all_channels, 1, e), e);
        t0 = util_now_ms();
        pthread_create(&th, NULL, interrupter, l);
        CHECK_INT(db_wait_event(l, -1, &ev, e), 0);
        pthread_join(th, NULL);
        CHECK_MSG(util_now_ms() - t0 < 2000, "%s: interrupt took %llu ms", t.label,
                  (unsigned long long)(util_now_ms() - t0));
        db_close(l);
    }
}

TEST(db, events, relisten_after_reconnect)
{
    DbTest t = {0};
    while (dbtest_next(&t, DBTEST_NO_HYDRA)) {
        Db *w = NULL, *l = NULL;
        Err err = {0}, *e = &err;
        char ch[DB_CHANNEL_MAX], sql[96];
        int64_t pid = 0;
        if (t.kind != DB_POSTGRES)
            continue;
        CHECK_OK(db_open(t.url, 0, &w, e), e);
        CHECK_OK(db_open(t.url, 0, &l, e), e);
        CHECK_OK(db_listen(l, all_channels, UTIL_ARRAY_LEN(all_channels), e), e);
        CHECK_INT(db_query_int64(l, "SELECT pg_backend_pid()", NULL, 0, &pid, e), 1);
        snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", (long long)pid);
        CHECK_OK(dbtest_pg_admin(sql), e);
        CHECK_INT(next_event(l, 5000, ch, sizeof ch, NULL, e), 1);
        CHECK_STR(ch, DB_CH_RECONNECTED);
        CHECK_OK(db_notify(w, DB_CH_BUILDS_DELETED, "", e), e);
        CHECK_INT(next_event(l, 5000, ch, sizeof ch, NULL, e), 1);
        CHECK_STR(ch, DB_CH_BUILDS_DELETED);
        db_close(w);
        db_close(l);
    }
}
