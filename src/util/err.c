/* err.c: error values (Err) with a one-line message set where the failure is found. */
#include <errno.h>
#include <string.h>

#include "util/util.h"

static void err_vset(Err *e, int code, const char *fmt, va_list ap)
{
    e->code = code;
    e->sys_errno = 0;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
}

int err_set(Err *e, int code, const char *fmt, ...)
{
    va_list ap;
    if (!e)
        return code;
    va_start(ap, fmt);
    err_vset(e, code, fmt, ap);
    va_end(ap);
    return code;
}

int err_sys(Err *e, int code, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    size_t n;
    if (!e)
        return code;
    va_start(ap, fmt);
    err_vset(e, code, fmt, ap);
    va_end(ap);
    e->sys_errno = saved;
    n = strlen(e->msg);
    if (n < sizeof e->msg - 1)
        snprintf(e->msg + n, sizeof e->msg - n, ": %s", strerror(saved));
    return code;
}

int err_prefix(Err *e, const char *fmt, ...)
{
    char head[ERR_MSG_MAX], old[ERR_MSG_MAX];
    va_list ap;
    if (!e)
        return ERR_INVALID;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s: %s", head, old);
    return e->code;
}

void err_clear(Err *e)
{
    if (!e)
        return;
    e->code = 0;
    e->sys_errno = 0;
    e->msg[0] = '\0';
}

const char *err_code_name(int code)
{
    switch (code) {
    case ERR_OK: return "ok";
    case ERR_NOMEM: return "out of memory";
    case ERR_MALFORMED: return "malformed";
    case ERR_AGAIN: return "incomplete";
    case ERR_TOOBIG: return "too big";
    case ERR_IO: return "i/o error";
    case ERR_NOTFOUND: return "not found";
    case ERR_PEER: return "peer error";
    case ERR_TIMEOUT: return "timeout";
    case ERR_DB: return "database error";
    case ERR_INVALID: return "invalid";
    case ERR_BUSY: return "busy";
    case ERR_UNSUPPORTED: return "unsupported";
    case ERR_CONFLICT: return "conflict";
    case ERR_EOF: return "end of file";
    case ERR_CANCELLED: return "cancelled";
    default: return "error";
    }
}
