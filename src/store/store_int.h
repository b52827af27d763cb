/*
 * store_int.h: internals of store/, for the store/ sources and the store unit tests only.
 *
 * Layers:
 *   wire.c       StoreWire: buffered reads and writes over a peer's fds (or over memory,
 *                for tests and the fuzzer) with deadlines, cancellation and the peer's
 *                stderr drained while waiting; the framing primitives of both protocols
 *                (u64, padded strings, string lists, framed streams, unframed NARs).
 *   transport.c  URIs, child processes on socketpairs, the unix socket, ssh argument
 *                vectors and the ssh ControlMaster.
 *   worker.c     worker-protocol client (handshake, stderr loop, operations).
 *   serve.c      serve-protocol client.
 *   conn.c       StoreConn: open/close/abort, protocol dispatch of the public calls,
 *                the capability probe.
 *   copy.c       closure computation and streaming copy.
 *   pool.c       StorePool and StoreMachine.
 *
 * Wire primitives (both protocols; nix-protocols.md section 1):
 *
 *   | type        | bytes                                                        |
 *   |-------------|--------------------------------------------------------------|
 *   | u64         | 8, little-endian                                             |
 *   | string      | u64 len, len bytes, zero padding to a multiple of 8          |
 *   | strings     | u64 count, count strings                                     |
 *   | framed      | { u64 len (> 0), len bytes (no padding) } u64 0              |
 *   | raw NAR     | a NAR with no length prefix; its end is found by parsing it  |
 */
#ifndef SLUICE_STORE_INT_H
#define SLUICE_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "store/store.h"

/* ---------------------------------------------------------------- limits */

/* Read-ahead kept while we are still writing (so a peer that answers before it has
 * read everything cannot deadlock us); beyond this we stop reading until we read. */
#define STORE_WIRE_READAHEAD_MAX (16u * 1024 * 1024)
/* Normal read buffer. */
#define STORE_WIRE_RBUF (64u * 1024)
/* Pending output flushed once it grows past this. */
#define STORE_WIRE_WBUF_FLUSH (64u * 1024)
/* Bytes of the peer's stderr kept for error messages. */
#define STORE_WIRE_ETAIL 2048
/* Traces in one error message. */
#define STORE_WIRE_TRACES 1024
/* Worker QueryPathInfo requests written before their replies are read. */
#define STORE_PIPELINE_WINDOW 256
/* Chunk size of NAR streaming. */
#define STORE_NAR_CHUNK (64u * 1024)

/* ---------------------------------------------------------------- wire */

typedef void (*StoreWireStderrFn)(void *payload, const uint8_t *data, size_t n);

typedef struct StoreWire {
    int rfd;       /* we read replies here; -1: memory source */
    int wfd;       /* we write requests here; -1: output kept in wbuf */
    int efd;       /* the peer's stderr (child processes), -1 none */
    int cancel_fd; /* readable once the session is aborted, -1 none */
    uint8_t *rbuf; /* buffered input rbuf[rpos..rlen) */
    size_t rpos, rlen, rcap;
    int rbuf_owned;    /* 0 for the memory source */
    Buf wbuf;          /* pending output */
    int idle_ms;       /* longest wait for progress, < 0 none */
    uint64_t deadline; /* absolute util_now_ms() limit, 0 none */
    StoreWireStderrFn on_stderr;
    void *on_stderr_payload;
    char etail[STORE_WIRE_ETAIL]; /* last bytes of the peer's stderr */
    size_t etail_len;
    uint64_t nread, nwritten;
    int reof;         /* the peer hung up while we were writing */
    const char *peer; /* name for messages (borrowed) */
} StoreWire;

void store__wire_init_fd(StoreWire *w, int rfd, int wfd, int efd, int cancel_fd, const char *peer);
/* A memory source: reads come from data[0..n) (borrowed), then ERR_EOF. */
void store__wire_init_mem(StoreWire *w, const uint8_t *data, size_t n);
void store__wire_dispose(StoreWire *w); /* frees buffers; closes no fd */

/* Deadlines: idle_ms (< 0 none) limits each wait for progress; total_ms (0 none)
 * limits the whole operation from now. */
void store__wire_set_timeout(StoreWire *w, int idle_ms, int64_t total_ms);

