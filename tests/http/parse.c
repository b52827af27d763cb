/* tests/http/parse.c: the HTTP server's parsers (src/http/parse.c): bind addresses, ids,
 * drv basenames, URL paths (traversal), Range headers, ?tail, tokens. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "http/http_int.h"
#include "test.h"

static int bind_ok(const char *s, int family, const char *addr, int port)
{
    struct sockaddr_storage sa;
    socklen_t len = 0;
    char buf[INET6_ADDRSTRLEN];
    if (http__parse_bind(s, &sa, &len, NULL) < 0 || sa.ss_family != family)
        return 0;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&sa;
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        return len == sizeof *a && strcmp(buf, addr) == 0 && ntohs(a->sin_port) == port;
    }
    {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa;
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        return len == sizeof *a && strcmp(buf, addr) == 0 && ntohs(a->sin6_port) == port;
    }
}

TEST(http, parse, bind_addresses)
{
    CHECK(bind_ok("8080", AF_INET, "127.0.0.1", 8080));
    CHECK(bind_ok(":9", AF_INET, "127.0.0.1", 9));
    CHECK(bind_ok("0", AF_INET, "127.0.0.1", 0));
    CHECK(bind_ok("localhost:1", AF_INET, "127.0.0.1", 1));
    CHECK(bind_ok("0.0.0.0:80", AF_INET, "0.0.0.0", 80));
    CHECK(bind_ok("10.1.2.3:65535", AF_INET, "10.1.2.3", 65535));
    CHECK(bind_ok("[::1]:8080", AF_INET6, "::1", 8080));
    CHECK(bind_ok("[::]:1", AF_INET6, "::", 1));
}

TEST(http, parse, bind_refused)
{
    static const char *bad[] = {"",
                                "abc",
                                "1.2.3.4:",
                                "1.2.3.4:65536",
                                "::1:80",
                                "[::1]80",
                                "[::1]:",
                                "host.example:80",
                                "[zz]:1",
                                "1.2.3.4:-1",
                                "1.2.3.4: 80",
                                "1.2.3:80",
                                "[::1]:8080x",
                                "99999999999999999999999"};
    struct sockaddr_storage sa;
    socklen_t len;
    Err e = {0};
    CHECK(http__parse_bind(NULL, &sa, &len, &e) == ERR_INVALID);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++)
        CHECK_MSG(http__parse_bind(bad[i], &sa, &len, &e) == ERR_INVALID, "accepted '%s'", bad[i]);
    CHECK(strstr(e.msg, "bad port") != NULL);
}

TEST(http, parse, ids)
{
    static const char *bad[] = {"0",
                                "01",
                                "-1",
                                "+1",
                                "1a",
                                "",
                                " 1",
                                "1 ",
                                "0x10",
                                "9007199254740993",
                                "99999999999999999999",
                                "1.0"};
    int64_t v = 0;
    CHECK(http__parse_id("1", &v) == 0 && v == 1);
    CHECK(http__parse_id("42", &v) == 0 && v == 42);
    CHECK(http__parse_id("9007199254740992", &v) == 0 && v == 9007199254740992LL);
    CHECK(http__parse_id(NULL, &v) < 0);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++)
        CHECK_MSG(http__parse_id(bad[i], &v) < 0, "accepted '%s'", bad[i]);
}

TEST(http, parse, drv_basenames)
{
    static const char *bad[] = {
        "",
        "ln9dra2fsjzplvhsal7ry3b8nvif13xz-a",       /* no .drv */
        "ln9dra2fsjzplvhsal7ry3b8nvif13x-top.drv",  /* 31-char hash */
        "ln9dra2fsjzplvhsal7ry3b8nvif13xe-top.drv", /* 'e' is not nix32 */
        "ln9dra2fsjzplvhsal7ry3b8nvif13xz_top.drv", /* no dash */
        "ln9dra2fsjzplvhsal7ry3b8nvif13xz-.drv/x",
        "ln9dra2fsjzplvhsal7ry3b8nvif13xz-a/b.drv",
        "ln9dra2fsjzplvhsal7ry3b8nvif13xz-a b.drv",
        "ln9dra2fsjzplvhsal7ry3b8nvif13xz-a%2f.drv",
        "..",
        "../../etc/passwd",
        "/nix/store/ln9dra2fsjzplvhsal7ry3b8nvif13xz-top.drv",
    };
    char long_name[400];
    CHECK(http__drv_basename_valid("ln9dra2fsjzplvhsal7ry3b8nvif13xz-http-top-19600.drv"));
    CHECK(http__drv_basename_valid("ln9dra2fsjzplvhsal7ry3b8nvif13xz-a+b_c?d=e.drv"));
    CHECK(!http__drv_basename_valid(NULL));
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++)
        CHECK_MSG(!http__drv_basename_valid(bad[i]), "accepted '%s'", bad[i]);
    memset(long_name, 'a', sizeof long_name);
    memcpy(long_name, "ln9dra2fsjzplvhsal7ry3b8nvif13xz-", 33);
    memcpy(long_name + 33 + 300, ".drv", 5);
    CHECK(!http__drv_basename_valid(long_name));
}

