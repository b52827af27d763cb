/*
 * wire.c: the byte layer under both Nix protocols.
 *
 * A StoreWire reads a peer's replies through a buffer and writes requests through
 * another.  All our fds are non-blocking; every wait is a poll() over
 *   - the fd we need (readable or writable),
 *   - the peer's stderr (a child's stderr is drained whenever we wait, kept as a short
 *     tail for error messages and handed to on_stderr, which carries serve build logs),
 *   - the cancel pipe (store_conn_abort makes it readable: ERR_CANCELLED),
 * with the idle timeout and the absolute deadline.  While we wait to write, replies
 * that arrive are read ahead (up to STORE_WIRE_READAHEAD_MAX), so a peer that answers
 * before reading all we send cannot deadlock us.
 *
 * The same reader works over memory (rfd = -1) for unit tests and the fuzzer: the
 * decoders cannot tell the difference, except that the end of memory is ERR_EOF.
 *
 * Every length read from the peer meets a limit before anything is allocated for it;
 * padding must be zero; strings returned as C strings may not contain NUL.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "store/store_int.h"

void store__wire_init_fd(StoreWire *w, int rfd, int wfd, int efd, int cancel_fd, const char *peer)
{
    memset(w, 0, sizeof *w);
    w->rfd = rfd;
    w->wfd = wfd;
    w->efd = efd;
    w->cancel_fd = cancel_fd;
    w->rcap = STORE_WIRE_RBUF;
    w->rbuf = xmalloc(w->rcap);
    w->rbuf_owned = 1;
    buf_init(&w->wbuf, LIMIT_WIRE_FRAME);
    w->idle_ms = -1;
    w->peer = peer ? peer : "peer";
}

void store__wire_init_mem(StoreWire *w, const uint8_t *data, size_t n)
{
    memset(w, 0, sizeof *w);
    w->rfd = -1;
    w->wfd = -1;
    w->efd = -1;
    w->cancel_fd = -1;
    w->rbuf = (uint8_t *)data;
    w->rlen = n;
    w->rcap = n;
    w->rbuf_owned = 0;
    buf_init(&w->wbuf, LIMIT_WIRE_FRAME);
    w->idle_ms = -1;
    w->peer = "input";
}

void store__wire_dispose(StoreWire *w)
{
    if (!w)
        return;
    if (w->rbuf_owned)
        free(w->rbuf);
    w->rbuf = NULL;
    buf_dispose(&w->wbuf);
}

void store__wire_set_timeout(StoreWire *w, int idle_ms, int64_t total_ms)
{
    w->idle_ms = idle_ms;
    w->deadline = total_ms > 0 ? util_now_ms() + (uint64_t)total_ms : 0;
}

/* ---------------------------------------------------------------- stderr */

static void etail_add(StoreWire *w, const uint8_t *d, size_t n)
{
    if (n >= STORE_WIRE_ETAIL) {
        memcpy(w->etail, d + n - STORE_WIRE_ETAIL, STORE_WIRE_ETAIL);
        w->etail_len = STORE_WIRE_ETAIL;
        return;
    }
    if (w->etail_len + n > STORE_WIRE_ETAIL) {
        size_t drop = w->etail_len + n - STORE_WIRE_ETAIL;
        memmove(w->etail, w->etail + drop, w->etail_len - drop);
        w->etail_len -= drop;
    }
    memcpy(w->etail + w->etail_len, d, n);
    w->etail_len += n;
}

/* Read what the peer's stderr has now.  Returns 1 when something was read. */
static int stderr_read(StoreWire *w)
{
    uint8_t tmp[16384];
    ssize_t r;
    if (w->efd < 0)
        return 0;
    r = read(w->efd, tmp, sizeof tmp);
    if (r > 0) {
        etail_add(w, tmp, (size_t)r);
        if (w->on_stderr)
            w->on_stderr(w->on_stderr_payload, tmp, (size_t)r);
        else if (log_get_level() >= LOG_DEBUG)
            log_debug("%s stderr: %.*s", w->peer, (int)r, (const char *)tmp);
        return 1;
    }
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        w->efd = -1; /* EOF: stop polling it (the owner closes the fd) */
    return 0;
}

