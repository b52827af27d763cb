/*
 * exec.c: running one step on one machine (a worker thread per running step).
 *
 *   prepare   re-read the drv, find the output path of every input, force-resolve it
 *             into the BasicDerivation the builder gets (no .drv is ever sent)
 *   row       build_started for each build whose top-level step it is (as Hydra),
 *             the busy BuildSteps row (busy 1), step_started
 *   10        open a protocol session on the machine (its temp roots cover the step)
 *   20        remote: copy the closure of the inputs to the builder
 *   30        temp roots for floating outputs' scratch paths, then BuildDerivation,
 *             the log streamed into LOG_DIR
 *   40        remote: NAR sizes checked, outputs copied back into the local store
 *   50        realisations (CA)
 *   record    one transaction (finish.c, record.c): the row, BuildStepOutputs, the
 *             finished builds; or the upload pool first, with a binary cache
 *
 * Failures are mapped as Hydra's C++ runner did (results.c): transient ones are retried
 * with exponential backoff, permanent ones fail every dependent build.  A machine that
 * cannot be reached or refuses us is disabled with backoff and the step tried again
 * elsewhere.  A running step no unfinished build needs any more (its builds cancelled,
 * or failed at ingest) is aborted (runner__workers_cancel_unneeded).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/ca.h"
#include "runner/record.h"
#include "runner/exec.h"
#include "runner/finish.h"
#include "runner/graph.h"
#include "runner/hooks.h"
#include "runner/inputs.h"
#include "runner/lock.h"
#include "runner/logs.h"
#include "runner/machines.h"
#include "runner/phases.h"
#include "runner/publish.h"
#include "runner/rdb.h"
#include "runner/results.h"
#include "runner/services.h"

/* ---------------------------------------------------------------- row */

static void set_phase(Worker *w, Db *db, int phase)
{
    Err e = {0};
    uint64_t now = util_now_ms();
    runner__lock(w->r); /* progress and the machines snapshot read it */
    /* Hydra's overhead: the time spent sending inputs and receiving outputs */
    if ((w->phase == DB_BUSY_SENDING_INPUTS || w->phase == DB_BUSY_RECEIVING_OUTPUTS) &&
        w->phase_ms)
        w->overhead_ms += (int64_t)(now - w->phase_ms);
    w->phase_ms = now;
    w->phase = phase;
    runner__unlock(w->r);
    if (runner__rdb_set_busy(db, w->build_id, w->stepnr, phase, &e) < 0)
        log_warn("step %s: cannot record phase %d: %s", w->drv_path, phase, e.msg);
}

/* ---------------------------------------------------------------- log */

typedef struct LogCtx {
    Worker *w;
    RunnerLog *log;
    int limit_hit;
    int write_failed;
} LogCtx;

static void on_log(void *payload, StoreLogKind kind, const char *text, size_t len)
{
    LogCtx *l = payload;
    Err e = {0};
    int rc;
    if (kind == STORE_LOG_ACTIVITY || !l->log || l->limit_hit)
        return;
    rc = runner__log_write(l->log, text, len, &e);
    if (rc == 1) {
        l->limit_hit = 1;
        pthread_mutex_lock(&l->w->conn_lock);
        if (l->w->conn)
            store_conn_abort(l->w->conn);
        pthread_mutex_unlock(&l->w->conn_lock);
    } else if (rc < 0 && !l->write_failed) {
        l->write_failed = 1;
        log_warn("%s", e.msg);
    }
}

/* ---------------------------------------------------------------- execution */

static int is_untrusted_error(const char *msg)
{
    return msg && (strstr(msg, "not privileged") || strstr(msg, "lacks a valid signature") ||
                   strstr(msg, "not trusted"));
}

/* Run the build on the machine; fills o.  Returns < 0 only for our own bugs. */
/* Nix 2.8 writes a floating output at a scratch path and renames it later, rooting
 * neither: without a root a GC on the builder can take it mid-build (the build then
 * fails "to produce output path") or while Nix rewrites it.  A temp root on the step's
 * session, by hash part, covers the scratch path and its ".tmp" rewrite. */
static int root_scratch_outputs(StoreConn *conn, const char *drv_path, const NixDrv *basic, Err *e)
{
    StrVec scratch;
    int rc = 0;
    strvec_init(&scratch);
    for (size_t i = 0; i < basic->n_outputs && rc >= 0; i++) {
        char *p;
        if (basic->outputs[i].path[0])
            continue; /* a known path: Nix roots it itself */
        p = nix_scratch_path(drv_path, basic->outputs[i].name);
        if (!p)
            rc = err_set(e, ERR_INVALID, "%s is not a derivation path", drv_path);
        else
            strvec_push_take(&scratch, p);
    }
    if (rc >= 0)
        rc = store_add_temp_roots(conn, (const char *const *)scratch.v, scratch.n, e);
    strvec_dispose(&scratch);
    return rc;
}

