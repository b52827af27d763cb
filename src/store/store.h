/*
 * store: talking to real Nix.  sluice never reimplements the store; it drives Nix over
 * its two protocols:
 *
 *   worker protocol (1.34 in Nix 2.8)  child `nix-daemon --stdio` (`local`), the daemon
 *                                      socket (`daemon`, `unix://PATH`), or
 *                                      `ssh HOST nix-daemon --stdio` (`ssh-ng://HOST`)
 *   serve protocol (2.7)               `ssh HOST nix-store --serve --write` (`ssh://HOST`)
 *
 * A StoreConn is one protocol session.  It is used by one thread at a time, except for
 * store_conn_abort(), which any thread may call to make a blocked call return
 * ERR_CANCELLED.  Every call returns 0 or a negative ERR_* code and fills the Err; an
 * error reported by the peer is ERR_PEER with the peer's message (ANSI codes stripped).
 * After a transport or framing error (ERR_EOF, ERR_TIMEOUT, ERR_MALFORMED, ERR_TOOBIG,
 * ERR_CANCELLED, ERR_IO) the session is broken and every later call fails at once;
 * after ERR_PEER it stays usable.
 *
 * Connection model (temporary GC roots live as long as the session that made them):
 * a StoreMachine keeps one ssh ControlMaster connection per remote machine and opens one
 * session per build step over it; local `nix-daemon --stdio` children are pooled
 * (StorePool) and retired after a number of steps or an idle time, so their temporary
 * roots are released.
 *
 * Every store path received from a peer is validated (nix_store_path_check) before it
 * is returned, and every length a peer sends meets a limit from util/limits.h.
 */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "nix/nix.h"
#include "util/limits.h"
#include "util/util.h"

typedef struct StoreConn StoreConn;
typedef struct StoreMachine StoreMachine;
typedef struct StorePool StorePool;

/* ---------------------------------------------------------------- opening */

typedef enum { STORE_PROTO_WORKER = 1, STORE_PROTO_SERVE = 2 } StoreProto;

/* Worker and serve protocol versions sluice speaks (major << 8 | minor). */
#define STORE_WORKER_VERSION 0x122 /* 1.34 */
#define STORE_SERVE_VERSION  0x207 /* 2.7 */

/* Options of a session.  Zero (or NULL) fields take the default in brackets.  URI
 * parameters (`?ssh-key=...`) are used when the matching option is NULL. */
typedef struct StoreOpenOptions {
    const char *ssh_key;         /* identity file (-i) [URI ssh-key] */
    const char *host_key_b64;    /* base64 of the host's public key line; written to a
                                    known_hosts file, strict checking [URI
                                    base64-ssh-public-host-key] */
    const char *const *ssh_opts; /* extra ssh arguments, after NIX_SSHOPTS */
    size_t n_ssh_opts;
    int server_alive_interval;  /* s [15]; < 0: no keepalives */
    int server_alive_count_max; /* [4] */
    int connect_timeout_ms;     /* ssh connect + handshake deadline [60000] */
    int io_timeout_ms;          /* longest wait for progress on any read or write of
                                   an ordinary operation [600000]; < 0: none */
} StoreOpenOptions;

/* Open a session.  uri:
 *   local | auto                 child `nix-daemon --stdio` (inherits the environment:
 *                                NIX_CONFIG, NIX_CONF_DIR, NIX_REMOTE)
 *   daemon | unix://PATH         the daemon socket (NIX_DAEMON_SOCKET_PATH honoured)
 *   ssh-ng://[user@]host[?...]   ssh + `nix-daemon --stdio` (worker protocol)
 *   ssh://[user@]host[?...]      ssh + `nix-store --serve --write` (serve protocol)
 * ssh parameters as Nix has them: ssh-key, base64-ssh-public-host-key, remote-program,
 * remote-store, compress.  Host `localhost` runs the remote command locally (as Nix
 * does).  opts may be NULL.  *out is caller-owned (store_close). */
