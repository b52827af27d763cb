/* tests/nix/nar.c: NAR dump (byte-identical to the vectors), incremental reader (any
 * chunking, end detection, every kind of bad input), restore, hash and the CA
 * self-reference hash. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nix/nix.h"
#include "test.h"

/* ---------------------------------------------------------------- helpers */

static int buf_sink(void *payload, const uint8_t *data, size_t n, Err *e)
{
    (void)e;
    return buf_append(payload, data, n);
}

static int read_data(const char *rel, Buf *b)
{
    buf_init(b, 64u << 20);
    return util_read_file(test_data(rel), b, NULL);
}

/* Event log of the callbacks, to compare runs with different chunking. */
static int ev_dir(void *p, const char *path, Err *e)
{
    (void)e;
    return buf_printf(p, "D[%s]\n", path);
}
static int ev_fbegin(void *p, const char *path, int x, uint64_t size, Err *e)
{
    (void)e;
    return buf_printf(p, "F[%s] x=%d size=%llu:", path, x, (unsigned long long)size);
}
static int ev_fdata(void *p, const uint8_t *data, size_t n, Err *e)
{
    (void)e;
    return buf_append(p, data, n);
}
static int ev_fend(void *p, Err *e)
{
    (void)e;
    return buf_puts(p, "|\n");
}
static int ev_link(void *p, const char *path, const char *target, Err *e)
{
    (void)e;
    return buf_printf(p, "L[%s] -> %s\n", path, target);
}
static const NixNarCallbacks ev_cb = {ev_dir, ev_fbegin, ev_fdata, ev_fend, ev_link};

/* Feed `nar` in chunks: chunk 0 = all at once, 1 = one byte, -1 = random sizes.
 * Returns the final feed result; *used_total counts consumed bytes. */
static int feed_chunks(const uint8_t *nar, size_t n, int chunk, Buf *events, size_t *used_total,
                       Err *e)
{
    NixNarReader *r = nix_nar_reader_new(events ? &ev_cb : NULL, events);
    size_t pos = 0;
    int rc = 0;
    while (pos < n) {
        size_t take = chunk == 0 ? n - pos : chunk > 0 ? (size_t)chunk : 1 + (size_t)(rand() % 97);
        size_t used = 0;
        if (take > n - pos)
            take = n - pos;
        rc = nix_nar_reader_feed(r, nar + pos, take, &used, e);
        pos += used;
        if (rc != 0)
            break;
        if (used != take) {
            rc = -100;
            break;
        }
    }
    if (used_total)
        *used_total = pos;
    if (rc == 1 && nix_nar_reader_offset(r) != pos)
        rc = -101;
    nix_nar_reader_free(r);
    return rc;
}

/* A NAR built token by token. */
static void put_str(Buf *b, const void *s, size_t n)
{
    uint8_t len[8];
    static const uint8_t zero[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)n >> (8 * i));
    buf_append(b, len, 8);
    buf_append(b, s, n);
    buf_append(b, zero, (8 - n % 8) % 8);
}
static void put_tok(Buf *b, const char *s)
{
    put_str(b, s, strlen(s));
}
/* Tokens separated by spaces; "_" stands for the empty string. */
static void put_toks(Buf *b, const char *list)
{
    char *copy = xstrdup(list), *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
        put_tok(b, strcmp(t, "_") == 0 ? "" : t);
    free(copy);
}

/* Expect ERR_MALFORMED whose message contains `what` and "at byte OFF". */
static int bad_nar_fails(const Buf *b, const char *what, long long off, char *why, size_t whysz)
{
    Err err_ = {0}, *e = &err_;
    char at[64];
    int chunks[] = {0, 1, -1};
    for (size_t k = 0; k < UTIL_ARRAY_LEN(chunks); k++) {
        int rc = feed_chunks(b->p, b->len, chunks[k], NULL, NULL, e);
        if (rc != ERR_MALFORMED) {
            snprintf(why, whysz, "chunk %d: rc %d (%s), expected malformed '%s'", chunks[k], rc,
                     e->msg, what);
            return 0;
        }
        if (!strstr(e->msg, what)) {
            snprintf(why, whysz, "message '%s' lacks '%s'", e->msg, what);
            return 0;
        }
        if (off >= 0) {
            snprintf(at, sizeof at, "at byte %lld:", off);
            if (!strstr(e->msg, at)) {
                snprintf(why, whysz, "message '%s' lacks '%s'", e->msg, at);
                return 0;
            }
        }
    }
    return 1;
}

