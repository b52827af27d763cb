/*
 * cmd_run.c: `sluice run` (the queue runner daemon) and the options it shares with
 * `sluice build`.  SIGINT and SIGTERM stop it cleanly: running steps are aborted and
 * their rows finished, so no BuildSteps row is left busy.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_run.h"
#include "http/http.h"
#include "runner/runner.h"

void cli_runner_options(CliConfig *cfg, RunnerOptions *o)
{
    const char *env;
    runner_options_defaults(o);
    o->db_url = cli_config_db_url(cfg);
    o->state_dir = cfg->state_dir;
    o->log_dir = cli_config_log_dir(cfg);
    o->machines_file = cli_config_get(cfg, "machines");
    if (cli_config_get(cfg, "store"))
        o->local_store = cli_config_get(cfg, "store");
    o->local_max_jobs = (int)cli_config_int(cfg, "max-jobs", 0);
    o->max_silent_default = (int)cli_config_int(cfg, "max-silent-time", o->max_silent_default);
    o->timeout_default = (int)cli_config_int(cfg, "timeout", o->timeout_default);
    o->max_log_size = (uint64_t)cli_config_int(cfg, "max-log-size", (int64_t)o->max_log_size);
    o->max_output_size =
        (uint64_t)cli_config_int(cfg, "max-output-size", (int64_t)o->max_output_size);
    o->max_retries = (int)cli_config_int(cfg, "max-retries", o->max_retries);
    o->retry_interval = (int)cli_config_int(cfg, "retry-interval", o->retry_interval);
    o->retry_backoff = cli_config_double(cfg, "retry-backoff", o->retry_backoff);
    o->max_unsupported_time =
        (int)cli_config_int(cfg, "max-unsupported-time", o->max_unsupported_time);
    o->keep_outputs_days = (int)cli_config_int(cfg, "keep-outputs-days", o->keep_outputs_days);
    o->gc_roots_dir = cli_config_get(cfg, "gc-roots-dir");
    o->local_daemon_max_steps =
        (int)cli_config_int(cfg, "local-daemon-max-steps", o->local_daemon_max_steps);
    o->local_daemon_idle_time =
        (int)cli_config_int(cfg, "local-daemon-idle-time", o->local_daemon_idle_time);
    o->ssh_alive_interval =
        (int)cli_config_int(cfg, "ssh-server-alive-interval", o->ssh_alive_interval);
    o->ssh_alive_count_max =
        (int)cli_config_int(cfg, "ssh-server-alive-count-max", o->ssh_alive_count_max);
    o->build_cores = (int)cli_config_int(cfg, "build-cores", 0);
    o->machine_backoff_scale = cli_config_double(cfg, "machine-backoff-scale", 1.0);
    o->store_uri = cli_config_get(cfg, "store-uri");
    o->upload_logs = cli_config_bool(cfg, "upload-logs-to-binary-cache", 0);
    o->crash_point = cli_config_get(cfg, "crash-point");
    if (!o->crash_point && (env = getenv("SLUICE_CRASH_POINT")) && *env)
        o->crash_point = env;
}

typedef struct SigCtx {
    Runner *r;
    sigset_t set;
} SigCtx;

static void *signal_thread(void *arg)
{
    SigCtx *s = arg;
    int sig = 0;
    if (sigwait(&s->set, &sig) == 0 && sig != SIGUSR2) {
        log_info("signal %d: stopping", sig);
        runner_stop(s->r);
    }
    return NULL;
}

/* Run a runner until it stops; SIGINT/SIGTERM stop it. */
int cli_run_runner(Runner *r, Err *e)
{
    SigCtx sc;
    pthread_t t;
    int rc;
    sc.r = r;
    sigemptyset(&sc.set);
    sigaddset(&sc.set, SIGINT);
    sigaddset(&sc.set, SIGTERM);
    sigaddset(&sc.set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_create(&t, NULL, signal_thread, &sc);
    rc = runner_run(r, e);
    pthread_kill(t, SIGUSR2);
    pthread_join(t, NULL);
    return rc;
}

int cli_cmd_run(CliConfig *cfg, int argc, char **argv)
{
    RunnerOptions o;
    Runner *r = NULL;
    HttpServer *h = NULL;
    Err e = {0};
    int rc;
    cli_runner_options(cfg, &o);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0) {
            o.once = 1;
        } else {
            cli_error("run: unknown argument '%s'", argv[i]);
            return 2;
        }
    }
    rc = runner_new(&o, &r, &e);
    if (rc < 0)
        return cli_fail(&e);
    if (cfg->http && cfg->http[0]) {
        HttpOptions ho = {cfg->http, o.db_url, o.log_dir, cfg->http_admin_token, r};
        rc = http_start(&ho, &h, &e);
        if (rc < 0) {
            runner_free(r);
            return cli_fail(&e);
        }
    }
    rc = cli_run_runner(r, &e);
    http_stop(h);
    runner_free(r);
    if (rc < 0)
        return cli_fail(&e);
    return 0;
}
