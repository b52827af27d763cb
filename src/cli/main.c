/*
 * main.c: entry point of `sluice`.  Takes the global flags out of argv (wherever they
 * are), builds the configuration from (lowest first) built-in defaults, the
 * configuration files, the environment and the flags, then finds the command and runs
 * it.
 *
 * Configuration files: --config FILE or $SLUICE_CONFIG (that file only, which must
 * exist); otherwise SLUICE_CONF_DIR/sluice.conf (default /etc/sluice/sluice.conf) and
 * then STATE_DIR/sluice.conf, each when present, the later one winning.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

/* argv split into what main handles and what the command gets. */
typedef struct Args {
    StrVec rest; /* argv[0], the command words, the command's own arguments */
    int help;    /* --help before any command word */
    int version; /* --version */
} Args;

static void usage(FILE *f)
{
    size_t n;
    const CliCommand *cmds = cli_commands(&n);
    fprintf(f, "usage: sluice [--state-dir DIR] [--config FILE] [--db URL] COMMAND [ARGS]\n\n"
               "commands:\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  %-14s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(f, "\nglobal flags (also accepted after the command):\n"
               "  --state-dir DIR   state directory (env SLUICE_STATE_DIR; default "
               "~/.local/state/sluice)\n"
               "  --config FILE     configuration file (nix.conf syntax: key = value)\n"
               "  --db URL          sqlite:PATH or postgresql://...\n"
               "  --KEY VALUE       any configuration key (`sluice config` lists them)\n"
               "  -v, --verbose     more logging (repeat for more)\n"
               "  --version         print the version\n"
               "  -h, --help        this text; `sluice COMMAND --help` for a command\n");
}

/* `--KEY VALUE`, `--KEY=VALUE`; Boolean keys also `--KEY` and `--no-KEY`.  Returns 1
 * when argv[*i] was a configuration flag (consumed), 0 when not, -1 on error. */
static int config_flag(CliConfig *cfg, int argc, char **argv, int *i)
{
    const char *k = argv[*i] + 2, *eq = strchr(k, '='), *v = eq ? eq + 1 : NULL;
    char *key = eq ? xstrndup(k, (size_t)(eq - k)) : xstrdup(k);
    const CliSettingDef *d = cli_setting_find(key);
    int rc = 1;
    if (!d && !eq && util_starts_with(key, "no-") && (d = cli_setting_find(key + 3)) &&
        d->type == CLI_T_BOOL) {
        cli_config_set(cfg, d->key, "false", CLI_ORIGIN_FLAG, d->key);
        goto out;
    }
    if (!d) {
        rc = 0;
        goto out;
    }
    if (!v && d->type == CLI_T_BOOL) {
        v = "true";
    } else if (!v) {
        if (*i + 1 >= argc) {
            cli_error("flag --%s needs a value", key);
            rc = -1;
            goto out;
        }
        v = argv[++*i];
    }
    cli_config_set(cfg, d->key, v, CLI_ORIGIN_FLAG, d->key);
out:
    free(key);
    return rc;
}

/* Pass 1: every configuration flag out of argv, wherever it is. */
static int parse_argv(CliConfig *cfg, int argc, char **argv, Args *a)
{
    strvec_push(&a->rest, argv[0]);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int rc;
        if (strcmp(s, "--") == 0) {
            for (; i < argc; i++)
                strvec_push(&a->rest, argv[i]);
            break;
        }
        if (strcmp(s, "-v") == 0 || strcmp(s, "--verbose") == 0) {
            cfg->verbose++;
            continue;
        }
        if ((strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) && a->rest.n == 1) {
            a->help = 1;
            continue;
        }
        if (strcmp(s, "--version") == 0 && a->rest.n == 1) {
            a->version = 1;
            continue;
        }
        if (strncmp(s, "--", 2) == 0 && (rc = config_flag(cfg, argc, argv, &i)) != 0) {
            if (rc < 0)
                return -1;
            continue;
        }
        strvec_push(&a->rest, s);
    }
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

