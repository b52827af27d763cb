/*
 * nix: pure Nix data, computed exactly as Nix 2.8 computes it.  No network, no
 * database, no store daemon: base32, hashes, store paths, ATerm derivations (parse,
 * print), derivation hashing (hash modulo, output paths), placeholders, resolution,
 * NAR.  Depends on util/ and libcrypto (hashes), jansson (JSON of `drv show`).
 *
 * Value types (NixHash, NixDrv and its parts) are plain structs whose fields may be
 * read anywhere; they are built and changed only through nix_* functions.  A NixDrv
 * owns every string it points to; nix_drv_free() releases all of it.
 */
#ifndef SLUICE_NIX_H
#define SLUICE_NIX_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define NIX_STORE_DIR       "/nix/store"
#define NIX_HASH_PART_LEN   32 /* nix32 chars of a store path hash part */
#define NIX_PLACEHOLDER_LEN 53 /* "/" + 52 nix32 chars */

/* ---------------------------------------------------------------- hashes */

typedef enum { NIX_HASH_MD5 = 0, NIX_HASH_SHA1, NIX_HASH_SHA256, NIX_HASH_SHA512 } NixHashAlgo;

typedef struct NixHash {
    NixHashAlgo algo;
    size_t len; /* digest bytes: 16, 20, 32, 64 */
    uint8_t d[64];
} NixHash;

/* Size of the nix32 text of n bytes (without NUL): floor((8n-1)/5)+1. */
size_t nix_base32_len(size_t n);
/* Write nix_base32_len(n) chars plus a NUL into out. */
void nix_base32_encode(const uint8_t *in, size_t n, char *out);
/* Decode exactly outlen bytes from s[0..slen); ERR_MALFORMED on a bad char/length/high bits. */
int nix_base32_decode(const char *s, size_t slen, uint8_t *out, size_t outlen, Err *e);

int nix_hash_algo_parse(const char *name, NixHashAlgo *out); /* "sha256" -> 0 / ERR_INVALID */
const char *nix_hash_algo_name(NixHashAlgo a);
size_t nix_hash_algo_size(NixHashAlgo a);

void nix_hash_bytes(NixHashAlgo a, const void *data, size_t n, NixHash *out);
/* Streaming hashing (libcrypto EVP underneath). */
typedef struct NixHashCtx NixHashCtx;
NixHashCtx *nix_hash_ctx_new(NixHashAlgo a);
void nix_hash_ctx_update(NixHashCtx *c, const void *data, size_t n);
void nix_hash_ctx_final(NixHashCtx *c, NixHash *out); /* also frees c */
void nix_hash_ctx_free(NixHashCtx *c);                /* abandon */

/* Text forms.  Output buffers must hold at least NIX_HASH_TEXT_MAX bytes. */
#define NIX_HASH_TEXT_MAX 160
void nix_hash_to_base16(const NixHash *h, char *out);
void nix_hash_to_base32(const NixHash *h, char *out);
void nix_hash_to_base64(const NixHash *h, char *out);
void nix_hash_to_sri(const NixHash *h, char *out); /* "sha256-<base64>" */
/* Parse base16, nix32, base64 (by length), "algo:..." typed, or SRI "algo-...".
 * `algo` is the expected algorithm, or -1 when the text must say it. */
int nix_hash_parse(const char *s, int algo, NixHash *out, Err *e);
/* XOR-fold to n bytes (compressHash). */
void nix_hash_compress(const NixHash *h, size_t n, uint8_t *out);

/* ---------------------------------------------------------------- store paths */

/* Validate a full store path: NIX_STORE_DIR prefix, '/', 32 nix32 chars, '-', a name of
 * 1..211 chars from [A-Za-z0-9+-._?=], not "." or "..", nothing after.  0 or
 * ERR_MALFORMED with a message naming the path and the reason. */
