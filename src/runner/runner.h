/*
 * runner: the queue runner.  Loads unfinished builds from the database, turns their
 * derivation closures into a graph of steps, resolves content-addressed derivations
 * (two-phase), dispatches runnable steps to machines, and records every step and
 * result in the database (Hydra's schema).  See ARCHITECTURE.md.
 */
#ifndef SLUICE_RUNNER_H
#define SLUICE_RUNNER_H

#include <stdatomic.h>
#include <stdint.h>

#include "util/util.h"

typedef struct Runner Runner;

typedef struct RunnerOptions {
    const char *db_url;
    const char *state_dir;
    const char *log_dir;
    const char *machines_file;  /* NULL: the local store is the only machine */
    const char *local_store;    /* "local" (child nix-daemon --stdio), "daemon", unix://PATH */
    int once;                   /* stop when no unfinished build is left */
    const int64_t *only_builds; /* stop when these builds are finished (sluice build) */
    size_t n_only_builds;
    int build_one;      /* Hydra's --build-one: only the only_builds are loaded, and their own step
                           failing transiently ends the run with an error instead of a retry */
    int max_retries;    /* attempts of a step failing transiently (Hydra: 5) */
    int retry_interval; /* seconds before the first retry (Hydra: 60) */
    double retry_backoff;         /* factor per further retry (Hydra: 3) */
    int max_silent_default;       /* 3600 */
    int timeout_default;          /* 36000 */
    uint64_t max_log_size;        /* bytes; 64 MiB */
    uint64_t max_output_size;     /* total NAR bytes; 2 GiB */
    int max_unsupported_time;     /* seconds; 120 */
    int keep_outputs_days;        /* 30; -1: keep outputs of finished builds rooted for good */
    const char *gc_roots_dir;     /* Hydra's gc_roots_dir: output roots go there, unlisted */
    int local_max_jobs;           /* 0: number of cores */
    int build_cores;              /* passed to builders; 0 = all */
    int local_daemon_max_steps;   /* retire a pooled local daemon after N steps (1000) */
    int local_daemon_idle_time;   /* ... or N seconds idle (600) */
    int warm_sessions;            /* per remote machine, capped at twice its max jobs (4; 0: off) */
    int session_steps;            /* remote sessions serve up to N steps in a row (8; 1: one) */
    int ssh_alive_interval;       /* 15 */
    int ssh_alive_count_max;      /* 4 */
    const char *crash_point;      /* fault injection (tests): SIGKILL at this point */
    double machine_backoff_scale; /* tests: scale machine backoff (1 = Hydra's) */
    const char *store_uri;        /* binary cache every built output is published to (NULL:
                                     none); a URL the cache module refuses fails runner_new */
    int upload_logs;              /* upload-logs-to-binary-cache */
    int use_substitutes;          /* outputs the local store's substituters have are fetched,
                                     not built (Hydra's use-substitutes) */
    int max_substitution_jobs;    /* substitutions at a time (16) */
    int builders_use_substitutes; /* remote machines substitute inputs their substituters
                                     have instead of getting them copied (Nix's name) */
    const char *jobset_repeats;   /* Hydra's xxx-jobset-repeats: "PROJECT:JOBSET:N ..."; the
                                     steps of those jobsets' builds are built N more times
                                     and compared (a bad value fails runner_new) */
    /* progress reporting (sluice build): called from the runner about once a second */
    void (*progress)(void *payload, const char *line);
    void *progress_payload;
} RunnerOptions;

/* A histogram of durations for /metrics: counts per bucket (not cumulative; the last
 * one is above every bound) and the sum.  The upper bounds, in milliseconds, are
 * runner_histo_bounds_ms[0 .. RUNNER_HISTO_BOUNDS - 1], the same for every histogram. */
enum { RUNNER_HISTO_BOUNDS = 20 };
extern const uint64_t runner_histo_bounds_ms[RUNNER_HISTO_BOUNDS];
typedef struct RunnerHisto {
    atomic_ullong bucket[RUNNER_HISTO_BOUNDS + 1];
    atomic_ullong sum_ms;
} RunnerHisto;
void runner_histo_observe(RunnerHisto *h, uint64_t ms);

/* The phases a step's time is split into (the phase table: metrics, -v log lines,
 * bench/farm.sh): preparing and recording the start, opening the builder's session,
 * copying inputs (validity and copy), rooting the outputs on the builder, the build,
 * output facts (roots, sizes), copying outputs back, registering realisations,
 * publishing to the binary cache, recording the result. */
