/*
 * phases.c: the phase clock of a step.  A worker marks each phase as it enters it
 * (runner__phase_enter); the time between two marks is charged to the phase left.  At
 * the end the step's times go to the runner's phase histograms (metrics) and to one -v
 * log line, which bench/farm.sh reads for its phase table.  Also the duration
 * histograms' bounds and how a duration is counted in one.
 */
#include <inttypes.h>
#include <string.h>

#include "runner/phases.h"

static const char *const phase_names[RUNNER_PHASE_N] = {
    "prepare", "open",      "inputs",   "roots",   "build",
    "outputs", "copy-back", "register", "publish", "record"};

const char *runner_phase_name(int phase)
{
    return phase >= 0 && phase < RUNNER_PHASE_N ? phase_names[phase] : "?";
}

void runner__phase_start(Worker *w)
{
    memset(w->ph_ms, 0, sizeof w->ph_ms);
    memset(w->ph_seen, 0, sizeof w->ph_seen);
    w->ph = RUNNER_PHASE_PREPARE;
    w->ph_seen[w->ph] = 1;
    w->ph_at = util_now_ms();
}

void runner__phase_enter(Worker *w, int phase)
{
    uint64_t now = util_now_ms();
    if (phase < 0 || phase >= RUNNER_PHASE_N)
        return;
    w->ph_ms[w->ph] += (uint32_t)(now - w->ph_at);
    w->ph = phase;
    w->ph_seen[phase] = 1;
    w->ph_at = now;
}

void runner__phase_report(Runner *r, Worker *w)
{
    char line[512];
    size_t used = 0;
    runner__phase_enter(w, w->ph); /* charge the phase in progress */
    for (int i = 0; i < RUNNER_PHASE_N; i++) {
        int n;
        if (!w->ph_seen[i])
            continue;
        if (w->ph_seen[RUNNER_PHASE_OPEN]) /* steps that started only */
            runner_histo_observe(&r->stats.phase[i], w->ph_ms[i]);
        n = snprintf(line + used, sizeof line - used, "%s%s %" PRIu32 " ms", used ? ", " : "",
                     phase_names[i], w->ph_ms[i]);
        if (n > 0 && (size_t)n < sizeof line - used)
            used += (size_t)n;
    }
    log_debug("step %s: phases: %s", w->drv_path, used ? line : "none");
}

/* Bounds of the duration histograms, for a build farm: milliseconds of a step's
 * protocol phases, sub-second waits of an idle farm and trivial steps, minutes of
 * ordinary builds, hours of big ones and of a backlog, up to a day. */
const uint64_t runner_histo_bounds_ms[RUNNER_HISTO_BOUNDS] = {
    5,     10,     25,     50,     100,     500,     1000,    5000,     15000,    30000,
    60000, 120000, 300000, 600000, 1800000, 3600000, 7200000, 14400000, 43200000, 86400000};

void runner_histo_observe(RunnerHisto *h, uint64_t ms)
{
    size_t i = 0;
    while (i < RUNNER_HISTO_BOUNDS && ms > runner_histo_bounds_ms[i])
        i++;
    atomic_fetch_add(&h->bucket[i], 1);
    atomic_fetch_add(&h->sum_ms, ms);
}
