/*
 * hash.c: NixHash: MD5, SHA-1, SHA-256 and SHA-512 through libcrypto's EVP interface,
 * and the text forms Nix uses for them.
 *
 *   form    | text                              | sha256 length
 *   base16  | lower-case hex (parsers: any case) | 64
 *   nix32   | see base32.c                       | 52
 *   base64  | RFC 4648, '=' padded               | 44
 *   typed   | "<algo>:" + one of the above       |
 *   SRI     | "<algo>-" + base64                 |
 *
 * An untyped string is decoded by its length, as Nix does.  The EVP_MD objects are
 * fetched once per process (pthread_once) and are immutable afterwards, which keeps
 * the per-hash cost to one context allocation.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "nix/nix_int.h"

struct NixHashCtx {
    NixHashAlgo algo;
    EVP_MD_CTX *md;
};

static const char *const algo_names[] = {"md5", "sha1", "sha256", "sha512"};
static const char *const algo_fetch_names[] = {"MD5", "SHA1", "SHA256", "SHA512"};
static const size_t algo_sizes[] = {16, 20, 32, 64};

static pthread_once_t mds_once = PTHREAD_ONCE_INIT;
static EVP_MD *mds[4]; /* written once under mds_once, read-only afterwards */

static void mds_fetch(void)
{
    for (int i = 0; i < 4; i++) {
        mds[i] = EVP_MD_fetch(NULL, algo_fetch_names[i], NULL);
        if (!mds[i]) {
            log_error("libcrypto has no %s digest", algo_fetch_names[i]);
            abort();
        }
    }
}

static const EVP_MD *md_of(NixHashAlgo a)
{
    pthread_once(&mds_once, mds_fetch);
    return mds[a];
}

int nix_hash_algo_parse(const char *name, NixHashAlgo *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, algo_names[i]) == 0) {
            *out = (NixHashAlgo)i;
            return 0;
        }
    }
    return ERR_INVALID;
}

const char *nix_hash_algo_name(NixHashAlgo a)
{
    return (unsigned)a < 4 ? algo_names[a] : "unknown";
}

size_t nix_hash_algo_size(NixHashAlgo a)
{
    return (unsigned)a < 4 ? algo_sizes[a] : 0;
}

/* ---------------------------------------------------------------- hashing */

NixHashCtx *nix_hash_ctx_new(NixHashAlgo a)
{
    NixHashCtx *c = xcalloc(1, sizeof *c);
    c->algo = a;
    c->md = EVP_MD_CTX_new();
    if (!c->md || EVP_DigestInit_ex(c->md, md_of(a), NULL) != 1) {
        log_error("libcrypto: cannot start a %s digest", nix_hash_algo_name(a));
        abort();
    }
    return c;
}

void nix_hash_ctx_update(NixHashCtx *c, const void *data, size_t n)
{
    if (n && EVP_DigestUpdate(c->md, data, n) != 1) {
        log_error("libcrypto: digest update failed");
        abort();
    }
}

void nix_hash_ctx_final(NixHashCtx *c, NixHash *out)
{
    unsigned int len = 0;
    memset(out, 0, sizeof *out);
    out->algo = c->algo;
    if (EVP_DigestFinal_ex(c->md, out->d, &len) != 1) {
        log_error("libcrypto: digest final failed");
        abort();
    }
    out->len = len;
    nix_hash_ctx_free(c);
}

void nix_hash_ctx_free(NixHashCtx *c)
{
    if (!c)
        return;
    EVP_MD_CTX_free(c->md);
    free(c);
}

void nix_hash_bytes(NixHashAlgo a, const void *data, size_t n, NixHash *out)
{
    unsigned int len = 0;
    memset(out, 0, sizeof *out);
    out->algo = a;
    if (EVP_Digest(data, n, out->d, &len, md_of(a), NULL) != 1) {
        log_error("libcrypto: %s digest failed", nix_hash_algo_name(a));
        abort();
    }
    out->len = len;
}

/* ---------------------------------------------------------------- text forms */

void nix__hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void nix_hash_to_base16(const NixHash *h, char *out)
{
    nix__hex_encode(h->d, h->len, out);
}

void nix_hash_to_base32(const NixHash *h, char *out)
{
    nix_base32_encode(h->d, h->len, out);
}

