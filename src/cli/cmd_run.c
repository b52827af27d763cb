/*
 * cmd_run.c: `sluice run` (the queue runner daemon) and the options it shares with
 * `sluice build`.  SIGINT and SIGTERM stop it cleanly: running steps are aborted and
 * their rows finished, so no BuildSteps row is left busy.  SIGHUP reads the
 * configuration again: it is checked, the keys that can change at run time (log level,
 * limits, timeouts, retries, max-jobs) are applied and named with their values, the
 * others named as needing a restart, and the machines file is read again (it is also
 * re-read within seconds whenever it changes).  Under
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
    o->session_steps = (int)cli_config_int(cfg, "session-steps", o->session_steps);
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
    o->use_substitutes = cli_config_bool(cfg, "use-substitutes", 0);
    o->max_substitution_jobs =
        (int)cli_config_int(cfg, "max-substitution-jobs", o->max_substitution_jobs);
    o->builders_use_substitutes = cli_config_bool(cfg, "builders-use-substitutes", 0);
    o->jobset_repeats = cli_config_get(cfg, "jobset-repeats");
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
    CliConfig *cfg;  /* as sluice started: what the keys a reload cannot apply still are */
    CliConfig *last; /* the last configuration a reload applied (NULL: none yet) */
    sigset_t set;
} SigCtx;

/* Keys a reload applies to the running runner (runner_reconfigure) or to the journal;
 * every other key takes effect when sluice starts again. */
static const char *const live_keys[] = {"log-level",
                                        "max-jobs",
                                        "build-cores",
                                        "max-silent-time",
                                        "timeout",
                                        "max-log-size",
                                        "max-output-size",
                                        "max-retries",
                                        "retry-interval",
                                        "retry-backoff",
                                        "max-unsupported-time",
                                        "keep-outputs-days",
                                        "machine-backoff-scale"};

static int is_live(const char *key)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(live_keys); i++)
        if (strcmp(key, live_keys[i]) == 0)
            return 1;
    return 0;
}

static int differs(const char *a, const char *b)
{
    return (a || b) && (!a || !b || strcmp(a, b) != 0);
}

/* Into applied: "key old -> new" of each live key that differs between cur (in effect)
 * and n; into restart: the name of each other key that differs between started (what
 * runs) and n.  Secrets are never live, so their values are never named. */
static void name_changes(const CliConfig *started, const CliConfig *cur, const CliConfig *n,
                         Buf *applied, Buf *restart)
{
    size_t nd;
    const CliSettingDef *d = cli_settings(&nd);
    for (size_t i = 0; i < nd; i++) {
        const char *key = d[i].key, *unset = d[i].dflt ? d[i].dflt : "(unset)";
        if (is_live(key)) {
            const char *a = cli_config_get(cur, key), *b = cli_config_get(n, key);
            if (differs(a, b))
                buf_printf(applied, "%s%s %s -> %s", applied->len ? ", " : "", key, a ? a : unset,
                           b ? b : unset);
        } else if (differs(cli_config_get(started, key), cli_config_get(n, key))) {
            buf_printf(restart, "%s%s", restart->len ? ", " : "", key);
        }
    }
}

/* SIGHUP: the configuration read again from the same sources (the flags stay), checked,
 * then the keys that can change at run time applied and named with their old and new
 * values; the keys that need a restart named too.  A configuration that does not load
 * or validate changes nothing.  The machines file is read again, changed or not. */
static void reload(SigCtx *s)
{
    CliConfig *n = xcalloc(1, sizeof *n), *cur = s->last ? s->last : s->cfg;
    Err e = {0};
    Buf applied, restart;
    RunnerOptions o;
    cli_sd_notify("RELOADING=1");
    cli_config_init(n);
    for (size_t i = 0; i < s->cfg->n_set; i++)
        if (s->cfg->set[i].origin == CLI_ORIGIN_FLAG)
            cli_config_set(n, s->cfg->set[i].key, s->cfg->set[i].value, CLI_ORIGIN_FLAG,
                           s->cfg->set[i].where);
    if (cli_config_load(n, &e) < 0) {
        log_error("reload: %s; the running configuration stays", e.msg);
        cli_config_dispose(n);
        free(n);
        cli_sd_notify("READY=1");
        return;
    }
    for (size_t i = 0; i < n->warnings.n; i++)
        log_warn("reload: %s", n->warnings.v[i]);
    buf_init(&applied, 4096);
    buf_init(&restart, 4096);
    name_changes(s->cfg, cur, n, &applied, &restart);
    cli_runner_options(n, &o);
    runner_reconfigure(s->r, &o);
    log_set_level(cli_config_log_level(n) + s->cfg->verbose);
    if (applied.len)
        log_info("reload: applied: %s", buf_cstr(&applied));
    if (restart.len)
        log_warn("reload: changed, effective when sluice restarts: %s", buf_cstr(&restart));
    if (!applied.len && !restart.len)
        log_info("reload: configuration unchanged (%zu file(s) read)", n->files.n);
    if (cli_config_get(s->cfg, "machines"))
        log_info("reload: the machines file %s is read again", cli_config_get(s->cfg, "machines"));
    buf_dispose(&applied);
    buf_dispose(&restart);
    if (s->last) {
        cli_config_dispose(s->last);
        free(s->last);
    }
    s->last = n;
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
            reload(s);
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
    sc.last = NULL;
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
    if (sc.last) {
        cli_config_dispose(sc.last);
        free(sc.last);
    }
    return rc;
}

int cli_cmd_run(CliConfig *cfg, int argc, char **argv)
{
    RunnerOptions o;
    Runner *r = NULL;
    HttpServer *h = NULL;
    Err e = {0};
    int rc;
    int64_t one = 0;
    cli_runner_options(cfg, &o);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0) {
            o.once = 1;
        } else if (strcmp(argv[i], "--build-one") == 0) {
            if (i + 1 >= argc || util_parse_i64(argv[i + 1], &one) < 0 || one <= 0) {
                cli_error("run: --build-one needs a build id");
                return 2;
            }
            i++;
            o.build_one = 1;
            o.only_builds = &one;
            o.n_only_builds = 1;
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
