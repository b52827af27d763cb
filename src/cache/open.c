/*
 * open.c: a cache's URL and parameters, its secret key, signing, and the texts Nix
 * reads (fingerprints, narinfo).
 *
 * Secret key file (nix-store --generate-binary-cache-key): "NAME:BASE64" where BASE64
 * holds 64 bytes, the Ed25519 seed followed by the public key.  The seed makes the
 * OpenSSL key; the public half it gives must equal the file's.  A signature is
 * "NAME:BASE64(64-byte Ed25519 signature of the fingerprint)".
 *
 * narinfo fields, in Nix's order: StorePath, URL, Compression, FileHash, FileSize,
 * NarHash, NarSize, References (basenames, space separated, the line present even when
 * empty), Deriver (basename, when known), Sig (one line each, sorted), CA (when the
 * path is content-addressed).
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"

static const char *const comp_names[] = {"none", "xz", "zstd"};
static const char *const comp_exts[] = {"nar", "nar.xz", "nar.zst"};

const char *cache__compression_name(CacheCompression k)
{
    return comp_names[k];
}

const char *cache__compression_ext(CacheCompression k)
{
    return comp_exts[k];
}

/* ---------------------------------------------------------------- parameters */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into a new string; NULL on a bad escape or a NUL byte. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(out);
                return NULL;
            }
            ch = hi * 16 + lo;
            i += 2;
        }
        if (ch == 0) {
            free(out);
            return NULL;
        }
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return out;
}

static int parse_bool(const char *key, const char *v, int *out, Err *e)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0) {
        *out = 1;
        return 0;
    }
    if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "no") == 0) {
        *out = 0;
        return 0;
    }
    return err_set(e, ERR_INVALID, "store URL parameter %s: '%s' is not a Boolean", key, v);
}

static int parse_int(const char *key, const char *v, int lo, int hi, int *out, Err *e)
{
    int64_t n;
    if (util_parse_i64(v, &n) < 0 || n < lo || n > hi)
        return err_set(e, ERR_INVALID, "store URL parameter %s: '%s' is not a number in %d..%d",
                       key, v, lo, hi);
    *out = (int)n;
    return 0;
}

static int set_compression(Cache *c, const char *v, Err *e)
{
    if (strcmp(v, "xz") == 0)
        c->compression = CACHE_COMP_XZ;
    else if (strcmp(v, "zstd") == 0)
        c->compression = CACHE_COMP_ZSTD;
    else if (strcmp(v, "none") == 0)
        c->compression = CACHE_COMP_NONE;
    else
        return err_set(e, ERR_INVALID,
                       "store URL parameter compression: '%s' is not supported (xz, zstd, none)",
                       v);
    return 0;
}

static int load_key(Cache *c, const char *file, Err *e);

static int set_param(Cache *c, const char *k, const char *v, Err *e)
{
    if (strcmp(k, "secret-key") == 0)
        return load_key(c, v, e);
    if (strcmp(k, "compression") == 0)
        return set_compression(c, v, e);
    if (strcmp(k, "compression-level") == 0)
        return parse_int(k, v, -1, 22, &c->level, e);
    if (strcmp(k, "parallel-compression") == 0)
        return parse_bool(k, v, &c->parallel, e);
    if (strcmp(k, "write-nar-listing") == 0)
        return parse_bool(k, v, &c->listing, e);
    if (strcmp(k, "want-mass-query") == 0)
        return parse_bool(k, v, &c->mass_query, e);
    if (strcmp(k, "priority") == 0)
        return parse_int(k, v, 0, 1000000, &c->priority, e);
    return err_set(e, ERR_INVALID,
                   "store URL parameter '%s' is not supported (secret-key, compression, "
                   "compression-level, parallel-compression, write-nar-listing, priority, "
                   "want-mass-query)",
                   k);
}

/* "k=v&k=v" */
static int parse_query(Cache *c, const char *q, Err *e)
{
    int rc = 0;
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        char *k = NULL, *v = NULL;
        if (len > 0) {
            if (!eq) {
                rc =
                    err_set(e, ERR_INVALID, "store URL parameter '%.*s' has no value", (int)len, q);
                goto out;
            }
            k = pct_decode(q, (size_t)(eq - q));
            v = pct_decode(eq + 1, len - (size_t)(eq - q) - 1);
            if (!k || !v) {
                rc = err_set(e, ERR_INVALID, "store URL parameter '%.*s': bad %% escape", (int)len,
                             q);
            } else {
                rc = set_param(c, k, v, e);
            }
            free(k);
            free(v);
            if (rc < 0)
                goto out;
        }
        q += len + (amp ? 1 : 0);
    }
out:
    return rc;
}

/* ---------------------------------------------------------------- key */

