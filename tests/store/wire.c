/* tests/store/wire.c: framing primitives (u64, padded strings, lists, framed streams,
 * unframed NARs) over memory, their limits, and the encoders' exact bytes. */
#include <stdlib.h>

#include "store_test.h"

/* Bytes built by hand for the decoders. */
typedef struct Bytes {
    Buf b;
} Bytes;

static void b_init(Bytes *x)
{
    buf_init(&x->b, 64u << 20);
}

static void b_u64(Bytes *x, uint64_t v)
{
    st_u64(&x->b, v);
}

static void b_str(Bytes *x, const char *s)
{
    st_str(&x->b, s);
}

static StoreWire *mem_wire(StoreWire *w, Bytes *x)
{
    store__wire_init_mem(w, x->b.p, x->b.len);
    return w;
}

TEST(store, wire, u64_and_string_roundtrip)
{
    StoreWire w, r;
    Err e, *ep = &e;
    uint64_t v;
    char *s = NULL;
    size_t len;
    store__wire_init_mem(&w, NULL, 0);
    CHECK_OK(store__wire_put_u64(&w, 0x0102030405060708ull, ep), ep);
    CHECK_OK(store__wire_put_cstr(&w, "hello", ep), ep);
    CHECK_OK(store__wire_put_cstr(&w, "", ep), ep);
    CHECK_OK(store__wire_put_cstr(&w, "12345678", ep), ep);
    CHECK_INT(w.wbuf.len, 8 + 16 + 8 + 16);
    CHECK_INT(w.wbuf.p[0], 8);
    CHECK_INT(w.wbuf.p[7], 1);
    store__wire_init_mem(&r, w.wbuf.p, w.wbuf.len);
    CHECK_OK(store__wire_u64(&r, &v, ep), ep);
    CHECK(v == 0x0102030405060708ull);
    CHECK_OK(store__wire_string(&r, 100, &s, &len, ep), ep);
    CHECK_STR(s, "hello");
    CHECK_INT(len, 5);
    free(s);
    CHECK_OK(store__wire_string(&r, 100, &s, &len, ep), ep);
    CHECK_STR(s, "");
    free(s);
    CHECK_OK(store__wire_string(&r, 100, &s, &len, ep), ep);
    CHECK_STR(s, "12345678");
    free(s);
    CHECK_INT(store__wire_u64(&r, &v, ep), ERR_EOF);
    store__wire_dispose(&r);
    store__wire_dispose(&w);
}

TEST(store, wire, string_limits_and_padding)
{
    Bytes x;
    StoreWire w;
    Err e;
    char *s = NULL;
    /* a length far beyond the limit: refused before any allocation */
    b_init(&x);
    b_u64(&x, 1ull << 60);
    CHECK_INT(store__wire_string(mem_wire(&w, &x), LIMIT_WIRE_STRING, &s, NULL, &e), ERR_TOOBIG);
    CHECK(s == NULL);
    store__wire_dispose(&w);
    /* non-zero padding */
    buf_reset(&x.b);
    b_u64(&x, 3);
    buf_append(&x.b, "abc\0\0\0\0\1", 8);
    CHECK_INT(store__wire_string(mem_wire(&w, &x), 100, &s, NULL, &e), ERR_MALFORMED);
    store__wire_dispose(&w);
    /* NUL inside */
    buf_reset(&x.b);
    b_u64(&x, 3);
    buf_append(&x.b, "a\0c\0\0\0\0\0", 8);
    CHECK_INT(store__wire_string(mem_wire(&w, &x), 100, &s, NULL, &e), ERR_MALFORMED);
    store__wire_dispose(&w);
    /* truncated */
    buf_reset(&x.b);
    b_u64(&x, 30);
    buf_append(&x.b, "abc", 3);
    CHECK_INT(store__wire_string(mem_wire(&w, &x), 100, &s, NULL, &e), ERR_EOF);
    CHECK(strstr(e.msg, "end of input") != NULL);
    store__wire_dispose(&w);
    buf_dispose(&x.b);
}

