/*
 * cmd_drv.c: `sluice drv show` and `sluice drv path`.
 *
 *   sluice drv show [-r|--recursive] DRV...
 *       One JSON object with every DRV (and with -r every drv of their closures),
 *       the same as `nix show-derivation` of Nix 2.8 once keys are sorted; written
 *       compactly with sorted keys and a final newline.  DRV is a store path
 *       /nix/store/<hash>-<name>.drv, or any file whose base name has that form (it
 *       is shown under the store path with that base name).
 *   sluice drv path [--name NAME] FILE...
 *       The store path the .drv text in FILE gets: the text path of NAME.drv over
 *       the bytes, with the input derivations and sources as references.  NAME is
 *       taken from FILE's base name when that is a store path name, else from the
 *       env variable "name", else from FILE's base name without ".drv".  One line
 *       per FILE, in order; the first bad FILE stops the command.
 *
 * Exit status: 0, 1 on a bad or unreadable derivation (the message names the file
 * and the byte offset), 2 on a usage error.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "nix/nix.h"

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Load DRV (see above); *key is the store path it is shown under (caller frees). */
int cli_drv_load(const char *arg, char **key, NixDrv **out, Err *e)
{
    const char *base = base_name(arg);
    int rc;
    *key = NULL;
    *out = NULL;
    if (nix_store_path_check(arg, NULL) == 0) {
        rc = nix_drv_read(arg, out, e);
        if (rc < 0)
            return rc;
        *key = xstrdup(arg);
        return 0;
    }
    if (nix_store_basename_check(base, NULL) < 0 || !util_ends_with(base, ".drv"))
        return err_set(e, ERR_INVALID,
                       "%s: not a derivation path (%s/<hash>-<name>.drv or a file named so)", arg,
                       NIX_STORE_DIR);
    rc = nix_drv_read_file(arg, out, e);
    if (rc < 0)
        return rc;
    *key = xasprintf("%s/%s", NIX_STORE_DIR, base);
    (*out)->name = nix_drv_name_from_path(*key);
    return 0;
}

static void drv_free_cb(void *p)
{
    nix_drv_free(p);
}

int cli_cmd_drv_show(CliConfig *cfg, int argc, char **argv)
{
    Map *seen = map_new(drv_free_cb);
    StrVec todo, keys;
    Buf out;
    Err e = {0};
    int recursive = 0, rc = 0, nargs = 0;
    size_t it = 0;
    const char *k;
    void *v;

    (void)cfg;
    strvec_init(&todo);
    strvec_init(&keys);
    buf_init(&out, LIMIT_BUF_DEFAULT);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-r") == 0 || strcmp(argv[i], "--recursive") == 0) {
            recursive = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_error("drv show: unknown flag '%s'", argv[i]);
            rc = 2;
            goto out;
        } else {
            strvec_push(&todo, argv[i]);
            nargs++;
        }
    }
    if (nargs == 0) {
        cli_error("usage: sluice drv show [-r] DRV...");
        rc = 2;
        goto out;
    }
    /* todo grows while we walk it when -r is given */
    for (size_t i = 0; i < todo.n; i++) {
        char *key = NULL;
        NixDrv *d = NULL;
        if (map_get(seen, todo.v[i]))
            continue;
        if (cli_drv_load(todo.v[i], &key, &d, &e) < 0) {
            rc = cli_fail(&e);
            goto out;
        }
        if (map_get(seen, key)) {
            nix_drv_free(d);
            free(key);
            continue;
        }
        if (recursive)
            for (size_t j = 0; j < d->n_inputs; j++)
                strvec_push(&todo, d->inputs[j].drv_path);
        map_put(seen, key, d);
        free(key);
    }
    while (map_next(seen, &it, &k, &v))
        strvec_push(&keys, k);
    strvec_sort_unique(&keys);
    buf_putc(&out, '{');
    for (size_t i = 0; i < keys.n; i++) {
        if (i)
            buf_putc(&out, ',');
        nix_drv_show_json_member(map_get(seen, keys.v[i]), keys.v[i], &out);
    }
    buf_puts(&out, "}\n");
    if (buf_status(&out) < 0) {
        cli_error("drv show: output too large");
        rc = 1;
        goto out;
    }
    if (fwrite(out.p, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
        cli_error("drv show: cannot write the output");
        rc = 1;
    }
out:
    buf_dispose(&out);
    strvec_dispose(&todo);
    strvec_dispose(&keys);
    map_free(seen);
    return rc;
}

/* The store path of one file (see the top of this file); printed on stdout. */
static int drv_path_one(const char *file, const char *name_opt)
{
    const char *base = base_name(file);
    char *name = NULL, *path = NULL;
    NixDrv *d = NULL;
    Err e = {0};
    int rc = 0;

    if (nix_drv_read_file(file, &d, &e) < 0) {
        rc = cli_fail(&e);
        goto out;
    }
    if (name_opt)
        name = xstrdup(name_opt);
    else if (nix_store_basename_check(base, NULL) == 0 && util_ends_with(base, ".drv"))
        name = xstrndup(base + NIX_HASH_PART_LEN + 1, strlen(base) - NIX_HASH_PART_LEN - 1 - 4);
    else if (nix_drv_env(d, "name"))
        name = xstrdup(nix_drv_env(d, "name"));
    else if (util_ends_with(base, ".drv"))
        name = xstrndup(base, strlen(base) - 4);
    else
        name = xstrdup(base);
    path = nix_drv_store_path(d, name);
    if (!path) {
        cli_error("%s: '%s.drv' is not a valid store path name", file, name);
        rc = 1;
        goto out;
    }
    printf("%s\n", path);
out:
    free(path);
    free(name);
    nix_drv_free(d);
    return rc;
}

int cli_cmd_drv_path(CliConfig *cfg, int argc, char **argv)
{
    const char *name_opt = NULL;
    StrVec files;
    int rc = 0;

    (void)cfg;
    strvec_init(&files);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
            name_opt = argv[++i];
        } else if (strncmp(argv[i], "--name=", 7) == 0) {
            name_opt = argv[i] + 7;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_error("drv path: unknown flag '%s'", argv[i]);
            rc = 2;
            goto out;
        } else {
            strvec_push(&files, argv[i]);
        }
    }
    if (files.n == 0) {
        cli_error("usage: sluice drv path [--name NAME] FILE...");
        rc = 2;
        goto out;
    }
    for (size_t i = 0; i < files.n && rc == 0; i++)
        rc = drv_path_one(files.v[i], name_opt);
    if (fflush(stdout) != 0) {
        cli_error("drv path: cannot write the output");
        rc = 1;
    }
out:
    strvec_dispose(&files);
    return rc;
}