static void load_env(CliConfig *cfg)
{
    size_t n;
    const CliSettingDef *d = cli_settings(&n);
    for (size_t i = 0; i < n; i++) {
        const char *v = d[i].env ? getenv(d[i].env) : NULL;
        if (v && *v)
            cli_config_set(cfg, d[i].key, v, CLI_ORIGIN_ENV, d[i].env);
    }
}

static void take_state_dir(CliConfig *cfg)
{
    const char *sd = cli_config_get(cfg, "state-dir");
    free(cfg->state_dir);
    cfg->state_dir = sd ? xstrdup(sd) : default_state_dir();
}

/* The configuration files (see the top of this file). */
static int load_files(CliConfig *cfg, Err *e)
{
    const char *explicit = cli_config_get(cfg, "config");
    const char *dir = getenv("SLUICE_CONF_DIR");
    char *system;
    int rc;
    if (explicit) {
        cfg->config_file = xstrdup(explicit);
        rc = cli_config_load_file(cfg, explicit, 1, e);
        take_state_dir(cfg);
        return rc;
    }
    system = xasprintf("%s/sluice.conf", dir && *dir ? dir : "/etc/sluice");
    rc = cli_config_load_file(cfg, system, 0, e);
    free(system);
    if (rc < 0)
        return rc;
    take_state_dir(cfg);
    cfg->config_file = xasprintf("%s/sluice.conf", cfg->state_dir);
    rc = cli_config_load_file(cfg, cfg->config_file, 0, e);
    take_state_dir(cfg); /* the state dir's file may move it (when no flag or env did) */
    return rc;
}

static char *dup_opt(const CliConfig *c, const char *key)
{
    const char *v = cli_config_get(c, key);
    return v ? xstrdup(v) : NULL;
}

/* Hydra's hydra.conf (hydra-conf, env HYDRA_CONFIG): each setting it implies that
 * nothing else set, with the file as its origin; a warning per ignored key. */
static int load_hydra_conf(CliConfig *cfg, Err *e)
{
    const char *path = cli_config_get(cfg, "hydra-conf");
    CliHydraConf h;
    int rc;
    if (!path || !*path)
        return 0;
    cli_hydra_conf_init(&h);
    rc = cli_hydra_conf_read(&h, path, e);
    for (size_t i = 0; rc == 0 && i < h.warnings.n; i++)
        fprintf(stderr, "sluice: warning: %s\n", h.warnings.v[i]);
    for (size_t i = 0; rc == 0 && i < h.keys.n; i++)
        if (!cli_config_get(cfg, h.keys.v[i]))
            cli_config_set(cfg, h.keys.v[i], h.values.v[i], CLI_ORIGIN_FILE, path);
    cli_hydra_conf_dispose(&h);
    return rc;
}

/* Environment, files, checks; then the paths every command needs. */
static int load_config(CliConfig *cfg, Err *e)
{
    int rc;
    load_env(cfg);
    if ((rc = load_files(cfg, e)) < 0)
        return rc;
    if ((rc = load_hydra_conf(cfg, e)) < 0)
        return rc;
    for (size_t i = 0; i < cfg->warnings.n; i++)
        fprintf(stderr, "sluice: warning: %s\n", cfg->warnings.v[i]);
    if ((rc = cli_config_validate(cfg, e)) < 0)
        return rc;
    /* GC roots and the default database live under it: make it absolute once. */
    if (cfg->state_dir[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return err_sys(e, ERR_IO, "cannot resolve relative state dir %s", cfg->state_dir);
        char *abs = xasprintf("%s/%s", cwd, cfg->state_dir);
        free(cfg->state_dir);
        cfg->state_dir = abs;
    }
    cfg->machines = dup_opt(cfg, "machines");
    cfg->store = dup_opt(cfg, "store");
    cfg->http = dup_opt(cfg, "http");
    cfg->http_admin_token = dup_opt(cfg, "http-admin-token");
    return 0;
}

/* The command named by rest[1] (and rest[2] for grouped ones); *words = 1 or 2. */
static const CliCommand *find_command(const StrVec *rest, int *words)
{
    size_t n;
    const CliCommand *cmds = cli_commands(&n);
    if (rest->n >= 3) {
        char *two = xasprintf("%s %s", rest->v[1], rest->v[2]);
        for (size_t i = 0; i < n; i++)
            if (strcmp(cmds[i].name, two) == 0) {
                free(two);
                *words = 2;
                return &cmds[i];
            }
        free(two);
    }
    *words = 1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(cmds[i].name, rest->v[1]) == 0)
            return &cmds[i];
    return NULL;
}