#define CHECK_BAD(b, what, off)                                                                    \
    do {                                                                                           \
        char why_[1200];                                                                           \
        CHECK_MSG(bad_nar_fails((b), (what), (off), why_, sizeof why_), "%s", why_);               \
    } while (0)

static void write_file(const char *path, const char *data, int mode)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd >= 0) {
        if (write(fd, data, strlen(data)) < 0)
            perror("write");
        close(fd);
    }
    chmod(path, (mode_t)mode);
}

/* The tree of the vector's make-tree.sh. */
static void make_example_tree(const char *d)
{
    char p[4096];
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/a", d);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/B", d);
    write_file(p, "upper\n", 0644);
    snprintf(p, sizeof p, "%s/a/x", d);
    write_file(p, "", 0644);
    snprintf(p, sizeof p, "%s/a-b", d);
    write_file(p, "#!/bin/sh\necho hi\n", 0755);
    snprintf(p, sizeof p, "%s/a.b", d);
    if (symlink("a/x", p) < 0)
        perror("symlink");
    snprintf(p, sizeof p, "%s/ab", d);
    write_file(p, "123456789", 0644);
}

/* ---------------------------------------------------------------- dump */

TEST(nix, nar, dump_matches_vector)
{
    Buf want, got;
    Err err_ = {0}, *e = &err_;
    char dir[4096];
    NixHash h;
    uint64_t size = 0;
    char t[NIX_HASH_TEXT_MAX];

    CHECK_OK(read_data("nix/nar/example.nar", &want), e);
    CHECK_INT(want.len, 1272);
    snprintf(dir, sizeof dir, "%s/example", test_tmpdir());
    make_example_tree(dir);
    buf_init(&got, 1u << 20);
    CHECK_OK(nix_nar_dump_path(dir, buf_sink, &got, e), e);
    CHECK_INT(got.len, want.len);
    CHECK(memcmp(got.p, want.p, want.len) == 0);

    CHECK_OK(nix_nar_hash_path(dir, &h, &size, e), e);
    CHECK_INT(size, 1272);
    nix_hash_to_base32(&h, t);
    CHECK_STR(t, "002k4gb7lk1nsqbzsh8ssrgb1rjdzzjc4mj718lswcch5b7f1szj");
    nix_hash_to_sri(&h, t);
    CHECK_STR(t, "sha256-8uvgziqQMa4pCkdWwuT/TeawXtYaQf0X1jZMetYjUwA=");
    buf_dispose(&want);
    buf_dispose(&got);
}

