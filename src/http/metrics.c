/*
 * metrics.c: /metrics in Prometheus text format 0.0.4.  sluice's own names start with
 * "sluice_", counters end in "_total", durations are in seconds and sizes in bytes
 * (Prometheus naming conventions); each family has one # HELP and one # TYPE line and
 * its samples together.  Then the same figures again under the names, types, units
 * and labels of Hydra's queue runner ("hydraqueuerunner_*", milliseconds, label
 * "hostname" or "machine_type"), so existing dashboards and alerts keep working.  Counters come
 * from RunnerStats (atomics, no lock), gauges from the runner's two JSON snapshots, so one scrape
 * costs two short lock holds and no database work.
 */
#include <dirent.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "http/http_int.h"

/* # HELP and # TYPE of a family.  help must not contain '\\' or newlines. */
static void family(Buf *o, const char *name, const char *type, const char *help)
{
    buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void label_value(Buf *o, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            buf_puts(o, "\\\\");
        else if (*v == '"')
            buf_puts(o, "\\\"");
        else if (*v == '\n')
            buf_puts(o, "\\n");
        else
            buf_putc(o, *v);
    }
}

/* The shortest %g form of a finite v that reads back as v (a start time of 1.8e9 s with
 * centiseconds needs 12 digits; 0.1 needs one). */
static const char *shortest(double v, char out[32])
{
    for (int prec = 6; prec < 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return out;
    }
    snprintf(out, 32, "%.17g", v);
    return out;
}

/* name{k1="v1",k2="v2"} value; labels: NULL-terminated key/value list or NULL. */
static void sample_labels(Buf *o, const char *name, const char *const *labels, double value)
{
    char num[32];
    buf_puts(o, name);
    if (labels && labels[0]) {
        buf_putc(o, '{');
        for (size_t i = 0; labels[i]; i += 2) {
            if (i)
                buf_putc(o, ',');
            buf_printf(o, "%s=\"", labels[i]);
            label_value(o, labels[i + 1]);
            buf_putc(o, '"');
        }
        buf_putc(o, '}');
    }
    if (isnan(value))
        buf_puts(o, " NaN\n");
    else if (isinf(value))
        buf_puts(o, value > 0 ? " +Inf\n" : " -Inf\n");
    else if (value == floor(value) && fabs(value) < 9007199254740992.0)
        buf_printf(o, " %.0f\n", value);
    else
        buf_printf(o, " %s\n", shortest(value, num));
}

static void sample(Buf *o, const char *name, double value)
{
    sample_labels(o, name, NULL, value);
}

static void sample1(Buf *o, const char *name, const char *k, const char *v, double value)
{
    const char *labels[] = {k, v, NULL};
    sample_labels(o, name, labels, value);
}

static double u(const atomic_ullong *a)
{
    return (double)atomic_load(a);
}

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : json_is_true(v) ? 1.0 : 0.0;
}

static void counter(Buf *o, const char *name, const char *help, double v)
{
    family(o, name, "counter", help);
    sample(o, name, v);
}

static void gauge(Buf *o, const char *name, const char *help, double v)
{
    family(o, name, "gauge", help);
    sample(o, name, v);
}

/* One family with a value per machine. */
static void per_machine(Buf *o, json_t *ms, const char *name, const char *type, const char *help,
                        const char *key)
{
    const char *uri;
    json_t *m;
    family(o, name, type, help);
    json_object_foreach(ms, uri, m)
    {
        sample1(o, name, "machine", uri, num(m, key));
    }
}

static void hydra_aliases(Buf *o, const RunnerStats *st, json_t *status, json_t *ms);

/* The samples of one histogram in seconds: cumulative buckets up to "+Inf", _sum and
 * _count (the +Inf bucket's count, so the two agree even while steps end during the
 * scrape); with label k="v" on each sample when k is not NULL. */