int nix_store_path_check(const char *path, Err *e);
/* Validate a basename "<hash>-<name>" the same way (no store dir). */
int nix_store_basename_check(const char *base, Err *e);
/* Borrowed views into a valid store path. */
const char *nix_store_path_base(const char *path); /* "<hash>-<name>" */
const char *nix_store_path_name(const char *path); /* "<name>" */
int nix_store_path_is_drv(const char *path);
/* Name of a drv path's derivation: the store name minus ".drv" (caller frees). */
char *nix_drv_name_from_path(const char *drv_path);

/* makeStorePath(type, innerHash (sha256), name) -> newly allocated full path. */
char *nix_make_store_path(const char *type, const NixHash *inner, const char *name);
/* makeTextPath: type "text" + ":" + sorted refs. refs need not be sorted. */
char *nix_make_text_path(const char *name, const NixHash *content_sha256, char *const *refs,
                         size_t nrefs);
/* makeFixedOutputPath: recursive sha256 -> "source" type (with refs and an optional
 * self-reference); otherwise "output:out" over "fixed:out:[r:]algo:hex:". */
char *nix_make_fixed_output_path(int recursive, const NixHash *h, const char *name,
                                 char *const *refs, size_t nrefs, int self_ref);
/* makeOutputPath(output, H (sha256), drvName): name gets "-<output>" unless "out". */
char *nix_make_output_path(const char *output, const NixHash *h, const char *drv_name);
/* "<drvName>" or "<drvName>-<output>" (caller frees). */
char *nix_output_path_name(const char *drv_name, const char *output);
/* Scratch path Nix 2.8 writes floating output `output` of drv_path at while building it
 * without a sandbox (makeFallbackPath: type "rewrite:<drv base>:name:<output>", a zero
 * sha256, outputPathName); NULL when drv_path is not a .drv store path.  Caller frees. */
char *nix_scratch_path(const char *drv_path, const char *output);

/* ---------------------------------------------------------------- derivations */

typedef enum {
    NIX_OUT_INPUT_ADDRESSED = 0, /* path set, hashAlgo/hash empty */
    NIX_OUT_FIXED,               /* path, hashAlgo, hash set */
    NIX_OUT_FLOATING,            /* path empty, hashAlgo set, hash empty */
    NIX_OUT_DEFERRED,            /* everything empty */
    NIX_OUT_IMPURE,              /* path empty, hashAlgo set, hash "impure" */
} NixOutputKind;

/* Kind of a whole derivation (all outputs share it). */
typedef enum {
    NIX_DRV_INPUT_ADDRESSED = 0,
    NIX_DRV_FIXED,
    NIX_DRV_FLOATING,
    NIX_DRV_DEFERRED,
    NIX_DRV_IMPURE,
} NixDrvKind;

typedef struct NixDrvOutput {
    char *name;
    char *path;      /* "" when not statically known */
    char *hash_algo; /* "" or "[r:]algo" */
    char *hash;      /* "" or base16 digest or "impure" */
} NixDrvOutput;

typedef struct NixDrvInput {
    char *drv_path;
    char **outputs; /* sorted output names */
    size_t n_outputs;
} NixDrvInput;

typedef struct NixEnvPair {
    char *key;
    char *value;
} NixEnvPair;

/* A derivation as in its ATerm.  Lists are kept in ATerm order (sorted where Nix
 * sorts).  NUL bytes never occur (the parser rejects them). */
typedef struct NixDrv {
    char *name; /* derivation name (drv store name minus ".drv"); may be NULL */
    NixDrvOutput *outputs;
    size_t n_outputs;
    NixDrvInput *inputs;
    size_t n_inputs;
    char **srcs;
    size_t n_srcs;
    char *platform;
    char *builder;
    char **args;
    size_t n_args;
    NixEnvPair *env;
    size_t n_env;
} NixDrv;

/* Parse an ATerm derivation.  Strict: sorted, unique, escapes as Nix writes them,
 * valid store paths, limits from limits.h.  Errors are ERR_MALFORMED with the byte
 * offset in the message ("at byte 123: expected ','"). */
