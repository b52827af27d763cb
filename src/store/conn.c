/*
 * conn.c: StoreConn, one protocol session.  Opening (URI -> transport -> handshake),
 * closing (our ends shut, the child reaped with escalating signals), aborting from
 * another thread (cancel pipe + shutdown(2) of our sockets, under the conn's lock so
 * no fd is closed under the aborter's feet), and the public calls, which validate
 * their arguments, pick the protocol's implementation and mark the session broken
 * after a transport or framing error.  Also the capability probe and the small value
 * types of store.h.  The substitutions keep what Nix says while they run: its warnings
 * and errors (why one failed), and for DRV!OUT lookups, at Nix's debug level, the
 * misses it names (SubstLog).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "store/store_int.h"

#define DEFAULT_IO_TIMEOUT_MS      600000
#define DEFAULT_CONNECT_TIMEOUT_MS 60000
#define DEFAULT_BUILD_MARGIN_S     60

/* ---------------------------------------------------------------- value types */

void store__path_info_init(StorePathInfo *pi)
{
    memset(pi, 0, sizeof *pi);
    strvec_init(&pi->references);
    strvec_init(&pi->sigs);
}

void store_path_info_free(StorePathInfo *pi)
{
    if (!pi)
        return;
    free(pi->path);
    free(pi->deriver);
    strvec_dispose(&pi->references);
    strvec_dispose(&pi->sigs);
    free(pi->ca);
    free(pi);
}

StorePathInfo *store_path_info_clone(const StorePathInfo *pi)
{
    StorePathInfo *c = xcalloc(1, sizeof *c);
    store__path_info_init(c);
    c->path = pi->path ? xstrdup(pi->path) : NULL;
    c->deriver = pi->deriver ? xstrdup(pi->deriver) : NULL;
    c->nar_hash = pi->nar_hash;
    for (size_t i = 0; i < pi->references.n; i++)
        strvec_push(&c->references, pi->references.v[i]);
    c->registration_time = pi->registration_time;
    c->nar_size = pi->nar_size;
    c->ultimate = pi->ultimate;
    for (size_t i = 0; i < pi->sigs.n; i++)
        strvec_push(&c->sigs, pi->sigs.v[i]);
    c->ca = pi->ca ? xstrdup(pi->ca) : NULL;
    return c;
}

void store_path_info_nar_hash_text(const StorePathInfo *pi, char *out)
{
    char b32[NIX_HASH_TEXT_MAX];
    nix_hash_to_base32(&pi->nar_hash, b32);
    snprintf(out, NIX_HASH_TEXT_MAX, "sha256:%s", b32);
}

void store_output_map_free(StoreOutputMap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].name);
        free(m->v[i].path);
    }
    free(m->v);
    free(m);
}

void store_build_result_free(StoreBuildResult *r)
{
    if (!r)
        return;
    free(r->error_msg);
    for (size_t i = 0; i < r->n_outputs; i++) {
        free(r->outputs[i].id);
        free(r->outputs[i].output);
        free(r->outputs[i].out_path);
        free(r->outputs[i].json);
    }
    free(r->outputs);
    free(r);
}

const char *store_build_status_name(int status)
{
    static const char *const names[] = {
        "Built",
        "Substituted",
        "AlreadyValid",
        "PermanentFailure",
        "InputRejected",
        "OutputRejected",
        "TransientFailure",
        "CachedFailure",
        "TimedOut",
        "MiscFailure",
        "DependencyFailed",
        "LogLimitExceeded",
        "NotDeterministic",
        "ResolvesToAlreadyValid",
        "NoSubstituters",
    };
    if (status < 0 || (size_t)status >= UTIL_ARRAY_LEN(names))
        return "Unknown";
    return names[status];
}

int store_build_status_success(int status)
{
    return status == STORE_BUILD_BUILT || status == STORE_BUILD_SUBSTITUTED ||
           status == STORE_BUILD_ALREADY_VALID || status == STORE_BUILD_RESOLVES_TO_ALREADY_VALID;
}

void store_probe_dispose(StoreProbe *p)
{
    if (!p)
        return;
    free(p->nix_version);
    p->nix_version = NULL;
}

void store__clean_message(char *s)
{
    size_t n;
    if (!s)
        return;
    util_strip_ansi(s);
    n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
}

