/*
 * runner_int.h: internals of the queue runner, for src/runner/ only.
 *
 * The in-memory graph (builds, steps, machines, queues) is guarded by one mutex,
 * Runner.lock.  Fields say which lock guards them.  No I/O, protocol or database work
 * is done while holding it: threads copy what they need (drv path, build id) and drop
 * the lock before talking to Nix or the DB.
 *
 * Threads:
 *   monitor     waits for DB events, runs queue passes (ingest), cancels/bumps
 *   ingest      walks the drv closures of new builds (streaming: steps become runnable
 *               and are dispatched while ingest goes on)
 *   dispatcher  matches runnable steps with machines that have a free slot
 *   resolver    phase two of CA derivations (resolution) before dispatch
 *   workers     one per running step: copy inputs, build, copy outputs, record
 *   substituters  started by ingest for a chunk's substitutions (use-substitutes), at most
 *               max-substitution-jobs, joined before the chunk is attached; they touch no
 *               graph state
 *
 * Lifetimes: a Step lives while a build or another step needs it; it is freed when it
 * finishes and nothing refers to it any more (refcount-free: the graph owns steps in
 * Runner.steps keyed by drv path; finished steps are removed from the map and freed
 * once their rdeps were woken).
 */
#ifndef SLUICE_RUNNER_INT_H
#define SLUICE_RUNNER_INT_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdint.h>

#include "cache/cache.h"
#include "db/db.h"
#include "nix/nix.h"
#include "runner/runner.h"
#include "store/store.h"
#include "util/util.h"

typedef struct Step Step;
typedef struct Build Build;
typedef struct Machine Machine;
typedef struct Runner Runner;
typedef struct StepQueue StepQueue;
typedef struct RunnerUploads RunnerUploads;

/* Step states (in memory; the DB has its own rows). */
typedef enum {
    STEP_WAITING = 0, /* has unfinished deps */
    STEP_RESOLVING,   /* deps done; CA/deferred drv queued for resolution */
    STEP_RUNNABLE,    /* in its queue, waiting for a machine */
    STEP_RETRY_WAIT,  /* failed transiently; runnable again at `after` */
    STEP_RUNNING,     /* a worker owns it */
    STEP_DONE,        /* succeeded (or outputs found valid) */
    STEP_FAILED,      /* failed for good (builds failed) */
    STEP_RESOLVED,    /* P resolved to another drv P' (P->resolved_to) */
    STEP_PINNED,      /* taken by one thread for I/O outside the lock; only it moves it on */
    STEP_N_STATES
} StepState;

/* A derivation that must be realised for one or more builds.  Scheduling data only;
 * the drv itself is re-read at dispatch.  All fields guarded by Runner.lock. */
struct Step {
    char *drv_path;
    char *system;      /* interned in Runner.strings (not owned) */
    char *features;    /* required features, sorted, space separated ("" for none); interned */
    uint8_t kind;      /* NixDrvKind */
    uint8_t state;     /* StepState */
    uint8_t two_phase; /* floating CA or deferred: resolve before dispatch */
    uint8_t is_resolved_drv; /* this step's drv is a resolved P' */
    uint8_t cancel_requested;
    uint16_t tries;       /* failed attempts so far (from DB attempt rows + this run) */
    uint32_t n_deps_left; /* unfinished deps */
    PtrVec deps;          /* Step*: unfinished deps (strong) */
    PtrVec rdeps;         /* Step*: steps that wait for this one */
    PtrVec builds;        /* Build*: builds whose current top level is this step */
    Step *resolved_to;    /* P': set when state == STEP_RESOLVED */
    int64_t after;        /* unix time before which a retry must not start */
    int64_t runnable_since;
    uint64_t runnable_ms;   /* when it last became runnable (monotonic; queue-wait figures) */
    int64_t last_supported; /* last time some machine could run it */
    /* priorities, propagated from builds (§3.6) */
    int32_t highest_global_prio;
    int32_t highest_local_prio;
    int64_t lowest_build_id;
    int64_t share_jobset_id; /* jobset with the lowest share used among its builds (when
                                their priorities reached the step): its queue's jobset */
    int64_t *jobsets;        /* every jobset of a build that needs the step (charged for it) */
    uint32_t n_jobsets;
    uint8_t n_features;   /* number of required features (Hydra's order counts them) */
    int32_t max_silent;   /* max over dependent builds (seconds) */
    int32_t timeout;      /* max over dependent builds (seconds) */
    uint16_t requeues;    /* times an input had to be rebuilt first */
    StrVec resolved_from; /* drv paths P that resolved to this P' */
    StepQueue *queue;     /* the queue it is in when RUNNABLE */
    uint32_t heap_index;
    Machine *machine; /* when RUNNING */
    struct Worker *worker;
    uint32_t mark; /* visit mark of graph walks (RunnerGraph.mark_epoch) */
};

