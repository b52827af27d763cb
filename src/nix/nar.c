/*
 * nar.c: the NAR (Nix ARchive) format of Nix 2.8: serialising a filesystem tree
 * (byte-identical to `nix-store --dump`), hashing it (`nix hash path`), an incremental
 * validating reader that finds the end of an unframed NAR, restoring a NAR into the
 * filesystem, and the CA self-reference hash (HashModuloSink).
 *
 * Wire format (every token is a `str`):
 *
 *   str(s)   = u64le len | s[len] | 0..7 zero bytes up to a multiple of 8
 *   NAR      = str("nix-archive-1") Node
 *   Node     = "(" "type" Body ")"
 *   Body     = "regular" [ "executable" "" ] "contents" str(data)
 *            | "symlink" "target" str(target)
 *            | "directory" { "entry" "(" "name" str(name) "node" Node ")" }
 *
 * Design:
 *   - The writer walks the tree with *at() calls relative to open directory fds (no
 *     path length limit, no symlink following), sorts entries by byte order and
 *     streams file contents through a 64 KiB buffer: it never holds a whole file.
 *   - The reader is a push parser: a token layer (length, data, padding) under a
 *     grammar state machine with an explicit stack of directory frames, so it takes
 *     any chunking (1 byte at a time included) and never recurses.  It accepts only
 *     the canonical form Nix writes (hashes are over the bytes): keyword order as
 *     above, zero padding, entry names strictly ascending (memcmp order), names not
 *     empty, ".", "..", and without '/' or NUL; all lengths meet LIMIT_NAR_*.
 *     Errors are ERR_MALFORMED "NAR: at byte N: ..." and are sticky.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nix/nix.h"

#define NAR_CHUNK (64u * 1024)
#define NAR_MAGIC "nix-archive-1"

/* ================================================================ writer */

typedef struct NarWriter {
    NixSink sink;
    void *payload;
    Err *e;
    uint8_t *buf; /* NAR_CHUNK bytes */
    size_t len;
    Buf path; /* path of the current node, for messages */
} NarWriter;

static int w_flush(NarWriter *w)
{
    int rc;
    if (w->len == 0)
        return 0;
    rc = w->sink(w->payload, w->buf, w->len, w->e);
    w->len = 0;
    return rc;
}

static int w_bytes(NarWriter *w, const void *data, size_t n)
{
    const uint8_t *p = data;
    int rc;
    while (n > 0) {
        size_t take;
        if (w->len == NAR_CHUNK) {
            rc = w_flush(w);
            if (rc < 0)
                return rc;
        }
        take = NAR_CHUNK - w->len;
        if (take > n)
            take = n;
        memcpy(w->buf + w->len, p, take);
        w->len += take;
        p += take;
        n -= take;
    }
    return 0;
}

static int w_u64(NarWriter *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return w_bytes(w, b, 8);
}

static int w_pad(NarWriter *w, uint64_t n)
{
    static const uint8_t zero[8];
    size_t pad = (size_t)((8 - n % 8) % 8);
    return w_bytes(w, zero, pad);
}

static int w_str(NarWriter *w, const void *s, size_t n)
{
    int rc = w_u64(w, n);
    if (rc < 0)
        return rc;
    rc = w_bytes(w, s, n);
    if (rc < 0)
        return rc;
    return w_pad(w, n);
}

static int w_tok(NarWriter *w, const char *s)
{
    return w_str(w, s, strlen(s));
}

static const char *w_path(NarWriter *w)
{
    return buf_cstr(&w->path);
}

