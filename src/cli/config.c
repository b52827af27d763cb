/* config.c: reading configuration values (shared by every subcommand). */
#include <string.h>

#include "cli/cli.h"

const char *cli_config_get(const CliConfig *c, const char *key)
{
    for (size_t i = 0; i < c->n_kv; i++)
        if (strcmp(c->keys[i], key) == 0)
            return c->values[i];
    return NULL;
}

int64_t cli_config_int(const CliConfig *c, const char *key, int64_t dflt)
{
    const char *v = cli_config_get(c, key);
    int64_t n;
    if (!v)
        return dflt;
    if (util_parse_i64(v, &n) < 0) {
        cli_error("configuration key '%s': '%s' is not a number; using %lld", key, v,
                  (long long)dflt);
        return dflt;
    }
    return n;
}

const char *cli_config_db_url(CliConfig *c)
{
    if (!c->db) {
        const char *v = cli_config_get(c, "db");
        c->db = v ? xstrdup(v) : xasprintf("sqlite:%s/sluice.db", c->state_dir);
    }
    return c->db;
}

const char *cli_config_log_dir(CliConfig *c)
{
    if (!c->log_dir) {
        const char *v = cli_config_get(c, "log-dir");
        c->log_dir = v ? xstrdup(v) : xasprintf("%s/build-logs", c->state_dir);
    }
    return c->log_dir;
}
