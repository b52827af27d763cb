/*
 * cmd_config.c: `sluice config`, every setting in effect after defaults, the
 * configuration files, the environment and flags were combined (see main.c), one
 * `key = value` line each in the configuration file's own syntax, followed by a
 * comment naming its origin:
 *
 *     db = postgresql://hydra@/hydra       # file /etc/sluice/sluice.conf:1
 *     max-jobs = 0                         # default
 *     # machines =                         # unset
 *
 * Secrets (http-admin-token, a password in the database URL) are masked.  Keys no
 * setting knows (already warned about) follow under their own heading.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "db/db.h"

static char *shown_value(const CliSettingDef *d, const char *v)
{
    if (!v)
        return xstrdup("");
    if (d && d->secret)
        return xstrdup("***");
    if (d && strcmp(d->key, "db") == 0)
        return db_url_redact(v);
    return xstrdup(v);
}

static void print_line(const char *key, const char *value, const char *origin, int unset)
{
    char *kv = xasprintf("%s%s = %s", unset ? "# " : "", key, value);
    printf("%-56s # %s\n", kv, origin);
    free(kv);
}

/* The value and origin of a key with a default filled in from the state dir. */
static void print_setting(CliConfig *cfg, const CliSettingDef *d)
{
    const char *where, *v = cli_config_get(cfg, d->key), *dflt = d->dflt;
    CliOrigin o = cli_config_origin(cfg, d->key, &where);
    char *origin, *shown;
    if (strcmp(d->key, "state-dir") == 0)
        v = cfg->state_dir; /* absolute, whatever set it */
    else if (strcmp(d->key, "config") == 0)
        v = cfg->config_file;
    else if (strcmp(d->key, "db") == 0)
        dflt = cli_config_db_url(cfg);
    else if (strcmp(d->key, "log-dir") == 0)
        dflt = cli_config_log_dir(cfg);
    if (o == CLI_ORIGIN_DEFAULT && !cli_config_get(cfg, d->key))
        v = v ? v : dflt;
    shown = shown_value(d, v);
    if (o == CLI_ORIGIN_FILE)
        origin = xasprintf("file %s", where);
    else if (o == CLI_ORIGIN_ENV)
        origin = xasprintf("env %s", where);
    else if (o == CLI_ORIGIN_FLAG)
        origin = xasprintf("flag --%s", where);
    else
        origin = xstrdup(v ? "default" : "unset");
    print_line(d->key, shown, origin, !v);
    free(origin);
    free(shown);
}

int cli_cmd_config(CliConfig *cfg, int argc, char **argv)
{
    size_t n;
    const CliSettingDef *defs = cli_settings(&n);
    int unknown = 0;
    if (argc > 1) {
        cli_error("config: unexpected argument '%s'", argv[1]);
        return 2;
    }
    for (size_t i = 0; i < cfg->files.n; i++)
        printf("# read %s\n", cfg->files.v[i]);
    for (size_t i = 0; i < n; i++)
        print_setting(cfg, &defs[i]);
    for (size_t i = 0; i < cfg->n_set; i++) {
        const CliSetting *s = &cfg->set[i];
        char *origin;
        if (cli_setting_find(s->key))
            continue;
        if (!unknown++)
            printf("# unknown settings (ignored):\n");
        origin = xasprintf("%s %s", cli_origin_name(s->origin), s->where);
        print_line(s->key, s->value, origin, 0);
        free(origin);
    }
    return 0;
}
