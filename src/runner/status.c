/*
 * status.c: read-only snapshots of the runner for the HTTP server and `sluice status`:
 * the queue runner summary (keys named like Hydra's /status where the meaning is the
 * same) and the machines (Hydra's /status/machines keys plus sluice's own).  Taken under
 * the graph lock, built as jansson objects the caller owns.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/graph.h"
#include "runner/lock.h"
#include "runner/publish.h"

static json_t *strvec_json(const StrVec *v)
{
    json_t *a = json_array();
    for (size_t i = 0; i < v->n; i++)
        json_array_append_new(a, json_string(v->v[i]));
    return a;
}

json_t *runner_status_json(Runner *r)
{
    json_t *o = json_object(), *qs = json_object();
    const RunnerStats *s = &r->stats;
    int64_t now = util_time_now();
    size_t it = 0, runnable = 0, waiting = 0, resolving, retry, in_use = 0;
    const char *k;
    void *v;
    uint64_t rounds = atomic_load(&s->dispatch_rounds);

    runner__lock(r);
    while (map_next(r->g.queues, &it, &k, &v)) {
        StepQueue *q = v;
        json_t *sys = json_object_get(qs, q->system);
        if (!sys) {
            sys = json_object();
            json_object_set_new(sys, "totalRunnable", json_integer(0));
            json_object_set_new(qs, q->system, sys);
        }
        json_object_set_new(
            sys, "totalRunnable",
            json_integer(json_integer_value(json_object_get(sys, "totalRunnable")) + q->n));
        runnable += q->n;
    }
    /* Hydra's activeRunnable: steps of the system being built now */
    json_object_foreach(qs, k, v)
    {
        size_t active = 0;
        for (uint32_t i = 0; i < r->workers.n; i++) {
            Worker *w = r->workers.v[i];
            if (w->step && w->step->system && strcmp(w->step->system, k) == 0)
                active++;
        }
        json_object_set_new(v, "activeRunnable", json_integer((json_int_t)active));
    }
    it = 0;
    while (map_next(r->g.steps, &it, &k, &v))
        if (((Step *)v)->state == STEP_WAITING)
            waiting++;
    resolving = r->g.to_resolve.n;
    retry = r->g.retry_wait.n;
    for (uint32_t i = 0; i < r->machines.n; i++)
        if (((Machine *)r->machines.v[i])->current_jobs)
            in_use++;
    json_object_set_new(o, "status", json_string("up"));
    json_object_set_new(o, "time", json_integer(now));
    json_object_set_new(o, "uptime", json_integer(now - atomic_load(&s->start_time)));
    json_object_set_new(o, "pid", json_integer((json_int_t)getpid()));
    json_object_set_new(o, "nrQueuedBuilds", json_integer((json_int_t)map_size(r->g.builds)));
    json_object_set_new(o, "nrUnfinishedSteps", json_integer((json_int_t)map_size(r->g.steps)));
    json_object_set_new(o, "nrRunnableSteps", json_integer((json_int_t)runnable));
    json_object_set_new(o, "nrActiveSteps", json_integer((json_int_t)r->running));
    json_object_set_new(o, "nrStepsBuilding", json_integer((json_int_t)r->running));
    json_object_set_new(o, "nrStepsWaiting", json_integer((json_int_t)waiting));
    json_object_set_new(o, "nrStepsResolving", json_integer((json_int_t)resolving));
    json_object_set_new(o, "nrStepsRetryWaiting", json_integer((json_int_t)retry));
    json_object_set_new(o, "machinesTotal", json_integer((json_int_t)r->machines.n));
    json_object_set_new(o, "machinesInUse", json_integer((json_int_t)in_use));
    json_object_set_new(o, "ingestActive", json_boolean(r->ingest_active));
    runner__unlock(r);

    json_object_set_new(o, "runnable", qs);
    json_object_set_new(o, "nrBuildsRead", json_integer((json_int_t)atomic_load(&s->builds_read)));
    json_object_set_new(o, "nrBuildsDone", json_integer((json_int_t)atomic_load(&s->builds_done)));
    json_object_set_new(o, "nrBuildsSucceeded",
                        json_integer((json_int_t)atomic_load(&s->builds_succeeded)));
    json_object_set_new(o, "nrBuildsFailed",
                        json_integer((json_int_t)atomic_load(&s->builds_failed)));
    json_object_set_new(o, "nrBuildsCached",
                        json_integer((json_int_t)atomic_load(&s->builds_cached)));
    json_object_set_new(o, "nrStepsStarted",
                        json_integer((json_int_t)atomic_load(&s->steps_started)));
    json_object_set_new(o, "nrStepsDone", json_integer((json_int_t)atomic_load(&s->steps_done)));
    json_object_set_new(o, "nrStepsFailed",
                        json_integer((json_int_t)atomic_load(&s->steps_failed)));
    json_object_set_new(o, "nrRetries", json_integer((json_int_t)atomic_load(&s->steps_retried)));
    json_object_set_new(o, "nrCachedFailures",
                        json_integer((json_int_t)atomic_load(&s->steps_cached_failure)));
    json_object_set_new(o, "nrResolutions", json_integer((json_int_t)atomic_load(&s->ca_resolved)));
    json_object_set_new(o, "nrResolutionsReused",
                        json_integer((json_int_t)atomic_load(&s->ca_resolved_reused)));
    json_object_set_new(o, "nrResolutionsFailed",
                        json_integer((json_int_t)atomic_load(&s->ca_resolve_failed)));
    json_object_set_new(o, "nrRealisationsRefused",
                        json_integer((json_int_t)atomic_load(&s->realisations_refused)));
    json_object_set_new(o, "nrSubstitutionQueries",
                        json_integer((json_int_t)atomic_load(&s->subst_queries)));
    json_object_set_new(o, "nrIngestLevels",
                        json_integer((json_int_t)atomic_load(&s->ingest_levels)));
    json_object_set_new(o, "nrSubstitutes", json_integer((json_int_t)atomic_load(&s->subst_done)));
    json_object_set_new(o, "nrSubstitutesFailed",
                        json_integer((json_int_t)atomic_load(&s->subst_failed)));
    json_object_set_new(o, "bytesSent", json_integer((json_int_t)atomic_load(&s->bytes_copied_to)));
    json_object_set_new(o, "bytesReceived",
                        json_integer((json_int_t)atomic_load(&s->bytes_copied_from)));
    json_object_set_new(o, "nrDispatcherWakeups", json_integer((json_int_t)rounds));
    json_object_set_new(o, "dispatchTimeMs",
                        json_real((double)atomic_load(&s->dispatch_time_us_total) / 1000.0));
    json_object_set_new(
        o, "dispatchTimeAvgMs",
        json_real(rounds ? (double)atomic_load(&s->dispatch_time_us_total) / 1000.0 / (double)rounds
                         : 0.0));
    json_object_set_new(o, "dispatchTimeLastMs",
                        json_real((double)atomic_load(&s->dispatch_time_us_last) / 1000.0));
    {
        uint64_t done = atomic_load(&s->steps_done), total = atomic_load(&s->step_time_ms_total);
        uint64_t build = atomic_load(&s->step_build_time_ms_total);
        json_object_set_new(o, "nrQueueWakeups",
                            json_integer((json_int_t)atomic_load(&s->ingest_passes)));
        json_object_set_new(o, "nrUnsupportedSteps",
                            json_integer((json_int_t)atomic_load(&s->steps_unsupported)));
        json_object_set_new(o, "maxNrRetries",
                            json_integer((json_int_t)atomic_load(&s->steps_max_tries)));
        json_object_set_new(o, "totalStepTime", json_integer((json_int_t)(total / 1000)));
        json_object_set_new(o, "totalStepBuildTime", json_integer((json_int_t)(build / 1000)));
        json_object_set_new(o, "avgStepTimeMs",
                            json_real(done ? (double)total / (double)done : 0.0));
        json_object_set_new(o, "avgStepBuildTimeMs",
                            json_real(done ? (double)build / (double)done : 0.0));
    }
    json_object_set_new(o, "buildReadTimeMs",
                        json_integer((json_int_t)atomic_load(&s->ingest_time_ms)));
    if (r->cache)
        json_object_set_new(o, "binaryCache", runner__cache_status_json(r));
    return o;
}