TEST(store, wire, lists_and_paths)
{
    Bytes x;
    StoreWire w;
    Err e, *ep = &e;
    StrVec sv;
    strvec_init(&sv);
    b_init(&x);
    b_u64(&x, 2);
    b_str(&x, "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple");
    b_str(&x, "/nix/store/0jbb69q0s5s7fj1l3xivnm1ml1vbrfwd-ca-b");
    CHECK_OK(store__wire_paths(mem_wire(&w, &x), &sv, ep), ep);
    CHECK_INT(sv.n, 2);
    store__wire_dispose(&w);
    strvec_dispose(&sv);
    /* a count beyond the limit */
    buf_reset(&x.b);
    b_u64(&x, (uint64_t)LIMIT_WIRE_LIST + 1);
    CHECK_INT(store__wire_paths(mem_wire(&w, &x), &sv, &e), ERR_TOOBIG);
    store__wire_dispose(&w);
    strvec_dispose(&sv);
    /* not a store path */
    buf_reset(&x.b);
    b_u64(&x, 1);
    b_str(&x, "/tmp/../etc/passwd");
    CHECK_INT(store__wire_paths(mem_wire(&w, &x), &sv, &e), ERR_MALFORMED);
    store__wire_dispose(&w);
    strvec_dispose(&sv);
    buf_dispose(&x.b);
}

TEST(store, wire, framed_stream)
{
    Bytes x;
    StoreWire w;
    Err e, *ep = &e;
    Buf out;
    uint64_t total = 0;
    buf_init(&out, 1 << 20);
    b_init(&x);
    b_u64(&x, 3);
    buf_append(&x.b, "abc", 3); /* frames are not padded */
    b_u64(&x, 5);
    buf_append(&x.b, "defgh", 5);
    b_u64(&x, 0);
    b_u64(&x, 42); /* what follows the stream stays unread */
    CHECK_OK(store__wire_read_framed(mem_wire(&w, &x), 1000, st_buf_sink, &out, &total, ep), ep);
    CHECK_INT(total, 8);
    CHECK(out.len == 8 && memcmp(out.p, "abcdefgh", 8) == 0);
    {
        uint64_t v;
        CHECK_OK(store__wire_u64(&w, &v, ep), ep);
        CHECK_INT(v, 42);
    }
    store__wire_dispose(&w);
    /* a frame over the limit, and a stream over the caller's total */
    buf_reset(&x.b);
    b_u64(&x, (uint64_t)LIMIT_WIRE_FRAME + 1);
    CHECK_INT(store__wire_read_framed(mem_wire(&w, &x), UINT64_MAX, NULL, NULL, NULL, &e),
              ERR_TOOBIG);
    store__wire_dispose(&w);
    buf_reset(&x.b);
    b_u64(&x, 10);
    buf_append(&x.b, "0123456789", 10);
    b_u64(&x, 0);
    CHECK_INT(store__wire_read_framed(mem_wire(&w, &x), 9, NULL, NULL, NULL, &e), ERR_TOOBIG);
    store__wire_dispose(&w);
    /* the writer's bytes */
    store__wire_init_mem(&w, NULL, 0);
    CHECK_OK(store__wire_put_frame(&w, "xyz", 3, ep), ep);
    CHECK_OK(store__wire_put_frame(&w, NULL, 0, ep), ep);
    CHECK_INT(w.wbuf.len, 8 + 3 + 8);
    CHECK(memcmp(w.wbuf.p + 8, "xyz", 3) == 0);
    store__wire_dispose(&w);
    buf_dispose(&x.b);
    buf_dispose(&out);
}

TEST(store, wire, unframed_nar_end_found_by_parsing)
{
    Buf nar, in, out;
    StoreWire w;
    Err e, *ep = &e;
    uint64_t size = 0, v;
    buf_init(&nar, 1 << 20);
    buf_init(&in, 1 << 20);
    buf_init(&out, 1 << 20);
    CHECK_OK(util_read_file(test_data("store/example.nar"), &nar, ep), ep);
    CHECK_INT(nar.len, 1272);
    buf_append(&in, nar.p, nar.len);
    buf_append(&in, "\x73\x74\x6c\x61\0\0\0\0", 8); /* the next message */
    store__wire_init_mem(&w, in.p, in.len);
    CHECK_OK(store__wire_copy_nar(&w, st_buf_sink, &out, &size, ep), ep);
    CHECK_INT(size, 1272);
    CHECK(out.len == nar.len && memcmp(out.p, nar.p, nar.len) == 0);
    CHECK_OK(store__wire_u64(&w, &v, ep), ep);
    CHECK(v == STORE_STDERR_LAST);
    store__wire_dispose(&w);
    /* cut short: EOF; garbage: malformed */
    store__wire_init_mem(&w, nar.p, 700);
    CHECK_INT(store__wire_copy_nar(&w, NULL, NULL, NULL, &e), ERR_EOF);
    store__wire_dispose(&w);
    nar.p[20] = 'X';
    store__wire_init_mem(&w, nar.p, nar.len);
    CHECK_INT(store__wire_copy_nar(&w, NULL, NULL, NULL, &e), ERR_MALFORMED);
    store__wire_dispose(&w);
    buf_dispose(&nar);
    buf_dispose(&in);
    buf_dispose(&out);
}

