/*
 * main.c: entry point of `sluice`.  Builds the configuration from (lowest first)
 * built-in defaults, the config file (--config FILE, env SLUICE_CONFIG, else
 * STATE_DIR/sluice.conf when present), the environment (SLUICE_STATE_DIR, SLUICE_DB)
 * and flags, then runs the subcommand.  Global flags may come before or after the
 * subcommand.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const CliCommand commands[] = {
    {"drv show", cli_cmd_drv_show, "drv show DRV...                 JSON as `nix show-derivation`"},
    {"drv path", cli_cmd_drv_path,
     "drv path FILE                   store path of the .drv text in FILE"},
    {"drv outputs", cli_cmd_drv_outputs,
     "drv outputs DRV                 per output: NAME<TAB>PATH or placeholder<TAB>REALISATION-ID"},
    {"drv resolve", cli_cmd_drv_resolve,
     "drv resolve [--force] DRV --input 'DRV!OUT=PATH'...  resolved drv path (line 1), ATerm"},
    {"drv graph", cli_cmd_drv_graph,
     "drv graph [--edges] (FILE.nix [-A ATTR]... | DRV...)  derivation graph, kinds"},
    {"nar hash", cli_cmd_nar_hash,
     "nar hash [--base32|--base16|--base64|--sri] [--type ALGO] PATH...  = nix hash path"},
    {"nar dump", cli_cmd_nar_dump, "nar dump PATH                   = nix-store --dump"},
    {"store ping", cli_cmd_store_ping,
     "store ping URI                  protocol, version, trust, ca-derivations"},
    {"store copy", cli_cmd_store_copy, "store copy --from URI --to URI PATH...  copy closures"},
    {"db init", cli_cmd_db_init, "db init                         create the schema"},
    {"db check", cli_cmd_db_check,
     "db check                        schema version and what is missing"},
    {"submit", cli_cmd_submit, "submit [opts] (FILE.nix [-A ATTR]... | DRV...)  queue builds"},
    {"run", cli_cmd_run, "run [--once]                    the queue runner"},
    {"build", cli_cmd_build, "build (FILE.nix [-A ATTR]... | DRV...)  submit and build"},
    {"status", cli_cmd_status, "status                          runner and queue summary"},
    {"builds", cli_cmd_builds, "builds                          list builds"},
    {"steps", cli_cmd_steps, "steps BUILD                     steps of a build"},
    {"log", cli_cmd_log, "log BUILD [STEP]                print a step's log"},
    {"config", cli_cmd_config, "config                          print the effective configuration"},
};

/* Configuration keys that take a value and may appear as flags anywhere. */
static const char *value_keys[] = {
    "state-dir",
    "config",
    "db",
    "machines",
    "store",
    "log-dir",
    "http",
    "http-admin-token",
    "max-jobs",
    "max-silent-time",
    "timeout",
    "max-log-size",
    "max-output-size",
    "max-retries",
    "retry-interval",
    "retry-backoff",
    "max-unsupported-time",
    "keep-outputs-days",
    "ssh-server-alive-interval",
    "ssh-server-alive-count-max",
    "local-daemon-max-steps",
    "local-daemon-idle-time",
    "crash-point",
    "build-cores",
    "machine-backoff-scale",
};

/* Keys that name a directory or file. */
static const char *const place_keys[] = {"state-dir", "log-dir", "machines", "db", "config"};

static void usage(FILE *f)
{
    fprintf(f, "usage: sluice [--state-dir DIR] [--config FILE] [--db URL] COMMAND [ARGS]\n\n"
               "commands:\n");
    for (size_t i = 0; i < UTIL_ARRAY_LEN(commands); i++)
        fprintf(f, "  %s\n", commands[i].usage);
    fprintf(f, "\nglobal flags (also accepted after the command):\n"
               "  --state-dir DIR   state directory (env SLUICE_STATE_DIR; default "
               "~/.local/state/sluice)\n"
               "  --config FILE     configuration file (key = value lines)\n"
               "  --db URL          sqlite:PATH or postgresql://...\n"
               "  --KEY VALUE       any configuration key (see docs/OPERATING.md)\n"
               "  -v, --verbose     more logging\n");
}

static int is_value_key(const char *k)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(value_keys); i++)
        if (strcmp(value_keys[i], k) == 0)
            return 1;
    return 0;
}

