/* tests/runner/step.c: the runner's core without Nix: the step state machine (every
 * legal and illegal move, container membership), the lock checks, queue order across
 * jobsets and priorities, the resolve queue's order, retry timing, machine matching and
 * the mapping of Nix's build results (src/runner/step.c, queue.c, finish.c,
 * machines.c, results.c). */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rtest.h"
#include "runner/finish.h"
#include "runner/graph.h"
#include "runner/lock.h"
#include "runner/machines.h"
#include "runner/queue.h"
#include "runner/record.h"
#include "runner/results.h"
#include "runner/step.h"
#include "store/store.h"
#include "test.h"

enum {
    W = STEP_WAITING,
    RS = STEP_RESOLVING,
    RB = STEP_RUNNABLE,
    RW = STEP_RETRY_WAIT,
    RN = STEP_RUNNING,
    DN = STEP_DONE,
    FL = STEP_FAILED,
    RD = STEP_RESOLVED,
    PN = STEP_PINNED,
    SB = STEP_SUBSTITUTING
};

/* The specification: the moves a step may make (any other aborts a debug build). */
static const int spec[][2] = {
    {W, RS},  {W, RB},  {W, RW},  {W, PN},  {W, FL},  {RS, W},  {RS, RB}, {RS, RW},
    {RS, PN}, {RS, DN}, {RS, FL}, {RS, RD}, {RB, W},  {RB, RN}, {RB, PN}, {RB, FL},
    {RW, W},  {RW, RS}, {RW, RB}, {RW, PN}, {RW, FL}, {RN, W},  {RN, RW}, {RN, DN},
    {RN, FL}, {PN, RW}, {PN, FL}, {W, SB},  {SB, W},  {SB, DN}, {SB, FL},
};

static int in_spec(int from, int to)
{
    for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++)
        if (spec[i][0] == from && spec[i][1] == to)
            return 1;
    return 0;
}

TEST(runner, step, legal_moves_are_the_specified_ones)
{
    for (int from = 0; from < STEP_N_STATES; from++)
        for (int to = 0; to < STEP_N_STATES; to++)
            CHECK_MSG(runner__step_move_legal(from, to) == in_spec(from, to), "%s -> %s",
                      runner__step_state_name(from), runner__step_state_name(to));
}

/* Bring a fresh step from WAITING to `state` through legal moves. */
static Step *step_in(Runner *r, int i, int state)
{
    Step *s = runner__graph_step_new(r, rtest_drv(i), "x86_64-linux", "", 0, 0);
    if (state == RN) {
        runner__step_move(r, s, RB);
        runner__step_move(r, s, RN);
    } else if (state != W) {
        runner__step_move(r, s, state);
    }
    return s;
}

/* The container a step is in says its state, and only that. */
static int containers_match(Runner *r, Step *s)
{
    int in_resolve = ptrvec_contains(&r->g.to_resolve, s);
    int in_retry = ptrvec_contains(&r->g.retry_wait, s);
    int in_queue = s->queue != NULL;
    return in_resolve == (s->state == RS) && in_retry == (s->state == RW) &&
           in_queue == (s->state == RB);
}

TEST(runner, step, every_legal_move_keeps_containers)
{
    Runner *r = rtest_runner_new();
    int n = 0;
    CHECK(r);
    runner__lock(r);
    for (size_t k = 0; k < sizeof spec / sizeof spec[0]; k++) {
        Step *s = step_in(r, 100 + n++, spec[k][0]);
        CHECK_MSG(containers_match(r, s), "before %s", runner__step_state_name(s->state));
        runner__step_move(r, s, spec[k][1]);
        CHECK_INT(s->state, spec[k][1]);
        CHECK_MSG(containers_match(r, s), "%s -> %s", runner__step_state_name(spec[k][0]),
                  runner__step_state_name(spec[k][1]));
        if (s->state == DN || s->state == FL || s->state == RD)
            runner__graph_step_forget(r, s);
    }
    runner__unlock(r);
    runner_free(r);
}