static void histogram_samples(Buf *o, const char *name, const char *k, const char *v,
                              const RunnerHisto *h)
{
    char sample_name[128], le[32];
    const char *bucket_labels[] = {k ? k : "le", k ? v : le, k ? "le" : NULL, le, NULL};
    const char *labels[] = {k, v, NULL};
    double cum = 0;
    snprintf(sample_name, sizeof sample_name, "%s_bucket", name);
    for (size_t i = 0; i <= RUNNER_HISTO_BOUNDS; i++) {
        cum += u(&h->bucket[i]);
        if (i < RUNNER_HISTO_BOUNDS)
            snprintf(le, sizeof le, "%g", (double)runner_histo_bounds_ms[i] / 1e3);
        else
            snprintf(le, sizeof le, "+Inf");
        sample_labels(o, sample_name, bucket_labels, cum);
    }
    snprintf(sample_name, sizeof sample_name, "%s_sum", name);
    sample_labels(o, sample_name, k ? labels : NULL, (double)atomic_load(&h->sum_ms) / 1e3);
    snprintf(sample_name, sizeof sample_name, "%s_count", name);
    sample_labels(o, sample_name, k ? labels : NULL, cum);
}

static void histogram(Buf *o, const char *name, const char *help, const RunnerHisto *h)
{
    family(o, name, "histogram", help);
    histogram_samples(o, name, NULL, NULL, h);
}

/* The phase histograms: one family, label "phase" (runner_phase_name). */
static void phase_histograms(Buf *o, const RunnerStats *st)
{
    family(o, "sluice_step_phase_seconds", "histogram",
           "Time steps spent in each phase of their run (prepare, open, inputs, roots, build, "
           "outputs, copy-back, register, publish, record).");
    for (int p = 0; p < RUNNER_PHASE_N; p++)
        histogram_samples(o, "sluice_step_phase_seconds", "phase", runner_phase_name(p),
                          &st->phase[p]);
}

/* process_*: Prometheus' standard process metrics, from getrusage and /proc/self. */
static void process_metrics(Buf *o)
{
    struct rusage ru;
    long page = sysconf(_SC_PAGESIZE), ticks = sysconf(_SC_CLK_TCK);
    unsigned long long vsize = 0, start = 0;
    long rss = 0;
    double boot = 0, fds = 0;
    struct timespec rt, bt;
    char buf[1024];
    FILE *f;
    DIR *d;
    struct dirent *de;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        counter(o, "process_cpu_seconds_total", "User and system CPU time spent, in seconds.",
                (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                    ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6);
    if ((f = fopen("/proc/self/stat", "re"))) {
        /* after the ')' of the command name: fields 3..; starttime is 22, vsize 23, rss 24 */
        if (fgets(buf, sizeof buf, f)) {
            char *p = strrchr(buf, ')');
            if (p && sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                            "%*d %*d %llu %llu %ld",
                            &start, &vsize, &rss) != 3)
                start = vsize = 0, rss = 0;
        }
        fclose(f);
    }
    /* starttime counts clock ticks since boot on CLOCK_BOOTTIME; the wall time of boot is
     * taken from the two clocks now rather than from /proc/stat's btime, which is whole
     * seconds and moves when the wall clock is stepped */
    if (clock_gettime(CLOCK_REALTIME, &rt) == 0 && clock_gettime(CLOCK_BOOTTIME, &bt) == 0)
        boot = ((double)rt.tv_sec - (double)bt.tv_sec) +
               ((double)rt.tv_nsec - (double)bt.tv_nsec) / 1e9;
    if ((d = opendir("/proc/self/fd"))) {
        while ((de = readdir(d)))
            fds += de->d_name[0] != '.';
        closedir(d);
        fds -= 1; /* the directory's own descriptor */
    }
    gauge(o, "process_resident_memory_bytes", "Resident memory size in bytes.",
          (double)rss * (double)page);
    gauge(o, "process_virtual_memory_bytes", "Virtual memory size in bytes.", (double)vsize);
    gauge(o, "process_open_fds", "Number of open file descriptors.", fds);
    if (boot > 0 && ticks > 0)
        gauge(o, "process_start_time_seconds", "Start time of the process since the epoch.",
              boot + (double)start / (double)ticks);
}

