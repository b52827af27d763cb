/*
 * transport.c: how sluice reaches a Nix store.
 *
 *   local, auto            child `nix-daemon --stdio` (environment inherited)
 *   daemon, unix://PATH    connect to the daemon socket
 *   ssh-ng://[u@]host?...  `ssh ... host 'nix-daemon --stdio'`
 *   ssh://[u@]host?...     `ssh ... host 'nix-store --serve --write'`
 *
 * Children get socketpairs for stdin, stdout and stderr (not pipes): we can then
 * write with MSG_NOSIGNAL (no SIGPIPE, no process-wide signal state) and shut a
 * session down from another thread with shutdown(2), which the peer sees as EOF even
 * when ssh handed the fds on to its ControlMaster.  Each child has its own process
 * group, so the group (ssh with its ProxyCommand) is signalled as one.
 *
 * ssh is run as Nix runs it (ssh.cc): `-x -a`, NIX_SSHOPTS words, `-i KEY`, a
 * known_hosts file with `HOST KEYLINE` for base64-ssh-public-host-key, `-C` for
 * compress; plus BatchMode (a service never prompts), keepalives
 * (ServerAliveInterval/CountMax) and ConnectTimeout.  Host `localhost` runs the
 * command locally with `sh -c`, as Nix does.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "store/store_int.h"

extern char **environ;

/* ---------------------------------------------------------------- URIs */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into a new string; NULL when malformed. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int h, l;
            if (i + 2 >= n) {
                free(out);
                return NULL;
            }
            h = hexval((unsigned char)s[i + 1]);
            l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static int host_ok(const char *h)
{
    if (!h[0] || h[0] == '-')
        return 0;
    for (const char *p = h; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == '@' || c == ':' || c == '[' || c == ']' ||
              c == '%'))
            return 0;
    }
    return 1;
}

void store__uri_dispose(StoreUri *u)
{
    if (!u)
        return;
    free(u->path);
    free(u->host);
    free(u->ssh_key);
    free(u->host_key);
    free(u->remote_program);
    free(u->remote_store);
    memset(u, 0, sizeof *u);
}

