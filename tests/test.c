/* test.c: the unit-test runner (see test.h). */
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

typedef struct TestCase {
    const char *name;
    TestFn fn;
} TestCase;

static TestCase *cases;
static size_t ncases, capcases;
static int cur_failed, cur_skipped;
static char data_dir[PATH_MAX];
static char data_path[PATH_MAX * 2];
static char tmp_dir[PATH_MAX];

void test_register(const char *name, TestFn fn)
{
    if (ncases == capcases) {
        capcases = capcases ? capcases * 2 : 64;
        cases = xrealloc(cases, capcases * sizeof *cases);
    }
    cases[ncases].name = name;
    cases[ncases].fn = fn;
    ncases++;
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    cur_failed = 1;
}

int test_failed(void)
{
    return cur_failed;
}

void test_skip(const char *why)
{
    printf("    skipped: %s\n", why);
    cur_skipped = 1;
}

const char *test_data(const char *rel)
{
    snprintf(data_path, sizeof data_path, "%s/data/%s", data_dir, rel);
    return data_path;
}

const char *test_tmpdir(void)
{
    if (!tmp_dir[0]) {
        snprintf(tmp_dir, sizeof tmp_dir, "/tmp/sluice-test.XXXXXX");
        if (!mkdtemp(tmp_dir)) {
            perror("mkdtemp");
            abort();
        }
    }
    return tmp_dir;
}

int test_have_nix(void)
{
    return system("nix-store --version >/dev/null 2>&1") == 0;
}

static void find_data_dir(const char *argv0)
{
    const char *env = getenv("SLUICE_TEST_DIR");
    char self[PATH_MAX];
    ssize_t n;
    if (env) {
        snprintf(data_dir, sizeof data_dir, "%s", env);
        return;
    }
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        /* build/sluice-test -> ../tests */
        snprintf(data_dir, sizeof data_dir, "%s/../tests", dirname(self));
        return;
    }
    snprintf(data_dir, sizeof data_dir, "%s/../tests", dirname((char *)argv0));
}

static int matches(const char *name, int argc, char **argv)
{
    if (argc <= 1)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]))
            return 1;
    return 0;
}

static int cmp_case(const void *a, const void *b)
{
    return strcmp(((const TestCase *)a)->name, ((const TestCase *)b)->name);
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    find_data_dir(argv[0]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (getenv("SLUICE_LOG") == NULL)
        log_set_level(LOG_WARN);
    if (ncases > 1) /* qsort(NULL, 0, ...) is undefined */
        qsort(cases, ncases, sizeof *cases, cmp_case);
    for (size_t i = 0; i < ncases; i++) {
        char cmd[PATH_MAX + 16];
        if (!matches(cases[i].name, argc, argv))
            continue;
        cur_failed = cur_skipped = 0;
        tmp_dir[0] = '\0';
        cases[i].fn();
        if (cur_failed) {
            printf("FAIL %s\n", cases[i].name);
            failed++;
        } else if (cur_skipped) {
            printf("SKIP %s\n", cases[i].name);
            skipped++;
        } else {
            printf("ok   %s\n", cases[i].name);
            passed++;
        }
        if (tmp_dir[0] && !cur_failed) {
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
            if (system(cmd) != 0)
                fprintf(stderr, "cannot remove %s\n", tmp_dir);
        }
    }
    free(cases);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