int store__wire_read(StoreWire *w, void *dst, size_t n, Err *e);
int store__wire_u64(StoreWire *w, uint64_t *out, Err *e);
/* The little-endian u64 at b. */
uint64_t store__le64(const uint8_t *b);
/* A u64 that must be <= max (ERR_MALFORMED otherwise). */
int store__wire_num(StoreWire *w, uint64_t max, uint64_t *out, Err *e);
/* A string of at most max bytes, NUL-terminated, no NUL inside; *out caller-owned;
 * len may be NULL. */
int store__wire_string(StoreWire *w, size_t max, char **out, size_t *len, Err *e);
int store__wire_skip_string(StoreWire *w, size_t max, Err *e);
/* Text that is data (log lines, messages): any bytes, NUL included, any length.  It
 * goes to fn in pieces of at most `piece` bytes (each NUL-terminated for convenience),
 * suffix (may be NULL) appended to the last; fn NULL skips it.  Memory stays within
 * one piece whatever length the peer announces. */
typedef void (*StoreTextFn)(void *payload, const char *s, size_t n);
int store__wire_text(StoreWire *w, size_t piece, const char *suffix, StoreTextFn fn, void *payload,
                     Err *e);
/* A message that may carry build output (errors, build results): any bytes, any
 * length; *out (caller-owned) is valid UTF-8 without NUL, the first `max` bytes and a
 * note of how many more were left out. */
int store__wire_message(StoreWire *w, size_t max, char **out, Err *e);
/* A list of at most max_items strings of at most max_len bytes, appended to sv. */
int store__wire_strings(StoreWire *w, size_t max_items, size_t max_len, StrVec *sv, Err *e);
/* A store path (validated).  allow_empty: "" gives *out = NULL. */
int store__wire_path(StoreWire *w, int allow_empty, char **out, Err *e);
/* A list of validated store paths appended to sv. */
int store__wire_paths(StoreWire *w, StrVec *sv, Err *e);

/* Output (buffered until store__wire_flush; large appends flush on their own). */
int store__wire_put_u64(StoreWire *w, uint64_t v, Err *e);
int store__wire_put_bytes(StoreWire *w, const void *data, size_t n, Err *e); /* raw */
int store__wire_put_string(StoreWire *w, const void *s, size_t n, Err *e);
int store__wire_put_cstr(StoreWire *w, const char *s, Err *e);
int store__wire_put_strings(StoreWire *w, const char *const *v, size_t n, Err *e);
int store__wire_flush(StoreWire *w, Err *e);
/* Flush before a read: a peer that hung up is not an error yet, since it may have
 * answered (an error message, a wrong magic) before leaving; the read tells. */
int store__wire_flush_lenient(StoreWire *w, Err *e);
/* One frame of a framed stream (n > 0), or the terminating u64 0 when n == 0. */
int store__wire_put_frame(StoreWire *w, const void *data, size_t n, Err *e);

/* Read a framed stream, pushing each chunk to sink (which may be NULL to discard);
 * total bytes in *total (may be NULL); at most max_total bytes accepted. */
int store__wire_read_framed(StoreWire *w, uint64_t max_total, NixSink sink, void *payload,
                            uint64_t *total, Err *e);
/* Read one unframed NAR, pushing its bytes to sink in pieces; *size = its length (on
 * failure: the bytes read before it). */
int store__wire_copy_nar(StoreWire *w, NixSink sink, void *payload, uint64_t *size, Err *e);
/* At least one buffered byte: p and n describe the buffered input. */
int store__wire_peek(StoreWire *w, const uint8_t **p, size_t *n, Err *e);
void store__wire_consume(StoreWire *w, size_t n);
/* Last line(s) of the peer's stderr, ANSI stripped, for messages ("" when none). */
void store__wire_stderr_tail(const StoreWire *w, char *out, size_t cap);
/* Wait up to ms for the peer's stderr to reach EOF (used after the peer hung up so
 * its last words can go into the message). */
void store__wire_drain_stderr(StoreWire *w, int ms);
/* Read the peer's stderr while it keeps coming: until it is quiet for idle_ms, at most
 * max_ms in all. */
void store__wire_drain_stderr_idle(StoreWire *w, int idle_ms, int max_ms);

/* ---------------------------------------------------------------- URIs, transports */

typedef enum {
    STORE_URI_LOCAL = 1, /* child nix-daemon --stdio */
    STORE_URI_UNIX,      /* daemon socket */
    STORE_URI_SSH_NG,    /* ssh + nix-daemon --stdio */
    STORE_URI_SSH,       /* ssh + nix-store --serve --write */
} StoreUriKind;

