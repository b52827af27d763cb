/*
 * drv_print.c: the ATerm writer and the store path of a .drv.
 *
 * Output is byte for byte what Nix 2.8 writes (see drv_parse.c for the grammar):
 * builder, args, env keys and env values escaped (" \ LF CR TAB as \" \\ \n \r \t),
 * every other field written raw.  The variant nix__drv_print_with() replaces the
 * inputDrvs list and can blank output paths (hashDerivationModulo's "mask"), so the
 * hashing code prints through the same writer.
 *
 * A .drv's store path is the text path of name + ".drv" over the ATerm, with the
 * input derivations and input sources as references.
 */
#include <stdlib.h>
#include <string.h>

#include "nix/nix_int.h"

/* Bytes that need an escape in the escaped fields. */
static const uint8_t needs_esc[256] = {
    ['"'] = '"', ['\\'] = '\\', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};

/* The writer works on a cursor into memory reserved beforehand for the worst case
 * (every escaped byte doubled), so no per-byte bounds checks are needed. */

static char *put_raw(char *w, const char *s)
{
    size_t n = strlen(s);
    *w++ = '"';
    memcpy(w, s, n);
    w += n;
    *w++ = '"';
    return w;
}

static char *put_esc(char *w, const char *s)
{
    *w++ = '"';
    for (; *s; s++) {
        uint8_t r = needs_esc[(unsigned char)*s];
        if (r) {
            *w++ = '\\';
            *w++ = (char)r;
        } else {
            *w++ = *s;
        }
    }
    *w++ = '"';
    return w;
}

static char *put_list(char *w, char *const *v, size_t n, int esc)
{
    *w++ = '[';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *w++ = ',';
        w = esc ? put_esc(w, v[i]) : put_raw(w, v[i]);
    }
    *w++ = ']';
    return w;
}

/* 1 when key names one of d's outputs. */
static int is_output_name(const NixDrv *d, const char *key)
{
    for (size_t i = 0; i < d->n_outputs; i++)
        if (strcmp(d->outputs[i].name, key) == 0)
            return 1;
    return 0;
}

/* Size of an escaped field: exact, or the worst case (every byte escaped). */
static size_t esc_len(const char *s, int exact)
{
    size_t n = strlen(s), x = n;
    if (!exact)
        return 2 * n + 2;
    for (size_t i = 0; i < n; i++)
        x += needs_esc[(unsigned char)s[i]] != 0;
    return x + 2;
}

/* Bytes of the ATerm: exact, or an upper bound. */
static size_t aterm_size(const NixDrv *d, const NixDrvInput *inputs, size_t n_inputs, int mask,
                         int exact)
{
    size_t n = 32 + strlen(d->platform) + esc_len(d->builder, exact);
    for (size_t i = 0; i < d->n_outputs; i++)
        n += 12 + strlen(d->outputs[i].name) + (mask ? 0 : strlen(d->outputs[i].path)) +
             strlen(d->outputs[i].hash_algo) + strlen(d->outputs[i].hash);
    for (size_t i = 0; i < n_inputs; i++) {
        n += 8 + strlen(inputs[i].drv_path);
        for (size_t j = 0; j < inputs[i].n_outputs; j++)
            n += 3 + strlen(inputs[i].outputs[j]);
    }
    for (size_t i = 0; i < d->n_srcs; i++)
        n += 3 + strlen(d->srcs[i]);
    for (size_t i = 0; i < d->n_args; i++)
        n += 1 + esc_len(d->args[i], exact);
    for (size_t i = 0; i < d->n_env; i++)
        n += 4 + esc_len(d->env[i].key, exact) + esc_len(d->env[i].value, exact);
    return n;
}

int nix__drv_print_with(const NixDrv *d, const NixDrvInput *inputs, size_t n_inputs, int mask,
                        Buf *b)
{
    char *w, *start;
    size_t need = aterm_size(d, inputs, n_inputs, mask, 0);

    if (buf_status(b) < 0)
        return buf_status(b);
    if (need > b->max || b->len > b->max - need)
        need = aterm_size(d, inputs, n_inputs, mask, 1); /* the bound is too loose for the cap */
    if (buf_reserve(b, need) < 0)
        return buf_status(b);
    start = w = (char *)b->p + b->len;
    memcpy(w, "Derive([", 8);
    w += 8;
    for (size_t i = 0; i < d->n_outputs; i++) {
        const NixDrvOutput *o = &d->outputs[i];
        if (i)
            *w++ = ',';
        *w++ = '(';
        w = put_raw(w, o->name);
        *w++ = ',';
        w = put_raw(w, mask ? "" : o->path);
        *w++ = ',';
        w = put_raw(w, o->hash_algo);
        *w++ = ',';
        w = put_raw(w, o->hash);
        *w++ = ')';
    }
    memcpy(w, "],[", 3);
    w += 3;
    for (size_t i = 0; i < n_inputs; i++) {
        if (i)
            *w++ = ',';
        *w++ = '(';
        w = put_raw(w, inputs[i].drv_path);
        *w++ = ',';
        w = put_list(w, inputs[i].outputs, inputs[i].n_outputs, 0);
        *w++ = ')';
    }
    *w++ = ']';
    *w++ = ',';
    w = put_list(w, d->srcs, d->n_srcs, 0);
    *w++ = ',';
    w = put_raw(w, d->platform);
    *w++ = ',';
    w = put_esc(w, d->builder);
    *w++ = ',';
    w = put_list(w, d->args, d->n_args, 1);
    *w++ = ',';
    *w++ = '[';
    for (size_t i = 0; i < d->n_env; i++) {
        if (i)
            *w++ = ',';
        *w++ = '(';
        w = put_esc(w, d->env[i].key);
        *w++ = ',';
        w = put_esc(w, mask && is_output_name(d, d->env[i].key) ? "" : d->env[i].value);
        *w++ = ')';
    }
    *w++ = ']';
    *w++ = ')';
    /* need was at least the exact size, so w stayed inside the reservation */
    b->len += (size_t)(w - start);
    b->p[b->len] = '\0';
    return 0;
}

int nix_drv_print(const NixDrv *d, Buf *out)
{
    return nix__drv_print_with(d, d->inputs, d->n_inputs, 0, out);
}

char *nix_drv_store_path(const NixDrv *d, const char *name)
{
    Buf b;
    NixHash h;
    char **refs = NULL;
    char *file_name = NULL, *path = NULL;
    size_t n = 0;

    buf_init(&b, LIMIT_DRV_FILE_SIZE);
    if (nix_drv_print(d, &b) < 0)
        goto out;
    nix_hash_bytes(NIX_HASH_SHA256, b.p, b.len, &h);
    if (d->n_inputs + d->n_srcs)
        refs = xmalloc((d->n_inputs + d->n_srcs) * sizeof *refs);
    for (size_t i = 0; i < d->n_inputs; i++)
        refs[n++] = d->inputs[i].drv_path;
    for (size_t i = 0; i < d->n_srcs; i++)
        refs[n++] = d->srcs[i];
    file_name = xasprintf("%s.drv", name);
    path = nix_make_text_path(file_name, &h, refs, n);
out:
    free(file_name);
    free(refs);
    buf_dispose(&b);
    return path;
}
