/*
 * cmd_build.c: `sluice build (FILE.nix [-A ATTR]... | DRV...)`: submit, then run the
 * runner in this process until those builds finish, with a live progress line, and
 * print the output paths at the end like nix-build.  When another runner holds the
 * database, the builds are submitted and followed through the database instead, with
 * the same progress and exit status.  Exit status 1 when any build failed.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cli/cli.h"
#include "cli/cli_run.h"
#include "db/db.h"
#include "runner/runner.h"

typedef struct Progress {
    int tty;
    size_t last_len;
    uint64_t last_print;
} Progress;

static void progress_line(void *payload, const char *line)
{
    Progress *p = payload;
    if (p->tty) {
        size_t n = strlen(line);
        fprintf(stderr, "\r%s", line);
        for (size_t i = n; i < p->last_len; i++)
            fputc(' ', stderr);
        p->last_len = n;
    } else {
        uint64_t now = util_now_ms();
        if (now - p->last_print < 5000)
            return;
        p->last_print = now;
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

static void progress_end(Progress *p)
{
    if (p->tty && p->last_len) {
        fputc('\n', stderr);
        p->last_len = 0;
    }
}

/* Follow the builds through the DB (another runner builds them). */
static int follow(CliConfig *cfg, const int64_t *ids, size_t n, Progress *p, Err *e)
{
    Db *db = NULL;
    int rc = db_open(cli_config_db_url(cfg), DB_OPEN_DEFAULT, &db, e);
    if (rc < 0)
        return rc;
    for (;;) {
        size_t left = 0;
        int64_t running = 0, done = 0;
        char line[256];
        for (size_t i = 0; i < n; i++) {
            int64_t fin = 0;
            rc = db_query_int64(db, "SELECT finished FROM Builds WHERE id = $1",
                                DB_ARGS(DB_P_INT(ids[i])), &fin, e);
            if (rc < 0)
                goto out;
            if (!fin)
                left++;
        }
        rc = db_query_int64(db, "SELECT count(*) FROM BuildSteps WHERE busy <> 0", NULL, 0,
                            &running, e);
        if (rc < 0)
            goto out;
        snprintf(line, sizeof line,
                 "[%zu of %zu builds done, %" PRId64
                 " steps running on the farm; another runner is building]",
                 n - left, n, running);
        (void)done;
        progress_line(p, line);
        if (left == 0)
            break;
        usleep(500 * 1000);
    }
    rc = 0;
out:
    db_close(db);
    return rc;
}

/* Print output paths; return the number of failed builds. */
static int report(CliConfig *cfg, const int64_t *ids, size_t n, Err *e)
{
    Db *db = NULL;
    int failed = 0, rc = db_open(cli_config_db_url(cfg), DB_OPEN_DEFAULT, &db, e);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        int64_t status = -1;
        DbStmt *st = NULL;
        rc = db_query_int64(db, "SELECT buildStatus FROM Builds WHERE id = $1 AND finished = 1",
                            DB_ARGS(DB_P_INT(ids[i])), &status, e);
        if (rc < 0)
            break;
        if (rc == 0 || (status != 0 && status != 6)) {
            failed++;
            fprintf(stderr,
                    "sluice: build %" PRId64 " %s (status %" PRId64 "); see 'sluice steps %" PRId64
                    "'\n",
                    ids[i], rc == 0 ? "did not finish" : "failed", status, ids[i]);
            continue;
        }
        rc = db_query(db, "SELECT path FROM BuildOutputs WHERE build = $1 ORDER BY name",
                      DB_ARGS(DB_P_INT(ids[i])), &st, e);
        if (rc < 0)
            break;
        while ((rc = db_step(st, e)) == 1) {
            StrVec k = {0};
            if (db_col_text(st, 0))
                printf("%s\n", cli_esc(&k, db_col_text(st, 0)));
            strvec_dispose(&k);
        }
        db_stmt_done(st);
        if (rc < 0)
            break;
    }
    db_close(db);
    return rc < 0 ? rc : failed;
}

int cli_cmd_build(CliConfig *cfg, int argc, char **argv)
{
    int64_t *ids = NULL;
    size_t n = 0;
    RunnerOptions o;
    Runner *r = NULL;
    Progress p = {0};
    Err e = {0};
    int rc, failed;

    p.tty = isatty(2);
    if (!cfg->verbose && !getenv("SLUICE_LOG"))
        log_set_level(LOG_WARN); /* the progress line tells what happens */
    if (cli_config_get(cfg, "store-uri")) {
        /* a binary cache the runner would refuse: refused before anything is queued */
        Cache *c = NULL;
        if (cache_open(cli_config_get(cfg, "store-uri"), &c, &e) < 0)
            return cli_fail(&e);
        cache_free(c);
    }
    rc = cli_submit_builds(cfg, argc, argv, &ids, &n, &e);
    if (rc < 0) {
        free(ids);
        return rc == ERR_INVALID ? (cli_fail(&e), 2) : cli_fail(&e);
    }
    if (n == 0) {
        cli_error("nothing to build");
        free(ids);
        return 0;
    }
    cli_runner_options(cfg, &o);
    if (!cli_config_get(cfg, "max-retries"))
        o.max_retries = 2; /* one retry ... */
    if (!cli_config_get(cfg, "retry-interval"))
        o.retry_interval = 5; /* ... after 5 s */
    o.only_builds = ids;
    o.n_only_builds = n;
    o.progress = progress_line;
    o.progress_payload = &p;
    rc = runner_new(&o, &r, &e);
    if (rc == ERR_BUSY) {
        fprintf(stderr, "sluice: %s; following the builds through the database\n", e.msg);
        err_clear(&e);
        rc = follow(cfg, ids, n, &p, &e);
    } else if (rc == 0) {
        rc = cli_run_runner(r, &e);
        runner_free(r);
    }
    progress_end(&p);
    if (rc < 0) {
        free(ids);
        return cli_fail(&e);
    }
    failed = report(cfg, ids, n, &e);
    free(ids);
    if (failed < 0)
        return cli_fail(&e);
    return failed ? 1 : 0;
}
