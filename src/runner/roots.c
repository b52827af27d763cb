/*
 * roots.c: GC roots held by the runner.  Each is an indirect root: a symlink
 * STATE_DIR/roots/<basename> -> /nix/store/<basename>, registered with the store
 * (AddIndirectRoot) and listed in sluice_gcroots (path, kind, build, created):
 *
 *   drv        top-level .drv of an unfinished build (made by `sluice submit`); released
 *              when the build finishes, is cancelled or deleted
 *   resolved   a resolved P' .drv, made before any row mentions it; kept while an
 *              unfinished build holds a status-13 row pointing at it
 *   output     outputs of steps; kept while their build is queued, then per
 *              keep-outputs-days from when the root was made (default 30, -1: for good)
 *
 * With Hydra's gc_roots_dir (gc-roots-dir) set, output roots are written there instead,
 * as Hydra's runner writes them (GC_ROOTS_DIR/<basename> -> the output), and left to
 * hydra-update-gc-roots, which prunes that directory by Hydra's keep policy: sluice
 * neither lists nor removes them.
 *
 * Reconciliation (start-up and every few minutes) drops roots the DB no longer
 * justifies and removes root files without a row.  Rows younger than ten minutes are
 * left alone, so a root made just before its status-13 row commits is never dropped.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner/lock.h"
#include "runner/rdb.h"
#include "runner/roots.h"

#define ROOT_GRACE_S 600

static char *root_link(const Runner *r, const char *path)
{
    return xasprintf("%s/roots/%s", r->opt.state_dir, nix_store_path_base(path));
}

int runner__root_path(Runner *r, Db *db, StoreConn *c, const char *path, const char *kind,
                      int64_t build, Err *e)
{
    char *link = NULL, *dir = NULL;
    int rc;
    if (nix_store_path_check(path, e) < 0)
        return e ? e->code : ERR_MALFORMED;
    dir = xasprintf("%s/roots", r->opt.state_dir);
    rc = util_mkdir_p(dir, 0755, e);
    if (rc < 0)
        goto out;
    link = root_link(r, path);
    if (symlink(path, link) < 0 && errno != EEXIST) {
        rc = err_sys(e, ERR_IO, "cannot create GC root '%s'", link);
        goto out;
    }
    rc = store_add_indirect_root(c, link, e);
    if (rc < 0)
        goto out;
    rc = runner__rdb_root_add(db, link, path, kind, build, e);
out:
    free(link);
    free(dir);
    return rc;
}

/* An output root in Hydra's gc_roots_dir: the link, registered with the store (so it
 * roots wherever the directory is), no row. */
static int root_in_hydra_dir(Runner *r, StoreConn *c, const char *path, Err *e)
{
    char *link = NULL;
    int rc;
    if (nix_store_path_check(path, e) < 0)
        return e ? e->code : ERR_MALFORMED;
    rc = util_mkdir_p(r->opt.gc_roots_dir, 0755, e);
    if (rc < 0)
        return rc;
    link = xasprintf("%s/%s", r->opt.gc_roots_dir, nix_store_path_base(path));
    if (symlink(path, link) < 0 && errno != EEXIST)
        rc = err_sys(e, ERR_IO, "cannot create GC root '%s'", link);
    else
        rc = store_add_indirect_root(c, link, e);
    free(link);
    return rc;
}

void runner__root_output(Runner *r, Db *db, const char *path, int64_t build)
{
    StoreConn *c = NULL;
    Err e = {0};
    if (!path)
        return;
    if (store_machine_query_get(r->local_store, &c, &e) == 0) {
        if (r->opt.gc_roots_dir && *r->opt.gc_roots_dir
                ? root_in_hydra_dir(r, c, path, &e) < 0
                : runner__root_path(r, db, c, path, "output", build, &e) < 0)
            log_warn("cannot root %s: %s", path, e.msg);
        store_machine_query_put(r->local_store, c);
    } else {
        log_warn("cannot root %s: %s", path, e.msg);
    }
}

