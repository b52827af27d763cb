/* tests/store/badpeer.c: a scripted misbehaving peer.  A forked child plays the daemon
 * (or `nix-store --serve`) on socketpairs standing for its stdin, stdout and stderr,
 * sends a script of bytes (wrong magic, truncated frames, huge lengths, unknown stderr
 * codes, bad paths, garbage NARs, a stderr flood) and then hangs up or falls silent.
 * Each case must end in a clear error or a timeout within the configured limit: never
 * a crash, a hang or a leak (run under ASan by `make asan`).  One case goes through the
 * unix:// transport with the peer listening on a socket. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "store_test.h"

enum { AFTER_CLOSE = 0, AFTER_WAIT_EOF = 1 };

typedef struct Peer {
    const Buf *script;
    int after;
    size_t stderr_flood; /* bytes written to stderr before the script */
    int delay_ms;        /* before the script */
} Peer;

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return;
        p += r;
        n -= (size_t)r;
    }
}

static void peer_main(const Peer *p, int in, int out, int err)
{
    char tmp[4096];
    signal(SIGPIPE, SIG_IGN);
    if (p->stderr_flood) {
        memset(tmp, 'E', sizeof tmp);
        tmp[sizeof tmp - 1] = '\n';
        for (size_t k = 0; k < p->stderr_flood; k += sizeof tmp)
            write_all(err, (const uint8_t *)tmp, sizeof tmp);
        write_all(err, (const uint8_t *)"error: the last words of the peer\n", 34);
    }
    if (p->delay_ms)
        usleep((useconds_t)p->delay_ms * 1000);
    if (p->script)
        write_all(out, p->script->p, p->script->len);
    if (p->after == AFTER_WAIT_EOF) {
        /* read (and ignore) requests until the client hangs up */
        for (;;) {
            ssize_t r = read(in, tmp, sizeof tmp);
            if (r == 0 || (r < 0 && errno != EINTR))
                break;
        }
    }
    _exit(0);
}

/* Start the peer and open a session to it; returns the open rc. */
static int start(StoreProto proto, const Peer *p, int io_ms, StoreConn **c, Err *e)
{
    int sin[2], sout[2], serr[2];
    StoreOpenOptions o;
    pid_t pid;
    memset(&o, 0, sizeof o);
    o.io_timeout_ms = io_ms;
    o.connect_timeout_ms = io_ms;
    *c = NULL;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sin) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sout) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, serr) < 0)
        return err_sys(e, ERR_IO, "socketpair");
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        close(sin[0]);
        close(sout[0]);
        close(serr[0]);
        peer_main(p, sin[1], sout[1], serr[1]);
    }
    close(sin[1]);
    close(sout[1]);
    close(serr[1]);
    return store__conn_from_fds(proto, sin[0], sout[0], serr[0], pid, "badpeer", &o, c, e);
}

static void worker_hello(Buf *b)
{
    st_u64(b, STORE_WORKER_MAGIC_2);
    st_u64(b, 0x122);
    st_str(b, "2.8.0");
    st_u64(b, STORE_STDERR_LAST);
}

static void serve_hello(Buf *b)
{
    st_u64(b, STORE_SERVE_MAGIC_2);
    st_u64(b, 0x207);
}

#define PATH_A "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple"

