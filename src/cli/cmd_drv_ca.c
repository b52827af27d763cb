/*
 * cmd_drv_ca.c: the content-addressing views of a derivation: `sluice drv outputs`
 * (paths, placeholders, realisation ids) and `sluice drv resolve`.
 *
 *   sluice drv outputs DRV
 *       One line per output, in output-name order, three tab-separated fields:
 *           NAME  PATH-or-PLACEHOLDER  REALISATION-ID
 *       PATH is the output's store path when it is statically known (input-addressed
 *       and fixed outputs); otherwise (floating CA, deferred, impure) the field is the
 *       output's downstream placeholder, the string dependents of DRV have in place of
 *       that path and that resolution replaces.  REALISATION-ID is "sha256:<hex>!NAME"
 *       with the masked hashDerivationModulo, as Nix 2.8 keys realisations.  Input
 *       derivations are read from the store.
 *   sluice drv resolve [--force] DRV [--input 'INPUTDRV!OUT=PATH']...
 *       Resolve DRV as Nix 2.8 does before building it (inputs folded into inputSrcs,
 *       placeholders rewritten, deferred outputs filled) with the given actual output
 *       paths of its inputs.  An input output not given is taken from the input drv
 *       when it is statically known (input-addressed or fixed); otherwise it is an
 *       error.  --force resolves without filling or changing DRV's own outputs (what a
 *       remote builder is sent for input-addressed and fixed-output drvs).  Prints the
 *       resolved drv's store path on line 1, then its ATerm and a newline.
 *
 * DRV is a store path /nix/store/<hash>-<name>.drv or a file whose base name has that
 * form.  Exit status: 0, 1 on a bad or unreadable derivation or a missing input, 2 on
 * a usage error.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "nix/nix.h"

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int cli_cmd_drv_outputs(CliConfig *cfg, int argc, char **argv)
{
    const char *arg = NULL;
    char *drv_path = NULL, **paths = NULL, **ids = NULL;
    NixHashCache *c = NULL;
    NixDrv *d = NULL;
    Err e = {0};
    int rc = 0;

    (void)cfg;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_error("drv outputs: unknown flag '%s'", argv[i]);
            return 2;
        }
        if (arg) {
            cli_error("drv outputs: one DRV only");
            return 2;
        }
        arg = argv[i];
    }
    if (!arg) {
        cli_error("usage: sluice drv outputs DRV   (prints NAME<TAB>PATH-or-PLACEHOLDER<TAB>"
                  "REALISATION-ID per output)");
        return 2;
    }
    c = nix_hash_cache_new(NULL, NULL);
    if (cli_drv_load(arg, &drv_path, &d, &e) < 0 || nix_drv_output_paths(c, d, &paths, &e) < 0 ||
        nix_drv_realisation_ids(c, d, &ids, &e) < 0) {
        rc = cli_fail(&e);
        goto out;
    }
    for (size_t i = 0; i < d->n_outputs; i++) {
        char ph[NIX_PLACEHOLDER_LEN + 1];
        const char *p = paths[i];
        if (!p) {
            if (nix_placeholder_downstream(drv_path, d->outputs[i].name, ph, &e) < 0) {
                rc = cli_fail(&e);
                goto out;
            }
            p = ph;
        }
        printf("%s\t%s\t%s\n", d->outputs[i].name, p, ids[i]);
    }
    if (fflush(stdout) != 0) {
        cli_error("drv outputs: cannot write the output");
        rc = 1;
    }
out:
    if (d) {
        free_strv(paths, d->n_outputs);
        free_strv(ids, d->n_outputs);
    }
    nix_drv_free(d);
    free(drv_path);
    nix_hash_cache_free(c);
    return rc;
}

/* One --input 'DRV!OUT=PATH'.  Output names may contain '=' but never '/', and PATH
 * starts with '/', so the separator is the first "=/" after the '!'. */
typedef struct InputArg {
    char *drv_path, *output, *path;
} InputArg;

static int parse_input(const char *s, InputArg *out)
{
    const char *bang = strchr(s, '!'), *eq;
    if (!bang)
        return -1;
    eq = strstr(bang, "=/");
    if (!eq || bang == s || eq == bang + 1 || eq[1] == '\0')
        return -1;
    out->drv_path = xstrndup(s, (size_t)(bang - s));
    out->output = xstrndup(bang + 1, (size_t)(eq - bang - 1));
    out->path = xstrdup(eq + 1);
    return 0;
}