void store__wire_drain_stderr_idle(StoreWire *w, int idle_ms, int max_ms)
{
    uint64_t end = util_now_ms() + (uint64_t)(max_ms > 0 ? max_ms : 0);
    while (w->efd >= 0) {
        struct pollfd pf = {.fd = w->efd, .events = POLLIN};
        uint64_t now = util_now_ms();
        int wait = now >= end ? 0 : (int)(end - now);
        int r = poll(&pf, 1, wait < idle_ms ? wait : idle_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (!stderr_read(w) && w->efd >= 0)
            break;
    }
}

void store__wire_drain_stderr(StoreWire *w, int ms)
{
    store__wire_drain_stderr_idle(w, ms, ms);
}

void store__wire_stderr_tail(const StoreWire *w, char *out, size_t cap)
{
    enum { MAX_LINES = 3, LINE_MAX_CHARS = 240 };
    char tmp[STORE_WIRE_ETAIL + 1];
    const char *lines[MAX_LINES];
    size_t lens[MAX_LINES], nl = 0, len = 0;
    char *end;
    if (cap == 0)
        return;
    out[0] = '\0';
    memcpy(tmp, w->etail, w->etail_len);
    tmp[w->etail_len] = '\0';
    for (size_t i = 0; i < w->etail_len; i++)
        if (tmp[i] == '\0' || tmp[i] == '\r')
            tmp[i] = '\n';
    util_strip_ansi(tmp);
    /* the last non-empty lines, newest last; the first line of the tail may be the
     * end of a longer one, it only counts when nothing else is there */
    end = tmp + strlen(tmp);
    while (end > tmp && nl < MAX_LINES) {
        char *stop = end, *start;
        while (stop > tmp && stop[-1] == '\n')
            stop--;
        start = stop;
        while (start > tmp && start[-1] != '\n')
            start--;
        if (stop > start && (start > tmp || nl == 0 || w->etail_len < STORE_WIRE_ETAIL)) {
            while (*start == ' ' || *start == '\t')
                start++;
            if (stop > start) {
                memmove(lines + 1, lines, sizeof lines[0] * nl);
                memmove(lens + 1, lens, sizeof lens[0] * nl);
                lines[0] = start;
                lens[0] = (size_t)(stop - start);
                nl++;
            }
        }
        end = start;
    }
    for (size_t i = 0; i < nl && len + 1 < cap; i++) {
        size_t ln = lens[i] > LINE_MAX_CHARS ? LINE_MAX_CHARS : lens[i];
        int k = snprintf(out + len, cap - len, "%s%.*s%s", i ? " | " : "", (int)ln, lines[i],
                         ln < lens[i] ? "..." : "");
        if (k < 0)
            break;
        len += (size_t)k;
        if (len >= cap)
            len = cap - 1;
    }
}

static int eof_error(StoreWire *w, Err *e)
{
    char tail[600];
    if (w->rfd < 0)
        return err_set(e, ERR_EOF, "unexpected end of input at byte %llu",
                       (unsigned long long)w->nread);
    store__wire_drain_stderr(w, 500);
    store__wire_stderr_tail(w, tail, sizeof tail);
    if (tail[0])
        return err_set(e, ERR_EOF, "%s closed the connection: %s", w->peer, tail);
    return err_set(e, ERR_EOF, "%s closed the connection", w->peer);
}

/* ---------------------------------------------------------------- waiting */

enum { WAIT_READ = 1, WAIT_WRITE = 2 };

static int readahead(StoreWire *w, Err *e);

/* Wait until rfd is readable (WAIT_READ) or wfd is writable (WAIT_WRITE). */
static int wire_wait(StoreWire *w, int mode, Err *e)
{
    uint64_t start = util_now_ms();
    for (;;) {
        struct pollfd pf[4];
        int n = 0, ir = -1, iw = -1, ie = -1, ic = -1, r, tmo = -1;
        uint64_t now = util_now_ms();
        if (w->cancel_fd >= 0) {
            ic = n;
            pf[n++] = (struct pollfd){.fd = w->cancel_fd, .events = POLLIN};
        }
        if (mode == WAIT_READ || (w->rfd >= 0 && !w->reof && w->rlen < STORE_WIRE_READAHEAD_MAX)) {
            ir = n;
            pf[n++] = (struct pollfd){.fd = w->rfd, .events = POLLIN};
        }
        if (mode == WAIT_WRITE) {
            iw = n;
            pf[n++] = (struct pollfd){.fd = w->wfd, .events = POLLOUT};
        }
        if (w->efd >= 0) {
            ie = n;
            pf[n++] = (struct pollfd){.fd = w->efd, .events = POLLIN};
        }
        if (w->idle_ms >= 0) {
            uint64_t lim = start + (uint64_t)w->idle_ms;
            tmo = now >= lim ? 0 : (int)(lim - now);
        }
        if (w->deadline) {
            int t = now >= w->deadline ? 0 : (int)(w->deadline - now);
            if (tmo < 0 || t < tmo)
                tmo = t;
        }
        r = poll(pf, (nfds_t)n, tmo);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return err_sys(e, ERR_IO, "poll");
        }
        if (ic >= 0 && pf[ic].revents)
            return err_set(e, ERR_CANCELLED, "cancelled");
        if (r == 0) {
            now = util_now_ms();
            if (w->deadline && now >= w->deadline)
                return err_set(e, ERR_TIMEOUT, "%s: operation timed out", w->peer);
            return err_set(e, ERR_TIMEOUT, "%s: no answer for %d ms", w->peer, w->idle_ms);
        }
        if (ie >= 0 && pf[ie].revents) {
            if (stderr_read(w))
                start = util_now_ms(); /* the peer is alive: progress */
        }
        if (mode == WAIT_READ && ir >= 0 && pf[ir].revents)
            return 0;
        if (mode == WAIT_WRITE) {
            if (iw >= 0 && pf[iw].revents)
                return 0;
            if (ir >= 0 && pf[ir].revents) {
                int rc = readahead(w, e);
                if (rc < 0)
                    return rc;
                if (rc > 0)
                    start = util_now_ms();
            }
        }
    }
}

