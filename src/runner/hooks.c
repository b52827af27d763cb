/*
 * hooks.c: fault injection and pause points for the tests, and nothing else: a crash
 * point (crash-point / SLUICE_CRASH_POINT) kills the process with SIGKILL where it is
 * named; a pause point (SLUICE_TEST_PAUSE) holds the calling thread until the test
 * removes a file.  Both do nothing unless a test asked for them by name.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/hooks.h"

void runner__crash_point(Runner *r, const char *name)
{
    if (r->opt.crash_point && strcmp(r->opt.crash_point, name) == 0) {
        log_error("crash point '%s' reached: killing the process", name);
        kill(getpid(), SIGKILL);
    }
}

/* Test-only pause points (SLUICE_TEST_PAUSE=NAME): the runner writes
 * STATE_DIR/pause/NAME holding `what` and waits until a test removes the file (at most
 * ten minutes), so a test can change the world at exactly that moment. */
void runner__pause_point(Runner *r, const char *name, const char *what)
{
    const char *want = getenv("SLUICE_TEST_PAUSE");
    char *dir, *file;
    Err e = {0};
    uint64_t t0;
    if (!want || strcmp(want, name) != 0)
        return;
    dir = xasprintf("%s/pause", r->opt.state_dir);
    file = xasprintf("%s/%s", dir, name);
    if (util_mkdir_p(dir, 0755, &e) == 0 &&
        util_write_file_atomic(file, what, strlen(what), &e) == 0) {
        log_warn("paused at '%s' (%s): remove %s to go on", name, what, file);
        t0 = util_now_ms();
        while (access(file, F_OK) == 0 && util_now_ms() - t0 < 600000 && !atomic_load(&r->stopping))
            usleep(50 * 1000);
    }
    free(dir);
    free(file);
}
