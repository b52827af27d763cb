/*
 * placeholder.c: the placeholders Nix 2.8 writes for outputs whose paths are not known
 * when a derivation is instantiated.
 *
 *   own output o (hashPlaceholder):       "/" + nix32(sha256("nix-output:" + o))
 *   output o of input drv P (downstream): "/" + nix32(sha256("nix-upstream-output:" +
 *                                          hashPart(P) + ":" + outputPathName(drvName(P), o)))
 *
 * Both are NIX_PLACEHOLDER_LEN (53) characters: "/" and the 52 nix32 chars of a sha256.
 */
#include <string.h>

#include "nix/nix.h"

static void placeholder_of(NixHashCtx *ctx, char *out)
{
    NixHash h;
    nix_hash_ctx_final(ctx, &h);
    out[0] = '/';
    nix_base32_encode(h.d, h.len, out + 1);
}

void nix_placeholder_own(const char *output, char *out)
{
    NixHashCtx *ctx = nix_hash_ctx_new(NIX_HASH_SHA256);
    nix_hash_ctx_update(ctx, "nix-output:", 11);
    nix_hash_ctx_update(ctx, output, strlen(output));
    placeholder_of(ctx, out);
}

int nix_placeholder_downstream(const char *drv_path, const char *output, char *out, Err *e)
{
    const char *base, *name;
    size_t name_len;
    NixHashCtx *ctx;
    int rc;

    rc = nix_store_path_check(drv_path, e);
    if (rc < 0)
        return rc;
    if (!nix_store_path_is_drv(drv_path))
        return err_set(e, ERR_MALFORMED, "'%s' is not a derivation path", drv_path);
    if (output[0] == '\0')
        return err_set(e, ERR_INVALID, "empty output name for '%s'", drv_path);
    base = nix_store_path_base(drv_path);
    name = nix_store_path_name(drv_path);
    name_len = strlen(name) - 4; /* minus ".drv" */
    ctx = nix_hash_ctx_new(NIX_HASH_SHA256);
    nix_hash_ctx_update(ctx, "nix-upstream-output:", 20);
    nix_hash_ctx_update(ctx, base, NIX_HASH_PART_LEN);
    nix_hash_ctx_update(ctx, ":", 1);
    nix_hash_ctx_update(ctx, name, name_len);
    if (strcmp(output, "out") != 0) {
        nix_hash_ctx_update(ctx, "-", 1);
        nix_hash_ctx_update(ctx, output, strlen(output));
    }
    placeholder_of(ctx, out);
    return 0;
}