TEST(store, badpeer, handshake_failures)
{
    Buf s;
    Peer p = {.script = &s, .after = AFTER_CLOSE};
    StoreConn *c;
    Err e;
    buf_init(&s, 1 << 20);
    /* wrong magic, worker and serve */
    st_u64(&s, 0x1234);
    CHECK_INT(start(STORE_PROTO_WORKER, &p, 2000, &c, &e), ERR_MALFORMED);
    CHECK_MSG(strstr(e.msg, "protocol mismatch"), "%s", e.msg);
    CHECK_INT(start(STORE_PROTO_SERVE, &p, 2000, &c, &e), ERR_MALFORMED);
    CHECK(c == NULL);
    /* a version we cannot speak */
    buf_reset(&s);
    st_u64(&s, STORE_WORKER_MAGIC_2);
    st_u64(&s, 0x10a);
    CHECK_INT(start(STORE_PROTO_WORKER, &p, 2000, &c, &e), ERR_UNSUPPORTED);
    buf_reset(&s);
    st_u64(&s, STORE_WORKER_MAGIC_2);
    st_u64(&s, 0x7fffffff);
    CHECK_INT(start(STORE_PROTO_WORKER, &p, 2000, &c, &e), ERR_UNSUPPORTED);
    buf_reset(&s);
    st_u64(&s, STORE_SERVE_MAGIC_2);
    st_u64(&s, 0x104);
    CHECK_INT(start(STORE_PROTO_SERVE, &p, 2000, &c, &e), ERR_UNSUPPORTED);
    /* truncated: magic, half a version, hang-up */
    buf_reset(&s);
    st_u64(&s, STORE_WORKER_MAGIC_2);
    buf_append(&s, "\x22\x01", 2);
    CHECK_INT(start(STORE_PROTO_WORKER, &p, 2000, &c, &e), ERR_EOF);
    /* a version string of 2^40 bytes: refused, nothing allocated */
    buf_reset(&s);
    st_u64(&s, STORE_WORKER_MAGIC_2);
    st_u64(&s, 0x122);
    st_u64(&s, 1ull << 40);
    CHECK_INT(start(STORE_PROTO_WORKER, &p, 2000, &c, &e), ERR_TOOBIG);
    /* an unknown stderr message */
    buf_reset(&s);
    st_u64(&s, STORE_WORKER_MAGIC_2);
    st_u64(&s, 0x122);
    st_str(&s, "2.8.0");
    st_u64(&s, 0x4242424242ull);
    CHECK_INT(start(STORE_PROTO_WORKER, &p, 2000, &c, &e), ERR_MALFORMED);
    CHECK_MSG(strstr(e.msg, "unknown stderr message"), "%s", e.msg);
    /* refused during the handshake with STDERR_ERROR */
    buf_reset(&s);
    st_u64(&s, STORE_WORKER_MAGIC_2);
    st_u64(&s, 0x122);
    st_str(&s, "2.8.0");
    st_u64(&s, STORE_STDERR_ERROR);
    st_str(&s, "Error");
    st_u64(&s, 0);
    st_str(&s, "Error");
    st_str(&s, "\x1b[31;1merror:\x1b[0m go away");
    st_u64(&s, 0);
    st_u64(&s, 0);
    CHECK_INT(start(STORE_PROTO_WORKER, &p, 2000, &c, &e), ERR_PEER);
    CHECK_MSG(strstr(e.msg, "error: go away"), "%s", e.msg);
    buf_dispose(&s);
}

TEST(store, badpeer, silence_is_a_timeout)
{
    Buf s;
    Peer p = {.script = &s, .after = AFTER_WAIT_EOF};
    StoreConn *c;
    StrVec v;
    Err e, *ep = &e;
    const char *paths[] = {PATH_A};
    uint64_t t0;
    buf_init(&s, 1 << 20);
    strvec_init(&v);
    /* nothing at all: the handshake times out */
    t0 = util_now_ms();
    CHECK_INT(start(STORE_PROTO_WORKER, &p, 300, &c, &e), ERR_TIMEOUT);
    CHECK_MSG(util_now_ms() - t0 < 2000, "%llu ms", (unsigned long long)(util_now_ms() - t0));
    /* a handshake, then silence */
    worker_hello(&s);
    CHECK_OK(start(STORE_PROTO_WORKER, &p, 300, &c, ep), ep);
    t0 = util_now_ms();
    CHECK_INT(store_query_valid_paths(c, paths, 1, &v, &e), ERR_TIMEOUT);
    CHECK_MSG(util_now_ms() - t0 < 2000, "%llu ms", (unsigned long long)(util_now_ms() - t0));
    CHECK(store_conn_broken(c));
    t0 = util_now_ms();
    CHECK_INT(store_query_valid_paths(c, paths, 1, &v, &e), ERR_IO); /* at once */
    CHECK(util_now_ms() - t0 < 100);
    store_close(c);
    /* serve: silence during a build, under a build timeout */
    buf_reset(&s);
    serve_hello(&s);
    CHECK_OK(start(STORE_PROTO_SERVE, &p, 300, &c, ep), ep);
    {
        NixDrv *d = st_ca_drv("silent", "true");
        StoreBuildOptions bo = {.build_timeout = 1, .read_margin_s = 1};
        StoreBuildResult *r = NULL;
        t0 = util_now_ms();
        CHECK_INT(store_build_derivation(c,
                                         "/nix/store/00000000000000000000000000000000-silent.drv",
                                         d, &bo, NULL, NULL, &r, &e),
                  ERR_TIMEOUT);
        CHECK_MSG(util_now_ms() - t0 >= 1900 && util_now_ms() - t0 < 4000, "%llu ms",
                  (unsigned long long)(util_now_ms() - t0));
        nix_drv_free(d);
    }
    store_close(c);
    strvec_dispose(&v);
    buf_dispose(&s);
}

