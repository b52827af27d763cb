/* tests/nix/base32.c: nix32 encoding and decoding against vectors checked with Nix 2.8. */
#include "nix/nix.h"
#include "test.h"

static int unhex(const char *s, uint8_t *out)
{
    size_t n = strlen(s) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return (int)n;
}

static const struct {
    const char *hex, *nix32;
} vectors[] = {
    {"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
     "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"},
    {"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
     "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"},
    {"a9993e364706816aba3e25717850c26c9cd0d89d", "kpcd173cq987hw957sx6m0868wv3x6d9"},
    {"900150983cd24fb0d6963f7d28e17f72", "3jgzhjhz9zjvbb0kyj7jc500ch"},
    {"000102030405060708090a0b0c0d0e0f10111213", "2c91240g1q6hq2qa1440f1h50h1h4080"},
    {"ffffffffffffffffffffffffffffffffffffffff", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"},
    {"c90a371153ccc3a0bba1afed71f21589dfb805a957c2ea7b805cfe6b3f79e4e7",
     "1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9"},
};

TEST(nix, base32, lengths)
{
    CHECK_INT(nix_base32_len(16), 26);
    CHECK_INT(nix_base32_len(20), 32);
    CHECK_INT(nix_base32_len(32), 52);
    CHECK_INT(nix_base32_len(64), 103);
    CHECK_INT(nix_base32_len(1), 2);
    CHECK_INT(nix_base32_len(0), 0);
}

TEST(nix, base32, vectors_encode_decode)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(vectors); i++) {
        uint8_t raw[64], back[64];
        char txt[128];
        Err eb = {0}, *e = &eb;
        int n = unhex(vectors[i].hex, raw);
        CHECK(n > 0);
        nix_base32_encode(raw, (size_t)n, txt);
        CHECK_STR(txt, vectors[i].nix32);
        CHECK_OK(nix_base32_decode(txt, strlen(txt), back, (size_t)n, e), e);
        CHECK(memcmp(raw, back, (size_t)n) == 0);
    }
}

TEST(nix, base32, round_trip_all_lengths)
{
    uint8_t raw[64], back[64];
    char txt[128];
    for (size_t n = 1; n <= 64; n++) {
        for (size_t i = 0; i < n; i++)
            raw[i] = (uint8_t)(i * 37 + n * 11 + 0x5a);
        nix_base32_encode(raw, n, txt);
        CHECK_INT(strlen(txt), nix_base32_len(n));
        CHECK_OK(nix_base32_decode(txt, strlen(txt), back, n, NULL), (Err *)NULL);
        CHECK(memcmp(raw, back, n) == 0);
    }
}

TEST(nix, base32, rejects_bad_text)
{
    uint8_t out[32];
    Err eb = {0}, *e = &eb;
    /* e, o, u, t are not digits */
    CHECK_INT(
        nix_base32_decode("0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c7e", 52, out, 32, e),
        ERR_MALFORMED);
    CHECK(strstr(e->msg, "base-32") != NULL);
    /* wrong length */
    CHECK_INT(nix_base32_decode("0mdqa9w1", 8, out, 32, e), ERR_MALFORMED);
    /* 20 bytes = 160 bits = exactly 32 digits: no spare bits */
    CHECK_OK(nix_base32_decode("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", 32, out, 20, e), e);
    /* 32 bytes = 256 bits in 52 digits (260 bits): the top digit may only use 1 bit */
    CHECK_OK(
        nix_base32_decode("1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", 52, out, 32, e),
        e);
    CHECK_INT(
        nix_base32_decode("2zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", 52, out, 32, e),
        ERR_MALFORMED);
    /* upper case is not nix32 */
    CHECK_INT(nix_base32_decode("ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ", 32, out, 20, e), ERR_MALFORMED);
}