int store_open(const char *uri, const StoreOpenOptions *opts, StoreConn **out, Err *e) UTIL_WUR;
/* Close the session (ends the child, waits for it; temp roots are released). NULL ok. */
void store_close(StoreConn *c);
/* Thread-safe: make any blocked or later call on c return ERR_CANCELLED promptly
 * (the peer sees the connection close; a running build is interrupted).  c stays
 * owned by its user, who still calls store_close. */
void store_conn_abort(StoreConn *c);

StoreProto store_conn_protocol(const StoreConn *c);
/* Negotiated version: min(ours, the peer's) (major << 8 | minor). */
unsigned store_conn_version(const StoreConn *c);
/* Version the peer announced. */
unsigned store_conn_peer_version(const StoreConn *c);
/* Nix version string of a worker peer (>= 1.33), else NULL.  Borrowed. */
const char *store_conn_nix_version(const StoreConn *c);
/* The URI the session was opened with (borrowed). */
const char *store_conn_uri(const StoreConn *c);
/* 1 when the session is broken (transport or framing error, or aborted). */
int store_conn_broken(const StoreConn *c);

/* ---------------------------------------------------------------- path info */

typedef struct StorePathInfo {
    char *path;        /* full store path */
    char *deriver;     /* NULL when none */
    NixHash nar_hash;  /* sha256 of the NAR */
    StrVec references; /* full store paths, sorted */
    int64_t registration_time;
    uint64_t nar_size;
    int ultimate;
    StrVec sigs;
    char *ca; /* "text:sha256:..." / "fixed:r:sha256:..." or NULL */
} StorePathInfo;

void store_path_info_free(StorePathInfo *pi);
StorePathInfo *store_path_info_clone(const StorePathInfo *pi);
/* narHash as Nix prints it: "sha256:<nix32>" (into NIX_HASH_TEXT_MAX bytes). */
void store_path_info_nar_hash_text(const StorePathInfo *pi, char *out);

/* ---------------------------------------------------------------- queries */

/* The valid ones among paths (one request).  valid is initialised by the caller and
 * receives the valid paths, sorted.  Worker and serve. */
int store_query_valid_paths(StoreConn *c, const char *const *paths, size_t n, StrVec *valid,
                            Err *e) UTIL_WUR;
/* *valid = 1 or 0.  Worker and serve. */
int store_is_valid_path(StoreConn *c, const char *path, int *valid, Err *e) UTIL_WUR;
/* Info of one path; ERR_NOTFOUND when the path is not valid.  Worker and serve. */
int store_query_path_info(StoreConn *c, const char *path, StorePathInfo **out, Err *e) UTIL_WUR;
/* Infos of many paths: out must hold n pointers; out[i] is NULL when paths[i] is not
 * valid.  Worker: requests pipelined in windows; serve: one QueryPathInfos. */
int store_query_path_infos(StoreConn *c, const char *const *paths, size_t n, StorePathInfo **out,
                           Err *e) UTIL_WUR;
/* The same, each path first given a temp root on the session, in one round trip (the
 * requests pipelined: worker AddTempRoot + QueryPathInfo, serve QueryValidPaths with its
 * lock flag + QueryPathInfos).  A path rooted after it was collected is not valid. */
int store_root_path_infos(StoreConn *c, const char *const *paths, size_t n, StorePathInfo **out,
                          Err *e) UTIL_WUR;

typedef struct StoreOutputEntry {
    char *name;
    char *path; /* NULL when not known */
} StoreOutputEntry;
typedef struct StoreOutputMap {
    StoreOutputEntry *v;
    size_t n;
} StoreOutputMap;
void store_output_map_free(StoreOutputMap *m);

/* QueryDerivationOutputMap (worker only). */
int store_query_derivation_output_map(StoreConn *c, const char *drv_path, StoreOutputMap **out,
                                      Err *e) UTIL_WUR;
