/* str.c: string vector, small string helpers, clocks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

void strvec_init(StrVec *sv)
{
    sv->v = NULL;
    sv->n = sv->cap = 0;
}

void strvec_dispose(StrVec *sv)
{
    if (!sv)
        return;
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = sv->cap = 0;
}

void strvec_push_take(StrVec *sv, char *s)
{
    if (sv->n == sv->cap) {
        sv->cap = sv->cap ? sv->cap * 2 : 8;
        sv->v = xrealloc(sv->v, sv->cap * sizeof *sv->v);
    }
    sv->v[sv->n++] = s;
}

void strvec_push(StrVec *sv, const char *s)
{
    strvec_push_take(sv, xstrdup(s));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void strvec_sort_unique(StrVec *sv)
{
    size_t j = 0;
    if (sv->n < 2)
        return;
    qsort(sv->v, sv->n, sizeof *sv->v, cmp_str);
    for (size_t i = 0; i < sv->n; i++) {
        if (j > 0 && strcmp(sv->v[j - 1], sv->v[i]) == 0) {
            free(sv->v[i]);
            continue;
        }
        sv->v[j++] = sv->v[i];
    }
    sv->n = j;
}

int strvec_contains(const StrVec *sv, const char *s)
{
    for (size_t i = 0; i < sv->n; i++)
        if (strcmp(sv->v[i], s) == 0)
            return 1;
    return 0;
}

int util_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int util_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

int util_parse_i64(const char *s, int64_t *out)
{
    char *end = NULL;
    long long v;
    if (!s || !*s)
        return ERR_INVALID;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return ERR_INVALID;
    *out = v;
    return 0;
}

void util_strip_ansi(char *s)
{
    char *w = s;
    for (char *r = s; *r;) {
        if (*r == '\x1b') {
            r++;
            if (*r == '[') {
                r++;
                while (*r && !(*r >= '@' && *r <= '~'))
                    r++;
                if (*r)
                    r++;
            } else if (*r) {
                r++;
            }
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
}

uint64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t util_time_now(void)
{
    return (int64_t)time(NULL);
}