/* While writing: move replies that already arrived into rbuf.  1 = read something. */
static int readahead(StoreWire *w, Err *e)
{
    ssize_t r;
    if (w->rpos > 0 && w->rpos == w->rlen)
        w->rpos = w->rlen = 0;
    if (w->rlen == w->rcap) {
        if (w->rpos > 0) {
            memmove(w->rbuf, w->rbuf + w->rpos, w->rlen - w->rpos);
            w->rlen -= w->rpos;
            w->rpos = 0;
        } else {
            size_t ncap = w->rcap * 2;
            if (ncap > STORE_WIRE_READAHEAD_MAX)
                ncap = STORE_WIRE_READAHEAD_MAX;
            if (ncap <= w->rcap)
                return 0; /* full: stop reading ahead until the caller reads */
            w->rbuf = xrealloc(w->rbuf, ncap);
            w->rcap = ncap;
        }
    }
    r = read(w->rfd, w->rbuf + w->rlen, w->rcap - w->rlen);
    if (r > 0) {
        w->rlen += (size_t)r;
        w->nread += (uint64_t)r;
        return 1;
    }
    if (r == 0) {
        /* the peer hung up; writes will fail and reads will see the end once the
         * buffered replies (perhaps an error message) are consumed */
        w->reof = 1;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    return err_sys(e, ERR_IO, "%s: read", w->peer);
}

/* At least one byte in rbuf. */
static int wire_fill(StoreWire *w, Err *e)
{
    if (w->rpos < w->rlen)
        return 0;
    if (w->rfd < 0 || w->reof)
        return eof_error(w, e);
    w->rpos = w->rlen = 0;
    for (;;) {
        ssize_t r = read(w->rfd, w->rbuf, w->rcap);
        if (r > 0) {
            w->rlen = (size_t)r;
            w->nread += (uint64_t)r;
            return 0;
        }
        if (r == 0)
            return eof_error(w, e);
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wire_wait(w, WAIT_READ, e);
            if (rc < 0)
                return rc;
            continue;
        }
        if (errno == ECONNRESET)
            return eof_error(w, e);
        return err_sys(e, ERR_IO, "%s: read", w->peer);
    }
}

int store__wire_peek(StoreWire *w, const uint8_t **p, size_t *n, Err *e)
{
    int rc = wire_fill(w, e);
    if (rc < 0)
        return rc;
    *p = w->rbuf + w->rpos;
    *n = w->rlen - w->rpos;
    return 0;
}

void store__wire_consume(StoreWire *w, size_t n)
{
    w->rpos += n;
    if (w->rpos > w->rlen)
        w->rpos = w->rlen;
}

