/*
 * Tests of src/db/names.c: db_status_name and db_busy_name give, for every DbBuildStatus and
 * DbStepBusy value, the name Hydra's web server shows (hydra-behaviour.md §2.2, §2.3),
 * and "unknown" / "busy" for codes Hydra does not define.
 */
#include "db/db.h"
#include "test.h"

TEST(db, names, every_status_has_hydras_name)
{
    static const struct {
        DbBuildStatus code;
        int64_t value;
        const char *name;
    } want[] = {
        {DB_STATUS_SUCCESS, 0, "succeeded"},
        {DB_STATUS_FAILED, 1, "failed"},
        {DB_STATUS_DEP_FAILED, 2, "dependency failed"},
        {DB_STATUS_ABORTED, 3, "aborted"},
        {DB_STATUS_CANCELLED, 4, "cancelled"},
        {DB_STATUS_OBSOLETE, 5, "obsolete"},
        {DB_STATUS_FAILED_WITH_OUTPUT, 6, "failed with output"},
        {DB_STATUS_TIMED_OUT, 7, "timed out"},
        {DB_STATUS_CACHED_FAILURE, 8, "cached failure"},
        {DB_STATUS_UNSUPPORTED, 9, "unsupported system type"},
        {DB_STATUS_LOG_LIMIT, 10, "log limit exceeded"},
        {DB_STATUS_NAR_SIZE_LIMIT, 11, "output limit exceeded"},
        {DB_STATUS_NOT_DETERMINISTIC, 12, "not deterministic"},
        {DB_STATUS_RESOLVED, 13, "resolved"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(want); i++) {
        CHECK_INT(want[i].code, want[i].value); /* the codes stored in Hydra's tables */
        CHECK_STR(db_status_name(want[i].code), want[i].name);
    }
}

TEST(db, names, unknown_status_is_unknown)
{
    static const int64_t codes[] = {-1,  14,        99,        100 /* Hydra's in-memory "busy" */,
                                    255, INT64_MIN, INT64_MAX, (int64_t)1 << 32};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(codes); i++)
        CHECK_STR(db_status_name(codes[i]), "unknown");
}

TEST(db, names, every_busy_phase_has_hydras_name)
{
    static const struct {
        DbStepBusy code;
        int64_t value;
        const char *name;
    } want[] = {
        {DB_BUSY_NOT_BUSY, 0, ""},
        {DB_BUSY_PREPARING, 1, "preparing"},
        {DB_BUSY_CONNECTING, 10, "connecting"},
        {DB_BUSY_SENDING_INPUTS, 20, "sending inputs"},
        {DB_BUSY_BUILDING, 30, "building"},
        {DB_BUSY_WAITING_FOR_LOCAL_SLOT, 35, "waiting for local slot"},
        {DB_BUSY_RECEIVING_OUTPUTS, 40, "receiving outputs"},
        {DB_BUSY_POST_PROCESSING, 50, "post-processing"},
    };
    static const int64_t unknown[] = {-1, 2, 5, 31, 60, (int64_t)1 << 32};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(want); i++) {
        CHECK_INT(want[i].code, want[i].value);
        CHECK_STR(db_busy_name(want[i].code), want[i].name);
    }
    /* a phase Hydra does not define is still a running step */
    for (size_t i = 0; i < UTIL_ARRAY_LEN(unknown); i++)
        CHECK_STR(db_busy_name(unknown[i]), "busy");
}

TEST(db, names, step_types)
{
    CHECK_INT(DB_STEP_BUILD, 0);
    CHECK_INT(DB_STEP_SUBSTITUTION, 1);
}