enum {
    RUNNER_PHASE_PREPARE,
    RUNNER_PHASE_OPEN,
    RUNNER_PHASE_INPUTS,
    RUNNER_PHASE_ROOTS,
    RUNNER_PHASE_BUILD,
    RUNNER_PHASE_OUTPUTS,
    RUNNER_PHASE_COPY_BACK,
    RUNNER_PHASE_REGISTER,
    RUNNER_PHASE_PUBLISH,
    RUNNER_PHASE_RECORD,
    RUNNER_PHASE_N
};

/* "prepare", "open", ...; "?" out of range. */
const char *runner_phase_name(int phase);

/* Counters, exported by `sluice status` and /metrics.  Atomics. */
typedef struct RunnerStats {
    atomic_ullong builds_read, builds_done, builds_succeeded, builds_failed, builds_cached;
    atomic_ullong steps_started, steps_done, steps_failed, steps_retried, steps_cached_failure;
    atomic_ullong ca_resolved, ca_resolved_reused, ca_resolve_failed, realisations_refused;
    atomic_ullong bytes_copied_to, bytes_copied_from;
    atomic_ullong dispatch_rounds, dispatch_time_us_total, dispatch_time_us_last;
    atomic_ullong ingest_time_ms;
    /* what Hydra's runner reports too (hydra-send-stats reads them) */
    atomic_ullong ingest_passes, steps_unsupported, steps_max_tries;
    atomic_ullong step_time_ms_total, step_build_time_ms_total;
    /* use-substitutes: questions asked of the substituters (one per level of a walk, one
     * per resolved derivation looked up), derivations substituted instead of built,
     * substitutions that failed (built instead), content-addressed lookups no cache had
     * (misses, built too) */
    atomic_ullong subst_queries, subst_done, subst_failed, subst_misses;
    atomic_ullong ingest_levels; /* levels of derivations walked at ingest (with any node) */
    atomic_llong start_time;
    /* steps started: how long each waited since it became runnable (inputs built, or a
     * retry due); steps ended: how long each ran since it was started on its machine */
    RunnerHisto queue_wait, step_duration;
    RunnerHisto phase[RUNNER_PHASE_N]; /* each step's time in each phase it went through */
} RunnerStats;

void runner_options_defaults(RunnerOptions *o);
int runner_new(const RunnerOptions *opt, Runner **out, Err *e);
/* Run until stopped (runner_stop, SIGINT/SIGTERM handled by the caller) or until the
 * `once` / `only_builds` condition holds.  Returns 0 or an error that stopped it. */
int runner_run(Runner *r, Err *e);
/* Ask a running runner to stop (thread-safe; safe to call from a signal-handling thread). */
void runner_stop(Runner *r);
void runner_free(Runner *r);
/* Apply the settings that may change while the runner runs (a reload): of o, the
 * fields local_max_jobs (the local store's slots when there is no machines file),
 * max_silent_default, timeout_default (for builds loaded from now on), max_log_size,
 * max_output_size, build_cores (for steps started from now on), max_retries,
 * retry_interval, retry_backoff, max_unsupported_time, keep_outputs_days and
 * machine_backoff_scale; the machines file is read again within a second, changed or
 * not.  Every other field needs a new runner.  Thread-safe. */
void runner_reconfigure(Runner *r, const RunnerOptions *o);
const RunnerStats *runner_stats(const Runner *r);

/* Snapshots for the HTTP server (jansson objects, caller-owned; thread-safe). */
struct json_t;
struct json_t *runner_status_json(Runner *r);
struct json_t *runner_machines_json(Runner *r);
int runner_build_active(Runner *r, int64_t id);

/* A step's log, decompressed (also while it is being written: what was flushed so
 * far), from LOG_DIR/<2 chars>/<rest>.zst or Hydra's uncompressed layout. */
int runner_log_read(const char *log_dir, const char *drv_path, Buf *out, Err *e);
/* Path of the log file of a drv (caller frees; NULL for a bad drv path). */
char *runner_log_path(const char *log_dir, const char *drv_path);

/* A step's log read in pieces with bounded memory (one input buffer and a bounded
 * decompression window), from the same files as runner_log_read.  read returns the
 * piece's length, 0 at the end of the log (for a plain log still being written: of what
 * was flushed so far), or a negative ERR_*. */
typedef struct RunnerLogReader RunnerLogReader;
int runner_log_reader_open(const char *log_dir, const char *drv_path, RunnerLogReader **out,
                           Err *e);
int64_t runner_log_reader_read(RunnerLogReader *lr, void *buf, size_t cap, Err *e);
void runner_log_reader_free(RunnerLogReader *lr);

#endif