/* Inside a transaction finishing `build`: its top-level drv root goes. */
int runner__roots_release_build(Db *db, int64_t build, Err *e)
{
    int rc = db_exec(db, "DELETE FROM sluice_gcroots WHERE build = $1 AND kind = 'drv'",
                     DB_ARGS(DB_P_INT(build)), e);
    return rc < 0 ? rc : 0;
}

/* Drop rows the DB no longer justifies, then files without a row. */
int runner__roots_reconcile(Runner *r, Db *db, Err *e)
{
    DbStmt *st = NULL;
    Map *needed = map_new(NULL), *rows = map_new(NULL);
    StrVec drop;
    int64_t now = util_time_now();
    char *dir = xasprintf("%s/roots", r->opt.state_dir);
    DIR *d = NULL;
    int rc, keep_days;

    runner__lock(r); /* a reload may change it */
    keep_days = r->opt.keep_outputs_days;
    runner__unlock(r);
    strvec_init(&drop);
    /* resolved drvs still needed: status-13 rows of unfinished builds */
    rc = db_query(db,
                  "SELECT DISTINCT s.resolvedDrvPath FROM BuildSteps s JOIN Builds b ON "
                  "b.id = s.build WHERE b.finished = 0 AND s.status = $1",
                  DB_ARGS(DB_P_INT(DB_STATUS_RESOLVED)), &st, e);
    if (rc < 0)
        goto out;
    while ((rc = db_step(st, e)) == 1)
        if (db_col_text(st, 0))
            map_put(needed, db_col_text(st, 0), (void *)1);
    db_stmt_done(st);
    st = NULL;
    if (rc < 0)
        goto out;
    /* an output root whose build is still queued is kept whatever its age */
    rc = db_query(db,
                  "SELECT g.path, g.kind, g.created, g.root, "
                  "CASE WHEN b.finished = 0 THEN 1 ELSE 0 END "
                  "FROM sluice_gcroots g LEFT JOIN Builds b ON b.id = g.build",
                  NULL, 0, &st, e);
    if (rc < 0)
        goto out;
    while ((rc = db_step(st, e)) == 1) {
        const char *path = db_col_text(st, 0), *kind = db_col_text(st, 1);
        const char *root = db_col_text(st, 3);
        int64_t created = db_col_int64(st, 2);
        int keep = 1;
        if (!path || !kind || !root)
            continue;
        if (strcmp(kind, "resolved") == 0 && now - created > ROOT_GRACE_S &&
            !map_get(needed, nix_store_path_base(path)))
            keep = 0;
        /* the drv of a build cancelled, finished or deleted while no runner saw it */
        if (strcmp(kind, "drv") == 0 && db_col_int64(st, 4) == 0)
            keep = 0;
        if (strcmp(kind, "output") == 0 && keep_days >= 0 &&
            now - created > (int64_t)keep_days * 86400 && db_col_int64(st, 4) == 0)
            keep = 0;
        if (keep)
            map_put(rows, root, (void *)1);
        else
            strvec_push(&drop, root);
    }
    db_stmt_done(st);
    st = NULL;
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < drop.n; i++) {
        rc = runner__rdb_root_del(db, drop.v[i], e);
        if (rc < 0)
            goto out;
        if (util_starts_with(drop.v[i], dir) && unlink(drop.v[i]) < 0 && errno != ENOENT)
            log_warn("cannot remove GC root '%s': %s", drop.v[i], strerror(errno));
    }
    d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            char *p;
            if (de->d_name[0] == '.')
                continue;
            p = xasprintf("%s/%s", dir, de->d_name);
            if (map_get(rows, p)) {
                free(p);
                continue;
            }
            {
                struct stat lst;
                /* a root made moments ago may not have its row yet */
                if (lstat(p, &lst) == 0 && now - (int64_t)lst.st_mtime < ROOT_GRACE_S) {
                    free(p);
                    continue;
                }
            }
            if (unlink(p) < 0 && errno != ENOENT)
                log_warn("cannot remove GC root '%s': %s", p, strerror(errno));
            free(p);
        }
        closedir(d);
    }
    rc = 0;
out:
    db_stmt_done(st);
    map_free(needed);
    map_free(rows);
    strvec_dispose(&drop);
    free(dir);
    return rc;
}
