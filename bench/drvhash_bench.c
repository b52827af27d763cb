/*
 * drvhash_bench.c: helper of bench/drv-hash.sh (built by it).  Times, on one core,
 * what sluice does for every derivation of a graph: parse the ATerm, hashDerivationModulo
 * unmasked (memoised under the drv path, as for an input) and masked, and the output
 * paths (makeOutputPath from the masked hash, checked against the paths in the drv).
 *
 *   drvhash_bench LIST [REPS]
 *
 * LIST holds drv paths, inputs before the drvs that use them (`nix-store -qR` order);
 * the files are read into memory first so that only computation is timed.  Prints TSV
 * rows "phase drvs kb reps seconds drvs_per_s us_per_kb" (CPU seconds of the best rep):
 *   read         reading the files (once, not in the other phases)
 *   parse        nix_drv_parse of every drv
 *   hash         modulo + output paths given parsed drvs (parse excluded)
 *   parse+hash   everything, as a runner would do it
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nix/nix.h"

typedef struct Text {
    char *path;
    uint8_t *p;
    size_t n;
} Text;

/* CPU time of this (single-threaded) process: what one core spends, whatever else
 * the machine is running. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static Map *by_path;
static size_t extra_loads;

static int mem_loader(void *payload, const char *drv_path, NixDrv **out, Err *e)
{
    Text *t = map_get(by_path, drv_path);
    (void)payload;
    if (!t)
        return err_set(e, ERR_NOTFOUND, "%s is not in the list", drv_path);
    extra_loads++;
    if (nix_drv_parse(t->p, t->n, out, e) < 0)
        return e->code;
    (*out)->name = nix_drv_name_from_path(drv_path);
    return 0;
}

/* hash modulo (unmasked, memoised; masked) and output paths of d. */
static int hash_one(NixHashCache *c, const char *path, const NixDrv *d, Err *e)
{
    NixModulo m;
    int rc = nix_hash_cache_add(c, path, d, e);
    if (rc < 0)
        return rc;
    rc = nix_drv_hash_modulo(c, d, 1, &m, e);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < d->n_outputs && !m.deferred; i++) {
        const NixDrvOutput *o = &d->outputs[i];
        char *p;
        if (nix_drv_output_kind(o) != NIX_OUT_INPUT_ADDRESSED)
            continue;
        p = nix_make_output_path(o->name, &m.hashes[i], d->name);
        if (!p || strcmp(p, o->path) != 0) {
            fprintf(stderr, "%s: output %s: computed %s\n", path, o->name, p ? p : "(null)");
            free(p);
            nix_modulo_dispose(&m);
            return err_set(e, ERR_MALFORMED, "output path mismatch");
        }
        free(p);
    }
    if (m.deferred) {
        char **paths = NULL;
        rc = nix_drv_output_paths(c, d, &paths, e);
        for (size_t i = 0; paths && i < d->n_outputs; i++)
            free(paths[i]);
        free(paths);
    }
    nix_modulo_dispose(&m);
    return rc;
}

static void row(const char *phase, size_t n, double kb, int reps, double s)
{
    printf("%s\t%zu\t%.0f\t%d\t%.4f\t%.0f\t%.3f\n", phase, n, kb, reps, s, (double)n / s,
           s * 1e6 / kb);
}

int main(int argc, char **argv)
{
    FILE *f;
    char line[LIMIT_STORE_PATH + 2];
    Text *t = NULL;
    NixDrv **parsed;
    size_t n = 0, cap = 0, bytes = 0;
    int reps = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 3;
    double t0, best_parse = 1e30, best_hash = 1e30, best_all = 1e30, kb;
    Err e = {0};

    if (argc < 2 || reps < 1) {
        fprintf(stderr, "usage: drvhash_bench LIST [REPS]\n");
        return 2;
    }
    f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    by_path = map_new(NULL);
    t0 = now();
    while (fgets(line, sizeof line, f)) {
        Buf b;
        line[strcspn(line, "\n")] = '\0';
        if (!line[0])
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            t = xrealloc(t, cap * sizeof *t);
        }
        buf_init(&b, LIMIT_DRV_FILE_SIZE);
        if (util_read_file(line, &b, &e) < 0) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        t[n].path = xstrdup(line);
        t[n].n = b.len;
        t[n].p = (uint8_t *)buf_take(&b, NULL);
        map_put(by_path, t[n].path, &t[n]);
        bytes += t[n].n;
        n++;
    }
    fclose(f);
    kb = (double)bytes / 1024.0;
    printf("phase\tdrvs\tkb\treps\tseconds\tdrvs_per_s\tus_per_kb\n");
    row("read", n, kb, 1, now() - t0);

    parsed = xcalloc(n ? n : 1, sizeof *parsed);
    for (int r = 0; r < reps; r++) {
        double s;
        NixHashCache *c;
        /* parse only */
        t0 = now();
        for (size_t i = 0; i < n; i++) {
            if (nix_drv_parse(t[i].p, t[i].n, &parsed[i], &e) < 0) {
                fprintf(stderr, "%s: %s\n", t[i].path, e.msg);
                return 1;
            }
        }
        s = now() - t0;
        best_parse = s < best_parse ? s : best_parse;
        for (size_t i = 0; i < n; i++)
            parsed[i]->name = nix_drv_name_from_path(t[i].path);
        /* hash only, on the parsed drvs */
        c = nix_hash_cache_new(mem_loader, NULL);
        t0 = now();
        for (size_t i = 0; i < n; i++) {
            if (hash_one(c, t[i].path, parsed[i], &e) < 0) {
                fprintf(stderr, "%s: %s\n", t[i].path, e.msg);
                return 1;
            }
        }
        s = now() - t0;
        best_hash = s < best_hash ? s : best_hash;
        nix_hash_cache_free(c);
        for (size_t i = 0; i < n; i++) {
            nix_drv_free(parsed[i]);
            parsed[i] = NULL;
        }
        /* everything, one drv at a time */
        c = nix_hash_cache_new(mem_loader, NULL);
        t0 = now();
        for (size_t i = 0; i < n; i++) {
            NixDrv *d = NULL;
            if (nix_drv_parse(t[i].p, t[i].n, &d, &e) < 0 ||
                ((d->name = nix_drv_name_from_path(t[i].path)), hash_one(c, t[i].path, d, &e)) <
                    0) {
                fprintf(stderr, "%s: %s\n", t[i].path, e.msg);
                return 1;
            }
            nix_drv_free(d);
        }
        s = now() - t0;
        best_all = s < best_all ? s : best_all;
        nix_hash_cache_free(c);
    }
    row("parse", n, kb, reps, best_parse);
    row("hash", n, kb, reps, best_hash);
    row("parse+hash", n, kb, reps, best_all);
    if (extra_loads)
        fprintf(stderr, "note: %zu inputs were loaded out of order\n", extra_loads);
    for (size_t i = 0; i < n; i++) {
        free(t[i].path);
        free(t[i].p);
    }
    free(t);
    free(parsed);
    map_free(by_path);
    return 0;
}
