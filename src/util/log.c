/* log.c: leveled logging to stderr with a timestamp.  The level is the one
 * process-wide setting (an atomic int).  When stderr is the journal (systemd sets
 * JOURNAL_STREAM to its device:inode), each line is "<N>message" with the syslog
 * priority instead: the journal adds the time and the unit itself. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* 1 when stderr is the stream JOURNAL_STREAM names ("DEV:INODE"). */
static int stderr_is_journal(void)
{
    static atomic_int cached = -1;
    int v = atomic_load(&cached);
    if (v < 0) {
        const char *js = getenv("JOURNAL_STREAM");
        uintmax_t dev = 0, ino = 0;
        struct stat st;
        v = js && sscanf(js, "%ju:%ju", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
            (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
        atomic_store(&cached, v);
    }
    return v;
}

void log_msg(int level, const char *fmt, ...)
{
    static const int prio[] = {3, 4, 6, 7}; /* err, warning, info, debug */
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
    if (stderr_is_journal()) {
        /* every line of a message carries the priority, or the journal sees it as info */
        int p = prio[level < 0 ? 0 : level > 3 ? 3 : level];
        for (const char *l = safe, *nl; *l; l = nl ? nl + 1 : l + strlen(l)) {
            nl = strchr(l, '\n');
            fprintf(stderr, "<%d>%.*s\n", p, nl ? (int)(nl - l) : (int)strlen(l), l);
        }
        free(safe);
        return;
    }
    fprintf(stderr, "%s.%03ldZ sluice %s: %s\n", ts, now.tv_nsec / 1000000L,
            names[level < 0   ? 0
                  : level > 3 ? 3
                              : level],
            safe);
    free(safe);
}