int nix_drv_parse(const uint8_t *text, size_t len, NixDrv **out, Err *e);
/* Read and parse a .drv file from the store (path validated first); sets drv->name
 * from the path.  Messages name the file. */
int nix_drv_read(const char *drv_path, NixDrv **out, Err *e);
/* Read a .drv from any file (for `drv path FILE`); name left NULL. */
int nix_drv_read_file(const char *file, NixDrv **out, Err *e);
void nix_drv_free(NixDrv *d);
NixDrv *nix_drv_clone(const NixDrv *d);
/* Print the ATerm exactly as Nix writes it. */
int nix_drv_print(const NixDrv *d, Buf *out);
/* Store path of the drv text: text path of name+".drv" with refs = inputDrvs ∪ srcs. */
char *nix_drv_store_path(const NixDrv *d, const char *name);

NixOutputKind nix_drv_output_kind(const NixDrvOutput *o);
/* Kind of the whole drv; ERR_MALFORMED if outputs mix kinds (Nix's rules). */
int nix_drv_kind(const NixDrv *d, NixDrvKind *out, Err *e);
/* Env lookup (borrowed, NULL when absent). */
const char *nix_drv_env(const NixDrv *d, const char *key);
/* requiredSystemFeatures from env, space separated (caller disposes sv). */
void nix_drv_required_features(const NixDrv *d, StrVec *out);
/* preferLocalBuild set (env "1", or true under structured attrs). */
int nix_drv_prefers_local(const NixDrv *d);

/* `nix show-derivation` JSON of one drv: {"<path>": {...}} as a newly allocated
 * compact string with sorted keys. */
char *nix_drv_show_json(const NixDrv *d, const char *drv_path);
/* Append one member `"<drv_path>":{...}` of that object to out (for an object holding
 * several drvs; the caller writes the braces and commas).  Strings are escaped as Nix
 * 2.8 escapes them (control bytes as \u00xx, other bytes raw, even when not UTF-8).
 * Returns buf_status(out). */
int nix_drv_show_json_member(const NixDrv *d, const char *drv_path, Buf *out);

/* ---------------------------------------------------------------- hashing of drvs */

/* Loads input derivations for hash-modulo computation. The default reads them from
 * the filesystem (nix_drv_read).  Returns a drv the callee owns or an error. */
typedef int (*NixDrvLoader)(void *payload, const char *drv_path, NixDrv **out, Err *e);

/* Memo of hashDerivationModulo results over a graph, keyed by drv path. Not thread
 * safe. */
typedef struct NixHashCache NixHashCache;
NixHashCache *nix_hash_cache_new(NixDrvLoader loader, void *payload); /* loader NULL: files */
void nix_hash_cache_free(NixHashCache *c);
/* Memoise the unmasked hash modulo of d (borrowed) under drv_path, loading inputs not
 * yet in the cache; for callers that read the drvs of a graph themselves (inputs
 * first) so that nothing is loaded twice. */
int nix_hash_cache_add(NixHashCache *c, const char *drv_path, const NixDrv *d, Err *e);

typedef struct NixModulo {
    NixDrvKind kind; /* as Nix: REGULAR is reported as the drv's own kind; DEFERRED when
                        floating/impure/deferred-by-input */
    int deferred;    /* 1 when Nix's DrvHash kind is Deferred */
    /* one hash per output, same order as drv->outputs */
    NixHash *hashes;
    size_t n;
} NixModulo;

/* hashDerivationModulo(drv, mask) (spec §3).  Inputs are looked up (mask=false) in the
 * cache, loading them as needed (c NULL: a throw-away cache reading /nix/store).
 * out->hashes is caller-owned (nix_modulo_dispose). */
int nix_drv_hash_modulo(NixHashCache *c, const NixDrv *d, int mask, NixModulo *out, Err *e);
void nix_modulo_dispose(NixModulo *m);

/* Per-output static paths: for each output, its store path (IA: the path in the drv;
 * fixed: recomputed from hash and name, as Nix does), or NULL when not statically known
 * (floating, deferred, impure; a deferred drv gets its paths only by resolution, which
 * changes its hash, so none is guessed).  out is an array of d->n_outputs char* (caller
 * frees each and the array). */
