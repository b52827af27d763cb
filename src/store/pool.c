/*
 * pool.c: the connection model.
 *
 * Temporary GC roots on Nix 2.8 live as long as the protocol session that made them.
 * So:
 *   - StorePool keeps idle sessions to one store (local `nix-daemon --stdio` children,
 *     daemon socket connections, or query sessions to a remote machine) and retires a
 *     session after max_uses uses or max_idle_s idle seconds, releasing its temp roots.
 *     An idle session is checked before reuse (nothing may be readable on it: data or
 *     EOF both mean the peer is gone or confused).
 *   - StoreMachine keeps one ssh ControlMaster connection per remote machine
 *     (`ssh -M -N -S SOCKET`, readiness seen as "started" printed by LocalCommand, as
 *     Nix's ssh.cc does), restarted when it died, and opens protocol sessions for build
 *     steps over it (`ssh -S SOCKET -oControlMaster=no`): a step's input copy, build
 *     and output fetch share one session, so its temp roots cover the step and end
 *     with the session.  On a busy machine a session may be passed on to the next
 *     step (store_machine_pass_on, up to session_steps steps, STORE_PASS_ON_MS
 *     idle at most): its roots then cover those steps and end with the last.  For
 *     local stores a step's session comes from the pool.
 *
 * Locking: StorePool.mu guards the idle list and counters; StoreMachine.mu guards the
 * master process.  No protocol I/O and no process wait happens under either lock,
 * except the master's start (which must be serialised).
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store_int.h"

typedef int (*PoolOpenFn)(void *payload, StoreConn **out, Err *e);

/* A deep copy of StoreOpenOptions. */
typedef struct OwnedOpts {
    StoreOpenOptions o;
    char *key, *host_key;
    char **ssh;
} OwnedOpts;

static void owned_init(OwnedOpts *oo, const StoreOpenOptions *o)
{
    memset(oo, 0, sizeof *oo);
    if (!o)
        return;
    oo->o = *o;
    oo->key = o->ssh_key ? xstrdup(o->ssh_key) : NULL;
    oo->host_key = o->host_key_b64 ? xstrdup(o->host_key_b64) : NULL;
    oo->o.ssh_key = oo->key;
    oo->o.host_key_b64 = oo->host_key;
    if (o->n_ssh_opts) {
        oo->ssh = xcalloc(o->n_ssh_opts, sizeof *oo->ssh);
        for (size_t i = 0; i < o->n_ssh_opts; i++)
            oo->ssh[i] = xstrdup(o->ssh_opts[i]);
    }
    oo->o.ssh_opts = (const char *const *)oo->ssh;
}

static void owned_dispose(OwnedOpts *oo)
{
    free(oo->key);
    free(oo->host_key);
    for (size_t i = 0; i < oo->o.n_ssh_opts; i++)
        free(oo->ssh[i]);
    free(oo->ssh);
}

/* ---------------------------------------------------------------- pool */

struct StorePool {
    pthread_mutex_t mu;
    PoolOpenFn open;
    void *open_payload;
    char *uri; /* store_pool_new: what open() opens */
    OwnedOpts oo;
    StorePoolOptions po;
    StoreConn **idle; /* guarded by mu; oldest first */
    size_t n_idle, cap_idle;
    size_t n_out; /* guarded by mu */
};

static int pool_open_uri(void *payload, StoreConn **out, Err *e)
{
    StorePool *p = payload;
    return store_open(p->uri, &p->oo.o, out, e);
}

static StorePool *pool_alloc(const StorePoolOptions *po)
{
    StorePool *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->po.max_uses = po && po->max_uses ? po->max_uses : 1000;
    p->po.max_idle_s = po && po->max_idle_s ? po->max_idle_s : 600;
    p->po.max_idle = po && po->max_idle ? po->max_idle : 8;
    return p;
}

StorePool *store_pool_new(const char *uri, const StoreOpenOptions *opts, const StorePoolOptions *po)
{
    StorePool *p = pool_alloc(po);
    p->uri = xstrdup(uri);
    owned_init(&p->oo, opts);
    p->open = pool_open_uri;
    p->open_payload = p;
    return p;
}