TEST(store, wire, basic_derivation_bytes)
{
    /* the BasicDerivation of the daemon transcript's "floating CA" build */
    static char out_name[] = "out", empty[] = "", algo[] = "r:sha256",
                src[] = "/nix/store/am5yjypfvcnvhkbk29lmvchax7dd7f23-ca-a", sys[] = "x86_64-linux",
                sh[] = "/bin/sh", a0[] = "-c";
    char *srcs[] = {src};
    char *args[] = {a0};
    NixDrvOutput o = {.name = out_name, .path = empty, .hash_algo = algo, .hash = empty};
    NixDrv d;
    StoreWire w;
    Err e, *ep = &e;
    static const uint8_t expect[] = {
        0x01, 0, 0,    0, 0,   0,   0,   0,   0x03, 0,   0,    0,   0, 0, 0,    0, 'o', 'u',
        't',  0, 0,    0, 0,   0,   0,   0,   0,    0,   0,    0,   0, 0, 0x08, 0, 0,   0,
        0,    0, 0,    0, 'r', ':', 's', 'h', 'a',  '2', '5',  '6', 0, 0, 0,    0, 0,   0,
        0,    0, 0x01, 0, 0,   0,   0,   0,   0,    0,   0x30, 0,   0, 0, 0,    0, 0,   0,
    };
    memset(&d, 0, sizeof d);
    d.outputs = &o;
    d.n_outputs = 1;
    d.srcs = srcs;
    d.n_srcs = 1;
    d.platform = sys;
    d.builder = sh;
    d.args = args;
    d.n_args = 1;
    store__wire_init_mem(&w, NULL, 0);
    CHECK_OK(store__put_basic_drv(&w, &d, ep), ep);
    CHECK(w.wbuf.len > sizeof expect);
    CHECK(memcmp(w.wbuf.p, expect, sizeof expect) == 0);
    CHECK(memcmp(w.wbuf.p + sizeof expect, src, 0x30) == 0);
    store__wire_dispose(&w);
}

/* Log text is data: NUL bytes pass, a text longer than a piece arrives in pieces with
 * the suffix on the last, an empty one is the suffix alone, a skipped one is consumed. */
typedef struct Pieces {
    Buf all;
    int n;
    size_t max;
} Pieces;

static void on_piece(void *payload, const char *s, size_t n)
{
    Pieces *p = payload;
    buf_append(&p->all, s, n);
    p->n++;
    if (n > p->max)
        p->max = n;
}

TEST(store, wire, text_is_bytes_in_pieces)
{
    static const char nul[] = "a\0b";
    StoreWire w;
    Bytes x;
    Pieces p = {0};
    Err e, *ep = &e;
    char big[1000];
    uint64_t v;
    memset(big, 'x', sizeof big);
    b_init(&x);
    st_u64(&x.b, 3);
    buf_append(&x.b, nul, 3);
    buf_append(&x.b, "\0\0\0\0\0", 5);
    st_u64(&x.b, sizeof big);
    buf_append(&x.b, big, sizeof big);
    st_u64(&x.b, 0);
    st_u64(&x.b, 9);
    buf_append(&x.b, "skipped!!\0\0\0\0\0\0\0", 16);
    b_u64(&x, 42);
    buf_init(&p.all, 1 << 20);
    mem_wire(&w, &x);
    CHECK_OK(store__wire_text(&w, 300, "\n", on_piece, &p, ep), ep);
    CHECK_INT(p.all.len, 4);
    CHECK(memcmp(p.all.p, "a\0b\n", 4) == 0);
    CHECK_OK(store__wire_text(&w, 300, "\n", on_piece, &p, ep), ep);
    CHECK_INT(p.n, 5); /* 1 + 4 pieces of <= 300 */
    CHECK_INT(p.max, 300);
    CHECK_INT(p.all.len, 4 + sizeof big + 1);
    CHECK_OK(store__wire_text(&w, 300, "\n", on_piece, &p, ep), ep);
    CHECK_INT(p.all.len, 4 + sizeof big + 2);
    CHECK_OK(store__wire_text(&w, 300, NULL, NULL, NULL, ep), ep);
    CHECK_OK(store__wire_u64(&w, &v, ep), ep);
    CHECK_INT(v, 42);
    buf_dispose(&p.all);
    buf_dispose(&x.b);
    store__wire_dispose(&w);
}