/* QueryRealisation of id "sha256:<hex>!<output>" (worker only).  *out_path is the
 * output path basename or NULL when unknown; out_json (may be NULL) receives the
 * realisation JSON (NULL when unknown or the peer is < 1.31).  A 2.8 daemon without
 * ca-derivations drops the connection here (ERR_EOF). */
int store_query_realisation(StoreConn *c, const char *id, char **out_path, char **out_json,
                            Err *e) UTIL_WUR;
/* QueryRealisation of n ids, pipelined (worker only): out_paths[i] as *out_path above
 * (caller frees each).  On an error every out_paths[i] is NULL and the session is
 * broken (answers may be outstanding). */
int store_query_realisations(StoreConn *c, char *const *ids, size_t n, char **out_paths,
                             Err *e) UTIL_WUR;
/* QuerySubstitutablePathInfos (worker only): the paths among `paths` that one of the
 * store's own `substituters` has (Nix asks them; one request for all the paths), sorted,
 * appended to `out` (initialised by the caller).  The session's useSubstitutes is turned
 * on first (SetOptions); a store that does not substitute answers none. */
int store_query_substitutable(StoreConn *c, const char *const *paths, size_t n, StrVec *out,
                              Err *e) UTIL_WUR;
/* Make `paths` valid through the store's substituters (worker only: BuildPaths of the
 * paths, useSubstitutes on): Nix fetches them with their closures and checks their
 * signatures.  ERR_PEER with Nix's message when one cannot be substituted. */
int store_substitute_paths(StoreConn *c, const char *const *paths, size_t n, Err *e) UTIL_WUR;
/* The same for derivation outputs, `DRV!OUT1,OUT2` (content-addressed ones: through the
 * realisations of the substituters), never building: Nix fails what it cannot
 * substitute (ERR_PEER), keeping on with the others.  The caller asks the realisations
 * afterwards.  Worker protocol >= 1.30 only.
 * misses (NULL: not asked; else initialised by the caller): what Nix reported that no
 * substituter has, sorted: realisation ids `sha256:<hex>!<out>` (no substituter has a
 * realisation for it) and store paths (none has the path).  A name a warning or error
 * of the same request mentions is left out (a substituter that failed, a NAR cut short,
 * a signature not trusted: a failure, not a miss).  Asking for them raises the
 * session's verbosity to Nix's debug level for the request, whose lines say it (Nix
 * 2.8's wording). */
int store_substitute_outputs(StoreConn *c, const char *const *derived, size_t n, StrVec *misses,
                             Err *e) UTIL_WUR;
/* RegisterDrvOutput of a realisation JSON (worker only). */
int store_register_drv_output(StoreConn *c, const char *realisation_json, Err *e) UTIL_WUR;

/* ---------------------------------------------------------------- adding */

/* AddTextToStore (worker only): a text path with the given references; a .drv whose
 * references are inputDrvs + inputSrcs lands at the path nix-instantiate gives.
 * *out_path is caller-owned. */
int store_add_text_to_store(StoreConn *c, const char *name, const char *text, size_t len,
                            const char *const *refs, size_t nrefs, char **out_path,
                            Err *e) UTIL_WUR;
/* AddTempRoot: root n paths (valid or not yet) for the life of the session, in one
 * request.  Worker: pipelined AddTempRoot; serve: QueryValidPaths with lock=1. */
int store_add_temp_roots(StoreConn *c, const char *const *paths, size_t n, Err *e) UTIL_WUR;
/* AddIndirectRoot (worker only): symlink_path is an absolute path of a symlink the
 * caller made into the store. */
int store_add_indirect_root(StoreConn *c, const char *symlink_path, Err *e) UTIL_WUR;
/* Delete these paths from the store (worker only: CollectGarbage, delete-specific).  A
 * path still alive (rooted, a temp root of a session, referred to) is an error and
 * nothing more is deleted. */