static StorePool *pool_new_with(PoolOpenFn fn, void *payload, const StorePoolOptions *po)
{
    StorePool *p = pool_alloc(po);
    p->open = fn;
    p->open_payload = payload;
    return p;
}

void store_pool_free(StorePool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_idle; i++)
        store_close(p->idle[i]);
    free(p->idle);
    free(p->uri);
    owned_dispose(&p->oo);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* An idle session is healthy when nothing is readable on it. */
static int idle_ok(StoreConn *c)
{
    struct pollfd pf;
    if (store_conn_broken(c) || c->w.rpos < c->w.rlen || c->out_fd < 0)
        return 0;
    store__wire_drain_stderr(&c->w, 0);
    pf.fd = c->out_fd;
    pf.events = POLLIN;
    pf.revents = 0;
    if (poll(&pf, 1, 0) != 0)
        return 0;
    return 1;
}

/* Remove expired idle sessions into *dead (caller closes them outside the lock). */
static void take_expired(StorePool *p, StoreConn ***dead, size_t *ndead)
{
    uint64_t now = util_now_ms(), lim = (uint64_t)p->po.max_idle_s * 1000;
    size_t k = 0;
    for (size_t i = 0; i < p->n_idle; i++) {
        StoreConn *c = p->idle[i];
        if (now - c->idle_since >= lim) {
            *dead = xrealloc(*dead, (*ndead + 1) * sizeof **dead);
            (*dead)[(*ndead)++] = c;
        } else {
            p->idle[k++] = c;
        }
    }
    p->n_idle = k;
}

static void close_all(StoreConn **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_close(v[i]);
    free(v);
}

int store_pool_get(StorePool *p, StoreConn **out, Err *e)
{
    StoreConn **dead = NULL, *c = NULL;
    size_t ndead = 0;
    int rc;
    *out = NULL;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        take_expired(p, &dead, &ndead);
        c = p->n_idle ? p->idle[--p->n_idle] : NULL; /* most recently used first */
        if (c)
            p->n_out++;
        pthread_mutex_unlock(&p->mu);
        if (!c || idle_ok(c))
            break;
        pthread_mutex_lock(&p->mu);
        p->n_out--;
        pthread_mutex_unlock(&p->mu);
        store_close(c);
        c = NULL;
    }
    close_all(dead, ndead);
    if (c) {
        *out = c;
        return 0;
    }
    rc = p->open(p->open_payload, &c, e);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&p->mu);
    p->n_out++;
    pthread_mutex_unlock(&p->mu);
    *out = c;
    return 0;
}

void store_pool_put(StorePool *p, StoreConn *c)
{
    StoreConn **dead = NULL;
    size_t ndead = 0;
    if (!c)
        return;
    c->uses++;
    c->log_cb = NULL;
    c->log_payload = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->n_out > 0)
        p->n_out--;
    if (store_conn_broken(c) || c->uses >= p->po.max_uses) {
        dead = xmalloc(sizeof *dead);
        dead[ndead++] = c;
    } else {
        c->idle_since = util_now_ms();
        if (p->n_idle == p->cap_idle) {
            p->cap_idle = p->cap_idle ? p->cap_idle * 2 : 8;
            p->idle = xrealloc(p->idle, p->cap_idle * sizeof *p->idle);
        }
        p->idle[p->n_idle++] = c;
        while (p->n_idle > p->po.max_idle) {
            dead = xrealloc(dead, (ndead + 1) * sizeof *dead);
            dead[ndead++] = p->idle[0];
            memmove(p->idle, p->idle + 1, (p->n_idle - 1) * sizeof *p->idle);
            p->n_idle--;
        }
    }
    take_expired(p, &dead, &ndead);
    pthread_mutex_unlock(&p->mu);
    close_all(dead, ndead);
}

void store_pool_reap(StorePool *p)
{
    StoreConn **dead = NULL;
    size_t ndead = 0;
    pthread_mutex_lock(&p->mu);
    take_expired(p, &dead, &ndead);
    pthread_mutex_unlock(&p->mu);
    close_all(dead, ndead);
}