/* CollectGarbage of the paths alone on m, over a query session: fails (the daemon's
 * message) when one is alive, or on ssh:// (not in the serve protocol). */
static int delete_on(StoreMachine *m, const char *const *paths, size_t n, Err *e)
{
    StoreConn *c = NULL;
    int rc = store_machine_query_get(m, &c, e);
    if (rc < 0)
        return rc;
    rc = store_delete_paths(c, paths, n, e);
    if (rc < 0 && e->code != ERR_PEER && e->code != ERR_UNSUPPORTED)
        store_close(c); /* broken connection */
    else
        store_machine_query_put(m, c);
    return rc;
}

/* Outputs over max-output-size built on the local store leave it, so the next build of
 * the derivation does not take them as built (a remote builder's never came back).  The
 * daemon that built them may still hold their temp roots for a moment after its
 * session closed: a few tries. */
static void delete_outputs(Runner *r, Worker *w, const StrVec *paths)
{
    Err e = {0};
    int rc = -1;
    for (int i = 0; i < 20 && rc < 0; i++) {
        if (i > 0)
            usleep(100 * 1000);
        err_clear(&e);
        rc = delete_on(r->local_store, (const char *const *)paths->v, paths->n, &e);
    }
    if (rc < 0)
        log_warn("step %s: cannot delete the outputs over the size limit: %s", w->drv_path, e.msg);
}

/* One step's run on its machine: what the phases below share. */
typedef struct StepRun {
    Worker *w;
    Db *db;
    const NixDrv *basic;
    int two_phase;
    Outcome *o;
    StoreConn *conn;  /* the session on the step's machine */
    StoreConn *local; /* remote machines: a session on the local store */
    StoreBuildResult *res;
    StorePathInfo **out_infos; /* the outputs' infos on the builder, by o->out_paths */
    LogCtx lc;
    int drop_outputs; /* outputs built into the local store that must go */
} StepRun;

/* The step ends with this outcome: -1 (the phases stop). */
static int end_with(Outcome *o, int status, int can_retry, Blame blame, const char *msg)
{
    o->status = status;
    o->can_retry = can_retry;
    o->blame = blame;
    runner__outcome_set_msg(o, msg);
    return -1;
}

/* Stopping or cancelled: the outcome says so (-1), else 0. */
static int stopped(StepRun *sr)
{
    if (atomic_load(&sr->w->r->stopping)) {
        sr->o->interrupted = 1;
        return end_with(sr->o, DB_STATUS_ABORTED, 1, BLAME_STEP, RDB_INTERRUPTED_MSG);
    }
    if (atomic_load(&sr->w->cancel))
        return end_with(sr->o, DB_STATUS_CANCELLED, 0, BLAME_STEP,
                        "cancelled: no build needs this step any more");
    return 0;
}

/* 10: a session on the machine (its temp roots cover the step). */
static int open_session(StepRun *sr)
{
    Worker *w = sr->w;
    Err e = {0};
    runner__phase_enter(w, RUNNER_PHASE_OPEN);
    set_phase(w, sr->db, DB_BUSY_CONNECTING);
    if (store_machine_session(w->machine->store, &sr->conn, &e) < 0)
        return end_with(sr->o, DB_STATUS_ABORTED, 1, BLAME_MACHINE, e.msg);
    pthread_mutex_lock(&w->conn_lock);
    w->conn = sr->conn;
    pthread_mutex_unlock(&w->conn_lock);
    return stopped(sr);
}

/* 20: remote machines get the closure of the inputs (builders-use-substitutes: from
 * their own substituters first). */
static int copy_inputs(StepRun *sr)
{
    Worker *w = sr->w;
    Runner *r = w->r;
    StoreCopyStats cs = {0};
    Err e = {0};
    int rc;
    if (w->machine->is_local)
        return 0;
    runner__phase_enter(w, RUNNER_PHASE_INPUTS);
    set_phase(w, sr->db, DB_BUSY_SENDING_INPUTS);
    if (store_machine_session(r->local_store, &sr->local, &e) < 0)
        return end_with(sr->o, DB_STATUS_ABORTED, 1, BLAME_STEP, e.msg);
    runner__crash_point(r, "during-input-copy");
    rc = store_copy_closure_subst(sr->local, sr->conn, (const char *const *)sr->basic->srcs,
                                  sr->basic->n_srcs, r->opt.builders_use_substitutes, &cs, &e);
    atomic_fetch_add(&r->stats.bytes_copied_to, cs.copied_bytes);
    atomic_fetch_add(&w->machine->bytes_copied_to, cs.copied_bytes);
    if (rc < 0) {
        int cancel = atomic_load(&w->cancel);
        Blame blame = is_untrusted_error(e.msg) ? BLAME_UNTRUSTED
                      : cancel                  ? BLAME_STEP
                                                : BLAME_MACHINE;
        return end_with(sr->o, cancel ? DB_STATUS_CANCELLED : DB_STATUS_ABORTED, 1, blame, e.msg);
    }
    return 0;
}

