/* tests/runner/rtest.c: helpers of the runner's unit tests (rtest.h). */
#include <stdio.h>
#include <stdlib.h>

#include "rtest.h"
#include "test.h"

Runner *rtest_runner_new(void)
{
    static char url[4096], state[4096];
    RunnerOptions o;
    Runner *r = NULL;
    Err e = {0};
    runner_options_defaults(&o);
    snprintf(url, sizeof url, "sqlite:%s/db/sluice.sqlite", test_tmpdir());
    snprintf(state, sizeof state, "%s/state", test_tmpdir());
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

Build *rtest_build(Runner *r, int64_t id, Step *top)
{
    char k[32];
    Build *b = xcalloc(1, sizeof *b);
    b->id = id;
    b->drv_path = xstrdup(top->drv_path);
    b->job = xstrdup("job");
    snprintf(k, sizeof k, "%lld", (long long)id);
    map_put(r->builds, k, b);
    graph_build_attach(r, b, top);
    return b;
}
