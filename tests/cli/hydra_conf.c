/* tests/cli/hydra_conf.c: hydra.conf lines as Hydra's runner reads them, mapped onto
 * sluice's settings, with a warning for each key of Hydra's runner that sluice ignores. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "test.h"

static const char *value_of(const CliHydraConf *h, const char *key)
{
    for (size_t i = 0; i < h->keys.n; i++)
        if (strcmp(h->keys.v[i], key) == 0)
            return h->values.v[i];
    return NULL;
}

static int warned(const CliHydraConf *h, const char *what)
{
    for (size_t i = 0; i < h->warnings.n; i++)
        if (strstr(h->warnings.v[i], what))
            return 1;
    return 0;
}

TEST(cli, hydra_conf, keys_map_and_ignored_ones_warn)
{
    char text[] = "# Hydra's configuration\n"
                  "max_output_size = 1000 # bytes\n"
                  "max_log_size=2000\n"
                  "max_log_size = 3000\n" /* the last one wins */
                  "max_unsupported_time = 0\n"
                  "gc_roots_dir = /nix/var/nix/gcroots/hydra\n"
                  "queue_runner_metrics_address = 127.0.0.1:9198\n"
                  "store_uri = s3://cache?secret-key=/k\n"
                  "use-substitutes = true\n"
                  "upload_logs_to_binary_cache = false\n"
                  "xxx-jobset-repeats = nixpkgs:trunk:2\n"
                  "base_uri = https://hydra.example.org\n"
                  "<hydra_notify>\n"
                  "  <prometheus>\n"
                  "    listen_address = 127.0.0.1\n"
                  "  </prometheus>\n"
                  "</hydra_notify>\n"
                  "= no key\n";
    CliHydraConf h;
    Err eb = {0}, *e = &eb;
    cli_hydra_conf_init(&h);
    CHECK_OK(cli_hydra_conf_parse(&h, "hydra.conf", text, e), e);
    CHECK_STR(value_of(&h, "max-output-size"), "1000");
    CHECK_STR(value_of(&h, "max-log-size"), "3000");
    CHECK_STR(value_of(&h, "max-unsupported-time"), "0");
    CHECK_STR(value_of(&h, "gc-roots-dir"), "/nix/var/nix/gcroots/hydra");
    CHECK_STR(value_of(&h, "http"), "127.0.0.1:9198");
    CHECK_STR(value_of(&h, "upload-logs-to-binary-cache"), "false");
    CHECK_STR(value_of(&h, "jobset-repeats"), "nixpkgs:trunk:2");
    CHECK_INT(h.keys.n, 7);
    CHECK(warned(&h, "store_uri = s3://cache"));
    CHECK(warned(&h, "use-substitutes = true"));
    CHECK(!warned(&h, "xxx-jobset-repeats"));
    CHECK(!warned(&h, "upload_logs_to_binary_cache")); /* false: what sluice does */
    CHECK(!warned(&h, "base_uri"));                    /* hydra-server's, not the runner's */
    CHECK(!warned(&h, "listen_address"));
    CHECK_INT(h.warnings.n, 2);
    cli_hydra_conf_dispose(&h);
}

TEST(cli, hydra_conf, binary_cache_store_uri_and_log_upload)
{
    char text[] = "store_uri = file:///var/cache/nix?secret-key=/etc/hydra/sk&compression=zstd\n"
                  "upload_logs_to_binary_cache = 1\n";
    CliHydraConf h;
    Err eb = {0}, *e = &eb;
    cli_hydra_conf_init(&h);
    CHECK_OK(cli_hydra_conf_parse(&h, "hydra.conf", text, e), e);
    CHECK_STR(value_of(&h, "store-uri"),
              "file:///var/cache/nix?secret-key=/etc/hydra/sk&compression=zstd");
    CHECK_STR(value_of(&h, "upload-logs-to-binary-cache"), "true");
    CHECK_INT(h.warnings.n, 0);
    cli_hydra_conf_dispose(&h);
}

TEST(cli, hydra_conf, local_store_uri_is_no_warning_and_bad_numbers_are_errors)
{
    char ok[] = "store_uri = daemon\nuse-substitutes = 0\n";
    char bad[] = "max_log_size = 64M\n";
    CliHydraConf h;
    Err eb = {0}, *e = &eb;
    cli_hydra_conf_init(&h);
    CHECK_OK(cli_hydra_conf_parse(&h, "a.conf", ok, e), e);
    CHECK_INT(h.warnings.n, 0);
    CHECK_INT(h.keys.n, 0);
    CHECK(cli_hydra_conf_parse(&h, "b.conf", bad, e) == ERR_INVALID);
    CHECK(strstr(e->msg, "b.conf: max_log_size = '64M'") != NULL);
    cli_hydra_conf_dispose(&h);
}
