/*
 * cache_int.h: internals of cache/, for the cache/ sources and the cache unit tests only.
 *
 *   open.c     URL and parameters, the secret key, signing, narinfo text
 *   backend.c  the two backends behind one small interface: spool files (a temporary
 *              file filled as the NAR streams, then put under its final name), small
 *              files from memory, batched existence lookups; file:// (rename into
 *              place) and http(s):// (libcurl PUT / HEAD)
 *   publish.c  closures, NAR streaming (store -> compressor -> sha256 -> spool), NAR
 *              listings, realisations, logs, counters
 */
#ifndef SLUICE_CACHE_INT_H
#define SLUICE_CACHE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "cache/cache.h"

typedef enum { CACHE_FILE = 1, CACHE_HTTP = 2 } CacheKind;
typedef enum { CACHE_COMP_NONE = 0, CACHE_COMP_XZ, CACHE_COMP_ZSTD } CacheCompression;

/* Concurrent HEAD requests of one existence lookup. */
#define CACHE_HTTP_PARALLEL 16
/* Bytes handed from the compressor to the spool file at once. */
#define CACHE_OUT_CHUNK (256u * 1024)
/* Largest NAR listing kept in memory (it is one JSON text, as Nix writes it). */
#define CACHE_LISTING_MAX (256u * 1024 * 1024)
/* Largest realisation JSON accepted from the store. */
#define CACHE_REALISATION_MAX (1u * 1024 * 1024)
/* Longest secret key file. */
#define CACHE_KEY_FILE_MAX 4096
/* Longest URL. */
#define CACHE_URL_MAX 4096

struct Cache {
    char *url;      /* as given */
    CacheKind kind; /* */
    char *root;     /* file: the directory; http: the base URL without '/' at the end */
    CacheCompression compression;
    int level;        /* compression-level, -1 = default */
    int parallel;     /* parallel-compression */
    int listing;      /* write-nar-listing */
    int priority;     /* nix-cache-info Priority */
    int mass_query;   /* nix-cache-info WantMassQuery */
    char *key_name;   /* NULL: no secret-key */
    void *pkey;       /* EVP_PKEY * (Ed25519) */
    atomic_int ready; /* cache_init done */
    pthread_mutex_t init_lock;
    atomic_uint_fast64_t nars, nar_bytes, file_bytes, narinfos, realisations, logs, failures,
        upload_ms;
    atomic_uint spool_seq;
    /* cache__sync's group commit: syncs begun and done (generations), one running */
    pthread_mutex_t sync_lock;
    pthread_cond_t sync_done_cv;
    uint64_t sync_begun, sync_done;
    int sync_running;
};

/* A file being filled before it is put under its final name. */
typedef struct CacheSpool {
    int fd;
    char *tmp_path; /* file://: the temporary name inside the cache; http: NULL (unlinked) */
    uint64_t size;
} CacheSpool;

int cache__spool_open(Cache *c, CacheSpool *s, Err *e);
int cache__spool_write(CacheSpool *s, const void *data, size_t n, Err *e);
/* Put the spool under rel (file: rename; http: PUT) and close it. */
int cache__spool_put(Cache *c, CacheSpool *s, const char *rel, const char *content_type, Err *e);
/* Drop a spool that will not be put (NULL-safe on a zeroed spool). */
void cache__spool_discard(CacheSpool *s);
/* Put bytes from memory under rel. */
int cache__put_bytes(Cache *c, const char *rel, const void *data, size_t n,
                     const char *content_type, Err *e);
/* Make what was put so far durable (file: syncfs of the cache's filesystem; http: nothing,
 * the server answered each PUT).  Concurrent callers share syncs: a caller waits for the
 * first sync that begins after its call, and one sync serves every caller waiting. */
int cache__sync(Cache *c, Err *e);
/* Existence of n names (present[i] = 0 or 1). */
int cache__exists(Cache *c, const char *const *names, size_t n, int *present, Err *e);
/* Global libcurl set-up (once per process; thread-safe). */
void cache__curl_global(void);

/* "xz", "zstd", "none" and the NAR file extension ("nar.xz" ...). */
const char *cache__compression_name(CacheCompression k);
const char *cache__compression_ext(CacheCompression k);

#endif