/* The options of BuildDerivation: the builds' limits, the log limit, the cores, and
 * the rounds (Hydra's runner: isDetermistic = "1" (sic) is built twice and fails when
 * the rounds differ; a jobset's repeats only mark the step). */
static StoreBuildOptions build_options(const Worker *w, const NixDrv *basic)
{
    StoreBuildOptions bo = {0};
    const char *det = nix_drv_env(basic, "isDetermistic");
    bo.max_silent_time = (uint64_t)(w->max_silent > 0 ? w->max_silent : 0);
    bo.build_timeout = (uint64_t)(w->timeout > 0 ? w->timeout : 0);
    bo.max_log_size = w->max_log_size;
    bo.build_cores = (uint64_t)w->build_cores;
    bo.enforce_determinism = det && strcmp(det, "1") == 0;
    bo.repeat = w->repeats ? w->repeats : (uint64_t)bo.enforce_determinism;
    return bo;
}

/* Why BuildDerivation itself failed: stopping, cancelled, the machine, or the step (a
 * reply that made no sense for this step is retried as the step's failure, counted,
 * never held against the machine, whose connection worked). */
static int build_failed(StepRun *sr, const Err *e)
{
    Blame blame;
    if (stopped(sr) < 0)
        return -1;
    blame = is_untrusted_error(e->msg) ? BLAME_UNTRUSTED : BLAME_MACHINE;
    if (e->code == ERR_MALFORMED || e->code == ERR_TOOBIG)
        blame = BLAME_STEP;
    return end_with(sr->o, DB_STATUS_ABORTED, 1, blame, e->msg);
}

/* 30: roots for the scratch outputs, then BuildDerivation; Nix's result mapped. */
static int build(StepRun *sr)
{
    Worker *w = sr->w;
    Runner *r = w->r;
    Outcome *o = sr->o;
    StoreBuildOptions bo;
    Err e = {0};
    uint64_t tb;
    int rc;
    runner__phase_enter(w, RUNNER_PHASE_ROOTS);
    if (root_scratch_outputs(sr->conn, w->drv_path, sr->basic, &e) < 0) /* a bad path is not */
        return end_with(o, DB_STATUS_ABORTED, 1, e.code != ERR_INVALID ? BLAME_MACHINE : BLAME_STEP,
                        e.msg);
    set_phase(w, sr->db, DB_BUSY_BUILDING);
    bo = build_options(w, sr->basic);
    o->start = util_time_now();
    tb = util_now_ms();
    runner__phase_enter(w, RUNNER_PHASE_BUILD);
    rc = store_build_derivation(sr->conn, w->drv_path, sr->basic, &bo, on_log, &sr->lc, &sr->res,
                                &e);
    runner__phase_enter(w, RUNNER_PHASE_OUTPUTS);
    log_debug("step %s: BuildDerivation took %llu ms", w->drv_path,
              (unsigned long long)(util_now_ms() - tb));
    o->stop = util_time_now();
    if (sr->lc.limit_hit)
        return end_with(o, DB_STATUS_LOG_LIMIT, 0, BLAME_STEP, "log limit exceeded");
    if (rc < 0)
        return build_failed(sr, &e);
    runner__crash_point(r, "after-build");
    if (!w->machine->is_local && sr->res->status <= STORE_BUILD_ALREADY_VALID) {
        /* the builder is done with it: the machine's next step may start while the
         * outputs are checked and copied back (this step's session keeps them rooted) */
        runner__lock(r);
        runner__worker_release_slot(r, w);
        runner__unlock(r);
    }
    w->times_built = sr->res->times_built;
    w->non_det = sr->res->is_non_deterministic;
    runner__map_result(sr->res->status, &o->status, &o->can_retry, &o->can_cache);
    if (o->status == DB_STATUS_SUCCESS)
        return 0;
    runner__outcome_set_msg(o, sr->res->error_msg && sr->res->error_msg[0]
                                   ? sr->res->error_msg
                                   : store_build_status_name(sr->res->status));
    if (is_untrusted_error(sr->res->error_msg)) {
        o->status = DB_STATUS_ABORTED;
        o->can_retry = 1;
        o->can_cache = 0;
        o->blame = BLAME_UNTRUSTED;
    }
    return -1;
}