int store__realisation_parse(const char *json, char **out_path_base, char **id, Err *e)
{
    json_error_t je;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    const char *op, *ids;
    int rc = 0;
    if (!root || !json_is_object(root)) {
        rc = err_set(e, ERR_MALFORMED, "realisation is not a JSON object: %.80s", json);
        goto out;
    }
    op = json_string_value(json_object_get(root, "outPath"));
    ids = json_string_value(json_object_get(root, "id"));
    if (!op || !ids) {
        rc = err_set(e, ERR_MALFORMED, "realisation without outPath or id: %.120s", json);
        goto out;
    }
    if (util_starts_with(op, NIX_STORE_DIR "/"))
        op += strlen(NIX_STORE_DIR "/");
    rc = nix_store_basename_check(op, e);
    if (rc < 0) {
        err_prefix(e, "realisation outPath");
        goto out;
    }
    if (out_path_base)
        *out_path_base = xstrdup(op);
    if (id)
        *id = xstrdup(ids);
out:
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------- sessions */

static int is_transport_error(int rc)
{
    return rc < 0 && rc != ERR_PEER && rc != ERR_NOTFOUND && rc != ERR_UNSUPPORTED &&
           rc != ERR_INVALID;
}

int store__check(StoreConn *c, Err *e)
{
    if (!c)
        return err_set(e, ERR_INVALID, "no store session");
    if (atomic_load(&c->aborted))
        return err_set(e, ERR_CANCELLED, "%s: session was cancelled", c->name);
    if (c->broken)
        return err_set(e, ERR_IO, "%s: session is broken after an earlier error", c->name);
    return 0;
}

int store__finish(StoreConn *c, int rc, Err *e)
{
    if (rc >= 0)
        return rc;
    if (atomic_load(&c->aborted)) {
        c->broken = 1;
        return err_set(e, ERR_CANCELLED, "%s: cancelled", c->name);
    }
    if (is_transport_error(rc))
        c->broken = 1;
    if (e && !util_starts_with(e->msg, c->name))
        err_prefix(e, "%s", c->name);
    return rc;
}

void store__io_timeout(StoreConn *c)
{
    store__wire_set_timeout(&c->w, c->io_timeout_ms, 0);
}

static StoreConn *conn_alloc(const char *name, const StoreOpenOptions *o)
{
    StoreConn *c = xcalloc(1, sizeof *c);
    c->name = xstrdup(name);
    c->uri = xstrdup(name);
    c->pid = -1;
    c->in_fd = c->out_fd = c->err_fd = -1;
    c->cancel_pipe[0] = c->cancel_pipe[1] = -1;
    atomic_init(&c->aborted, 0);
    pthread_mutex_init(&c->lock, NULL);
    c->io_timeout_ms = DEFAULT_IO_TIMEOUT_MS;
    c->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (o && o->io_timeout_ms)
        c->io_timeout_ms = o->io_timeout_ms < 0 ? -1 : o->io_timeout_ms;
    if (o && o->connect_timeout_ms)
        c->connect_timeout_ms = o->connect_timeout_ms < 0 ? -1 : o->connect_timeout_ms;
    buf_init(&c->serve_line, LIMIT_WIRE_LOG_CHUNK);
    return c;
}

int store__conn_from_fds(StoreProto proto, int in_fd, int out_fd, int err_fd, pid_t pid,
                         const char *name, const StoreOpenOptions *o, StoreConn **out, Err *e)
{
    StoreConn *c = conn_alloc(name ? name : "peer", o);
    int rc;
    c->proto = proto;
    c->in_fd = in_fd;
    c->out_fd = out_fd;
    c->err_fd = err_fd;
    c->pid = pid;
    if (pipe2(c->cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = err_sys(e, ERR_IO, "pipe");
        goto out;
    }
    store__set_nonblock(in_fd);
    if (out_fd != in_fd)
        store__set_nonblock(out_fd);
    if (err_fd >= 0)
        store__set_nonblock(err_fd);
    store__wire_init_fd(&c->w, out_fd, in_fd, err_fd, c->cancel_pipe[0], c->name);
    store__wire_set_timeout(&c->w, c->connect_timeout_ms, c->connect_timeout_ms);
    rc = proto == STORE_PROTO_WORKER ? store__worker_handshake(c, e) : store__serve_handshake(c, e);
    if (rc < 0)
        goto out;
    store__io_timeout(c);
    *out = c;
    c = NULL;
out:
    if (c) {
        if (atomic_load(&c->aborted))
            rc = err_set(e, ERR_CANCELLED, "cancelled");
        if (e && !util_starts_with(e->msg, c->name))
            err_prefix(e, "%s", c->name);
        store_close(c);
    }
    return rc;
}

StoreConn *store__conn_mem(StoreProto proto, unsigned version, const uint8_t *data, size_t n)
{
    StoreConn *c = conn_alloc("peer", NULL);
    c->proto = proto;
    c->version = c->peer_version = version;
    store__wire_init_mem(&c->w, data, n);
    return c;
}

/* The URI without its parameters, for messages. */
static char *uri_name(const char *uri)
{
    const char *q = strchr(uri, '?');
    return q ? xstrndup(uri, (size_t)(q - uri)) : xstrdup(uri);
}

int store__open_ex(const char *uri, const StoreOpenOptions *o, const char *control_path,
                   StoreConn **out, Err *e)
{
    StoreUri u;
    StrVec argv;
    StoreChild ch = {.pid = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1};
    char *name = NULL, *cmd = NULL, *tmpdir = NULL;
    const char **av = NULL;
    StoreConn *c = NULL;
    int rc;
    strvec_init(&argv);
    memset(&u, 0, sizeof u);
    *out = NULL;
    rc = store__uri_parse(uri, &u, e);
    if (rc < 0)
        return rc;
    name = uri_name(uri);
    switch (u.kind) {
    case STORE_URI_LOCAL:
        strvec_push(&argv, "nix-daemon");
        strvec_push(&argv, "--stdio");
        break;
    case STORE_URI_UNIX: {
        int fd = -1;
        rc = store__unix_connect(u.path, o ? o->connect_timeout_ms : 0, &fd, e);
        if (rc < 0)
            goto out;
        rc = store__conn_from_fds(STORE_PROTO_WORKER, fd, fd, -1, -1, name, o, &c, e);
        goto done;
    }
    case STORE_URI_SSH_NG:
    case STORE_URI_SSH:
        cmd = store__remote_command(&u);
        rc = store__ssh_argv(&u, o, control_path, cmd, &tmpdir, &argv, e);
        if (rc < 0)
            goto out;
        break;
    }
    av = xcalloc(argv.n + 1, sizeof *av);
    for (size_t i = 0; i < argv.n; i++)
        av[i] = argv.v[i];
    rc = store__spawn(av, -1, &ch, e);
    if (rc < 0)
        goto out;
    rc = store__conn_from_fds(u.kind == STORE_URI_SSH ? STORE_PROTO_SERVE : STORE_PROTO_WORKER,
                              ch.in_fd, ch.out_fd, ch.err_fd, ch.pid, name, o, &c, e);
done:
    if (rc < 0)
        goto out;
    free(c->uri);
    c->uri = xstrdup(uri);
    c->tmpdir = tmpdir;
    tmpdir = NULL;
    *out = c;
out:
    if (rc < 0 && e && name && !util_starts_with(e->msg, name))
        err_prefix(e, "%s", name);
    if (tmpdir) {
        store__rmtree(tmpdir);
        free(tmpdir);
    }
    free(av);
    free(cmd);
    free(name);
    strvec_dispose(&argv);
    store__uri_dispose(&u);
    return rc;
}

int store_open(const char *uri, const StoreOpenOptions *opts, StoreConn **out, Err *e)
{
    return store__open_ex(uri, opts, NULL, out, e);
}

void store_close(StoreConn *c)
{
    pid_t pid;
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->in_fd >= 0) {
        shutdown(c->in_fd, SHUT_RDWR);
        close(c->in_fd);
    }
    if (c->out_fd >= 0 && c->out_fd != c->in_fd) {
        shutdown(c->out_fd, SHUT_RDWR);
        close(c->out_fd);
    }
    if (c->err_fd >= 0)
        close(c->err_fd);
    c->in_fd = c->out_fd = c->err_fd = -1;
    pid = c->pid;
    c->pid = -1;
    pthread_mutex_unlock(&c->lock);
    /* the peer sees EOF and exits; a build it runs is interrupted */
    store__reap(pid, 3000);
    if (c->cancel_pipe[0] >= 0)
        close(c->cancel_pipe[0]);
    if (c->cancel_pipe[1] >= 0)
        close(c->cancel_pipe[1]);
    store__wire_dispose(&c->w);
    buf_dispose(&c->serve_line);
    if (c->tmpdir) {
        store__rmtree(c->tmpdir);
        free(c->tmpdir);
    }
    pthread_mutex_destroy(&c->lock);
    free(c->nix_version);
    free(c->uri);
    free(c->name);
    free(c);
}

void store__conn_hangup(StoreConn *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->in_fd >= 0)
        shutdown(c->in_fd, SHUT_WR); /* the peer reads EOF and exits */
    pthread_mutex_unlock(&c->lock);
}

