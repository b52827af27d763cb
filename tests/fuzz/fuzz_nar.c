/*
 * fuzz_nar.c: libFuzzer target for the incremental NAR reader (`make fuzz`, then
 * build-fuzz/fuzz_nar tests/fuzz/corpus/nar).  The suite replays the corpus through
 * fuzz_nar_one() (tests/nix/fuzz_nar_replay.c includes this file with
 * FUZZ_NAR_NO_MAIN).
 *
 * Each input is read three ways: whole, one byte at a time, and in chunks whose sizes
 * come from the input's own bytes.  The three must agree on the result, the bytes
 * consumed, the offset, the error message and the callback events (hashed); every
 * error must be ERR_MALFORMED with "at byte N"; a disagreement aborts.  A complete NAR
 * is also hashed with the self-reference rule.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nix/nix.h"

/* A broken invariant: abort under the fuzzer; in the replay test report the line. */
#ifdef FUZZ_NAR_NO_MAIN
#define FZ_FAIL() (fprintf(stderr, "fuzz_nar.c:%d: invariant broken\n", __LINE__), -1)
#else
#define FZ_FAIL() (abort(), -1)
#endif
#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return FZ_FAIL();                                                                      \
    } while (0)

typedef struct FuzzEvents {
    NixHashCtx *h;
    int files_open;
} FuzzEvents;

static void fz_mix(FuzzEvents *f, const char *tag, const void *data, size_t n)
{
    uint64_t len = n;
    nix_hash_ctx_update(f->h, tag, 1);
    nix_hash_ctx_update(f->h, &len, sizeof len);
    nix_hash_ctx_update(f->h, data, n);
}

static int fz_dir(void *p, const char *path, Err *e)
{
    (void)e;
    fz_mix(p, "D", path, strlen(path));
    return 0;
}

static int fz_fbegin(void *p, const char *path, int x, uint64_t size, Err *e)
{
    FuzzEvents *f = p;
    (void)e;
    FZ_CHECK(!f->files_open); /* file_begin without file_end */
    f->files_open = 1;
    fz_mix(f, x ? "X" : "F", path, strlen(path));
    fz_mix(f, "S", &size, sizeof size);
    return 0;
}

static int fz_fdata(void *p, const uint8_t *data, size_t n, Err *e)
{
    FuzzEvents *f = p;
    (void)e;
    FZ_CHECK(f->files_open);
    nix_hash_ctx_update(f->h, data, n); /* chunking must not matter */
    return 0;
}

static int fz_fend(void *p, Err *e)
{
    FuzzEvents *f = p;
    (void)e;
    FZ_CHECK(f->files_open);
    f->files_open = 0;
    fz_mix(f, "E", "", 0);
    return 0;
}

static int fz_link(void *p, const char *path, const char *target, Err *e)
{
    (void)e;
    FZ_CHECK(target[0] != '\0');
    fz_mix(p, "L", path, strlen(path));
    fz_mix(p, "T", target, strlen(target));
    return 0;
}

typedef struct FuzzRun {
    int rc;
    size_t used;
    uint64_t offset;
    NixHash events;
    char msg[ERR_MSG_MAX];
} FuzzRun;

/* mode 0: whole; 1: byte by byte; 2: chunk sizes from the data.  0 or -1. */
static int fz_run(const uint8_t *data, size_t size, int mode, FuzzRun *out)
{
    static const NixNarCallbacks cb = {fz_dir, fz_fbegin, fz_fdata, fz_fend, fz_link};
    FuzzEvents ev = {0};
    NixNarReader *r;
    Err e = {0};
    size_t pos = 0, k = 0;
    int rc = 0;

    ev.h = nix_hash_ctx_new(NIX_HASH_SHA256);
    r = nix_nar_reader_new(&cb, &ev);
    while (pos < size) {
        size_t take, used = 0;
        if (mode == 0)
            take = size - pos;
        else if (mode == 1)
            take = 1;
        else
            take = 1 + (size_t)(data[k++ % size] % 61);
        if (take > size - pos)
            take = size - pos;
        rc = nix_nar_reader_feed(r, data + pos, take, &used, &e);
        if (used > take || (rc == 0 && used != take)) {
            /* less is consumed only when the NAR ended */
            rc = -1000;
            break;
        }
        pos += used;
        if (rc != 0)
            break;
    }
    out->rc = rc;
    out->used = pos;
    out->offset = nix_nar_reader_offset(r);
    memcpy(out->msg, e.msg, sizeof out->msg);
    nix_hash_ctx_final(ev.h, &out->events);
    nix_nar_reader_free(r);
    /* every failure is a malformed NAR with an offset */
    FZ_CHECK(rc >= 0 || (rc == ERR_MALFORMED && strstr(out->msg, "at byte ") != NULL));
    return 0;
}

/* Check one input: 0, or -1 (after abort() under the fuzzer) on any inconsistency. */
static int fuzz_nar_one(const uint8_t *data, size_t size)
{
    FuzzRun a, b, c;
    FZ_CHECK(fz_run(data, size, 0, &a) == 0);
    FZ_CHECK(fz_run(data, size, 1, &b) == 0);
    FZ_CHECK(fz_run(data, size, 2, &c) == 0);
    FZ_CHECK(a.rc == b.rc && a.rc == c.rc && a.used == b.used && a.used == c.used);
    if (a.rc >= 0)
        FZ_CHECK(memcmp(a.events.d, b.events.d, 32) == 0 &&
                 memcmp(a.events.d, c.events.d, 32) == 0);
    else /* the same error at the same offset however the bytes came */
        FZ_CHECK(strcmp(a.msg, b.msg) == 0 && strcmp(a.msg, c.msg) == 0);
    if (a.rc == 1) {
        NixHash h;
        FZ_CHECK(a.offset == a.used);
        FZ_CHECK(nix_nar_hash_modulo_self(data, a.used, "00000000000000000000000000000000", &h,
                                          NULL) == 0);
    }
    return 0;
}

#ifndef FUZZ_NAR_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_nar_one(data, size);
}
#endif
