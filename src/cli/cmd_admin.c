/*
 * cmd_admin.c: the operator's actions on builds, as Hydra's web server does them
 * (db/actions.c: the same statements, so the runner learns of them from the same
 * notifications):
 *
 *   sluice restart BUILD...          queue finished builds again; their cached
 *                                    failures are cleared
 *   sluice cancel BUILD...           cancel queued builds (a running step stops)
 *   sluice bump [--priority N] BUILD...   globalPriority = N (default: now, as Hydra)
 *   sluice clear-failed [DRV|PATH...]     forget cached failures (FailedPaths): every
 *                                    one, or the outputs of the given derivations, or
 *                                    the given output paths
 *
 * One line per build says what happened.  Exit status 0 when every build was changed,
 * 1 when any was not (no such build, or not in a state the action applies to), 2 on a
 * usage error.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "db/db.h"
#include "nix/nix.h"

typedef int (*BuildAction)(Db *db, int64_t id, int64_t arg, Err *e);

static int do_cancel(Db *db, int64_t id, int64_t arg, Err *e)
{
    int rc = db_build_cancel(db, id, util_time_now(), e);
    if (rc == 1)
        printf("build %" PRId64 ": cancelled\n", id);
    else if (rc == 0)
        cli_error("build %" PRId64 " is finished: it cannot be cancelled", id);
    return rc;
}

static int do_restart(Db *db, int64_t id, int64_t arg, Err *e)
{
    int64_t cleared = 0;
    int rc = db_build_restart(db, id, &cleared, e);
    if (rc == 1)
        printf("build %" PRId64 ": queued again (%" PRId64 " cached failures cleared)\n", id,
               cleared);
    else if (rc == 0)
        cli_error("build %" PRId64 " is not finished: nothing to restart", id);
    return rc;
}

static int do_bump(Db *db, int64_t id, int64_t prio, Err *e)
{
    int rc = db_build_bump(db, id, prio, e);
    if (rc == 1)
        printf("build %" PRId64 ": global priority %" PRId64 "\n", id, prio);
    return rc;
}

/* Apply fn to every build id among argv[first..argc). */
static int each_build(CliConfig *cfg, int argc, char **argv, int first, BuildAction fn, int64_t arg)
{
    Db *db = NULL;
    Err e = {0};
    int failed = 0;
    for (int i = first; i < argc; i++) {
        int64_t id;
        if (util_parse_i64(argv[i], &id) < 0 || id <= 0) {
            cli_error("%s: '%s' is not a build id", argv[0], argv[i]);
            return 2;
        }
    }
    if (first >= argc) {
        cli_error("usage: sluice %s BUILD...", argv[0]);
        return 2;
    }
    if (db_open(cli_config_db_url(cfg), DB_OPEN_DEFAULT, &db, &e) < 0)
        return cli_fail(&e);
    for (int i = first; i < argc; i++) {
        int64_t id = 0;
        int rc;
        (void)util_parse_i64(argv[i], &id);
        rc = fn(db, id, arg, &e);
        if (rc < 0) {
            cli_fail(&e);
            err_clear(&e);
        }
        if (rc != 1)
            failed = 1;
    }
    db_close(db);
    return failed;
}

int cli_cmd_cancel(CliConfig *cfg, int argc, char **argv)
{
    return each_build(cfg, argc, argv, 1, do_cancel, 0);
}

int cli_cmd_restart(CliConfig *cfg, int argc, char **argv)
{
    return each_build(cfg, argc, argv, 1, do_restart, 0);
}

int cli_cmd_bump(CliConfig *cfg, int argc, char **argv)
{
    int64_t prio = util_time_now();
    int first = 1;
    if (argc > 1 && util_starts_with(argv[1], "--priority")) {
        const char *v = argv[1][10] == '=' ? argv[1] + 11 : argc > 2 ? argv[2] : NULL;
        if (argv[1][10] != '=' && argv[1][10] != '\0')
            v = NULL;
        if (!v || util_parse_i64(v, &prio) < 0 || prio < INT32_MIN || prio > INT32_MAX) {
            cli_error("bump: --priority needs a 32-bit integer");
            return 2;
        }
        first = argv[1][10] == '=' ? 2 : 3;
    }
    return each_build(cfg, argc, argv, first, do_bump, prio);
}

/* The FailedPaths entries an argument stands for: a .drv's statically known output
 * paths (as the runner records them), or a store path itself. */
static int failed_paths_of(const char *arg, StrVec *out, Err *e)
{
    NixDrv *d = NULL;
    char *key = NULL;
    int rc;
    if (!util_ends_with(arg, ".drv")) {
        if ((rc = nix_store_path_check(arg, e)) < 0)
            return rc;
        strvec_push(out, arg);
        return 0;
    }
    if ((rc = cli_drv_load(arg, &key, &d, e)) < 0)
        return rc;
    for (size_t i = 0; i < d->n_outputs; i++)
        if (d->outputs[i].path[0])
            strvec_push(out, d->outputs[i].path);
    nix_drv_free(d);
    free(key);
    return 0;
}

int cli_cmd_clear_failed(CliConfig *cfg, int argc, char **argv)
{
    StrVec paths;
    Db *db = NULL;
    Err e = {0};
    int rc = 0;
    strvec_init(&paths);
    for (int i = 1; i < argc && rc == 0; i++)
        rc = failed_paths_of(argv[i], &paths, &e);
    if (rc < 0) {
        strvec_dispose(&paths);
        cli_fail(&e);
        return 2;
    }
    if (argc > 1 && paths.n == 0) {
        strvec_dispose(&paths);
        printf("no statically known output paths: nothing to clear\n");
        return 0;
    }
    rc = db_open(cli_config_db_url(cfg), DB_OPEN_DEFAULT, &db, &e);
    if (rc == 0)
        rc = db_failed_paths_clear(db, (const char *const *)paths.v, paths.n, &e);
    db_close(db);
    strvec_dispose(&paths);
    if (rc < 0)
        return cli_fail(&e);
    printf("%d cached failure%s cleared\n", rc, rc == 1 ? "" : "s");
    return 0;
}
