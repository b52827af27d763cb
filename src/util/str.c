/* str.c: string vector, small string helpers, clocks. */
#include <errno.h>
#include <stdio.h>
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

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when the bytes there are not one
 * (overlong forms, surrogates and values past U+10FFFF are not). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t cp;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

char *util_text_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    char *out = xmalloc(n * 3 + 1), *w = out;
    for (size_t i = 0; i < n;) {
        size_t k = p[i] ? utf8_seq(p + i, n - i) : 0;
        if (k == 0) {
            memcpy(w, "\xef\xbf\xbd", 3);
            w += 3;
            i++;
        } else {
            memcpy(w, p + i, k);
            w += k;
            i += k;
        }
    }
    *w = '\0';
    return out;
}

static char *hex_escape(char *w, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    *w++ = '\\';
    *w++ = 'x';
    *w++ = hex[c >> 4];
    *w++ = hex[c & 15];
    return w;
}

char *util_text_escape(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    char *out = xmalloc(n * 4 + 1), *w = out;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        int c1 = k == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0;
        if (k == 1 && ((p[i] < 0x20 && p[i] != '\n' && p[i] != '\t') || p[i] == 0x7f)) {
            w = hex_escape(w, p[i]);
            i++;
        } else if (k == 0 || c1) {
            size_t m = k ? k : 1;
            for (size_t j = 0; j < m; j++)
                w = hex_escape(w, p[i + j]);
            i += m;
        } else {
            memcpy(w, p + i, k);
            w += k;
            i += k;
        }
    }
    *w = '\0';
    return out;
}

uint64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct timespec util_deadline_in(uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int64_t util_time_now(void)
{
    return (int64_t)time(NULL);
}