TEST(store, badpeer, hostile_replies)
{
    Buf s;
    Peer p = {.script = &s, .after = AFTER_WAIT_EOF};
    StoreConn *c;
    StrVec v;
    Err e, *ep = &e;
    const char *paths[] = {PATH_A};
    buf_init(&s, 1 << 20);
    strvec_init(&v);
    /* a list of 2^50 paths */
    worker_hello(&s);
    st_u64(&s, STORE_STDERR_LAST);
    st_u64(&s, 1ull << 50);
    CHECK_OK(start(STORE_PROTO_WORKER, &p, 2000, &c, ep), ep);
    CHECK_INT(store_query_valid_paths(c, paths, 1, &v, &e), ERR_TOOBIG);
    CHECK(store_conn_broken(c));
    store_close(c);
    /* a path that is not a store path */
    buf_reset(&s);
    worker_hello(&s);
    st_u64(&s, STORE_STDERR_LAST);
    st_u64(&s, 1);
    st_str(&s, "/nix/store/../../etc/passwd");
    CHECK_OK(start(STORE_PROTO_WORKER, &p, 2000, &c, ep), ep);
    CHECK_INT(store_query_valid_paths(c, paths, 1, &v, &e), ERR_MALFORMED);
    store_close(c);
    /* non-zero padding */
    buf_reset(&s);
    worker_hello(&s);
    st_u64(&s, STORE_STDERR_LAST);
    st_u64(&s, 1);
    st_u64(&s, 3);
    buf_append(&s, "abc\0\0\0\0\x7f", 8);
    CHECK_OK(start(STORE_PROTO_WORKER, &p, 2000, &c, ep), ep);
    CHECK_INT(store_query_valid_paths(c, paths, 1, &v, &e), ERR_MALFORMED);
    store_close(c);
    /* an activity announcing 2^40 fields: read as they come (a builder sets the count),
     * none comes, the read times out; an unexpected STDERR_READ */
    buf_reset(&s);
    worker_hello(&s);
    st_u64(&s, STORE_STDERR_START_ACTIVITY);
    st_u64(&s, 1);
    st_u64(&s, 3);
    st_u64(&s, 105);
    st_str(&s, "building");
    st_u64(&s, 1ull << 40);
    CHECK_OK(start(STORE_PROTO_WORKER, &p, 2000, &c, ep), ep);
    CHECK_INT(store_query_valid_paths(c, paths, 1, &v, &e), ERR_TIMEOUT);
    store_close(c);
    buf_reset(&s);
    worker_hello(&s);
    st_u64(&s, STORE_STDERR_READ);
    st_u64(&s, 100);
    CHECK_OK(start(STORE_PROTO_WORKER, &p, 2000, &c, ep), ep);
    CHECK_INT(store_query_valid_paths(c, paths, 1, &v, &e), ERR_MALFORMED);
    store_close(c);
    /* a peer error keeps the session; the next reply is read normally */
    buf_reset(&s);
    worker_hello(&s);
    st_u64(&s, STORE_STDERR_ERROR);
    st_str(&s, "Error");
    st_u64(&s, 0);
    st_str(&s, "Error");
    st_str(&s, "path '\x1b[35;1m/nix/store/x\x1b[0m' is bad");
    st_u64(&s, 0);
    st_u64(&s, 1);
    st_u64(&s, 0);
    st_str(&s, "while doing \x1b[1mthat\x1b[0m");
    st_u64(&s, STORE_STDERR_LAST);
    st_u64(&s, 1);
    st_str(&s, PATH_A);
    CHECK_OK(start(STORE_PROTO_WORKER, &p, 2000, &c, ep), ep);
    CHECK_INT(store_query_valid_paths(c, paths, 1, &v, &e), ERR_PEER);
    CHECK_MSG(strstr(e.msg, "path '/nix/store/x' is bad; while doing that"), "%s", e.msg);
    CHECK(!store_conn_broken(c));
    CHECK_OK(store_query_valid_paths(c, paths, 1, &v, ep), ep);
    CHECK_INT(v.n, 1);
    store_close(c);
    /* a build result with too many outputs, and one whose realisation is garbage */
    buf_reset(&s);
    serve_hello(&s);
    st_u64(&s, 0);
    st_str(&s, "");
    st_u64(&s, 1);
    st_u64(&s, 0);
    st_u64(&s, 0);
    st_u64(&s, 0);
    st_u64(&s, 100000);
    CHECK_OK(start(STORE_PROTO_SERVE, &p, 2000, &c, ep), ep);
    {
        NixDrv *d = st_ca_drv("x", "true");
        StoreBuildResult *r = NULL;
        CHECK_INT(store_build_derivation(c, "/nix/store/00000000000000000000000000000000-x.drv", d,
                                         NULL, NULL, NULL, &r, &e),
                  ERR_MALFORMED);
        store_close(c);
        buf_reset(&s);
        serve_hello(&s);
        st_u64(&s, 0);
        st_str(&s, "");
        st_u64(&s, 1);
        st_u64(&s, 0);
        st_u64(&s, 0);
        st_u64(&s, 0);
        st_u64(&s, 1);
        st_str(&s, "sha256:00!out");
        st_str(&s, "{\"id\":\"x\",\"outPath\":\"../../etc\"}");
        CHECK_OK(start(STORE_PROTO_SERVE, &p, 2000, &c, ep), ep);
        CHECK_INT(store_build_derivation(c, "/nix/store/00000000000000000000000000000000-x.drv", d,
                                         NULL, NULL, NULL, &r, &e),
                  ERR_MALFORMED);
        nix_drv_free(d);
    }
    store_close(c);
    strvec_dispose(&v);
    buf_dispose(&s);
}

