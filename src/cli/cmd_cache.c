/*
 * cmd_cache.c: `sluice cache publish [--store-uri URL] [--log DRV=FILE]... ITEM...`
 *
 * Publishes to the binary cache named by the `store-uri` key (flag, environment or
 * config file) what the local store (`store` key, default "local") has:
 *   /nix/store/PATH          the path's closure
 *   /nix/store/X.drv         its outputs: a floating CA or deferred derivation through
 *                            its realisations (with their dependents), any other kind
 *                            through its output paths
 *   /nix/store/X.drv!OUT     one output the same way
 * and `--log DRV=FILE` uploads FILE (plain text, or zstd when it ends in .zst) as the
 * build log of DRV.  Prints what was published and the peak RSS.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cache/cache.h"
#include "cli/cli.h"

/* Add what ITEM stands for to paths / ids. */
static int add_item(const char *item, StrVec *paths, StrVec *ids, Err *e)
{
    char *drv = NULL, **out_ids = NULL, **out_paths = NULL;
    const char *bang = strchr(item, '!');
    const char *want = bang ? bang + 1 : NULL;
    NixDrv *d = NULL;
    NixDrvKind kind;
    int rc, found = 0;

    drv = bang ? xstrndup(item, (size_t)(bang - item)) : xstrdup(item);
    rc = nix_store_path_check(drv, e);
    if (rc < 0)
        goto out;
    if (!nix_store_path_is_drv(drv)) {
        if (bang) {
            rc = err_set(e, ERR_INVALID, "%s: '!OUTPUT' needs a .drv path", item);
            goto out;
        }
        strvec_push(paths, drv);
        goto out;
    }
    rc = nix_drv_read(drv, &d, e);
    if (rc < 0 || (rc = nix_drv_kind(d, &kind, e)) < 0)
        goto out;
    if (kind == NIX_DRV_FLOATING || kind == NIX_DRV_DEFERRED) {
        rc = nix_drv_realisation_ids(NULL, d, &out_ids, e);
    } else {
        rc = nix_drv_output_paths(NULL, d, &out_paths, e);
    }
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < d->n_outputs; i++) {
        if (want && strcmp(want, d->outputs[i].name) != 0)
            continue;
        found = 1;
        if (out_ids)
            strvec_push(ids, out_ids[i]);
        else if (out_paths && out_paths[i])
            strvec_push(paths, out_paths[i]);
    }
    if (!found)
        rc = err_set(e, ERR_INVALID, "%s has no output '%s'", drv, want);
out:
    for (size_t i = 0; d && i < d->n_outputs; i++) {
        if (out_ids)
            free(out_ids[i]);
        if (out_paths)
            free(out_paths[i]);
    }
    free(out_ids);
    free(out_paths);
    nix_drv_free(d);
    free(drv);
    return rc;
}

int cli_cmd_cache_publish(CliConfig *cfg, int argc, char **argv)
{
    const char *url = cli_config_get(cfg, "store-uri");
    const char *local = cfg->store ? cfg->store : "local";
    StrVec paths, ids, logs;
    Cache *cache = NULL;
    StoreConn *store = NULL;
    CachePublishStats st;
    Err e = {0};
    int rc = 2;

    strvec_init(&paths);
    strvec_init(&ids);
    strvec_init(&logs);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--log") == 0) {
            if (i + 1 >= argc || !strchr(argv[i + 1], '=')) {
                cli_error("cache publish: --log needs DRV=FILE");
                goto out;
            }
            strvec_push(&logs, argv[++i]);
        } else if (argv[i][0] == '-') {
            cli_error("cache publish: unknown flag '%s'", argv[i]);
            goto out;
        } else if (add_item(argv[i], &paths, &ids, &e) < 0) {
            rc = cli_fail(&e);
            goto out;
        }
    }
    if (!url) {
        cli_error("cache publish: no binary cache given (--store-uri URL)");
        goto out;
    }
    if (paths.n + ids.n + logs.n == 0) {
        cli_error("cache publish: nothing to publish (store paths, DRV[!OUT], --log DRV=FILE)");
        goto out;
    }
    if (cache_open(url, &cache, &e) < 0) {
        rc = cli_fail(&e);
        goto out;
    }
    if (paths.n + ids.n > 0) {
        if (store_open(local, NULL, &store, &e) < 0 ||
            cache_publish(cache, store, (const char *const *)paths.v, paths.n,
                          (const char *const *)ids.v, ids.n, 0, &st, &e) < 0) {
            rc = cli_fail(&e);
            goto out;
        }
    } else {
        memset(&st, 0, sizeof st);
    }
    for (size_t i = 0; i < logs.n; i++) {
        char *drv = xstrdup(logs.v[i]);
        char *file = strchr(drv, '=');
        int r;
        *file++ = '\0';
        r = nix_store_path_check(drv, &e);
        if (r == 0)
            r = cache_publish_log(cache, drv, file, util_ends_with(file, ".zst"), &e);
        free(drv);
        if (r < 0) {
            rc = cli_fail(&e);
            goto out;
        }
    }
    {
        struct rusage ru;
        memset(&ru, 0, sizeof ru);
        getrusage(RUSAGE_SELF, &ru);
        printf("published %zu of %zu paths (%llu NAR bytes, %llu bytes written), %zu of %zu "
               "realisations, %zu logs; peak RSS %ld KiB\n",
               st.uploaded, st.paths, (unsigned long long)st.nar_bytes,
               (unsigned long long)st.file_bytes, st.realisations, st.realisations_n, logs.n,
               ru.ru_maxrss);
    }
    rc = 0;
out:
    store_close(store);
    cache_free(cache);
    strvec_dispose(&paths);
    strvec_dispose(&ids);
    strvec_dispose(&logs);
    return rc;
}
