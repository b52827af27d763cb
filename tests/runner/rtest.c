/* tests/runner/rtest.c: helpers of the runner's unit tests (rtest.h). */
#include <stdio.h>
#include <stdlib.h>

#include "rtest.h"
#include "runner/graph.h"
#include "test.h"

Runner *rtest_runner_new(void)
{
    /* the Runner borrows these strings, and a worker thread of one test may read them
     * after the next test began: each runner gets its own (tests make only a few) */
    static char urls[64][4096], states[64][4096];
    static int next;
    char *url = urls[next % 64], *state = states[next % 64];
    RunnerOptions o;
    next++;
    Runner *r = NULL;
    Err e = {0};
    runner_options_defaults(&o);
    snprintf(url, sizeof urls[0], "sqlite:%s/db/sluice.sqlite", test_tmpdir());
    snprintf(state, sizeof states[0], "%s/state", test_tmpdir());
    o.db_url = url;
    o.state_dir = state;
    o.log_dir = state;
    if (runner_new(&o, &r, &e) < 0) {
        test_fail(__FILE__, __LINE__, "runner_new: %s", e.msg);
        return NULL;
    }
    return r;
}

const char *rtest_drv(int i)
{
    static char buf[8][128];
    char *p = buf[i & 7];
    snprintf(p, sizeof buf[0], NIX_STORE_DIR "/%032d-s%d.drv", 0, i);
    return p;
}

Worker *rtest_running(Runner *r, Step *s, int64_t build)
{
    Worker *w = xcalloc(1, sizeof *w);
    s->state = STEP_RUNNING;
    s->machine = &r->no_machine;
    r->running++;
    w->r = r;
    w->step = s;
    w->machine = &r->no_machine;
    w->drv_path = xstrdup(s->drv_path);
    w->system = xstrdup(s->system);
    w->build_id = build;
    strvec_init(&w->resolved_from);
    pthread_mutex_init(&w->conn_lock, NULL);
    s->worker = w;
    ptrvec_push(&r->workers, w);
    return w;
}

Build *rtest_build(Runner *r, int64_t id, Step *top)
{
    char k[32];
    Build *b = xcalloc(1, sizeof *b);
    b->id = id;
    b->drv_path = xstrdup(top->drv_path);
    b->job = xstrdup("job");
    snprintf(k, sizeof k, "%lld", (long long)id);
    map_put(r->g.builds, k, b);
    runner__graph_build_attach(r, b, top);
    return b;
}

int64_t rtest_db_build(Runner *r, const char *drv, Err *e)
{
    int64_t jobset = 0, build = 0;
    if (db_query_int64(r->db, "SELECT id FROM Jobsets WHERE name = 'j'", NULL, 0, &jobset, e) ==
        0) {
        if (db_exec(r->db,
                    "INSERT INTO Users (userName, emailAddress, password) VALUES ('u', '', '!')",
                    NULL, 0, e) < 0 ||
            db_exec(r->db, "INSERT INTO Projects (name, displayName, owner) VALUES ('p', 'P', 'u')",
                    NULL, 0, e) < 0 ||
            db_query_int64(r->db,
                           "INSERT INTO Jobsets (name, project, nixExprInput, nixExprPath, "
                           "emailOverride) VALUES ('j', 'p', 'src', 'x.nix', '') RETURNING id",
                           NULL, 0, &jobset, e) < 0)
            return -1;
    }
    if (db_query_int64(r->db,
                       "INSERT INTO Builds (finished, timestamp, jobset_id, job, drvPath, system) "
                       "VALUES (0, 1, $1, 'job', $2, 'x86_64-linux') RETURNING id",
                       DB_ARGS(DB_P_INT(jobset), DB_P_TEXT(drv)), &build, e) < 0)
        return -1;
    return build;
}