void store_pool_counts(StorePool *p, size_t *open, size_t *idle)
{
    pthread_mutex_lock(&p->mu);
    if (open)
        *open = p->n_idle + p->n_out;
    if (idle)
        *idle = p->n_idle;
    pthread_mutex_unlock(&p->mu);
}

/* ---------------------------------------------------------------- machines */

/* Sessions waiting for the closer; beyond this many the releasing step closes its own. */
#define STORE_CLOSING_MAX 16

struct StoreMachine {
    pthread_mutex_t mu;
    char *uri;
    StoreUri u;
    OwnedOpts oo;
    int use_master;   /* remote ssh host */
    int per_step_new; /* sessions are opened and closed per step (no pooling) */
    char *tmpdir;     /* control socket and host-key file; guarded by mu */
    char *ctl;
    pid_t master;      /* guarded by mu */
    int master_err;    /* master's stderr, guarded by mu */
    char *nix_version; /* the peer's Nix release, once known; guarded by mu */
    StorePool *pool;
    /* the first contact: sessions are opened one at a time until one has worked */
    pthread_mutex_t first_mu;
    atomic_int contacted;
    /* warm sessions (per_step_new machines), all guarded by mu */
    StoreConn *warm[STORE_WARM_MAX];
    size_t n_warm;
    size_t warm_target;   /* store_machine_set_warm */
    int warm_failed;      /* the last warm open failed: none until a step opens one */
    uint64_t warm_wanted; /* when a step last asked for a session (0: never) */
    int filler_stop;
    pthread_t filler[STORE_WARM_MAX];
    size_t n_fillers; /* threads started, up to the target seen */
    size_t n_opening; /* opens in progress */
    pthread_cond_t cv;
    /* sessions a step is done with, closed off its path by the closer (mu) */
    StoreConn *closing[STORE_CLOSING_MAX];
    size_t n_closing;
    int closer_running, closer_stop;
    pthread_t closer;
    pthread_cond_t closer_cv;
    /* sessions passed on to the machine's next step (store_machine_pass_on),
     * newest last, each until kept_until[i]; closed by the closer after that (mu) */
    unsigned session_steps; /* steps a session may serve (1: one) */
    StoreConn *kept[STORE_WARM_MAX];
    uint64_t kept_until[STORE_WARM_MAX];
    size_t n_kept;
};

StoreMachine *store_machine_new(const char *uri, const StoreOpenOptions *opts,
                                const StorePoolOptions *po);
static void warm_stop(StoreMachine *m);
static void closer_stop(StoreMachine *m);

/* Is the master alive?  mu held. */
static int master_alive_locked(StoreMachine *m)
{
    int st;
    if (m->master <= 0)
        return 0;
    if (waitpid(m->master, &st, WNOHANG) == 0)
        return 1;
    m->master = -1;
    if (m->master_err >= 0) {
        close(m->master_err);
        m->master_err = -1;
    }
    return 0;
}

static void drain_fd(int fd)
{
    char tmp[4096];
    while (fd >= 0 && read(fd, tmp, sizeof tmp) > 0)
        ;
}

/* Read from fd into buf[have..cap) until EOF, an error, a full buffer or timeout_ms
 * without data; the new length. */
static size_t read_more(int fd, char *buf, size_t cap, size_t have, int timeout_ms)
{
    while (have < cap) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        ssize_t r;
        if (poll(&pf, 1, timeout_ms) <= 0)
            break;
        r = read(fd, buf + have, cap - have);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    return have;
}