void nix_hash_to_base64(const NixHash *h, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, h->d, (int)h->len);
}

void nix_hash_to_sri(const NixHash *h, char *out)
{
    size_t n = strlen(nix_hash_algo_name(h->algo));
    memcpy(out, nix_hash_algo_name(h->algo), n);
    out[n] = '-';
    nix_hash_to_base64(h, out + n + 1);
}

void nix_hash_compress(const NixHash *h, size_t n, uint8_t *out)
{
    memset(out, 0, n);
    for (size_t i = 0; i < h->len; i++)
        out[i % n] ^= h->d[i];
}

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Decode base64 text s[0..n) to exactly `want` bytes. */
static int base64_decode(const char *s, size_t n, uint8_t *out, size_t want, Err *e)
{
    unsigned char tmp[3 * (NIX_HASH_TEXT_MAX / 4) + 3];
    size_t pad = 0, got;
    int r;
    if (n == 0 || n % 4 != 0 || n > NIX_HASH_TEXT_MAX)
        return err_set(e, ERR_MALFORMED, "invalid base-64 hash: bad length %zu", n);
    while (pad < 2 && s[n - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++)
        if (!b64_char((unsigned char)s[i]))
            return err_set(e, ERR_MALFORMED, "invalid base-64 hash: bad character at %zu", i);
    r = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    if (r < 0)
        return err_set(e, ERR_MALFORMED, "invalid base-64 hash");
    got = (size_t)r - pad;
    if (got != want)
        return err_set(e, ERR_MALFORMED, "invalid base-64 hash: %zu bytes, expected %zu", got,
                       want);
    memcpy(out, tmp, want);
    return 0;
}

/* Decode the digest text of an algorithm known by now. */
static int parse_digest(const char *s, size_t n, NixHashAlgo a, int sri, NixHash *out, Err *e)
{
    size_t size = nix_hash_algo_size(a);
    int rc;
    memset(out, 0, sizeof *out);
    out->algo = a;
    out->len = size;
    if (!sri && n == 2 * size) {
        for (size_t i = 0; i < size; i++) {
            int hi = hex_val((unsigned char)s[2 * i]), lo = hex_val((unsigned char)s[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return err_set(e, ERR_MALFORMED, "invalid base-16 hash '%.*s'", (int)n, s);
            out->d[i] = (uint8_t)(hi << 4 | lo);
        }
        return 0;
    }
    if (!sri && n == nix_base32_len(size)) {
        rc = nix_base32_decode(s, n, out->d, size, e);
        if (rc < 0)
            err_prefix(e, "hash '%.*s'", (int)n, s);
        return rc;
    }
    if (sri || n == 4 * ((size + 2) / 3)) {
        rc = base64_decode(s, n, out->d, size, e);
        if (rc < 0)
            err_prefix(e, "hash '%.*s'", (int)n, s);
        return rc;
    }
    return err_set(e, ERR_MALFORMED, "hash '%.*s' has wrong length for hash type '%s'", (int)n, s,
                   nix_hash_algo_name(a));
}

int nix_hash_parse(const char *s, int algo, NixHash *out, Err *e)
{
    size_t n = strlen(s);
    const char *sep = NULL;
    NixHashAlgo a;
    char name[8];

    for (size_t i = 0; i < n && i < 7; i++) {
        if (s[i] == ':' || s[i] == '-') {
            sep = s + i;
            break;
        }
    }
    if (sep) {
        size_t an = (size_t)(sep - s);
        memcpy(name, s, an);
        name[an] = '\0';
        if (nix_hash_algo_parse(name, &a) < 0)
            return err_set(e, ERR_MALFORMED, "unknown hash type '%s' in '%s'", name, s);
        if (algo >= 0 && (int)a != algo)
            return err_set(e, ERR_MALFORMED, "hash '%s' should have type '%s'", s,
                           nix_hash_algo_name((NixHashAlgo)algo));
        return parse_digest(sep + 1, n - an - 1, a, *sep == '-', out, e);
    }
    if (algo < 0 || algo > NIX_HASH_SHA512)
        return err_set(e, ERR_MALFORMED, "hash '%s' does not include a type", s);
    return parse_digest(s, n, (NixHashAlgo)algo, 0, out, e);
}
