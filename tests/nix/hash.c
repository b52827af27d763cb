/* tests/nix/hash.c: digests through libcrypto and the hash text forms Nix uses. */
#include "nix/nix.h"
#include "test.h"

TEST(nix, hash, digests_of_abc)
{
    NixHash h;
    char t[NIX_HASH_TEXT_MAX];
    nix_hash_bytes(NIX_HASH_SHA256, "abc", 3, &h);
    nix_hash_to_base16(&h, t);
    CHECK_STR(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    nix_hash_to_base32(&h, t);
    CHECK_STR(t, "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s");
    nix_hash_to_sri(&h, t);
    CHECK_STR(t, "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    nix_hash_bytes(NIX_HASH_SHA1, "abc", 3, &h);
    nix_hash_to_base16(&h, t);
    CHECK_STR(t, "a9993e364706816aba3e25717850c26c9cd0d89d");
    nix_hash_bytes(NIX_HASH_MD5, "abc", 3, &h);
    nix_hash_to_base32(&h, t);
    CHECK_STR(t, "3jgzhjhz9zjvbb0kyj7jc500ch");
    CHECK_INT(h.len, 16);
    nix_hash_bytes(NIX_HASH_SHA512, "abc", 3, &h);
    CHECK_INT(h.len, 64);
    nix_hash_to_base16(&h, t);
    CHECK_STR(t, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                 "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
}

TEST(nix, hash, streaming_equals_oneshot)
{
    NixHash a, b;
    NixHashCtx *c = nix_hash_ctx_new(NIX_HASH_SHA512);
    nix_hash_ctx_update(c, "hello ", 6);
    nix_hash_ctx_update(c, "", 0);
    nix_hash_ctx_update(c, "world", 5);
    nix_hash_ctx_final(c, &a);
    nix_hash_bytes(NIX_HASH_SHA512, "hello world", 11, &b);
    CHECK(a.len == b.len && memcmp(a.d, b.d, a.len) == 0);
    nix_hash_ctx_free(nix_hash_ctx_new(NIX_HASH_MD5)); /* abandon */
    nix_hash_ctx_free(NULL);
}

TEST(nix, hash, algo_names)
{
    NixHashAlgo a;
    CHECK_OK(nix_hash_algo_parse("sha1", &a), (Err *)NULL);
    CHECK_INT(a, NIX_HASH_SHA1);
    CHECK_INT(nix_hash_algo_parse("sha-1", &a), ERR_INVALID);
    CHECK_INT(nix_hash_algo_parse("SHA256", &a), ERR_INVALID);
    CHECK_STR(nix_hash_algo_name(NIX_HASH_SHA512), "sha512");
    CHECK_INT(nix_hash_algo_size(NIX_HASH_MD5), 16);
}

TEST(nix, hash, parse_all_forms)
{
    static const char *const forms[] = {
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
        "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
        "sha256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
        "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
    };
    NixHash ref, h;
    Err eb = {0}, *e = &eb;
    nix_hash_bytes(NIX_HASH_SHA256, "abc", 3, &ref);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(forms); i++) {
        CHECK_OK(nix_hash_parse(forms[i], -1, &h, e), e);
        CHECK(h.algo == NIX_HASH_SHA256 && h.len == 32 && memcmp(h.d, ref.d, 32) == 0);
        CHECK_OK(nix_hash_parse(forms[i], NIX_HASH_SHA256, &h, e), e);
    }
    /* untyped with a given algorithm, by length */
    CHECK_OK(nix_hash_parse("1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", NIX_HASH_SHA256,
                            &h, e),
             e);
    CHECK(memcmp(h.d, ref.d, 32) == 0);
    CHECK_OK(nix_hash_parse("kpcd173cq987hw957sx6m0868wv3x6d9", NIX_HASH_SHA1, &h, e), e);
    CHECK_INT(h.len, 20);
    CHECK_OK(nix_hash_parse("md5:900150983cd24fb0d6963f7d28e17f72", -1, &h, e), e);
    CHECK_INT(h.algo, NIX_HASH_MD5);
    /* sha512 SRI round trip */
    {
        char t[NIX_HASH_TEXT_MAX];
        NixHash h2;
        nix_hash_bytes(NIX_HASH_SHA512, "x", 1, &h);
        nix_hash_to_sri(&h, t);
        CHECK_OK(nix_hash_parse(t, -1, &h2, e), e);
        CHECK(h2.len == 64 && memcmp(h.d, h2.d, 64) == 0);
    }
}

TEST(nix, hash, parse_rejects)
{
    NixHash h;
    Err eb = {0}, *e = &eb;
    CHECK_INT(nix_hash_parse("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", -1,
                             &h, e),
              ERR_MALFORMED); /* no type */
    CHECK_INT(
        nix_hash_parse("sha1:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", -1,
                       &h, e),
        ERR_MALFORMED); /* wrong length for sha1 */
    CHECK_INT(
        nix_hash_parse("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ag",
                       -1, &h, e),
        ERR_MALFORMED); /* bad hex */
    CHECK_INT(nix_hash_parse("sha3:abcd", -1, &h, e), ERR_MALFORMED);
    CHECK_INT(nix_hash_parse("sha1:kpcd173cq987hw957sx6m0868wv3x6d9", NIX_HASH_SHA256, &h, e),
              ERR_MALFORMED); /* type mismatch */
    CHECK_INT(nix_hash_parse("sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0", -1, &h, e),
              ERR_MALFORMED); /* SRI without padding */
    CHECK_INT(nix_hash_parse("sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIA", -1, &h, e),
              ERR_MALFORMED); /* too short */
    CHECK_INT(nix_hash_parse("sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/Y IAFa0=", -1, &h, e),
              ERR_MALFORMED); /* bad character */
    CHECK_INT(nix_hash_parse("", NIX_HASH_SHA256, &h, e), ERR_MALFORMED);
}

TEST(nix, hash, compress)
{
    /* compressHash20 of sha256(fingerprint of ia-simple's output) */
    NixHash h;
    uint8_t c[20];
    char t[64];
    const char *fp = "output:out:sha256:"
                     "4f7e6ed036b87d8de7e553eec94085f9675643a20418a93a43c1d957b7a795b7:/nix/"
                     "store:ia-simple";
    nix_hash_bytes(NIX_HASH_SHA256, fp, strlen(fp), &h);
    nix_hash_compress(&h, 20, c);
    nix_base32_encode(c, 20, t);
    CHECK_STR(t, "5r10i2xayliqjmz28jb6np7iqcbgqkjk");
}