void store_conn_abort(StoreConn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    atomic_store(&c->aborted, 1);
    if (c->cancel_pipe[1] >= 0) {
        ssize_t r = write(c->cancel_pipe[1], "x", 1);
        (void)r;
    }
    /* the peer sees EOF now (even ssh's ControlMaster, which holds copies of the
     * child's ends) and interrupts what it is doing */
    if (c->in_fd >= 0)
        shutdown(c->in_fd, SHUT_RDWR);
    if (c->out_fd >= 0)
        shutdown(c->out_fd, SHUT_RDWR);
    pthread_mutex_unlock(&c->lock);
}

StoreProto store_conn_protocol(const StoreConn *c)
{
    return c->proto;
}

unsigned store_conn_version(const StoreConn *c)
{
    return c->version;
}

unsigned store_conn_peer_version(const StoreConn *c)
{
    return c->peer_version;
}

const char *store_conn_nix_version(const StoreConn *c)
{
    return c->nix_version;
}

const char *store_conn_uri(const StoreConn *c)
{
    return c->uri;
}

int store_conn_broken(const StoreConn *c)
{
    return c->broken || atomic_load(&((StoreConn *)c)->aborted);
}

/* ---------------------------------------------------------------- argument checks */

static int check_path(const char *p, Err *e)
{
    Err e2;
    if (!p)
        return err_set(e, ERR_INVALID, "missing store path");
    if (nix_store_path_check(p, &e2) < 0)
        return err_set(e, ERR_INVALID, "%s", e2.msg);
    return 0;
}

