/* tests/store/store_test.h: helpers shared by the store tests (included, not compiled
 * on its own). */
#ifndef SLUICE_STORE_TEST_H
#define SLUICE_STORE_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_int.h"
#include "test.h"

/* Nix settings of the test suite (tests/harness/env.sh does the same for scripts). */
static inline void st_nix_env(void)
{
    setenv("NIX_CONFIG",
           "experimental-features = nix-command ca-derivations\nsubstituters =\n"
           "build-users-group =\nsandbox = false\nfsync-metadata = false\n",
           1);
    setenv("NIX_CONF_DIR", test_data("../harness/nixconf"), 1);
}

/* Run a shell command; its stdout (trailing newline removed) or NULL on failure.
 * Caller frees. */
static inline char *st_sh(const char *fmt, ...) UTIL_PRINTF(1, 2);
static inline char *st_sh(const char *fmt, ...)
{
    char *cmd, buf[4096];
    va_list ap;
    Buf out;
    FILE *f;
    int st;
    va_start(ap, fmt);
    if (vasprintf(&cmd, fmt, ap) < 0) {
        va_end(ap);
        return NULL;
    }
    va_end(ap);
    buf_init(&out, 1 << 24);
    f = popen(cmd, "r");
    free(cmd);
    if (!f) {
        buf_dispose(&out);
        return NULL;
    }
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;)
        buf_append(&out, buf, n);
    st = pclose(f);
    if (st != 0) {
        buf_dispose(&out);
        return NULL;
    }
    while (out.len > 0 && out.p[out.len - 1] == '\n')
        out.p[--out.len] = '\0';
    return buf_take(&out, NULL);
}

/* Peer bytes built by hand. */
static inline void st_u64(Buf *b, uint64_t v)
{
    uint8_t d[8];
    for (int i = 0; i < 8; i++)
        d[i] = (uint8_t)(v >> (8 * i));
    buf_append(b, d, 8);
}

static inline void st_str(Buf *b, const char *s)
{
    static const uint8_t z[8];
    size_t n = strlen(s);
    st_u64(b, n);
    buf_append(b, s, n);
    buf_append(b, z, (8 - n % 8) % 8);
}

/* Read a data file under tests/data. */
static inline int st_read(const char *rel, Buf *b)
{
    buf_init(b, 64u << 20);
    return util_read_file(test_data(rel), b, NULL);
}

/* Wire bytes, as both protocols write them: u64 little-endian, strings padded to 8. */
static inline void st_wire_u64(Buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    buf_append(b, x, sizeof x);
}

static inline void st_wire_str(Buf *b, const char *s)
{
    static const uint8_t pad[8] = {0};
    size_t n = strlen(s);
    st_wire_u64(b, n);
    buf_append(b, s, n);
    buf_append(b, pad, (8 - n % 8) % 8);
}

/* A memory session sent exactly the bytes of req and read every reply byte. */
#define ST_CHECK_EXCHANGE(c, req)                                                                  \
    do {                                                                                           \
        CHECK_INT((c)->w.wbuf.len, (req).len);                                                     \
        CHECK(memcmp((c)->w.wbuf.p, (req).p, (req).len) == 0);                                     \
        CHECK((c)->w.rpos == (c)->w.rlen);                                                         \
    } while (0)

/* A NAR held in memory, served by a StoreNarSource. */
typedef struct StMemNar {
    const uint8_t *p;
    size_t n, off;
} StMemNar;

static inline int st_mem_src(void *payload, uint8_t *buf, size_t cap, size_t *got, Err *e)
{
    StMemNar *m = payload;
    size_t k = m->n - m->off;
    (void)e;
    if (k > cap)
        k = cap;
    memcpy(buf, m->p + m->off, k);
    m->off += k;
    *got = k;
    return 0;
}

static inline int st_buf_sink(void *payload, const uint8_t *data, size_t n, Err *e)
{
    (void)e;
    return buf_append(payload, data, n);
}

/* Collects log callbacks. */
static inline void st_log(void *payload, StoreLogKind kind, const char *text, size_t len)
{
    Buf *b = payload;
    if (kind == STORE_LOG_BUILD)
        buf_append(b, text, len);
}

/* A unique word for derivations that must be new to the store. */
static inline char *st_nonce(void)
{
    static unsigned seq;
    return xasprintf("n%d-%llu-%u", (int)getpid(), (unsigned long long)util_now_ms(), ++seq);
}

/* A floating CA derivation without inputs whose builder runs `script` ($out set). */
static inline NixDrv *st_ca_drv(const char *name, const char *script)
{
    char ph[NIX_PLACEHOLDER_LEN + 1];
    Buf t, esc;
    NixDrv *d = NULL;
    Err e;
    nix_placeholder_own("out", ph);
    buf_init(&esc, 1 << 20);
    for (const char *p = script; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_putc(&esc, '\\');
        if (*p == '\n')
            buf_puts(&esc, "\\n");
        else
            buf_putc(&esc, *p);
    }
    buf_init(&t, 1 << 20);
    buf_printf(&t,
               "Derive([(\"out\",\"\",\"r:sha256\",\"\")],[],[],\"x86_64-linux\",\"/bin/sh\","
               "[\"-c\",\"%s\"],[(\"builder\",\"/bin/sh\"),(\"name\",\"%s\"),(\"out\",\"%s\"),"
               "(\"system\",\"x86_64-linux\")])",
               buf_cstr(&esc), name, ph);
    if (nix_drv_parse(t.p, t.len, &d, &e) < 0) {
        fprintf(stderr, "st_ca_drv: %s\n", e.msg);
        d = NULL;
    } else {
        d->name = xstrdup(name);
    }
    buf_dispose(&t);
    buf_dispose(&esc);
    return d;
}

#endif
