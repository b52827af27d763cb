/* tests/runner/runner.c: the runner's life (src/runner/runner.c): jobset shares loaded
 * while the dispatcher reads them, shutdown while a worker thread outlives the wait. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "rtest.h"
#include "runner/exec.h"
#include "runner/graph.h"
#include "runner/lock.h"
#include "runner/monitor.h"
#include "runner/queue.h"
#include "test.h"

#define N_JOBSETS 4000

typedef struct Reader {
    Runner *r;
    atomic_int stop;
    double sum;
} Reader;

/* what a dispatch round does: the share used of jobsets, under the graph lock */
static void *share_reader(void *arg)
{
    Reader *rd = arg;
    while (!atomic_load(&rd->stop)) {
        runner__lock(rd->r);
        for (int64_t id = 1; id <= N_JOBSETS; id += 7)
            rd->sum += runner__jobset_share_used(rd->r, id);
        runner__unlock(rd->r);
    }
    return NULL;
}

static int fill_jobsets(Db *db, Err *e)
{
    int rc = db_exec(db,
                     "INSERT INTO Users (userName, emailAddress, password) VALUES "
                     "('u', '', '!')",
                     NULL, 0, e);
    if (rc >= 0)
        rc = db_exec(db, "INSERT INTO Projects (name, displayName, owner) VALUES ('p', 'P', 'u')",
                     NULL, 0, e);
    if (rc >= 0)
        rc = db_exec(db, "BEGIN", NULL, 0, e);
    for (int i = 1; rc >= 0 && i <= N_JOBSETS; i++) {
        char name[32];
        snprintf(name, sizeof name, "j%d", i);
        rc = db_exec(db,
                     "INSERT INTO Jobsets (name, project, nixExprInput, nixExprPath, "
                     "emailOverride, schedulingShares) VALUES ($1, 'p', 'src', 'x.nix', '', $2)",
                     DB_ARGS(DB_P_TEXT(name), DB_P_INT(i)), e);
    }
    if (rc >= 0)
        rc = db_exec(db, "COMMIT", NULL, 0, e);
    return rc < 0 ? rc : 0;
}

/* Loading the shares replaces the jobset map under the lock, so a dispatch round
 * reading it at the same time never sees a map being filled (under ASan or TSan a
 * race shows as a report). */
TEST(runner, runner, jobsets_load_while_dispatcher_reads)
{
    Runner *r = rtest_runner_new();
    Reader rd = {0};
    pthread_t t;
    Err err_ = {0}, *e = &err_;
    CHECK(r);
    CHECK_OK(fill_jobsets(r->db, e), e);
    rd.r = r;
    pthread_create(&t, NULL, share_reader, &rd);
    for (int i = 0; i < 5; i++) {
        if (i % 2 == 0) {
            /* as after a restart: an empty map filled again */
            runner__lock(r);
            map_free(r->g.jobsets);
            r->g.jobsets = map_new(free);
            runner__unlock(r);
        }
        CHECK_OK(runner__load_jobsets(r, r->db, e), e);
    }
    atomic_store(&rd.stop, 1);
    pthread_join(t, NULL);
    runner__lock(r);
    CHECK_INT(map_size(r->g.jobsets), N_JOBSETS);
    CHECK_INT(((Jobset *)map_get(r->g.jobsets, "5"))->shares, 5);
    runner__unlock(r);
    runner_free(r);
}

/* A worker thread that outlives shutdown's wait still finds its Runner: runner_free
 * leaves the memory to the last worker (under ASan a use after free shows otherwise). */
TEST(runner, runner, free_while_a_worker_runs)
{
    Runner *r = rtest_runner_new();
    Worker *w;
    Step *s;
    Err err_ = {0}, *e = &err_;
    CHECK(r);
    runner__lock(r);
    s = runner__graph_step_new(r, rtest_drv(2), "x86_64-linux", "", 0, 0);
    rtest_build(r, 1, s);
    w = rtest_running(r, s, 1); /* dispatched, as dispatch_round does */
    runner__unlock(r);
    /* the worker's first move (a database connection) waits until the runner is freed */
    pthread_mutex_lock(&r->db_lock);
    CHECK_OK(runner__worker_start(r, w, e), e);
    usleep(100 * 1000);
    runner_free(r);
    pthread_mutex_unlock(&r->db_lock);
    /* the worker fails the step (its drv does not exist) and leaves */
    usleep(1000 * 1000);
}

/* A failed queue pass is tried again after 1 s, doubling per failure, at most a minute. */
TEST(runner, runner, pass_backoff)
{
    CHECK_INT(runner__pass_backoff_ms(1), 1000);
    CHECK_INT(runner__pass_backoff_ms(2), 2000);
    CHECK_INT(runner__pass_backoff_ms(3), 4000);
    CHECK_INT(runner__pass_backoff_ms(6), 32000);
    CHECK_INT(runner__pass_backoff_ms(7), 60000);
    CHECK_INT(runner__pass_backoff_ms(1000), 60000);
}