/* Add the statically known outputs of inputs the caller did not give. */
static int add_static_inputs(NixHashCache *c, const NixDrv *d, InputArg **args, size_t *n, Err *e)
{
    for (size_t i = 0; i < d->n_inputs; i++) {
        const NixDrvInput *in = &d->inputs[i];
        NixDrv *id = NULL;
        char **paths = NULL;
        int rc;
        for (size_t k = 0; k < in->n_outputs; k++) {
            int given = 0;
            for (size_t j = 0; j < *n && !given; j++)
                given = strcmp((*args)[j].drv_path, in->drv_path) == 0 &&
                        strcmp((*args)[j].output, in->outputs[k]) == 0;
            if (given)
                continue;
            if (!id) {
                rc = nix_drv_read(in->drv_path, &id, e);
                if (rc == 0)
                    rc = nix_drv_output_paths(c, id, &paths, e);
                if (rc < 0) {
                    nix_drv_free(id);
                    return rc;
                }
            }
            for (size_t o = 0; o < id->n_outputs; o++) {
                if (strcmp(id->outputs[o].name, in->outputs[k]) != 0)
                    continue;
                if (!paths[o])
                    break;
                *args = xrealloc(*args, (*n + 1) * sizeof **args);
                (*args)[*n].drv_path = xstrdup(in->drv_path);
                (*args)[*n].output = xstrdup(in->outputs[k]);
                (*args)[*n].path = xstrdup(paths[o]);
                (*n)++;
                break;
            }
        }
        if (id) {
            free_strv(paths, id->n_outputs);
            nix_drv_free(id);
        }
    }
    return 0;
}

int cli_cmd_drv_resolve(CliConfig *cfg, int argc, char **argv)
{
    const char *arg = NULL;
    InputArg *args = NULL;
    NixInputPath *in = NULL;
    size_t n = 0;
    char *drv_path = NULL, *rpath = NULL;
    NixHashCache *c = NULL;
    NixDrv *d = NULL, *r = NULL;
    Buf text;
    Err e = {0};
    int force = 0, rc = 0;

    (void)cfg;
    buf_init(&text, LIMIT_BUF_DEFAULT);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--input") == 0 || strncmp(a, "--input=", 8) == 0) {
            const char *v = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
            args = xrealloc(args, (n + 1) * sizeof *args);
            if (!v || parse_input(v, &args[n]) < 0) {
                cli_error("drv resolve: --input takes 'DRVPATH!OUTPUT=PATH'");
                rc = 2;
                goto out;
            }
            n++;
        } else if (strcmp(a, "--force") == 0) {
            force = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("drv resolve: unknown flag '%s'", a);
            rc = 2;
            goto out;
        } else if (arg) {
            cli_error("drv resolve: one DRV only");
            rc = 2;
            goto out;
        } else {
            arg = a;
        }
    }
    if (!arg) {
        cli_error("usage: sluice drv resolve [--force] DRV [--input 'DRVPATH!OUT=PATH']...");
        rc = 2;
        goto out;
    }
    c = nix_hash_cache_new(NULL, NULL);
    if (cli_drv_load(arg, &drv_path, &d, &e) < 0 || add_static_inputs(c, d, &args, &n, &e) < 0) {
        rc = cli_fail(&e);
        goto out;
    }
    in = xcalloc(n ? n : 1, sizeof *in);
    for (size_t i = 0; i < n; i++) {
        in[i].drv_path = args[i].drv_path;
        in[i].output = args[i].output;
        in[i].path = args[i].path;
    }
    rc = force ? nix_drv_resolve_force(c, d, in, n, &r, &e) : nix_drv_resolve(c, d, in, n, &r, &e);
    if (rc < 0) {
        err_prefix(&e, "resolving %s", drv_path);
        rc = cli_fail(&e);
        goto out;
    }
    rpath = nix_drv_store_path(r, r->name);
    if (!rpath || nix_drv_print(r, &text) < 0) {
        cli_error("drv resolve: cannot compute the resolved derivation of %s", drv_path);
        rc = 1;
        goto out;
    }
    printf("%s\n", rpath);
    fwrite(text.p, 1, text.len, stdout);
    putchar('\n');
    if (fflush(stdout) != 0) {
        cli_error("drv resolve: cannot write the output");
        rc = 1;
    }
out:
    for (size_t i = 0; i < n; i++) {
        free(args[i].drv_path);
        free(args[i].output);
        free(args[i].path);
    }
    free(args);
    free(in);
    free(rpath);
    buf_dispose(&text);
    nix_drv_free(r);
    nix_drv_free(d);
    free(drv_path);
    nix_hash_cache_free(c);
    return rc;
}