static int parse_params(const char *q, StoreUri *u, const char *uri, Err *e)
{
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        char *key, *val;
        if (!eq)
            return err_set(e, ERR_INVALID, "store URI '%s': parameter without '=': %.*s", uri,
                           (int)len, q);
        key = pct_decode(q, (size_t)(eq - q));
        val = pct_decode(eq + 1, len - (size_t)(eq - q) - 1);
        if (!key || !val) {
            free(key);
            free(val);
            return err_set(e, ERR_INVALID, "store URI '%s': bad percent-encoding", uri);
        }
        if (strcmp(key, "ssh-key") == 0) {
            free(u->ssh_key);
            u->ssh_key = val;
            val = NULL;
        } else if (strcmp(key, "base64-ssh-public-host-key") == 0) {
            free(u->host_key);
            u->host_key = val;
            val = NULL;
        } else if (strcmp(key, "remote-program") == 0) {
            free(u->remote_program);
            u->remote_program = val;
            val = NULL;
        } else if (strcmp(key, "remote-store") == 0) {
            free(u->remote_store);
            u->remote_store = val;
            val = NULL;
        } else if (strcmp(key, "compress") == 0) {
            u->compress = strcmp(val, "true") == 0 || strcmp(val, "1") == 0;
        } else {
            log_debug("store URI '%s': ignoring parameter '%s'", uri, key);
        }
        free(key);
        free(val);
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

int store__uri_parse(const char *uri, StoreUri *out, Err *e)
{
    StoreUri u;
    const char *rest, *q;
    int rc = 0;
    memset(&u, 0, sizeof u);
    if (!uri || !uri[0])
        return err_set(e, ERR_INVALID, "empty store URI");
    if (strcmp(uri, "local") == 0 || strcmp(uri, "auto") == 0 || util_starts_with(uri, "local?") ||
        util_starts_with(uri, "auto?")) {
        u.kind = STORE_URI_LOCAL;
    } else if (strcmp(uri, "daemon") == 0 || util_starts_with(uri, "daemon?")) {
        const char *s = getenv("NIX_DAEMON_SOCKET_PATH");
        u.kind = STORE_URI_UNIX;
        u.path = xstrdup(s && s[0] ? s : "/nix/var/nix/daemon-socket/socket");
    } else if (util_starts_with(uri, "unix://")) {
        rest = uri + 7;
        q = strchr(rest, '?');
        u.kind = STORE_URI_UNIX;
        u.path = pct_decode(rest, q ? (size_t)(q - rest) : strlen(rest));
        if (!u.path || u.path[0] != '/') {
            rc = err_set(e, ERR_INVALID, "store URI '%s': need an absolute socket path", uri);
            goto out;
        }
    } else if (util_starts_with(uri, "ssh-ng://") || util_starts_with(uri, "ssh://")) {
        int ng = util_starts_with(uri, "ssh-ng://");
        rest = uri + (ng ? 9 : 6);
        q = strchr(rest, '?');
        u.kind = ng ? STORE_URI_SSH_NG : STORE_URI_SSH;
        u.host = xstrndup(rest, q ? (size_t)(q - rest) : strlen(rest));
        if (!host_ok(u.host)) {
            rc = err_set(e, ERR_INVALID, "store URI '%s': invalid ssh host '%s'", uri, u.host);
            goto out;
        }
        rc = parse_params(q ? q + 1 : NULL, &u, uri, e);
        if (rc < 0)
            goto out;
    } else {
        rc = err_set(e, ERR_INVALID,
                     "unsupported store URI '%s' (local, daemon, unix://PATH, ssh://HOST, "
                     "ssh-ng://HOST)",
                     uri);
        goto out;
    }
    *out = u;
    memset(&u, 0, sizeof u);
out:
    store__uri_dispose(&u);
    return rc;
}

static void shell_quote(Buf *b, const char *s)
{
    buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            buf_puts(b, "'\\''");
        else
            buf_putc(b, *s);
    }
    buf_putc(b, '\'');
}

char *store__remote_command(const StoreUri *u)
{
    Buf b;
    buf_init(&b, 64 * 1024);
    if (u->kind == STORE_URI_SSH) {
        buf_puts(&b, u->remote_program ? u->remote_program : "nix-store");
        buf_puts(&b, " --serve --write");
    } else {
        buf_puts(&b, u->remote_program ? u->remote_program : "nix-daemon");
        buf_puts(&b, " --stdio");
    }
    if (u->remote_store && u->remote_store[0]) {
        buf_puts(&b, " --store ");
        shell_quote(&b, u->remote_store);
    }
    return buf_take(&b, NULL);
}

/* ---------------------------------------------------------------- ssh */

