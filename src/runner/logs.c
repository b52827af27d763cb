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

#include "runner/logs.h"

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

int runner__log_open(const char *log_dir, const char *drv_path, uint64_t limit, RunnerLog **out,
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
int runner__log_write(RunnerLog *l, const void *data, size_t n, Err *e)
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

int runner__log_close(RunnerLog *l, Err *e)
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

/* ------------------------------------------------------------ streaming reader */

/* A log read in pieces: the plain file, or .zst / .bz2 decompressed through a window
 * of at most RUNNER_LOG_WINDOW_LOG bits (zstd) or one bzip2 block, with one input
 * buffer: memory per reader is bounded whatever the log's size. */
#define LOG_IN_BUF            65536
#define RUNNER_LOG_WINDOW_LOG 24 /* 16 MiB; sluice writes frames with far smaller windows */

typedef enum { LOG_PLAIN, LOG_ZST, LOG_BZ2 } LogKind;

struct RunnerLogReader {
    LogKind kind;
    int fd;
    int eof_in; /* the compressed file is read to its end */
    int done;   /* the decompressor reached the end of its stream */
    char *path;
    uint8_t *in;
    size_t in_len, in_pos;
    ZSTD_DStream *zd;
    bz_stream bz;
    int bz_inited;
};

static int open_rdonly(const char *path, int *fd)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    return *fd < 0 ? (errno == ENOENT ? ERR_NOTFOUND : ERR_IO) : 0;
}

/* Open the log of drv_path for reading in pieces: plain, else .zst, else .bz2. */
int runner_log_reader_open(const char *log_dir, const char *drv_path, RunnerLogReader **out, Err *e)
{
    char *zst = runner_log_path(log_dir, drv_path), *plain, *bz2;
    const char *paths[3];
    RunnerLogReader *lr;
    int fd = -1, rc = ERR_NOTFOUND, k;
    *out = NULL;
    if (!zst)
        return err_set(e, ERR_INVALID, "bad drv path '%s'", drv_path);
    plain = xstrndup(zst, strlen(zst) - 4);
    bz2 = xasprintf("%s.bz2", plain);
    paths[LOG_PLAIN] = plain, paths[LOG_ZST] = zst, paths[LOG_BZ2] = bz2;
    for (k = LOG_PLAIN; k <= LOG_BZ2; k++) {
        rc = open_rdonly(paths[k], &fd);
        if (rc != ERR_NOTFOUND)
            break;
    }
    if (rc < 0) {
        rc = rc == ERR_NOTFOUND ? err_set(e, ERR_NOTFOUND, "no log for %s", drv_path)
                                : err_set(e, ERR_IO, "log '%s': %s", paths[k], strerror(errno));
        goto out;
    }
    lr = xcalloc(1, sizeof *lr);
    lr->kind = (LogKind)k;
    lr->fd = fd;
    lr->path = xstrdup(paths[k]);
    if (lr->kind != LOG_PLAIN)
        lr->in = xmalloc(LOG_IN_BUF);
    if (lr->kind == LOG_ZST) {
        lr->zd = ZSTD_createDStream();
        if (!lr->zd || ZSTD_isError(ZSTD_DCtx_setParameter(lr->zd, ZSTD_d_windowLogMax,
                                                           RUNNER_LOG_WINDOW_LOG))) {
            runner_log_reader_free(lr);
            rc = err_set(e, ERR_NOMEM, "log '%s': cannot start zstd", paths[k]);
            goto out;
        }
    } else if (lr->kind == LOG_BZ2) {
        if (BZ2_bzDecompressInit(&lr->bz, 0, 0) != BZ_OK) {
            runner_log_reader_free(lr);
            rc = err_set(e, ERR_IO, "log '%s': cannot start bzip2", paths[k]);
            goto out;
        }
        lr->bz_inited = 1;
    }
    *out = lr;
out:
    free(zst);
    free(plain);
    free(bz2);
    return rc;
}

/* Refill the input buffer when it is used up; sets eof_in at the file's end. */
static int fill_in(RunnerLogReader *lr, Err *e)
{
    ssize_t n;
    if (lr->in_pos < lr->in_len || lr->eof_in)
        return 0;
    do
        n = read(lr->fd, lr->in, LOG_IN_BUF);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return err_set(e, ERR_IO, "log '%s': %s", lr->path, strerror(errno));
    lr->in_len = (size_t)n, lr->in_pos = 0;
    lr->eof_in = n == 0;
    return 0;
}

