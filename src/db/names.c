/*
 * names.c: the names a person reads for Hydra's build statuses, step statuses and busy
 * phases (the codes of Builds.buildStatus, BuildSteps.status and BuildSteps.busy: the
 * DbBuildStatus and DbStepBusy enums of db.h), as Hydra's web server words them; one
 * place for the CLI, the HTTP server and the log.
 */
#include "db/db.h"

const char *db_status_name(int64_t status)
{
    switch (status) {
    case DB_STATUS_SUCCESS: return "succeeded";
    case DB_STATUS_FAILED: return "failed";
    case DB_STATUS_DEP_FAILED: return "dependency failed";
    case DB_STATUS_ABORTED: return "aborted";
    case DB_STATUS_CANCELLED: return "cancelled";
    case DB_STATUS_OBSOLETE: return "obsolete";
    case DB_STATUS_FAILED_WITH_OUTPUT: return "failed with output";
    case DB_STATUS_TIMED_OUT: return "timed out";
    case DB_STATUS_CACHED_FAILURE: return "cached failure";
    case DB_STATUS_UNSUPPORTED: return "unsupported system type";
    case DB_STATUS_LOG_LIMIT: return "log limit exceeded";
    case DB_STATUS_NAR_SIZE_LIMIT: return "output limit exceeded";
    case DB_STATUS_NOT_DETERMINISTIC: return "not deterministic";
    case DB_STATUS_RESOLVED: return "resolved";
    default: return "unknown";
    }
}

const char *db_busy_name(int64_t busy)
{
    switch (busy) {
    case DB_BUSY_NOT_BUSY: return "";
    case DB_BUSY_PREPARING: return "preparing";
    case DB_BUSY_CONNECTING: return "connecting";
    case DB_BUSY_SENDING_INPUTS: return "sending inputs";
    case DB_BUSY_BUILDING: return "building";
    case DB_BUSY_WAITING_FOR_LOCAL_SLOT: return "waiting for local slot";
    case DB_BUSY_RECEIVING_OUTPUTS: return "receiving outputs";
    case DB_BUSY_POST_PROCESSING: return "post-processing";
    default: return "busy";
    }
}