/* A queued build (Builds row with finished = 0) in memory.  Guarded by Runner.lock. */
struct Build {
    int64_t id;
    char *drv_path; /* Builds.drvPath: never changes */
    int64_t jobset_id;
    char *job;
    int32_t global_priority;
    int32_t local_priority;
    int32_t max_silent; /* seconds */
    int32_t timeout;    /* seconds */
    int64_t timestamp;
    Step *toplevel;           /* current top-level step (P, or P' after resolution) */
    uint8_t started_notified; /* build_started sent (DB also knows: any non-cached row) */
    uint8_t finished;
    uint32_t mark; /* visit mark of graph walks (RunnerGraph.mark_epoch) */
};

/* Queue of runnable steps for one machine type (system + required features) and one
 * jobset (the steps' share jobset): a binary heap ordered by step_cmp_priority.  Guarded
 * by Runner.lock. */
struct StepQueue {
    char *system;
    char *features;
    int64_t jobset_id;
    Step **heap;
    uint32_t n, cap;
    int64_t supported_since; /* 0 when no machine can run it */
};

/* A build machine (the local store, or a remote one from the machines file).
 * Static fields are set at load; counters guarded by Runner.lock. */
struct Machine {
    char *uri;      /* as written in the machines file; "local" store -> BuildSteps.machine '' */
    char *row_name; /* what BuildSteps.machine gets ('' for the local store) */
    StrVec systems;
    StrVec supported; /* supportedFeatures (plus mandatory: Nix treats them as supported) */
    StrVec mandatory;
    char *ssh_key;
    char *host_key; /* base64 */
    uint32_t max_jobs;
    double speed_factor;
    int is_local;
    uint32_t current_jobs;             /* Runner.lock */
    uint32_t consecutive_failures;     /* Runner.lock */
    int64_t disabled_until;            /* Runner.lock */
    char *disabled_reason;             /* Runner.lock */
    int64_t last_seen;                 /* Runner.lock */
    uint64_t steps_done, steps_failed; /* Runner.lock */
    atomic_ullong bytes_copied_to;     /* NAR bytes of inputs copied to it */
    int removed;                       /* dropped from the machines file; freed at exit */
    int shares_local;                  /* store is Runner.local_store (not owned) */
    StoreMachine *store;               /* connection cache (thread-safe itself) */
};

typedef struct Jobset {
    int64_t id;
    int64_t shares;
    double seconds;   /* step seconds charged in the window */
    uint32_t repeats; /* jobset-repeats: extra rounds of its builds' steps */
} Jobset;