TEST(store, badpeer, bad_nars)
{
    Buf s, nar, out;
    Peer p = {.script = &s, .after = AFTER_WAIT_EOF};
    StoreConn *c;
    Err e, *ep = &e;
    buf_init(&s, 1 << 20);
    buf_init(&out, 1 << 20);
    CHECK_OK(st_read("store/example.nar", &nar), ep);
    /* cut in the middle, then the peer hangs up */
    p.after = AFTER_CLOSE;
    worker_hello(&s);
    st_u64(&s, STORE_STDERR_LAST);
    buf_append(&s, nar.p, 600);
    CHECK_OK(start(STORE_PROTO_WORKER, &p, 2000, &c, ep), ep);
    CHECK_INT(store_nar_from_path(c, PATH_A, st_buf_sink, &out, &e), ERR_EOF);
    store_close(c);
    /* garbage inside */
    p.after = AFTER_WAIT_EOF;
    buf_reset(&s);
    worker_hello(&s);
    st_u64(&s, STORE_STDERR_LAST);
    nar.p[200] ^= 0x55;
    buf_append(&s, nar.p, nar.len);
    CHECK_OK(start(STORE_PROTO_WORKER, &p, 2000, &c, ep), ep);
    CHECK_INT(store_nar_from_path(c, PATH_A, NULL, NULL, &e), ERR_MALFORMED);
    CHECK(store_conn_broken(c));
    store_close(c);
    /* a NAR string claiming 2^60 bytes */
    buf_reset(&s);
    worker_hello(&s);
    st_u64(&s, STORE_STDERR_LAST);
    st_u64(&s, 1ull << 60);
    CHECK_OK(start(STORE_PROTO_WORKER, &p, 2000, &c, ep), ep);
    CHECK(store_nar_from_path(c, PATH_A, NULL, NULL, &e) < 0);
    store_close(c);
    buf_dispose(&s);
    buf_dispose(&nar);
    buf_dispose(&out);
}

typedef struct Later {
    StoreConn *c;
    int ms;
} Later;

static void *abort_after(void *arg)
{
    Later *l = arg;
    usleep((useconds_t)l->ms * 1000);
    store_conn_abort(l->c);
    return NULL;
}