/* Decode standard base64 s[0..n) into exactly want bytes. */
static int b64_decode(const char *s, size_t n, uint8_t *out, size_t want)
{
    uint8_t tmp[128];
    size_t pad = 0;
    int r;
    if (n % 4 != 0 || n / 4 * 3 > sizeof tmp)
        return -1;
    if (n > 0 && s[n - 1] == '=')
        pad++;
    if (n > 1 && s[n - 2] == '=')
        pad++;
    r = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    if (r < 0 || (size_t)r - pad != want)
        return -1;
    memcpy(out, tmp, want);
    return 0;
}

static int load_key(Cache *c, const char *file, Err *e)
{
    Buf b;
    Err re = {0};
    int rc = 0;
    char *text, *colon, *end;
    uint8_t raw[64], pub[32];
    size_t pub_len = sizeof pub;
    EVP_PKEY *k = NULL;

    buf_init(&b, CACHE_KEY_FILE_MAX);
    if (util_read_file(file, &b, &re) < 0) {
        rc = err_set(e, ERR_INVALID, "secret key: %s", re.msg);
        goto out;
    }
    text = (char *)buf_cstr(&b);
    if (memchr(b.p, 0, b.len)) {
        rc = err_set(e, ERR_INVALID, "secret key %s: a NUL byte in the file", file);
        goto out;
    }
    end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
        *--end = '\0';
    colon = strchr(text, ':');
    if (!colon || colon == text ||
        b64_decode(colon + 1, (size_t)(end - colon - 1), raw, sizeof raw) < 0) {
        rc = err_set(e, ERR_INVALID,
                     "secret key %s: not a Nix secret key (NAME:BASE64 of 64 bytes, as "
                     "nix-store --generate-binary-cache-key writes)",
                     file);
        goto out;
    }
    k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, 32);
    if (!k || EVP_PKEY_get_raw_public_key(k, pub, &pub_len) != 1 || pub_len != 32 ||
        memcmp(pub, raw + 32, 32) != 0) {
        rc = err_set(e, ERR_INVALID,
                     "secret key %s: not a valid Ed25519 key (its public half does not match)",
                     file);
        goto out;
    }
    EVP_PKEY_free(c->pkey);
    free(c->key_name);
    c->pkey = k;
    k = NULL;
    c->key_name = xstrndup(text, (size_t)(colon - text));
out:
    OPENSSL_cleanse(raw, sizeof raw);
    if (b.p)
        OPENSSL_cleanse(b.p, b.len);
    buf_dispose(&b);
    EVP_PKEY_free(k);
    return rc;
}

/* ---------------------------------------------------------------- open */

int cache_open(const char *url, Cache **out, Err *e)
{
    Cache *c = NULL;
    const char *rest, *q;
    char *base = NULL;
    int rc = 0;

    *out = NULL;
    if (!url || !*url)
        return err_set(e, ERR_INVALID, "store URL is empty");
    if (strlen(url) > CACHE_URL_MAX)
        return err_set(e, ERR_INVALID, "store URL is longer than %u bytes", CACHE_URL_MAX);
    c = xcalloc(1, sizeof *c);
    c->url = xstrdup(url);
    c->compression = CACHE_COMP_XZ;
    c->level = -1;
    c->priority = 50;
    c->mass_query = 1;
    pthread_mutex_init(&c->init_lock, NULL);
    pthread_mutex_init(&c->sync_lock, NULL);
    pthread_cond_init(&c->sync_done_cv, NULL);
    q = strchr(url, '?');
    base = q ? xstrndup(url, (size_t)(q - url)) : xstrdup(url);
    if (util_starts_with(base, "file://")) {
        rest = base + strlen("file://");
        if (rest[0] != '/') {
            rc = err_set(e, ERR_INVALID,
                         "store URL %s: file:// needs an absolute directory (file:///DIR)", url);
            goto out;
        }
        c->kind = CACHE_FILE;
        c->root = xstrdup(rest);
    } else if (util_starts_with(base, "http://") || util_starts_with(base, "https://")) {
        rest = strstr(base, "://") + 3;
        if (!*rest || *rest == '/') {
            rc = err_set(e, ERR_INVALID, "store URL %s: no host", url);
            goto out;
        }
        c->kind = CACHE_HTTP;
        c->root = xstrdup(base);
    } else {
        const char *colon = strstr(base, "://");
        rc = err_set(e, ERR_INVALID,
                     "store URL %s: unsupported scheme '%.*s' (file://, http://, https://)", url,
                     colon ? (int)(colon - base) : (int)strlen(base), base);
        goto out;
    }
    {
        size_t n = strlen(c->root);
        while (n > 1 && c->root[n - 1] == '/')
            c->root[--n] = '\0';
    }
    if (q) {
        rc = parse_query(c, q + 1, e);
        if (rc < 0) {
            err_prefix(e, "store URL %s", c->root);
            goto out;
        }
    }
    if (c->compression == CACHE_COMP_XZ && c->level > 9) {
        rc = err_set(e, ERR_INVALID, "store URL %s: compression-level %d is beyond xz's 0..9",
                     c->root, c->level);
        goto out;
    }
    *out = c;
    c = NULL;
out:
    free(base);
    cache_free(c);
    return rc;
}

