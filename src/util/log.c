/* log.c: leveled logging to stderr with a timestamp.  The level is the one
 * process-wide setting (an atomic int). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "util/util.h"

static atomic_int log_level = LOG_INFO;

void log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int log_get_level(void)
{
    return atomic_load(&log_level);
}

void log_msg(int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    char line[4096], ts[32], *safe;
    struct timespec now;
    struct tm tm;
    va_list ap;
    if (level > atomic_load(&log_level))
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* what goes into a line may come from the database or a peer: no escape sequence
     * reaches the terminal or the journal */
    safe = util_text_escape(line);
    fprintf(stderr, "%s.%03ldZ sluice %s: %s\n", ts, now.tv_nsec / 1000000L,
            names[level < 0   ? 0
                  : level > 3 ? 3
                              : level],
            safe);
    free(safe);
}