int store__wire_read(StoreWire *w, void *dst, size_t n, Err *e)
{
    uint8_t *d = dst;
    while (n > 0) {
        size_t k;
        int rc = wire_fill(w, e);
        if (rc < 0)
            return rc;
        k = w->rlen - w->rpos;
        if (k > n)
            k = n;
        memcpy(d, w->rbuf + w->rpos, k);
        w->rpos += k;
        d += k;
        n -= k;
    }
    return 0;
}

static int wire_skip(StoreWire *w, uint64_t n, Err *e)
{
    while (n > 0) {
        size_t k;
        int rc = wire_fill(w, e);
        if (rc < 0)
            return rc;
        k = w->rlen - w->rpos;
        if (k > n)
            k = (size_t)n;
        w->rpos += k;
        n -= k;
    }
    return 0;
}

/* ---------------------------------------------------------------- decoders */

uint64_t store__le64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

int store__wire_u64(StoreWire *w, uint64_t *out, Err *e)
{
    uint8_t b[8];
    int rc = store__wire_read(w, b, 8, e);
    if (rc < 0)
        return rc;
    *out = store__le64(b);
    return 0;
}

int store__wire_num(StoreWire *w, uint64_t max, uint64_t *out, Err *e)
{
    uint64_t v;
    int rc = store__wire_u64(w, &v, e);
    if (rc < 0)
        return rc;
    if (v > max)
        return err_set(e, ERR_MALFORMED, "value %llu out of range (max %llu) at byte %llu",
                       (unsigned long long)v, (unsigned long long)max,
                       (unsigned long long)(w->nread - (w->rlen - w->rpos) - 8));
    *out = v;
    return 0;
}

static int read_padding(StoreWire *w, uint64_t len, Err *e)
{
    uint8_t pad[8];
    size_t np = (size_t)((8 - (len % 8)) % 8);
    int rc;
    if (np == 0)
        return 0;
    rc = store__wire_read(w, pad, np, e);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < np; i++)
        if (pad[i] != 0)
            return err_set(e, ERR_MALFORMED, "non-zero string padding");
    return 0;
}

int store__wire_string(StoreWire *w, size_t max, char **out, size_t *len, Err *e)
{
    uint64_t n;
    char *s = NULL;
    int rc = store__wire_u64(w, &n, e);
    if (rc < 0)
        return rc;
    if (n > max)
        return err_set(e, ERR_TOOBIG, "string of %llu bytes exceeds the limit of %zu",
                       (unsigned long long)n, max);
    s = xmalloc((size_t)n + 1);
    rc = store__wire_read(w, s, (size_t)n, e);
    if (rc < 0)
        goto out;
    s[n] = '\0';
    rc = read_padding(w, n, e);
    if (rc < 0)
        goto out;
    if (memchr(s, '\0', (size_t)n)) {
        rc = err_set(e, ERR_MALFORMED, "NUL byte inside a string");
        goto out;
    }
    if (len)
        *len = (size_t)n;
    *out = s;
    s = NULL;
out:
    free(s);
    return rc;
}

int store__wire_skip_string(StoreWire *w, size_t max, Err *e)
{
    uint64_t n;
    int rc = store__wire_u64(w, &n, e);
    if (rc < 0)
        return rc;
    if (n > max)
        return err_set(e, ERR_TOOBIG, "string of %llu bytes exceeds the limit of %zu",
                       (unsigned long long)n, max);
    rc = wire_skip(w, n, e);
    if (rc < 0)
        return rc;
    return read_padding(w, n, e);
}

int store__wire_text(StoreWire *w, size_t piece, const char *suffix, StoreTextFn fn, void *payload,
                     Err *e)
{
    uint64_t n, left;
    size_t cap, slen = suffix ? strlen(suffix) : 0;
    char *buf = NULL;
    int rc = store__wire_u64(w, &n, e);
    if (rc < 0)
        return rc;
    if (!fn) {
        rc = wire_skip(w, n, e);
        return rc < 0 ? rc : read_padding(w, n, e);
    }
    cap = n < piece ? (size_t)n : piece;
    buf = xmalloc(cap + slen + 1);
    left = n;
    do {
        size_t k = left < cap ? (size_t)left : cap;
        rc = store__wire_read(w, buf, k, e);
        if (rc < 0)
            goto out;
        left -= k;
        if (left == 0 && slen) {
            memcpy(buf + k, suffix, slen);
            k += slen;
        }
        buf[k] = '\0';
        if (k > 0)
            fn(payload, buf, k);
    } while (left > 0);
    rc = read_padding(w, n, e);
out:
    free(buf);
    return rc;
}