json_t *runner_machines_json(Runner *r)
{
    json_t *o = json_object(), *ms = json_object();
    int64_t now = util_time_now();
    runner__lock(r);
    for (uint32_t i = 0; i < r->machines.n; i++) {
        Machine *m = r->machines.v[i];
        json_t *j = json_object(), *steps = json_array();
        json_object_set_new(j, "systems", strvec_json(&m->systems));
        json_object_set_new(j, "maxJobs", json_integer(m->max_jobs));
        json_object_set_new(j, "speedFactor", json_real(m->speed_factor));
        json_object_set_new(j, "supportedFeatures", strvec_json(&m->supported));
        json_object_set_new(j, "mandatoryFeatures", strvec_json(&m->mandatory));
        json_object_set_new(j, "enabled", json_boolean(m->disabled_until <= now));
        json_object_set_new(j, "currentJobs", json_integer(m->current_jobs));
        json_object_set_new(j, "slotsUsed", json_integer(m->current_jobs));
        json_object_set_new(j, "nrStepsDone", json_integer((json_int_t)m->steps_done));
        json_object_set_new(j, "nrStepsFailed", json_integer((json_int_t)m->steps_failed));
        json_object_set_new(j, "bytesCopiedTo",
                            json_integer((json_int_t)atomic_load(&m->bytes_copied_to)));
        json_object_set_new(j, "consecutiveFailures", json_integer(m->consecutive_failures));
        json_object_set_new(j, "disabledUntil", json_integer(m->disabled_until));
        json_object_set_new(j, "disabledReason",
                            m->disabled_reason && m->disabled_until > now
                                ? json_string(m->disabled_reason)
                                : json_null());
        json_object_set_new(j, "lastSeen", json_integer(m->last_seen));
        json_object_set_new(j, "isLocal", json_boolean(m->is_local));
        {
            char *v = m->store ? store_machine_nix_version(m->store) : NULL;
            json_object_set_new(j, "nixVersion", v ? json_string(v) : json_null());
            free(v);
        }
        for (uint32_t k = 0; k < r->workers.n; k++) {
            Worker *w = r->workers.v[k];
            json_t *st;
            if (w->machine != m)
                continue;
            st = json_object();
            json_object_set_new(st, "drvPath", json_string(w->drv_path));
            json_object_set_new(st, "build", json_integer(w->build_id));
            json_object_set_new(st, "stepnr", json_integer(w->stepnr));
            json_object_set_new(st, "phase",
                                json_string(db_busy_name(w->phase ? w->phase : DB_BUSY_PREPARING)));
            json_object_set_new(st, "busy", json_integer(w->phase));
            json_object_set_new(st, "elapsed",
                                json_integer(w->start_time ? now - w->start_time : 0));
            json_array_append_new(steps, st);
        }
        json_object_set_new(j, "currentSteps", steps);
        json_object_set_new(ms, m->is_local && m->uri ? m->uri : m->row_name, j);
    }
    json_object_set_new(o, "machinesCount", json_integer((json_int_t)r->machines.n));
    runner__unlock(r);
    if (r->cache)
        json_object_set_new(o, "binaryCache", runner__cache_status_json(r));
    json_object_set_new(o, "machines", ms);
    return o;
}

/* 1 when the build is in memory (queued or running). */
int runner_build_active(Runner *r, int64_t id)
{
    int active;
    runner__lock(r);
    active = runner__graph_build_get(r, id) != NULL;
    runner__unlock(r);
    return active;
}