void store__rmtree(const char *dir)
{
    DIR *d;
    struct dirent *de;
    if (!dir)
        return;
    d = opendir(dir);
    if (d) {
        while ((de = readdir(d)) != NULL) {
            char *p;
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            p = xasprintf("%s/%s", dir, de->d_name);
            unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int make_tmpdir(char **tmpdir, Err *e)
{
    char tmpl[] = "/tmp/sluice-ssh.XXXXXX";
    if (*tmpdir)
        return 0;
    if (!mkdtemp(tmpl))
        return err_sys(e, ERR_IO, "mkdtemp");
    *tmpdir = xstrdup(tmpl);
    return 0;
}

/* Write TMPDIR/host-key: "HOST KEYLINE\n". */
static int write_host_key(const StoreUri *u, const char *b64, char **tmpdir, char **file, Err *e)
{
    size_t n = strlen(b64);
    unsigned char *dec = NULL;
    const char *host = strrchr(u->host, '@');
    char *line = NULL, *path = NULL;
    int len, rc, pad = 0;
    host = host ? host + 1 : u->host;
    if (n == 0 || n % 4 != 0 || n > 64 * 1024)
        return err_set(e, ERR_INVALID, "host key for %s is not valid base64", u->host);
    dec = xmalloc(n);
    len = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
    if (len < 0) {
        free(dec);
        return err_set(e, ERR_INVALID, "host key for %s is not valid base64", u->host);
    }
    if (b64[n - 1] == '=')
        pad++;
    if (n > 1 && b64[n - 2] == '=')
        pad++;
    len -= pad;
    while (len > 0 && (dec[len - 1] == '\n' || dec[len - 1] == '\r' || dec[len - 1] == ' '))
        len--;
    for (int i = 0; i < len; i++) {
        if (dec[i] < 0x20 || dec[i] > 0x7e) {
            free(dec);
            return err_set(e, ERR_INVALID, "host key for %s does not decode to a key line",
                           u->host);
        }
    }
    rc = make_tmpdir(tmpdir, e);
    if (rc < 0)
        goto out;
    line = xasprintf("%s %.*s\n", host, len, (const char *)dec);
    path = xasprintf("%s/host-key", *tmpdir);
    rc = util_write_file_atomic(path, line, strlen(line), e);
    if (rc < 0)
        goto out;
    *file = path;
    path = NULL;
out:
    free(dec);
    free(line);
    free(path);
    return rc;
}

int store__ssh_argv(const StoreUri *u, const StoreOpenOptions *o, const char *control_path,
                    const char *command, char **tmpdir, StrVec *argv, Err *e)
{
    static const StoreOpenOptions dflt;
    const char *key, *hostkey, *env;
    char *khfile = NULL;
    int rc = 0, interval, count, ctmo;
    if (!o)
        o = &dflt;
    if (strcmp(u->host, "localhost") == 0 && command) {
        strvec_push(argv, "sh");
        strvec_push(argv, "-c");
        strvec_push(argv, command);
        return 0;
    }
    key = o->ssh_key ? o->ssh_key : u->ssh_key;
    hostkey = o->host_key_b64 ? o->host_key_b64 : u->host_key;
    strvec_push(argv, "ssh");
    strvec_push(argv, "-x");
    strvec_push(argv, "-a");
    if (hostkey && hostkey[0]) {
        rc = write_host_key(u, hostkey, tmpdir, &khfile, e);
        if (rc < 0)
            return rc;
        strvec_push_take(argv, xasprintf("-oUserKnownHostsFile=%s", khfile));
        strvec_push(argv, "-oStrictHostKeyChecking=yes");
        strvec_push(argv, "-oGlobalKnownHostsFile=/dev/null");
        free(khfile);
    }
    if (control_path) {
        strvec_push(argv, "-S");
        strvec_push(argv, control_path);
        if (command) {
            strvec_push(argv, "-oControlMaster=no");
        } else {
            strvec_push(argv, "-M");
            strvec_push(argv, "-N");
            strvec_push(argv, "-oControlPersist=no");
            strvec_push(argv, "-oPermitLocalCommand=yes");
            strvec_push(argv, "-oLocalCommand=echo started");
        }
    }
    env = getenv("NIX_SSHOPTS");
    if (env) {
        char *copy = xstrdup(env), *save = NULL;
        for (char *t = strtok_r(copy, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save))
            strvec_push(argv, t);
        free(copy);
    }
    for (size_t i = 0; i < o->n_ssh_opts; i++)
        strvec_push(argv, o->ssh_opts[i]);
    if (key && key[0]) {
        strvec_push(argv, "-i");
        strvec_push(argv, key);
    }
    if (u->compress)
        strvec_push(argv, "-C");
    interval = o->server_alive_interval ? o->server_alive_interval : 15;
    count = o->server_alive_count_max ? o->server_alive_count_max : 4;
    if (interval > 0) {
        strvec_push_take(argv, xasprintf("-oServerAliveInterval=%d", interval));
        strvec_push_take(argv, xasprintf("-oServerAliveCountMax=%d", count));
    }
    ctmo = o->connect_timeout_ms ? o->connect_timeout_ms : 60000;
    if (ctmo > 0)
        strvec_push_take(argv, xasprintf("-oConnectTimeout=%d", (ctmo + 999) / 1000));
    strvec_push(argv, "-oBatchMode=yes");
    strvec_push(argv, u->host);
    if (command)
        strvec_push(argv, command);
    return 0;
}

/* ---------------------------------------------------------------- processes */

void store__set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int store__spawn(const char *const *argv, int stderr_fd, StoreChild *out, Err *e)
{
    int sin[2] = {-1, -1}, sout[2] = {-1, -1}, serr[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, dfl;
    pid_t pid;
    int rc = 0, r;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sin) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sout) < 0 ||
        (stderr_fd < 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, serr) < 0)) {
        rc = err_sys(e, ERR_IO, "socketpair");
        goto out;
    }
    /* the child reads sin[1], writes sout[1], serr[1] */
    shutdown(sin[0], SHUT_RD);
    shutdown(sout[0], SHUT_WR);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sin[1], 0);
    posix_spawn_file_actions_adddup2(&fa, sout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, stderr_fd >= 0 ? stderr_fd : serr[1], 2);
    posix_spawnattr_init(&at);
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    sigaddset(&dfl, SIGINT);
    sigaddset(&dfl, SIGTERM);
    sigaddset(&dfl, SIGHUP);
    sigaddset(&dfl, SIGCHLD);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    r = posix_spawnp(&pid, argv[0], &fa, &at, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (r != 0) {
        errno = r;
        rc = err_sys(e, ERR_IO, "cannot run '%s'", argv[0]);
        goto out;
    }
    close(sin[1]);
    close(sout[1]);
    sin[1] = sout[1] = -1;
    if (serr[1] >= 0) {
        close(serr[1]);
        serr[1] = -1;
    }
    store__set_nonblock(sin[0]);
    store__set_nonblock(sout[0]);
    if (serr[0] >= 0)
        store__set_nonblock(serr[0]);
    out->pid = pid;
    out->in_fd = sin[0];
    out->out_fd = sout[0];
    out->err_fd = serr[0];
    sin[0] = sout[0] = serr[0] = -1;
out:
    for (int i = 0; i < 2; i++) {
        if (sin[i] >= 0)
            close(sin[i]);
        if (sout[i] >= 0)
            close(sout[i]);
        if (serr[i] >= 0)
            close(serr[i]);
    }
    return rc;
}

static int wait_exit(pid_t pid, int ms)
{
    uint64_t end = util_now_ms() + (uint64_t)ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return 1;
        if (util_now_ms() >= end)
            return 0;
        {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

void store__reap(pid_t pid, int grace_ms)
{
    if (pid <= 0)
        return;
    if (wait_exit(pid, grace_ms))
        return;
    kill(-pid, SIGTERM);
    kill(pid, SIGTERM);
    if (wait_exit(pid, 2000))
        return;
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

int store__unix_connect(const char *path, int timeout_ms, int *fd, Err *e)
{
    struct sockaddr_un sa;
    int s;
    uint64_t end = util_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 60000);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return err_set(e, ERR_INVALID, "socket path too long: %s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    for (;;) {
        s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
            return err_sys(e, ERR_IO, "socket");
        if (connect(s, (struct sockaddr *)&sa, sizeof sa) == 0)
            break;
        if (errno != EAGAIN || util_now_ms() >= end) {
            int rc = err_sys(e, ERR_IO, "cannot connect to %s", path);
            close(s);
            return rc;
        }
        close(s);
        {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    store__set_nonblock(s);
    *fd = s;
    return 0;
}