/* Run fn in a child process: 1 when it was killed by SIGABRT (an assertion). */
static int aborts(void (*fn)(Runner *, int, int), Runner *r, int a, int b)
{
    pid_t pid = fork();
    int st = 0;
    if (pid == 0) {
        /* no core files, no assertion message noise in the test output */
        if (!freopen("/dev/null", "w", stderr))
            _exit(3);
        fn(r, a, b);
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return 0;
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void move_from_to(Runner *r, int from, int to)
{
    Step *s;
    runner__lock(r);
    s = step_in(r, 900, from);
    if (from == DN || from == FL || from == RD)
        s->state = (uint8_t)from; /* terminal states are only entered by their moves */
    runner__step_move(r, s, to);
    runner__unlock(r);
}

/* A runner for the tests of assertions: NULL (and skipped) when they are compiled out. */
static Runner *asserting_runner(void)
{
#ifdef NDEBUG
    test_skip("assertions are off (NDEBUG)");
    return NULL;
#else
    return rtest_runner_new();
#endif
}

TEST(runner, step, illegal_moves_abort)
{
    Runner *r = asserting_runner();
    if (!r)
        return;
    for (int from = 0; from < STEP_N_STATES; from++)
        for (int to = 0; to < STEP_N_STATES; to++) {
            if (in_spec(from, to))
                continue;
            /* a sample of every source state against every illegal target */
            CHECK_MSG(aborts(move_from_to, r, from, to), "%s -> %s did not abort",
                      runner__step_state_name(from), runner__step_state_name(to));
        }
    runner_free(r);
}

static void graph_call_unlocked(Runner *r, int a, int b)
{
    (void)a;
    (void)b;
    (void)runner__graph_step_get(r, rtest_drv(1));
}

TEST(runner, step, graph_calls_without_the_lock_abort)
{
    Runner *r = asserting_runner();
    if (!r)
        return;
    CHECK(!runner__lock_held(r));
    CHECK(aborts(graph_call_unlocked, r, 0, 0));
    runner__lock(r);
    CHECK(runner__lock_held(r));
    CHECK(runner__graph_step_get(r, rtest_drv(1)) == NULL);
    runner__unlock(r);
    CHECK(!runner__lock_held(r));
    runner_free(r);
}

static void add_jobset(Runner *r, int64_t id, int64_t shares, double seconds)
{
    char k[32];
    Jobset *js = xcalloc(1, sizeof *js);
    js->id = id;
    js->shares = shares;
    js->seconds = seconds;
    snprintf(k, sizeof k, "%lld", (long long)id);
    map_put(r->g.jobsets, k, js);
}

/* The runnable steps in the order the dispatcher takes them (every queue's head
 * merged), each failed and forgotten once taken. */
static void take_in_order(Runner *r, Step **want, int n)
{
    QueueHeads h = {0};
    runner__queue_heads_init(r, &h);
    for (int i = 0; i < n; i++) {
        StepQueue *q = runner__queue_heads_top(&h);
        Step *got = q ? runner__queue_pop(r, q) : NULL;
        CHECK_MSG(got == want[i], "take %d: %s, expected %s", i, got ? got->drv_path : "(none)",
                  want[i]->drv_path);
        runner__queue_heads_update_top(r, &h);
        runner__step_move(r, got, STEP_FAILED);
        runner__graph_step_forget(r, got);
    }
    CHECK(runner__queue_heads_top(&h) == NULL);
    runner__queue_heads_dispose(&h);
}

/* Hydra's order over every runnable step of the runner, whatever the features it
 * needs: global priority desc, jobset share used asc, local priority desc, number of
 * required features desc, rdeps desc, lowest build id asc. */
TEST(runner, step, queue_order_across_jobsets_and_priorities)
{
    Runner *r = rtest_runner_new();
    static const char *const features[8] = {"", "big", "", "kvm", "", "big kvm", "", "big"};
    Step *s[8], *waiter;
    CHECK(r);
    runner__lock(r);
    add_jobset(r, 1, 100, 50.0);  /* 0.5 used per share */
    add_jobset(r, 2, 100, 300.0); /* 3.0 */
    for (int i = 0; i < 8; i++) {
        s[i] = runner__graph_step_new(r, rtest_drv(10 + i), "x86_64-linux", features[i], 0, 0);
        s[i]->highest_global_prio = 0;
        s[i]->share_jobset_id = 1;
        s[i]->highest_local_prio = 0;
        s[i]->lowest_build_id = 100;
    }
    s[0]->highest_global_prio = 10; /* first: global priority wins over all */
    s[0]->share_jobset_id = 2;
    s[7]->share_jobset_id = 2;     /* last: the jobset that used more of its share */
    s[7]->highest_local_prio = 50; /* (whatever its local priority) */
    s[1]->highest_local_prio = 5;  /* second: local priority */
    s[1]->lowest_build_id = 999;
    /* third: two required features before one ... */
    /* fourth: ... before none, where one step waits for it */
    waiter = runner__graph_step_new(r, rtest_drv(30), "x86_64-linux", "", 0, 0);
    runner__graph_add_dep(r, waiter, s[4]);
    s[4]->lowest_build_id = 200;
    s[2]->lowest_build_id = 7; /* fifth: the oldest build */
    s[6]->lowest_build_id = 8;
    for (int i = 7; i >= 0; i--)
        runner__step_move(r, s[i], STEP_RUNNABLE);
    {
        /* s[5] has two features, s[3] one; s[4] an rdep; then builds 7, 8 */
        Step *want[8] = {s[0], s[1], s[5], s[3], s[4], s[2], s[6], s[7]};
        take_in_order(r, want, 8);
    }
    runner__unlock(r);
    runner_free(r);
}

/* A plain step bumped to global priority 100 goes before every step of a feature
 * queue, older builds and more features notwithstanding. */
TEST(runner, step, bumped_plain_step_before_feature_queue)
{
    Runner *r = rtest_runner_new();
    Step *s[4];
    CHECK(r);
    runner__lock(r);
    for (int i = 0; i < 4; i++) {
        s[i] =
            runner__graph_step_new(r, rtest_drv(50 + i), "x86_64-linux", i < 3 ? "big" : "", 0, 0);
        s[i]->highest_global_prio = 0;
        s[i]->highest_local_prio = 0;
        s[i]->lowest_build_id = 10 + i;
        runner__step_move(r, s[i], STEP_RUNNABLE);
    }
    s[3]->highest_global_prio = 100;
    runner__queue_update(r, s[3]);
    {
        Step *want[4] = {s[3], s[0], s[1], s[2]};
        take_in_order(r, want, 4);
    }
    runner__unlock(r);
    runner_free(r);
}

/* A step that ran is charged to its jobsets (split evenly), so the jobset that just
 * used its share goes behind one that did not; queues need no reordering for it. */
TEST(runner, step, finished_step_charges_its_jobsets)
{
    Runner *r = rtest_runner_new();
    Step *ran, *a, *b, *c;
    CHECK(r);
    runner__lock(r);
    add_jobset(r, 1, 10, 0.0);
    add_jobset(r, 2, 10, 0.0);
    add_jobset(r, 3, 10, 15.0); /* 1.5 per share */
    ran = runner__graph_step_new(r, rtest_drv(60), "x86_64-linux", "", 0, 0);
    runner__graph_step_add_jobset(r, ran, 1);
    runner__graph_step_add_jobset(r, ran, 2);
    runner__graph_step_add_jobset(r, ran, 2); /* once */
    CHECK_INT(ran->n_jobsets, 2);
    a = runner__graph_step_new(r, rtest_drv(61), "x86_64-linux", "", 0, 0);
    b = runner__graph_step_new(r, rtest_drv(62), "x86_64-linux", "", 0, 0);
    c = runner__graph_step_new(r, rtest_drv(63), "x86_64-linux", "", 0, 0);
    a->share_jobset_id = 1;
    b->share_jobset_id = 2;
    c->share_jobset_id = 3;
    a->lowest_build_id = 1; /* oldest: first while the shares are equal */
    b->lowest_build_id = 2;
    c->lowest_build_id = 3;
    runner__step_move(r, a, STEP_RUNNABLE);
    runner__step_move(r, b, STEP_RUNNABLE);
    runner__step_move(r, c, STEP_RUNNABLE);
    CHECK(a->queue != b->queue && a->queue != c->queue);
    CHECK(runner__step_cmp_priority(r, a, c) < 0);
    /* 40 s split over jobsets 1 and 2: 2.0 per share each, more than jobset 3 used */
    runner__graph_charge_jobsets(r, ran, 1000, 1040);
    CHECK(runner__jobset_share_used(r, 1) == 2.0 && runner__jobset_share_used(r, 2) == 2.0);
    {
        Step *want[3] = {c, a, b};
        take_in_order(r, want, 3);
    }
    runner__step_move(r, ran, STEP_FAILED);
    runner__graph_step_forget(r, ran);
    runner__unlock(r);
    runner_free(r);
}

/* Steps are resolved in the order they became ready; one set aside goes to the back. */
TEST(runner, step, resolve_queue_is_fifo)
{
    Runner *r = rtest_runner_new();
    Step *s[4];
    CHECK(r);
    runner__lock(r);
    for (int i = 0; i < 4; i++) {
        s[i] = runner__graph_step_new(r, rtest_drv(40 + i), "x86_64-linux", "", 1, 1);
        runner__graph_step_ready(r, s[i]);
        CHECK_INT(s[i]->state, STEP_RESOLVING);
    }
    /* s1 fails meanwhile: the rest keep their order */
    runner__step_move(r, s[1], STEP_FAILED);
    runner__graph_step_forget(r, s[1]);
    CHECK_INT(r->g.to_resolve.n, 3);
    CHECK(r->g.to_resolve.v[0] == s[0] && r->g.to_resolve.v[1] == s[2] &&
          r->g.to_resolve.v[2] == s[3]);
    /* s0 resolved to itself (P' = P): runnable, out of the resolve queue */
    s[0]->is_resolved_drv = 1;
    runner__graph_step_ready(r, s[0]);
    CHECK_INT(s[0]->state, STEP_RUNNABLE);
    CHECK(r->g.to_resolve.v[0] == s[2] && r->g.to_resolve.v[1] == s[3]);
    /* a transient failure: s2 waits, and is resolved again after s3 */
    runner__step_retry_at(r, s[2], 0);
    CHECK(r->g.to_resolve.n == 1 && r->g.to_resolve.v[0] == s[3]);
    runner__step_move(r, s[2], STEP_RESOLVING);
    CHECK(r->g.to_resolve.n == 2 && r->g.to_resolve.v[0] == s[3] && r->g.to_resolve.v[1] == s[2]);
    runner__unlock(r);
    runner_free(r);
}

TEST(runner, step, retry_timing)
{
    Runner *r = rtest_runner_new();
    CHECK(r);
    r->opt.retry_interval = 60;
    r->opt.retry_backoff = 3.0;
    CHECK_INT(runner__retry_time(r, 0, 1000), 0);
    CHECK_INT(runner__retry_time(r, 1, 1000), 1060);
    CHECK_INT(runner__retry_time(r, 2, 1000), 1180);
    CHECK_INT(runner__retry_time(r, 3, 1000), 1540);
    CHECK_INT(runner__retry_time(r, 30, 1000), 1000 + 86400); /* at most a day */
    runner_free(r);
}

TEST(runner, step, machine_matching)
{
    PtrVec ms = {0};
    Err err_ = {0}, *e = &err_;
    Machine *a, *b;
    CHECK_OK(runner__machines_parse("ssh://a x86_64-linux,i686-linux - 4 1 kvm,big-parallel\n"
                                    "ssh-ng://b aarch64-linux - 2 2 kvm,benchmark benchmark\n",
                                    "machines", &ms, e),
             e);
    CHECK_INT(ms.n, 2);
    a = ms.v[0];
    b = ms.v[1];
    CHECK(runner__machine_fits(a, "x86_64-linux", ""));
    CHECK(runner__machine_fits(a, "i686-linux", "kvm"));
    CHECK(runner__machine_fits(a, "x86_64-linux", "big-parallel kvm"));
    CHECK(!runner__machine_fits(a, "x86_64-linux", "benchmark"));
    CHECK(!runner__machine_fits(a, "aarch64-linux", ""));
    CHECK(runner__machine_fits(a, "builtin", "")); /* builtin runs anywhere */
    /* b's mandatory feature: only steps that ask for it */
    CHECK(!runner__machine_fits(b, "aarch64-linux", ""));
    CHECK(runner__machine_fits(b, "aarch64-linux", "benchmark"));
    CHECK(runner__machine_fits(b, "aarch64-linux", "benchmark kvm"));
    for (uint32_t i = 0; i < ms.n; i++)
        runner__machine_free(ms.v[i]);
    ptrvec_dispose(&ms);
}

TEST(runner, step, result_mapping)
{
    static const struct {
        int nix, status, retry, cache;
    } cases[] = {
        {STORE_BUILD_BUILT, 0, 0, 0},
        {STORE_BUILD_ALREADY_VALID, 0, 0, 0},
        {STORE_BUILD_PERMANENT_FAILURE, 1, 0, 1},
        {STORE_BUILD_OUTPUT_REJECTED, 1, 0, 1},
        {STORE_BUILD_TRANSIENT_FAILURE, 1, 1, 0},
        {STORE_BUILD_TIMED_OUT, 7, 0, 0},
        {STORE_BUILD_MISC_FAILURE, 3, 1, 0},
        {STORE_BUILD_LOG_LIMIT_EXCEEDED, 10, 0, 0},
        {STORE_BUILD_NOT_DETERMINISTIC, 12, 0, 1},
        {STORE_BUILD_DEPENDENCY_FAILED, 3, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = -1, retry = -1, cache = -1;
        runner__map_result(cases[i].nix, &st, &retry, &cache);
        CHECK_MSG(st == cases[i].status && retry == cases[i].retry && cache == cases[i].cache,
                  "nix status %d: %d/%d/%d", cases[i].nix, st, retry, cache);
    }
    /* a dependent build: 2 below a failed top level, 1 for it; other statuses as is */
    CHECK_INT(runner__dependent_status(1, 1), 1);
    CHECK_INT(runner__dependent_status(1, 0), 2);
    CHECK_INT(runner__dependent_status(8, 0), 2);
    CHECK_INT(runner__dependent_status(7, 0), 7);
}