TEST(http, parse, paths)
{
    char buf[HTTP_PATH_SEGMENTS * (HTTP_SEGMENT_MAX + 1) + 2];
    const char *seg[HTTP_PATH_SEGMENTS];
    char big[HTTP_SEGMENT_MAX + 10];
    static const char *bad[] = {"",    "status", "//", "/a//b",   "/a/../b",
                                "/..", "/a/./b", "/.", "/a/b/..", "/1/2/3/4/5/6/7/8/9",
                                "/a//"};
    CHECK_INT(http__split_path("/", buf, sizeof buf, seg, HTTP_PATH_SEGMENTS), 0);
    CHECK_INT(http__split_path("/status", buf, sizeof buf, seg, HTTP_PATH_SEGMENTS), 1);
    CHECK_STR(seg[0], "status");
    CHECK_INT(http__split_path("/status/", buf, sizeof buf, seg, HTTP_PATH_SEGMENTS), 1);
    CHECK_INT(
        http__split_path("/build/5/step/2/log/tail", buf, sizeof buf, seg, HTTP_PATH_SEGMENTS), 6);
    CHECK_STR(seg[1], "5");
    CHECK_STR(seg[5], "tail");
    CHECK_INT(http__split_path("/a/..b/c..", buf, sizeof buf, seg, HTTP_PATH_SEGMENTS), 3);
    CHECK_INT(http__split_path("/1/2/3/4/5/6/7/8", buf, sizeof buf, seg, HTTP_PATH_SEGMENTS), 8);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++)
        CHECK_MSG(http__split_path(bad[i], buf, sizeof buf, seg, HTTP_PATH_SEGMENTS) < 0,
                  "accepted '%s'", bad[i]);
    CHECK(http__split_path(NULL, buf, sizeof buf, seg, HTTP_PATH_SEGMENTS) < 0);
    big[0] = '/';
    memset(big + 1, 'x', sizeof big - 2);
    big[sizeof big - 1] = '\0';
    CHECK(http__split_path(big, buf, sizeof buf, seg, HTTP_PATH_SEGMENTS) < 0);
    /* a path longer than the buffer */
    CHECK(http__split_path("/abcdef", buf, 4, seg, HTTP_PATH_SEGMENTS) < 0);
}

TEST(http, parse, ranges)
{
    uint64_t s = 0, n = 0;
    CHECK(http__parse_range(NULL, 10, &s, &n) == HTTP_RANGE_NONE);
    CHECK(http__parse_range("bytes=0-4", 10, &s, &n) == HTTP_RANGE_OK && s == 0 && n == 5);
    CHECK(http__parse_range("bytes=3-", 10, &s, &n) == HTTP_RANGE_OK && s == 3 && n == 7);
    CHECK(http__parse_range("bytes=-4", 10, &s, &n) == HTTP_RANGE_OK && s == 6 && n == 4);
    CHECK(http__parse_range("bytes=-40", 10, &s, &n) == HTTP_RANGE_OK && s == 0 && n == 10);
    CHECK(http__parse_range("bytes=5-100", 10, &s, &n) == HTTP_RANGE_OK && s == 5 && n == 5);
    CHECK(http__parse_range("bytes=9-9", 10, &s, &n) == HTTP_RANGE_OK && s == 9 && n == 1);
    CHECK(http__parse_range("BYTES=1-1", 10, &s, &n) == HTTP_RANGE_OK && s == 1 && n == 1);
    CHECK(http__parse_range("bytes=10-", 10, &s, &n) == HTTP_RANGE_UNSATISFIABLE);
    CHECK(http__parse_range("bytes=10-20", 10, &s, &n) == HTTP_RANGE_UNSATISFIABLE);
    CHECK(http__parse_range("bytes=-0", 10, &s, &n) == HTTP_RANGE_UNSATISFIABLE);
    CHECK(http__parse_range("bytes=0-", 0, &s, &n) == HTTP_RANGE_UNSATISFIABLE);
    /* ignored: malformed, several ranges, other units */
    CHECK(http__parse_range("bytes=5-1", 10, &s, &n) == HTTP_RANGE_NONE);
    CHECK(http__parse_range("bytes=0-1,3-4", 10, &s, &n) == HTTP_RANGE_NONE);
    CHECK(http__parse_range("items=0-1", 10, &s, &n) == HTTP_RANGE_NONE);
    CHECK(http__parse_range("bytes=a-b", 10, &s, &n) == HTTP_RANGE_NONE);
    CHECK(http__parse_range("bytes=1", 10, &s, &n) == HTTP_RANGE_NONE);
    CHECK(http__parse_range("bytes=-", 10, &s, &n) == HTTP_RANGE_NONE);
    CHECK(http__parse_range("bytes= 1-2", 10, &s, &n) == HTTP_RANGE_NONE);
    CHECK(http__parse_range("bytes=99999999999999999999999-", 10, &s, &n) == HTTP_RANGE_NONE);
}