/* Stream `size` bytes of an open file into the writer, reading into its buffer. */
static int w_file_data(NarWriter *w, int fd, uint64_t size)
{
    int rc;
    while (size > 0) {
        size_t want;
        ssize_t got;
        if (w->len == NAR_CHUNK) {
            rc = w_flush(w);
            if (rc < 0)
                return rc;
        }
        want = NAR_CHUNK - w->len;
        if (want > size)
            want = (size_t)size;
        got = read(fd, w->buf + w->len, want);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return err_sys(w->e, ERR_IO, "reading '%s'", w_path(w));
        }
        if (got == 0)
            return err_set(w->e, ERR_IO, "file '%s' shrank while it was being dumped", w_path(w));
        w->len += (size_t)got;
        size -= (uint64_t)got;
    }
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Dump the node `name` relative to at_fd (AT_FDCWD and a full path for the root). */
static int w_node(NarWriter *w, int at_fd, const char *name, unsigned depth)
{
    struct stat st;
    int rc = 0, fd = -1;
    DIR *dir = NULL;
    char *target = NULL;
    StrVec names;

    strvec_init(&names);
    if (fstatat(at_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        rc = err_sys(w->e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "getting status of '%s'",
                     w_path(w));
        goto out;
    }
    rc = w_tok(w, "(");
    if (rc == 0)
        rc = w_tok(w, "type");
    if (rc < 0)
        goto out;

    if (S_ISREG(st.st_mode)) {
        rc = w_tok(w, "regular");
        if (rc == 0 && (st.st_mode & S_IXUSR)) {
            rc = w_tok(w, "executable");
            if (rc == 0)
                rc = w_tok(w, "");
        }
        if (rc == 0)
            rc = w_tok(w, "contents");
        if (rc < 0)
            goto out;
        fd = openat(at_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            rc = err_sys(w->e, ERR_IO, "opening '%s'", w_path(w));
            goto out;
        }
        rc = w_u64(w, (uint64_t)st.st_size);
        if (rc == 0)
            rc = w_file_data(w, fd, (uint64_t)st.st_size);
        if (rc == 0)
            rc = w_pad(w, (uint64_t)st.st_size);
        if (rc < 0)
            goto out;
    } else if (S_ISLNK(st.st_mode)) {
        ssize_t n;
        if (st.st_size > (off_t)LIMIT_NAR_TARGET) {
            rc = err_set(w->e, ERR_TOOBIG, "symlink '%s': target longer than %u bytes", w_path(w),
                         (unsigned)LIMIT_NAR_TARGET);
            goto out;
        }
        target = xmalloc(LIMIT_NAR_TARGET + 1);
        n = readlinkat(at_fd, name, target, LIMIT_NAR_TARGET + 1);
        if (n < 0) {
            rc = err_sys(w->e, ERR_IO, "reading symlink '%s'", w_path(w));
            goto out;
        }
        if (n > (ssize_t)LIMIT_NAR_TARGET) {
            rc = err_set(w->e, ERR_TOOBIG, "symlink '%s': target longer than %u bytes", w_path(w),
                         (unsigned)LIMIT_NAR_TARGET);
            goto out;
        }
        rc = w_tok(w, "symlink");
        if (rc == 0)
            rc = w_tok(w, "target");
        if (rc == 0)
            rc = w_str(w, target, (size_t)n);
        if (rc < 0)
            goto out;
    } else if (S_ISDIR(st.st_mode)) {
        struct dirent *de;
        size_t base_len = w->path.len;
        /* the reader's limit: a NAR we write must be one we can read */
        if (depth >= LIMIT_NAR_DEPTH) {
            rc = err_set(w->e, ERR_TOOBIG, "'%s': directories nested deeper than %u", w_path(w),
                         (unsigned)LIMIT_NAR_DEPTH);
            goto out;
        }
        fd = openat(at_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            rc = err_sys(w->e, ERR_IO, "opening directory '%s'", w_path(w));
            goto out;
        }
        dir = fdopendir(fd);
        if (!dir) {
            rc = err_sys(w->e, ERR_IO, "opening directory '%s'", w_path(w));
            goto out;
        }
        fd = -1; /* owned by dir now */
        for (;;) {
            errno = 0;
            de = readdir(dir);
            if (!de)
                break;
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            strvec_push(&names, de->d_name);
        }
        if (errno != 0) {
            rc = err_sys(w->e, ERR_IO, "reading directory '%s'", w_path(w));
            goto out;
        }
        if (names.n > 1)
            qsort(names.v, names.n, sizeof names.v[0], cmp_names);
        rc = w_tok(w, "directory");
        if (rc < 0)
            goto out;
        for (size_t i = 0; i < names.n; i++) {
            rc = w_tok(w, "entry");
            if (rc == 0)
                rc = w_tok(w, "(");
            if (rc == 0)
                rc = w_tok(w, "name");
            if (rc == 0)
                rc = w_tok(w, names.v[i]);
            if (rc == 0)
                rc = w_tok(w, "node");
            if (rc < 0)
                goto out;
            buf_putc(&w->path, '/');
            buf_puts(&w->path, names.v[i]);
            if (buf_status(&w->path)) {
                rc = err_set(w->e, ERR_NOMEM, "path of a NAR entry too long");
                goto out;
            }
            rc = w_node(w, dirfd(dir), names.v[i], depth + 1);
            w->path.len = base_len;
            w->path.p[base_len] = '\0';
            if (rc < 0)
                goto out;
            rc = w_tok(w, ")");
            if (rc < 0)
                goto out;
        }
    } else {
        rc = err_set(w->e, ERR_UNSUPPORTED, "file '%s' has an unsupported type", w_path(w));
        goto out;
    }
    rc = w_tok(w, ")");
out:
    if (dir)
        closedir(dir);
    if (fd >= 0)
        close(fd);
    free(target);
    strvec_dispose(&names);
    return rc;
}

int nix_nar_dump_path(const char *path, NixSink sink, void *payload, Err *e)
{
    NarWriter w;
    int rc;

    memset(&w, 0, sizeof w);
    w.sink = sink;
    w.payload = payload;
    w.e = e;
    w.buf = xmalloc(NAR_CHUNK);
    buf_init(&w.path, LIMIT_BUF_DEFAULT);
    buf_puts(&w.path, path);
    rc = w_tok(&w, NAR_MAGIC);
    if (rc < 0)
        goto out;
    rc = w_node(&w, AT_FDCWD, path, 0);
    if (rc < 0)
        goto out;
    rc = w_flush(&w);
out:
    free(w.buf);
    buf_dispose(&w.path);
    return rc;
}

typedef struct HashSink {
    NixHashCtx *ctx;
    uint64_t n;
} HashSink;

static int hash_sink(void *payload, const uint8_t *data, size_t n, Err *e)
{
    HashSink *h = payload;
    (void)e;
    nix_hash_ctx_update(h->ctx, data, n);
    h->n += n;
    return 0;
}

int nix_nar_hash_path(const char *path, NixHash *out, uint64_t *nar_size, Err *e)
{
    HashSink h = {0};
    int rc;
    h.ctx = nix_hash_ctx_new(NIX_HASH_SHA256);
    if (!h.ctx)
        return err_set(e, ERR_NOMEM, "cannot create a hash context");
    rc = nix_nar_dump_path(path, hash_sink, &h, e);
    if (rc < 0) {
        nix_hash_ctx_free(h.ctx);
        return rc;
    }
    nix_hash_ctx_final(h.ctx, out);
    if (nar_size)
        *nar_size = h.n;
    return 0;
}

/* ================================================================ reader */

typedef enum { T_LEN, T_DATA, T_PAD } TokState;

typedef enum {
    G_MAGIC,
    G_OPEN,
    G_TYPE_KW,
    G_TYPE,
    G_REG_KW,
    G_EXEC_VAL,
    G_CONTENTS_KW,
    G_CONTENTS,
    G_CLOSE,
    G_TARGET_KW,
    G_TARGET,
    G_DIR_ITEM,
    G_ENTRY_OPEN,
    G_NAME_KW,
    G_NAME,
    G_NODE_KW,
    G_ENTRY_CLOSE,
    G_DONE,
} GramState;

/* What each grammar state expects, for messages. */
static const char *const g_expect[] = {
    [G_MAGIC] = "'" NAR_MAGIC "'",
    [G_OPEN] = "'('",
    [G_TYPE_KW] = "'type'",
    [G_TYPE] = "'regular', 'symlink' or 'directory'",
    [G_REG_KW] = "'executable' or 'contents'",
    [G_EXEC_VAL] = "''",
    [G_CONTENTS_KW] = "'contents'",
    [G_CONTENTS] = "file contents",
    [G_CLOSE] = "')'",
    [G_TARGET_KW] = "'target'",
    [G_TARGET] = "a symlink target",
    [G_DIR_ITEM] = "'entry' or ')'",
    [G_ENTRY_OPEN] = "'('",
    [G_NAME_KW] = "'name'",
    [G_NAME] = "an entry name",
    [G_NODE_KW] = "'node'",
    [G_ENTRY_CLOSE] = "')'",
    [G_DONE] = "nothing",
};

/* One open directory. */
typedef struct NarFrame {
    size_t path_len; /* length of this directory's path */
    size_t prev_len;
    int has_prev;
    char prev[LIMIT_NAR_NAME + 1]; /* previous entry name (for order checks) */
} NarFrame;

struct NixNarReader {
    NixNarCallbacks cb;
    void *payload;
    uint64_t off;     /* bytes consumed so far */
    uint64_t tok_off; /* offset of the current token's length field */
    TokState ts;
    GramState gs;
    uint8_t lenbuf[8];
    size_t lenfill;
    uint64_t tok_len, tok_left;
    size_t pad_left;
    uint8_t tok[LIMIT_NAR_TOKEN + 1];
    size_t tok_fill;
    int executable;
    NarFrame *frames;
    size_t depth, frames_cap;
    char *path; /* relative path of the current node, "" for the root */
    size_t path_len, path_cap;
    int failed;
    Err err; /* sticky error; also handed to callbacks */
};

NixNarReader *nix_nar_reader_new(const NixNarCallbacks *cb, void *payload)
{
    NixNarReader *r = xcalloc(1, sizeof *r);
    if (cb)
        r->cb = *cb;
    r->payload = payload;
    r->ts = T_LEN;
    r->gs = G_MAGIC;
    r->path_cap = 256;
    r->path = xmalloc(r->path_cap);
    r->path[0] = '\0';
    return r;
}

void nix_nar_reader_free(NixNarReader *r)
{
    if (!r)
        return;
    free(r->frames);
    free(r->path);
    free(r);
}

uint64_t nix_nar_reader_offset(const NixNarReader *r)
{
    return r->off;
}

/* Printable excerpt of a token for messages. */
static void tok_excerpt(const uint8_t *s, size_t n, char *out, size_t outsz)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < outsz; i++) {
        if (i == 40) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\'' && s[i] != '\\') {
            out[o++] = (char)s[i];
        } else {
            static const char hex[] = "0123456789abcdef";
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[s[i] >> 4];
            out[o++] = hex[s[i] & 15];
        }
    }
    out[o] = '\0';
}

