/*
 * cmd_log.c: `sluice log [-f] BUILD [STEP]`, a step's log, decompressed.
 *
 * Without STEP: the build's running step when one runs, else the step of the build's
 * own top level (following its resolution), else the last step that ran.  -f follows
 * a running step: what was flushed so far, then new output every half second until
 * the step is no longer busy (a retried step's log that starts again is announced).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "db/db.h"
#include "runner/runner.h"

/* The step's drv (caller frees) and whether it is running; 0 when there is none. */
static int pick_step(Db *db, int64_t build, int64_t stepnr, char **drv, int64_t *busy, Err *e)
{
    DbStmt *st = NULL;
    int rc;
    if (stepnr > 0)
        rc = db_query(db, "SELECT drvPath, busy FROM BuildSteps WHERE build = $1 AND stepnr = $2",
                      DB_ARGS(DB_P_INT(build), DB_P_INT(stepnr)), &st, e);
    else
        rc = db_query(db,
                      "SELECT s.drvPath, s.busy FROM BuildSteps s WHERE s.build = $1 AND "
                      "s.type = $2 AND (s.busy <> 0 OR ((s.status IS NULL OR s.status NOT IN "
                      "($3, $4)) AND s.propagatedFrom IS NULL)) "
                      "ORDER BY s.busy <> 0 DESC, s.stepnr DESC LIMIT 1",
                      DB_ARGS(DB_P_INT(build), DB_P_INT(DB_STEP_BUILD),
                              DB_P_INT(DB_STATUS_CACHED_FAILURE), DB_P_INT(DB_STATUS_RESOLVED)),
                      &st, e);
    if (rc < 0)
        return rc;
    rc = db_step(st, e);
    if (rc == 1) {
        *drv = db_col_text(st, 0) ? xstrdup(db_col_text(st, 0)) : NULL;
        *busy = db_col_int64(st, 1);
        rc = *drv ? 1 : 0;
    }
    db_stmt_done(st);
    return rc;
}

static int step_busy(Db *db, int64_t build, const char *drv, int *busy, Err *e)
{
    int64_t n = 0;
    int rc = db_query_int64(db,
                            "SELECT count(*) FROM BuildSteps WHERE build = $1 AND drvPath = $2 "
                            "AND busy <> 0",
                            DB_ARGS(DB_P_INT(build), DB_P_TEXT(drv)), &n, e);
    *busy = n > 0;
    return rc < 0 ? rc : 0;
}

/* Print what the log has beyond *offset; a shorter log started again.  A log not
 * written yet is no error when missing_ok. */
static int print_new(const char *log_dir, const char *drv, size_t *offset, int missing_ok, Err *e)
{
    Buf b;
    int rc;
    buf_init(&b, LIMIT_BUF_DEFAULT);
    rc = runner_log_read(log_dir, drv, &b, e);
    if (rc == ERR_NOTFOUND && *offset == 0 && missing_ok) {
        err_clear(e); /* not written yet */
        rc = 0;
    } else if (rc == 0) {
        if (b.len < *offset) {
            fprintf(stderr, "sluice: the log started again (the step is retried)\n");
            *offset = 0;
        }
        fwrite(b.p ? b.p : (uint8_t *)"", 1, b.len - *offset, stdout);
        fflush(stdout);
        *offset = b.len;
    }
    buf_dispose(&b);
    return rc;
}

static int follow(Db *db, const char *log_dir, int64_t build, const char *drv, Err *e)
{
    size_t offset = 0;
    int busy = 1, rc = 0;
    while (busy) {
        if ((rc = step_busy(db, build, drv, &busy, e)) < 0)
            return rc;
        if ((rc = print_new(log_dir, drv, &offset, 1, e)) < 0)
            return rc;
        if (busy)
            usleep(500 * 1000);
    }
    return 0;
}

static int parse_args(int argc, char **argv, int *follow_flag, int64_t *build, int64_t *step)
{
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--follow") == 0)
            *follow_flag = 1;
        else if (pos == 0 && util_parse_i64(argv[i], build) == 0 && *build > 0)
            pos++;
        else if (pos == 1 && util_parse_i64(argv[i], step) == 0 && *step > 0)
            pos++;
        else
            return -1;
    }
    return pos >= 1 ? 0 : -1;
}

int cli_cmd_log(CliConfig *cfg, int argc, char **argv)
{
    Db *db = NULL;
    Err e = {0};
    int64_t build = 0, stepnr = 0, busy = 0;
    char *drv = NULL;
    size_t offset = 0;
    int follow_flag = 0, rc;
    if (parse_args(argc, argv, &follow_flag, &build, &stepnr) < 0) {
        cli_error("usage: sluice log [-f] BUILD [STEP]");
        return 2;
    }
    if (db_open(cli_config_db_url(cfg), DB_OPEN_EXISTING, &db, &e) < 0)
        return cli_fail(&e);
    rc = pick_step(db, build, stepnr, &drv, &busy, &e);
    if (rc == 0) {
        cli_error("no log: build %" PRId64 " has no %s", build,
                  stepnr ? "such step" : "step that ran");
        rc = 1;
    } else if (rc > 0 && follow_flag && busy) {
        rc = follow(db, cli_config_log_dir(cfg), build, drv, &e);
    } else if (rc > 0) {
        rc = print_new(cli_config_log_dir(cfg), drv, &offset, busy != DB_BUSY_NOT_BUSY, &e);
        if (rc == 0 && offset == 0)
            fprintf(stderr, "sluice: the log of build %" PRId64 " is empty%s\n", build,
                    busy ? " so far" : "");
    }
    db_close(db);
    free(drv);
    if (rc < 0)
        return cli_fail(&e);
    return rc;
}
