/* report.c: error reporting helpers shared by the subcommands. */
#include "cli/cli.h"

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("sluice: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_fail(const Err *e)
{
    cli_error("%s", e->msg[0] ? e->msg : err_code_name(e->code));
    return 1;
}