static void config_set(CliConfig *c, const char *key, const char *value)
{
    for (size_t i = 0; i < c->n_kv; i++) {
        if (strcmp(c->keys[i], key) == 0) {
            free(c->values[i]);
            c->values[i] = xstrdup(value);
            return;
        }
    }
    c->keys = xrealloc(c->keys, (c->n_kv + 1) * sizeof *c->keys);
    c->values = xrealloc(c->values, (c->n_kv + 1) * sizeof *c->values);
    c->keys[c->n_kv] = xstrdup(key);
    c->values[c->n_kv] = xstrdup(value);
    c->n_kv++;
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

/* key = value lines; '#' comments. Flags already given win over the file. */
static int load_config_file(CliConfig *c, const char *path, int must_exist, const StrVec *flag_keys)
{
    Buf b;
    Err e = {0};
    int rc, lineno = 0;
    char *next, *line;
    buf_init(&b, LIMIT_CONFIG_FILE);
    rc = util_read_file(path, &b, &e);
    if (rc == ERR_NOTFOUND && !must_exist) {
        buf_dispose(&b);
        return 0;
    }
    if (rc < 0) {
        cli_fail(&e);
        buf_dispose(&b);
        return -1;
    }
    for (line = (char *)buf_cstr(&b); line; line = next) {
        char *eq, *k, *v;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        line = trim(line);
        if (!*line || *line == '#')
            continue;
        eq = strchr(line, '=');
        if (!eq) {
            cli_error("%s: line %d: expected 'key = value'", path, lineno);
            buf_dispose(&b);
            return -1;
        }
        *eq = '\0';
        k = trim(line);
        v = trim(eq + 1);
        if (!strvec_contains(flag_keys, k))
            config_set(c, k, v);
    }
    buf_dispose(&b);
    return 0;
}

static char *default_state_dir(void)
{
    const char *home = getenv("HOME");
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *service = getenv("STATE_DIRECTORY"); /* systemd StateDirectory= */
    if (service && *service)
        return xstrndup(service, strcspn(service, ":"));
    if (xdg && *xdg)
        return xasprintf("%s/sluice", xdg);
    if (home && *home)
        return xasprintf("%s/.local/state/sluice", home);
    return xstrdup("/var/lib/sluice");
}

static void config_dispose(CliConfig *c)
{
    for (size_t i = 0; i < c->n_kv; i++) {
        free(c->keys[i]);
        free(c->values[i]);
    }
    free(c->keys);
    free(c->values);
    free(c->state_dir);
    free(c->config_file);
    free(c->db);
    free(c->machines);
    free(c->store);
    free(c->log_dir);
    free(c->http);
    free(c->http_admin_token);
}

static char *dup_opt(const CliConfig *c, const char *key)
{
    const char *v = cli_config_get(c, key);
    return v ? xstrdup(v) : NULL;
}

int main(int argc, char **argv)
{
    CliConfig cfg = {0};
    StrVec flag_keys, rest;
    const CliCommand *cmd = NULL;
    const char *env;
    int rc = 2, cargc;

    strvec_init(&flag_keys);
    strvec_init(&rest);
    if ((env = getenv("SLUICE_LOG"))) {
        int64_t lv;
        if (util_parse_i64(env, &lv) == 0)
            log_set_level((int)lv);
    }

    /* Pass 1: pull every configuration flag out of argv, wherever it is. */
    strvec_push(&rest, argv[0]);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            for (; i < argc; i++)
                strvec_push(&rest, argv[i]);
            break;
        }
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            cfg.verbose++;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            if (rest.n == 1) {
                usage(stdout);
                rc = 0;
                goto out;
            }
        }
        if (strncmp(a, "--", 2) == 0) {
            const char *k = a + 2, *eq = strchr(k, '=');
            char *key = eq ? xstrndup(k, (size_t)(eq - k)) : xstrdup(k);
            if (is_value_key(key)) {
                const char *v = eq ? eq + 1 : NULL;
                if (!v) {
                    if (i + 1 >= argc) {
                        cli_error("flag --%s needs a value", key);
                        free(key);
                        goto out;
                    }
                    v = argv[++i];
                }
                config_set(&cfg, key, v);
                strvec_push(&flag_keys, key);
                free(key);
                continue;
            }
            free(key);
        }
        strvec_push(&rest, a);
    }
    if (cfg.verbose)
        log_set_level(LOG_INFO + cfg.verbose);

    /* Environment, then the config file (flags win). */
    if (!cli_config_get(&cfg, "state-dir") && (env = getenv("SLUICE_STATE_DIR")) && *env) {
        config_set(&cfg, "state-dir", env);
        strvec_push(&flag_keys, "state-dir");
    }
    if (!cli_config_get(&cfg, "db") && (env = getenv("SLUICE_DB")) && *env) {
        config_set(&cfg, "db", env);
        strvec_push(&flag_keys, "db");
    }
    cfg.state_dir = dup_opt(&cfg, "state-dir");
    if (!cfg.state_dir)
        cfg.state_dir = default_state_dir();
    {
        const char *cf = cli_config_get(&cfg, "config");
        int must = cf != NULL;
        char *path;
        if (!cf && (env = getenv("SLUICE_CONFIG")) && *env) {
            cf = env;
            must = 1;
        }
        path = cf ? xstrdup(cf) : xasprintf("%s/sluice.conf", cfg.state_dir);
        if (load_config_file(&cfg, path, must, &flag_keys) < 0) {
            free(path);
            rc = 1;
            goto out;
        }
        cfg.config_file = path;
    }
    /* The config file may name a state dir too (when no flag/env did). */
    if (!strvec_contains(&flag_keys, "state-dir")) {
        const char *sd = cli_config_get(&cfg, "state-dir");
        if (sd) {
            free(cfg.state_dir);
            cfg.state_dir = xstrdup(sd);
        }
    }
    /* A key that names a place means that place: empty is an error, not "/" or ".". */
    for (size_t i = 0; i < UTIL_ARRAY_LEN(place_keys); i++) {
        const char *v = cli_config_get(&cfg, place_keys[i]);
        if (v && !*v) {
            cli_error("configuration key '%s' is empty (leave it out for the default)",
                      place_keys[i]);
            rc = 1;
            goto out;
        }
    }
    /* GC roots and the default database live under it: make it absolute once. */
    if (cfg.state_dir[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) {
            fprintf(stderr, "sluice: cannot resolve relative state dir %s: %s\n", cfg.state_dir,
                    strerror(errno));
            rc = 1;
            goto out;
        }
        char *abs = xasprintf("%s/%s", cwd, cfg.state_dir);
        free(cfg.state_dir);
        cfg.state_dir = abs;
    }
    cfg.machines = dup_opt(&cfg, "machines");
    cfg.store = dup_opt(&cfg, "store");
    cfg.http = dup_opt(&cfg, "http");
    cfg.http_admin_token = dup_opt(&cfg, "http-admin-token");

    if (rest.n < 2) {
        usage(stderr);
        goto out;
    }
    /* Find the command: two words first ("drv show"), then one. */
    cargc = 1;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(commands) && !cmd; i++) {
        if (rest.n >= 3) {
            char *two = xasprintf("%s %s", rest.v[1], rest.v[2]);
            if (strcmp(commands[i].name, two) == 0) {
                cmd = &commands[i];
                cargc = 2;
            }
            free(two);
        }
    }
    for (size_t i = 0; i < UTIL_ARRAY_LEN(commands) && !cmd; i++)
        if (strcmp(commands[i].name, rest.v[1]) == 0)
            cmd = &commands[i];
    if (!cmd) {
        int group = 0;
        for (size_t i = 0; i < UTIL_ARRAY_LEN(commands); i++)
            if (util_starts_with(commands[i].name, rest.v[1]) &&
                commands[i].name[strlen(rest.v[1])] == ' ')
                group = 1;
        if (group)
            cli_error("'%s' needs a subcommand; see 'sluice --help'", rest.v[1]);
        else if (rest.v[1][0] == '-')
            cli_error("unknown flag '%s'; see 'sluice --help'", rest.v[1]);
        else
            cli_error("unknown command '%s'; see 'sluice --help'", rest.v[1]);
        goto out;
    }
    {
        /* argv for the command: its name then the remaining arguments */
        int n = (int)rest.n - cargc;
        char **cargv = xcalloc((size_t)n + 1, sizeof *cargv);
        cargv[0] = (char *)cmd->name;
        for (int i = 1; i < n; i++)
            cargv[i] = rest.v[cargc + i];
        for (int i = 1; i < n; i++)
            if (strcmp(cargv[i], "-h") == 0 || strcmp(cargv[i], "--help") == 0) {
                printf("usage: sluice %s\n", cmd->usage);
                free(cargv);
                rc = 0;
                goto out;
            }
        fflush(stdout);
        cfg.flag_keys = &flag_keys;
        rc = cmd->fn(&cfg, n, cargv);
        free(cargv);
    }
out:
    strvec_dispose(&flag_keys);
    strvec_dispose(&rest);
    config_dispose(&cfg);
    return rc;
}