int nix_drv_output_paths(NixHashCache *c, const NixDrv *d, char ***out, Err *e);
/* Realisation ids "sha256:<hex masked modulo>!<out>", one per output (caller frees). */
int nix_drv_realisation_ids(NixHashCache *c, const NixDrv *d, char ***out, Err *e);

/* Placeholders (53 chars + NUL into out). */
void nix_placeholder_own(const char *output, char *out);
int nix_placeholder_downstream(const char *drv_path, const char *output, char *out, Err *e);

/* ---------------------------------------------------------------- resolution */

/* Actual output path of every (input drv, output) pair, given by the caller. */
typedef struct NixInputPath {
    const char *drv_path;
    const char *output;
    const char *path;
} NixInputPath;

/* Derivation::tryResolve of Nix 2.8: inputs dropped, their outputs added to srcs,
 * downstream placeholders rewritten in builder/args/env keys and values, deferred
 * outputs filled from hashModulo(resolved, mask=true).  ERR_NOTFOUND with
 * "no output 'OUT' of DRV" when a pair is missing.  *out is caller-owned and keeps
 * d->name. */
int nix_drv_resolve(NixHashCache *c, const NixDrv *d, const NixInputPath *inputs, size_t n,
                    NixDrv **out, Err *e);
/* Force-resolution for IA and fixed drvs (what a remote builder is sent): as above but
 * the drv's own outputs are kept unchanged. */
int nix_drv_resolve_force(NixHashCache *c, const NixDrv *d, const NixInputPath *inputs, size_t n,
                          NixDrv **out, Err *e);

/* ---------------------------------------------------------------- NAR */

/* Serialise a filesystem tree as a NAR, calling sink for each piece. */
typedef int (*NixSink)(void *payload, const uint8_t *data, size_t n, Err *e);
int nix_nar_dump_path(const char *path, NixSink sink, void *payload, Err *e);
/* nix hash path: sha256 of the NAR (and its size). */
int nix_nar_hash_path(const char *path, NixHash *out, uint64_t *nar_size, Err *e);

/* Incremental NAR reader.  Feed bytes as they arrive; it validates the structure
 * (tokens, padding, entry order, names, limits) and reports the end of the NAR so an
 * unframed NAR can be delimited.  Optional callbacks receive the tree. */
typedef struct NixNarReader NixNarReader;
typedef struct NixNarCallbacks {
    int (*directory)(void *payload, const char *path, Err *e);
    int (*file_begin)(void *payload, const char *path, int executable, uint64_t size, Err *e);
    int (*file_data)(void *payload, const uint8_t *data, size_t n, Err *e);
    int (*file_end)(void *payload, Err *e);
    int (*symlink)(void *payload, const char *path, const char *target, Err *e);
} NixNarCallbacks;

NixNarReader *nix_nar_reader_new(const NixNarCallbacks *cb, void *payload);
void nix_nar_reader_free(NixNarReader *r);
/* Consume up to n bytes; *used tells how many were taken (less than n only when the
 * NAR ended).  Returns 1 when the NAR is complete, 0 when more is needed, or an error
 * (ERR_MALFORMED with the byte offset in the stream). */
int nix_nar_reader_feed(NixNarReader *r, const uint8_t *data, size_t n, size_t *used, Err *e);
uint64_t nix_nar_reader_offset(const NixNarReader *r);

/* Unpack a NAR stream into a filesystem path (used by tests and local restores). */
int nix_nar_restore(const uint8_t *nar, size_t n, const char *dest, Err *e);

/* CA self-reference rule: sha256 over the NAR with every occurrence of the path's own
 * hash part replaced by zeros, followed by "|offset" of each occurrence (Nix's
 * HashModuloSink). */
int nix_nar_hash_modulo_self(const uint8_t *nar, size_t n, const char *hash_part, NixHash *out,
                             Err *e);

#endif
