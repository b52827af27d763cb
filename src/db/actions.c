/*
 * actions.c: what Hydra's web server does to builds when a person asks (Cancel,
 * Restart, Bump, clearing cached failures), as the same statements on the same
 * tables, so a runner (sluice's or Hydra's) learns of them from the usual
 * notifications sent by the Builds triggers (NOTIFY on PostgreSQL, sluice_events rows
 * on SQLite):
 *
 *   cancel   finished 0 -> 1, buildStatus 4, isCachedBuild 0, start = stop = now
 *                                                         -> builds_cancelled
 *   restart  finished 1 -> 0, isCachedBuild 0; the FailedPaths rows of the build's
 *            outputs and its steps' outputs deleted; its evaluations' nrSucceeded
 *            reset (Hydra's schema only)                  -> builds_restarted
 *   bump     globalPriority = N (Hydra: the current time) -> builds_bumped
 *   clear    FailedPaths rows deleted: all, or the given paths (no notification, as
 *            in Hydra)
 */
#include "db/db.h"

typedef struct BuildTx {
    int64_t id, arg;
    int changed, exists; /* OUT */
} BuildTx;

static int build_exists(Db *db, BuildTx *t, Err *e)
{
    int64_t n = 0;
    int rc = db_query_int64(db, "SELECT count(*) FROM Builds WHERE id = $1",
                            DB_ARGS(DB_P_INT(t->id)), &n, e);
    t->exists = n > 0;
    return rc < 0 ? rc : 0;
}

static int cancel_tx(Db *db, void *payload, Err *e)
{
    BuildTx *t = payload;
    int rc = db_exec(db,
                     "UPDATE Builds SET finished = 1, buildStatus = $3, isCachedBuild = 0, "
                     "startTime = $2, stopTime = $2 WHERE id = $1 AND finished = 0",
                     DB_ARGS(DB_P_INT(t->id), DB_P_INT(t->arg), DB_P_INT(DB_STATUS_CANCELLED)), e);
    if (rc < 0)
        return rc;
    t->changed = rc;
    return build_exists(db, t, e);
}

static int has_table(Db *db, const char *name, Err *e)
{
    int64_t n = 0;
    int rc = db_kind(db) == DB_POSTGRES
                 ? db_query_int64(db,
                                  "SELECT count(*) FROM information_schema.tables WHERE "
                                  "table_schema = current_schema() AND table_name = lower($1)",
                                  DB_ARGS(DB_P_TEXT(name)), &n, e)
                 : db_query_int64(db,
                                  "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                  "lower(name) = lower($1)",
                                  DB_ARGS(DB_P_TEXT(name)), &n, e);
    return rc < 0 ? rc : n > 0;
}

static int restart_tx(Db *db, void *payload, Err *e)
{
    BuildTx *t = payload;
    int rc, evals;
    t->arg = 0;
    if ((rc = build_exists(db, t, e)) < 0 || !t->exists)
        return rc;
    if ((evals = has_table(db, "JobsetEvalMembers", e)) < 0)
        return evals;
    rc = db_exec(db,
                 "DELETE FROM FailedPaths WHERE path IN (SELECT o.path FROM BuildOutputs o, Builds "
                 "b WHERE o.build = b.id AND b.id = $1 AND b.finished = 1) OR path IN (SELECT "
                 "o.path FROM BuildStepOutputs o, Builds b WHERE o.build = b.id AND b.id = $1 AND "
                 "b.finished = 1)",
                 DB_ARGS(DB_P_INT(t->id)), e);
    if (rc < 0)
        return rc;
    t->arg = rc;
    if (evals &&
        (rc = db_exec(db,
                      "UPDATE JobsetEvals SET nrSucceeded = NULL WHERE id IN (SELECT m.eval "
                      "FROM JobsetEvalMembers m, Builds b WHERE m.build = b.id AND b.id = $1 "
                      "AND b.finished = 1)",
                      DB_ARGS(DB_P_INT(t->id)), e)) < 0)
        return rc;
    rc = db_exec(db,
                 "UPDATE Builds SET finished = 0, isCachedBuild = 0 WHERE id = $1 AND "
                 "finished = 1",
                 DB_ARGS(DB_P_INT(t->id)), e);
    if (rc < 0)
        return rc;
    t->changed = rc;
    return 0;
}

