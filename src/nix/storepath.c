/*
 * storepath.c: store path syntax and the makeStorePath family.
 *
 * A store path is  NIX_STORE_DIR "/" <32 nix32 chars> "-" <name>  where the name has
 * 1..LIMIT_STORE_PATH_NAME chars from [A-Za-z0-9+-._?=] and is not "." or "..".
 * Nothing may follow the name (a path inside a store object is not a store path).
 *
 * makeStorePath(type, inner, name) = storeDir/nix32(compress20(sha256(FP)))-name with
 *   FP = type ":sha256:" hex(inner) ":" storeDir ":" name
 * and the types:
 *   text    "text" (":" ref)*                 inner = sha256(contents)
 *   source  "source" (":" ref)* [":self"]     inner = sha256(NAR)
 *   fixed   "output:out"                      inner = sha256("fixed:out:[r:]algo:hex:")
 *   IA out  "output:" output                  inner = hashDerivationModulo
 * References are full store paths, sorted and without duplicates.
 */
#include <stdlib.h>
#include <string.h>

#include "nix/nix_int.h"

#define STORE_DIR_LEN (sizeof NIX_STORE_DIR - 1)

static inline int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '-' || c == '.' || c == '_' || c == '?' || c == '=';
}

int nix__name_char(unsigned char c)
{
    return name_char(c);
}

/* Check "<hash>-<name>" of length n. */
static int basename_check_n(const char *p, size_t n, Err *e)
{
    size_t nlen;
    if (n < NIX_HASH_PART_LEN + 2)
        return err_set(e, ERR_MALFORMED, "too short to be a store path");
    for (size_t i = 0; i < NIX_HASH_PART_LEN; i++)
        if (!nix__base32_value[(unsigned char)p[i]])
            return err_set(e, ERR_MALFORMED, "hash part has a character that is not base-32");
    if (p[NIX_HASH_PART_LEN] != '-')
        return err_set(e, ERR_MALFORMED, "no '-' after the hash part");
    p += NIX_HASH_PART_LEN + 1;
    nlen = n - NIX_HASH_PART_LEN - 1;
    if (nlen > LIMIT_STORE_PATH_NAME)
        return err_set(e, ERR_MALFORMED, "name is longer than %d characters",
                       LIMIT_STORE_PATH_NAME);
    for (size_t i = 0; i < nlen; i++)
        if (!name_char((unsigned char)p[i]))
            return err_set(e, ERR_MALFORMED, "name has a forbidden character (0x%02x)",
                           (unsigned char)p[i]);
    if ((nlen == 1 && p[0] == '.') || (nlen == 2 && p[0] == '.' && p[1] == '.'))
        return err_set(e, ERR_MALFORMED, "name is '.' or '..'");
    return 0;
}

int nix__store_path_check_n(const char *p, size_t n, Err *e)
{
    if (n < STORE_DIR_LEN + 1 || memcmp(p, NIX_STORE_DIR, STORE_DIR_LEN) != 0 ||
        p[STORE_DIR_LEN] != '/')
        return err_set(e, ERR_MALFORMED, "not in %s", NIX_STORE_DIR);
    return basename_check_n(p + STORE_DIR_LEN + 1, n - STORE_DIR_LEN - 1, e);
}

int nix_store_path_check(const char *path, Err *e)
{
    size_t n = strnlen(path, LIMIT_STORE_PATH + 1);
    int rc;
    if (n > STORE_DIR_LEN + 1 + NIX_HASH_PART_LEN + 1 + LIMIT_STORE_PATH_NAME)
        return err_set(e, ERR_MALFORMED, "invalid store path '%.64s...': too long", path);
    rc = nix__store_path_check_n(path, n, e);
    if (rc < 0)
        err_prefix(e, "invalid store path '%s'", path);
    return rc;
}

int nix_store_basename_check(const char *base, Err *e)
{
    size_t n = strnlen(base, LIMIT_STORE_PATH + 1);
    int rc;
    if (n > NIX_HASH_PART_LEN + 1 + LIMIT_STORE_PATH_NAME)
        return err_set(e, ERR_MALFORMED, "invalid store path name '%.64s...': too long", base);
    rc = basename_check_n(base, n, e);
    if (rc < 0)
        err_prefix(e, "invalid store path name '%s'", base);
    return rc;
}

const char *nix_store_path_base(const char *path)
{
    return path + STORE_DIR_LEN + 1;
}

const char *nix_store_path_name(const char *path)
{
    return path + STORE_DIR_LEN + 1 + NIX_HASH_PART_LEN + 1;
}

int nix_store_path_is_drv(const char *path)
{
    return util_ends_with(path, ".drv");
}

char *nix_drv_name_from_path(const char *drv_path)
{
    const char *name = nix_store_path_name(drv_path);
    size_t n = strlen(name);
    if (n >= 4 && memcmp(name + n - 4, ".drv", 4) == 0)
        n -= 4;
    return xstrndup(name, n);
}

/* ---------------------------------------------------------------- makeStorePath */

static int name_ok(const char *name)
{
    size_t n = strnlen(name, LIMIT_STORE_PATH_NAME + 1);
    if (n == 0 || n > LIMIT_STORE_PATH_NAME)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char((unsigned char)name[i]))
            return 0;
    return !(strcmp(name, ".") == 0 || strcmp(name, "..") == 0);
}

/* Path from a finished fingerprint prefix: FP = type ":sha256:" hex ":" dir ":" name.
 * NULL when the name is not a valid store path name. */
