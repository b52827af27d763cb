/*
 * parse.c: the small parsers of the HTTP server, each strict about what it accepts:
 * the bind address, ids in URLs, drv basenames, URL paths, Range headers, ?tail=N and
 * the admin token.  Everything a client sends meets one of these before it is used
 * (as an SQL parameter or a file name); no function here allocates.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "http/http_int.h"
#include "nix/nix.h"

/* Decimal digits s[0..n) -> *out, refusing overflow past `max`. */
static int parse_decimal(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int http__parse_bind(const char *s, struct sockaddr_storage *out, socklen_t *len, Err *e)
{
    const char *addr = "", *port_s, *colon;
    size_t addr_n = 0;
    char host[64];
    uint64_t port;
    int v6 = 0;

    if (!s || !*s)
        return err_set(e, ERR_INVALID, "http: empty bind address");
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return err_set(e, ERR_INVALID, "http: bind address '%s': expected [ADDR]:PORT", s);
        addr = s + 1;
        addr_n = (size_t)(close - addr);
        port_s = close + 2;
        v6 = 1;
    } else if ((colon = strrchr(s, ':'))) {
        if (memchr(s, ':', (size_t)(colon - s)))
            return err_set(e, ERR_INVALID,
                           "http: bind address '%s': write IPv6 addresses as [ADDR]:PORT", s);
        addr = s;
        addr_n = (size_t)(colon - s);
        port_s = colon + 1;
    } else {
        port_s = s;
    }
    if (parse_decimal(port_s, strlen(port_s), 65535, &port) < 0)
        return err_set(e, ERR_INVALID, "http: bind address '%s': bad port '%s'", s, port_s);
    if (addr_n >= sizeof host)
        return err_set(e, ERR_INVALID, "http: bind address '%s': address too long", s);
    memcpy(host, addr, addr_n);
    host[addr_n] = '\0';
    memset(out, 0, sizeof *out);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return err_set(e, ERR_INVALID, "http: bind address '%s': bad IPv6 address", s);
        *len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)out;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (!host[0] || strcmp(host, "localhost") == 0)
            a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return err_set(e, ERR_INVALID,
                           "http: bind address '%s': '%s' is not an IPv4 address "
                           "(names other than localhost are not resolved)",
                           s, host);
        *len = sizeof *a;
    }
    return 0;
}

int http__parse_id(const char *s, int64_t *out)
{
    uint64_t v;
    size_t n;
    if (!s)
        return ERR_INVALID;
    n = strnlen(s, 20);
    if (n == 0 || n > 16 || (s[0] == '0'))
        return ERR_INVALID;
    if (parse_decimal(s, n, (uint64_t)1 << 53, &v) < 0 || s[n] != '\0')
        return ERR_INVALID;
    *out = (int64_t)v;
    return 0;
}

int http__drv_basename_valid(const char *s)
{
    size_t n;
    if (!s)
        return 0;
    n = strnlen(s, LIMIT_STORE_PATH + 1);
    if (n < 32 + 1 + 5 || n > 32 + 1 + LIMIT_STORE_PATH_NAME)
        return 0;
    if (memcmp(s + n - 4, ".drv", 4) != 0)
        return 0;
    return nix_store_basename_check(s, NULL) == 0;
}

int http__split_path(const char *path, char *buf, size_t buf_size, const char **seg, int max)
{
    size_t n;
    int count = 0;
    char *p;
    if (!path || path[0] != '/')
        return ERR_MALFORMED;
    n = strnlen(path, buf_size);
    if (n >= buf_size)
        return ERR_MALFORMED;
    memcpy(buf, path + 1, n); /* includes the NUL */
    p = buf;
    if (*p == '\0')
        return 0;
    for (;;) {
        char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0)
            return ERR_MALFORMED; /* "//" */
        if (len > HTTP_SEGMENT_MAX || count >= max)
            return ERR_MALFORMED;
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return ERR_MALFORMED;
        seg[count++] = p;
        if (!slash)
            break;
        *slash = '\0';
        p = slash + 1;
        if (*p == '\0')
            break; /* one trailing slash */
    }
    return count;
}

HttpRange http__parse_range(const char *hdr, uint64_t len, uint64_t *start, uint64_t *n)
{
    const char *spec, *dash;
    uint64_t a, b;
    if (!hdr || strncasecmp(hdr, "bytes=", 6) != 0)
        return HTTP_RANGE_NONE;
    spec = hdr + 6;
    if (strchr(spec, ','))
        return HTTP_RANGE_NONE;
    dash = strchr(spec, '-');
    if (!dash)
        return HTTP_RANGE_NONE;
    if (dash == spec) {
        /* suffix: the last N bytes */
        if (parse_decimal(dash + 1, strlen(dash + 1), UINT64_MAX, &b) < 0)
            return HTTP_RANGE_NONE;
        if (b == 0 || len == 0)
            return HTTP_RANGE_UNSATISFIABLE;
        if (b > len)
            b = len;
        *start = len - b;
        *n = b;
        return HTTP_RANGE_OK;
    }
    if (parse_decimal(spec, (size_t)(dash - spec), UINT64_MAX, &a) < 0)
        return HTTP_RANGE_NONE;
    if (dash[1] == '\0') {
        b = UINT64_MAX;
    } else if (parse_decimal(dash + 1, strlen(dash + 1), UINT64_MAX, &b) < 0 || b < a) {
        return HTTP_RANGE_NONE;
    }
    if (a >= len)
        return HTTP_RANGE_UNSATISFIABLE;
    if (b >= len)
        b = len - 1;
    *start = a;
    *n = b - a + 1;
    return HTTP_RANGE_OK;
}

int http__parse_tail(const char *s, uint64_t *n)
{
    if (!s || parse_decimal(s, strlen(s), HTTP_TAIL_MAX, n) < 0)
        return ERR_INVALID;
    return 0;
}

size_t http__tail_offset(const char *p, size_t len, uint64_t n)
{
    size_t i = len;
    uint64_t seen = 0;
    if (n == 0)
        return len;
    if (i > 0 && p[i - 1] == '\n')
        i--;
    while (i > 0) {
        if (p[i - 1] == '\n' && ++seen == n)
            return i;
        i--;
    }
    return 0;
}

int http__token_equal(const char *presented, const char *configured)
{
    size_t n, m;
    unsigned diff = 0;
    if (!presented || !configured || !*configured)
        return 0;
    n = strnlen(configured, HTTP_TOKEN_MAX + 1);
    m = strnlen(presented, HTTP_TOKEN_MAX + 1);
    diff = (unsigned)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)configured[i] ^ (unsigned char)(i < m ? presented[i] : 0);
    return diff == 0;
}

const char *http__bearer_token(const char *authorization)
{
    const char *p;
    if (!authorization || strncasecmp(authorization, "Bearer", 6) != 0)
        return NULL;
    p = authorization + 6;
    if (*p != ' ')
        return NULL;
    while (*p == ' ')
        p++;
    return *p ? p : NULL;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t http__unescape(char *s)
{
    char *w = s;
    const char *r = s;
    while (*r) {
        int hi = r[0] == '%' ? hex_value(r[1]) : -1;
        int lo = hi >= 0 ? hex_value(r[2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}
