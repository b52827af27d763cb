/*
 * logs.c: build logs, where Hydra's runner, hydra-server and hydra-notify keep them.
 * A step's log streams into LOG_DIR/<first 2 chars of the drv basename>/<rest>, plain,
 * as Hydra's runner writes it (hydra-server tails it while the step runs).  When the
 * step ends the log is compressed to <rest>.zst (written aside, renamed into place,
 * then the plain file removed, so a complete copy exists at every moment), before the
 * step_finished notification names the plain path: hydra-notify's CompressLog finds
 * nothing left to compress and the log stays where hydra-server looks (plain, .bz2,
 * .zst).  Reading takes the plain file, else .zst, else an old .bz2 of Hydra's.  The
 * log-size limit is enforced here, whatever the peer does.
 */
#include <bzlib.h>
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
    uint64_t written; /* bytes accepted */
    uint64_t limit;   /* 0 = none */
    int over_limit;
    char *path; /* the plain file */
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
    path[strlen(path) - 4] = '\0'; /* the plain file */
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
    if (write_all(l->fd, data, n) < 0)
        return err_sys(e, ERR_IO, "cannot write log '%s'", l->path);
    l->written += n;
    if (hit) {
        static const char note[] = "\nsluice: log limit exceeded, build stopped\n";
        l->over_limit = 1;
        if (write_all(l->fd, (const uint8_t *)note, sizeof note - 1) < 0)
            return err_sys(e, ERR_IO, "cannot write log '%s'", l->path);
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

/* plain -> plain.zst: written to plain.zst.tmp, renamed into place, then the plain
 * file removed.  On any error the plain file stays (nothing is lost). */
static int compress_file(const char *plain, Err *e)
{
    char *zst = xasprintf("%s.zst", plain), *tmp = xasprintf("%s.zst.tmp", plain);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    size_t in_cap = ZSTD_CStreamInSize(), out_cap = ZSTD_CStreamOutSize();
    uint8_t *in = xmalloc(in_cap), *out = xmalloc(out_cap);
    int src = open(plain, O_RDONLY | O_CLOEXEC), dst = -1, rc = 0, last = 0;
    if (src < 0) {
        rc = err_sys(e, ERR_IO, "cannot read log '%s'", plain);
        goto out;
    }
    dst = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (dst < 0 || !c) {
        rc = err_sys(e, ERR_IO, "cannot create '%s'", tmp);
        goto out;
    }
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
    while (!last) {
        ssize_t n = read(src, in, in_cap);
        ZSTD_inBuffer ib;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_sys(e, ERR_IO, "cannot read log '%s'", plain);
            goto out;
        }
        last = n == 0;
        ib = (ZSTD_inBuffer){in, (size_t)n, 0};
        for (;;) {
            ZSTD_outBuffer ob = {out, out_cap, 0};
            size_t left = ZSTD_compressStream2(c, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError(left)) {
                rc = err_set(e, ERR_IO, "compressing log '%s': %s", plain, ZSTD_getErrorName(left));
                goto out;
            }
            if (ob.pos && write_all(dst, out, ob.pos) < 0) {
                rc = err_sys(e, ERR_IO, "cannot write '%s'", tmp);
                goto out;
            }
            if (last ? left == 0 : ib.pos == ib.size)
                break;
        }
    }
    if (close(dst) < 0) {
        dst = -1;
        rc = err_sys(e, ERR_IO, "cannot write '%s'", tmp);
        goto out;
    }
    dst = -1;
    if (rename(tmp, zst) < 0) {
        rc = err_sys(e, ERR_IO, "cannot rename '%s'", tmp);
        goto out;
    }
    if (unlink(plain) < 0 && errno != ENOENT)
        rc = err_sys(e, ERR_IO, "cannot remove '%s'", plain);
out:
    if (src >= 0)
        close(src);
    if (dst >= 0)
        close(dst);
    if (rc < 0)
        unlink(tmp);
    ZSTD_freeCCtx(c);
    free(in);
    free(out);
    free(zst);
    free(tmp);
    return rc;
}

int runner_log_close(RunnerLog *l, Err *e)
{
    int rc = 0;
    if (!l)
        return 0;
    if (close(l->fd) < 0)
        rc = err_sys(e, ERR_IO, "cannot close log '%s'", l->path);
    if (rc == 0)
        rc = compress_file(l->path, e);
    free(l->path);
    free(l);
    return rc;
}

/* Decompress a whole .zst file into out (a truncated last frame: what is there). */
static int read_zst(const char *path, Buf *out, Err *e)
{
    Buf raw;
    ZSTD_DCtx *d = NULL;
    int rc;
    buf_init(&raw, LIMIT_BUF_DEFAULT);
    rc = util_read_file(path, &raw, e);
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
                break; /* truncated frame */
        }
    }
out:
    ZSTD_freeDCtx(d);
    buf_dispose(&raw);
    return rc;
}

/* Decompress a whole .bz2 file (Hydra's CompressLog default) into out. */
static int read_bz2(const char *path, Buf *out, Err *e)
{
    Buf raw;
    bz_stream z;
    uint8_t tmp[65536];
    int rc, br = BZ_OK, inited = 0;
    buf_init(&raw, LIMIT_BUF_DEFAULT);
    rc = util_read_file(path, &raw, e);
    if (rc < 0)
        goto out;
    memset(&z, 0, sizeof z);
    if (BZ2_bzDecompressInit(&z, 0, 0) != BZ_OK) {
        rc = err_set(e, ERR_IO, "log '%s': cannot start bzip2", path);
        goto out;
    }
    inited = 1;
    z.next_in = (char *)raw.p;
    z.avail_in = raw.len > UINT32_MAX ? UINT32_MAX : (unsigned)raw.len;
    while (br == BZ_OK) {
        z.next_out = (char *)tmp;
        z.avail_out = sizeof tmp;
        br = BZ2_bzDecompress(&z);
        if (br != BZ_OK && br != BZ_STREAM_END) {
            rc = err_set(e, ERR_MALFORMED, "log '%s': bad bzip2 data (%d)", path, br);
            goto out;
        }
        if (buf_append(out, tmp, sizeof tmp - z.avail_out) < 0) {
            rc = err_set(e, ERR_TOOBIG, "log '%s' too large", path);
            goto out;
        }
        if (br == BZ_OK && z.avail_in == 0 && z.avail_out != 0) {
            rc = err_set(e, ERR_MALFORMED, "log '%s': truncated bzip2 data", path);
            goto out;
        }
    }
out:
    if (inited)
        BZ2_bzDecompressEnd(&z);
    buf_dispose(&raw);
    return rc;
}

/* Read a whole log, decompressed: Hydra's plain file (also one still being written),
 * else .zst, else .bz2. */
int runner_log_read(const char *log_dir, const char *drv_path, Buf *out, Err *e)
{
    char *zst = runner_log_path(log_dir, drv_path), *plain = NULL, *bz2 = NULL;
    int rc;
    if (!zst)
        return err_set(e, ERR_INVALID, "bad drv path '%s'", drv_path);
    plain = xstrndup(zst, strlen(zst) - 4);
    bz2 = xasprintf("%s.bz2", plain);
    rc = util_read_file(plain, out, e);
    if (rc == ERR_NOTFOUND) {
        err_clear(e);
        rc = read_zst(zst, out, e);
    }
    if (rc == ERR_NOTFOUND) {
        err_clear(e);
        rc = read_bz2(bz2, out, e);
    }
    free(zst);
    free(plain);
    free(bz2);
    return rc;
}
