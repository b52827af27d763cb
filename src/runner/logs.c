/*
 * logs.c: build logs.  A step's log streams into LOG_DIR/<first 2 chars of the drv
 * basename>/<rest>.zst as one zstd frame, flushed after every chunk so it can be
 * tailed while the build runs (a reader decompresses what has been flushed).  The
 * log-size limit is enforced here, whatever the peer does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "runner/runner_int.h"

struct RunnerLog {
    int fd;
    ZSTD_CCtx *cctx;
    uint8_t *out;
    size_t out_cap;
    uint64_t written; /* uncompressed bytes accepted */
    uint64_t limit;   /* 0 = none */
    int over_limit;
    char *path;
};

char *runner_log_path(const char *log_dir, const char *drv_path)
{
    const char *base = strrchr(drv_path, '/');
    base = base ? base + 1 : drv_path;
    if (strlen(base) < 3)
        return NULL;
    return xasprintf("%s/%.2s/%s.zst", log_dir, base, base + 2);
}

int runner_log_open(const char *log_dir, const char *drv_path, uint64_t limit, RunnerLog **out,
                    Err *e)
{
    RunnerLog *l = NULL;
    char *path = runner_log_path(log_dir, drv_path), *dir = NULL, *slash;
    int rc = 0;
    if (!path)
        return err_set(e, ERR_INVALID, "bad drv path '%s' for a log", drv_path);
    dir = xstrdup(path);
    slash = strrchr(dir, '/');
    *slash = '\0';
    rc = util_mkdir_p(dir, 0755, e);
    if (rc < 0)
        goto out;
    l = xcalloc(1, sizeof *l);
    l->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (l->fd < 0) {
        rc = err_sys(e, ERR_IO, "cannot create log '%s'", path);
        goto out;
    }
    l->cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(l->cctx, ZSTD_c_compressionLevel, 3);
    l->out_cap = ZSTD_CStreamOutSize();
    l->out = xmalloc(l->out_cap);
    l->limit = limit;
    l->path = path;
    path = NULL;
    *out = l;
    l = NULL;
out:
    if (l) {
        if (l->fd >= 0)
            close(l->fd);
        free(l);
    }
    free(path);
    free(dir);
    return rc;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int compress(RunnerLog *l, const uint8_t *data, size_t n, ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {data, n, 0};
    for (;;) {
        ZSTD_outBuffer ob = {l->out, l->out_cap, 0};
        size_t left = ZSTD_compressStream2(l->cctx, &ob, &in, mode);
        if (ZSTD_isError(left))
            return -1;
        if (ob.pos && write_all(l->fd, l->out, ob.pos) < 0)
            return -1;
        if (mode == ZSTD_e_continue ? in.pos == in.size : left == 0)
            return 0;
    }
}

/* Append a chunk.  Returns 1 when the log limit was hit (the chunk is cut at the
 * limit and a note appended), 0 otherwise, or an error. */
int runner_log_write(RunnerLog *l, const void *data, size_t n, Err *e)
{
    int hit = 0;
    if (l->over_limit)
        return 1;
    if (l->limit && l->written + n > l->limit) {
        n = (size_t)(l->limit - l->written);
        hit = 1;
    }
    if (compress(l, data, n, ZSTD_e_flush) < 0)
        return err_sys(e, ERR_IO, "cannot write log '%s'", l->path);
    l->written += n;
    if (hit) {
        static const char note[] = "\nsluice: log limit exceeded, build stopped\n";
        l->over_limit = 1;
        compress(l, (const uint8_t *)note, sizeof note - 1, ZSTD_e_flush);
    }
    return hit;
}

uint64_t runner_log_size(const RunnerLog *l)
{
    return l->written;
}

const char *runner_log_file(const RunnerLog *l)
{
    return l->path;
}

int runner_log_close(RunnerLog *l, Err *e)
{
    int rc = 0;
    if (!l)
        return 0;
    if (compress(l, NULL, 0, ZSTD_e_end) < 0)
        rc = err_sys(e, ERR_IO, "cannot finish log '%s'", l->path);
    if (close(l->fd) < 0 && rc == 0)
        rc = err_sys(e, ERR_IO, "cannot close log '%s'", l->path);
    ZSTD_freeCCtx(l->cctx);
    free(l->out);
    free(l->path);
    free(l);
    return rc;
}

/* Read a whole log, decompressed (also a log still being written: what was flushed).
 * Falls back to an uncompressed file without ".zst" (Hydra's layout). */
int runner_log_read(const char *log_dir, const char *drv_path, Buf *out, Err *e)
{
    char *path = runner_log_path(log_dir, drv_path);
    Buf raw;
    ZSTD_DCtx *d = NULL;
    int rc;
    if (!path)
        return err_set(e, ERR_INVALID, "bad drv path '%s'", drv_path);
    buf_init(&raw, LIMIT_BUF_DEFAULT);
    rc = util_read_file(path, &raw, e);
    if (rc == ERR_NOTFOUND) {
        /* plain log as Hydra writes it */
        path[strlen(path) - 4] = '\0';
        err_clear(e);
        rc = util_read_file(path, out, e);
        goto out;
    }
    if (rc < 0)
        goto out;
    d = ZSTD_createDCtx();
    {
        ZSTD_inBuffer in = {raw.p, raw.len, 0};
        uint8_t tmp[65536];
        while (in.pos < in.size) {
            ZSTD_outBuffer ob = {tmp, sizeof tmp, 0};
            size_t r = ZSTD_decompressStream(d, &ob, &in);
            if (ZSTD_isError(r)) {
                rc = err_set(e, ERR_MALFORMED, "log '%s': %s", path, ZSTD_getErrorName(r));
                goto out;
            }
            if (buf_append(out, tmp, ob.pos) < 0) {
                rc = err_set(e, ERR_TOOBIG, "log '%s' too large", path);
                goto out;
            }
            if (ob.pos == 0 && r != 0 && in.pos == in.size)
                break; /* truncated frame (log still being written) */
        }
    }
out:
    ZSTD_freeDCtx(d);
    buf_dispose(&raw);
    free(path);
    return rc;
}