static int check_paths(const char *const *paths, size_t n, Err *e)
{
    for (size_t i = 0; i < n; i++) {
        int rc = check_path(paths[i], e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int need_worker(StoreConn *c, const char *what, Err *e)
{
    if (c->proto != STORE_PROTO_WORKER)
        return err_set(e, ERR_UNSUPPORTED,
                       "%s: %s is not part of the serve protocol (use ssh-ng://)", c->name, what);
    return 0;
}

#define BEGIN(c, e)                                                                                \
    do {                                                                                           \
        int rc0_ = store__check((c), (e));                                                         \
        if (rc0_ < 0)                                                                              \
            return rc0_;                                                                           \
        store__io_timeout(c);                                                                      \
    } while (0)

/* ---------------------------------------------------------------- public calls */

int store_query_valid_paths(StoreConn *c, const char *const *paths, size_t n, StrVec *valid, Err *e)
{
    int rc;
    BEGIN(c, e);
    rc = check_paths(paths, n, e);
    if (rc < 0)
        return rc;
    if (c->proto == STORE_PROTO_WORKER)
        rc = store__worker_query_valid_paths(c, paths, n, 0, valid, e);
    else
        rc = store__serve_query_valid_paths(c, paths, n, 0, 0, valid, e);
    return store__finish(c, rc, e);
}

int store_is_valid_path(StoreConn *c, const char *path, int *valid, Err *e)
{
    int rc;
    BEGIN(c, e);
    rc = check_path(path, e);
    if (rc < 0)
        return rc;
    if (c->proto == STORE_PROTO_WORKER) {
        rc = store__worker_is_valid_path(c, path, valid, e);
    } else {
        StrVec v;
        strvec_init(&v);
        rc = store__serve_query_valid_paths(c, &path, 1, 0, 0, &v, e);
        if (rc >= 0)
            *valid = v.n == 1;
        strvec_dispose(&v);
    }
    return store__finish(c, rc, e);
}

/* QueryPathInfo for each path, with root each first given a temp root; out[] is left
 * all NULL on failure. */
static int path_infos(StoreConn *c, const char *const *paths, size_t n, int root,
                      StorePathInfo **out, Err *e)
{
    int rc;
    BEGIN(c, e);
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    if ((rc = check_paths(paths, n, e)) < 0 || n == 0)
        return rc;
    if (c->proto == STORE_PROTO_WORKER)
        rc = root ? store__worker_root_path_infos(c, paths, n, out, e)
                  : store__worker_query_path_infos(c, paths, n, out, e);
    else
        rc = root ? store__serve_root_path_infos(c, paths, n, out, e)
                  : store__serve_query_path_infos(c, paths, n, out, e);
    if (rc < 0) {
        for (size_t i = 0; i < n; i++) {
            store_path_info_free(out[i]);
            out[i] = NULL;
        }
    }
    return store__finish(c, rc, e);
}

int store_query_path_infos(StoreConn *c, const char *const *paths, size_t n, StorePathInfo **out,
                           Err *e)
{
    return path_infos(c, paths, n, 0, out, e);
}

int store_root_path_infos(StoreConn *c, const char *const *paths, size_t n, StorePathInfo **out,
                          Err *e)
{
    return path_infos(c, paths, n, 1, out, e);
}

int store_query_path_info(StoreConn *c, const char *path, StorePathInfo **out, Err *e)
{
    StorePathInfo *pi = NULL;
    int rc = store_query_path_infos(c, &path, 1, &pi, e);
    *out = NULL;
    if (rc < 0)
        return rc;
    if (!pi)
        return err_set(e, ERR_NOTFOUND, "%s: path '%s' is not valid", c->name, path);
    *out = pi;
    return 0;
}

int store_query_derivation_output_map(StoreConn *c, const char *drv_path, StoreOutputMap **out,
                                      Err *e)
{
    int rc;
    BEGIN(c, e);
    *out = NULL;
    if ((rc = need_worker(c, "QueryDerivationOutputMap", e)) < 0 ||
        (rc = check_path(drv_path, e)) < 0)
        return rc;
    rc = store__worker_query_output_map(c, drv_path, out, e);
    return store__finish(c, rc, e);
}

int store_query_realisation(StoreConn *c, const char *id, char **out_path, char **out_json, Err *e)
{
    int rc;
    BEGIN(c, e);
    *out_path = NULL;
    if (out_json)
        *out_json = NULL;
    if ((rc = need_worker(c, "QueryRealisation", e)) < 0)
        return rc;
    if (!id || !strchr(id, '!') || strlen(id) > 1024)
        return err_set(e, ERR_INVALID, "bad realisation id '%s'", id ? id : "");
    rc = store__worker_query_realisation(c, id, out_path, out_json, e);
    return store__finish(c, rc, e);
}

int store_query_realisations(StoreConn *c, char *const *ids, size_t n, char **out_paths, Err *e)
{
    int rc;
    BEGIN(c, e);
    for (size_t i = 0; i < n; i++)
        out_paths[i] = NULL;
    if ((rc = need_worker(c, "QueryRealisation", e)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (!ids[i] || !strchr(ids[i], '!') || strlen(ids[i]) > 1024)
            return err_set(e, ERR_INVALID, "bad realisation id '%s'", ids[i] ? ids[i] : "");
    rc = store__worker_query_realisations(c, ids, n, out_paths, e);
    if (rc < 0) {
        /* replies of the window may still be on their way: the session is out of step */
        c->broken = 1;
        for (size_t i = 0; i < n; i++) {
            free(out_paths[i]);
            out_paths[i] = NULL;
        }
    }
    return store__finish(c, rc, e);
}

int store_register_drv_output(StoreConn *c, const char *realisation_json, Err *e)
{
    Err e2;
    int rc;
    BEGIN(c, e);
    if ((rc = need_worker(c, "RegisterDrvOutput", e)) < 0)
        return rc;
    if (!realisation_json || store__realisation_parse(realisation_json, NULL, NULL, &e2) < 0)
        return err_set(e, ERR_INVALID, "bad realisation: %s", realisation_json ? e2.msg : "NULL");
    rc = store__worker_register_drv_output(c, realisation_json, e);
    return store__finish(c, rc, e);
}

int store_add_text_to_store(StoreConn *c, const char *name, const char *text, size_t len,
                            const char *const *refs, size_t nrefs, char **out_path, Err *e)
{
    int rc;
    BEGIN(c, e);
    *out_path = NULL;
    if ((rc = need_worker(c, "AddTextToStore", e)) < 0 || (rc = check_paths(refs, nrefs, e)) < 0)
        return rc;
    if (!name || !name[0] || strlen(name) > LIMIT_STORE_PATH_NAME)
        return err_set(e, ERR_INVALID, "bad store path name");
    if (len > LIMIT_DRV_FILE_SIZE)
        return err_set(e, ERR_TOOBIG, "text of %zu bytes is too large", len);
    rc = store__worker_add_text(c, name, text, len, refs, nrefs, out_path, e);
    return store__finish(c, rc, e);
}

int store_add_temp_roots(StoreConn *c, const char *const *paths, size_t n, Err *e)
{
    int rc;
    BEGIN(c, e);
    if ((rc = check_paths(paths, n, e)) < 0 || n == 0)
        return rc;
    if (c->proto == STORE_PROTO_WORKER) {
        rc = store__worker_add_temp_roots(c, paths, n, e);
    } else {
        StrVec v;
        strvec_init(&v);
        rc = store__serve_query_valid_paths(c, paths, n, 1, 0, &v, e);
        strvec_dispose(&v);
    }
    return store__finish(c, rc, e);
}

int store_add_indirect_root(StoreConn *c, const char *symlink_path, Err *e)
{
    int rc;
    BEGIN(c, e);
    if ((rc = need_worker(c, "AddIndirectRoot", e)) < 0)
        return rc;
    if (!symlink_path || symlink_path[0] != '/' || strlen(symlink_path) > 4096)
        return err_set(e, ERR_INVALID, "indirect root must be an absolute path");
    rc = store__worker_add_indirect_root(c, symlink_path, e);
    return store__finish(c, rc, e);
}

int store_delete_paths(StoreConn *c, const char *const *paths, size_t n, Err *e)
{
    int rc;
    BEGIN(c, e);
    if ((rc = need_worker(c, "CollectGarbage", e)) < 0)
        return rc;
    if ((rc = check_paths(paths, n, e)) < 0 || n == 0)
        return rc;
    rc = store__worker_delete_paths(c, paths, n, e);
    return store__finish(c, rc, e);
}

static int check_info(const StorePathInfo *info, Err *e)
{
    int rc = check_path(info->path, e);
    if (rc >= 0 && info->deriver)
        rc = check_path(info->deriver, e);
    if (rc >= 0)
        rc = check_paths((const char *const *)info->references.v, info->references.n, e);
    if (rc >= 0 && info->nar_hash.algo != NIX_HASH_SHA256)
        rc = err_set(e, ERR_INVALID, "narHash of %s is not sha256", info->path);
    return rc;
}

int store_add_to_store_nar(StoreConn *c, const StorePathInfo *info, StoreNarSource src,
                           void *payload, Err *e)
{
    int rc;
    BEGIN(c, e);
    if ((rc = check_info(info, e)) < 0)
        return rc;
    if (c->proto == STORE_PROTO_WORKER)
        rc = store__worker_add_nar(c, info, src, payload, e);
    else
        rc = store__serve_add_nar(c, info, src, payload, e);
    return store__finish(c, rc, e);
}

int store_nar_from_path(StoreConn *c, const char *path, NixSink sink, void *payload, Err *e)
{
    uint64_t at = 0;
    int rc;
    BEGIN(c, e);
    if ((rc = check_path(path, e)) < 0)
        return rc;
    if (c->proto == STORE_PROTO_WORKER)
        rc = store__worker_nar_begin(c, path, e);
    else
        rc = store__serve_nar_begin(c, path, e);
    if (rc >= 0)
        rc = store__wire_copy_nar(&c->w, sink, payload, &at, e);
    if (rc == ERR_MALFORMED && c->proto == STORE_PROTO_WORKER) {
        Err de = {0};
        store__worker_nar_error(c, at, &de);
        if (de.code == ERR_PEER) {
            c->broken = 1; /* the daemon ends the session after its error */
            rc = err_set(e, ERR_PEER, "NAR of %s from %s: %s", path, c->name, de.msg);
        }
    }
    if (rc < 0 && rc != ERR_PEER && rc != ERR_EOF && rc != ERR_TIMEOUT && rc != ERR_CANCELLED &&
        rc != ERR_IO)
        c->broken = 1; /* a sink error leaves the NAR half read */
    return store__finish(c, rc, e);
}

int store_query_substitutable(StoreConn *c, const char *const *paths, size_t n, StrVec *out, Err *e)
{
    int rc;
    BEGIN(c, e);
    if ((rc = need_worker(c, "QuerySubstitutablePathInfos", e)) < 0 ||
        (rc = check_paths(paths, n, e)) < 0 || n == 0)
        return rc;
    rc = store__worker_query_substitutable(c, paths, n, out, e);
    return store__finish(c, rc, e);
}

/* What the peer says during a substitution.  Its warnings and errors are joined with
 * "; " while they fit: why a substitution failed (Nix says it before its bare "build of
 * ... failed").  At Nix's debug level (misses asked for) the lines are split and
 * looked at one by one: debug lines are no reasons, and two of them name a miss (Nix
 * 2.8, src/libstore/build/drv-output-substitution-goal.cc and substitution-goal.cc):
 *
 *   derivation output 'ID' is required, but there is no substituter that can provide it
 *   path 'PATH' is required, but there is no substituter that can build it
 *
 * Nix prints the same lines when a substituter failed (the realisation could not be
 * read, the NAR was cut short, the signature is not trusted), each after an error or
 * a warning naming the path or the id; so a name counts as a miss only when no
 * warning or error of the request names it. */
typedef struct SubstLog {
    char msgs[ERR_MSG_MAX / 2];
    int debug;
    Buf line;       /* debug: the line being received */
    StrVec named;   /* debug: the ids and paths of the miss lines */
    Buf complaints; /* debug: every warning and error line, NUL-separated */
} SubstLog;

#define SUBST_MISS_ID_HEAD   "derivation output '"
#define SUBST_MISS_ID_TAIL   "' is required, but there is no substituter that can provide it"
#define SUBST_MISS_PATH_HEAD "path '"
#define SUBST_MISS_PATH_TAIL "' is required, but there is no substituter that can build it"

static void keep_msg(SubstLog *l, const char *text, size_t len)
{
    size_t at = strlen(l->msgs);
    while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
        len--;
    if (!len || at + len + 3 >= sizeof l->msgs)
        return;
    if (at) {
        memcpy(l->msgs + at, "; ", 2);
        at += 2;
    }
    memcpy(l->msgs + at, text, len);
    l->msgs[at + len] = '\0';
}

/* The name between head and tail when `line` is exactly head NAME tail. */
static int miss_line(const char *line, const char *head, const char *tail, StrVec *named)
{
    size_t n = strlen(line), nh = strlen(head), nt = strlen(tail);
    if (n <= nh + nt || strncmp(line, head, nh) != 0 || strcmp(line + n - nt, tail) != 0)
        return 0;
    strvec_push_take(named, xstrndup(line + nh, n - nh - nt));
    return 1;
}

static void debug_line(SubstLog *l)
{
    char *line;
    if (buf_status(&l->line) < 0) { /* longer than any line of interest */
        buf_reset(&l->line);
        return;
    }
    line = xstrdup(buf_cstr(&l->line));
    buf_reset(&l->line);
    util_strip_ansi(line);
    if (util_starts_with(line, "error:") || util_starts_with(line, "warning:")) {
        keep_msg(l, line, strlen(line));
        buf_append(&l->complaints, line, strlen(line) + 1);
    } else if (!miss_line(line, SUBST_MISS_ID_HEAD, SUBST_MISS_ID_TAIL, &l->named)) {
        miss_line(line, SUBST_MISS_PATH_HEAD, SUBST_MISS_PATH_TAIL, &l->named);
    }
    free(line);
}

static void subst_log(void *payload, StoreLogKind kind, const char *text, size_t len)
{
    SubstLog *l = payload;
    if (kind != STORE_LOG_MSG)
        return;
    if (!l->debug) {
        keep_msg(l, text, len);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n')
            debug_line(l);
        else
            buf_putc(&l->line, text[i]);
    }
}

/* 1 when a warning or error of the request names `name`. */
static int complained_of(Buf *complaints, const char *name)
{
    const char *p = (const char *)complaints->p, *end = p + complaints->len;
    if (buf_status(complaints) < 0)
        return 1; /* too many to tell: nothing counts as a miss */
    while (p < end) {
        if (strstr(p, name))
            return 1;
        p += strlen(p) + 1;
    }
    return 0;
}

/* BuildPaths of `v` with the peer's messages kept: they say why it failed.  misses
 * (NULL: not asked): the ids and paths Nix named as misses (SubstLog), sorted. */
static int substitute_with_reasons(StoreConn *c, const char *const *v, size_t n, StrVec *misses,
                                   Err *e)
{
    SubstLog l = {.debug = misses != NULL};
    int rc;
    buf_init(&l.line, LIMIT_WIRE_MESSAGE);
    buf_init(&l.complaints, LIMIT_SUBST_COMPLAINTS);
    strvec_init(&l.named);
    c->log_cb = subst_log;
    c->log_payload = &l;
    rc =
        store__worker_substitute(c, v, n, misses ? STORE_VERBOSITY_DEBUG : STORE_VERBOSITY_WARN, e);
    c->log_cb = NULL;
    c->log_payload = NULL;
    util_strip_ansi(l.msgs);
    if (rc == ERR_PEER && l.msgs[0] && e)
        err_prefix(e, "%s", l.msgs);
    for (size_t i = 0; misses && rc != ERR_EOF && i < l.named.n; i++)
        if (!complained_of(&l.complaints, l.named.v[i]))
            strvec_push(misses, l.named.v[i]);
    if (misses)
        strvec_sort_unique(misses);
    strvec_dispose(&l.named);
    buf_dispose(&l.line);
    buf_dispose(&l.complaints);
    return store__finish(c, rc, e);
}

int store_substitute_paths(StoreConn *c, const char *const *paths, size_t n, Err *e)
{
    int rc;
    BEGIN(c, e);
    if ((rc = need_worker(c, "BuildPaths", e)) < 0 || (rc = check_paths(paths, n, e)) < 0 || n == 0)
        return rc;
    return substitute_with_reasons(c, paths, n, NULL, e);
}

int store_substitute_outputs(StoreConn *c, const char *const *derived, size_t n, StrVec *misses,
                             Err *e)
{
    int rc;
    BEGIN(c, e);
    if ((rc = need_worker(c, "BuildPaths", e)) < 0 || n == 0)
        return rc;
    if (STORE_MINOR(c->version) < 30)
        return err_set(e, ERR_UNSUPPORTED, "%s: derived paths need worker protocol 1.30", c->name);
    for (size_t i = 0; i < n; i++) {
        const char *bang = strchr(derived[i], '!');
        char *drv = bang ? xstrndup(derived[i], (size_t)(bang - derived[i])) : NULL;
        rc = drv && bang[1] ? check_path(drv, e)
                            : err_set(e, ERR_INVALID, "'%s' is not DRV!OUTPUTS", derived[i]);
        free(drv);
        if (rc < 0)
            return rc;
    }
    return substitute_with_reasons(c, derived, n, misses, e);
}

int store_set_options(StoreConn *c, const StoreOptions *o, Err *e)
{
    int rc;
    BEGIN(c, e);
    if (c->proto == STORE_PROTO_SERVE) {
        c->opts = *o;
        return 0;
    }
    rc = store__worker_set_options(c, o, e);
    return store__finish(c, rc, e);
}

int store_build_derivation(StoreConn *c, const char *drv_path, const NixDrv *basic,
                           const StoreBuildOptions *opts, StoreLogFn log_cb, void *payload,
                           StoreBuildResult **out, Err *e)
{
    static const StoreBuildOptions dflt;
    uint64_t idle_s;
    int margin, rc;
    BEGIN(c, e);
    *out = NULL;
    if (!opts)
        opts = &dflt;
    if ((rc = check_path(drv_path, e)) < 0)
        return rc;
    if (!nix_store_path_is_drv(drv_path))
        return err_set(e, ERR_INVALID, "'%s' is not a derivation path", drv_path);
    if (!basic || !basic->platform || !basic->builder)
        return err_set(e, ERR_INVALID, "incomplete derivation for %s", drv_path);
    if (basic->n_inputs > 0)
        return err_set(e, ERR_INVALID,
                       "%s still has input derivations: fold their outputs into the sources "
                       "before sending it as a BasicDerivation",
                       drv_path);
    if ((rc = check_paths((const char *const *)basic->srcs, basic->n_srcs, e)) < 0)
        return rc;
    margin = opts->read_margin_s ? (opts->read_margin_s < 0 ? 0 : opts->read_margin_s)
                                 : DEFAULT_BUILD_MARGIN_S;
    if (opts->build_timeout || opts->max_silent_time) {
        idle_s = opts->build_timeout + opts->max_silent_time + (uint64_t)margin;
        if (idle_s > (uint64_t)INT32_MAX / 1000)
            idle_s = (uint64_t)INT32_MAX / 1000;
        store__wire_set_timeout(&c->w, (int)(idle_s * 1000), 0);
    } else {
        store__wire_set_timeout(&c->w, -1, 0);
    }
    c->log_cb = log_cb;
    c->log_payload = payload;
    if (c->proto == STORE_PROTO_WORKER)
        rc = store__worker_build(c, drv_path, basic, opts, out, e);
    else
        rc = store__serve_build(c, drv_path, basic, opts, out, e);
    c->log_cb = NULL;
    c->log_payload = NULL;
    store__io_timeout(c);
    return store__finish(c, rc, e);
}

void store_conn_drain_log(StoreConn *c, StoreLogFn log_cb, void *payload, int max_ms)
{
    if (!c || c->proto != STORE_PROTO_SERVE)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->in_fd >= 0)
        shutdown(c->in_fd, SHUT_WR); /* the peer reads EOF and exits */
    pthread_mutex_unlock(&c->lock);
    c->log_cb = log_cb;
    c->log_payload = payload;
    store__serve_drain_log(c, max_ms);
    c->log_cb = NULL;
    c->log_payload = NULL;
}

int store_conn_sync_log(StoreConn *c, StoreLogFn log_cb, void *payload, Err *e)
{
    int rc;
    if (!c || c->proto != STORE_PROTO_SERVE)
        return 0;
    c->log_cb = log_cb;
    c->log_payload = payload;
    rc = store__serve_sync_log(c, e);
    c->log_cb = NULL;
    c->log_payload = NULL;
    return rc;
}

/* ---------------------------------------------------------------- probe */

/* Trust: an input-addressed BasicDerivation is refused ("not privileged") from an
 * untrusted client before anything happens; from a trusted one it fails harmlessly
 * for want of a machine of system "sluice-trust-probe" (MiscFailure), touching
 * nothing.  (AddSignatures, the obvious probe, crashes a 2.8 daemon on an invalid
 * path.) */
static int probe_trust(const char *uri, const StoreOpenOptions *o)
{
    static char drv_path[] =
        NIX_STORE_DIR "/00000000000000000000000000000000-sluice-trust-probe.drv";
    static char out_path[] = NIX_STORE_DIR "/00000000000000000000000000000000-sluice-trust-probe";
    static char s_out[] = "out", s_empty[] = "", s_sys[] = "sluice-trust-probe",
                s_builder[] = "/bin/false";
    NixDrvOutput outs[1] = {
        {.name = s_out, .path = out_path, .hash_algo = s_empty, .hash = s_empty}};
    NixEnvPair env[1] = {{.key = s_out, .value = out_path}};
    NixDrv d;
    StoreOptions so;
    StoreBuildOptions bo;
    StoreBuildResult *r = NULL;
    StoreConn *c = NULL;
    Err e;
    int rc, trusted = -1;
    memset(&d, 0, sizeof d);
    memset(&so, 0, sizeof so);
    memset(&bo, 0, sizeof bo);
    d.outputs = outs;
    d.n_outputs = 1;
    d.platform = s_sys;
    d.builder = s_builder;
    d.env = env;
    d.n_env = 1;
    bo.read_margin_s = -1;
    bo.max_silent_time = 60;
    if (store_open(uri, o, &c, &e) < 0)
        return -1;
    if (store_set_options(c, &so, &e) < 0) {
        store_close(c);
        return -1;
    }
    rc = store_build_derivation(c, drv_path, &d, &bo, NULL, NULL, &r, &e);
    if (rc >= 0)
        trusted = 1;
    else if (rc == ERR_PEER)
        trusted = strstr(e.msg, "not privileged") ? 0 : -1;
    store_build_result_free(r);
    store_close(c);
    return trusted;
}

static int probe_ca(const char *uri, const StoreOpenOptions *o)
{
    static const char id[] =
        "sha256:0000000000000000000000000000000000000000000000000000000000000000!out";
    StoreConn *c = NULL;
    char *path = NULL;
    Err e;
    int rc, on = -1;
    if (store_open(uri, o, &c, &e) < 0)
        return -1;
    if (STORE_MINOR(c->version) < 27) {
        store_close(c);
        return 0;
    }
    rc = store_query_realisation(c, id, &path, NULL, &e);
    if (rc >= 0)
        on = 1;
    else if (rc == ERR_EOF)
        on = 0; /* Nix 2.8 aborts when ca-derivations is off */
    else if (rc == ERR_PEER && strstr(e.msg, "ca-derivations"))
        on = 0;
    free(path);
    store_close(c);
    return on;
}

int store_probe(const char *uri, const StoreOpenOptions *opts, StoreProbe *out, Err *e)
{
    StoreConn *c = NULL;
    int rc;
    memset(out, 0, sizeof *out);
    out->trusted = -1;
    out->ca_derivations = -1;
    rc = store_open(uri, opts, &c, e);
    if (rc < 0)
        return rc;
    out->proto = c->proto;
    out->version = c->version;
    out->peer_version = c->peer_version;
    out->nix_version = c->nix_version ? xstrdup(c->nix_version) : NULL;
    store_close(c);
    if (out->proto == STORE_PROTO_WORKER) {
        out->trusted = probe_trust(uri, opts);
        out->ca_derivations = probe_ca(uri, opts);
    } else if (util_starts_with(uri, "ssh://") && !strstr(uri, "remote-program=")) {
        /* the serve protocol cannot say; ask the host's nix-daemon over ssh-ng */
        char *ng = xasprintf("ssh-ng://%s", uri + 6);
        StoreConn *c2 = NULL;
        Err e2;
        if (store_open(ng, opts, &c2, &e2) == 0) {
            free(out->nix_version);
            out->nix_version = c2->nix_version ? xstrdup(c2->nix_version) : NULL;
            store_close(c2);
            out->ca_derivations = probe_ca(ng, opts);
        }
        free(ng);
    }
    return 0;
}
