/* buf.c: Buf, a growable byte buffer with a hard cap and sticky errors; file helpers. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

void buf_init(Buf *b, size_t max)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->max = max;
    b->status = 0;
}

void buf_dispose(Buf *b)
{
    if (!b)
        return;
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->status = 0;
}

void buf_reset(Buf *b)
{
    b->len = 0;
    b->status = 0;
    if (b->p)
        b->p[0] = '\0';
}

int buf_reserve(Buf *b, size_t extra)
{
    size_t need, ncap;
    uint8_t *np;
    if (b->status)
        return b->status;
    /* +1 for the NUL terminator kept after the data */
    if (util_add(b->len, extra, &need) || util_add(need, 1, &need) || need - 1 > b->max) {
        b->status = ERR_TOOBIG;
        return b->status;
    }
    if (need <= b->cap)
        return 0;
    ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > b->max + 1)
        ncap = b->max + 1 > need ? b->max + 1 : need;
    np = realloc(b->p, ncap);
    if (!np) {
        b->status = ERR_NOMEM;
        return b->status;
    }
    b->p = np;
    b->cap = ncap;
    return 0;
}

int buf_append(Buf *b, const void *data, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int buf_puts(Buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_putc(Buf *b, int c)
{
    uint8_t ch = (uint8_t)c;
    return buf_append(b, &ch, 1);
}

int buf_vprintf(Buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n, rc;
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return b->status = ERR_INVALID;
    rc = buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(Buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int buf_status(const Buf *b)
{
    return b->status;
}

const char *buf_cstr(Buf *b)
{
    if (!b->p)
        return "";
    b->p[b->len] = '\0'; /* a buffer only reserved so far was never terminated */
    return (const char *)b->p;
}

char *buf_take(Buf *b, size_t *len)
{
    char *p = (char *)b->p;
    if (!p)
        p = xstrdup("");
    if (len)
        *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void buf_consume(Buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p)
        b->p[b->len] = '\0';
}

int util_read_file(const char *path, Buf *b, Err *e)
{
    int fd = -1, rc = 0;
    struct stat st;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = err_sys(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "cannot open '%s'", path);
        goto out;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > b->max) {
        rc = err_set(e, ERR_TOOBIG, "'%s' is %lld bytes, over the limit of %zu", path,
                     (long long)st.st_size, b->max);
        goto out;
    }
    for (;;) {
        ssize_t n;
        size_t room = b->max - b->len < 65536 ? b->max - b->len : 65536;
        if (room == 0) {
            /* at the cap: one more byte means too big */
            uint8_t probe;
            n = read(fd, &probe, 1);
            if (n > 0) {
                rc = err_set(e, ERR_TOOBIG, "'%s': larger than the limit of %zu bytes", path,
                             b->max);
                goto out;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = err_sys(e, ERR_IO, "cannot read '%s'", path);
                goto out;
            }
            break;
        }
        rc = buf_reserve(b, room);
        if (rc) {
            rc = err_set(e, rc, "'%s': larger than the limit of %zu bytes", path, b->max);
            goto out;
        }
        n = read(fd, b->p + b->len, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = err_sys(e, ERR_IO, "cannot read '%s'", path);
            goto out;
        }
        if (n == 0)
            break;
        b->len += (size_t)n;
        b->p[b->len] = '\0';
    }
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int util_write_file_atomic(const char *path, const void *data, size_t n, Err *e)
{
    char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    int fd = -1, rc = 0;
    const uint8_t *p = data;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = err_sys(e, ERR_IO, "cannot create '%s'", tmp);
        goto out;
    }
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = err_sys(e, ERR_IO, "cannot write '%s'", tmp);
            goto out;
        }
        p += w;
        n -= (size_t)w;
    }
    if (fsync(fd) < 0) {
        rc = err_sys(e, ERR_IO, "cannot fsync '%s'", tmp);
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) < 0)
        rc = err_sys(e, ERR_IO, "cannot rename '%s' to '%s'", tmp, path);
out:
    if (fd >= 0)
        close(fd);
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

int util_mkdir_p(const char *path, int mode, Err *e)
{
    char *p = xstrdup(path);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST) {
                rc = err_sys(e, ERR_IO, "cannot create directory '%s'", p);
                break;
            }
            *s = c;
            if (c == '\0')
                break;
        }
    }
    free(p);
    return rc;
}
