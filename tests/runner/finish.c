/* tests/runner/finish.c: failing a step that is not running (src/runner/finish.c). */
#include <stdlib.h>

#include "rtest.h"
#include "runner/exec.h"
#include "runner/fail.h"
#include "runner/finish.h"
#include "runner/graph.h"
#include "runner/lock.h"
#include "runner/rdb.h"
#include "runner/record.h"
#include "test.h"

/* Without a database connection the step waits for a retry; it is not left marked as
 * running (with its builds queued) for good. */
TEST(runner, finish, fail_without_db_connection_retries)
{
    Runner *r = rtest_runner_new();
    Step *s;
    CHECK(r);
    runner__lock(r);
    s = runner__graph_step_new(r, rtest_drv(1), "x86_64-linux", "", 0, 0);
    rtest_build(r, 1, s);
    runner__graph_step_ready(r, s);
    CHECK_INT(s->state, STEP_RUNNABLE);
    runner__unlock(r);
    /* a database that cannot be opened (its directory would be under a file) */
    r->opt.db_url = "sqlite:/dev/null/x/sluice.sqlite";
    runner__fail_step(r, NULL, rtest_drv(1), 9, "unsupported system type", 0);
    runner__lock(r);
    s = runner__graph_step_get(r, rtest_drv(1));
    CHECK(s);
    CHECK_INT(s->state, STEP_RETRY_WAIT);
    CHECK(ptrvec_contains(&r->g.retry_wait, s));
    CHECK_INT(map_size(r->g.builds), 1);
    runner__unlock(r);
    runner_free(r);
}

/* A step whose result cannot be written (the database refuses every write of the
 * finishing transaction) waits for a retry, and its busy row is marked once the
 * database takes writes again: no row is left shown as building. */
TEST(runner, finish, unrecorded_result_leaves_no_busy_row)
{
    Runner *r = rtest_runner_new();
    Err err_ = {0}, *e = &err_;
    RdbStepRow row = {0};
    Worker *w;
    Step *s;
    Outcome o = {0};
    int32_t nr = 0;
    int64_t build = 0, busy = -1;
    CHECK(r);
    build = rtest_db_build(r, rtest_drv(3), e);
    CHECK(build > 0);
    /* the running step's busy row, as start_tx writes it */
    row.build = build;
    row.drv_path = rtest_drv(3);
    row.busy = 30;
    row.start_time = 1;
    row.system = "x86_64-linux";
    row.status = -1;
    row.machine = "";
    CHECK_OK(runner__rdb_insert_step(r->db, &row, &nr, e), e);
    runner__lock(r);
    s = runner__graph_step_new(r, rtest_drv(3), "x86_64-linux", "", 0, 0);
    rtest_build(r, build, s);
    w = rtest_running(r, s, build);
    w->stepnr = nr;
    runner__unlock(r);
    /* the database refuses to finish the row */
    CHECK_OK(db_exec(r->db,
                     "CREATE TRIGGER refuse BEFORE UPDATE ON BuildSteps BEGIN "
                     "SELECT RAISE(ABORT, 'the database is down'); END",
                     NULL, 0, e),
             e);
    o.status = 1;
    o.can_cache = 1;
    o.blame = BLAME_STEP;
    runner__outcome_set_msg(&o, "builder failed");
    o.start = 2;
    o.stop = 3;
    runner__step_finished(r, r->db, w, &o);
    runner__lock(r);
    CHECK_INT(s->state, STEP_RETRY_WAIT);
    runner__unlock(r);
    /* the database is back */
    CHECK_OK(db_exec(r->db, "DROP TRIGGER refuse", NULL, 0, e), e);
    runner__mark_unrecorded(r, r->db);
    CHECK_OK(db_query_int64(r->db, "SELECT busy FROM BuildSteps WHERE build = $1 AND stepnr = $2",
                            DB_ARGS(DB_P_INT(build), DB_P_INT(nr)), &busy, e),
             e);
    CHECK_INT(busy, 0);
    CHECK_OK(db_query_int64(r->db, "SELECT status FROM BuildSteps WHERE build = $1 AND stepnr = $2",
                            DB_ARGS(DB_P_INT(build), DB_P_INT(nr)), &busy, e),
             e);
    CHECK_INT(busy, 3);
    runner__outcome_dispose(&o);
    runner__worker_free(w);
    runner_free(r);
}

/* A worker that could not get a database connection at all (the step never started)
 * reports its failure without one: the step waits for a retry, nothing is written and
 * nothing crashes. */
TEST(runner, finish, result_without_db_connection_retries)
{
    Runner *r = rtest_runner_new();
    Worker *w;
    Step *s;
    Outcome o = {0};
    CHECK(r);
    runner__lock(r);
    s = runner__graph_step_new(r, rtest_drv(4), "x86_64-linux", "", 0, 0);
    rtest_build(r, 1, s);
    w = rtest_running(r, s, 1);
    runner__unlock(r);
    /* a database that cannot be opened (its directory would be under a file) */
    r->opt.db_url = "sqlite:/dev/null/x/sluice.sqlite";
    o.status = 3;
    o.can_retry = 1;
    o.blame = BLAME_NOBODY;
    runner__outcome_set_msg(&o, "no database connection");
    runner__step_finished(r, NULL, w, &o);
    runner__lock(r);
    CHECK_INT(s->state, STEP_RETRY_WAIT);
    CHECK(!ptrvec_contains(&r->workers, w));
    runner__unlock(r);
    runner__outcome_dispose(&o);
    runner__worker_free(w);
    runner_free(r);
}