int store__wire_message(StoreWire *w, size_t max, char **out, Err *e)
{
    uint64_t n, keep;
    char *raw, *text;
    int rc = store__wire_u64(w, &n, e);
    if (rc < 0)
        return rc;
    keep = n < max ? n : max;
    raw = xmalloc((size_t)keep + 1);
    rc = store__wire_read(w, raw, (size_t)keep, e);
    if (rc >= 0)
        rc = wire_skip(w, n - keep, e);
    if (rc >= 0)
        rc = read_padding(w, n, e);
    if (rc < 0) {
        free(raw);
        return rc;
    }
    text = util_text_valid(raw, (size_t)keep);
    free(raw);
    if (keep < n) {
        *out = xasprintf("%s [... %llu more bytes]", text, (unsigned long long)(n - keep));
        free(text);
    } else {
        *out = text;
    }
    return 0;
}

int store__wire_strings(StoreWire *w, size_t max_items, size_t max_len, StrVec *sv, Err *e)
{
    uint64_t n;
    int rc = store__wire_u64(w, &n, e);
    if (rc < 0)
        return rc;
    if (n > max_items)
        return err_set(e, ERR_TOOBIG, "list of %llu items exceeds the limit of %zu",
                       (unsigned long long)n, max_items);
    for (uint64_t i = 0; i < n; i++) {
        char *s;
        rc = store__wire_string(w, max_len, &s, NULL, e);
        if (rc < 0)
            return rc;
        strvec_push_take(sv, s);
    }
    return 0;
}

int store__wire_path(StoreWire *w, int allow_empty, char **out, Err *e)
{
    char *s = NULL;
    int rc = store__wire_string(w, LIMIT_STORE_PATH, &s, NULL, e);
    if (rc < 0)
        return rc;
    if (s[0] == '\0' && allow_empty) {
        free(s);
        *out = NULL;
        return 0;
    }
    rc = nix_store_path_check(s, e);
    if (rc < 0) {
        free(s);
        return err_prefix(e, "store path from %s", w->peer);
    }
    *out = s;
    return 0;
}

int store__wire_paths(StoreWire *w, StrVec *sv, Err *e)
{
    uint64_t n;
    int rc = store__wire_u64(w, &n, e);
    if (rc < 0)
        return rc;
    if (n > LIMIT_WIRE_LIST)
        return err_set(e, ERR_TOOBIG, "list of %llu paths exceeds the limit of %u",
                       (unsigned long long)n, LIMIT_WIRE_LIST);
    for (uint64_t i = 0; i < n; i++) {
        char *p;
        rc = store__wire_path(w, 0, &p, e);
        if (rc < 0)
            return rc;
        strvec_push_take(sv, p);
    }
    return 0;
}

int store__wire_read_framed(StoreWire *w, uint64_t max_total, NixSink sink, void *payload,
                            uint64_t *total, Err *e)
{
    uint64_t sum = 0;
    for (;;) {
        uint64_t len;
        int rc = store__wire_u64(w, &len, e);
        if (rc < 0)
            return rc;
        if (len == 0)
            break;
        if (len > LIMIT_WIRE_FRAME)
            return err_set(e, ERR_TOOBIG, "frame of %llu bytes exceeds the limit of %u",
                           (unsigned long long)len, LIMIT_WIRE_FRAME);
        if (len > max_total - sum)
            return err_set(e, ERR_TOOBIG, "framed stream exceeds the limit of %llu bytes",
                           (unsigned long long)max_total);
        sum += len;
        while (len > 0) {
            size_t k;
            rc = wire_fill(w, e);
            if (rc < 0)
                return rc;
            k = w->rlen - w->rpos;
            if (k > len)
                k = (size_t)len;
            if (sink) {
                rc = sink(payload, w->rbuf + w->rpos, k, e);
                if (rc < 0)
                    return rc;
            }
            w->rpos += k;
            len -= k;
        }
    }
    if (total)
        *total = sum;
    return 0;
}

