/*
 * cmd_nar.c: `sluice nar hash` and `sluice nar dump`.
 *
 *   sluice nar hash [--type ALGO] [--sri|--base32|--base16|--base64] PATH...
 *       The hash of each PATH's NAR serialisation, one line each, exactly as
 *       `nix hash path` of Nix 2.8 prints it: SRI ("sha256-<base64>") by default,
 *       --base32/--base16/--base64 the bare digest in that encoding.  ALGO is md5,
 *       sha1, sha256 (default) or sha512.
 *   sluice nar dump PATH
 *       The NAR of PATH on stdout, byte for byte what `nix-store --dump PATH` writes
 *       (streamed; files are never held in memory).
 *
 * Exit status: 0, 1 when a path cannot be read (or has an unsupported file type) or
 * stdout fails, 2 on a usage error.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "nix/nix.h"

static int hash_sink(void *payload, const uint8_t *data, size_t n, Err *e)
{
    (void)e;
    nix_hash_ctx_update(payload, data, n);
    return 0;
}

int cli_cmd_nar_hash(CliConfig *cfg, int argc, char **argv)
{
    enum { F_SRI, F_BASE32, F_BASE16, F_BASE64 } form = F_SRI;
    NixHashAlgo algo = NIX_HASH_SHA256;
    StrVec paths;
    Err e = {0};
    int rc = 0;

    (void)cfg;
    strvec_init(&paths);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--sri") == 0) {
            form = F_SRI;
        } else if (strcmp(a, "--base32") == 0) {
            form = F_BASE32;
        } else if (strcmp(a, "--base16") == 0) {
            form = F_BASE16;
        } else if (strcmp(a, "--base64") == 0) {
            form = F_BASE64;
        } else if (strcmp(a, "--type") == 0 || strncmp(a, "--type=", 7) == 0) {
            const char *v = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || nix_hash_algo_parse(v, &algo) < 0) {
                cli_error("nar hash: --type takes md5, sha1, sha256 or sha512");
                rc = 2;
                goto out;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_error("nar hash: unknown flag '%s'", a);
            rc = 2;
            goto out;
        } else {
            strvec_push(&paths, a);
        }
    }
    if (paths.n == 0) {
        cli_error("usage: sluice nar hash [--type ALGO] [--sri|--base32|--base16|--base64] "
                  "PATH...");
        rc = 2;
        goto out;
    }
    for (size_t i = 0; i < paths.n; i++) {
        NixHashCtx *ctx = nix_hash_ctx_new(algo);
        NixHash h;
        char t[NIX_HASH_TEXT_MAX];
        if (nix_nar_dump_path(paths.v[i], hash_sink, ctx, &e) < 0) {
            nix_hash_ctx_free(ctx);
            rc = cli_fail(&e);
            goto out;
        }
        nix_hash_ctx_final(ctx, &h);
        switch (form) {
        case F_SRI: nix_hash_to_sri(&h, t); break;
        case F_BASE32: nix_hash_to_base32(&h, t); break;
        case F_BASE16: nix_hash_to_base16(&h, t); break;
        case F_BASE64: nix_hash_to_base64(&h, t); break;
        }
        printf("%s\n", t);
    }
    if (fflush(stdout) != 0) {
        cli_error("nar hash: cannot write the output");
        rc = 1;
    }
out:
    strvec_dispose(&paths);
    return rc;
}

static int fd_sink(void *payload, const uint8_t *data, size_t n, Err *e)
{
    int fd = *(int *)payload;
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return err_sys(e, ERR_IO, "writing the NAR to stdout");
        }
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

int cli_cmd_nar_dump(CliConfig *cfg, int argc, char **argv)
{
    const char *path = NULL;
    int fd = STDOUT_FILENO;
    Err e = {0};

    (void)cfg;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_error("nar dump: unknown flag '%s'", argv[i]);
            return 2;
        }
        if (path) {
            cli_error("nar dump: one PATH only");
            return 2;
        }
        path = argv[i];
    }
    if (!path) {
        cli_error("usage: sluice nar dump PATH");
        return 2;
    }
    if (fflush(stdout) != 0) {
        cli_error("nar dump: cannot write to stdout");
        return 1;
    }
    if (nix_nar_dump_path(path, fd_sink, &fd, &e) < 0)
        return cli_fail(&e);
    return 0;
}
