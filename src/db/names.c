/*
 * names.c: the names a person reads for Hydra's build statuses, step statuses and busy
 * phases (the codes of Builds.buildStatus, BuildSteps.status and BuildSteps.busy), as
 * Hydra's web server words them; one place for the CLI, the HTTP server and the log.
 */
#include "db/db.h"

const char *db_status_name(int64_t status)
{
    static const char *const names[] = {"succeeded",          "failed",
                                        "dependency failed",  "aborted",
                                        "cancelled",          "obsolete",
                                        "failed with output", "timed out",
                                        "cached failure",     "unsupported system type",
                                        "log limit exceeded", "output limit exceeded",
                                        "not deterministic",  "resolved"};
    if (status >= 0 && status < (int64_t)UTIL_ARRAY_LEN(names))
        return names[status];
    return "unknown";
}

const char *db_busy_name(int64_t busy)
{
    switch (busy) {
    case 0: return "";
    case 1: return "preparing";
    case 10: return "connecting";
    case 20: return "sending inputs";
    case 30: return "building";
    case 35: return "waiting for local slot";
    case 40: return "receiving outputs";
    case 50: return "post-processing";
    default: return "busy";
    }
}