/* The outputs: static paths, or what the builder reports for floating ones. */
static int take_outputs(StepRun *sr)
{
    const NixDrv *basic = sr->basic;
    Outcome *o = sr->o;
    for (size_t i = 0; i < basic->n_outputs; i++) {
        const char *name = basic->outputs[i].name, *path = basic->outputs[i].path;
        const char *built = NULL;
        for (size_t j = 0; j < sr->res->n_outputs; j++)
            if (strcmp(sr->res->outputs[j].output, name) == 0)
                built = sr->res->outputs[j].out_path;
        if (path[0] && built && strcmp(path, built) != 0) {
            end_with(o, DB_STATUS_FAILED, 0, BLAME_STEP, "");
            free(o->msg);
            o->msg = xasprintf("output '%s' is '%s', expected '%s'", name, built, path);
            return -1;
        }
        if (!path[0] && !built) {
            end_with(o, DB_STATUS_ABORTED, 1, BLAME_STEP, "");
            free(o->msg);
            o->msg = xasprintf("the builder did not report output '%s'", name);
            return -1;
        }
        strvec_push(&o->out_names, name);
        strvec_push(&o->out_paths, path[0] ? path : built);
    }
    return 0;
}

/* The outputs get a temp root on the step's session at once (Nix 2.8 roots a floating
 * CA output nowhere once its build is done, and a GC on the builder must not take it
 * before it is copied back), in the same round trip as their infos, kept for the copy
 * back; then the NAR size limit, checked on the builder before anything is copied. */
static int check_outputs(StepRun *sr)
{
    Worker *w = sr->w;
    Outcome *o = sr->o;
    uint64_t total = 0;
    const char *gone = NULL;
    Err e = {0};
    int rc;
    sr->out_infos = xcalloc(o->out_paths.n ? o->out_paths.n : 1, sizeof *sr->out_infos);
    rc = store_root_path_infos(sr->conn, (const char *const *)o->out_paths.v, o->out_paths.n,
                               sr->out_infos, &e);
    for (size_t i = 0; rc >= 0 && i < o->out_paths.n; i++) {
        if (sr->out_infos[i])
            total += sr->out_infos[i]->nar_size;
        else if (!gone)
            gone = o->out_paths.v[i];
    }
    if (rc < 0)
        return end_with(o, DB_STATUS_ABORTED, 1, BLAME_STEP, e.msg);
    if (gone) {
        /* collected on the builder before its root was in: build it again at once,
         * blaming neither the step nor the machine */
        end_with(o, DB_STATUS_ABORTED, 1, BLAME_NOBODY, "");
        free(o->msg);
        o->msg = xasprintf("output %s vanished on the builder before it was copied back", gone);
        return -1;
    }
    if (w->max_output_size && total > w->max_output_size) {
        end_with(o, DB_STATUS_NAR_SIZE_LIMIT, 0, BLAME_STEP, "");
        sr->drop_outputs = w->machine->is_local; /* built into the local store itself */
        free(o->msg);
        o->msg = xasprintf("output size %" PRIu64 " exceeds the limit of %" PRIu64 " bytes", total,
                           w->max_output_size);
        return -1;
    }
    return 0;
}

/* What the builder has of the outputs after a failed copy back, asked over a session of
 * its own (the step's may be broken): 1 all of them, 0 not *gone, -1 it cannot be asked. */
static int outputs_on_builder(StepRun *sr, const char **gone)
{
    StoreMachine *m = sr->w->machine->store;
    StoreConn *q = NULL;
    StorePathInfo **infos;
    size_t n = sr->o->out_paths.n;
    Err e = {0};
    int rc;
    *gone = NULL;
    if (store_machine_query_get(m, &q, &e) < 0)
        return -1;
    infos = xcalloc(n ? n : 1, sizeof *infos);
    rc = store_query_path_infos(q, (const char *const *)sr->o->out_paths.v, n, infos, &e);
    for (size_t i = 0; rc == 0 && i < n && !*gone; i++)
        if (!infos[i])
            *gone = sr->o->out_paths.v[i];
    for (size_t i = 0; i < n; i++)
        store_path_info_free(infos[i]);
    free(infos);
    store_machine_query_put(m, q);
    return rc < 0 ? -1 : *gone ? 0 : 1;
}