void http__metrics_render(const RunnerStats *st, json_t *status, json_t *machines, Buf *out)
{
    static const struct {
        const char *label;
        int busy;
    } phases[] = {{"preparing", DB_BUSY_PREPARING},
                  {"connecting", DB_BUSY_CONNECTING},
                  {"sending_inputs", DB_BUSY_SENDING_INPUTS},
                  {"building", DB_BUSY_BUILDING},
                  {"receiving_outputs", DB_BUSY_RECEIVING_OUTPUTS},
                  {"post_processing", DB_BUSY_POST_PROCESSING}};
    json_t *ms = json_object_get(machines, "machines"), *m, *runnable;
    const char *key;
    double busy[UTIL_ARRAY_LEN(phases)] = {0};
    RunnerStats zero;
    if (!st) {
        memset(&zero, 0, sizeof zero);
        st = &zero;
    }

    family(out, "sluice_build_info", "gauge", "sluice's version (the value is 1).");
    sample1(out, "sluice_build_info", "version", SLUICE_VERSION, 1);
    process_metrics(out);
    gauge(out, "sluice_start_time_seconds", "Time the runner started, seconds since the epoch.",
          (double)atomic_load(&st->start_time));
    gauge(out, "sluice_uptime_seconds", "Seconds since the runner started.", num(status, "uptime"));

    /* builds */
    counter(out, "sluice_builds_read_total", "Queued builds loaded from the database.",
            u(&st->builds_read));
    family(out, "sluice_builds_finished_total", "counter",
           "Builds finished by this runner, by result.");
    sample1(out, "sluice_builds_finished_total", "result", "succeeded", u(&st->builds_succeeded));
    sample1(out, "sluice_builds_finished_total", "result", "failed", u(&st->builds_failed));
    counter(out, "sluice_builds_cached_total",
            "Succeeded builds whose outputs were already there (isCachedBuild = 1).",
            u(&st->builds_cached));
    gauge(out, "sluice_builds_queued", "Unfinished builds held by the runner.",
          num(status, "nrQueuedBuilds"));

    /* steps */
    family(out, "sluice_steps", "gauge", "Unfinished steps in memory, by state.");
    sample1(out, "sluice_steps", "state", "waiting", num(status, "nrStepsWaiting"));
    sample1(out, "sluice_steps", "state", "resolving", num(status, "nrStepsResolving"));
    sample1(out, "sluice_steps", "state", "runnable", num(status, "nrRunnableSteps"));
    sample1(out, "sluice_steps", "state", "retry_wait", num(status, "nrStepsRetryWaiting"));
    sample1(out, "sluice_steps", "state", "running", num(status, "nrActiveSteps"));
    gauge(out, "sluice_steps_unfinished", "Unfinished steps in memory (all states).",
          num(status, "nrUnfinishedSteps"));
    json_object_foreach(ms, key, m)
    {
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(m, "currentSteps"), i, s)
        {
            json_int_t b = json_integer_value(json_object_get(s, "busy"));
            for (size_t k = 0; k < UTIL_ARRAY_LEN(phases); k++)
                if (phases[k].busy == b)
                    busy[k]++;
        }
    }
    family(out, "sluice_steps_busy", "gauge",
           "Running steps by busy phase (BuildSteps.busy: 1, 10, 20, 30, 40, 50).");
    for (size_t k = 0; k < UTIL_ARRAY_LEN(phases); k++)
        sample1(out, "sluice_steps_busy", "phase", phases[k].label, busy[k]);
    counter(out, "sluice_steps_started_total", "Steps sent to a machine.", u(&st->steps_started));
    family(out, "sluice_steps_finished_total", "counter",
           "Steps finished for good, by result (retried attempts are not counted).");
    sample1(out, "sluice_steps_finished_total", "result", "succeeded", u(&st->steps_done));
    sample1(out, "sluice_steps_finished_total", "result", "failed", u(&st->steps_failed));
    histogram(out, "sluice_step_queue_wait_seconds",
              "Time steps waited from becoming runnable (inputs built, or a retry due) until "
              "they were started on a machine.",
              &st->queue_wait);
    histogram(out, "sluice_step_duration_seconds",
              "Time steps ran, from their start on a machine until they ended (each attempt).",
              &st->step_duration);
    phase_histograms(out, st);
    counter(out, "sluice_step_retries_total",
            "Step attempts that failed transiently and were scheduled again.",
            u(&st->steps_retried));
    counter(out, "sluice_steps_cached_failures_total",
            "Steps failed at once because an output is a known failure (FailedPaths).",
            u(&st->steps_cached_failure));
    family(out, "sluice_runnable_steps", "gauge",
           "Runnable steps waiting for a machine, by system.");
    runnable = json_object_get(status, "runnable");
    json_object_foreach(runnable, key, m)
    {
        sample1(out, "sluice_runnable_steps", "system", key, num(m, "totalRunnable"));
    }

    /* dispatcher and ingest */
    family(out, "sluice_dispatch_round_seconds", "summary", "Time the dispatcher spent per round.");
    sample(out, "sluice_dispatch_round_seconds_sum",
           (double)atomic_load(&st->dispatch_time_us_total) / 1e6);
    sample(out, "sluice_dispatch_round_seconds_count", u(&st->dispatch_rounds));
    gauge(out, "sluice_dispatch_round_last_seconds", "Duration of the last dispatcher round.",
          (double)atomic_load(&st->dispatch_time_us_last) / 1e6);
    gauge(out, "sluice_ingest_pass_last_seconds",
          "Duration of the last queue pass (loading new builds and their derivation closures).",
          (double)atomic_load(&st->ingest_time_ms) / 1e3);
    gauge(out, "sluice_ingest_active", "1 while a queue pass runs.", num(status, "ingestActive"));

    /* content-addressed derivations */
    counter(out, "sluice_ca_resolutions_total",
            "Derivations resolved to a different derivation (status-13 rows recorded).",
            u(&st->ca_resolved));
    counter(out, "sluice_ca_resolutions_reused_total",
            "Resolutions that reused a resolved derivation recorded earlier (part of "
            "sluice_ca_resolutions_total).",
            u(&st->ca_resolved_reused));
    counter(out, "sluice_ca_resolutions_failed_total",
            "Derivations that could not be resolved (their builds failed).",
            u(&st->ca_resolve_failed));
    counter(out, "sluice_realisations_refused_total",
            "Realisation registrations the local store refused.", u(&st->realisations_refused));

    /* substitution (use-substitutes) */
    counter(out, "sluice_substitution_queries_total",
            "Substitutable-path questions asked of the local store (one per level of a walk).",
            u(&st->subst_queries));
    counter(out, "sluice_ingest_levels_total",
            "Levels of derivations walked at ingest (each asks at most one substitution question).",
            u(&st->ingest_levels));
    counter(out, "sluice_substitutions_total",
            "Derivations whose outputs were substituted instead of built.", u(&st->subst_done));
    counter(out, "sluice_substitutions_failed_total",
            "Substitutions that failed (the derivations were built instead).",
            u(&st->subst_failed));
    counter(out, "sluice_substitution_misses_total",
            "Content-addressed derivations looked up through realisations that no cache had "
            "(built instead; not failures).",
            u(&st->subst_misses));

    /* copying */
    family(out, "sluice_copied_bytes_total", "counter",
           "Bytes of store paths copied between the local store and machines.");
    sample1(out, "sluice_copied_bytes_total", "direction", "to_machines", u(&st->bytes_copied_to));
    sample1(out, "sluice_copied_bytes_total", "direction", "from_machines",
            u(&st->bytes_copied_from));

    /* binary cache (store-uri): the runner's "binaryCache" status object */
    {
        static const char *const cache_counters[][3] = {
            {"sluice_cache_nars_total", "nrNars", "NARs uploaded to the binary cache."},
            {"sluice_cache_nar_bytes_total", "narBytes",
             "NAR bytes of the paths uploaded to the binary cache."},
            {"sluice_cache_uploaded_bytes_total", "uploadedBytes",
             "Compressed bytes written to the binary cache."},
            {"sluice_cache_realisations_total", "nrRealisations",
             "Realisations written to the binary cache."},
            {"sluice_cache_logs_total", "nrLogs", "Build logs uploaded to the binary cache."},
            {"sluice_cache_failures_total", "nrFailures",
             "Publishes to the binary cache that failed (each retried)."},
            {"sluice_cache_upload_seconds_total", "uploadSeconds",
             "Time spent publishing to the binary cache."},
        };
        json_t *bc = json_object_get(status, "binaryCache");
        for (size_t i = 0; i < UTIL_ARRAY_LEN(cache_counters); i++)
            counter(out, cache_counters[i][0], cache_counters[i][2], num(bc, cache_counters[i][1]));
        gauge(out, "sluice_cache_uploads_queued",
              "Built steps whose uploads wait for an upload thread.", num(bc, "nrUploadsQueued"));
        gauge(out, "sluice_cache_uploads_active", "Uploads to the binary cache in progress.",
              num(bc, "nrUploadsActive"));
    }

    /* machines */
    gauge(out, "sluice_machines", "Machines configured.",
          ms ? (double)json_object_size(ms) : num(status, "machinesTotal"));
    gauge(out, "sluice_machines_in_use", "Machines running at least one step.",
          num(status, "machinesInUse"));
    per_machine(out, ms, "sluice_machine_max_jobs", "gauge", "Slots of the machine (maxJobs).",
                "maxJobs");
    per_machine(out, ms, "sluice_machine_current_jobs", "gauge", "Steps running on the machine.",
                "currentJobs");
    per_machine(out, ms, "sluice_machine_speed_factor", "gauge", "speedFactor of the machine.",
                "speedFactor");
    per_machine(out, ms, "sluice_machine_enabled", "gauge",
                "1 when the machine may get steps, 0 while it is disabled after failures.",
                "enabled");
    per_machine(out, ms, "sluice_machine_consecutive_failures", "gauge",
                "Failures of the machine in a row (reset by a success).", "consecutiveFailures");
    family(out, "sluice_machine_steps_total", "counter",
           "Steps finished on the machine, by result.");
    json_object_foreach(ms, key, m)
    {
        const char *ok[] = {"machine", key, "result", "succeeded", NULL};
        const char *bad[] = {"machine", key, "result", "failed", NULL};
        sample_labels(out, "sluice_machine_steps_total", ok, num(m, "nrStepsDone"));
        sample_labels(out, "sluice_machine_steps_total", bad, num(m, "nrStepsFailed"));
    }
    per_machine(out, ms, "sluice_machine_copied_bytes_total", "counter",
                "NAR bytes of inputs copied to the machine (not what it substituted itself).",
                "bytesCopiedTo");
    per_machine(out, ms, "sluice_machine_disabled_until_timestamp_seconds", "gauge",
                "End of the machine's current back-off, seconds since the epoch (0: none).",
                "disabledUntil");
    per_machine(out, ms, "sluice_machine_last_seen_timestamp_seconds", "gauge",
                "Last time a step on the machine ended, seconds since the epoch.", "lastSeen");
    hydra_aliases(out, st, status, ms);
}

