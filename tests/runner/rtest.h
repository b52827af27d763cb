/* tests/runner/rtest.h: a Runner on a fresh SQLite database in the test's scratch
 * directory, and graph builders, for the runner's unit tests (no Nix involved: nothing
 * here opens the local store). */
#ifndef SLUICE_TESTS_RUNNER_RTEST_H
#define SLUICE_TESTS_RUNNER_RTEST_H

#include "runner/core.h"

/* NULL (and a failed check) when the runner cannot be made. */
Runner *rtest_runner_new(void);
/* A store path of a .drv named after `name` (static buffer per call slot i). */
const char *rtest_drv(int i);
/* A queued build `id` whose top level is `top` (graph lock held). */
Build *rtest_build(Runner *r, int64_t id, Step *top);
/* Step s running on the local pseudo-machine for build `build`, as dispatch_round
 * leaves it: its Worker (listed in r->workers, freed by the caller with
 * runner__worker_free).  Graph lock held. */
Worker *rtest_running(Runner *r, Step *s, int64_t build);
/* A queued Builds row for drv in project p, jobset j (made on first use): its id, or -1
 * with e set. */
int64_t rtest_db_build(Runner *r, const char *drv, Err *e);

#endif