static char *make_path(const char *type, size_t type_len, const NixHash *inner, const char *name)
{
    char hex[2 * 64 + 1];
    uint8_t c20[20];
    char b32[NIX_HASH_PART_LEN + 1];
    NixHash h;
    NixHashCtx *ctx;
    if (!name_ok(name))
        return NULL;
    nix__hex_encode(inner->d, inner->len, hex);
    ctx = nix_hash_ctx_new(NIX_HASH_SHA256);
    nix_hash_ctx_update(ctx, type, type_len);
    nix_hash_ctx_update(ctx, ":", 1);
    nix_hash_ctx_update(ctx, nix_hash_algo_name(inner->algo),
                        strlen(nix_hash_algo_name(inner->algo)));
    nix_hash_ctx_update(ctx, ":", 1);
    nix_hash_ctx_update(ctx, hex, 2 * inner->len);
    nix_hash_ctx_update(ctx, ":" NIX_STORE_DIR ":", STORE_DIR_LEN + 2);
    nix_hash_ctx_update(ctx, name, strlen(name));
    nix_hash_ctx_final(ctx, &h);
    nix_hash_compress(&h, 20, c20);
    nix_base32_encode(c20, 20, b32);
    return xasprintf("%s/%s-%s", NIX_STORE_DIR, b32, name);
}

char *nix_make_store_path(const char *type, const NixHash *inner, const char *name)
{
    return make_path(type, strlen(type), inner, name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "<kind>(:ref)*[:self]" with refs sorted and unique; NULL on a too large type. */
static char *type_with_refs(const char *kind, char *const *refs, size_t nrefs, int self_ref,
                            size_t *len)
{
    Buf b;
    char **sorted = NULL;
    char *out;
    buf_init(&b, LIMIT_BUF_DEFAULT);
    buf_puts(&b, kind);
    if (nrefs) {
        sorted = xmalloc(nrefs * sizeof *sorted);
        memcpy(sorted, refs, nrefs * sizeof *sorted);
        qsort(sorted, nrefs, sizeof *sorted, cmp_str);
        for (size_t i = 0; i < nrefs; i++) {
            if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0)
                continue;
            buf_putc(&b, ':');
            buf_puts(&b, sorted[i]);
        }
        free(sorted);
    }
    if (self_ref)
        buf_puts(&b, ":self");
    if (buf_status(&b) < 0) {
        buf_dispose(&b);
        return NULL;
    }
    out = buf_take(&b, len);
    return out;
}

char *nix_make_text_path(const char *name, const NixHash *content_sha256, char *const *refs,
                         size_t nrefs)
{
    size_t tlen = 0;
    char *type = type_with_refs("text", refs, nrefs, 0, &tlen);
    char *path = NULL;
    if (type)
        path = make_path(type, tlen, content_sha256, name);
    free(type);
    return path;
}

char *nix_make_fixed_output_path(int recursive, const NixHash *h, const char *name,
                                 char *const *refs, size_t nrefs, int self_ref)
{
    char hex[2 * 64 + 1];
    NixHash inner;
    NixHashCtx *ctx;
    const char *algo;

    if (recursive && h->algo == NIX_HASH_SHA256) {
        size_t tlen = 0;
        char *type = type_with_refs("source", refs, nrefs, self_ref, &tlen);
        char *path = NULL;
        if (type)
            path = make_path(type, tlen, h, name);
        free(type);
        return path;
    }
    if (nrefs || self_ref)
        return NULL; /* fixed (output:out) paths cannot have references */
    algo = nix_hash_algo_name(h->algo);
    nix__hex_encode(h->d, h->len, hex);
    ctx = nix_hash_ctx_new(NIX_HASH_SHA256);
    nix_hash_ctx_update(ctx, "fixed:out:", 10);
    if (recursive)
        nix_hash_ctx_update(ctx, "r:", 2);
    nix_hash_ctx_update(ctx, algo, strlen(algo));
    nix_hash_ctx_update(ctx, ":", 1);
    nix_hash_ctx_update(ctx, hex, 2 * h->len);
    nix_hash_ctx_update(ctx, ":", 1);
    nix_hash_ctx_final(ctx, &inner);
    return make_path("output:out", 10, &inner, name);
}

char *nix_output_path_name(const char *drv_name, const char *output)
{
    if (strcmp(output, "out") == 0)
        return xstrdup(drv_name);
    return xasprintf("%s-%s", drv_name, output);
}

char *nix_scratch_path(const char *drv_path, const char *output)
{
    NixHash zero = {.algo = NIX_HASH_SHA256, .len = 32};
    char *drv_name, *type, *name, *path;
    Err e = {0};
    if (nix_store_path_check(drv_path, &e) < 0 || !nix_store_path_is_drv(drv_path))
        return NULL;
    drv_name = nix_drv_name_from_path(drv_path);
    type = xasprintf("rewrite:%s:name:%s", nix_store_path_base(drv_path), output);
    name = nix_output_path_name(drv_name, output);
    path = make_path(type, strlen(type), &zero, name);
    free(drv_name);
    free(type);
    free(name);
    return path;
}

char *nix_make_output_path(const char *output, const NixHash *h, const char *drv_name)
{
    char *type = xasprintf("output:%s", output);
    char *name = nix_output_path_name(drv_name, output);
    char *path = make_path(type, strlen(type), h, name);
    free(type);
    free(name);
    return path;
}