int store_delete_paths(StoreConn *c, const char *const *paths, size_t n, Err *e) UTIL_WUR;

/* Pulls NAR bytes: fill buf with up to cap bytes, set *got; *got = 0 means the end. */
typedef int (*StoreNarSource)(void *payload, uint8_t *buf, size_t cap, size_t *got, Err *e);
/* AddToStoreNar: add a path with the given info, its NAR pulled from src (exactly
 * info->nar_size bytes).  Worker (framed) and serve (cmd 9).  The peer checks narHash. */
int store_add_to_store_nar(StoreConn *c, const StorePathInfo *info, StoreNarSource src,
                           void *payload, Err *e) UTIL_WUR;
/* NarFromPath / DumpStorePath: the NAR of a valid path, pushed to sink in pieces
 * (never held whole in memory); the end of the unframed NAR is found by parsing it.
 * Worker and serve. */
int store_nar_from_path(StoreConn *c, const char *path, NixSink sink, void *payload,
                        Err *e) UTIL_WUR;

/* ---------------------------------------------------------------- options, builds */

typedef struct StoreOptions {
    uint64_t max_silent_time; /* s, 0 = none */
    uint64_t build_timeout;   /* s, 0 = none */
    uint64_t max_log_size;    /* bytes, 0 = none */
    uint64_t build_cores;     /* 0 = all */
    int verbosity;            /* Nix level 0 (error) .. 7 (vomit) */
    int keep_failed;
    int substitute;  /* useSubstitutes: the store's substituters may provide paths */
    int no_builds;   /* maxBuildJobs 0 and keepGoing: only substitute (what needs building fails) */
    uint64_t repeat; /* rounds after the first, compared (Nix's repeat) */
    int enforce_determinism; /* a difference fails the build (NotDeterministic) */
} StoreOptions;

/* Worker: SetOptions now (max-jobs 1, substitutes as o->substitute, no remote builders); serve:
 * remembered and sent with the next BuildDerivation. */
int store_set_options(StoreConn *c, const StoreOptions *o, Err *e) UTIL_WUR;

/* Nix's BuildResult::Status codes. */
enum {
    STORE_BUILD_BUILT = 0,
    STORE_BUILD_SUBSTITUTED = 1,
    STORE_BUILD_ALREADY_VALID = 2,
    STORE_BUILD_PERMANENT_FAILURE = 3,
    STORE_BUILD_INPUT_REJECTED = 4,
    STORE_BUILD_OUTPUT_REJECTED = 5,
    STORE_BUILD_TRANSIENT_FAILURE = 6,
    STORE_BUILD_CACHED_FAILURE = 7,
    STORE_BUILD_TIMED_OUT = 8,
    STORE_BUILD_MISC_FAILURE = 9,
    STORE_BUILD_DEPENDENCY_FAILED = 10,
    STORE_BUILD_LOG_LIMIT_EXCEEDED = 11,
    STORE_BUILD_NOT_DETERMINISTIC = 12,
    STORE_BUILD_RESOLVES_TO_ALREADY_VALID = 13,
    STORE_BUILD_NO_SUBSTITUTERS = 14,
};
const char *store_build_status_name(int status);
int store_build_status_success(int status); /* 0, 1, 2, 13 */

typedef struct StoreBuiltOutput {
    char *id;       /* DrvOutput id "sha256:<hex>!<output>" */
    char *output;   /* output name (after '!') */
    char *out_path; /* full store path from the realisation's outPath */
    char *json;     /* realisation JSON as sent */
} StoreBuiltOutput;

typedef struct StoreBuildResult {
    int status;
    char *error_msg; /* ANSI codes stripped; "" when none */
    uint64_t times_built;
    int is_non_deterministic;
    int64_t start_time, stop_time;
    StoreBuiltOutput *outputs;
    size_t n_outputs;
} StoreBuildResult;
void store_build_result_free(StoreBuildResult *r);

