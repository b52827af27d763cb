/*
 * fuzz_aterm.c: libFuzzer target for the ATerm derivation parser.  For every input it
 * checks the parser's contract: no crash or sanitizer report; on success the printer
 * gives back exactly the input bytes, the drv path and `drv show` JSON can be computed,
 * and a clone prints the same; on failure *out is NULL and the message has an offset.
 * Built by `make fuzz`; the corpus tests/fuzz/corpus/aterm/ is replayed by the unit
 * tests (tests/nix/fuzz_replay.c), which call nix_fuzz_aterm_one() too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nix/nix.h"

/* 0 when the contract holds for this input, -1 (after a message) when it does not. */
int nix_fuzz_aterm_one(const uint8_t *data, size_t size);

#define BROKEN(what)                                                                               \
    do {                                                                                           \
        fprintf(stderr, "fuzz_aterm: %s\n", what);                                                 \
        return -1;                                                                                 \
    } while (0)

int nix_fuzz_aterm_one(const uint8_t *data, size_t size)
{
    NixDrv *d = NULL, *c;
    Err e = {0};
    Buf out;
    char *js, *path;
    NixDrvKind k;

    if (nix_drv_parse(data, size, &d, &e) < 0) {
        if (d != NULL || strncmp(e.msg, "at byte ", 8) != 0)
            BROKEN("error without an offset or with a result");
        return 0;
    }
    buf_init(&out, LIMIT_DRV_FILE_SIZE);
    if (nix_drv_print(d, &out) < 0 || out.len != size || memcmp(out.p, data, size) != 0)
        BROKEN("accepted input does not print back to the same bytes");
    c = nix_drv_clone(d);
    buf_reset(&out);
    if (nix_drv_print(c, &out) < 0 || out.len != size || memcmp(out.p, data, size) != 0)
        BROKEN("clone prints differently");
    nix_drv_free(c);
    buf_dispose(&out);
    if (nix_drv_kind(d, &k, &e) < 0)
        BROKEN("parsed drv has mixed output kinds");
    js = nix_drv_show_json(d, "/nix/store/00000000000000000000000000000000-fuzz.drv");
    if (!js)
        BROKEN("no JSON");
    free(js);
    path = nix_drv_store_path(d, "fuzz");
    if (!path)
        BROKEN("no drv path");
    free(path);
    nix_drv_free(d);
    return 0;
}

#ifndef NIX_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (nix_fuzz_aterm_one(data, size) < 0)
        abort();
    return 0;
}
#endif
