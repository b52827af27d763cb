/*
 * cmd_build.c: `sluice build`, nix-build's behaviour on sluice's queue: submit (as
 * `sluice submit`), run the runner in this process until those builds finish (or,
 * when another runner holds the database, follow them through the database), then
 * print the output paths and link them as ./result, ./result-2, ./result-dev ...
 *
 *   -o, --out-link PATH   link name instead of "result"; --no-out-link: none
 *   -L                    build logs on stderr, each line prefixed by "NAME> "
 *   -j N                  local build slots (max-jobs)
 *   -k, --keep-going      without it the other builds are cancelled after a failure
 *   --dry-run             what would be built and fetched (nix-store --dry-run)
 *   --keep-queued         Ctrl-C leaves the builds queued; by default it cancels them
 *
 * A progress line on stderr names every running step with its elapsed time.  Exit
 * status as nix-build: 0, 100 when a build failed (101 when one timed out), with the
 * failing derivation and the last 10 lines of its log; 1 on other errors and on
 * Ctrl-C; 2 on a usage error.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cli/cli.h"
#include "cli/cli_run.h"
#include "db/db.h"
#include "nix/nix.h"
#include "runner/runner.h"

#define TAIL_LINES 10

typedef struct BuildOpts {
    const char *out_link; /* NULL: --no-out-link */
    int print_logs, keep_going, keep_queued, dry_run;
} BuildOpts;

/* The log of one step followed with -L. */
typedef struct LogTail {
    char *drv;
    size_t offset;
    int seen; /* printed from at least once */
} LogTail;

/* What watches the builds: progress line, -L logs, cancelling after a failure. */
typedef struct Watch {
    CliConfig *cfg;
    const BuildOpts *o;
    const int64_t *ids;
    size_t n;
    Db *db;
    int tty;
    size_t line_len; /* the progress line on the terminal now */
    uint64_t last_print;
    LogTail *tails;
    size_t n_tails;
    int cancelled_rest;
    Runner *runner; /* building in this process; stopped when every build is done */
    atomic_int stop;
    StoreConn *roots; /* the local store session that makes the result links roots */
} Watch;

static int is_ours(const Watch *w, int64_t id)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->ids[i] == id)
            return 1;
    return 0;
}

static void clear_line(Watch *w)
{
    if (w->tty && w->line_len) {
        fprintf(stderr, "\r%*s\r", (int)w->line_len, "");
        w->line_len = 0;
    }
}