static int bump_tx(Db *db, void *payload, Err *e)
{
    BuildTx *t = payload;
    int rc = db_exec(db, "UPDATE Builds SET globalPriority = $2 WHERE id = $1",
                     DB_ARGS(DB_P_INT(t->id), DB_P_INT(t->arg)), e);
    if (rc < 0)
        return rc;
    t->changed = t->exists = rc > 0;
    return 0;
}

static int run(Db *db, DbTxFn fn, int64_t id, int64_t arg, int64_t *arg_out, Err *e)
{
    BuildTx t = {id, arg, 0, 0};
    int rc = db_tx(db, fn, &t, e);
    if (rc < 0)
        return rc;
    if (arg_out)
        *arg_out = t.arg;
    if (!t.exists)
        return err_set(e, ERR_NOTFOUND, "no build %lld", (long long)id);
    return t.changed;
}

int db_build_cancel(Db *db, int64_t id, int64_t now, Err *e)
{
    return run(db, cancel_tx, id, now, NULL, e);
}

int db_build_restart(Db *db, int64_t id, int64_t *failed_paths_cleared, Err *e)
{
    return run(db, restart_tx, id, 0, failed_paths_cleared, e);
}

int db_build_bump(Db *db, int64_t id, int64_t global_priority, Err *e)
{
    return run(db, bump_tx, id, global_priority, NULL, e);
}

typedef struct ClearTx {
    const char *const *paths;
    size_t n;
    int64_t cleared; /* OUT */
} ClearTx;

static int clear_tx(Db *db, void *payload, Err *e)
{
    ClearTx *t = payload;
    int rc;
    t->cleared = 0;
    if (t->n == 0) {
        rc = db_exec(db, "DELETE FROM FailedPaths", NULL, 0, e);
        t->cleared = rc;
        return rc < 0 ? rc : 0;
    }
    for (size_t i = 0; i < t->n; i++) {
        rc = db_exec(db, "DELETE FROM FailedPaths WHERE path = $1", DB_ARGS(DB_P_TEXT(t->paths[i])),
                     e);
        if (rc < 0)
            return rc;
        t->cleared += rc;
    }
    return 0;
}

static int step_clear_tx(Db *db, void *payload, Err *e)
{
    BuildTx *t = payload;
    int rc;
    t->changed = 0;
    rc = db_query_int64(db, "SELECT 1 FROM BuildSteps WHERE build = $1 AND stepnr = $2",
                        DB_ARGS(DB_P_INT(t->id), DB_P_INT(t->arg)), &(int64_t){0}, e);
    if (rc <= 0)
        return rc;
    t->exists = 1;
    rc = db_exec(db,
                 "DELETE FROM FailedPaths WHERE path IN (SELECT path FROM BuildStepOutputs WHERE "
                 "build = $1 AND stepnr = $2) OR path IN (SELECT drvPath FROM BuildSteps WHERE "
                 "build = $1 AND stepnr = $2)",
                 DB_ARGS(DB_P_INT(t->id), DB_P_INT(t->arg)), e);
    if (rc < 0)
        return rc;
    t->changed = rc;
    return 0;
}

int db_step_failed_paths_clear(Db *db, int64_t build, int64_t stepnr, Err *e)
{
    BuildTx t = {build, stepnr, 0, 0};
    int rc = db_tx(db, step_clear_tx, &t, e);
    if (rc < 0)
        return rc;
    if (!t.exists)
        return err_set(e, ERR_NOTFOUND, "no step %lld of build %lld", (long long)stepnr,
                       (long long)build);
    return t.changed;
}

int db_failed_paths_clear(Db *db, const char *const *paths, size_t n, Err *e)
{
    ClearTx t = {paths, n, 0};
    int rc = db_tx(db, clear_tx, &t, e);
    return rc < 0 ? rc : (int)t.cleared;
}
