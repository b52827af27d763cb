/*
 * cache: publishing store paths to a Nix binary cache, in the format Nix itself writes
 * and reads (BinaryCacheStore), so that any Nix substitutes from it.
 *
 * Store URLs, with Nix's parameter names:
 *   file:///DIR[?...]                  a directory
 *   http://HOST[:PORT]/PATH[?...]      an HTTP binary cache that accepts PUT (as Nix's
 *   https://...                        HTTP binary cache store uploads)
 * Parameters: secret-key=PATH (a key from `nix-store --generate-binary-cache-key`),
 * compression=xz|zstd|none (default xz, as Nix), compression-level=N (-1: the
 * compressor's default), parallel-compression=true|false, write-nar-listing=true|false,
 * priority=N, want-mass-query=true|false (written to nix-cache-info).
 *
 * What is written (names relative to the cache root):
 *   nix-cache-info                 StoreDir, WantMassQuery, Priority (once, if absent)
 *   nar/FILEHASH.nar[.xz|.zst]     the compressed NAR, named by the sha256 of its bytes
 *   HASHPART.ls                    the NAR listing (write-nar-listing)
 *   HASHPART.narinfo               written last, so a reader never sees a narinfo whose
 *                                  NAR is missing (file://: rename into place)
 *   realisations/ID.doi            a CA derivation output's realisation, signed
 *   log/DRV_BASENAME               a build log
 * Signatures are Ed25519 (OpenSSL) over Nix's fingerprints: `1;PATH;NARHASH;NARSIZE;REFS`
 * for a path, the realisation JSON without its signatures for a realisation.
 *
 * Uploads stream: NAR (NarFromPath from the store) -> compressor -> sha256 -> a spool
 * file (file://: inside the cache, renamed into place; http: an unlinked temporary
 * file, then PUT), so memory stays bounded whatever the NAR's size.
 *
 * A Cache is thread-safe: several threads may publish through one Cache at once (each
 * with its own StoreConn).  Every function returns 0 or a negative ERR_* and fills Err.
 */
#ifndef SLUICE_CACHE_H
#define SLUICE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/util.h"

typedef struct Cache Cache;

/* Parse a store URL, load and check its secret key.  No I/O on the cache itself: an
 * unknown scheme or parameter, a bad value, a missing or unreadable key is an error
 * here (ERR_INVALID with a message naming it).  *out is caller-owned (cache_free). */
int cache_open(const char *url, Cache **out, Err *e) UTIL_WUR;
void cache_free(Cache *c);
/* The URL as given (borrowed). */
const char *cache_url(const Cache *c);
/* Name of the signing key, NULL when the cache has no secret-key (borrowed). */
const char *cache_key_name(const Cache *c);

/* Make sure the cache exists and has its nix-cache-info (file://: creates the
 * directories).  Called by the publishing functions before their first write; cheap
 * after the first success. */
int cache_init(Cache *c, Err *e) UTIL_WUR;

/* Which of n files (names relative to the root, e.g. "HASH.narinfo") the cache has:
 * present[i] = 1 or 0.  HTTP lookups are made concurrently (HEAD). */
int cache_has_files(Cache *c, const char *const *names, size_t n, int *present, Err *e) UTIL_WUR;

/* What one publish did. */
typedef struct CachePublishStats {
    size_t paths;          /* paths in the closure */
    size_t uploaded;       /* NARs uploaded */
    uint64_t nar_bytes;    /* NAR bytes read from the store for them */
    uint64_t file_bytes;   /* compressed bytes written */
    size_t realisations;   /* realisations written */
    size_t realisations_n; /* realisations considered */
} CachePublishStats;

/* Publish the closures of paths (full store paths, valid in `store`) and the
 * realisations ids ("sha256:HEX!OUTPUT") with their dependent realisations and their
 * output closures, as found in `store`.  Paths and realisations the cache already has
 * are skipped after one batched lookup; the rest are uploaded references first, each
 * narinfo after its NAR, each realisation after its output's narinfo.  A realisation
 * the store does not know is ERR_NOTFOUND, or skipped with CACHE_IDS_OPTIONAL in flags.
 * st may be NULL. */
#define CACHE_IDS_OPTIONAL 1
int cache_publish(Cache *c, StoreConn *store, const char *const *paths, size_t n,
                  const char *const *realisation_ids, size_t n_ids, int flags,
                  CachePublishStats *st, Err *e) UTIL_WUR;

/* Upload a build log as log/DRV_BASENAME.  The log is read from log_file; when zstd is
 * set the file is a zstd stream and is uploaded decompressed. */
int cache_publish_log(Cache *c, const char *drv_path, const char *log_file, int zstd,
                      Err *e) UTIL_WUR;

/* Process-lifetime counters of a Cache (for metrics). */
typedef struct CacheCounters {
    uint64_t nars;         /* NARs uploaded */
    uint64_t nar_bytes;    /* their NAR bytes */
    uint64_t file_bytes;   /* compressed bytes uploaded */
    uint64_t narinfos;     /* narinfos written */
    uint64_t realisations; /* realisations written */
    uint64_t logs;         /* logs uploaded */
    uint64_t failures;     /* failed publishes */
    uint64_t upload_ms;    /* time spent in cache_publish / cache_publish_log */
} CacheCounters;
void cache_counters(const Cache *c, CacheCounters *out);

/* Nix's path fingerprint "1;PATH;NARHASH;NARSIZE;REF,REF" (caller frees). */
char *cache_fingerprint(const StorePathInfo *pi);
/* Sign text with the cache's key: "NAME:BASE64" (caller frees); NULL without a key. */
char *cache_sign(const Cache *c, const char *text, size_t len);
/* The narinfo text of a path whose compressed NAR is at url_rel with the given file
 * hash and size (Sig lines: pi's signatures and, with a key, the cache's own, sorted).
 * Caller frees. */
char *cache_narinfo_text(const Cache *c, const StorePathInfo *pi, const char *url_rel,
                         const char *compression, const NixHash *file_hash, uint64_t file_size);

#endif
