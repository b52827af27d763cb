/* tests/cli/config.c: sluice.conf read with nix.conf's semantics (config.c): comments
 * after values, include/!include, unknown keys warned with the nearest known one,
 * typed values checked, layering by origin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "test.h"

static char *write_conf(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", test_tmpdir(), name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

TEST(cli, config, comments_and_include)
{
    CliConfig c;
    Err err = {0}, *e = &err;
    char *inc = write_conf("inc.conf", "max-retries = 7 # from the included file\n");
    char *path = write_conf("a.conf", "# a comment line\n\n"
                                      "http-admin-token = 8c3f   # openssl rand -hex 32\n"
                                      "  timeout=10\n"
                                      "include inc.conf\n"
                                      "!include missing.conf\n");
    const char *where;
    cli_config_init(&c);
    CHECK_OK(cli_config_load_file(&c, path, 1, e), e);
    CHECK_STR(cli_config_get(&c, "http-admin-token"), "8c3f");
    CHECK_STR(cli_config_get(&c, "timeout"), "10");
    CHECK_STR(cli_config_get(&c, "max-retries"), "7");
    CHECK_INT(cli_config_origin(&c, "max-retries", &where), CLI_ORIGIN_FILE);
    CHECK(strstr(where, "inc.conf:1") != NULL);
    CHECK_INT(c.warnings.n, 0);
    CHECK_INT(c.files.n, 2);
    CHECK_OK(cli_config_validate(&c, e), e);
    cli_config_dispose(&c);
    free(path);
    free(inc);
}

TEST(cli, config, unknown_keys_and_nearest)
{
    CliConfig c;
    Err err = {0}, *e = &err;
    char *path = write_conf("b.conf", "max-job = 3\nfrobnicate = 1\n");
    cli_config_init(&c);
    CHECK_OK(cli_config_load_file(&c, path, 1, e), e);
    CHECK_INT(c.warnings.n, 2);
    CHECK(strstr(c.warnings.v[0], "unknown setting 'max-job'; did you mean 'max-jobs'?"));
    CHECK(strstr(c.warnings.v[1], "unknown setting 'frobnicate'") &&
          !strstr(c.warnings.v[1], "did you mean"));
    CHECK_STR(cli_setting_nearest("http-admin-tokn"), "http-admin-token");
    CHECK_STR(cli_setting_nearest("maxretries"), "max-retries");
    CHECK(cli_setting_nearest("zzzzzzzz") == NULL);
    cli_config_dispose(&c);
    free(path);
}

TEST(cli, config, typed_values)
{
    static const char *const bad[] = {
        "max-jobs = x",           "timeout = 10s",      "retry-backoff = 0", "keep-going = yes",
        "keep-outputs-days = -2", "max-log-size = 1e6", "log-level = loud",  "log-level = 4"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
        CliConfig c;
        Err err = {0}, *e = &err;
        char *text = xasprintf("%s\n", bad[i]);
        char *path = write_conf("c.conf", text);
        cli_config_init(&c);
        CHECK_OK(cli_config_load_file(&c, path, 1, e), e);
        CHECK_MSG(cli_config_validate(&c, e) == ERR_INVALID, bad[i]);
        CHECK(strstr(e->msg, "c.conf:1:") != NULL);
        cli_config_dispose(&c);
        free(path);
        free(text);
    }
}

TEST(cli, config, log_level)
{
    CliConfig c;
    CHECK_INT(cli_log_level_parse("error"), LOG_ERROR);
    CHECK_INT(cli_log_level_parse("warn"), LOG_WARN);
    CHECK_INT(cli_log_level_parse("info"), LOG_INFO);
    CHECK_INT(cli_log_level_parse("debug"), LOG_DEBUG);
    CHECK_INT(cli_log_level_parse("3"), LOG_DEBUG);
    CHECK_INT(cli_log_level_parse("0"), LOG_ERROR);
    CHECK_INT(cli_log_level_parse("-1"), -1);
    CHECK_INT(cli_log_level_parse("Debug"), -1);
    CHECK_INT(cli_log_level_parse(""), -1);
    cli_config_init(&c);
    CHECK_INT(cli_config_log_level(&c), LOG_INFO); /* unset */
    cli_config_set(&c, "log-level", "warn", CLI_ORIGIN_FILE, "c.conf:1");
    CHECK_INT(cli_config_log_level(&c), LOG_WARN);
    cli_config_dispose(&c);
}

TEST(cli, config, origins_layer)
{
    CliConfig c;
    cli_config_init(&c);
    CHECK_INT(cli_config_set(&c, "db", "sqlite:/flag", CLI_ORIGIN_FLAG, "db"), 1);
    CHECK_INT(cli_config_set(&c, "db", "sqlite:/env", CLI_ORIGIN_ENV, "SLUICE_DB"), 0);
    CHECK_INT(cli_config_set(&c, "timeout", "5", CLI_ORIGIN_FILE, "f:1"), 1);
    CHECK_INT(cli_config_set(&c, "timeout", "6", CLI_ORIGIN_FILE, "g:1"), 1);
    CHECK_STR(cli_config_get(&c, "db"), "sqlite:/flag");
    CHECK_INT(cli_config_int(&c, "timeout", 0), 6);
    CHECK_INT(cli_config_bool(&c, "keep-going", 1), 1);
    CHECK_INT(cli_config_origin(&c, "nothing", NULL), CLI_ORIGIN_DEFAULT);
    cli_config_dispose(&c);
}
