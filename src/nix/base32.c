/*
 * base32.c: Nix's base32 ("nix32"), the text form of store path hash parts and of
 * hashes in .narinfo / ca strings.
 *
 * Alphabet "0123456789abcdfghijklmnpqrsvwxyz" (no e, o, u, t).  The bytes are read as
 * one little-endian bit stream (bit k = bit k%8 of byte k/8); character i of L encodes
 * the 5 bits starting at bit 5*(L-1-i), so the last character holds the low bits of
 * byte 0.  This is not RFC 4648.  A decoder rejects text whose leading character sets
 * bits beyond the last byte.
 */
#include <string.h>

#include "nix/nix.h"

static const char alphabet[33] = "0123456789abcdfghijklmnpqrsvwxyz";

/* Value of each byte as a nix32 digit, or 0xff. */
const uint8_t nix__base32_value[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['f'] = 15, ['g'] = 16,
    ['h'] = 17, ['i'] = 18, ['j'] = 19, ['k'] = 20, ['l'] = 21, ['m'] = 22, ['n'] = 23, ['p'] = 24,
    ['q'] = 25, ['r'] = 26, ['s'] = 27, ['v'] = 28, ['w'] = 29, ['x'] = 30, ['y'] = 31, ['z'] = 32,
}; /* stored as value + 1 so that 0 means "not a digit" */

size_t nix_base32_len(size_t n)
{
    if (n == 0)
        return 0;
    return (8 * n - 1) / 5 + 1;
}

int nix__base32_digit(unsigned char c)
{
    return (int)nix__base32_value[c] - 1;
}

void nix_base32_encode(const uint8_t *in, size_t n, char *out)
{
    size_t len = nix_base32_len(n);
    for (size_t i = 0; i < len; i++) {
        size_t b = 5 * (len - 1 - i);
        size_t j = b / 8, s = b % 8;
        unsigned v = (unsigned)in[j] >> s;
        if (j + 1 < n)
            v |= (unsigned)in[j + 1] << (8 - s);
        out[i] = alphabet[v & 31];
    }
    out[len] = '\0';
}

int nix_base32_decode(const char *s, size_t slen, uint8_t *out, size_t outlen, Err *e)
{
    if (slen != nix_base32_len(outlen))
        return err_set(e, ERR_MALFORMED, "invalid base-32 hash: %zu characters, expected %zu", slen,
                       nix_base32_len(outlen));
    memset(out, 0, outlen);
    for (size_t i = 0; i < slen; i++) {
        int d = nix__base32_digit((unsigned char)s[i]);
        size_t b, j, k;
        if (d < 0)
            return err_set(e, ERR_MALFORMED,
                           "invalid base-32 hash: character %zu (0x%02x) is not a base-32 digit", i,
                           (unsigned char)s[i]);
        b = 5 * (slen - 1 - i);
        j = b / 8;
        k = b % 8;
        out[j] |= (uint8_t)((unsigned)d << k);
        if (k > 3) {
            unsigned carry = (unsigned)d >> (8 - k);
            if (j + 1 < outlen)
                out[j + 1] |= (uint8_t)carry;
            else if (carry)
                return err_set(e, ERR_MALFORMED,
                               "invalid base-32 hash: leading digit sets bits past the end");
        }
    }
    return 0;
}