/* Hydra's runner's names for the figures above (hydra-behaviour §7). */
static void hydra_aliases(Buf *o, const RunnerStats *st, json_t *status, json_t *ms)
{
    static const struct {
        const char *name, *type, *key, *help;
    } from_status[] = {
        {"uptime_seconds", "gauge", "uptime", "Seconds since the runner started."},
        {"current_time_seconds", "gauge", "time", "Current time, seconds since the epoch."},
        {"builds_unfinished", "gauge", "nrQueuedBuilds", "Unfinished builds held by the runner."},
        {"steps_building", "gauge", "nrStepsBuilding", "Steps running."},
        {"steps_waiting", "gauge", "nrStepsWaiting", "Steps waiting for dependencies."},
        {"steps_runnable", "gauge", "nrRunnableSteps", "Runnable steps waiting for a machine."},
        {"steps_unfinished", "gauge", "nrUnfinishedSteps", "Unfinished steps."},
        {"steps_unsupported", "gauge", "nrUnsupportedSteps",
         "Steps failed because no machine supports them."},
        {"steps_max_retries", "gauge", "maxNrRetries", "Most retries of one step."},
        {"steps_avg_total_time_ms", "gauge", "avgStepTimeMs", "Average step time (ms)."},
        {"steps_avg_build_time_ms", "gauge", "avgStepBuildTimeMs", "Average build time (ms)."},
        {"machines_total", "gauge", "machinesTotal", "Machines configured."},
        {"machines_in_use", "gauge", "machinesInUse", "Machines running at least one step."},
    };
    static const struct {
        const char *name, *key, *help;
    } per_host[] = {
        {"machine_current_jobs", "currentJobs", "Steps running on the machine."},
        {"machine_steps_done", "nrStepsDone", "Steps finished on the machine."},
        {"machine_consecutive_failures", "consecutiveFailures", "Failures in a row."},
        {"machine_last_ping_timestamp", "lastSeen", "Last time a step on the machine ended."},
    };
    const struct {
        const char *name;
        double v;
        const char *help;
    } counters[] = {
        {"builds_read", u(&st->builds_read), "Queued builds loaded."},
        {"builds_read_time_ms", u(&st->ingest_time_ms), "Time of the last queue pass (ms)."},
        {"builds_finished", u(&st->builds_done), "Builds finished."},
        {"builds_succeeded", u(&st->builds_succeeded), "Builds succeeded."},
        {"builds_failed", u(&st->builds_failed), "Builds failed."},
        {"steps_started", u(&st->steps_started), "Steps started."},
        {"steps_finished", u(&st->steps_done), "Steps finished."},
        {"steps_retries", u(&st->steps_retried), "Step retries."},
        {"steps_total_time_ms", u(&st->step_time_ms_total), "Total step time (ms)."},
        {"steps_total_build_time_ms", u(&st->step_build_time_ms_total), "Total build time (ms)."},
        {"dispatch_wakeup", u(&st->dispatch_rounds), "Dispatcher rounds."},
        {"dispatch_time_ms", (double)(atomic_load(&st->dispatch_time_us_total) / 1000),
         "Time spent dispatching (ms)."},
        {"queue_checks_finished_total", u(&st->ingest_passes), "Queue passes finished."},
    };
    char name[96];
    const char *key;
    json_t *m;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(from_status); i++) {
        snprintf(name, sizeof name, "hydraqueuerunner_%s", from_status[i].name);
        family(o, name, from_status[i].type, from_status[i].help);
        sample(o, name, num(status, from_status[i].key));
    }
    for (size_t i = 0; i < UTIL_ARRAY_LEN(counters); i++) {
        snprintf(name, sizeof name, "hydraqueuerunner_%s", counters[i].name);
        counter(o, name, counters[i].help, counters[i].v);
    }
    snprintf(name, sizeof name, "hydraqueuerunner_machine_type_runnable");
    family(o, name, "gauge", "Runnable steps by system.");
    json_object_foreach(json_object_get(status, "runnable"), key, m)
    {
        sample1(o, name, "machine_type", key, num(m, "totalRunnable"));
    }
    snprintf(name, sizeof name, "hydraqueuerunner_machine_type_running");
    family(o, name, "gauge", "Running steps by system.");
    json_object_foreach(json_object_get(status, "runnable"), key, m)
    {
        sample1(o, name, "machine_type", key, num(m, "activeRunnable"));
    }
    for (size_t i = 0; i < UTIL_ARRAY_LEN(per_host); i++) {
        snprintf(name, sizeof name, "hydraqueuerunner_%s", per_host[i].name);
        family(o, name, "gauge", per_host[i].help);
        json_object_foreach(ms, key, m)
        {
            sample1(o, name, "hostname", key, num(m, per_host[i].key));
        }
    }
}

void http__handle_metrics(HttpReq *q, HttpReply *r)
{
    json_t *st = NULL, *ms = NULL;
    Buf b;
    size_t len;
    char *body;
    if (q->srv->runner) {
        st = runner_status_json(q->srv->runner);
        ms = runner_machines_json(q->srv->runner);
    }
    buf_init(&b, LIMIT_BUF_DEFAULT);
    http__metrics_render(q->srv->runner ? runner_stats(q->srv->runner) : NULL, st, ms, &b);
    json_decref(st);
    json_decref(ms);
    if (buf_status(&b) < 0) {
        buf_dispose(&b);
        http__reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render the metrics");
        return;
    }
    len = b.len;
    body = buf_take(&b, &len);
    buf_dispose(&b);
    http__reply_text(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
}
