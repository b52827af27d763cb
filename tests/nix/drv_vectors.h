/* tests/nix/drv_vectors.h: access to the derivation vectors copied from real Nix 2.8 into
 * tests/data/nix/drv-hash/<name>/ (the .drv, facts.json with every intermediate value,
 * resolved/ for drvs Nix resolved, nar/ with the outputs).  A loader serves input drvs
 * from there, so no test needs /nix/store. */
#ifndef SLUICE_TESTS_NIX_DRV_VECTORS_H
#define SLUICE_TESTS_NIX_DRV_VECTORS_H

#include <glob.h>
#include <jansson.h>
#include <stdlib.h>

#include "nix/nix.h"
#include "test.h"

#define VEC_UNUSED __attribute__((unused))

/* The vectors, inputs before the drvs that use them. */
static const char *const vec_names[] VEC_UNUSED = {
    "ia-simple", "ia-multi", "fo-flat", "fo-flat-sha1", "fo-rec",   "ia-deps",
    "ia-txt",    "ca-a",     "ca-b",    "ca-c",         "ia-on-ca", "ca-multi",
};

/* File holding the drv with this basename ("<hash>-<name>.drv"), or NULL (caller frees). */
static VEC_UNUSED char *vec_find_file(const char *base)
{
    glob_t g;
    char *pat, *found = NULL;
    const char *dirs[] = {"%s/*/%s", "%s/*/resolved/%s"};
    for (size_t i = 0; i < 2 && !found; i++) {
        pat = xasprintf(dirs[i], test_data("nix/drv-hash"), base);
        if (glob(pat, 0, NULL, &g) == 0 && g.gl_pathc > 0)
            found = xstrdup(g.gl_pathv[0]);
        globfree(&g);
        free(pat);
    }
    return found;
}

typedef struct VecLoader {
    int loads; /* how many drvs were loaded */
} VecLoader;

static VEC_UNUSED int vec_loader(void *payload, const char *drv_path, NixDrv **out, Err *e)
{
    VecLoader *l = payload;
    char *file = vec_find_file(nix_store_path_base(drv_path));
    int rc;
    if (!file)
        return err_set(e, ERR_NOTFOUND, "no vector for %s", drv_path);
    rc = nix_drv_read_file(file, out, e);
    free(file);
    if (rc < 0)
        return rc;
    (*out)->name = nix_drv_name_from_path(drv_path);
    if (l)
        l->loads++;
    return 0;
}

/* facts.json of a vector (resolved = its resolved drv); caller json_decref()s. */
static VEC_UNUSED json_t *vec_facts(const char *name, int resolved)
{
    char rel[512];
    snprintf(rel, sizeof rel, "nix/drv-hash/%s/%sfacts.json", name, resolved ? "resolved/" : "");
    return json_load_file(test_data(rel), 0, NULL);
}

static VEC_UNUSED const char *vec_str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Read a vector's drv (name set from its path); *path gets its store path (borrowed
 * from facts). */
static VEC_UNUSED int vec_drv(const char *name, int resolved, json_t *facts, NixDrv **out, Err *e)
{
    const char *path = vec_str(facts, "drvPath");
    char *file;
    int rc;
    if (!path)
        return err_set(e, ERR_NOTFOUND, "facts of %s have no drvPath", name);
    file = vec_find_file(nix_store_path_base(path));
    (void)resolved;
    if (!file)
        return err_set(e, ERR_NOTFOUND, "no file for %s", path);
    rc = nix_drv_read_file(file, out, e);
    free(file);
    if (rc < 0)
        return rc;
    (*out)->name = nix_drv_name_from_path(path);
    return 0;
}

static VEC_UNUSED void vec_free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

#endif
