/*
 * nix_int.h: helpers shared inside src/nix/ only (not part of the nix/ contract).
 */
#ifndef SLUICE_NIX_INT_H
#define SLUICE_NIX_INT_H

#include "nix/nix.h"

/* Value + 1 of each byte as a nix32 digit, 0 for bytes that are not digits. */
extern const uint8_t nix__base32_value[256];
/* Value of a nix32 digit, or -1. */
int nix__base32_digit(unsigned char c);

/* Lower-case hex of n bytes into out (2n chars + NUL). */
void nix__hex_encode(const uint8_t *in, size_t n, char *out);

/* 1 when c may occur in a store path name: [A-Za-z0-9+-._?=]. */
int nix__name_char(unsigned char c);

/* Validate a store path given as (p, n), not NUL-terminated; 0 or ERR_MALFORMED with
 * a reason in e (the message does not contain the path). */
int nix__store_path_check_n(const char *p, size_t n, Err *e);

/* Print d's ATerm with its inputDrvs list replaced by inputs[0..n_inputs) (printed in
 * the order given; the drv_path strings are written raw, so hashDerivationModulo can
 * pass hex digests), and with mask set, every output path and the env value of every
 * key naming an output written as "".  Appends to b; returns buf_status(b). */
int nix__drv_print_with(const NixDrv *d, const NixDrvInput *inputs, size_t n_inputs, int mask,
                        Buf *b);

#endif