static int64_t read_plain_piece(RunnerLogReader *lr, uint8_t *buf, size_t cap, Err *e)
{
    ssize_t n;
    do
        n = read(lr->fd, buf, cap);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return err_set(e, ERR_IO, "log '%s': %s", lr->path, strerror(errno));
    return n;
}

/* A truncated last frame ends the log with what was there (as runner_log_read does). */
static int64_t read_zst_piece(RunnerLogReader *lr, uint8_t *buf, size_t cap, Err *e)
{
    while (!lr->done) {
        ZSTD_outBuffer ob = {buf, cap, 0};
        ZSTD_inBuffer in;
        size_t r;
        int rc = fill_in(lr, e);
        if (rc < 0)
            return rc;
        if (lr->eof_in && lr->in_pos == lr->in_len)
            lr->done = 1;
        in = (ZSTD_inBuffer){lr->in, lr->in_len, lr->in_pos};
        r = ZSTD_decompressStream(lr->zd, &ob, &in);
        lr->in_pos = in.pos;
        if (ZSTD_isError(r))
            return err_set(e, ERR_MALFORMED, "log '%s': %s", lr->path, ZSTD_getErrorName(r));
        if (ob.pos > 0) {
            lr->done = 0; /* more may be buffered inside the decompressor */
            return (int64_t)ob.pos;
        }
    }
    return 0;
}

static int64_t read_bz2_piece(RunnerLogReader *lr, uint8_t *buf, size_t cap, Err *e)
{
    while (!lr->done) {
        int br, rc = fill_in(lr, e);
        size_t got;
        if (rc < 0)
            return rc;
        lr->bz.next_in = (char *)lr->in + lr->in_pos;
        lr->bz.avail_in = (unsigned)(lr->in_len - lr->in_pos);
        lr->bz.next_out = (char *)buf;
        lr->bz.avail_out = cap > UINT32_MAX ? UINT32_MAX : (unsigned)cap;
        br = BZ2_bzDecompress(&lr->bz);
        lr->in_pos = lr->in_len - lr->bz.avail_in;
        if (br != BZ_OK && br != BZ_STREAM_END)
            return err_set(e, ERR_MALFORMED, "log '%s': bad bzip2 data (%d)", lr->path, br);
        got = (size_t)((uint8_t *)lr->bz.next_out - buf);
        if (br == BZ_STREAM_END)
            lr->done = 1;
        if (got > 0)
            return (int64_t)got;
        if (br == BZ_OK && lr->eof_in && lr->in_pos == lr->in_len)
            return err_set(e, ERR_MALFORMED, "log '%s': truncated bzip2 data", lr->path);
    }
    return 0;
}

/* The next piece of the log, at most cap bytes: its length, 0 at the end, or < 0. */
int64_t runner_log_reader_read(RunnerLogReader *lr, void *buf, size_t cap, Err *e)
{
    if (cap == 0)
        return 0;
    switch (lr->kind) {
    case LOG_PLAIN: return read_plain_piece(lr, buf, cap, e);
    case LOG_ZST: return read_zst_piece(lr, buf, cap, e);
    case LOG_BZ2: return read_bz2_piece(lr, buf, cap, e);
    }
    return err_set(e, ERR_INVALID, "log reader of unknown kind");
}

void runner_log_reader_free(RunnerLogReader *lr)
{
    if (!lr)
        return;
    if (lr->fd >= 0)
        close(lr->fd);
    ZSTD_freeDStream(lr->zd);
    if (lr->bz_inited)
        BZ2_bzDecompressEnd(&lr->bz);
    free(lr->in);
    free(lr->path);
    free(lr);
}

/* Read a whole log, decompressed: Hydra's plain file (also one still being written),
 * else .zst, else .bz2; at most what out's cap allows (ERR_TOOBIG past it). */
int runner_log_read(const char *log_dir, const char *drv_path, Buf *out, Err *e)
{
    RunnerLogReader *lr = NULL;
    uint8_t *piece;
    int64_t n;
    int rc = runner_log_reader_open(log_dir, drv_path, &lr, e);
    if (rc < 0)
        return rc;
    piece = xmalloc(LOG_IN_BUF);
    while ((n = runner_log_reader_read(lr, piece, LOG_IN_BUF, e)) > 0)
        if (buf_append(out, piece, (size_t)n) < 0) {
            n = err_set(e, ERR_TOOBIG, "log '%s' too large", lr->path);
            break;
        }
    free(piece);
    runner_log_reader_free(lr);
    return n < 0 ? (int)n : 0;
}