/* An output the builder has registered but cannot give: a GC of Nix 2.8 that deletes a
 * CA path while a new build of it takes it as valid leaves it registered with no files,
 * and every later build of it there is "already valid"; its GC never takes it (the GC
 * walks the store's directory, where it is not).  The worker protocol deletes it on the
 * builder (CollectGarbage, the path alone), and the step runs again at once, blaming
 * nobody; a builder that cannot delete it (ssh://, or the path is alive) is disabled for
 * a while instead, and the message says what drops the path there. */
static int output_unreadable(StepRun *sr, const char *path, const char *why)
{
    Err e = {0};
    int rc = delete_on(sr->w->machine->store, &path, 1, &e);
    log_warn("step %s: output %s is registered on %s but could not be read there: %s%s%s",
             sr->w->drv_path, path, sr->w->machine->uri, why, rc < 0 ? "; not deleted: " : "",
             rc < 0 ? e.msg : "");
    end_with(sr->o, DB_STATUS_ABORTED, 1, rc == 0 ? BLAME_NOBODY : BLAME_MACHINE, "");
    free(sr->o->msg);
    sr->o->msg = rc == 0 ? xasprintf("output %s registered on the builder could not be read "
                                     "there (deleted there, built again): %s",
                                     path, why)
                         : xasprintf("output %s registered on the builder could not be read "
                                     "there and was not deleted (%s; `nix-store --verify` there "
                                     "drops it): %s",
                                     path, e.msg, why);
    return -1;
}

/* 40: remote machines: the outputs copied back into the local store.  An output the
 * builder lost meanwhile, rooted as it was (a GC of Nix 2.8 takes a path it is already
 * deleting when the root comes, and the path then vanishes under the copy), is built
 * again at once, as one collected before its root; one it still has registered but
 * cannot read goes to output_unreadable. */
static int copy_back(StepRun *sr)
{
    Worker *w = sr->w;
    StoreCopyStats cs;
    const char *gone;
    Err e = {0};
    int rc;
    if (w->machine->is_local)
        return 0;
    memset(&cs, 0, sizeof cs);
    runner__phase_enter(w, RUNNER_PHASE_COPY_BACK);
    set_phase(w, sr->db, DB_BUSY_RECEIVING_OUTPUTS);
    runner__pause_point(w->r, "before-copy-back", sr->o->out_paths.n ? sr->o->out_paths.v[0] : "");
    rc = store_copy_closure_known(sr->conn, sr->local, (const StorePathInfo *const *)sr->out_infos,
                                  sr->o->out_paths.n, &cs, &e);
    atomic_fetch_add(&w->r->stats.bytes_copied_from, cs.copied_bytes);
    if (rc == 0)
        return 0;
    if (atomic_load(&w->cancel))
        return end_with(sr->o, DB_STATUS_ABORTED, 1, BLAME_STEP, e.msg);
    rc = outputs_on_builder(sr, &gone);
    if (rc == 0) {
        log_warn("step %s: copying back failed: %s", w->drv_path, e.msg);
        end_with(sr->o, DB_STATUS_ABORTED, 1, BLAME_NOBODY, "");
        free(sr->o->msg);
        sr->o->msg = xasprintf("output %s vanished on the builder before it was copied back", gone);
        return -1;
    }
    if (rc == 1 && cs.from_failed[0] && strvec_contains(&sr->o->out_paths, cs.from_failed))
        return output_unreadable(sr, cs.from_failed, e.msg);
    return end_with(sr->o, DB_STATUS_ABORTED, 1, BLAME_STEP, e.msg);
}

/* 50: realisations of CA outputs in the local store (output facts are collected when
 * builds are finished). */
static int register_outputs(StepRun *sr)
{
    Worker *w = sr->w;
    StoreConn *lq = sr->local ? sr->local : sr->conn; /* local machine: the same store */
    runner__phase_enter(w, RUNNER_PHASE_REGISTER);
    set_phase(w, sr->db, DB_BUSY_POST_PROCESSING);
    if (sr->two_phase || w->is_resolved)
        runner__register_realisations(w->r, lq, w, sr->basic, sr->res, sr->o->out_names.v,
                                      sr->o->out_paths.v, sr->o->out_names.n);
    return 0;
}

/* The rest of an ssh:// step's log (stderr, apart from the replies): a built step's is
 * synced over the session, which can then serve another step (1); else stderr is read
 * to its end, which ends the session (0). */
static int take_log_tail(StepRun *sr)
{
    Err e = {0};
    if (!sr->conn || sr->w->machine->is_local || !sr->lc.log)
        return 1;
    if (sr->o->status == DB_STATUS_SUCCESS && !sr->drop_outputs &&
        store_conn_sync_log(sr->conn, on_log, &sr->lc, &e) == 0)
        return 1;
    if (e.msg[0])
        log_debug("step %s: the log's end not synced: %s", sr->w->drv_path, e.msg);
    store_conn_drain_log(sr->conn, on_log, &sr->lc, 5000);
    return 0;
}