typedef struct StoreBuildOptions {
    uint64_t max_silent_time; /* s, 0 = none */
    uint64_t build_timeout;   /* s, 0 = none */
    uint64_t max_log_size;    /* bytes, 0 = none */
    uint64_t build_cores;     /* worker only; 0 = all */
    int build_mode;           /* 0 normal, 1 repair, 2 check (worker only) */
    uint64_t repeat;          /* Hydra's nrRepeats: build this many more times, compare */
    int enforce_determinism;  /* a differing round fails the build (status 12) */
    int read_margin_s;        /* added to the read timeout [60] */
} StoreBuildOptions;

typedef enum {
    STORE_LOG_BUILD = 0,    /* output of the build (worker: log lines, each ending in '\n';
                               serve: the peer's stderr as it arrives) */
    STORE_LOG_MSG = 1,      /* a message of the peer (worker STDERR_NEXT) */
    STORE_LOG_ACTIVITY = 2, /* an activity began (worker), text such as "building '...'" */
} StoreLogKind;
typedef void (*StoreLogFn)(void *payload, StoreLogKind kind, const char *text, size_t len);

/* Build a derivation sent inline as a BasicDerivation (the .drv is never copied to the
 * builder): its outputs, srcs (which must already hold every input path: basic must
 * have no inputDrvs), platform, builder, args and env.  drv_path is the path the
 * builder registers as deriver.  Log output goes to log_cb (may be NULL) as it arrives.
 * The read timeout is build timeout + max silent time + margin (none when both are 0).
 * A failed build is not an error: *out->status tells.  Worker and serve (the 2.4-2.10
 * serve quirk is handled: built outputs are always read). */
int store_build_derivation(StoreConn *c, const char *drv_path, const NixDrv *basic,
                           const StoreBuildOptions *opts, StoreLogFn log_cb, void *payload,
                           StoreBuildResult **out, Err *e) UTIL_WUR;

/* The end of a serve session that built something: its build log is the peer's stderr,
 * apart from the replies, so bytes of it may still be on their way when the reply came
 * (ssh relays the two separately, and late under load).  Ends the session's input (the
 * peer exits), then takes what stderr still carries until it ends (at most max_ms) and
 * gives it to log_cb as build log.  The session is unusable afterwards: close it.  A
 * no-op for worker sessions, whose log is in-band. */
void store_conn_drain_log(StoreConn *c, StoreLogFn log_cb, void *payload, int max_ms);
/* The same without ending the session, so that it can serve another step: two round
 * trips that ask nothing (QueryValidPaths of no path) follow the build's reply, and
 * everything stderr carried before their replies goes to log_cb (ssh relays what it
 * read of the peer's stdout and stderr in the order it read them; the first reply may
 * come in the master's same pass as the last log bytes, the second cannot), then what
 * still arrives within a few milliseconds.  0, or -1 with e set: the session is broken
 * (close it).  A no-op (0) for worker sessions. */
int store_conn_sync_log(StoreConn *c, StoreLogFn log_cb, void *payload, Err *e) UTIL_WUR;

/* ---------------------------------------------------------------- probe */

typedef struct StoreProbe {
    StoreProto proto;
    unsigned version;      /* negotiated */
    unsigned peer_version; /* announced */
    char *nix_version;     /* NULL when the peer does not say */
    int trusted;           /* 1 yes, 0 no, -1 unknown / not applicable */
    int ca_derivations;    /* 1 on, 0 off, -1 unknown */
} StoreProbe;
void store_probe_dispose(StoreProbe *p);
/* Capability probe of a store: handshake; trust (worker: an input-addressed
 * BasicDerivation for a system nobody has, on a throw-away session: refused with "not
 * privileged" only for untrusted clients, otherwise a harmless MiscFailure); and
 * ca-derivations (QueryRealisation on a throw-away session: Nix 2.8 drops the
 * connection when it is off).  ssh:// stores have no trust notion (trusted = -1);
 * their ca-derivations is asked of the host's nix-daemon over ssh-ng. */