typedef struct StoreUri {
    StoreUriKind kind;
    char *path;    /* UNIX: socket path */
    char *host;    /* SSH*: [user@]host */
    char *ssh_key; /* parameters (NULL when absent) */
    char *host_key;
    char *remote_program;
    char *remote_store;
    int compress;
} StoreUri;

int store__uri_parse(const char *uri, StoreUri *out, Err *e);
void store__uri_dispose(StoreUri *u);

/* Remote command of an ssh URI ("nix-daemon --stdio" / "nix-store --serve --write",
 * remote-program and --store 'remote-store' applied); caller frees. */
char *store__remote_command(const StoreUri *u);

/* ssh arguments (argv[0] = "ssh") for running command on u's host (command NULL: the
 * master, `-M -N -S control_path`).  control_path NULL: no master.  A host-key file is
 * written into tmpdir (created as needed; *tmpdir caller-owned, removed with
 * store__rmtree).  argv is initialised by the caller. */
int store__ssh_argv(const StoreUri *u, const StoreOpenOptions *o, const char *control_path,
                    const char *command, char **tmpdir, StrVec *argv, Err *e);
void store__rmtree(const char *dir);

/* A spawned child with its stdin/stdout/stderr on socketpairs (our ends non-blocking,
 * close-on-exec).  The child gets its own process group. */
typedef struct StoreChild {
    pid_t pid;
    int in_fd;  /* we write */
    int out_fd; /* we read */
    int err_fd; /* we read its stderr; -1 when stderr_fd was given */
} StoreChild;
/* stderr_fd >= 0: the child's stderr goes there instead of a socketpair. */
int store__spawn(const char *const *argv, int stderr_fd, StoreChild *out, Err *e);
/* Reap pid: wait up to grace_ms for it to exit, then SIGTERM, then SIGKILL. */
void store__reap(pid_t pid, int grace_ms);
int store__unix_connect(const char *path, int timeout_ms, int *fd, Err *e);
void store__set_nonblock(int fd);

/* ---------------------------------------------------------------- connection */

struct StoreConn {
    StoreProto proto;
    unsigned version;      /* negotiated */
    unsigned peer_version; /* announced by the peer */
    char *nix_version;
    char *uri;
    char *name; /* for messages */
    StoreWire w;
    pid_t pid;                 /* child (nix-daemon / ssh / sh), -1 none */
    int in_fd, out_fd, err_fd; /* ours; in_fd may equal out_fd (socket) */
    int cancel_pipe[2];
    atomic_int aborted;
    pthread_mutex_t lock; /* guards the fds and pid against store_conn_abort */
    int broken;
    int io_timeout_ms;
    int connect_timeout_ms;
    /* options: worker sends SetOptions lazily; serve sends them with each build */
    StoreOptions opts;
    int opts_sent; /* worker: opts equal what the daemon has */
    /* current operation's log callback (worker stderr loop, serve stderr) */
    StoreLogFn log_cb;
    void *log_payload;
    Buf serve_line; /* unused partial stderr data of a serve build */
    /* pool bookkeeping */
    unsigned uses;
    uint64_t idle_since;
    char *tmpdir; /* ssh host-key file, removed at close */
};

/* Open over existing fds (tests, badpeer): proto decides the handshake.  The conn
 * takes ownership of the fds and of pid (-1 none). */
/* Tell the peer the session ends (EOF on its input); store_close still follows. */
void store__conn_hangup(StoreConn *c);
int store__conn_from_fds(StoreProto proto, int in_fd, int out_fd, int err_fd, pid_t pid,
                         const char *name, const StoreOpenOptions *o, StoreConn **out, Err *e);
/* A session over memory (tests, fuzzer): replies come from data[0..n) (borrowed),
 * requests collect in c->w.wbuf; version is taken as negotiated.  store_close frees. */
StoreConn *store__conn_mem(StoreProto proto, unsigned version, const uint8_t *data, size_t n);
/* Open an ssh URI over a running master's control socket. */
int store__open_ex(const char *uri, const StoreOpenOptions *o, const char *control_path,
                   StoreConn **out, Err *e);
/* Called at the end of each public call: a transport error marks c broken and the
 * message gets the peer's name.  Returns rc. */
int store__finish(StoreConn *c, int rc, Err *e);
/* Fails with the reason when c is broken or aborted. */
int store__check(StoreConn *c, Err *e);
/* Set the wire's timeouts to c's ordinary I/O timeout. */
void store__io_timeout(StoreConn *c);

/* ---------------------------------------------------------------- worker protocol */