TEST(nix, nar, dump_single_file_symlink_and_big_file)
{
    Buf got, want;
    Err err_ = {0}, *e = &err_;
    char p[4096];
    size_t big = 200000 + 3; /* several 64 KiB chunks, odd size */
    char *data;
    int fd;

    /* a top-level symlink */
    snprintf(p, sizeof p, "%s/link", test_tmpdir());
    CHECK(symlink("/some/target", p) == 0);
    buf_init(&got, 1u << 20);
    buf_init(&want, 1u << 20);
    CHECK_OK(nix_nar_dump_path(p, buf_sink, &got, e), e);
    put_toks(&want, "nix-archive-1 ( type symlink target /some/target )");
    CHECK_INT(got.len, want.len);
    CHECK(memcmp(got.p, want.p, want.len) == 0);

    /* a top-level executable file bigger than the chunk size */
    snprintf(p, sizeof p, "%s/big", test_tmpdir());
    data = xmalloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)(i * 7 + 3);
    fd = open(p, O_CREAT | O_WRONLY, 0700);
    CHECK(fd >= 0);
    CHECK(write(fd, data, big) == (ssize_t)big);
    close(fd);
    buf_reset(&got);
    buf_reset(&want);
    CHECK_OK(nix_nar_dump_path(p, buf_sink, &got, e), e);
    put_toks(&want, "nix-archive-1 ( type regular executable _ contents");
    put_str(&want, data, big);
    put_tok(&want, ")");
    CHECK_INT(got.len, want.len);
    CHECK(memcmp(got.p, want.p, want.len) == 0);
    free(data);

    /* missing path and unsupported file type */
    snprintf(p, sizeof p, "%s/missing", test_tmpdir());
    CHECK_INT(nix_nar_dump_path(p, buf_sink, &got, e), ERR_NOTFOUND);
    snprintf(p, sizeof p, "%s/fifo", test_tmpdir());
    CHECK(mkfifo(p, 0644) == 0);
    CHECK_INT(nix_nar_dump_path(p, buf_sink, &got, e), ERR_UNSUPPORTED);
    CHECK(strstr(e->msg, "unsupported type") != NULL);
    buf_dispose(&got);
    buf_dispose(&want);
}

TEST(nix, nar, dump_sorts_by_bytes)
{
    /* byte order: "B" < "a" < "a-b" < "a.b" < "ab" < "\xc3\xa9" (UTF-8 after ASCII) */
    static const char *const names[] = {"ab", "\xc3\xa9", "a.b", "B", "a-b", "a"};
    static const char *const sorted[] = {"B", "a", "a-b", "a.b", "ab", "\xc3\xa9"};
    char d[4096], p[4200];
    Buf got, want;
    Err err_ = {0}, *e = &err_;

    snprintf(d, sizeof d, "%s/sorted", test_tmpdir());
    mkdir(d, 0755);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(names); i++) {
        snprintf(p, sizeof p, "%s/%s", d, names[i]);
        write_file(p, names[i], 0644);
    }
    buf_init(&got, 1u << 20);
    buf_init(&want, 1u << 20);
    CHECK_OK(nix_nar_dump_path(d, buf_sink, &got, e), e);
    put_toks(&want, "nix-archive-1 ( type directory");
    for (size_t i = 0; i < UTIL_ARRAY_LEN(sorted); i++) {
        put_toks(&want, "entry ( name");
        put_tok(&want, sorted[i]);
        put_toks(&want, "node ( type regular contents");
        put_tok(&want, sorted[i]);
        put_toks(&want, ") )");
    }
    put_tok(&want, ")");
    CHECK_INT(got.len, want.len);
    CHECK(memcmp(got.p, want.p, want.len) == 0);
    buf_dispose(&got);
    buf_dispose(&want);
}

/* ---------------------------------------------------------------- reader */

TEST(nix, nar, reader_any_chunking_same_result)
{
    Buf nar, ev_all, ev;
    Err err_ = {0}, *e = &err_;
    size_t used = 0;
    CHECK_OK(read_data("nix/nar/example.nar", &nar), e);
    buf_init(&ev_all, 1u << 20);
    buf_init(&ev, 1u << 20);
    CHECK_INT(feed_chunks(nar.p, nar.len, 0, &ev_all, &used, e), 1);
    CHECK_INT(used, nar.len);
    CHECK_STR(buf_cstr(&ev_all), "D[]\n"
                                 "F[B] x=0 size=6:upper\n|\n"
                                 "D[a]\n"
                                 "F[a/x] x=0 size=0:|\n"
                                 "F[a-b] x=1 size=18:#!/bin/sh\necho hi\n|\n"
                                 "L[a.b] -> a/x\n"
                                 "F[ab] x=0 size=9:123456789|\n");
    CHECK_INT(feed_chunks(nar.p, nar.len, 1, &ev, &used, e), 1);
    CHECK_INT(used, nar.len);
    CHECK_STR(buf_cstr(&ev), buf_cstr(&ev_all));
    srand(12345);
    for (int round = 0; round < 50; round++) {
        buf_reset(&ev);
        CHECK_INT(feed_chunks(nar.p, nar.len, -1, &ev, &used, e), 1);
        CHECK_INT(used, nar.len);
        CHECK_STR(buf_cstr(&ev), buf_cstr(&ev_all));
    }
    for (int chunk = 2; chunk <= 17; chunk++) {
        buf_reset(&ev);
        CHECK_INT(feed_chunks(nar.p, nar.len, chunk, &ev, &used, e), 1);
        CHECK_STR(buf_cstr(&ev), buf_cstr(&ev_all));
    }
    buf_dispose(&nar);
    buf_dispose(&ev_all);
    buf_dispose(&ev);
}

