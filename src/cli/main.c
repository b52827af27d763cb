/*
 * main.c: entry point of `sluice`.  Takes the global flags out of argv (wherever they
 * are), builds the configuration from (lowest first) built-in defaults, the
 * configuration files, the environment and the flags, then finds the command and runs
 * it.
 *
 * (config.c: cli_config_load).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* argv split into what main handles and what the command gets. */
typedef struct Args {
    StrVec rest; /* argv[0], the command words, the command's own arguments */
    int help;    /* --help before any command word */
    int version; /* --version */
    int man;     /* --man-page [NAME] */
    const char *man_name;
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
        if (strcmp(s, "--man-page") == 0 && a->rest.n == 1) {
            a->man = 1;
            a->man_name = i + 1 < argc ? argv[++i] : NULL;
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

/* The configuration after the flags; warnings printed once. */
static int load_config(CliConfig *cfg, Err *e)
{
    int rc = cli_config_load(cfg, e);
    for (size_t i = 0; i < cfg->warnings.n; i++)
        fprintf(stderr, "sluice: warning: %s\n", cfg->warnings.v[i]);
    return rc;
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
    if (a.man) {
        rc = cli_man_page(a.man_name, stdout) < 0 ? (cli_error("no man page '%s'", a.man_name), 2)
                                                  : 0;
        goto out;
    }
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
    log_set_level(cli_config_log_level(&cfg) + cfg.verbose);
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