enum {
    STORE_WOP_IS_VALID_PATH = 1,
    STORE_WOP_ADD_TEXT_TO_STORE = 8,
    STORE_WOP_BUILD_PATHS = 9,
    STORE_WOP_ADD_TEMP_ROOT = 11,
    STORE_WOP_ADD_INDIRECT_ROOT = 12,
    STORE_WOP_SET_OPTIONS = 19,
    STORE_WOP_COLLECT_GARBAGE = 20,
    STORE_WOP_QUERY_PATH_INFO = 26,
    STORE_WOP_QUERY_SUBSTITUTABLE_PATH_INFOS = 30,
    STORE_WOP_QUERY_VALID_PATHS = 31,
    STORE_WOP_BUILD_DERIVATION = 36,
    STORE_WOP_ADD_SIGNATURES = 37,
    STORE_WOP_NAR_FROM_PATH = 38,
    STORE_WOP_ADD_TO_STORE_NAR = 39,
    STORE_WOP_QUERY_DERIVATION_OUTPUT_MAP = 41,
    STORE_WOP_REGISTER_DRV_OUTPUT = 42,
    STORE_WOP_QUERY_REALISATION = 43,
};

#define STORE_WORKER_MAGIC_1        0x6e697863u
#define STORE_WORKER_MAGIC_2        0x6478696fu
#define STORE_STDERR_NEXT           0x6f6c6d67u
#define STORE_STDERR_READ           0x64617461u
#define STORE_STDERR_WRITE          0x64617416u
#define STORE_STDERR_LAST           0x616c7473u
#define STORE_STDERR_ERROR          0x63787470u
#define STORE_STDERR_START_ACTIVITY 0x53545254u
#define STORE_STDERR_STOP_ACTIVITY  0x53544f50u
#define STORE_STDERR_RESULT         0x52534c54u
/* Oldest worker protocol we speak (framed AddToStoreNar needs 1.23; below 1.21 Nix
 * wants NARs sent bare). */
#define STORE_WORKER_MIN 0x115
#define STORE_MINOR(v)   ((v)&0xff)
/* Nix's Verbosity: warnings (why a substitution failed), debug (what no substituter has) */
#define STORE_VERBOSITY_WARN  1
#define STORE_VERBOSITY_DEBUG 6
#define STORE_MAJOR(v)        ((v)&0xff00)

/* NAR source for the stderr loop's STDERR_READ (AddToStoreNar at 1.21-1.22). */
typedef struct StoreReadSource {
    StoreNarSource fn;
    void *payload;
} StoreReadSource;

int store__worker_handshake(StoreConn *c, Err *e);
/* Process stderr messages until STDERR_LAST (0) or STDERR_ERROR (ERR_PEER with the
 * message).  Log text goes to c->log_cb. */
int store__worker_stderr(StoreConn *c, const StoreReadSource *src, Err *e);
/* Parse the PathInfo body (after the path) of a worker reply. */
int store__worker_read_path_info(StoreConn *c, StorePathInfo *pi, Err *e);
/* Parse a BuildResult of the given protocol and version. */
int store__read_build_result(StoreWire *w, StoreProto proto, unsigned version,
                             StoreBuildResult **out, Err *e);
/* Write a BasicDerivation (nix-derivations.md section 8). */
int store__put_basic_drv(StoreWire *w, const NixDrv *d, Err *e);

int store__worker_query_valid_paths(StoreConn *c, const char *const *paths, size_t n,
                                    int substitute, StrVec *valid, Err *e);
int store__worker_is_valid_path(StoreConn *c, const char *path, int *valid, Err *e);
int store__worker_query_path_infos(StoreConn *c, const char *const *paths, size_t n,
                                   StorePathInfo **out, Err *e);
/* AddTempRoot then QueryPathInfo for each path, the requests of a window sent together
 * before any reply is read. */
int store__worker_root_path_infos(StoreConn *c, const char *const *paths, size_t n,
                                  StorePathInfo **out, Err *e);
int store__worker_query_output_map(StoreConn *c, const char *drv, StoreOutputMap **out, Err *e);
int store__worker_query_realisation(StoreConn *c, const char *id, char **out_path, char **out_json,
                                    Err *e);
int store__worker_query_realisations(StoreConn *c, char *const *ids, size_t n, char **out_paths,
                                     Err *e);
int store__worker_register_drv_output(StoreConn *c, const char *json, Err *e);
int store__worker_add_text(StoreConn *c, const char *name, const char *text, size_t len,
                           const char *const *refs, size_t nrefs, char **out_path, Err *e);