/* Start the master connection.  mu held. */
static int master_start(StoreMachine *m, Err *e)
{
    StrVec argv;
    StoreChild ch = {.pid = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1};
    const char **av = NULL;
    char line[64], emsg[512];
    size_t nl = 0, en = 0;
    int rc, tmo;
    uint64_t end;
    strvec_init(&argv);
    if (!m->tmpdir) {
        char tmpl[] = "/tmp/sluice-ssh.XXXXXX";
        if (!mkdtemp(tmpl))
            return err_sys(e, ERR_IO, "mkdtemp");
        m->tmpdir = xstrdup(tmpl);
        m->ctl = xasprintf("%s/ctl", m->tmpdir);
    }
    unlink(m->ctl);
    rc = store__ssh_argv(&m->u, &m->oo.o, m->ctl, NULL, &m->tmpdir, &argv, e);
    if (rc < 0)
        goto out;
    av = xcalloc(argv.n + 1, sizeof *av);
    for (size_t i = 0; i < argv.n; i++)
        av[i] = argv.v[i];
    rc = store__spawn(av, -1, &ch, e);
    if (rc < 0)
        goto out;
    tmo = m->oo.o.connect_timeout_ms ? m->oo.o.connect_timeout_ms : 60000;
    end = util_now_ms() + (uint64_t)(tmo > 0 ? tmo : 60000) + 1000;
    /* wait for "started\n" from LocalCommand; keep what ssh says on stderr */
    for (;;) {
        struct pollfd pf[2] = {{.fd = ch.out_fd, .events = POLLIN},
                               {.fd = ch.err_fd, .events = POLLIN}};
        uint64_t now = util_now_ms();
        ssize_t r;
        int pr;
        if (now >= end) {
            rc = err_set(e, ERR_TIMEOUT, "ssh master connection to %s: no answer", m->u.host);
            goto fail;
        }
        pr = poll(pf, ch.err_fd >= 0 ? 2 : 1, (int)(end - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0) {
            rc = err_sys(e, ERR_IO, "poll");
            goto fail;
        }
        if (ch.err_fd >= 0 && pf[1].revents) {
            r = read(ch.err_fd, emsg + en, sizeof emsg - 1 - en);
            if (r > 0)
                en += (size_t)r;
            else if (r == 0) {
                close(ch.err_fd);
                ch.err_fd = -1;
            }
        }
        if (pf[0].revents) {
            r = read(ch.out_fd, line + nl, sizeof line - 1 - nl);
            if (r <= 0) {
                rc = ERR_EOF;
                goto fail;
            }
            nl += (size_t)r;
            line[nl] = '\0';
            if (strstr(line, "started\n"))
                break;
            if (nl >= sizeof line - 1) {
                rc = ERR_MALFORMED;
                goto fail;
            }
        }
    }
    close(ch.in_fd);
    close(ch.out_fd);
    m->master = ch.pid;
    m->master_err = ch.err_fd;
    log_debug("ssh master connection to %s started (pid %d)", m->u.host, (int)ch.pid);
    rc = 0;
    goto out;
fail:
    /* collect the rest of what ssh said */
    if (ch.err_fd >= 0)
        en = read_more(ch.err_fd, emsg, sizeof emsg - 1, en, 300);
    emsg[en] = '\0';
    for (size_t i = 0; i < en; i++)
        if (emsg[i] == '\n' || emsg[i] == '\r')
            emsg[i] = ' ';
    store__clean_message(emsg);
    if (rc != ERR_TIMEOUT)
        rc = err_set(e, ERR_EOF, "cannot open ssh master connection to %s%s%s", m->u.host,
                     emsg[0] ? ": " : "", emsg);
    close(ch.in_fd);
    close(ch.out_fd);
    if (ch.err_fd >= 0)
        close(ch.err_fd);
    if (ch.pid > 0) {
        kill(-ch.pid, SIGTERM);
        store__reap(ch.pid, 1000);
    }
out:
    free(av);
    strvec_dispose(&argv);
    return rc;
}

/* `nix-store --version` run on the host over the master connection: "2.26.3", or NULL
 * (caller frees).  The serve protocol's handshake does not say the release. */
static char *remote_nix_version(StoreMachine *m)
{
    StrVec argv;
    StoreChild ch = {.pid = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1};
    const char **av = NULL;
    char buf[256], *v = NULL, *sp;
    size_t n;
    Err e = {0};
    strvec_init(&argv);
    if (store__ssh_argv(&m->u, &m->oo.o, m->ctl, "nix-store --version", &m->tmpdir, &argv, &e) < 0)
        goto out;
    av = xcalloc(argv.n + 1, sizeof *av);
    for (size_t i = 0; i < argv.n; i++)
        av[i] = argv.v[i];
    if (store__spawn(av, -1, &ch, &e) < 0)
        goto out;
    close(ch.in_fd);
    n = read_more(ch.out_fd, buf, sizeof buf - 1, 0, 10000);
    buf[n] = '\0';
    close(ch.out_fd);
    if (ch.err_fd >= 0)
        close(ch.err_fd);
    store__reap(ch.pid, 1000);
    /* "nix-store (Nix) 2.26.3\n": the last word of the first line */
    buf[strcspn(buf, "\r\n")] = '\0';
    sp = strrchr(buf, ' ');
    if (sp && sp[1] >= '0' && sp[1] <= '9')
        v = xstrdup(sp + 1);
out:
    free(av);
    strvec_dispose(&argv);
    return v;
}

/* Remember the peer's Nix release from a new session (the worker handshake says it;
 * for the serve protocol ask the host once). */
static void note_version(StoreMachine *m, const StoreConn *c)
{
    char *v = NULL;
    int known;
    pthread_mutex_lock(&m->mu);
    known = m->nix_version != NULL;
    if (!known && c->nix_version)
        m->nix_version = xstrdup(c->nix_version);
    known = m->nix_version != NULL;
    pthread_mutex_unlock(&m->mu);
    if (known || c->proto != STORE_PROTO_SERVE || !m->use_master)
        return;
    v = remote_nix_version(m);
    pthread_mutex_lock(&m->mu);
    if (!m->nix_version) {
        m->nix_version = v;
        v = NULL;
    }
    pthread_mutex_unlock(&m->mu);
    free(v);
}

static int machine_open_now(StoreMachine *m, StoreConn **out, Err *e);

/* Open a session.  Until one session to the machine has been opened, opens wait for
 * each other: Nix 2.8 with ca-derivations migrates a fresh store's schema when its
 * first process opens it, waiting for an exclusive lock on the store; a second process
 * opened at the same moment holds the shared lock for as long as its session lives, so
 * the first waits for it to end — forever when that session is idle (seen as a
 * handshake that never comes: "operation timed out").  One process alone migrates
 * it, every later one finds it done. */
static int machine_open(void *payload, StoreConn **out, Err *e)
{
    StoreMachine *m = payload;
    int rc;
    if (atomic_load(&m->contacted))
        return machine_open_now(m, out, e);
    pthread_mutex_lock(&m->first_mu);
    rc = machine_open_now(m, out, e);
    if (rc == 0)
        atomic_store(&m->contacted, 1);
    pthread_mutex_unlock(&m->first_mu);
    return rc;
}

static int machine_open_now(StoreMachine *m, StoreConn **out, Err *e)
{
    int rc = 0;
    if (!m->use_master) {
        rc = store_open(m->uri, &m->oo.o, out, e);
        if (rc == 0)
            note_version(m, *out);
        return rc;
    }
    pthread_mutex_lock(&m->mu);
    if (!master_alive_locked(m))
        rc = master_start(m, e);
    else
        drain_fd(m->master_err);
    pthread_mutex_unlock(&m->mu);
    if (rc < 0)
        return rc;
    rc = store__open_ex(m->uri, &m->oo.o, m->ctl, out, e);
    if (rc == 0)
        note_version(m, *out);
    return rc;
}

StoreMachine *store_machine_new(const char *uri, const StoreOpenOptions *opts,
                                const StorePoolOptions *po)
{
    StoreMachine *m = xcalloc(1, sizeof *m);
    Err e;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->first_mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    pthread_cond_init(&m->closer_cv, NULL);
    m->uri = xstrdup(uri);
    m->session_steps = 1;
    m->master = -1;
    m->master_err = -1;
    owned_init(&m->oo, opts);
    if (store__uri_parse(uri, &m->u, &e) == 0 &&
        (m->u.kind == STORE_URI_SSH || m->u.kind == STORE_URI_SSH_NG)) {
        m->per_step_new = 1;
        m->use_master = strcmp(m->u.host, "localhost") != 0;
        /* no warm session before a step's own first session has worked: the first
         * contact (ssh master, the builder's store) is made by one session alone */
        m->warm_failed = 1;
    }
    /* an unparsable URI fails at the first session with the parser's message */
    m->pool = pool_new_with(machine_open, m, po);
    return m;
}

void store_machine_free(StoreMachine *m)
{
    if (!m)
        return;
    warm_stop(m);
    closer_stop(m);
    store_pool_free(m->pool);
    pthread_mutex_lock(&m->mu);
    if (m->master > 0) {
        kill(-m->master, SIGTERM);
        kill(m->master, SIGTERM);
        store__reap(m->master, 2000);
        m->master = -1;
    }
    if (m->master_err >= 0)
        close(m->master_err);
    pthread_mutex_unlock(&m->mu);
    if (m->tmpdir)
        store__rmtree(m->tmpdir);
    free(m->tmpdir);
    free(m->ctl);
    free(m->nix_version);
    store__uri_dispose(&m->u);
    owned_dispose(&m->oo);
    free(m->uri);
    pthread_cond_destroy(&m->cv);
    pthread_cond_destroy(&m->closer_cv);
    pthread_mutex_destroy(&m->first_mu);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

const char *store_machine_uri(const StoreMachine *m)
{
    return m->uri;
}

/* ---------------------------------------------------------------- warm sessions */

/* A warm session not taken for this long is closed, and no other is opened until a step
 * asks for one again: an idle machine keeps nothing open on its builder. */
#define WARM_IDLE_MS 60000

/* Close the warm sessions left idle too long (all of them) into *dead.  mu held. */
static void warm_expire_locked(StoreMachine *m, uint64_t now, StoreConn **dead, size_t *ndead)
{
    if (!m->n_warm || now - m->warm_wanted < WARM_IDLE_MS)
        return;
    for (size_t i = 0; i < m->n_warm; i++)
        dead[(*ndead)++] = m->warm[i];
    m->n_warm = 0;
}

/* Do the fillers owe the machine another warm session?  mu held. */
static int warm_needed_locked(StoreMachine *m, uint64_t now)
{
    return !m->filler_stop && !m->warm_failed && m->warm_wanted &&
           now - m->warm_wanted < WARM_IDLE_MS && m->n_warm + m->n_opening < m->warm_target;
}

/* A filler: a thread per warm session a machine keeps (started as steps ask), opening
 * sessions ahead of the steps that will take them, so that the sessions a burst of
 * steps took are replaced side by side, not one after the other.  Opening is done
 * without mu (machine_open takes it to start the master). */
static void *warm_filler(void *arg)
{
    StoreMachine *m = arg;
    pthread_mutex_lock(&m->mu);
    while (!m->filler_stop) {
        StoreConn *dead[STORE_WARM_MAX + 1], *c = NULL;
        size_t ndead = 0;
        uint64_t now = util_now_ms();
        Err e = {0};
        int rc;
        warm_expire_locked(m, now, dead, &ndead);
        if (!warm_needed_locked(m, now)) {
            struct timespec ts;
            pthread_mutex_unlock(&m->mu);
            for (size_t i = 0; i < ndead; i++)
                store_close(dead[i]);
            pthread_mutex_lock(&m->mu);
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            if (!m->filler_stop && !warm_needed_locked(m, util_now_ms()))
                pthread_cond_timedwait(&m->cv, &m->mu, &ts);
            continue;
        }
        m->n_opening++;
        pthread_mutex_unlock(&m->mu);
        for (size_t i = 0; i < ndead; i++)
            store_close(dead[i]);
        rc = machine_open(m, &c, &e);
        if (rc < 0)
            log_debug("warm session to %s: %s", m->uri, e.msg);
        pthread_mutex_lock(&m->mu);
        m->n_opening--;
        if (rc < 0) {
            m->warm_failed = 1;
            continue;
        }
        c->idle_since = util_now_ms();
        if (m->filler_stop || m->n_warm >= m->warm_target) {
            pthread_mutex_unlock(&m->mu);
            store_close(c);
            pthread_mutex_lock(&m->mu);
            continue;
        }
        m->warm[m->n_warm++] = c;
        log_debug("warm session to %s opened (%zu ready)", m->uri, m->n_warm);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

void store_machine_set_warm(StoreMachine *m, size_t n)
{
    if (!m->per_step_new)
        return; /* local stores: the pool keeps idle sessions */
    pthread_mutex_lock(&m->mu);
    m->warm_target = n > STORE_WARM_MAX ? STORE_WARM_MAX : n;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* A session for a step that is ready, or NULL (the caller opens one): one an earlier
 * step passed on (the newest), else a warm one.  A session that died while it waited
 * (the builder restarted, the connection dropped) is closed and the next one tried.
 * Wakes a filler to replace what was taken. */
static StoreConn *warm_take(StoreMachine *m)
{
    for (;;) {
        StoreConn *c = NULL;
        pthread_mutex_lock(&m->mu);
        m->warm_wanted = util_now_ms();
        while (m->n_fillers < m->warm_target && !m->filler_stop &&
               pthread_create(&m->filler[m->n_fillers], NULL, warm_filler, m) == 0)
            m->n_fillers++;
        if (m->n_kept) {
            c = m->kept[--m->n_kept];
        } else if (m->n_warm) {
            c = m->warm[0]; /* oldest first: none stays idle for long */
            memmove(m->warm, m->warm + 1, (m->n_warm - 1) * sizeof *m->warm);
            m->n_warm--;
        }
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
        if (!c || idle_ok(c))
            return c;
        log_debug("warm session to %s died while idle: replaced", m->uri);
        store_close(c);
    }
}

static void warm_stop(StoreMachine *m)
{
    size_t n;
    pthread_mutex_lock(&m->mu);
    m->filler_stop = 1;
    n = m->n_fillers;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; i < n; i++)
        pthread_join(m->filler[i], NULL);
    for (size_t i = 0; i < m->n_warm; i++)
        store_close(m->warm[i]);
    m->n_warm = 0;
}

int store_machine_session(StoreMachine *m, StoreConn **out, Err *e)
{
    int rc;
    if (!m->per_step_new)
        return store_pool_get(m->pool, out, e);
    *out = warm_take(m);
    if (*out)
        return 0;
    rc = machine_open(m, out, e);
    if (rc == 0) {
        /* the machine answers again: warm sessions may be opened again */
        pthread_mutex_lock(&m->mu);
        m->warm_failed = 0;
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
    }
    return rc;
}

/* ---------------------------------------------------------------- closing sessions */

/* The closer: one thread per machine whose sessions end with their steps.  Ending a
 * session means waiting for ssh and the builder's Nix to exit (tens of milliseconds,
 * seconds for a peer that does not exit at once); the step goes on meanwhile.  Its
 * temp roots live until the peer has exited, a little longer than the step needed
 * them, never shorter.  A session passed on that no step took in time is ended here
 * too.  Pending sessions are all closed before it stops. */
static void *closer_main(void *arg)
{
    StoreMachine *m = arg;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        StoreConn *c = NULL;
        uint64_t now = util_now_ms();
        if (m->n_kept && m->kept_until[0] <= now) { /* the oldest is first */
            c = m->kept[0];
            memmove(m->kept, m->kept + 1, (m->n_kept - 1) * sizeof *m->kept);
            memmove(m->kept_until, m->kept_until + 1, (m->n_kept - 1) * sizeof *m->kept_until);
            m->n_kept--;
            log_debug("session to %s passed on, not taken: closed", m->uri);
        } else if (m->n_closing) {
            c = m->closing[0];
            memmove(m->closing, m->closing + 1, (m->n_closing - 1) * sizeof *m->closing);
            m->n_closing--;
        } else if (m->closer_stop) {
            break;
        } else if (m->n_kept) {
            struct timespec ts = util_deadline_in(m->kept_until[0] - now);
            pthread_cond_timedwait(&m->closer_cv, &m->mu, &ts);
            continue;
        } else {
            pthread_cond_wait(&m->closer_cv, &m->mu);
            continue;
        }
        pthread_mutex_unlock(&m->mu);
        store__conn_hangup(c); /* a kept one was not yet */
        store_close(c);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* Start the closer if it is not running.  mu held; 1 when it runs. */
static int closer_start_locked(StoreMachine *m)
{
    if (!m->closer_running && !m->closer_stop &&
        pthread_create(&m->closer, NULL, closer_main, m) == 0)
        m->closer_running = 1;
    return m->closer_running && !m->closer_stop;
}

/* Hand c to the closer, after telling the peer the session ends (it sees EOF now).
 * With the closer full or not startable, c is closed here. */
static void closer_submit(StoreMachine *m, StoreConn *c)
{
    int queued = 0;
    store__conn_hangup(c);
    pthread_mutex_lock(&m->mu);
    if (closer_start_locked(m) && m->n_closing < STORE_CLOSING_MAX) {
        m->closing[m->n_closing++] = c;
        queued = 1;
        pthread_cond_signal(&m->closer_cv);
    }
    pthread_mutex_unlock(&m->mu);
    if (!queued)
        store_close(c);
}

static void closer_stop(StoreMachine *m)
{
    int join;
    pthread_mutex_lock(&m->mu);
    m->closer_stop = 1;
    join = m->closer_running;
    pthread_cond_broadcast(&m->closer_cv);
    pthread_mutex_unlock(&m->mu);
    if (join)
        pthread_join(m->closer, NULL);
    for (size_t i = 0; i < m->n_closing; i++) /* none when the thread ran */
        store_close(m->closing[i]);
    m->n_closing = 0;
    for (size_t i = 0; i < m->n_kept; i++)
        store_close(m->kept[i]);
    m->n_kept = 0;
}

void store_machine_release(StoreMachine *m, StoreConn *c)
{
    if (!c)
        return;
    if (m->per_step_new)
        closer_submit(m, c);
    else
        store_pool_put(m->pool, c);
}

void store_machine_set_session_steps(StoreMachine *m, unsigned n)
{
    pthread_mutex_lock(&m->mu);
    m->session_steps = n ? n : 1;
    pthread_mutex_unlock(&m->mu);
}

void store_machine_pass_on(StoreMachine *m, StoreConn *c)
{
    int kept = 0;
    if (!c)
        return;
    if (!m->per_step_new) {
        store_pool_put(m->pool, c);
        return;
    }
    c->uses++;
    pthread_mutex_lock(&m->mu);
    if (c->uses < m->session_steps && !store_conn_broken(c) && m->n_kept < STORE_WARM_MAX &&
        closer_start_locked(m)) {
        m->kept[m->n_kept] = c;
        m->kept_until[m->n_kept] = util_now_ms() + STORE_PASS_ON_MS;
        m->n_kept++;
        kept = 1;
        pthread_cond_signal(&m->closer_cv);
    }
    pthread_mutex_unlock(&m->mu);
    if (kept)
        log_debug("session to %s passed on to the next step (%u served)", m->uri, c->uses);
    else
        closer_submit(m, c);
}

int store_machine_query_get(StoreMachine *m, StoreConn **out, Err *e)
{
    return store_pool_get(m->pool, out, e);
}

void store_machine_query_put(StoreMachine *m, StoreConn *c)
{
    store_pool_put(m->pool, c);
}

void store_machine_reap(StoreMachine *m)
{
    store_pool_reap(m->pool);
}

int store_machine_master_alive(StoreMachine *m)
{
    int alive;
    pthread_mutex_lock(&m->mu);
    alive = master_alive_locked(m);
    pthread_mutex_unlock(&m->mu);
    return alive;
}

char *store_machine_nix_version(StoreMachine *m)
{
    char *v;
    pthread_mutex_lock(&m->mu);
    v = m->nix_version ? xstrdup(m->nix_version) : NULL;
    pthread_mutex_unlock(&m->mu);
    return v;
}