int store__wire_copy_nar(StoreWire *w, NixSink sink, void *payload, uint64_t *size, Err *e)
{
    static const NixNarCallbacks none;
    NixNarReader *r = nix_nar_reader_new(&none, NULL);
    uint64_t total = 0;
    int rc = 0;
    for (;;) {
        const uint8_t *p;
        size_t n, used = 0;
        int done;
        rc = store__wire_peek(w, &p, &n, e);
        if (rc < 0)
            goto out;
        done = nix_nar_reader_feed(r, p, n, &used, e);
        if (done < 0) {
            rc = done;
            err_prefix(e, "NAR from %s", w->peer);
            goto out;
        }
        if (used > n) {
            rc = err_set(e, ERR_MALFORMED, "NAR reader consumed too much");
            goto out;
        }
        if (used > 0 && sink) {
            rc = sink(payload, p, used, e);
            if (rc < 0)
                goto out;
        }
        store__wire_consume(w, used);
        total += used;
        if (done == 1)
            break;
        if (used == 0) {
            rc = err_set(e, ERR_MALFORMED, "NAR reader made no progress at byte %llu",
                         (unsigned long long)total);
            goto out;
        }
    }
out:
    if (size)
        *size = total;
    nix_nar_reader_free(r);
    return rc;
}

/* ---------------------------------------------------------------- encoders */

static int write_direct(StoreWire *w, const uint8_t *p, size_t n, Err *e)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = send(w->wfd, p + off, n - off, MSG_NOSIGNAL);
        if (r < 0 && errno == ENOTSOCK)
            r = write(w->wfd, p + off, n - off);
        if (r > 0) {
            off += (size_t)r;
            w->nwritten += (uint64_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wire_wait(w, WAIT_WRITE, e);
            if (rc < 0)
                return rc;
            continue;
        }
        if (r < 0 && (errno == EPIPE || errno == ECONNRESET))
            return eof_error(w, e);
        return err_sys(e, ERR_IO, "%s: write", w->peer);
    }
    return 0;
}

int store__wire_flush(StoreWire *w, Err *e)
{
    int rc;
    if (buf_status(&w->wbuf) < 0)
        return err_set(e, buf_status(&w->wbuf), "request too large");
    if (w->wfd < 0 || w->wbuf.len == 0)
        return 0;
    rc = write_direct(w, w->wbuf.p, w->wbuf.len, e);
    buf_reset(&w->wbuf);
    return rc;
}

int store__wire_flush_lenient(StoreWire *w, Err *e)
{
    Err we;
    int rc = store__wire_flush(w, &we);
    if (rc == ERR_EOF)
        return 0; /* the next read gets the peer's last words, or the EOF */
    if (rc < 0 && e)
        *e = we;
    return rc;
}

int store__wire_put_bytes(StoreWire *w, const void *data, size_t n, Err *e)
{
    if (n == 0)
        return 0;
    if (w->wfd >= 0 && n >= STORE_WIRE_WBUF_FLUSH) {
        int rc = store__wire_flush(w, e);
        if (rc < 0)
            return rc;
        return write_direct(w, data, n, e);
    }
    if (buf_append(&w->wbuf, data, n) < 0)
        return err_set(e, buf_status(&w->wbuf), "request too large");
    if (w->wfd >= 0 && w->wbuf.len >= STORE_WIRE_WBUF_FLUSH)
        return store__wire_flush(w, e);
    return 0;
}

int store__wire_put_u64(StoreWire *w, uint64_t v, Err *e)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return store__wire_put_bytes(w, b, 8, e);
}

int store__wire_put_string(StoreWire *w, const void *s, size_t n, Err *e)
{
    static const uint8_t zeros[8];
    int rc = store__wire_put_u64(w, n, e);
    if (rc < 0)
        return rc;
    rc = store__wire_put_bytes(w, s, n, e);
    if (rc < 0)
        return rc;
    return store__wire_put_bytes(w, zeros, (8 - n % 8) % 8, e);
}

int store__wire_put_cstr(StoreWire *w, const char *s, Err *e)
{
    if (!s)
        s = "";
    return store__wire_put_string(w, s, strlen(s), e);
}

int store__wire_put_strings(StoreWire *w, const char *const *v, size_t n, Err *e)
{
    int rc = store__wire_put_u64(w, n, e);
    for (size_t i = 0; rc >= 0 && i < n; i++)
        rc = store__wire_put_cstr(w, v[i], e);
    return rc;
}

int store__wire_put_frame(StoreWire *w, const void *data, size_t n, Err *e)
{
    int rc = store__wire_put_u64(w, n, e);
    if (rc < 0 || n == 0)
        return rc;
    return store__wire_put_bytes(w, data, n, e);
}
