/* tests/cache/open.c: store URLs, keys, signatures and narinfo texts against what Nix
 * 2.8's `nix copy --to file://...` wrote for the same paths with the same key
 * (tests/data/cache/README). */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "test.h"

static Cache *open_ok(const char *fmt, const char *arg)
{
    Cache *c = NULL;
    Err e = {0};
    char *url = xasprintf(fmt, arg);
    if (cache_open(url, &c, &e) < 0)
        test_fail(__FILE__, __LINE__, "%s: %s", url, e.msg);
    free(url);
    return c;
}

static void open_fails(const char *url, const char *want)
{
    Cache *c = NULL;
    Err e = {0};
    int rc = cache_open(url, &c, &e);
    CHECK_MSG(rc == ERR_INVALID, "%s: expected ERR_INVALID, got %d", url, rc);
    CHECK(c == NULL);
    CHECK_MSG(strstr(e.msg, want) != NULL, "%s: message '%s' lacks '%s'", url, e.msg, want);
}

static StorePathInfo *info(const char *path, const char *nar_hash, uint64_t nar_size,
                           const char *deriver, const char *ca)
{
    StorePathInfo *pi = xcalloc(1, sizeof *pi);
    Err e = {0};
    pi->path = xstrdup(path);
    pi->deriver = deriver ? xstrdup(deriver) : NULL;
    pi->ca = ca ? xstrdup(ca) : NULL;
    pi->nar_size = nar_size;
    strvec_init(&pi->references);
    strvec_init(&pi->sigs);
    if (nix_hash_parse(nar_hash, -1, &pi->nar_hash, &e) < 0)
        test_fail(__FILE__, __LINE__, "%s", e.msg);
    return pi;
}

static char *slurp(const char *rel)
{
    Buf b;
    Err e = {0};
    buf_init(&b, 1 << 20);
    if (util_read_file(test_data(rel), &b, &e) < 0)
        test_fail(__FILE__, __LINE__, "%s", e.msg);
    return buf_take(&b, NULL);
}

TEST(cache, open, urls_and_parameters)
{
    Cache *c = open_ok("file:///tmp/x%s", "");
    CHECK_STR(cache_url(c), "file:///tmp/x");
    CHECK(cache_key_name(c) == NULL);
    cache_free(c);
    c = open_ok("file:///tmp/x?compression=zstd&write-nar-listing=1&parallel-compression=true"
                "&compression-level=%s&priority=40&want-mass-query=false",
                "19");
    cache_free(c);
    c = open_ok("http://127.0.0.1:8080/cache/?compression=none%s", "");
    cache_free(c);
    c = open_ok("file:///tmp/x?secret-key=%s", test_data("cache/test-1.sk"));
    CHECK_STR(cache_key_name(c), "test-1");
    cache_free(c);

    open_fails("s3://bucket", "unsupported scheme 's3'");
    open_fails("/tmp/x", "unsupported scheme");
    open_fails("file://relative", "absolute directory");
    open_fails("http:///nohost", "no host");
    open_fails("file:///tmp/x?compression=bzip2", "'bzip2' is not supported");
    open_fails("file:///tmp/x?compression=xz&compression-level=12", "beyond xz");
    open_fails("file:///tmp/x?write-nar-listing=maybe", "not a Boolean");
    open_fails("file:///tmp/x?no-such-thing=1", "'no-such-thing' is not supported");
    open_fails("file:///tmp/x?secret-key", "has no value");
    open_fails("file:///tmp/x?secret-key=%zz", "bad % escape");
    open_fails("file:///tmp/x?secret-key=/nonexistent/key", "secret key");
    open_fails("", "empty");
}

TEST(cache, open, bad_keys_refused)
{
    const char *dir = test_tmpdir();
    const char *bodies[] = {
        "",
        "no-colon",
        "name:not-base64!!",
        "name:AAAA",
        /* 64 bytes whose second half is not the first half's public key */
        "name:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bodies); i++) {
        char *path = xasprintf("%s/k%zu", dir, i);
        char *url = xasprintf("file:///tmp/x?secret-key=%s", path);
        Err eb = {0}, *e = &eb;
        Cache *c = NULL;
        CHECK_OK(util_write_file_atomic(path, bodies[i], strlen(bodies[i]), e), e);
        CHECK_MSG(cache_open(url, &c, e) == ERR_INVALID, "key '%s' accepted", bodies[i]);
        CHECK(strstr(e->msg, path) != NULL);
        free(url);
        free(path);
    }
}

