/* report.c: error reporting helpers shared by the subcommands. */
#include <stdlib.h>

#include "cli/cli.h"

void cli_error(const char *fmt, ...)
{
    va_list ap;
    char *msg, *safe;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (!msg) {
        fputs("sluice: out of memory\n", stderr);
        return;
    }
    /* a message may quote the database, a file or a peer: escaped for the terminal */
    safe = util_text_escape(msg);
    fprintf(stderr, "sluice: %s\n", safe);
    free(safe);
    free(msg);
}

int cli_fail(const Err *e)
{
    cli_error("%s", e->msg[0] ? e->msg : err_code_name(e->code));
    return 1;
}

const char *cli_esc(StrVec *keep, const char *s)
{
    char *x;
    if (!s)
        return NULL;
    x = util_text_escape(s);
    strvec_push_take(keep, x);
    return x;
}
