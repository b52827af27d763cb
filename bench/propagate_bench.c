/*
 * propagate_bench.c: helper of bench/propagate.sh (built by it against build/'s
 * objects).  A failure propagated over a large step graph, timed as the graph lock is
 * held for it in the runner (runner__step_finished): the dependent builds collected
 * (runner__graph_dependent_builds), then the failed step and every step waiting on it removed
 * with their builds (runner__graph_fail_with_rdeps).  No Nix, no builds: the graph is made in
 * memory on a Runner over a scratch SQLite database.
 *
 *   propagate_bench DIR LAYERS WIDTH REPS
 *
 * The graph: LAYERS layers of WIDTH steps, each step depending on every step of the
 * layer below (LAYERS * WIDTH steps, (LAYERS - 1) * WIDTH^2 edges), a build on every
 * step of the top layer; a step of the bottom layer fails, and with it every step above.
 * Prints one TSV row per repetition: "steps edges rep lock_ms".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runner/core.h"
#include "runner/graph.h"
#include "runner/lock.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

static Runner *runner_at(const char *dir)
{
    RunnerOptions o;
    Runner *r = NULL;
    Err e = {0};
    char *url = xasprintf("sqlite:%s/db/sluice.sqlite", dir);
    char *state = xasprintf("%s/state", dir);
    runner_options_defaults(&o);
    o.db_url = url;
    o.state_dir = state;
    o.log_dir = state;
    if (runner_new(&o, &r, &e) < 0) {
        fprintf(stderr, "runner_new: %s\n", e.msg);
        exit(1);
    }
    return r; /* url and state live as long as the process */
}

static Step *make_graph(Runner *r, int layers, int width)
{
    Step **prev = xcalloc((size_t)width, sizeof *prev), **cur = xcalloc((size_t)width, sizeof *cur);
    Step *bottom = NULL;
    int64_t build_id = 1;
    for (int l = 0; l < layers; l++) {
        for (int i = 0; i < width; i++) {
            char path[128];
            snprintf(path, sizeof path, NIX_STORE_DIR "/%032d-l%di%d.drv", 0, l, i);
            cur[i] = runner__graph_step_new(r, path, "x86_64-linux", "", 0, 0);
            for (int j = 0; l > 0 && j < width; j++)
                runner__graph_add_dep(r, cur[i], prev[j]);
        }
        if (l == 0)
            bottom = cur[0];
        if (l == layers - 1)
            for (int i = 0; i < width; i++) {
                char k[32];
                Build *b = xcalloc(1, sizeof *b);
                b->id = build_id++;
                b->drv_path = xstrdup(cur[i]->drv_path);
                b->job = xstrdup("job");
                snprintf(k, sizeof k, "%lld", (long long)b->id);
                map_put(r->g.builds, k, b);
                runner__graph_build_attach(r, b, cur[i]);
            }
        Step **t = prev;
        prev = cur;
        cur = t;
    }
    free(prev);
    free(cur);
    return bottom;
}

int main(int argc, char **argv)
{
    int layers, width, reps;
    if (argc != 5) {
        fprintf(stderr, "usage: propagate_bench DIR LAYERS WIDTH REPS\n");
        return 2;
    }
    layers = atoi(argv[2]); /* lint: allow(atoi) bench arguments */
    width = atoi(argv[3]);  /* lint: allow(atoi) */
    reps = atoi(argv[4]);   /* lint: allow(atoi) */
    log_set_level(LOG_WARN);
    for (int rep = 1; rep <= reps; rep++) {
        char *dir = xasprintf("%s/%d", argv[1], rep);
        Runner *r = runner_at(dir);
        PtrVec deps = {0};
        Step *bottom = NULL;
        double t0, t1;
        size_t steps;
        runner__lock(r);
        bottom = make_graph(r, layers, width);
        steps = map_size(r->g.steps);
        t0 = now_ms();
        runner__graph_dependent_builds(r, bottom, &deps);
        runner__graph_fail_with_rdeps(r, bottom);
        t1 = now_ms();
        if (map_size(r->g.steps) != (size_t)width - 1 || map_size(r->g.builds) != 0 ||
            deps.n != (uint32_t)width) {
            fprintf(stderr, "left: %zu steps, %zu builds; %u dependent builds\n",
                    map_size(r->g.steps), map_size(r->g.builds), deps.n);
            return 1;
        }
        runner__unlock(r);
        printf("%zu\t%lld\t%d\t%.2f\n", steps, (long long)(layers - 1) * width * width, rep,
               t1 - t0);
        fflush(stdout);
        ptrvec_dispose(&deps);
        runner_free(r);
        free(dir);
    }
    return 0;
}