int store__worker_add_temp_root(StoreConn *c, const char *path, Err *e);
int store__worker_add_indirect_root(StoreConn *c, const char *link, Err *e);
int store__worker_delete_paths(StoreConn *c, const char *const *paths, size_t n, Err *e);
/* AddTempRoot for many paths, pipelined. */
int store__worker_add_temp_roots(StoreConn *c, const char *const *paths, size_t n, Err *e);
int store__worker_set_options(StoreConn *c, const StoreOptions *o, Err *e);
int store__worker_query_substitutable(StoreConn *c, const char *const *paths, size_t n, StrVec *out,
                                      Err *e);
/* BuildPaths of paths (or DRV!OUTPUTS), substitutes on and builds off, the session at
 * Nix's `verbosity` for it (STORE_VERBOSITY_*). */
int store__worker_substitute(StoreConn *c, const char *const *paths, size_t n, int verbosity,
                             Err *e);
int store__worker_add_signatures(StoreConn *c, const char *path, const char *const *sigs, size_t n,
                                 Err *e);
/* AddToStoreNar with the NAR pulled from src (framed at >= 1.23, STDERR_READ below). */
int store__worker_add_nar(StoreConn *c, const StorePathInfo *info, StoreNarSource src,
                          void *payload, Err *e);
/* NarFromPath: request and stderr loop; the NAR follows on the wire. */
int store__worker_nar_begin(StoreConn *c, const char *path, Err *e);
/* A NAR that failed to parse after `at` of its bytes: a daemon whose dump failed half-way
 * sends STDERR_ERROR and its error where the next token was due; if the wire has that,
 * its error (ERR_PEER) replaces *e. */
void store__worker_nar_error(StoreConn *c, uint64_t at, Err *e);
int store__worker_build(StoreConn *c, const char *drv_path, const NixDrv *d,
                        const StoreBuildOptions *o, StoreBuildResult **out, Err *e);

/* ---------------------------------------------------------------- serve protocol */

enum {
    STORE_SCMD_QUERY_VALID_PATHS = 1,
    STORE_SCMD_QUERY_PATH_INFOS = 2,
    STORE_SCMD_DUMP_STORE_PATH = 3,
    STORE_SCMD_IMPORT_PATHS = 4,
    STORE_SCMD_BUILD_DERIVATION = 8,
    STORE_SCMD_ADD_TO_STORE_NAR = 9,
};
#define STORE_SERVE_MAGIC_1 0x390c9debu
#define STORE_SERVE_MAGIC_2 0x5452eecbu
#define STORE_SERVE_MIN     0x205 /* AddToStoreNar */

int store__serve_handshake(StoreConn *c, Err *e);
int store__serve_query_valid_paths(StoreConn *c, const char *const *paths, size_t n, int lock,
                                   int substitute, StrVec *valid, Err *e);
/* Reads the QueryPathInfos reply; out[i] for paths[i] (NULL when not valid). */
int store__serve_query_path_infos(StoreConn *c, const char *const *paths, size_t n,
                                  StorePathInfo **out, Err *e);
/* QueryValidPaths with its lock flag, then QueryPathInfos, both sent before either
 * reply is read. */
int store__serve_root_path_infos(StoreConn *c, const char *const *paths, size_t n,
                                 StorePathInfo **out, Err *e);
int store__serve_read_path_infos(StoreWire *w, unsigned version, StorePathInfo ***out, size_t *n,
                                 Err *e);
int store__serve_nar_begin(StoreConn *c, const char *path, Err *e);
/* AddToStoreNar (cmd 9): exactly info->nar_size NAR bytes pulled from src. */
int store__serve_add_nar(StoreConn *c, const StorePathInfo *info, StoreNarSource src, void *payload,
                         Err *e);
void store__serve_drain_log(StoreConn *c, int max_ms);
int store__serve_sync_log(StoreConn *c, Err *e);
int store__serve_build(StoreConn *c, const char *drv_path, const NixDrv *d,
                       const StoreBuildOptions *o, StoreBuildResult **out, Err *e);

/* ---------------------------------------------------------------- helpers */

/* Parse a realisation JSON: outPath basename (validated) and id (either may be NULL). */
int store__realisation_parse(const char *json, char **out_path_base, char **id, Err *e);
/* Take ownership-free copy of a message from the peer: ANSI stripped, trimmed. */
void store__clean_message(char *s);
void store__path_info_init(StorePathInfo *pi);

#endif