TEST(http, parse, tail)
{
    static const char log[] = "a\nb\nc\n";
    static const char open_line[] = "a\nb\nc";
    uint64_t n = 0;
    CHECK(http__parse_tail("5", &n) == 0 && n == 5);
    CHECK(http__parse_tail("0", &n) == 0 && n == 0);
    CHECK(http__parse_tail("1000000", &n) == 0);
    CHECK(http__parse_tail("1000001", &n) < 0);
    CHECK(http__parse_tail("-1", &n) < 0);
    CHECK(http__parse_tail("", &n) < 0);
    CHECK(http__parse_tail("x", &n) < 0);
    CHECK(http__parse_tail(NULL, &n) < 0);
    CHECK_INT(http__tail_offset(log, 6, 0), 6);
    CHECK_INT(http__tail_offset(log, 6, 1), 4);
    CHECK_INT(http__tail_offset(log, 6, 2), 2);
    CHECK_INT(http__tail_offset(log, 6, 3), 0);
    CHECK_INT(http__tail_offset(log, 6, 50), 0);
    CHECK_INT(http__tail_offset(open_line, 5, 1), 4);
    CHECK_INT(http__tail_offset(open_line, 5, 2), 2);
    CHECK_INT(http__tail_offset("", 0, 3), 0);
    CHECK_INT(http__tail_offset("\n\n", 2, 1), 1);
}

TEST(http, parse, tokens)
{
    CHECK(http__token_equal("s3cret", "s3cret"));
    CHECK(!http__token_equal("s3cre", "s3cret"));
    CHECK(!http__token_equal("s3cret!", "s3cret"));
    CHECK(!http__token_equal("S3cret", "s3cret"));
    CHECK(!http__token_equal("", ""));
    CHECK(!http__token_equal(NULL, "x"));
    CHECK(!http__token_equal("x", NULL));
    CHECK_STR(http__bearer_token("Bearer abc"), "abc");
    CHECK_STR(http__bearer_token("bearer   abc"), "abc");
    CHECK(http__bearer_token("Bearerabc") == NULL);
    CHECK(http__bearer_token("Basic abc") == NULL);
    CHECK(http__bearer_token("Bearer ") == NULL);
    CHECK(http__bearer_token(NULL) == NULL);
}

TEST(http, parse, unescape)
{
    char a[] = "/log/%2e%2E/x%2Fy", b[] = "/x.drv%00.txt", c[] = "%zz%4", d[] = "%",
         e[] = "a+b%20c";
    CHECK_INT(http__unescape(a), 11);
    CHECK_STR(a, "/log/../x/y");
    CHECK_INT(http__unescape(b), 13);
    CHECK_STR(b, "/x.drv%00.txt"); /* a NUL is never decoded */
    CHECK_INT(http__unescape(c), 5);
    CHECK_STR(c, "%zz%4");
    CHECK_INT(http__unescape(d), 1);
    CHECK_STR(e + 0, "a+b%20c");
    CHECK_INT(http__unescape(e), 5);
    CHECK_STR(e, "a+b c");
}
