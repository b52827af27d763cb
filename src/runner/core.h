/*
 * core.h: the types every file of the queue runner shares, for src/runner/ only.
 * Each file has its own header for its functions (X.c -> X.h); the include graph
 * runs one way (scripts/include-graph).
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
 *               max-substitution-jobs; they run while the chunk's builds are attached and
 *               built (a step that needs a path being substituted waits for it) and are
 *               joined at the end of the chunk; they touch no graph state
 *
 * Lifetimes: a Step lives while a build or another step needs it; it is freed when it
 * finishes and nothing refers to it any more (refcount-free: the graph owns steps in
 * Runner.steps keyed by drv path; finished steps are removed from the map and freed
 * once their rdeps were woken).
 */
#ifndef SLUICE_RUNNER_CORE_H
#define SLUICE_RUNNER_CORE_H

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
typedef struct RunnerSubstMemory RunnerSubstMemory;

/* Step states (in memory; the DB has its own rows). */
typedef enum {
    STEP_WAITING = 0,  /* has unfinished deps */
    STEP_RESOLVING,    /* deps done; CA/deferred drv queued for resolution */
    STEP_RUNNABLE,     /* in its queue, waiting for a machine */
    STEP_RETRY_WAIT,   /* failed transiently; runnable again at `after` */
    STEP_RUNNING,      /* a worker owns it */
    STEP_DONE,         /* succeeded (or outputs found valid) */
    STEP_FAILED,       /* failed for good (builds failed) */
    STEP_RESOLVED,     /* P resolved to another drv P' (P->resolved_to) */
    STEP_PINNED,       /* taken by one thread for I/O outside the lock; only it moves it on */
    STEP_SUBSTITUTING, /* use-substitutes: its outputs are being substituted at ingest; steps
                          that need them wait; substituted it is done, else built */
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
    uint16_t tries;          /* failed attempts so far (from DB attempt rows + this run) */
    uint32_t n_deps_left;    /* unfinished deps */
    PtrVec deps;             /* Step*: unfinished deps (strong) */
    PtrVec rdeps;            /* Step*: steps that wait for this one */
    PtrVec builds;           /* Build*: builds whose current top level is this step */
    Step *resolved_to;       /* P': set when state == STEP_RESOLVED */
    int64_t after;           /* unix time before which a retry must not start */
    int64_t runnable_since;
    uint64_t runnable_ms; /* when it last became runnable (monotonic; queue-wait figures) */
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
    Step *toplevel; /* current top-level step (P, or P' after resolution) */
    uint8_t finished;
    uint32_t mark; /* visit mark of graph walks (RunnerGraph.mark_epoch) */
};

/* Queue of runnable steps for one machine type (system + required features) and one
 * jobset (the steps' share jobset): a binary heap ordered by runner__step_cmp_priority.  Guarded
 * by Runner.lock. */
struct StepQueue {
    char *system;
    char *features;
    int64_t jobset_id;
    Step **heap;
    uint32_t n, cap;
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
    Map *jobsets;        /* decimal id -> Jobset* (replaced whole: runner__load_jobsets) */
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
    pthread_mutex_t lock;        /* the graph lock: take it with runner__lock (lock.c) */
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
    PtrVec db_all;    /* every connection runner__db_get opened and did not close (db_lock) */
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
    /* the ingest thread only: the substitutions it remembers (substitute.c) */
    RunnerSubstMemory *subst_memory;
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

#endif
