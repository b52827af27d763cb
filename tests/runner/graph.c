/* tests/runner/graph.c: the step graph (src/runner/graph.c) without Nix: dependent
 * builds and failure propagation keep the rest of the graph consistent. */
#include "rtest.h"
#include "runner/graph.h"
#include "runner/lock.h"
#include "runner/step.h"
#include "test.h"

/*   d (build 1)     e (build 2)
 *   / \               |
 *  b   c              |
 *  |\ /               |
 *  | a                |
 *  x -----------------+     a fails: a b c d go, x and e stay (x's rdeps: e only) */
TEST(runner, graph, fail_with_rdeps_keeps_the_rest)
{
    Runner *r = rtest_runner_new();
    Step *a, *b, *c, *d, *e, *x;
    PtrVec deps = {0};
    CHECK(r);
    runner__lock(r);
    a = runner__graph_step_new(r, rtest_drv(1), "x86_64-linux", "", 0, 0);
    b = runner__graph_step_new(r, rtest_drv(2), "x86_64-linux", "", 0, 0);
    c = runner__graph_step_new(r, rtest_drv(3), "x86_64-linux", "", 0, 0);
    d = runner__graph_step_new(r, rtest_drv(4), "x86_64-linux", "", 0, 0);
    e = runner__graph_step_new(r, rtest_drv(5), "x86_64-linux", "", 0, 0);
    x = runner__graph_step_new(r, rtest_drv(6), "x86_64-linux", "", 0, 0);
    runner__graph_add_dep(r, b, a);
    runner__graph_add_dep(r, c, a);
    runner__graph_add_dep(r, b, x);
    runner__graph_add_dep(r, d, b);
    runner__graph_add_dep(r, d, c);
    runner__graph_add_dep(r, e, x);
    rtest_build(r, 1, d);
    rtest_build(r, 2, e);
    runner__graph_step_ready(r, a);
    runner__graph_step_ready(r, x);
    CHECK_INT(x->rdeps.n, 2);

    /* each dependent build once, though d is reached twice */
    runner__graph_dependent_builds(r, a, &deps);
    CHECK_INT(deps.n, 1);
    CHECK_INT(((Build *)deps.v[0])->id, 1);
    ptrvec_dispose(&deps);
    runner__graph_dependent_builds(r, x, &deps);
    CHECK_INT(deps.n, 2);
    ptrvec_dispose(&deps);

    runner__graph_fail_with_rdeps(r, a);
    CHECK_INT(map_size(r->g.steps), 2);
    CHECK(runner__graph_step_get(r, rtest_drv(5)) == e);
    CHECK(runner__graph_step_get(r, rtest_drv(6)) == x);
    CHECK_INT(x->rdeps.n, 1);
    CHECK(x->rdeps.v[0] == e);
    CHECK_INT(e->n_deps_left, 1);
    CHECK_INT(map_size(r->g.builds), 1);
    CHECK(runner__graph_build_get(r, 2) && runner__graph_build_get(r, 2)->toplevel == e);
    CHECK(!runner__graph_build_get(r, 1));
    /* x is still runnable in its queue, and only x */
    CHECK_INT(x->state, STEP_RUNNABLE);
    CHECK(x->queue && x->queue->n == 1);

    /* x dispatched and done: e becomes runnable */
    runner__step_move(r, x, STEP_RUNNING);
    CHECK(!x->queue);
    runner__graph_step_done(r, x, NULL);
    runner__graph_step_forget(r, x);
    CHECK_INT(e->n_deps_left, 0);
    CHECK_INT(e->state, STEP_RUNNABLE);
    runner__unlock(r);
    runner_free(r);
}