static void show_progress(Watch *w, const char *line)
{
    if (w->tty) {
        clear_line(w);
        fprintf(stderr, "%s", line);
        w->line_len = strlen(line);
    } else {
        uint64_t now = util_now_ms();
        if (now - w->last_print < 5000)
            return;
        w->last_print = now;
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

/* One line of a build log after prefix, escaped for the terminal (a builder's output
 * may hold escape sequences), and a newline. */
static void print_log_line(FILE *f, const char *prefix, const char *p, size_t n)
{
    char *line = xstrndup(p, n), *safe = util_text_escape(line);
    fprintf(f, "%s%s\n", prefix, safe);
    free(safe);
    free(line);
}

/* The length of a drv's name without ".drv" (with nix_store_path_name). */
static int drv_name_len(const char *drv)
{
    const char *name = nix_store_path_name(drv);
    return (int)strlen(name) - (util_ends_with(name, ".drv") ? 4 : 0);
}

static LogTail *tail_of(Watch *w, const char *drv)
{
    for (size_t i = 0; i < w->n_tails; i++)
        if (strcmp(w->tails[i].drv, drv) == 0)
            return &w->tails[i];
    w->tails = xrealloc(w->tails, (w->n_tails + 1) * sizeof *w->tails);
    w->tails[w->n_tails] = (LogTail){xstrdup(drv), 0, 0};
    return &w->tails[w->n_tails++];
}

/* -L: the complete new lines of a step's log, "NAME> line"; at its end also the rest. */
static void print_log_lines(Watch *w, LogTail *t, int final)
{
    Buf b;
    Err e = {0};
    const char *name = nix_store_path_name(t->drv);
    int nl = drv_name_len(t->drv);
    size_t start, i;
    buf_init(&b, LIMIT_BUF_DEFAULT);
    if (runner_log_read(cli_config_log_dir(w->cfg), t->drv, &b, &e) < 0 || b.len < t->offset) {
        t->offset = b.len < t->offset ? 0 : t->offset;
        buf_dispose(&b);
        return;
    }
    clear_line(w);
    for (start = i = t->offset; i < b.len; i++) {
        if (b.p[i] != '\n')
            continue;
        fprintf(stderr, "%.*s> ", nl, name);
        print_log_line(stderr, "", (const char *)b.p + start, i - start);
        start = i + 1;
    }
    if (final && start < b.len) {
        fprintf(stderr, "%.*s> ", nl, name);
        print_log_line(stderr, "", (const char *)b.p + start, b.len - start);
        start = b.len;
    }
    t->offset = start;
    buf_dispose(&b);
}

/* -L: the logs of the steps that ran for our builds (not cached or resolved rows):
 * new lines of a running one, the rest of one that ended. */
static int print_logs(Watch *w, Err *e)
{
    DbStmt *st = NULL;
    int64_t lo = w->ids[0], hi = w->ids[0];
    int rc;
    for (size_t i = 1; i < w->n; i++) {
        lo = w->ids[i] < lo ? w->ids[i] : lo;
        hi = w->ids[i] > hi ? w->ids[i] : hi;
    }
    rc = db_query(w->db,
                  "SELECT s.drvPath, s.busy, s.build FROM BuildSteps s WHERE s.build BETWEEN $1 "
                  "AND $2 AND s.type = $3 AND s.propagatedFrom IS NULL AND (s.status IS NULL OR "
                  "s.status NOT IN ($4, $5)) ORDER BY s.startTime, s.stepnr",
                  DB_ARGS(DB_P_INT(lo), DB_P_INT(hi), DB_P_INT(DB_STEP_BUILD),
                          DB_P_INT(DB_STATUS_CACHED_FAILURE), DB_P_INT(DB_STATUS_RESOLVED)),
                  &st, e);
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1) {
        const char *drv = db_col_text(st, 0);
        LogTail *t;
        if (!drv || !is_ours(w, db_col_int64(st, 2)))
            continue;
        t = tail_of(w, drv);
        if (db_col_int64(st, 1)) {
            t->seen = 1; /* running (again) */
            print_log_lines(w, t, 0);
        } else if (!t->seen || t->offset != SIZE_MAX) {
            t->offset = t->offset == SIZE_MAX ? 0 : t->offset;
            print_log_lines(w, t, 1);
            t->offset = SIZE_MAX; /* done */
            t->seen = 1;
        }
    }
    db_stmt_done(st);
    return rc;
}

/* Without --keep-going the first failure cancels the other builds, as nix-build stops. */
static int cancel_rest(Watch *w, Err *e)
{
    for (size_t i = 0; i < w->n; i++) {
        int rc = db_build_cancel(w->db, w->ids[i], util_time_now(), e);
        if (rc < 0 && rc != ERR_NOTFOUND)
            return rc;
    }
    w->cancelled_rest = 1;
    return 0;
}

/* Counts of our builds: finished, failed. */
static int count_builds(Watch *w, size_t *done, size_t *failed, Err *e)
{
    *done = *failed = 0;
    for (size_t i = 0; i < w->n; i++) {
        DbStmt *st = NULL;
        int rc = db_query(w->db, "SELECT finished, buildStatus FROM Builds WHERE id = $1",
                          DB_ARGS(DB_P_INT(w->ids[i])), &st, e);
        if (rc < 0)
            return rc;
        if ((rc = db_step(st, e)) == 1 && db_col_int64(st, 0)) {
            int64_t s = db_col_int64(st, 1);
            (*done)++;
            if (s != DB_STATUS_SUCCESS && s != DB_STATUS_FAILED_WITH_OUTPUT &&
                s != DB_STATUS_CANCELLED)
                (*failed)++;
        }
        db_stmt_done(st);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* One look: progress line, logs, cancel after a failure.  *all_done when every build
 * finished. */
static int watch_once(Watch *w, int *all_done, Err *e)
{
    DbStmt *st = NULL;
    size_t done, failed;
    Buf line;
    int64_t now = util_time_now();
    int rc, running = 0;
    if ((rc = count_builds(w, &done, &failed, e)) < 0)
        return rc;
    if (failed && !w->o->keep_going && !w->cancelled_rest && (rc = cancel_rest(w, e)) < 0)
        return rc;
    *all_done = done == w->n;
    buf_init(&line, 4096);
    buf_printf(&line, "[%zu/%zu built", done, w->n);
    rc = db_query(w->db,
                  "SELECT DISTINCT s.drvPath, s.machine, s.startTime, s.build FROM BuildSteps s "
                  "WHERE s.busy <> 0 ORDER BY s.startTime",
                  NULL, 0, &st, e);
    if (rc < 0)
        goto out;
    while ((rc = db_step(st, e)) == 1) {
        const char *drv = db_col_text(st, 0), *m = db_col_text(st, 1);
        if (!drv || !is_ours(w, db_col_int64(st, 3)))
            continue;
        buf_printf(&line, "%s %.*s%s%s (%" PRId64 "s)", running++ ? "," : ", building",
                   drv_name_len(drv), nix_store_path_name(drv), m && m[0] ? " on " : "",
                   m && m[0] ? m : "", now - db_col_int64(st, 2));
    }
    db_stmt_done(st);
    if (rc < 0 || (w->o->print_logs && (rc = print_logs(w, e)) < 0))
        goto out;
    buf_puts(&line, "]");
    if (line.len > 200 && w->tty)
        memcpy(line.p + 196, "...]", 5), line.len = 200;
    show_progress(w, buf_cstr(&line));
    rc = 0;
out:
    buf_dispose(&line);
    return rc;
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Follow the builds through the database (another runner builds them). */
static int follow(Watch *w, Err *e)
{
    struct sigaction sa = {0}, old_int, old_term;
    int all_done = 0, rc = 0;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    while (!all_done && !interrupted) {
        if ((rc = watch_once(w, &all_done, e)) < 0)
            break;
        if (!all_done)
            usleep(300 * 1000);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}

static void *watch_thread(void *arg)
{
    Watch *w = arg;
    Err e = {0};
    int all_done = 0;
    while (!atomic_load(&w->stop)) {
        if (watch_once(w, &all_done, &e) < 0) {
            clear_line(w);
            cli_fail(&e);
            err_clear(&e);
        } else if (all_done) {
            /* the runner stops by itself when its builds finish, but a build cancelled
             * from outside (after a failure, or by an operator) is never counted */
            runner_stop(w->runner);
        }
        usleep(300 * 1000);
    }
    return NULL;
}

/* Build in this process, with the watcher in a thread (signals blocked in it; the
 * runner's signal thread takes Ctrl-C). */
static int build_here(Watch *w, Runner *r, Err *e)
{
    pthread_t t;
    sigset_t set, old;
    Err we = {0};
    int rc, all_done = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    w->runner = r;
    pthread_create(&t, NULL, watch_thread, w);
    rc = cli_run_runner(r, NULL, e);
    atomic_store(&w->stop, 1);
    pthread_join(t, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    w->runner = NULL;
    if (watch_once(w, &all_done, &we) == 0 && !all_done)
        interrupted = 1; /* the runner stopped before the builds were done: a signal */
    return rc;
}

/* nix-build's link names: result, result-2, ...; "-NAME" for outputs other than out. */
static char *link_name(const char *base, size_t k, const char *output)
{
    char *num = k ? xasprintf("-%zu", k + 1) : xstrdup("");
    char *s = strcmp(output, "out") == 0 ? xasprintf("%s%s", base, num)
                                         : xasprintf("%s%s-%s", base, num, output);
    free(num);
    return s;
}

/* The link as a GC root, as nix-store --add-root --indirect makes it, over one session
 * on the local store for all of them (no process per link): the output gets a temp
 * root and must be valid, the link replaces an older link into the store (never
 * anything else), and AddIndirectRoot registers it. */
static int add_root(Watch *w, const char *link, const char *path, Err *e)
{
    char *abs = NULL, *tmp = NULL, cwd[4096];
    struct stat sb;
    int valid = 0, rc;
    if (!w->roots) {
        const char *uri = cli_config_get(w->cfg, "store");
        if ((rc = store_open(uri ? uri : "auto", NULL, &w->roots, e)) < 0)
            return rc;
    }
    if ((rc = store_add_temp_roots(w->roots, &path, 1, e)) < 0 ||
        (rc = store_is_valid_path(w->roots, path, &valid, e)) < 0)
        return rc;
    if (!valid)
        return err_set(e, ERR_NOTFOUND, "output %s is not valid in the local store", path);
    if (link[0] == '/')
        abs = xstrdup(link);
    else if (getcwd(cwd, sizeof cwd))
        abs = xasprintf("%s/%s", cwd, link);
    else
        return err_sys(e, ERR_IO, "cannot link %s: no current directory", link);
    if (lstat(abs, &sb) == 0) {
        char target[4096];
        ssize_t n = S_ISLNK(sb.st_mode) ? readlink(abs, target, sizeof target - 1) : -1;
        if (n >= 0)
            target[n] = '\0';
        if (n < 0 || nix_store_path_check(target, NULL) < 0) {
            rc = err_set(e, ERR_CONFLICT, "cannot create symlink '%s': already exists", abs);
            goto out;
        }
    }
    tmp = xasprintf("%s.tmp-%ld", abs, (long)getpid());
    unlink(tmp);
    if (symlink(path, tmp) < 0 || rename(tmp, abs) < 0) {
        rc = err_sys(e, ERR_IO, "cannot create symlink '%s'", abs);
        unlink(tmp);
        goto out;
    }
    rc = store_add_indirect_root(w->roots, abs, e);
out:
    free(tmp);
    free(abs);
    return rc;
}

/* Outputs of a succeeded build: printed, and linked unless --no-out-link. */
static int report_outputs(Watch *w, size_t k, Err *e)
{
    DbStmt *st = NULL;
    int rc = db_query(w->db, "SELECT name, path FROM BuildOutputs WHERE build = $1 ORDER BY name",
                      DB_ARGS(DB_P_INT(w->ids[k])), &st, e);
    if (rc < 0)
        return rc;
    while ((rc = db_step(st, e)) == 1) {
        const char *name = db_col_text(st, 0), *path = db_col_text(st, 1);
        if (!path)
            continue;
        if (w->o->out_link) {
            char *link = link_name(w->o->out_link, k, name ? name : "out");
            int r = add_root(w, link, path, e);
            free(link);
            if (r < 0) {
                rc = r;
                break;
            }
        }
        {
            StrVec keep = {0};
            printf("%s\n", cli_esc(&keep, path));
            strvec_dispose(&keep);
        }
    }
    db_stmt_done(st);
    return rc;
}

/* The failing step of a failed build: its drv, the last lines of its log. */
static int report_failure(Watch *w, int64_t id, int64_t status, Err *e)
{
    DbStmt *st = NULL;
    Buf log;
    int rc = db_query(
        w->db,
        "SELECT s.drvPath, s.stepnr, s.status, s.errorMsg FROM BuildSteps s "
        "WHERE s.build = $1 AND s.status IS NOT NULL AND s.status NOT IN ($2, $3) "
        "ORDER BY s.stepnr DESC LIMIT 1",
        DB_ARGS(DB_P_INT(id), DB_P_INT(DB_STATUS_SUCCESS), DB_P_INT(DB_STATUS_RESOLVED)), &st, e);
    if (rc < 0)
        return rc;
    clear_line(w);
    if ((rc = db_step(st, e)) != 1) {
        fprintf(stderr, "error: build %" PRId64 " (%s)\n", id, db_status_name(status));
        db_stmt_done(st);
        return rc;
    }
    {
        StrVec k = {0};
        const char *drv = cli_esc(&k, db_col_text(st, 0)), *msg = cli_esc(&k, db_col_text(st, 3));
        fprintf(stderr, "error: build %" PRId64 " (%s): %s: %s\n", id, db_status_name(status), drv,
                db_status_name(db_col_int64(st, 2)));
        if (msg && msg[0]) /* its first line */
            fprintf(stderr, "       %.*s\n", (int)strcspn(msg, "\n"), msg);
        strvec_dispose(&k);
    }
    buf_init(&log, LIMIT_BUF_DEFAULT);
    if (runner_log_read(cli_config_log_dir(w->cfg), db_col_text(st, 0), &log, e) == 0 && log.len) {
        size_t start = log.len, lines = 0;
        if (log.p[start - 1] == '\n')
            start--;
        while (start > 0 && lines < TAIL_LINES)
            if (log.p[--start] == '\n')
                lines++;
        if (log.p[start] == '\n')
            start++;
        fprintf(stderr, "       last %d log lines:\n", TAIL_LINES);
        for (char *p = (char *)log.p + start, *end = (char *)log.p + log.len; p < end;) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            print_log_line(stderr, "       > ", p, n);
            p += n + 1;
        }
        fprintf(stderr, "       For full logs, run 'sluice log %" PRId64 " %" PRId64 "'.\n", id,
                db_col_int64(st, 1));
    }
    err_clear(e);
    buf_dispose(&log);
    db_stmt_done(st);
    return 0;
}

/* Outputs or failures of every build; *exit_status 100 (| 1 timed out) on failure. */
static int report(Watch *w, int *exit_status, Err *e)
{
    *exit_status = 0;
    for (size_t k = 0; k < w->n; k++) {
        int64_t status = -1;
        int rc =
            db_query_int64(w->db, "SELECT buildStatus FROM Builds WHERE id = $1 AND finished = 1",
                           DB_ARGS(DB_P_INT(w->ids[k])), &status, e);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            *exit_status = *exit_status ? *exit_status : 1; /* not finished: interrupted */
            continue;
        }
        if (status == DB_STATUS_SUCCESS || status == DB_STATUS_FAILED_WITH_OUTPUT) {
            rc = report_outputs(w, k, e);
        } else if (status == DB_STATUS_CANCELLED && w->cancelled_rest) {
            rc = 0; /* cancelled after another one failed */
        } else {
            *exit_status = 100 | (*exit_status & 1) | (status == DB_STATUS_TIMED_OUT);
            rc = report_failure(w, w->ids[k], status, e);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Ctrl-C: cancel what we queued (unless --keep-queued). */
static void on_interrupt(Watch *w)
{
    size_t n = 0;
    Err e = {0};
    clear_line(w);
    if (!w->o->keep_queued)
        for (size_t i = 0; i < w->n; i++)
            if (db_build_cancel(w->db, w->ids[i], util_time_now(), &e) == 1)
                n++;
    if (w->o->keep_queued)
        fprintf(stderr, "sluice: interrupted; the builds stay queued\n");
    else
        fprintf(stderr, "sluice: interrupted; %zu queued build%s cancelled\n", n,
                n == 1 ? "" : "s");
}

/* Take build's own options out of argv (the rest goes to submit); -1: usage error. */
static int take_options(CliConfig *cfg, int argc, char **argv, BuildOpts *o)
{
    int k = 1;
    o->out_link = "result";
    o->keep_going = cli_config_bool(cfg, "keep-going", 0);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-o") == 0 || strcmp(a, "--out-link") == 0) && i + 1 < argc) {
            o->out_link = argv[++i];
        } else if (strcmp(a, "--no-out-link") == 0) {
            o->out_link = NULL;
        } else if (strcmp(a, "-L") == 0 || strcmp(a, "--print-build-logs") == 0) {
            o->print_logs = 1;
        } else if (strcmp(a, "-k") == 0) {
            o->keep_going = 1;
        } else if (strcmp(a, "--keep-queued") == 0) {
            o->keep_queued = 1;
        } else if (strcmp(a, "-j") == 0 && i + 1 < argc) {
            int64_t j;
            if (util_parse_i64(argv[++i], &j) < 0 || j < 1) {
                cli_error("build: -j needs a positive number");
                return -1;
            }
            cli_config_set(cfg, "max-jobs", argv[i], CLI_ORIGIN_FLAG, "max-jobs");
        } else {
            if (strcmp(a, "--dry-run") == 0)
                o->dry_run = 1;
            argv[k++] = argv[i];
        }
    }
    return k;
}

static int run_builds(CliConfig *cfg, Watch *w, Err *e)
{
    RunnerOptions ro;
    Runner *r = NULL;
    int rc;
    cli_runner_options(cfg, &ro);
    if (!cli_config_get(cfg, "max-retries"))
        ro.max_retries = 2; /* one retry ... */
    if (!cli_config_get(cfg, "retry-interval"))
        ro.retry_interval = 5; /* ... after 5 s */
    ro.only_builds = w->ids;
    ro.n_only_builds = w->n;
    rc = runner_new(&ro, &r, e);
    if (rc == ERR_BUSY) {
        clear_line(w);
        fprintf(stderr, "sluice: %s; following the builds through the database\n", e->msg);
        err_clear(e);
        return follow(w, e);
    }
    if (rc < 0)
        return rc;
    rc = build_here(w, r, e);
    runner_free(r);
    return rc;
}

int cli_cmd_build(CliConfig *cfg, int argc, char **argv)
{
    int64_t *ids = NULL;
    size_t n = 0;
    BuildOpts o = {0};
    Watch w = {0};
    Err e = {0};
    int rc, status = 0;

    if ((argc = take_options(cfg, argc, argv, &o)) < 0)
        return 2;
    if (!cfg->verbose && !cli_config_get(cfg, "log-level"))
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
    if (o.dry_run || n == 0) {
        if (!o.dry_run)
            cli_error("nothing to build");
        free(ids);
        return 0;
    }
    w = (Watch){.cfg = cfg, .o = &o, .ids = ids, .n = n, .tty = isatty(2)};
    interrupted = 0;
    rc = db_open(cli_config_db_url(cfg), DB_OPEN_DEFAULT, &w.db, &e);
    if (rc == 0)
        rc = run_builds(cfg, &w, &e);
    clear_line(&w);
    if (rc == 0 && interrupted)
        on_interrupt(&w);
    else if (rc == 0)
        rc = report(&w, &status, &e);
    if (rc < 0)
        cli_fail(&e);
    for (size_t i = 0; i < w.n_tails; i++)
        free(w.tails[i].drv);
    free(w.tails);
    store_close(w.roots);
    db_close(w.db);
    free(ids);
    return rc < 0 || interrupted ? 1 : status;
}
