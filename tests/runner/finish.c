/* tests/runner/finish.c: failing a step that is not running (src/runner/finish.c). */
#include <stdlib.h>

#include "rtest.h"
#include "test.h"

/* Without a database connection the step waits for a retry; it is not left marked as
 * running (with its builds queued) for good. */
TEST(runner, finish, fail_without_db_connection_retries)
{
    Runner *r = rtest_runner_new();
    Step *s;
    CHECK(r);
    pthread_mutex_lock(&r->lock);
    s = graph_step_new(r, rtest_drv(1), "x86_64-linux", "", 0, 0);
    rtest_build(r, 1, s);
    graph_step_ready(r, s);
    CHECK_INT(s->state, STEP_RUNNABLE);
    pthread_mutex_unlock(&r->lock);
    /* a database that cannot be opened (its directory would be under a file) */
    r->opt.db_url = "sqlite:/dev/null/x/sluice.sqlite";
    runner_fail_unresolvable(r, NULL, rtest_drv(1), 9, "unsupported system type");
    pthread_mutex_lock(&r->lock);
    s = graph_step_get(r, rtest_drv(1));
    CHECK(s);
    CHECK_INT(s->state, STEP_RETRY_WAIT);
    CHECK(ptrvec_contains(&r->retry_wait, s));
    CHECK_INT(map_size(r->builds), 1);
    pthread_mutex_unlock(&r->lock);
    runner_free(r);
}