TEST(nix, nar, reader_finds_the_end)
{
    /* an unframed NAR followed by more bytes: the reader stops exactly at its end */
    Buf nar;
    Err err_ = {0}, *e = &err_;
    NixNarReader *r;
    size_t used = 0, n;
    CHECK_OK(read_data("nix/nar/example.nar", &nar), e);
    n = nar.len;
    buf_append(&nar, "NEXT MESSAGE", 12);
    r = nix_nar_reader_new(NULL, NULL);
    CHECK_INT(nix_nar_reader_feed(r, nar.p, 1000, &used, e), 0);
    CHECK_INT(used, 1000);
    CHECK_INT(nix_nar_reader_feed(r, nar.p + 1000, nar.len - 1000, &used, e), 1);
    CHECK_INT(used, n - 1000);
    CHECK_INT(nix_nar_reader_offset(r), n);
    /* complete: more input is not consumed */
    CHECK_INT(nix_nar_reader_feed(r, nar.p + n, 12, &used, e), 1);
    CHECK_INT(used, 0);
    nix_nar_reader_free(r);

    /* truncated: needs more */
    CHECK_INT(feed_chunks(nar.p, n - 1, 0, NULL, &used, e), 0);
    CHECK_INT(feed_chunks(nar.p, n - 1, 1, NULL, &used, e), 0);
    buf_dispose(&nar);
}