/* `sluice GROUP`: its subcommands, on f.  0 when GROUP is no group. */
static int list_group(const char *group, FILE *f)
{
    size_t n, len = strlen(group);
    const CliCommand *cmds = cli_commands(&n);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(cmds[i].name, group, len) != 0 || cmds[i].name[len] != ' ')
            continue;
        if (!found)
            fprintf(f, "usage: sluice %s SUBCOMMAND [ARGS]\n\nsubcommands:\n", group);
        found = 1;
        fprintf(f, "  %-10s %s\n", cmds[i].name + len + 1, cmds[i].summary);
    }
    return found;
}

static int has_help_flag(const StrVec *rest, size_t from)
{
    for (size_t i = from; i < rest->n; i++)
        if (strcmp(rest->v[i], "-h") == 0 || strcmp(rest->v[i], "--help") == 0)
            return 1;
    return 0;
}

/* Not a command: a group's list, or a message naming what was wrong. */
static int no_command(const StrVec *rest)
{
    const char *w = rest->v[1];
    if (has_help_flag(rest, 2) && list_group(w, stdout))
        return 0;
    if (list_group(w, stderr)) {
        cli_error("'%s' needs a subcommand", w);
    } else if (w[0] == '-') {
        cli_error("unknown flag '%s'; see 'sluice --help'", w);
    } else {
        cli_error("unknown command '%s'; see 'sluice --help'", w);
    }
    return 2;
}

static int run_command(const CliCommand *cmd, int words, CliConfig *cfg, const StrVec *rest)
{
    int n = (int)rest->n - words, rc;
    char **cargv;
    if (has_help_flag(rest, (size_t)words + 1)) {
        cli_command_help(cmd, stdout);
        return 0;
    }
    cargv = xcalloc((size_t)n + 1, sizeof *cargv);
    cargv[0] = (char *)cmd->name;
    for (int i = 1; i < n; i++)
        cargv[i] = rest->v[words + i];
    fflush(stdout);
    rc = cmd->fn(cfg, n, cargv);
    free(cargv);
    return rc;
}

static void log_level_from_env(void)
{
    const char *env = getenv("SLUICE_LOG");
    int64_t lv;
    if (env && util_parse_i64(env, &lv) == 0)
        log_set_level((int)lv);
}

int main(int argc, char **argv)
{
    CliConfig cfg;
    Args a = {0};
    const CliCommand *cmd;
    Err e = {0};
    int rc = 2, words;

    cli_config_init(&cfg);
    strvec_init(&a.rest);
    log_level_from_env();
    if (parse_argv(&cfg, argc, argv, &a) < 0)
        goto out;
    if (cfg.verbose)
        log_set_level(LOG_INFO + cfg.verbose);
    if (a.version || a.help) {
        if (a.version)
            printf("sluice %s\n", cli_version());
        else
            usage(stdout);
        rc = 0;
        goto out;
    }
    if (load_config(&cfg, &e) < 0) {
        rc = cli_fail(&e);
        goto out;
    }
    if (a.rest.n < 2) {
        usage(stderr);
        goto out;
    }
    if (!(cmd = find_command(&a.rest, &words)))
        rc = no_command(&a.rest);
    else
        rc = run_command(cmd, words, &cfg, &a.rest);
out:
    strvec_dispose(&a.rest);
    cli_config_dispose(&cfg);
    return rc;
}