/* A running step: owned by its worker thread; the graph points at it while running. */
typedef struct Worker {
    Runner *r;
    Step *step; /* Runner.lock: read only under the lock */
    Machine *machine;
    char *drv_path; /* copy, usable without the lock */
    char *system;
    int is_resolved; /* a resolved P' (register realisations for resolved_from) */
    int two_phase;
    StrVec resolved_from;
    char **static_paths; /* statically known outputs (FailedPaths) */
    size_t n_static;
    int64_t build_id; /* build the busy row belongs to */
    /* stepnr, phase, start_time: written by the worker under Runner.lock (progress and
     * the machines snapshot read them under it); the worker reads them without */
    int32_t stepnr;
    int32_t max_silent, timeout;
    atomic_int cancel;         /* set when no build needs the step any more */
    StoreConn *conn;           /* set while a session is open (for abort) */
    pthread_mutex_t conn_lock; /* guards conn for store_conn_abort */
    int phase;
    uint64_t phase_ms;    /* when the current phase began */
    int64_t overhead_ms;  /* time spent copying inputs and outputs (BuildSteps.overhead) */
    uint32_t repeats;     /* extra rounds asked for by the dependent builds' jobsets */
    uint64_t times_built; /* from Nix's BuildResult (BuildSteps.timesBuilt) */
    int non_det;          /* ... isNonDeterministic */
    int64_t start_time;
    int64_t start_ms; /* when the step was sent (ms, for the step-time figures) */
    /* the settings a reload may change, as they were when the step started */
    uint64_t max_log_size, max_output_size;
    int build_cores;
    int slot_released; /* Runner.lock: the machine slot was given back before the end */
    /* the phase clock (phases.c): the worker's own, no lock */
    int ph;
    uint64_t ph_at;
    uint32_t ph_ms[RUNNER_PHASE_N];
    uint8_t ph_seen[RUNNER_PHASE_N];
} Worker;

/* The graph: the runner's core state, all of it guarded by Runner.lock and changed only
 * by graph.c, step.c and queue.c, which do no I/O.  Every other file reads it under the
 * lock and changes it through their functions. */
typedef struct RunnerGraph {
    Map *steps;          /* drv path -> Step* (unfinished steps) */
    Map *strings;        /* interned Step.system and Step.features */
    Map *builds;         /* decimal id -> Build* (unfinished builds) */
    Map *queues;         /* "system\tfeatures" -> StepQueue* (RUNNABLE steps) */
    Map *jobsets;        /* decimal id -> Jobset* (replaced whole: runner_load_jobsets) */
    PtrVec retry_wait;   /* Step* in STEP_RETRY_WAIT */
    PtrVec to_resolve;   /* Step* in STEP_RESOLVING, in the order they became ready */
    uint32_t mark_epoch; /* last visit mark handed out (graph.c) */
    Map *finished_drvs;  /* steps finished during a queue pass */
    Map *attempts;       /* drv -> RetryInfo, loaded per pass */
} RunnerGraph;

/* A busy BuildSteps row whose step's result could not be written. */
typedef struct Unrecorded {
    int64_t build, stop;
    int32_t stepnr;
} Unrecorded;

struct Runner {
    RunnerOptions opt;
    Cache *cache;                /* store-uri, NULL when none (thread-safe itself) */
    atomic_int cache_retry;      /* a cached build could not be published: pass again later */
    RunnerUploads *uploads;      /* the upload pool (publish.c), NULL without a cache */
    pthread_mutex_t lock;        /* the graph lock: take it with runner_lock (lock.c) */
    atomic_uintptr_t lock_owner; /* debug builds: the thread holding `lock`, or 0 */
    pthread_cond_t cond;         /* dispatcher and resolver wake-ups */
    int dispatch_pending;        /* lock */
    atomic_int stopping;
    RunnerGraph g;                       /* lock */
    Unrecorded *unrecorded;              /* lock: rows to mark when the database is back */
    size_t n_unrecorded, cap_unrecorded; /* lock */
    PtrVec machines;                     /* lock: Machine* */
    PtrVec old_machines;                 /* lock: removed from the machines file; freed at exit */
    Machine no_machine;                  /* for rows of steps that ran nowhere */
    time_t machines_mtime;               /* the monitor thread only */
    atomic_int machines_reload;          /* set: read the machines file at the next look */
    time_t machines_failed_sig;          /* the monitor thread only: version of the file whose load
                                            failed (reported once) */
    int pass_again;                      /* lock */
    int shares_stale;                    /* lock: a build of a jobset not in g.jobsets */
    Map *repeats;                        /* jobset-repeats: "project:jobset" -> N (read-only) */
    char *stop_error;                    /* lock: why the run ended in failure (build_one) */
    int ca_enabled;    /* set at start, read-only after: the local store has ca-derivations on */
    int64_t only_left; /* builds of only_builds not finished yet (lock) */
    Db *db;            /* the monitor thread's connection (holds the runner lock) */
    pthread_mutex_t db_lock;
    PtrVec db_idle;   /* pooled connections for other threads (db_lock) */
    PtrVec db_all;    /* every connection runner_db_get opened and did not close (db_lock) */
    PtrVec workers;   /* lock: Worker* running */
    uint32_t running; /* lock */
    uint32_t threads; /* lock: worker threads alive; each may touch the Runner until it ends */
    int free_pending; /* lock: runner_free came while threads > 0; the last thread frees */
    void (*destroy)(Runner *r); /* runner.c's destructor, for the last thread (services.c) */
    int ingest_active;          /* lock */
    /* resources shared by threads (each thread-safe on its own) */
    StoreMachine *local_store;
    NixHashCache *hash_cache; /* hash_lock */
    pthread_mutex_t hash_lock;
    Map *drv_stash; /* hash_lock: drvs the hash cache read during a queue pass,
                       for the walk to take instead of reading them again */
    /* metrics (atomics) */
    RunnerStats stats;
};