static int r_fail(NixNarReader *r, uint64_t at, const char *fmt, ...) UTIL_PRINTF(3, 4);
static int r_fail(NixNarReader *r, uint64_t at, const char *fmt, ...)
{
    char msg[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->failed = 1;
    return err_set(&r->err, ERR_MALFORMED, "NAR: at byte %llu: %s", (unsigned long long)at, msg);
}

/* A callback failed: its message is in r->err already. */
static int r_cb_fail(NixNarReader *r, int rc)
{
    r->failed = 1;
    if (r->err.code == 0)
        err_set(&r->err, rc, "NAR: callback failed");
    r->err.code = rc;
    return rc;
}

static int tok_is(const NixNarReader *r, const char *kw)
{
    size_t n = strlen(kw);
    return r->tok_fill == n && memcmp(r->tok, kw, n) == 0;
}

static int r_unexpected(NixNarReader *r)
{
    char ex[200];
    tok_excerpt(r->tok, r->tok_fill, ex, sizeof ex);
    return r_fail(r, r->tok_off, "expected %s, got '%s'", g_expect[r->gs], ex);
}

/* Largest token length acceptable in the current state. */
static uint64_t r_max_len(const NixNarReader *r)
{
    switch (r->gs) {
    case G_CONTENTS: return LIMIT_NAR_FILE_SIZE;
    case G_NAME: return LIMIT_NAR_NAME;
    case G_TARGET: return LIMIT_NAR_TARGET;
    default: return LIMIT_NAR_TOKEN;
    }
}

static int r_path_push(NixNarReader *r, const uint8_t *name, size_t n)
{
    size_t need = r->path_len + 1 + n + 1;
    if (need > r->path_cap) {
        size_t cap = r->path_cap;
        while (cap < need)
            cap *= 2;
        r->path = xrealloc(r->path, cap);
        r->path_cap = cap;
    }
    if (r->path_len > 0)
        r->path[r->path_len++] = '/';
    memcpy(r->path + r->path_len, name, n);
    r->path_len += n;
    r->path[r->path_len] = '\0';
    return 0;
}

static void r_path_trunc(NixNarReader *r, size_t len)
{
    r->path_len = len;
    r->path[len] = '\0';
}

static int r_push_dir(NixNarReader *r)
{
    NarFrame *f;
    if (r->depth >= LIMIT_NAR_DEPTH)
        return r_fail(r, r->tok_off, "directories nested deeper than %u",
                      (unsigned)LIMIT_NAR_DEPTH);
    if (r->depth == r->frames_cap) {
        size_t cap = r->frames_cap ? r->frames_cap * 2 : 8;
        if (cap > LIMIT_NAR_DEPTH)
            cap = LIMIT_NAR_DEPTH;
        r->frames = xrealloc(r->frames, cap * sizeof *r->frames);
        r->frames_cap = cap;
    }
    f = &r->frames[r->depth++];
    f->path_len = r->path_len;
    f->prev_len = 0;
    f->has_prev = 0;
    return 0;
}

/* A node's ")" was read (or a directory's). */
static void r_node_closed(NixNarReader *r)
{
    r->gs = r->depth == 0 ? G_DONE : G_ENTRY_CLOSE;
}

static int r_check_name(NixNarReader *r)
{
    const uint8_t *s = r->tok;
    size_t n = r->tok_fill;
    NarFrame *f = &r->frames[r->depth - 1];
    char ex[200];
    int c;

    tok_excerpt(s, n, ex, sizeof ex);
    if (n == 0)
        return r_fail(r, r->tok_off, "empty entry name");
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return r_fail(r, r->tok_off, "invalid entry name '%s'", ex);
    if (memchr(s, '/', n))
        return r_fail(r, r->tok_off, "entry name '%s' contains '/'", ex);
    if (memchr(s, '\0', n))
        return r_fail(r, r->tok_off, "entry name '%s' contains a NUL byte", ex);
    if (f->has_prev) {
        size_t m = n < f->prev_len ? n : f->prev_len;
        c = memcmp(f->prev, s, m);
        if (c == 0)
            c = f->prev_len < n ? -1 : (f->prev_len > n ? 1 : 0);
        if (c == 0)
            return r_fail(r, r->tok_off, "duplicate entry name '%s'", ex);
        if (c > 0) {
            char pv[200];
            tok_excerpt((const uint8_t *)f->prev, f->prev_len, pv, sizeof pv);
            return r_fail(r, r->tok_off, "entry '%s' is out of order (after '%s')", ex, pv);
        }
    }
    memcpy(f->prev, s, n);
    f->prev_len = n;
    f->has_prev = 1;
    return 0;
}

/* A whole token (other than file contents) has been read into r->tok. */
static int r_token(NixNarReader *r)
{
    int rc;
    switch (r->gs) {
    case G_MAGIC:
        if (!tok_is(r, NAR_MAGIC))
            return r_fail(r, r->tok_off, "not a NAR (bad magic)");
        r->gs = G_OPEN;
        return 0;
    case G_OPEN:
    case G_ENTRY_OPEN:
        if (!tok_is(r, "("))
            return r_unexpected(r);
        r->gs = r->gs == G_OPEN ? G_TYPE_KW : G_NAME_KW;
        return 0;
    case G_TYPE_KW:
        if (!tok_is(r, "type"))
            return r_unexpected(r);
        r->gs = G_TYPE;
        return 0;
    case G_TYPE:
        if (tok_is(r, "regular")) {
            r->executable = 0;
            r->gs = G_REG_KW;
        } else if (tok_is(r, "symlink")) {
            r->gs = G_TARGET_KW;
        } else if (tok_is(r, "directory")) {
            rc = r_push_dir(r);
            if (rc < 0)
                return rc;
            if (r->cb.directory) {
                rc = r->cb.directory(r->payload, r->path, &r->err);
                if (rc < 0)
                    return r_cb_fail(r, rc);
            }
            r->gs = G_DIR_ITEM;
        } else {
            return r_unexpected(r);
        }
        return 0;
    case G_REG_KW:
        if (tok_is(r, "executable"))
            r->gs = G_EXEC_VAL;
        else if (tok_is(r, "contents"))
            r->gs = G_CONTENTS;
        else
            return r_unexpected(r);
        return 0;
    case G_EXEC_VAL:
        if (r->tok_fill != 0)
            return r_unexpected(r);
        r->executable = 1;
        r->gs = G_CONTENTS_KW;
        return 0;
    case G_CONTENTS_KW:
        if (!tok_is(r, "contents"))
            return r_unexpected(r);
        r->gs = G_CONTENTS;
        return 0;
    case G_CLOSE:
    case G_ENTRY_CLOSE:
        if (!tok_is(r, ")"))
            return r_unexpected(r);
        if (r->gs == G_CLOSE) {
            r_node_closed(r);
        } else {
            r_path_trunc(r, r->frames[r->depth - 1].path_len);
            r->gs = G_DIR_ITEM;
        }
        return 0;
    case G_TARGET_KW:
        if (!tok_is(r, "target"))
            return r_unexpected(r);
        r->gs = G_TARGET;
        return 0;
    case G_TARGET:
        if (r->tok_fill == 0)
            return r_fail(r, r->tok_off, "empty symlink target");
        if (memchr(r->tok, '\0', r->tok_fill))
            return r_fail(r, r->tok_off, "symlink target contains a NUL byte");
        r->tok[r->tok_fill] = '\0';
        if (r->cb.symlink) {
            rc = r->cb.symlink(r->payload, r->path, (const char *)r->tok, &r->err);
            if (rc < 0)
                return r_cb_fail(r, rc);
        }
        r->gs = G_CLOSE;
        return 0;
    case G_DIR_ITEM:
        if (tok_is(r, "entry")) {
            r->gs = G_ENTRY_OPEN;
        } else if (tok_is(r, ")")) {
            r->depth--;
            r_node_closed(r);
        } else {
            return r_unexpected(r);
        }
        return 0;
    case G_NAME_KW:
        if (!tok_is(r, "name"))
            return r_unexpected(r);
        r->gs = G_NAME;
        return 0;
    case G_NAME:
        rc = r_check_name(r);
        if (rc < 0)
            return rc;
        r_path_push(r, r->tok, r->tok_fill);
        r->gs = G_NODE_KW;
        return 0;
    case G_NODE_KW:
        if (!tok_is(r, "node"))
            return r_unexpected(r);
        r->gs = G_OPEN;
        return 0;
    case G_CONTENTS:
    case G_DONE: break;
    }
    return r_fail(r, r->tok_off, "internal error: bad state");
}

/* The token (data and padding) is complete. */
static int r_token_done(NixNarReader *r)
{
    int rc = 0;
    if (r->gs == G_CONTENTS) {
        if (r->cb.file_end) {
            rc = r->cb.file_end(r->payload, &r->err);
            if (rc < 0)
                return r_cb_fail(r, rc);
        }
        r->gs = G_CLOSE;
    } else {
        rc = r_token(r);
        if (rc < 0)
            return rc;
    }
    r->ts = T_LEN;
    r->lenfill = 0;
    r->tok_fill = 0;
    r->tok_off = r->off;
    return 0;
}

static int r_data_done(NixNarReader *r)
{
    r->pad_left = (size_t)((8 - r->tok_len % 8) % 8);
    if (r->pad_left > 0) {
        r->ts = T_PAD;
        return 0;
    }
    return r_token_done(r);
}

static int r_length(NixNarReader *r)
{
    uint64_t len = 0;
    int rc;
    for (int i = 7; i >= 0; i--)
        len = (len << 8) | r->lenbuf[i];
    if (len > r_max_len(r)) {
        if (r->gs == G_NAME)
            return r_fail(r, r->tok_off, "entry name of %llu bytes (limit %u)",
                          (unsigned long long)len, (unsigned)LIMIT_NAR_NAME);
        if (r->gs == G_TARGET)
            return r_fail(r, r->tok_off, "symlink target of %llu bytes (limit %u)",
                          (unsigned long long)len, (unsigned)LIMIT_NAR_TARGET);
        if (r->gs == G_CONTENTS)
            return r_fail(r, r->tok_off, "file of %llu bytes (limit %llu)", (unsigned long long)len,
                          (unsigned long long)LIMIT_NAR_FILE_SIZE);
        return r_fail(r, r->tok_off, "token of %llu bytes where %s was expected",
                      (unsigned long long)len, g_expect[r->gs]);
    }
    r->tok_len = len;
    r->tok_left = len;
    r->tok_fill = 0;
    if (r->gs == G_CONTENTS && r->cb.file_begin) {
        rc = r->cb.file_begin(r->payload, r->path, r->executable, len, &r->err);
        if (rc < 0)
            return r_cb_fail(r, rc);
    }
    if (len == 0)
        return r_data_done(r);
    r->ts = T_DATA;
    return 0;
}

int nix_nar_reader_feed(NixNarReader *r, const uint8_t *data, size_t n, size_t *used, Err *e)
{
    size_t i = 0;
    int rc = 0;

    if (r->failed)
        goto fail;
    while (i < n && r->gs != G_DONE) {
        size_t avail = n - i, take;
        switch (r->ts) {
        case T_LEN:
            take = 8 - r->lenfill;
            if (take > avail)
                take = avail;
            memcpy(r->lenbuf + r->lenfill, data + i, take);
            r->lenfill += take;
            i += take;
            r->off += take;
            if (r->lenfill == 8) {
                rc = r_length(r);
                if (rc < 0)
                    goto fail;
            }
            break;
        case T_DATA:
            take = r->tok_left < avail ? (size_t)r->tok_left : avail;
            if (r->gs == G_CONTENTS) {
                if (r->cb.file_data) {
                    rc = r->cb.file_data(r->payload, data + i, take, &r->err);
                    if (rc < 0) {
                        r_cb_fail(r, rc);
                        goto fail;
                    }
                }
            } else {
                memcpy(r->tok + r->tok_fill, data + i, take);
                r->tok_fill += take;
            }
            i += take;
            r->off += take;
            r->tok_left -= take;
            if (r->tok_left == 0) {
                rc = r_data_done(r);
                if (rc < 0)
                    goto fail;
            }
            break;
        case T_PAD:
            take = r->pad_left < avail ? r->pad_left : avail;
            for (size_t k = 0; k < take; k++) {
                if (data[i + k] != 0) {
                    r_fail(r, r->off + k, "non-zero padding byte 0x%02x", data[i + k]);
                    i += k;
                    r->off += k;
                    goto fail;
                }
            }
            i += take;
            r->off += take;
            r->pad_left -= take;
            if (r->pad_left == 0) {
                rc = r_token_done(r);
                if (rc < 0)
                    goto fail;
            }
            break;
        }
    }
    if (used)
        *used = i;
    return r->gs == G_DONE ? 1 : 0;
fail:
    if (used)
        *used = i;
    if (e)
        *e = r->err;
    return r->err.code < 0 ? r->err.code : ERR_MALFORMED;
}

/* ================================================================ restore */

typedef struct Restore {
    Buf full; /* dest + "/" + relative path */
    const char *dest;
    int fd;
    const char *cur; /* path of the open file, for messages */
} Restore;

static const char *restore_path(Restore *rs, const char *rel)
{
    buf_reset(&rs->full);
    buf_puts(&rs->full, rs->dest);
    if (rel[0]) {
        buf_putc(&rs->full, '/');
        buf_puts(&rs->full, rel);
    }
    return buf_status(&rs->full) ? NULL : buf_cstr(&rs->full);
}

static int rs_directory(void *payload, const char *path, Err *e)
{
    Restore *rs = payload;
    const char *p = restore_path(rs, path);
    if (!p)
        return err_set(e, ERR_NOMEM, "restore: path too long");
    if (mkdir(p, 0777) < 0)
        return err_sys(e, ERR_IO, "creating directory '%s'", p);
    return 0;
}

static int rs_file_begin(void *payload, const char *path, int executable, uint64_t size, Err *e)
{
    Restore *rs = payload;
    const char *p = restore_path(rs, path);
    struct stat st;
    (void)size;
    if (!p)
        return err_set(e, ERR_NOMEM, "restore: path too long");
    rs->fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (rs->fd < 0)
        return err_sys(e, ERR_IO, "creating file '%s'", p);
    if (executable) {
        if (fstat(rs->fd, &st) < 0 || fchmod(rs->fd, st.st_mode | S_IXUSR | S_IXGRP | S_IXOTH) < 0)
            return err_sys(e, ERR_IO, "making '%s' executable", p);
    }
    return 0;
}

static int rs_file_data(void *payload, const uint8_t *data, size_t n, Err *e)
{
    Restore *rs = payload;
    while (n > 0) {
        ssize_t w = write(rs->fd, data, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return err_sys(e, ERR_IO, "writing '%s'", buf_cstr(&rs->full));
        }
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

static int rs_file_end(void *payload, Err *e)
{
    Restore *rs = payload;
    int fd = rs->fd;
    rs->fd = -1;
    if (close(fd) < 0)
        return err_sys(e, ERR_IO, "closing '%s'", buf_cstr(&rs->full));
    return 0;
}

static int rs_symlink(void *payload, const char *path, const char *target, Err *e)
{
    Restore *rs = payload;
    const char *p = restore_path(rs, path);
    if (!p)
        return err_set(e, ERR_NOMEM, "restore: path too long");
    if (symlink(target, p) < 0)
        return err_sys(e, ERR_IO, "creating symlink '%s'", p);
    return 0;
}

int nix_nar_restore(const uint8_t *nar, size_t n, const char *dest, Err *e)
{
    static const NixNarCallbacks cb = {
        .directory = rs_directory,
        .file_begin = rs_file_begin,
        .file_data = rs_file_data,
        .file_end = rs_file_end,
        .symlink = rs_symlink,
    };
    Restore rs;
    NixNarReader *r = NULL;
    size_t used = 0;
    int rc;

    memset(&rs, 0, sizeof rs);
    rs.dest = dest;
    rs.fd = -1;
    buf_init(&rs.full, LIMIT_BUF_DEFAULT);
    r = nix_nar_reader_new(&cb, &rs);
    rc = nix_nar_reader_feed(r, nar, n, &used, e);
    if (rc < 0)
        goto out;
    if (rc == 0) {
        rc = err_set(e, ERR_MALFORMED, "NAR: at byte %llu: truncated (expected %s)",
                     (unsigned long long)n, g_expect[r->gs]);
        goto out;
    }
    if (used != n) {
        rc = err_set(e, ERR_MALFORMED, "NAR: at byte %llu: trailing data after the end",
                     (unsigned long long)used);
        goto out;
    }
    rc = 0;
out:
    if (rs.fd >= 0)
        close(rs.fd);
    nix_nar_reader_free(r);
    buf_dispose(&rs.full);
    return rc;
}

/* ================================================================ self-reference hash */

int nix_nar_hash_modulo_self(const uint8_t *nar, size_t n, const char *hash_part, NixHash *out,
                             Err *e)
{
    static const uint8_t zeros[64];
    size_t plen = hash_part ? strlen(hash_part) : 0;
    size_t pos = 0;
    NixHashCtx *ctx;
    Buf offs;
    int rc = 0;

    if (plen == 0 || plen > sizeof zeros)
        return err_set(e, ERR_INVALID, "self-reference hash: bad hash part '%s'",
                       hash_part ? hash_part : "");
    ctx = nix_hash_ctx_new(NIX_HASH_SHA256);
    if (!ctx)
        return err_set(e, ERR_NOMEM, "cannot create a hash context");
    buf_init(&offs, LIMIT_BUF_DEFAULT);
    while (pos < n) {
        const uint8_t *hit = memmem(nar + pos, n - pos, hash_part, plen);
        size_t at;
        if (!hit) {
            nix_hash_ctx_update(ctx, nar + pos, n - pos);
            break;
        }
        at = (size_t)(hit - nar);
        nix_hash_ctx_update(ctx, nar + pos, at - pos);
        nix_hash_ctx_update(ctx, zeros, plen);
        buf_printf(&offs, "|%zu", at);
        pos = at + plen;
    }
    if (buf_status(&offs)) {
        rc = err_set(e, ERR_NOMEM, "self-reference hash: out of memory");
        nix_hash_ctx_free(ctx);
        goto out;
    }
    if (offs.len > 0)
        nix_hash_ctx_update(ctx, offs.p, offs.len);
    nix_hash_ctx_final(ctx, out);
out:
    buf_dispose(&offs);
    return rc;
}