/* The sessions go back (or are closed when temp roots must not outlive them; a built
 * step's session is passed on to the machine's next step while the machine is busy),
 * the log ends with the reason of a failure. */
static void close_run(StepRun *sr)
{
    Worker *w = sr->w;
    Outcome *o = sr->o;
    int reusable;
    pthread_mutex_lock(&w->conn_lock);
    w->conn = NULL;
    pthread_mutex_unlock(&w->conn_lock);
    reusable = take_log_tail(sr);
    if (sr->conn) {
        if ((o->status != DB_STATUS_SUCCESS && o->blame != BLAME_STEP) || sr->drop_outputs)
            store_close(sr->conn);
        else if (reusable && o->status == DB_STATUS_SUCCESS &&
                 runner__machine_has_work(w->r, w->machine))
            store_machine_pass_on(w->machine->store, sr->conn);
        else
            store_machine_release(w->machine->store, sr->conn);
    }
    if (sr->local)
        store_machine_release(w->r->local_store, sr->local);
    if (sr->drop_outputs)
        delete_outputs(w->r, w, &o->out_paths);
    if (sr->lc.log) {
        Err le = {0};
        if (o->msg && o->status != DB_STATUS_SUCCESS && o->status != DB_STATUS_CANCELLED) {
            char *line = xasprintf("\nsluice: %s\n", o->msg);
            runner__log_write(sr->lc.log, line, strlen(line), &le);
            free(line);
        }
        runner__log_close(sr->lc.log, &le);
    }
    store_build_result_free(sr->res);
    for (size_t i = 0; sr->out_infos && i < o->out_paths.n; i++)
        store_path_info_free(sr->out_infos[i]);
    free(sr->out_infos);
}

static void run_step(Worker *w, Db *db, const NixDrv *basic, int two_phase, Outcome *o)
{
    static int (*const phases[])(StepRun *) = {
        open_session, copy_inputs, build, take_outputs, check_outputs, copy_back, register_outputs};
    StepRun sr = {.w = w, .db = db, .basic = basic, .two_phase = two_phase, .o = o};
    Err e = {0};
    sr.lc.w = w;
    if (runner__log_open(w->r->opt.log_dir, w->drv_path, w->max_log_size, &sr.lc.log, &e) < 0)
        log_warn("%s", e.msg);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(phases); i++)
        if (phases[i](&sr) < 0)
            break;
    close_run(&sr);
}

/* ---------------------------------------------------------------- worker */

/* Record the step's outcome (its machine slot is given back then, unless it was
 * already). */
static void record(Runner *r, Db *db, Worker *w, Outcome *o)
{
    if (o->interrupted)
        o->blame = BLAME_NOBODY; /* retry without counting */
    runner__phase_enter(w, RUNNER_PHASE_RECORD);
    runner__step_finished(r, db, w, o);
    runner__phase_report(r, w);
}

/* A built step on its way to the binary cache (the upload pool's job). */
typedef struct Upload {
    Worker *w;
    NixDrv *drv;
    int two_phase;
    Outcome o;
} Upload;

static void upload_run(void *arg, int interrupted)
{
    Upload *u = arg;
    Runner *r = u->w->r;
    Db *db = NULL;
    Err e = {0};

    if (interrupted) {
        u->o.status = DB_STATUS_ABORTED;
        u->o.can_retry = 1;
        u->o.interrupted = 1;
        runner__outcome_set_msg(&u->o, RDB_INTERRUPTED_MSG);
    } else {
        runner__cache_publish_step(r, u->w, u->drv, u->two_phase, &u->o.out_paths, &u->o.status,
                                   &u->o.can_retry, &u->o.msg);
    }
    /* the step's result needs a connection: waited for while the database is away */
    while (runner__db_get(r, &db, &e) < 0) {
        if (atomic_load(&r->stopping)) {
            log_error("step %s: cannot record the result: %s", u->w->drv_path, e.msg);
            break;
        }
        err_clear(&e);
        sleep(1);
    }
    if (db) {
        record(r, db, u->w, &u->o);
        runner__db_put(r, db);
        runner__worker_free(u->w);
    }
    nix_drv_free(u->drv);
    runner__outcome_dispose(&u->o);
    free(u);
}

/* Hand a built step over to the upload pool (it takes w, drv and o). */
static void upload_submit(Runner *r, Worker *w, NixDrv *drv, int two_phase, Outcome *o)
{
    Upload *u = xcalloc(1, sizeof *u);
    runner__phase_enter(w, RUNNER_PHASE_PUBLISH); /* the wait in the queue included */
    u->w = w;
    u->drv = drv;
    u->two_phase = two_phase;
    u->o = *o;
    memset(o, 0, sizeof *o);
    runner__cache_pending_add(r, w, two_phase, &u->o.out_paths);
    runner__upload_submit(r, w, upload_run, u);
}