typedef struct RetryInfo {
    int tries;
    int64_t last_stop;
} RetryInfo;

/* Who a failed attempt of a step is blamed on: decides whether the step's try counts
 * and whether its machine is disabled with backoff. */
typedef enum {
    BLAME_STEP = 0,      /* the step itself (or nothing failed): tries count */
    BLAME_MACHINE = 1,   /* the machine failed us: disabled with backoff (never the local
                            store), the step tried elsewhere without counting */
    BLAME_UNTRUSTED = 2, /* the machine's Nix refuses us: disabled, even the local store */
    BLAME_NOBODY = 3,    /* the runner stopping, an output collected on the builder: tried
                            again at once without counting, no machine disabled */
} Blame;

/* Facts about the outputs of a step, read from the local store. */
typedef struct OutputFacts {
    int failed; /* nix-support/failed */
    char *release_name;
    int64_t size, closure_size;
    struct RdbProduct *products;
    size_t n_products;
    struct RdbMetric *metrics;
    size_t n_metrics;
} OutputFacts;

typedef struct RunnerLog RunnerLog;

/* ---------------------------------------------------------------- record.c */

typedef struct DepBuild {
    int64_t id;
    int is_top; /* the failed step is (now) its top level */
} DepBuild;

typedef struct FinishTx {
    Worker *w;
    int status;
    const char *msg;
    int can_cache;
    char *const *out_names;
    char *const *out_paths;
    size_t n_outputs;
    const OutputFacts *facts;
    int64_t start, stop;
    DepBuild *builds; /* success: builds to finish; failure: dependent builds */
    size_t n_builds;
    char **cache_paths; /* FailedPaths entries */
    size_t n_cache;
    const char *resolved_base; /* success of a resolved P': its basename */
    int64_t *finished;         /* OUT: builds finished by this tx */
    size_t n_finished;
} FinishTx;

/* The transaction ending a step, each t->w's row and t->builds: success (outputs,
 * builds finished, type-1 rows for builds resolving to a resolved P'), failure (the
 * dependents' rows and statuses, FailedPaths), retry or cancellation (the row, or an
 * attempt row when no busy row was written).  A NULL db fails with e's error. */
int runner_record_success(Db *db, FinishTx *t, Err *e);
int runner_record_failure(Db *db, FinishTx *t, Err *e);
int runner_record_retry(Db *db, FinishTx *t, Err *e);
/* Builds that depend on s, each with whether s is its top level (lock held). */
void runner_collect_dependents(Runner *r, Step *s, DepBuild **out, size_t *n);
/* The journal's lines after a committed transaction. */
void runner_journal_step_end(Worker *w, const FinishTx *t, int status, int retry, const char *msg);
void runner_journal_builds_finished(const FinishTx *t, int status);
/* A busy row whose result could not be written (lock held); runner_mark_unrecorded
 * marks them once the database takes writes. */
void runner_unrecorded_add(Runner *r, int64_t build, int32_t stepnr, int64_t stop);
void runner_mark_unrecorded(Runner *r, Db *db);