TEST(nix, nar, vectors_hash_and_roundtrip)
{
    Buf list, nar, again;
    Err err_ = {0}, *e = &err_;
    char *save = NULL, *line;
    int count = 0;
    CHECK_OK(read_data("nix/nar/vectors.tsv", &list), e);
    buf_init(&again, 16u << 20);
    for (line = strtok_r((char *)list.p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[6], *s2 = NULL, *tok;
        int nf = 0;
        NixHash h, want_nar;
        char t[NIX_HASH_TEXT_MAX], dest[4096];
        if (line[0] == '#')
            continue;
        for (tok = strtok_r(line, "\t", &s2); tok && nf < 6; tok = strtok_r(NULL, "\t", &s2))
            f[nf++] = tok;
        CHECK(nf == 6);
        snprintf(dest, sizeof dest, "nix/%s", f[0]);
        CHECK_OK(read_data(dest, &nar), e);
        CHECK_INT(nar.len, strtoull(f[3], NULL, 10));
        /* narHash */
        nix_hash_bytes(NIX_HASH_SHA256, nar.p, nar.len, &h);
        CHECK_OK(nix_hash_parse(f[2], -1, &want_nar, e), e);
        CHECK_MSG(memcmp(h.d, want_nar.d, 32) == 0, "narHash of %s", f[0]);
        /* reader accepts it whole and byte by byte */
        CHECK_INT(feed_chunks(nar.p, nar.len, 0, NULL, NULL, e), 1);
        CHECK_INT(feed_chunks(nar.p, nar.len, 1, NULL, NULL, e), 1);
        /* restore then dump gives the same bytes */
        snprintf(dest, sizeof dest, "%s/r%d", test_tmpdir(), count);
        CHECK_OK(nix_nar_restore(nar.p, nar.len, dest, e), e);
        buf_reset(&again);
        CHECK_OK(nix_nar_dump_path(dest, buf_sink, &again, e), e);
        CHECK_MSG(again.len == nar.len && memcmp(again.p, nar.p, nar.len) == 0,
                  "restore+dump of %s differs", f[0]);
        /* recursive CA outputs: the ca hash is the self-reference hash, and gives the path */
        if (strncmp(f[4], "fixed:r:sha256:", 15) == 0) {
            const char *base = nix_store_path_base(f[1]);
            char hp[NIX_HASH_PART_LEN + 1];
            memcpy(hp, base, NIX_HASH_PART_LEN);
            hp[NIX_HASH_PART_LEN] = '\0';
            CHECK_OK(nix_nar_hash_modulo_self(nar.p, nar.len, hp, &h, e), e);
            nix_hash_to_base32(&h, t);
            CHECK_STR(t, f[4] + 15);
            if (strcmp(f[5], "1") == 0) {
                char *p = nix_make_fixed_output_path(1, &h, nix_store_path_name(f[1]), NULL, 0, 1);
                CHECK_STR(p, f[1]);
                free(p);
            } else {
                /* without self-references it is the plain NAR hash */
                CHECK(memcmp(h.d, want_nar.d, 32) == 0);
            }
        }
        buf_dispose(&nar);
        count++;
    }
    CHECK_INT(count, 16);
    buf_dispose(&list);
    buf_dispose(&again);
}

TEST(nix, nar, self_reference_offsets)
{
    /* two occurrences: zeros in place plus "|off" per occurrence */
    const char *hp = "cy55in0i1srv9jd8f46ppxbg3qsf6x3q";
    Buf in, ref;
    NixHash a, b;
    Err err_ = {0}, *e = &err_;
    buf_init(&in, 4096);
    buf_init(&ref, 4096);
    buf_puts(&in, "xx");
    buf_puts(&in, hp);
    buf_puts(&in, "yyy");
    buf_puts(&in, hp);
    buf_puts(&in, "z");
    CHECK_OK(nix_nar_hash_modulo_self(in.p, in.len, hp, &a, e), e);
    buf_puts(&ref, "xx");
    buf_append(&ref, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 32);
    buf_puts(&ref, "yyy");
    buf_append(&ref, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 32);
    buf_puts(&ref, "z|2|37");
    nix_hash_bytes(NIX_HASH_SHA256, ref.p, ref.len, &b);
    CHECK(memcmp(a.d, b.d, 32) == 0);
    CHECK_INT(nix_nar_hash_modulo_self(in.p, in.len, "", &a, e), ERR_INVALID);
    buf_dispose(&in);
    buf_dispose(&ref);
}

TEST(nix, nar, restore_refuses_existing_and_trailing)
{
    Buf nar;
    Err err_ = {0}, *e = &err_;
    char dest[4096];
    CHECK_OK(read_data("nix/nar/example.nar", &nar), e);
    snprintf(dest, sizeof dest, "%s/x", test_tmpdir());
    CHECK_OK(nix_nar_restore(nar.p, nar.len, dest, e), e);
    CHECK_INT(nix_nar_restore(nar.p, nar.len, dest, e), ERR_IO); /* exists */
    snprintf(dest, sizeof dest, "%s/y", test_tmpdir());
    buf_append(&nar, "\0\0\0\0\0\0\0\0", 8);
    CHECK_INT(nix_nar_restore(nar.p, nar.len, dest, e), ERR_MALFORMED);
    CHECK(strstr(e->msg, "trailing data") != NULL);
    snprintf(dest, sizeof dest, "%s/z", test_tmpdir());
    CHECK_INT(nix_nar_restore(nar.p, 100, dest, e), ERR_MALFORMED);
    CHECK(strstr(e->msg, "truncated") != NULL);
    buf_dispose(&nar);
}

/* ---------------------------------------------------------------- bad input */

TEST(nix, nar, bad_input_is_reported_with_offset)
{
    Buf b;
    buf_init(&b, 1u << 20);

    put_toks(&b, "nix-archive-2 ( type regular contents _ )");
    CHECK_BAD(&b, "bad magic", 0);

    buf_reset(&b); /* unknown type */
    put_toks(&b, "nix-archive-1 ( type fifo )");
    CHECK_BAD(&b, "expected 'regular', 'symlink' or 'directory', got 'fifo'", 56);

    buf_reset(&b); /* unknown keyword in a directory */
    put_toks(&b, "nix-archive-1 ( type directory entri )");
    CHECK_BAD(&b, "expected 'entry' or ')', got 'entri'", 80);

    buf_reset(&b); /* regular file without contents */
    put_toks(&b, "nix-archive-1 ( type regular )");
    CHECK_BAD(&b, "expected 'executable' or 'contents'", 72);

    buf_reset(&b); /* executable flag must have an empty value */
    put_toks(&b, "nix-archive-1 ( type regular executable 1 contents _ )");
    CHECK_BAD(&b, "expected '', got '1'", 96);

    buf_reset(&b); /* non-zero padding */
    put_toks(&b, "nix-archive-1 ( type regular contents abc )");
    b.p[88 + 8 + 3 + 2] = 'X'; /* "abc" at 88: length, 3 bytes, 5 of padding */
    CHECK_BAD(&b, "non-zero padding", 88 + 8 + 3 + 2);

    buf_reset(&b); /* entries out of order */
    put_toks(&b, "nix-archive-1 ( type directory "
                 "entry ( name b node ( type regular contents _ ) ) "
                 "entry ( name a node ( type regular contents _ ) ) )");
    CHECK_BAD(&b, "entry 'a' is out of order (after 'b')", -1);

    buf_reset(&b); /* duplicate */
    put_toks(&b, "nix-archive-1 ( type directory "
                 "entry ( name a node ( type regular contents _ ) ) "
                 "entry ( name a node ( type symlink target x ) ) )");
    CHECK_BAD(&b, "duplicate entry name 'a'", -1);

    buf_reset(&b); /* order is per directory: a/z then b is fine, b < a/z is not checked */
    put_toks(&b, "nix-archive-1 ( type directory "
                 "entry ( name a node ( type directory "
                 "entry ( name z node ( type regular contents _ ) ) ) ) "
                 "entry ( name b node ( type regular contents _ ) ) )");
    CHECK_INT(feed_chunks(b.p, b.len, 1, NULL, NULL, NULL), 1);

    static const char *const bad_names[] = {"..", ".", "a/b", "/"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad_names); i++) {
        buf_reset(&b);
        put_toks(&b, "nix-archive-1 ( type directory entry ( name");
        put_tok(&b, bad_names[i]);
        put_toks(&b, "node ( type regular contents _ ) ) )");
        CHECK_BAD(&b, bad_names[i][0] == '.' ? "invalid entry name" : "contains '/'", 128);
    }
    buf_reset(&b);
    put_toks(&b,
             "nix-archive-1 ( type directory entry ( name _ node ( type regular contents _ ) ) )");
    CHECK_BAD(&b, "empty entry name", 128);
    buf_reset(&b);
    put_toks(&b, "nix-archive-1 ( type directory entry ( name");
    put_str(&b, "a\0b", 3);
    put_toks(&b, "node ( type regular contents _ ) ) )");
    CHECK_BAD(&b, "NUL byte", 128);

    buf_reset(&b); /* symlink targets */
    put_toks(&b, "nix-archive-1 ( type symlink target _ )");
    CHECK_BAD(&b, "empty symlink target", 88);
    buf_reset(&b);
    put_toks(&b, "nix-archive-1 ( type symlink target");
    put_str(&b, "x\0y", 3);
    put_tok(&b, ")");
    CHECK_BAD(&b, "NUL byte", 88);

    buf_reset(&b); /* trailing tokens after the root's ")" are simply not consumed */
    put_toks(&b, "nix-archive-1 ( type regular contents _ ) )");
    {
        size_t used = 0;
        CHECK_INT(feed_chunks(b.p, b.len, 0, NULL, &used, NULL), 1);
        CHECK_INT(used, b.len - 16);
    }
    buf_dispose(&b);
}

