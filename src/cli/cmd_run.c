/*
 * cmd_run.c: `sluice run` (the queue runner daemon) and the options it shares with
 * `sluice build`.  SIGINT and SIGTERM stop it cleanly: running steps are aborted and
 * their rows finished, so no BuildSteps row is left busy.  SIGHUP reads the
 * configuration again: it is checked and each changed key is named (they take effect
 * at the next start; the machines file is re-read whenever it changes).  Under
 * systemd (Type=notify) it reports READY=1 once the database is open and the HTTP
 * server listens, RELOADING=1/READY=1 around a reload, STOPPING=1, and WATCHDOG=1
 * every half WATCHDOG_USEC.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <errno.h>
#include <stddef.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_run.h"
#include "db/db.h"
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
    o->local_store = cli_config_get(cfg, "store");
    if (!o->local_store || strcmp(o->local_store, "auto") == 0)
        o->local_store = geteuid() == 0 ? "local" : "daemon"; /* as Nix's "auto" */
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
    o->warm_sessions = (int)cli_config_int(cfg, "warm-sessions", o->warm_sessions);
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

/* systemd's notification protocol: one datagram to $NOTIFY_SOCKET ('@' = abstract). */
void cli_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len;
    int fd;
    if (!path || !*path || (path[0] != '/' && path[0] != '@') ||
        (len = strlen(path)) >= sizeof sa.sun_path)
        return;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        log_debug("sd_notify: %s", strerror(errno));
    close(fd);
}

typedef struct SigCtx {
    Runner *r;
    CliConfig *cfg;
    sigset_t set;
} SigCtx;

/* SIGHUP: the configuration read again from the same sources, checked, compared. */
static void reload(CliConfig *cfg)
{
    CliConfig n;
    Err e = {0};
    Buf changed;
    size_t nd;
    const CliSettingDef *d = cli_settings(&nd);
    cli_sd_notify("RELOADING=1");
    cli_config_init(&n);
    for (size_t i = 0; i < cfg->n_set; i++)
        if (cfg->set[i].origin == CLI_ORIGIN_FLAG)
            cli_config_set(&n, cfg->set[i].key, cfg->set[i].value, CLI_ORIGIN_FLAG,
                           cfg->set[i].where);
    buf_init(&changed, 4096);
    if (cli_config_load(&n, &e) < 0) {
        log_error("reload: %s; the running configuration stays", e.msg);
    } else {
        for (size_t i = 0; i < n.warnings.n; i++)
            log_warn("reload: %s", n.warnings.v[i]);
        for (size_t i = 0; i < nd; i++) {
            const char *a = cli_config_get(cfg, d[i].key), *b = cli_config_get(&n, d[i].key);
            if ((a || b) && (!a || !b || strcmp(a, b) != 0))
                buf_printf(&changed, "%s%s", changed.len ? ", " : "", d[i].key);
        }
        if (changed.len)
            log_warn("reload: changed: %s; they take effect when sluice restarts "
                     "(the machines file is re-read whenever it changes)",
                     buf_cstr(&changed));
        else
            log_info("reload: configuration unchanged (%zu file(s) read)", n.files.n);
    }
    buf_dispose(&changed);
    cli_config_dispose(&n);
    cli_sd_notify("READY=1");
}

static void *signal_thread(void *arg)
{
    SigCtx *s = arg;
    const char *wd = getenv("WATCHDOG_USEC");
    int64_t usec = 0;
    struct timespec ts = {0};
    if (wd && util_parse_i64(wd, &usec) == 0 && usec > 0) {
        ts.tv_sec = (time_t)(usec / 2000000);
        ts.tv_nsec = (long)(usec / 2 % 1000000) * 1000L;
    }
    for (;;) {
        int sig = usec > 0 ? sigtimedwait(&s->set, NULL, &ts) : 0;
        if (usec > 0 && sig < 0) {
            cli_sd_notify("WATCHDOG=1");
            continue;
        }
        if (usec <= 0 && sigwait(&s->set, &sig) != 0)
            break;
        if (sig == SIGHUP && s->cfg) {
            reload(s->cfg);
            continue;
        }
        if (sig != SIGUSR2) {
            log_info("signal %d: stopping", sig);
            cli_sd_notify("STOPPING=1");
            runner_stop(s->r);
        }
        break;
    }
    return NULL;
}

/* Run a runner until it stops; SIGINT/SIGTERM stop it, SIGHUP reloads (cfg). */
int cli_run_runner(Runner *r, CliConfig *cfg, Err *e)
{
    SigCtx sc;
    pthread_t t;
    int rc;
    sc.r = r;
    sc.cfg = cfg;
    sigemptyset(&sc.set);
    sigaddset(&sc.set, SIGINT);
    sigaddset(&sc.set, SIGTERM);
    sigaddset(&sc.set, SIGHUP);
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
    cli_sd_notify("READY=1");
    {
        char *shown = db_url_redact(o.db_url);
        log_info("sluice %s: running on %s", SLUICE_VERSION, shown);
        free(shown);
    }
    rc = cli_run_runner(r, cfg, &e);
    http_stop(h);
    runner_free(r);
    if (rc < 0)
        return cli_fail(&e);
    return 0;
}