/* ---------------------------------------------------------------- lock.c */

void runner_lock(Runner *r);
void runner_unlock(Runner *r);
int runner_lock_held(const Runner *r);
void runner_cond_wait(Runner *r, const struct timespec *abs);
/* Aborts (debug builds) when the calling thread does not hold the graph lock. */
#define RUNNER_ASSERT_LOCKED(r) assert(runner_lock_held(r))

/* ---------------------------------------------------------------- rdb.c */

#define RDB_INTERRUPTED_MSG "step interrupted: the runner stopped"

typedef struct RdbBuildRow {
    int64_t id, jobset_id, timestamp;
    char *job, *drv_path;
    int32_t global_priority, local_priority;
    int32_t max_silent, timeout; /* -1 when NULL */
} RdbBuildRow;

typedef struct RdbStepRow {
    int64_t build;
    int type; /* 0 build, 1 substitution / found */
    const char *drv_path;
    int busy;                      /* 0 or a phase */
    int64_t start_time, stop_time; /* stop 0 -> NULL */
    const char *system;
    int status;              /* -1 -> NULL */
    int64_t propagated_from; /* 0 -> NULL */
    const char *error_msg;
    const char *machine;
    const char *resolved_drv_path; /* basename or NULL */
    char *const *out_names;
    char *const *out_paths; /* may be NULL or hold NULLs */
    size_t n_outputs;
} RdbStepRow;

typedef struct RdbProduct {
    const char *type, *subtype, *path, *name, *default_path, *sha256;
    int64_t file_size; /* -1 -> NULL */
} RdbProduct;

typedef struct RdbMetric {
    const char *name, *unit;
    double value;
} RdbMetric;

typedef struct RdbBuildResult {
    int64_t id;
    int status;
    int64_t start_time, stop_time;
    int is_cached;
    int64_t size, closure_size;
    const char *release_name;
    char *const *out_names;
    char *const *out_paths;
    size_t n_outputs;
    const RdbProduct *products;
    size_t n_products;
    const RdbMetric *metrics;
    size_t n_metrics;
} RdbBuildResult;

int rdb_clear_busy(Db *db, Err *e);
void rdb_build_row_dispose(RdbBuildRow *b);
int rdb_load_unfinished(Db *db, RdbBuildRow **rows, size_t *n, Err *e);
int rdb_unfinished_ids(Db *db, Map *out_prio, Err *e);
/* repeats: "project:jobset" -> N (intptr), or NULL */
int rdb_load_jobsets(Db *db, Map *jobsets, int64_t since, const Map *repeats, Err *e);
int rdb_recorded_outputs(Db *db, const char *drv_path, StrVec *names, StrVec *paths, Err *e);
int rdb_build_resolution(Db *db, int64_t build, const char *drv_path, char **out, Err *e);
int rdb_any_resolution(Db *db, const char *drv_path, char **out, Err *e);
int rdb_failed_paths_any(Db *db, char *const *paths, size_t n, Err *e);
int rdb_failed_paths_add(Db *db, char *const *paths, size_t n, Err *e);
int rdb_last_failure_build(Db *db, const char *drv_path, int64_t *out, Err *e);
int rdb_insert_step(Db *db, const RdbStepRow *r, int32_t *stepnr, Err *e);
/* timesBuilt (and isNonDeterministic when built more than once) of a finished row, as
 * Hydra's runner writes them; nothing when times_built is 0. */
int rdb_step_times_built(Db *db, int64_t build, int32_t stepnr, uint64_t times_built, int non_det,
                         Err *e);
int rdb_finish_step(Db *db, int64_t build, int32_t stepnr, int status, const char *error_msg,
                    int64_t stop_time, const char *machine, int64_t overhead_ms,
                    char *const *out_names, char *const *out_paths, size_t n, Err *e);