/* What a step needs before it starts: its drv, and the BasicDerivation the builder
 * gets (every input replaced by its output path; no .drv is ever sent). */
typedef struct Prepared {
    NixDrv *drv;
    NixDrv *basic;
    int two_phase; /* floating CA or deferred */
    NixInputPath *inputs;
    size_t n_inputs;
} Prepared;

static void prepared_dispose(Prepared *p)
{
    nix_drv_free(p->drv);
    nix_drv_free(p->basic);
    runner__inputs_free(p->inputs, p->n_inputs);
}

/* Read the drv, find every input's output path (an input whose output is gone makes
 * the outcome a requeue), resolve.  0, or -1 with the outcome set. */
static int prepare(Worker *w, Db *db, Prepared *p, Outcome *o)
{
    Runner *r = w->r;
    StoreConn *local = NULL;
    char *missing = NULL, *missing_out = NULL;
    NixDrvKind kind;
    Err e = {0};
    int rc;
    if (nix_drv_read(w->drv_path, &p->drv, &e) < 0)
        return end_with(o, DB_STATUS_ABORTED, 0, BLAME_STEP, e.msg);
    if (nix_drv_kind(p->drv, &kind, &e) == 0)
        p->two_phase = kind == NIX_DRV_FLOATING || kind == NIX_DRV_DEFERRED;
    err_clear(&e);
    if (store_machine_query_get(r->local_store, &local, &e) < 0)
        return end_with(o, DB_STATUS_ABORTED, 1, BLAME_STEP, e.msg);
    rc = runner__collect_inputs(r, db, local, p->drv, &p->inputs, &p->n_inputs, &missing,
                                &missing_out, &e);
    store_machine_query_put(r->local_store, local);
    free(missing_out);
    if (rc < 0)
        return end_with(o, DB_STATUS_ABORTED, 1, BLAME_STEP, e.msg);
    if (missing) {
        o->requeue_drv = missing;
        return -1;
    }
    pthread_mutex_lock(&r->hash_lock);
    rc = nix_drv_resolve_force(r->hash_cache, p->drv, p->inputs, p->n_inputs, &p->basic, &e);
    pthread_mutex_unlock(&r->hash_lock);
    return rc < 0 ? end_with(o, DB_STATUS_ABORTED, 0, BLAME_STEP, e.msg) : 0;
}

/* The builds whose top-level step this is (build_started for each), and the most extra
 * rounds any dependent build's jobset asks for (Hydra's runner).  Lock held. */
static void dependents(Worker *w, RecordStart *st)
{
    Runner *r = w->r;
    PtrVec deps = {0};
    RUNNER_ASSERT_LOCKED(r);
    runner__graph_dependent_builds(r, w->step, &deps);
    st->tops = xcalloc(deps.n + 1, sizeof *st->tops);
    for (uint32_t i = 0; i < deps.n; i++) {
        Build *b = deps.v[i];
        Jobset *js;
        char k[32];
        if (b->toplevel == w->step)
            st->tops[st->n_tops++] = b->id;
        snprintf(k, sizeof k, "%" PRId64, b->jobset_id);
        js = map_get(r->g.jobsets, k);
        if (js && js->repeats > w->repeats)
            w->repeats = js->repeats;
    }
    ptrvec_dispose(&deps);
}

/* The step's busy row (and its start in the worker, under the lock: progress and the
 * machines snapshot read it).  0, or -1 with the outcome set. */
