/*
 * inputs.c: the output paths of a step's inputs, for the BasicDerivation its builder
 * gets: the static path of an input-addressed output, the database's record of a
 * content-addressed one (following resolutions), or the local store's realisation.
 * An input nobody knows any more names its drv, which is then built again first.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner/inputs.h"
#include "runner/rdb.h"

/* Output path of (drv, output) for an input of a step being dispatched: the static
 * path, the DB's record (following resolutions), or the local realisation.  *out NULL
 * when unknown. */
int runner__input_output_path(Runner *r, Db *db, StoreConn *local, const char *drv_path,
                              const char *output, char **out, Err *e)
{
    NixDrv *d = NULL;
    StrVec names, paths;
    int rc;
    *out = NULL;
    strvec_init(&names);
    strvec_init(&paths);
    rc = nix_drv_read(drv_path, &d, e);
    if (rc < 0) {
        if (access(drv_path, F_OK) == 0)
            goto out;
        /* the drv is gone: only the DB can still know the output (else unknown, not a
         * transient error: the caller fails or rebuilds) */
        err_clear(e);
        rc = 0;
        d = NULL;
    }
    for (size_t i = 0; d && i < d->n_outputs; i++)
        if (strcmp(d->outputs[i].name, output) == 0 && d->outputs[i].path[0]) {
            *out = xstrdup(d->outputs[i].path);
            goto out;
        }
    rc = runner__rdb_recorded_outputs(db, drv_path, &names, &paths, e);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < names.n; i++)
        if (strcmp(names.v[i], output) == 0) {
            int valid = 0;
            rc = store_is_valid_path(local, paths.v[i], &valid, e);
            if (rc < 0)
                goto out;
            if (valid) {
                *out = xstrdup(paths.v[i]);
                goto out;
            }
        }
    if (!d)
        goto out;
    {
        char **ids = NULL;
        pthread_mutex_lock(&r->hash_lock);
        rc = nix_drv_realisation_ids(r->hash_cache, d, &ids, e);
        pthread_mutex_unlock(&r->hash_lock);
        if (rc < 0)
            goto out;
        for (size_t i = 0; i < d->n_outputs && rc == 0; i++) {
            if (strcmp(d->outputs[i].name, output) == 0) {
                char *base = NULL;
                rc = store_query_realisation(local, ids[i], &base, NULL, e);
                if (rc == 0 && base) {
                    int valid = 0;
                    char *full = xasprintf("%s/%s", NIX_STORE_DIR, base);
                    rc = store_is_valid_path(local, full, &valid, e);
                    if (rc == 0 && valid)
                        *out = full;
                    else
                        free(full);
                }
                free(base);
            }
        }
        for (size_t i = 0; i < d->n_outputs; i++)
            free(ids[i]);
        free(ids);
    }
out:
    nix_drv_free(d);
    strvec_dispose(&names);
    strvec_dispose(&paths);
    return rc;
}

/* The input paths of d; on a missing one *missing_drv names its drv (caller frees). */
int runner__collect_inputs(Runner *r, Db *db, StoreConn *local, const NixDrv *d, NixInputPath **out,
                           size_t *n_out, char **missing_drv, char **missing_out, Err *e)
{
    NixInputPath *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    *missing_drv = NULL;
    *missing_out = NULL;
    for (size_t i = 0; i < d->n_inputs && rc == 0; i++) {
        for (size_t j = 0; j < d->inputs[i].n_outputs; j++) {
            char *p = NULL;
            int valid = 0;
            rc = runner__input_output_path(r, db, local, d->inputs[i].drv_path,
                                           d->inputs[i].outputs[j], &p, e);
            if (rc < 0)
                break;
            if (p) {
                rc = store_is_valid_path(local, p, &valid, e);
                if (rc < 0) {
                    free(p);
                    break;
                }
            }
            if (!p || !valid) {
                free(p);
                *missing_drv = xstrdup(d->inputs[i].drv_path);
                *missing_out = xstrdup(d->inputs[i].outputs[j]);
                goto out;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                v = xrealloc(v, cap * sizeof *v);
            }
            v[n].drv_path = d->inputs[i].drv_path;
            v[n].output = d->inputs[i].outputs[j];
            v[n].path = p;
            n++;
        }
    }
out:
    if (rc < 0 || *missing_drv) {
        for (size_t i = 0; i < n; i++)
            free((char *)v[i].path);
        free(v);
        v = NULL;
        n = 0;
    }
    *out = v;
    *n_out = n;
    return rc;
}

void runner__inputs_free(NixInputPath *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)v[i].path);
    free(v);
}