int rdb_set_busy(Db *db, int64_t build, int32_t stepnr, int phase, Err *e);
int rdb_build_was_started(Db *db, int64_t build, Err *e);
int rdb_attempts(Db *db, const char *drv_path, int *tries, int64_t *last_stop, Err *e);
int rdb_finish_build(Db *db, const RdbBuildResult *b, Err *e);
int rdb_builds_resolving_to(Db *db, const char *resolved_base, PtrVec *ids_out, Err *e);
int rdb_build_has_success(Db *db, int64_t build, const char *drv_path, Err *e);
int rdb_build_unfinished(Db *db, int64_t build, Err *e);
int rdb_previous_success(Db *db, const char *out_path, int64_t *build, Err *e);
int rdb_root_add(Db *db, const char *root, const char *path, const char *kind, int64_t build,
                 Err *e);
int rdb_root_del(Db *db, const char *root, Err *e);

/* step.c: the state machine (all with Runner.lock held) */
const char *step_state_name(int state);
int step_move_legal(int from, int to);
void step_move(Runner *r, Step *s, int to); /* asserts the move is legal */
void step_retry_at(Runner *r, Step *s, int64_t after);
void step_pin(Runner *r, Step *s);

/* queue.c */
int step_cmp_priority(const Runner *r, const Step *a, const Step *b);
StepQueue *queue_new(const char *system, const char *features, int64_t jobset_id);
void queue_free(StepQueue *q);
StepQueue *queue_for_step(Runner *r, const Step *s); /* created when new */
void queue_push(const Runner *r, StepQueue *q, Step *s);
Step *queue_peek(StepQueue *q);
Step *queue_pop(const Runner *r, StepQueue *q);
void queue_remove(const Runner *r, StepQueue *q, Step *s);
void queue_update(Runner *r, Step *s);

/* The merged view of every queue in one priority order: a heap of the non-empty queues
 * ordered by their heads (step_cmp_priority), so the best runnable step of the whole
 * runner is the head of the top queue.  Built once per dispatch round, O(queues). */
typedef struct QueueHeads {
    StepQueue **v;
    uint32_t n, cap;
} QueueHeads;
void queue_heads_init(Runner *r, QueueHeads *h);
StepQueue *queue_heads_top(const QueueHeads *h);
/* The top queue's head was taken: the queue moves to its new place (or out, empty). */
void queue_heads_update_top(const Runner *r, QueueHeads *h);
/* The top queue can do nothing more this round (no free machine fits it). */
void queue_heads_drop_top(const Runner *r, QueueHeads *h);
void queue_heads_dispose(QueueHeads *h);

/* graph.c (all with Runner.lock held) */
double runner_jobset_share_used(const Runner *r, int64_t jobset_id);
void graph_step_add_jobset(Runner *r, Step *s, int64_t jobset_id);
void graph_charge_jobsets(Runner *r, const Step *s, int64_t start, int64_t stop);
Step *graph_step_get(Runner *r, const char *drv_path);
Step *graph_step_new(Runner *r, const char *drv_path, const char *system, const char *features,
                     int kind, int two_phase);
void graph_step_free(Step *s);
void graph_add_dep(Runner *r, Step *s, Step *dep);
Build *graph_build_get(Runner *r, int64_t id);
void graph_build_attach(Runner *r, Build *b, Step *top);
void graph_propagate_priorities(Runner *r, Build *b, Step *top);
void graph_step_ready(Runner *r, Step *s);
void graph_step_done(Runner *r, Step *s, PtrVec *finished_builds);
void graph_dependent_builds(Runner *r, Step *s, PtrVec *out);
void graph_step_forget(Runner *r, Step *s);
void graph_fail_with_rdeps(Runner *r, Step *s);
void graph_build_forget(Runner *r, Build *b);
void graph_wake_dispatcher(Runner *r);

/* machines.c */
void runner_machine_disable(Runner *r, Machine *m, const char *why, int untrusted);
int runner_load_machines(Runner *r, Err *e);
uint32_t runner_local_max_jobs(int max_jobs);
const char *runner_local_system(void);
void machine_free(Machine *m);
int runner_machines_parse(const char *text, const char *file, PtrVec *out, Err *e);
int machine_fits(const Machine *m, const char *system, const char *features);
void runner_machine_release(Runner *r, Worker *w, int status, Blame blame, const char *msg);

