/*
 * cmd_config.c: `sluice config`, the effective configuration after defaults, the
 * config file, the environment and flags were combined (see main.c), printed as
 * sluice.conf lines "key = value" sorted by key.  state-dir, config (the file that
 * was looked for), db and log-dir are always printed, with their defaults filled in.
 */
#include <string.h>

#include "cli/cli.h"

/* The value of key as set by the file, environment or a flag (main.c's lookup is not
 * linked into the unit-test binary, so this file does not call it). */
static const char *get(const CliConfig *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n_kv; i++)
        if (strcmp(cfg->keys[i], key) == 0)
            return cfg->values[i];
    return NULL;
}

int cli_cmd_config(CliConfig *cfg, int argc, char **argv)
{
    StrVec lines;
    static const char *const shown[] = {"state-dir", "config", "db", "log-dir"};

    if (argc > 1) {
        cli_error("config: unexpected argument '%s'", argv[1]);
        return 2;
    }
    strvec_init(&lines);
    strvec_push_take(&lines, xasprintf("state-dir = %s", cfg->state_dir));
    strvec_push_take(&lines, xasprintf("config = %s", cfg->config_file ? cfg->config_file : ""));
    if (get(cfg, "db"))
        strvec_push_take(&lines, xasprintf("db = %s", get(cfg, "db")));
    else
        strvec_push_take(&lines, xasprintf("db = sqlite:%s/sluice.db", cfg->state_dir));
    if (get(cfg, "log-dir"))
        strvec_push_take(&lines, xasprintf("log-dir = %s", get(cfg, "log-dir")));
    else
        strvec_push_take(&lines, xasprintf("log-dir = %s/build-logs", cfg->state_dir));
    for (size_t i = 0; i < cfg->n_kv; i++) {
        int skip = 0;
        for (size_t j = 0; j < UTIL_ARRAY_LEN(shown); j++)
            if (strcmp(cfg->keys[i], shown[j]) == 0)
                skip = 1;
        if (!skip)
            strvec_push_take(&lines, xasprintf("%s = %s", cfg->keys[i], cfg->values[i]));
    }
    strvec_sort_unique(&lines);
    for (size_t i = 0; i < lines.n; i++)
        printf("%s\n", lines.v[i]);
    strvec_dispose(&lines);
    return 0;
}
