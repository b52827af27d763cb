/*
 * test.h: the unit-test framework.  A test is a function registered at start-up by
 * TEST(mod, file, case) and named test_<mod>_<file>__<case>.  The runner
 * (build/sluice-test [FILTER...]) runs every test whose name contains a filter,
 * prints one line per test and ends with "N passed, N failed".
 *
 * Test data lives in tests/data/; TEST_DATA("nix/x.drv") gives its path (the runner
 * finds the tests/ directory from SLUICE_TEST_DIR or the binary's location).
 */
#ifndef SLUICE_TEST_H
#define SLUICE_TEST_H

#include <stdio.h>
#include <string.h>

#include "util/util.h"

typedef void (*TestFn)(void);
void test_register(const char *name, TestFn fn);
void test_fail(const char *file, int line, const char *fmt, ...) UTIL_PRINTF(3, 4);
int test_failed(void);
/* Path of a file under tests/data (static buffer, valid until the next call). */
const char *test_data(const char *rel);
/* A fresh temporary directory for this test (removed at the end unless it failed). */
const char *test_tmpdir(void);
/* 1 when the command `nix-store --version` works (integration-flavoured unit tests). */
int test_have_nix(void);
void test_skip(const char *why);

#define TEST(mod, file, name)                                                                      \
    static void test_##mod##_##file##__##name(void);                                               \
    __attribute__((constructor)) static void reg_##mod##_##file##__##name(void)                    \
    {                                                                                              \
        test_register(#mod "_" #file "__" #name, test_##mod##_##file##__##name);                   \
    }                                                                                              \
    static void test_##mod##_##file##__##name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                                     \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            test_fail(__FILE__, __LINE__, __VA_ARGS__);                                            \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_OK(expr, errp)                                                                       \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ < 0) {                                                                             \
            test_fail(__FILE__, __LINE__, "%s -> %d: %s", #expr, rc_, (errp) ? (errp)->msg : "");  \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                   \
            test_fail(__FILE__, __LINE__, "%s == %s\n    got:      %s\n    expected: %s", #a, #b,  \
                      a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                     \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            test_fail(__FILE__, __LINE__, "%s == %s: got %lld, expected %lld", #a, #b, a_, b_);    \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#endif
