/* stubs.c: weak fallbacks for commands; a cmd_<verb>.c defining the same function wins. */
#include "cli/cli.h"

#define STUB(fn)                                                                                   \
    __attribute__((weak)) int fn(CliConfig *cfg, int argc, char **argv)                            \
    {                                                                                              \
        (void)cfg;                                                                                 \
        (void)argc;                                                                                \
        cli_error("'%s' is not available in this version", argv[0]);                               \
        return 2;                                                                                  \
    }

STUB(cli_cmd_drv_show)
STUB(cli_cmd_drv_path)
STUB(cli_cmd_drv_outputs)
STUB(cli_cmd_drv_resolve)
STUB(cli_cmd_drv_graph)
STUB(cli_cmd_nar_hash)
STUB(cli_cmd_nar_dump)
STUB(cli_cmd_store_ping)
STUB(cli_cmd_store_copy)
STUB(cli_cmd_db_init)
STUB(cli_cmd_db_check)
STUB(cli_cmd_submit)
STUB(cli_cmd_run)
STUB(cli_cmd_build)
STUB(cli_cmd_status)
STUB(cli_cmd_builds)
STUB(cli_cmd_steps)
STUB(cli_cmd_log)
STUB(cli_cmd_cache_publish)

__attribute__((weak)) int cli_submit_builds(CliConfig *cfg, int argc, char **argv, int64_t **ids,
                                            size_t *n, Err *e)
{
    (void)cfg;
    (void)argc;
    (void)argv;
    *ids = NULL;
    *n = 0;
    return err_set(e, ERR_UNSUPPORTED, "submitting builds is not available in this version");
}