static int start_row(Worker *w, Db *db, const NixDrv *drv, Outcome *o)
{
    Runner *r = w->r;
    RecordStart st = {0};
    StrVec names, paths;
    Err e = {0};
    int rc;
    strvec_init(&names);
    strvec_init(&paths);
    for (size_t i = 0; i < drv->n_outputs; i++) {
        strvec_push(&names, drv->outputs[i].name);
        if (drv->outputs[i].path[0])
            strvec_push(&paths, drv->outputs[i].path);
        else
            strvec_push_take(&paths, NULL);
    }
    /* statically known outputs: the FailedPaths entries of a cacheable failure */
    w->static_paths = xcalloc(drv->n_outputs + 1, sizeof *w->static_paths);
    w->n_static = 0;
    for (size_t i = 0; i < drv->n_outputs; i++)
        if (drv->outputs[i].path[0])
            w->static_paths[w->n_static++] = xstrdup(drv->outputs[i].path);
    st.w = w;
    st.system = drv->platform;
    st.out_names = names.v;
    st.out_paths = paths.v;
    st.n = names.n;
    runner__lock(r);
    dependents(w, &st);
    runner__unlock(r);
    rc = runner__record_step_start(db, &st, &e);
    free(st.tops);
    for (size_t i = 0; i < paths.n; i++)
        free(paths.v[i]);
    free(paths.v);
    strvec_dispose(&names);
    if (rc < 0)
        return end_with(o, DB_STATUS_ABORTED, 1, BLAME_STEP, e.msg);
    if (st.cancelled)
        return end_with(o, DB_STATUS_CANCELLED, 0, BLAME_STEP, "cancelled");
    runner__lock(r);
    w->max_log_size = r->opt.max_log_size;
    w->max_output_size = r->opt.max_output_size;
    w->build_cores = r->opt.build_cores;
    w->stepnr = st.stepnr;
    w->start_time = util_time_now();
    w->start_ms = util_now_ms();
    runner_histo_observe(&r->stats.queue_wait,
                         w->step->runnable_ms && (uint64_t)w->start_ms > w->step->runnable_ms
                             ? (uint64_t)w->start_ms - w->step->runnable_ms
                             : 0);
    runner__unlock(r);
    return 0;
}

static void *worker_main(void *arg)
{
    Worker *w = arg;
    Runner *r = w->r;
    Db *db = NULL;
    Prepared p = {0};
    Outcome o = {0};
    Err e = {0};
    uint64_t t_begin = util_now_ms();

    runner__phase_start(w);
    strvec_init(&o.out_names);
    strvec_init(&o.out_paths);
    o.status = -1;
    if (runner__db_get(r, &db, &e) < 0) {
        end_with(&o, DB_STATUS_ABORTED, 1, BLAME_STEP, e.msg);
        goto finish;
    }
    if (prepare(w, db, &p, &o) < 0 || start_row(w, db, p.drv, &o) < 0)
        goto finish;
    log_debug("step %s: prepared and recorded in %llu ms", w->drv_path,
              (unsigned long long)(util_now_ms() - t_begin));
    atomic_fetch_add(&r->stats.steps_started, 1);
    log_info("build %" PRId64 " step %d: %.*s started on %s", w->build_id, w->stepnr,
             (int)strlen(nix_store_path_name(w->drv_path)) - 4, nix_store_path_name(w->drv_path),
             w->machine->row_name[0] ? w->machine->row_name : "localhost");
    run_step(w, db, p.basic, p.two_phase, &o);
    log_debug("step %s: ran in %llu ms since start", w->drv_path,
              (unsigned long long)(util_now_ms() - t_begin));
    if (o.status == DB_STATUS_SUCCESS && r->cache) {
        /* published and recorded by the upload pool; the machine slot is free now */
        runner__db_put(r, db);
        db = NULL;
        upload_submit(r, w, p.drv, p.two_phase, &o);
        p.drv = NULL;
        w = NULL;
        goto out;
    }
finish:
    record(r, db, w, &o);
out:
    prepared_dispose(&p);
    runner__outcome_dispose(&o);
    if (db)
        runner__db_put(r, db);
    runner__worker_free(w);
    runner__thread_exit(r);
    return NULL;
}

int runner__worker_start(Runner *r, Worker *w, Err *e)
{
    int rc = runner__thread_start(r, worker_main, w);
    if (rc != 0) {
        errno = rc;
        return err_sys(e, ERR_IO, "cannot start a worker thread");
    }
    return 0;
}

void runner__worker_free(Worker *w)
{
    if (!w)
        return;
    free(w->drv_path);
    free(w->system);
    strvec_dispose(&w->resolved_from);
    for (size_t i = 0; i < w->n_static; i++)
        free(w->static_paths[i]);
    free(w->static_paths);
    pthread_mutex_destroy(&w->conn_lock);
    free(w);
}

void runner__workers_cancel_unneeded(Runner *r)
{
    RUNNER_ASSERT_LOCKED(r);
    for (uint32_t i = 0; i < r->workers.n; i++) {
        Worker *w = r->workers.v[i];
        PtrVec deps = {0};
        if (!w->step)
            continue;
        runner__graph_dependent_builds(r, w->step, &deps);
        if (deps.n == 0) {
            atomic_store(&w->cancel, 1);
            pthread_mutex_lock(&w->conn_lock);
            if (w->conn)
                store_conn_abort(w->conn);
            pthread_mutex_unlock(&w->conn_lock);
            log_info("cancelling %s: no build needs it any more", w->drv_path);
        }
        ptrvec_dispose(&deps);
    }
}