/* Byte-for-byte what Nix wrote: a content-addressed path without references. */
TEST(cache, open, narinfo_of_a_ca_path_as_nix_writes_it)
{
    Cache *c = open_ok("file:///tmp/x?secret-key=%s", test_data("cache/test-1.sk"));
    StorePathInfo *pi =
        info("/nix/store/3y7b8vm53gz8ym9zdcndcf8f7843vif8-d",
             "sha256:05znr45rxv06jc8k26xdwp19l01phj9r9xccgxmf2a0wsm310rln", 880, NULL,
             "fixed:r:sha256:05znr45rxv06jc8k26xdwp19l01phj9r9xccgxmf2a0wsm310rln");
    NixHash fh;
    Err eb = {0}, *e = &eb;
    char *want = slurp("cache/ca-path.narinfo"), *got;
    CHECK_OK(
        nix_hash_parse("sha256:0722fqqzffv5ky7y9ka7q2lhcnpr5ira06jxsh6xh4mcy6bkql7z", -1, &fh, e),
        e);
    got = cache_narinfo_text(
        c, pi, "nar/0722fqqzffv5ky7y9ka7q2lhcnpr5ira06jxsh6xh4mcy6bkql7z.nar.xz", "xz", &fh, 236);
    CHECK_STR(got, want);
    free(got);
    free(want);
    store_path_info_free(pi);
    cache_free(c);
}

TEST(cache, open, narinfo_with_deriver_and_references)
{
    Cache *c = open_ok("file:///tmp/x?secret-key=%s", test_data("cache/test-1.sk"));
    StorePathInfo *pi = info("/nix/store/378h3i5h1apixkcm8i0g2i0y9k4w3ddx-demo-report",
                             "sha256:149x2dwcp9b2pnxliz1wjgj00m8wg2l0d8f6zb7wki6ms21x3nyb", 200,
                             "/nix/store/1m98bpf78q554x71cx8wg7w6rbx1zkfz-demo-report.drv", NULL);
    NixHash fh;
    Err eb = {0}, *e = &eb;
    char *want = slurp("cache/deriver.narinfo"), *got, *fp;
    CHECK_OK(
        nix_hash_parse("sha256:001z1xblvfzdj71g2xybd350jy48sqrzlsklj5s13jwh47fgnffq", -1, &fh, e),
        e);
    got = cache_narinfo_text(
        c, pi, "nar/001z1xblvfzdj71g2xybd350jy48sqrzlsklj5s13jwh47fgnffq.nar.xz", "xz", &fh, 176);
    CHECK_STR(got, want);
    free(want);
    free(got);
    /* references: basenames in the narinfo, full paths joined by ',' in the fingerprint */
    strvec_push(&pi->references, "/nix/store/00000000000000000000000000000000-a");
    strvec_push(&pi->references, "/nix/store/11111111111111111111111111111111-b");
    fp = cache_fingerprint(pi);
    CHECK_STR(fp, "1;/nix/store/378h3i5h1apixkcm8i0g2i0y9k4w3ddx-demo-report;"
                  "sha256:149x2dwcp9b2pnxliz1wjgj00m8wg2l0d8f6zb7wki6ms21x3nyb;200;"
                  "/nix/store/00000000000000000000000000000000-a,"
                  "/nix/store/11111111111111111111111111111111-b");
    free(fp);
    got = cache_narinfo_text(c, pi, "nar/x.nar.xz", "xz", &fh, 176);
    CHECK(strstr(got, "\nReferences: 00000000000000000000000000000000-a "
                      "11111111111111111111111111111111-b\n") != NULL);
    free(got);
    store_path_info_free(pi);
    cache_free(c);
}

/* The signature verifies with the public key Nix wrote next to the secret key. */
TEST(cache, open, signature_verifies_with_the_public_key)
{
    Cache *c = open_ok("file:///tmp/x?secret-key=%s", test_data("cache/test-1.sk"));
    const char *msg = "{\"dependentRealisations\":{},\"id\":\"sha256:00!out\",\"outPath\":\"x\"}";
    char *sig = cache_sign(c, msg, strlen(msg));
    char *pk = slurp("cache/test-1.pk");
    uint8_t raw[66], sraw[66];
    EVP_PKEY *k;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    CHECK(util_starts_with(sig, "test-1:"));
    CHECK(EVP_DecodeBlock(raw, (const unsigned char *)pk + 7, (int)strlen(pk + 7)) >= 32);
    CHECK(EVP_DecodeBlock(sraw, (const unsigned char *)sig + 7, (int)strlen(sig + 7)) >= 64);
    k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
    CHECK(k != NULL);
    CHECK(EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1);
    CHECK(EVP_DigestVerify(md, sraw, 64, (const unsigned char *)msg, strlen(msg)) == 1);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    free(pk);
    free(sig);
    cache_free(c);
}
