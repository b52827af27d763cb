/*
 * reconfig.c: settings changed while the runner runs (`sluice run` on SIGHUP).  The
 * limits and defaults below are read under the runner's lock (a step takes its own copy
 * when it starts, builds theirs when they are loaded), so a reload swaps them under the
 * same lock; the local store's slots change in place; the machines file is read again
 * at the monitor thread's next look.  The rest of RunnerOptions (database, stores,
 * directories, binary cache, connection pools) is fixed for the runner's life.
 */
#include "runner/lock.h"
#include "runner/machines.h"

void runner_reconfigure(Runner *r, const RunnerOptions *o)
{
    runner__lock(r);
    r->opt.local_max_jobs = o->local_max_jobs;
    r->opt.max_silent_default = o->max_silent_default;
    r->opt.timeout_default = o->timeout_default;
    r->opt.max_log_size = o->max_log_size;
    r->opt.max_output_size = o->max_output_size;
    r->opt.build_cores = o->build_cores;
    r->opt.max_retries = o->max_retries;
    r->opt.retry_interval = o->retry_interval;
    r->opt.retry_backoff = o->retry_backoff;
    r->opt.max_unsupported_time = o->max_unsupported_time;
    r->opt.keep_outputs_days = o->keep_outputs_days;
    r->opt.machine_backoff_scale = o->machine_backoff_scale;
    if (!r->opt.machines_file)
        for (uint32_t i = 0; i < r->machines.n; i++) {
            Machine *m = r->machines.v[i];
            if (m->is_local && !m->removed)
                m->max_jobs = runner__local_max_jobs(o->local_max_jobs);
        }
    atomic_store(&r->machines_reload, 1);
    runner__graph_wake_dispatcher(r); /* more slots may take runnable steps now */
    runner__unlock(r);
}
