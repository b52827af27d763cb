/* tests/runner/logs.c: logs read in pieces (runner_log_reader, src/runner/logs.c) give
 * the same bytes as the whole-log read, from plain, .zst and .bz2 files, in pieces of
 * any size; a truncated .bz2 is an error, a missing log ERR_NOTFOUND. */
#include <bzlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "runner/runner.h"
#include "test.h"

#define DRV "/nix/store/00000000000000000000000000000000-pieces.drv"

/* A log with NUL bytes, binary garbage and one line longer than the input buffer. */
static uint8_t *make_log(size_t *len)
{
    size_t n = 300000, i;
    uint8_t *p = malloc(n);
    for (i = 0; i < n; i++)
        p[i] = (uint8_t)(i < 1000 ? (i % 7 == 0 ? 0 : 'a' + i % 26) : (i * 2654435761u) >> 24);
    memset(p + 2000, 'x', 200000); /* one long line */
    *len = n;
    return p;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f);
    CHECK(fwrite(p, 1, n, f) == n);
    CHECK(fclose(f) == 0);
}

/* The log's files live at LOG_DIR/00/<rest>[.zst|.bz2]. */
static char *log_file(const char *dir, const char *ext)
{
    char *zst = runner_log_path(dir, DRV), *p;
    zst[strlen(zst) - 4] = 0;
    p = xasprintf("%s%s", zst, ext);
    free(zst);
    return p;
}

static void read_back(const char *dir, size_t piece, const uint8_t *want, size_t want_len)
{
    RunnerLogReader *lr = NULL;
    Err err_ = {0}, *e = &err_;
    uint8_t *got = malloc(want_len + 1), *buf = malloc(piece);
    size_t len = 0;
    int64_t n;
    CHECK_OK(runner_log_reader_open(dir, DRV, &lr, e), e);
    while ((n = runner_log_reader_read(lr, buf, piece, e)) > 0) {
        CHECK((size_t)n <= piece && len + (size_t)n <= want_len);
        memcpy(got + len, buf, (size_t)n);
        len += (size_t)n;
    }
    CHECK_OK((int)n, e);
    CHECK_INT(len, want_len);
    CHECK(memcmp(got, want, want_len) == 0);
    runner_log_reader_free(lr);
    free(got);
    free(buf);
}

static void check_all_pieces(const char *dir, const uint8_t *log, size_t len)
{
    static const size_t pieces[] = {1, 7, 4096, 65536, 1 << 20};
    Buf whole;
    Err err_ = {0}, *e = &err_;
    buf_init(&whole, 1 << 24);
    CHECK_OK(runner_log_read(dir, DRV, &whole, e), e);
    CHECK_INT(whole.len, len);
    CHECK(memcmp(whole.p, log, len) == 0);
    buf_dispose(&whole);
    for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++)
        read_back(dir, pieces[i], log, len);
}

TEST(runner, logs, pieces_equal_the_whole_log)
{
    const char *dir = test_tmpdir();
    char *sub = xasprintf("%s/00", dir), *plain = log_file(dir, ""), *zst = log_file(dir, ".zst"),
         *bz2 = log_file(dir, ".bz2");
    size_t len, zcap, zlen;
    unsigned blen;
    uint8_t *log = make_log(&len), *z;
    RunnerLogReader *lr = NULL;
    Err err_ = {0}, *e = &err_;
    CHECK(mkdir(sub, 0755) == 0);

    CHECK_INT(runner_log_reader_open(dir, DRV, &lr, e), ERR_NOTFOUND);

    /* .bz2 only (Hydra's CompressLog), then .zst beside it, then the plain file: each
     * is read as the whole-log read takes it */
    blen = (unsigned)(len + len / 100 + 600);
    z = malloc(blen);
    CHECK(BZ2_bzBuffToBuffCompress((char *)z, &blen, (char *)log, (unsigned)len, 9, 0, 0) == BZ_OK);
    write_file(bz2, z, blen);
    check_all_pieces(dir, log, len);
    free(z);

    zcap = ZSTD_compressBound(len);
    z = malloc(zcap);
    zlen = ZSTD_compress(z, zcap, log, len, 3);
    CHECK(!ZSTD_isError(zlen));
    write_file(zst, z, zlen);
    check_all_pieces(dir, log, len);
    free(z);

    write_file(plain, log, len);
    check_all_pieces(dir, log, len);

    free(log);
    free(sub);
    free(plain);
    free(zst);
    free(bz2);
}

TEST(runner, logs, truncated_bz2_is_an_error)
{
    const char *dir = test_tmpdir();
    char *sub = xasprintf("%s/00", dir), *bz2 = log_file(dir, ".bz2");
    size_t len;
    unsigned blen;
    uint8_t *log = make_log(&len), *z, buf[4096];
    RunnerLogReader *lr = NULL;
    Err err_ = {0}, *e = &err_;
    int64_t n;
    CHECK(mkdir(sub, 0755) == 0);
    blen = (unsigned)(len + len / 100 + 600);
    z = malloc(blen);
    CHECK(BZ2_bzBuffToBuffCompress((char *)z, &blen, (char *)log, (unsigned)len, 9, 0, 0) == BZ_OK);
    write_file(bz2, z, blen / 2);
    CHECK_OK(runner_log_reader_open(dir, DRV, &lr, e), e);
    while ((n = runner_log_reader_read(lr, buf, sizeof buf, e)) > 0)
        ;
    CHECK_INT(n, ERR_MALFORMED);
    CHECK(strstr(e->msg, "truncated"));
    runner_log_reader_free(lr);
    free(z);
    free(log);
    free(sub);
    free(bz2);
}