/* logs.c */
char *runner_log_path(const char *log_dir, const char *drv_path);
int runner_log_open(const char *log_dir, const char *drv_path, uint64_t limit, RunnerLog **out,
                    Err *e);
int runner_log_write(RunnerLog *l, const void *data, size_t n, Err *e);
uint64_t runner_log_size(const RunnerLog *l);
const char *runner_log_file(const RunnerLog *l);
int runner_log_close(RunnerLog *l, Err *e);
int runner_log_read(const char *log_dir, const char *drv_path, Buf *out, Err *e);

/* ingest.c */
char *runner_features_string(const NixDrv *d, int two_phase);
int runner_drv_loader(void *payload, const char *drv_path, NixDrv **out, Err *e);
int runner_attach_walk(Runner *r, const RdbBuildRow *row, Map *nodes, const char *top_drv);
int runner_queue_pass(Runner *r, Db *db, Err *e);

/* results.c */
void output_facts_dispose(OutputFacts *f);
/* names: the output names (NULL: all "out"), for the default nix-build products. */
int output_facts_collect(StoreConn *c, char *const *names, char *const *paths, size_t n,
                         OutputFacts *f, Err *e);
void runner_map_result(int nix_status, int *step_status, int *can_retry, int *can_cache);
int runner_dependent_status(int step_status, int is_toplevel);
int runner_finish_cached_build(Runner *r, Db *db, const RdbBuildRow *row, const char *drv_path,
                               const StrVec *names, const StrVec *static_paths,
                               const StrVec *found_paths, Err *e);
int runner_fail_build_at_ingest(Runner *r, Db *db, const RdbBuildRow *row, const char *drv_path,
                                const char *system, int step_status, const char *msg, int is_top,
                                Err *e);

/* hooks.c (tests) */
void runner_crash_point(Runner *r, const char *name);
void runner_pause_point(Runner *r, const char *name, const char *what);

/* inputs.c */
int runner_input_output_path(Runner *r, Db *db, StoreConn *local, const char *drv_path,
                             const char *output, char **out, Err *e);
int runner_collect_inputs(Runner *r, Db *db, StoreConn *local, const NixDrv *d, NixInputPath **out,
                          size_t *n_out, char **missing_drv, char **missing_out, Err *e);
void runner_inputs_free(NixInputPath *v, size_t n);

/* exec.c */
int runner_worker_start(Runner *r, Worker *w, Err *e);

/* finish.c */
int64_t runner_retry_time(const Runner *r, int tries, int64_t last_stop);
void runner_step_finished(Runner *r, Db *db, Worker *w, int *pstatus, int can_retry, int can_cache,
                          Blame blame, const char *requeue_drv, const char *msg, StrVec *names,
                          StrVec *paths, OutputFacts *facts, int64_t start, int64_t stop);
void runner_mark_unrecorded(Runner *r, Db *db);
void runner_fail_step(Runner *r, Db *db, const char *drv_path, int status, const char *msg,
                      int pinned);

/* ca.c */
void runner_attach_resolved(Runner *r, Db *db, const char *drv_path, const char *rpath,
                            const NixDrv *rd, int prebuilt, const StrVec *names,
                            const StrVec *paths);
void runner_requeue_resolving(Runner *r, Db *db, const char *drv, const char *input);
void runner_requeue_input(Runner *r, Db *db, Worker *w, const char *input);
void runner_register_realisations(Runner *r, StoreConn *c, Worker *w, const NixDrv *basic,
                                  const StoreBuildResult *res, char *const *names,
                                  char *const *paths, size_t n);

/* publish.c: the binary cache (store-uri) */
int runner_cache_open(Runner *r, Err *e);
void runner_cache_publish_step(Runner *r, Worker *w, const NixDrv *drv, int two_phase,
                               const StrVec *out_paths, int *status, int *can_retry, char **msg);
/* {"url", "nrNars", "narBytes", "uploadedBytes", ..., "nrFailures", "uploadSeconds"} or NULL
 * without a cache (caller-owned) */
struct json_t *runner_cache_status_json(Runner *r);
int runner_cache_publish_cached(Runner *r, const char *drv_path, char *const *out_paths, size_t n,
                                Err *e);