void cache_free(Cache *c)
{
    if (!c)
        return;
    EVP_PKEY_free(c->pkey);
    pthread_mutex_destroy(&c->init_lock);
    pthread_mutex_destroy(&c->sync_lock);
    pthread_cond_destroy(&c->sync_done_cv);
    free(c->key_name);
    free(c->root);
    free(c->url);
    free(c);
}

const char *cache_url(const Cache *c)
{
    return c->url;
}

const char *cache_key_name(const Cache *c)
{
    return c->key_name;
}

void cache_counters(const Cache *c, CacheCounters *out)
{
    out->nars = c->nars;
    out->nar_bytes = c->nar_bytes;
    out->file_bytes = c->file_bytes;
    out->narinfos = c->narinfos;
    out->realisations = c->realisations;
    out->logs = c->logs;
    out->failures = c->failures;
    out->upload_ms = c->upload_ms;
}

/* ---------------------------------------------------------------- texts */

char *cache_sign(const Cache *c, const char *text, size_t len)
{
    EVP_MD_CTX *md;
    uint8_t sig[64];
    size_t sig_len = sizeof sig;
    char b64[100];
    char *res = NULL;
    if (!c->pkey)
        return NULL;
    md = EVP_MD_CTX_new();
    if (md && EVP_DigestSignInit(md, NULL, NULL, NULL, c->pkey) == 1 &&
        EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)text, len) == 1 && sig_len == 64) {
        EVP_EncodeBlock((unsigned char *)b64, sig, 64);
        res = xasprintf("%s:%s", c->key_name, b64);
    }
    EVP_MD_CTX_free(md);
    if (!res) {
        fprintf(stderr, "sluice: Ed25519 signing failed in OpenSSL\n");
        abort();
    }
    return res;
}

char *cache_fingerprint(const StorePathInfo *pi)
{
    Buf b;
    char hash[NIX_HASH_TEXT_MAX];
    buf_init(&b, LIMIT_BUF_DEFAULT);
    store_path_info_nar_hash_text(pi, hash);
    buf_printf(&b, "1;%s;%s;%llu;", pi->path, hash, (unsigned long long)pi->nar_size);
    for (size_t i = 0; i < pi->references.n; i++)
        buf_printf(&b, "%s%s", i ? "," : "", pi->references.v[i]);
    return buf_take(&b, NULL);
}

char *cache_narinfo_text(const Cache *c, const StorePathInfo *pi, const char *url_rel,
                         const char *compression, const NixHash *file_hash, uint64_t file_size)
{
    Buf b;
    StrVec sigs;
    char h[NIX_HASH_TEXT_MAX], nh[NIX_HASH_TEXT_MAX];
    buf_init(&b, LIMIT_BUF_DEFAULT);
    strvec_init(&sigs);
    nix_hash_to_base32(file_hash, h);
    store_path_info_nar_hash_text(pi, nh);
    buf_printf(&b, "StorePath: %s\nURL: %s\nCompression: %s\nFileHash: sha256:%s\n", pi->path,
               url_rel, compression, h);
    buf_printf(&b, "FileSize: %llu\nNarHash: %s\nNarSize: %llu\nReferences:",
               (unsigned long long)file_size, nh, (unsigned long long)pi->nar_size);
    for (size_t i = 0; i < pi->references.n; i++)
        buf_printf(&b, " %s", nix_store_path_base(pi->references.v[i]));
    /* Nix writes "References: " + the joined list: a space even when the list is empty */
    if (pi->references.n == 0)
        buf_putc(&b, ' ');
    buf_putc(&b, '\n');
    if (pi->deriver && *pi->deriver)
        buf_printf(&b, "Deriver: %s\n", nix_store_path_base(pi->deriver));
    for (size_t i = 0; i < pi->sigs.n; i++)
        strvec_push(&sigs, pi->sigs.v[i]);
    if (c->pkey) {
        char *fp = cache_fingerprint(pi);
        strvec_push_take(&sigs, cache_sign(c, fp, strlen(fp)));
        free(fp);
    }
    strvec_sort_unique(&sigs);
    for (size_t i = 0; i < sigs.n; i++)
        buf_printf(&b, "Sig: %s\n", sigs.v[i]);
    if (pi->ca && *pi->ca)
        buf_printf(&b, "CA: %s\n", pi->ca);
    strvec_dispose(&sigs);
    return buf_take(&b, NULL);
}