int store_probe(const char *uri, const StoreOpenOptions *opts, StoreProbe *out, Err *e) UTIL_WUR;

/* ---------------------------------------------------------------- closure copy */

typedef struct StoreCopyStats {
    size_t closure_paths;  /* paths of the closure looked at (down to what `to` has) */
    size_t copied_paths;   /* paths that were missing and were copied */
    uint64_t copied_bytes; /* NAR bytes streamed */
    /* a copy that failed on `from`'s side (its NAR cut short, not a NAR, or not the one
     * its info names): that path, else "" */
    char from_failed[LIMIT_STORE_PATH + 1];
} StoreCopyStats;

/* Copy the closure of paths from one store to another, for a `from` far away (a step's
 * outputs coming back from its builder): the closure walked on `from` (QueryPathInfo
 * references) level by level, each level first rooted on and asked of `to`, the walk
 * going on only below the paths `to` lacks (what `to` has, it has with its closure);
 * the missing NARs streamed in dependency order with bounded memory.  `to` gets
 * AddToStoreNar (worker or serve); `from` gives NarFromPath or DumpStorePath.  The NAR
 * hash and size are checked while streaming.  Every path of the closure ends up with a
 * temporary root on the `to` session (copied ones by AddToStoreNar, present ones
 * explicitly, or through a rooted path that refers to them), so a step's inputs live
 * exactly as long as its session.  stats may be NULL. */
int store_copy_closure(StoreConn *from, StoreConn *to, const char *const *paths, size_t n,
                       StoreCopyStats *stats, Err *e) UTIL_WUR;
/* The same, the paths' own infos known (store_root_path_infos): `from` is asked only
 * below them. */
int store_copy_closure_known(StoreConn *from, StoreConn *to, const StorePathInfo *const *infos,
                             size_t n, StoreCopyStats *stats, Err *e) UTIL_WUR;
/* The same for a `to` far away (a step's inputs going to its builder): the closure is
 * walked whole on `from` and rooted on and asked of `to` in one batch.  With substitute,
 * `to` first substitutes the missing paths its own substituters have (Nix's
 * builders-use-substitutes: QueryValidPaths with substitute on), and only the rest is
 * copied. */
int store_copy_closure_subst(StoreConn *from, StoreConn *to, const char *const *paths, size_t n,
                             int substitute, StoreCopyStats *stats, Err *e) UTIL_WUR;
/* The closure of paths on c, sorted so that references come first. infos receives
 * caller-owned StorePathInfo pointers (free each with store_path_info_free). */
int store_query_closure(StoreConn *c, const char *const *paths, size_t n, StorePathInfo ***infos,
                        size_t *n_infos, Err *e) UTIL_WUR;
/* The same, pruned: before each level of the walk is asked of c, prune(payload, level, n,
 * skip) may set skip[i] to leave level[i] out, with everything only it reaches (a
 * destination that has a path has its closure).  A prune error ends the walk. */
typedef int (*StorePruneFn)(void *payload, const char *const *level, size_t n, int *skip, Err *e);
int store_query_closure_pruned(StoreConn *c, const char *const *paths, size_t n, StorePruneFn prune,
                               void *payload, StorePathInfo ***infos, size_t *n_infos,
                               Err *e) UTIL_WUR;

/* ---------------------------------------------------------------- connection model */

typedef struct StorePoolOptions {
    unsigned max_uses;   /* sessions retired after this many uses [1000] */
    unsigned max_idle_s; /* idle sessions closed after this many seconds [600] */
    unsigned max_idle;   /* idle sessions kept at most [8] */
} StorePoolOptions;

/* A pool of sessions to one store (for `local`: `nix-daemon --stdio` children).
 * Thread-safe.  uri and opts are copied. */