/* The upload pool: built steps' uploads run on their own threads (at most
 * RUNNER_UPLOAD_THREADS), never on the dispatcher nor in a machine slot.  Hand w's upload
 * over: w's machine slot is given back (runner_worker_release_slot), then
 * fn(arg, interrupted) runs on a pool thread; interrupted is 1 when the runner stops
 * before the upload began (fn then records the step as interrupted).  When
 * RUNNER_UPLOAD_QUEUE uploads wait already, the caller waits for room first (holding its
 * slot: a cache slower than the builds slows the builds, memory stays bounded). */
#define RUNNER_UPLOAD_THREADS 4
#define RUNNER_UPLOAD_QUEUE   64
typedef void (*RunnerUploadFn)(void *arg, int interrupted);
void runner_upload_submit(Runner *r, Worker *w, RunnerUploadFn fn, void *arg);
/* Wake idle pool threads (the runner stops); free the pool (no thread left). */
void runner_uploads_wake(Runner *r);
void runner_uploads_free(Runner *r);

/* substitute.c: use-substitutes */

/* One derivation to substitute: its output paths (borrowed); the outcome. */
typedef struct RunnerSubstJob {
    const char *drv_path;
    char *const *paths;
    size_t n;
    int ok;
    char *error; /* owned: why it failed */
    int64_t start, stop;
} RunnerSubstJob;

/* One QuerySubstitutablePathInfos of `ask` (counted in stats.subst_queries); the
 * substitutable ones are added to `subst`. */
int runner_subst_query(Runner *r, StoreConn *c, const StrVec *ask, Map *subst, Err *e);
/* Substitute jobs[0..n) through the local store on up to max-substitution-jobs threads
 * (this one included); returns when all are done.  Failures are logged and counted. */
void runner_subst_run(Runner *r, RunnerSubstJob *jobs, size_t n);
void runner_subst_job_dispose(RunnerSubstJob *j);
/* Root a substituted job's outputs and give each of `builds` its type-1 row (not twice). */
int runner_subst_record(Runner *r, Db *db, const RunnerSubstJob *j, const char *system,
                        char *const *names, const int64_t *builds, size_t n_builds, Err *e);

/* resolve.c, dispatch.c */
void *runner_resolver_main(void *arg);
void *runner_dispatcher_main(void *arg);
void runner_worker_free(Worker *w);

/* roots.c */
int runner_root_path(Runner *r, Db *db, StoreConn *c, const char *path, const char *kind,
                     int64_t build, Err *e);
void runner_root_output(Runner *r, Db *db, const char *path, int64_t build);
int runner_roots_release_build(Db *db, int64_t build, Err *e);
int runner_roots_reconcile(Runner *r, Db *db, Err *e);

/* runner.c */
int runner_db_get(Runner *r, Db **out, Err *e);
void runner_db_put(Runner *r, Db *db);
int runner_load_jobsets(Runner *r, Db *db, Err *e);
uint64_t runner_pass_backoff_ms(unsigned failures);

/* phases.c: the worker's phase clock.  phase_start begins it (the prepare phase),
 * phase_enter charges the time since the last mark to the current phase and moves to
 * the next, phase_report charges the last one, adds the step to the phase histograms
 * and logs the step's phase line at -v. */
void runner_phase_start(Worker *w);
void runner_phase_enter(Worker *w, int phase);
void runner_phase_report(Runner *r, Worker *w);
/* finish.c: the worker's machine slot, given back once: early (the build on a remote
 * machine is done, only the copy back is left, so the machine's next step starts
 * meanwhile) or at the step's end.  Lock held. */
void runner_worker_release_slot(Runner *r, Worker *w);
void runner_build_finished(Runner *r, int64_t id);
void runner_stop_locked(Runner *r);
/* Start a detached thread fn(arg) counted in the runner's threads (it ends with
 * runner_thread_exit); 0 or pthread_create's error. */
int runner_thread_start(Runner *r, void *(*fn)(void *), void *arg);
/* A worker thread's last act (it may free the Runner: touch nothing after it). */
void runner_thread_exit(Runner *r);

#endif