TEST(store, badpeer, abort_and_stderr_flood)
{
    Buf s;
    Peer p = {.script = &s, .after = AFTER_WAIT_EOF};
    StoreConn *c;
    StrVec v;
    Err e, *ep = &e;
    const char *paths[] = {PATH_A};
    pthread_t th;
    Later l;
    uint64_t t0;
    buf_init(&s, 1 << 20);
    strvec_init(&v);
    worker_hello(&s);
    /* silent peer, no timeout: abort from another thread */
    CHECK_OK(start(STORE_PROTO_WORKER, &p, -1, &c, ep), ep);
    l.c = c;
    l.ms = 200;
    pthread_create(&th, NULL, abort_after, &l);
    t0 = util_now_ms();
    CHECK_INT(store_query_valid_paths(c, paths, 1, &v, &e), ERR_CANCELLED);
    pthread_join(th, NULL);
    CHECK(util_now_ms() - t0 < 1500);
    store_close(c);
    /* 4 MB on stderr, then silence: drained while waiting, timeout, last words kept */
    p.stderr_flood = 4u << 20;
    CHECK_OK(start(STORE_PROTO_WORKER, &p, 1500, &c, ep), ep);
    /* the flood arrived before the handshake; the session still works */
    p.stderr_flood = 0;
    t0 = util_now_ms();
    CHECK_INT(store_query_valid_paths(c, paths, 1, &v, &e), ERR_TIMEOUT);
    CHECK(util_now_ms() - t0 < 4000);
    store_close(c);
    /* the peer dies after a flood: the message carries its last line */
    {
        Buf s2;
        Peer p2 = {.script = &s2, .after = AFTER_CLOSE, .stderr_flood = 1u << 20, .delay_ms = 0};
        buf_init(&s2, 1024);
        st_u64(&s2, STORE_WORKER_MAGIC_2);
        CHECK_INT(start(STORE_PROTO_WORKER, &p2, 3000, &c, &e), ERR_EOF);
        CHECK_MSG(strstr(e.msg, "the last words of the peer"), "%s", e.msg);
        buf_dispose(&s2);
    }
    strvec_dispose(&v);
    buf_dispose(&s);
}

TEST(store, badpeer, serve_log_then_death)
{
    Buf s;
    Peer p = {.script = &s, .after = AFTER_CLOSE, .stderr_flood = 8192};
    StoreConn *c;
    Err e, *ep = &e;
    Buf log;
    NixDrv *d = st_ca_drv("x", "true");
    StoreBuildResult *r = NULL;
    buf_init(&s, 1 << 20);
    buf_init(&log, 1 << 20);
    serve_hello(&s);
    st_u64(&s, 0);
    st_u64(&s, 10); /* an error message of 10 bytes ... that never comes */
    p.delay_ms = 100;
    CHECK_OK(start(STORE_PROTO_SERVE, &p, 2000, &c, ep), ep);
    /* the flood went out before the handshake reply was read: it is in the tail, not
     * the build log; what matters is the clean EOF */
    CHECK_INT(store_build_derivation(c, "/nix/store/00000000000000000000000000000000-x.drv", d,
                                     NULL, st_log, &log, &r, &e),
              ERR_EOF);
    CHECK_MSG(strstr(e.msg, "last words"), "%s", e.msg);
    store_close(c);
    nix_drv_free(d);
    buf_dispose(&s);
    buf_dispose(&log);
}

/* The unix:// transport: the peer accepts on a socket and hangs up mid-reply. */
TEST(store, badpeer, unix_socket_peer)
{
    struct sockaddr_un sa;
    char *path = xasprintf("%s/bad.sock", test_tmpdir());
    char *uri = xasprintf("unix://%s", path);
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    StoreConn *c = NULL;
    StrVec v;
    Err e, *ep = &e;
    const char *paths[] = {PATH_A};
    pid_t pid;
    strvec_init(&v);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    CHECK(bind(ls, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(listen(ls, 4) == 0);
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        Buf s;
        int fd = accept(ls, NULL, NULL);
        buf_init(&s, 4096);
        worker_hello(&s);
        st_u64(&s, STORE_STDERR_LAST);
        st_u64(&s, 2);
        st_str(&s, PATH_A);
        write_all(fd, s.p, s.len);
        usleep(100 * 1000);
        _exit(0);
    }
    close(ls);
    CHECK_OK(store_open(uri, NULL, &c, ep), ep);
    CHECK_INT(store_query_valid_paths(c, paths, 1, &v, &e), ERR_EOF);
    CHECK_MSG(strstr(e.msg, "closed the connection"), "%s", e.msg);
    store_close(c);
    waitpid(pid, NULL, 0);
    unlink(path);
    /* nobody listening */
    CHECK_INT(store_open(uri, NULL, &c, &e), ERR_IO);
    strvec_dispose(&v);
    free(path);
    free(uri);
}