StorePool *store_pool_new(const char *uri, const StoreOpenOptions *opts,
                          const StorePoolOptions *po);
/* Close every idle session and free the pool; sessions still out are closed by
 * store_pool_put (which must come before store_pool_free) or by the user. */
void store_pool_free(StorePool *p);
/* An idle healthy session or a new one. */
int store_pool_get(StorePool *p, StoreConn **out, Err *e) UTIL_WUR;
/* Give a session back: one use is counted; a broken or worn-out session is closed. */
void store_pool_put(StorePool *p, StoreConn *c);
/* Close idle sessions older than max_idle_s (also done by get and put). */
void store_pool_reap(StorePool *p);
/* Sessions open now (idle + out) and idle ones. */
void store_pool_counts(StorePool *p, size_t *open, size_t *idle);

/* A build machine: its store URI and options.  For ssh:// and ssh-ng:// one ssh
 * ControlMaster connection is kept open (restarted when it dies) and every session is
 * a new protocol session over it; for local stores sessions come from a StorePool.
 * Thread-safe.  No I/O until the first session. */
StoreMachine *store_machine_new(const char *uri, const StoreOpenOptions *opts,
                                const StorePoolOptions *po);
/* Close idle sessions and the master connection. */
void store_machine_free(StoreMachine *m);
const char *store_machine_uri(const StoreMachine *m);
/* A session for one build step: its temp roots cover the step (and, for a session passed
 * on, the steps it served before). */
int store_machine_session(StoreMachine *m, StoreConn **out, Err *e) UTIL_WUR;
/* Remote machines: keep up to n sessions (at most STORE_WARM_MAX) opened ahead of
 * need by background threads (one per session kept, so a burst of steps is refilled side
 * by side), so a step's session is ready when it starts.  A warm
 * session has made no temp roots; it is used by one step and closed after it (or passed
 * on: store_machine_pass_on).  Warm sessions are opened only while steps ask for sessions (none
 * after a minute without one) and not again after a failed open until a step's own
 * open succeeds.  0 (the default) turns them off; local stores ignore it. */
#define STORE_WARM_MAX 8
void store_machine_set_warm(StoreMachine *m, size_t n);
/* End a step's session: remote sessions are closed (releasing its temp roots): the peer
 * is told at once, and the wait for it to exit is the machine's closer thread's, off
 * the step's path (store_machine_free waits for every pending close); local ones go
 * back to the pool. */
void store_machine_release(StoreMachine *m, StoreConn *c);
/* Remote machines: a session may serve up to n consecutive steps (store_machine_pass_on);
 * 1, the default, closes every session after its step. */
void store_machine_set_session_steps(StoreMachine *m, unsigned n);
/* End a step's session when more steps are coming for the machine: a remote session
 * that served its step cleanly (ssh://: its log taken by store_conn_sync_log) and fewer
 * than its session steps is kept for the machine's next step (store_machine_session
 * takes it before a warm one), with the temp roots of every step it served, which end
 * with it.  Not taken within STORE_PASS_ON_MS, or not kept (broken, its steps used up),
 * it is released as by store_machine_release. */
#define STORE_PASS_ON_MS 1000
void store_machine_pass_on(StoreMachine *m, StoreConn *c);
/* A pooled session for queries only (no temp roots expected to matter). */
int store_machine_query_get(StoreMachine *m, StoreConn **out, Err *e) UTIL_WUR;
void store_machine_query_put(StoreMachine *m, StoreConn *c);
/* Close idle pooled sessions that are too old. */
void store_machine_reap(StoreMachine *m);
/* 1 when an ssh master connection is running now. */
int store_machine_master_alive(StoreMachine *m);
/* The machine's Nix release ("2.26.3") once a session was opened: from the worker
 * handshake, or `nix-store --version` over the ssh connection for the serve protocol;
 * NULL while unknown.  Caller frees. */
char *store_machine_nix_version(StoreMachine *m);

#endif
