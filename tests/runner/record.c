/* tests/runner/record.c: the record layer's transactions (src/runner/record.c) on a
 * scratch SQLite database. */
#include <stdlib.h>

#include "rtest.h"
#include "runner/rdb.h"
#include "runner/record.h"
#include "test.h"

/* A row of build for drv: status 13 pointing at resolved_base, or a type-1 success. */
static int step_row(Runner *r, int64_t build, const char *drv, int status,
                    const char *resolved_base, char *const *names, char *const *paths, Err *e)
{
    RdbStepRow row = {0};
    int32_t nr;
    row.build = build;
    row.type = status == DB_STATUS_RESOLVED ? DB_STEP_BUILD : DB_STEP_SUBSTITUTION;
    row.drv_path = drv;
    row.start_time = row.stop_time = 1;
    row.system = "x86_64-linux";
    row.status = status;
    row.machine = "";
    row.resolved_drv_path = resolved_base;
    row.out_names = names;
    row.out_paths = paths;
    row.n_outputs = names ? 1 : 0;
    return runner__rdb_insert_step(r->db, &row, &nr, e);
}

/* P' built for build A: every other build holding a status-13 row pointing at P' gets
 * its type-1 row for P', also when a build before it in the list has one already (a
 * pass after a restart); none gets a second one. */
TEST(runner, record, success_rows_for_every_build_resolving_to_it)
{
    Runner *r = rtest_runner_new();
    Err err_ = {0}, *e = &err_;
    char *names[] = {"out"};
    char *paths[] = {NIX_STORE_DIR "/00000000000000000000000000000000-out"};
    const char *p = rtest_drv(5), *p2 = rtest_drv(6);
    const char *p2_base = nix_store_path_base(p2);
    int64_t a, b, c, n = -1;
    Worker w = {0};
    FinishTx t = {0};
    int64_t finished[4];
    CHECK(r);
    a = rtest_db_build(r, p, e);
    b = rtest_db_build(r, p, e);
    c = rtest_db_build(r, p, e);
    CHECK(a > 0 && b > a && c > b);
    CHECK_OK(step_row(r, a, p, DB_STATUS_RESOLVED, p2_base, NULL, NULL, e), e);
    CHECK_OK(step_row(r, b, p, DB_STATUS_RESOLVED, p2_base, NULL, NULL, e), e);
    CHECK_OK(step_row(r, c, p, DB_STATUS_RESOLVED, p2_base, NULL, NULL, e), e);
    /* b recorded P''s outputs before (an earlier pass) */
    CHECK_OK(step_row(r, b, p2, DB_STATUS_SUCCESS, NULL, names, paths, e), e);
    w.r = r;
    w.drv_path = (char *)p2;
    w.system = "x86_64-linux";
    w.machine = &r->no_machine;
    w.build_id = a;
    t.w = &w;
    t.out_names = names;
    t.out_paths = paths;
    t.n_outputs = 1;
    t.facts = &(OutputFacts){0};
    t.start = 1;
    t.stop = 2;
    t.resolved_base = p2_base;
    t.finished = finished;
    CHECK_OK(runner__record_success(r->db, &t, e), e);
    CHECK_OK(db_query_int64(r->db,
                            "SELECT count(*) FROM BuildSteps WHERE build = $1 AND drvPath = $2 "
                            "AND type = 1 AND status = 0",
                            DB_ARGS(DB_P_INT(c), DB_P_TEXT(p2)), &n, e),
             e);
    CHECK_INT(n, 1);
    CHECK_OK(db_query_int64(r->db,
                            "SELECT count(*) FROM BuildSteps WHERE build = $1 AND drvPath = $2 "
                            "AND status = 0",
                            DB_ARGS(DB_P_INT(b), DB_P_TEXT(p2)), &n, e),
             e);
    CHECK_INT(n, 1);
    runner_free(r);
}