TEST(nix, nar, oversized_lengths)
{
    Buf b;
    uint8_t big[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    char name[LIMIT_NAR_NAME + 2];
    buf_init(&b, 1u << 20);

    put_tok(&b, "nix-archive-1");
    buf_append(&b, big, 8); /* a keyword of 2^63 bytes */
    CHECK_BAD(&b, "token of 9223372036854775807 bytes", 24);

    buf_reset(&b); /* a file of 2^63 bytes */
    put_toks(&b, "nix-archive-1 ( type regular contents");
    buf_append(&b, big, 8);
    CHECK_BAD(&b, "file of 9223372036854775807 bytes", 88);

    buf_reset(&b); /* a name longer than LIMIT_NAR_NAME */
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    put_toks(&b, "nix-archive-1 ( type directory entry ( name");
    put_tok(&b, name);
    CHECK_BAD(&b, "entry name of 256 bytes", 128);

    buf_reset(&b); /* a target longer than LIMIT_NAR_TARGET */
    put_toks(&b, "nix-archive-1 ( type symlink target");
    {
        uint8_t len[8] = {0x01, 0x10, 0, 0, 0, 0, 0, 0}; /* 4097 */
        buf_append(&b, len, 8);
    }
    CHECK_BAD(&b, "symlink target of 4097 bytes", 88);
    buf_dispose(&b);
}

TEST(nix, nar, depth_limit)
{
    Buf b;
    buf_init(&b, 4u << 20);
    put_tok(&b, "nix-archive-1");
    for (int i = 0; i <= LIMIT_NAR_DEPTH; i++)
        put_toks(&b, "( type directory entry ( name d node");
    CHECK_BAD(&b, "nested deeper than", -1);

    /* exactly LIMIT_NAR_DEPTH directories is fine */
    buf_reset(&b);
    put_tok(&b, "nix-archive-1");
    for (int i = 0; i < LIMIT_NAR_DEPTH - 1; i++)
        put_toks(&b, "( type directory entry ( name d node");
    put_toks(&b, "( type directory )");
    for (int i = 0; i < LIMIT_NAR_DEPTH - 1; i++)
        put_toks(&b, ") )");
    CHECK_INT(feed_chunks(b.p, b.len, 0, NULL, NULL, NULL), 1);
    buf_dispose(&b);
}

static int fail_begin(void *p, const char *path, int x, uint64_t size, Err *e)
{
    (void)p;
    (void)x;
    (void)size;
    return err_set(e, ERR_IO, "no space for '%s'", path);
}

TEST(nix, nar, callback_error_stops_the_reader)
{
    Buf nar;
    Err err_ = {0}, *e = &err_;
    NixNarReader *r;
    NixNarCallbacks cb = {0};
    size_t used = 0;
    int rc;
    CHECK_OK(read_data("nix/nar/example.nar", &nar), e);

    /* a callback's error is returned as is, and stays */
    cb.file_begin = fail_begin;
    r = nix_nar_reader_new(&cb, NULL);
    rc = nix_nar_reader_feed(r, nar.p, nar.len, &used, e);
    CHECK_INT(rc, ERR_IO);
    CHECK_STR(e->msg, "no space for 'B'");
    CHECK_INT(used, 232); /* up to the length of B's contents */
    CHECK_INT(nix_nar_reader_feed(r, nar.p, nar.len, &used, e), ERR_IO);
    CHECK_INT(used, 0);
    nix_nar_reader_free(r);

    /* sticky error after a failure; NULL Err is fine */
    nar.p[0] = 0x0e;
    r = nix_nar_reader_new(NULL, NULL);
    rc = nix_nar_reader_feed(r, nar.p, nar.len, &used, NULL);
    CHECK_INT(rc, ERR_MALFORMED);
    rc = nix_nar_reader_feed(r, nar.p, nar.len, &used, e);
    CHECK_INT(rc, ERR_MALFORMED);
    CHECK_INT(used, 0);
    nix_nar_reader_free(r);
    buf_dispose(&nar);
}

/* ---------------------------------------------------------------- export stream */

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* A wire string at *pos (length, bytes, padding) copied into out (caller frees). */
static int get_str(const Buf *b, size_t *pos, char **out)
{
    uint64_t n;
    if (*pos + 8 > b->len)
        return -1;
    n = get_u64(b->p + *pos);
    if (n > 4096 || *pos + 8 + n + (8 - n % 8) % 8 > b->len)
        return -1;
    *out = xstrndup((const char *)b->p + *pos + 8, (size_t)n);
    *pos += 8 + (size_t)n + (8 - n % 8) % 8;
    return 0;
}

TEST(nix, nar, export_stream_nars_are_delimited_by_the_reader)
{
    /* `nix-store --export` of srcdir and note.txt: each unframed NAR is found by the
     * reader alone, and its hash gives back the store path (source path for srcdir;
     * the file contents give note.txt's text path with srcdir as reference) */
    Buf ex;
    Err err_ = {0}, *e = &err_;
    size_t pos = 0;
    int count = 0;
    char *srcdir = NULL;
    CHECK_OK(read_data("nix/nar/note-and-srcdir.export", &ex), e);
    while (pos + 8 <= ex.len && get_u64(ex.p + pos) == 1) {
        NixNarReader *r;
        Buf events;
        size_t used = 0, nar_at;
        char *path = NULL, *deriver = NULL;
        uint64_t nrefs;
        NixHash h;
        char *want = NULL;

        buf_init(&events, 1u << 20);
        r = nix_nar_reader_new(&ev_cb, &events);
        pos += 8;
        nar_at = pos;
        /* feed everything that is left: the reader stops at the NAR's end */
        CHECK_INT(nix_nar_reader_feed(r, ex.p + pos, ex.len - pos, &used, e), 1);
        nix_nar_reader_free(r);
        pos += used;
        CHECK(pos + 8 <= ex.len);
        CHECK_INT(get_u64(ex.p + pos), 0x4558494e); /* "NIXE" */
        pos += 8;
        CHECK(get_str(&ex, &pos, &path) == 0);
        nrefs = get_u64(ex.p + pos);
        pos += 8;
        nix_hash_bytes(NIX_HASH_SHA256, ex.p + nar_at, used, &h);
        if (nrefs == 0) {
            /* srcdir: recursive sha256 of its NAR -> a source path */
            want = nix_make_fixed_output_path(1, &h, nix_store_path_name(path), NULL, 0, 0);
            srcdir = xstrdup(path);
        } else {
            /* note.txt: a single file; its contents hash to a text path with refs */
            char *ref = NULL;
            const char *ev = buf_cstr(&events), *colon = strchr(ev, ':');
            size_t n;
            CHECK(nrefs == 1 && get_str(&ex, &pos, &ref) == 0);
            CHECK_STR(ref, srcdir);
            CHECK(util_starts_with(ev, "F[] x=0 size=") && colon);
            n = strtoull(ev + 13, NULL, 10);
            nix_hash_bytes(NIX_HASH_SHA256, colon + 1, n, &h);
            want = nix_make_text_path(nix_store_path_name(path), &h, &ref, 1);
            free(ref);
        }
        CHECK_STR(want, path);
        CHECK(get_str(&ex, &pos, &deriver) == 0);
        CHECK_INT(get_u64(ex.p + pos), 0); /* no legacy signature */
        pos += 8;
        free(want);
        free(path);
        free(deriver);
        buf_dispose(&events);
        count++;
    }
    CHECK_INT(count, 2);
    CHECK_INT(get_u64(ex.p + pos), 0);
    CHECK_INT(pos + 8, ex.len);
    free(srcdir);
    buf_dispose(&ex);
}
