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
static const uint8_t needs_esc[256] = {['"'] = '"', ['\\'] = '\\', ['\n'] = 'n', ['\r'] = 'r',
                                       ['\t'] = 't'};

static void put_raw(Buf *b, const char *s)
{
    buf_putc(b, '"');
    buf_puts(b, s);
    buf_putc(b, '"');
}

static void put_esc(Buf *b, const char *s)
{
    const char *run = s;
    buf_putc(b, '"');
    for (; *s; s++) {
        uint8_t r = needs_esc[(unsigned char)*s];
        if (r) {
            char two[2] = {'\\', (char)r};
            buf_append(b, run, (size_t)(s - run));
            buf_append(b, two, 2);
            run = s + 1;
        }
    }
    buf_append(b, run, (size_t)(s - run));
    buf_putc(b, '"');
}

static void put_list(Buf *b, char *const *v, size_t n, int esc)
{
    buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        if (esc)
            put_esc(b, v[i]);
        else
            put_raw(b, v[i]);
    }
    buf_putc(b, ']');
}

/* 1 when key names one of d's outputs. */
static int is_output_name(const NixDrv *d, const char *key)
{
    for (size_t i = 0; i < d->n_outputs; i++)
        if (strcmp(d->outputs[i].name, key) == 0)
            return 1;
    return 0;
}

/* A rough size of the ATerm, to reserve the buffer once. */
static size_t estimate(const NixDrv *d, const NixDrvInput *inputs, size_t n_inputs)
{
    size_t n = 64 + strlen(d->platform) + strlen(d->builder);
    for (size_t i = 0; i < d->n_outputs; i++)
        n += 16 + strlen(d->outputs[i].name) + strlen(d->outputs[i].path) +
             strlen(d->outputs[i].hash_algo) + strlen(d->outputs[i].hash);
    for (size_t i = 0; i < n_inputs; i++) {
        n += 8 + strlen(inputs[i].drv_path);
        for (size_t j = 0; j < inputs[i].n_outputs; j++)
            n += 3 + strlen(inputs[i].outputs[j]);
    }
    for (size_t i = 0; i < d->n_srcs; i++)
        n += 3 + strlen(d->srcs[i]);
    for (size_t i = 0; i < d->n_args; i++)
        n += 3 + strlen(d->args[i]);
    for (size_t i = 0; i < d->n_env; i++)
        n += 6 + strlen(d->env[i].key) + strlen(d->env[i].value);
    return n + n / 16;
}

int nix__drv_print_with(const NixDrv *d, const NixDrvInput *inputs, size_t n_inputs, int mask,
                        Buf *b)
{
    buf_reserve(b, estimate(d, inputs, n_inputs));
    buf_append(b, "Derive([", 8);
    for (size_t i = 0; i < d->n_outputs; i++) {
        const NixDrvOutput *o = &d->outputs[i];
        if (i)
            buf_putc(b, ',');
        buf_putc(b, '(');
        put_raw(b, o->name);
        buf_putc(b, ',');
        put_raw(b, mask ? "" : o->path);
        buf_putc(b, ',');
        put_raw(b, o->hash_algo);
        buf_putc(b, ',');
        put_raw(b, o->hash);
        buf_putc(b, ')');
    }
    buf_append(b, "],[", 3);
    for (size_t i = 0; i < n_inputs; i++) {
        if (i)
            buf_putc(b, ',');
        buf_putc(b, '(');
        put_raw(b, inputs[i].drv_path);
        buf_putc(b, ',');
        put_list(b, inputs[i].outputs, inputs[i].n_outputs, 0);
        buf_putc(b, ')');
    }
    buf_append(b, "],", 2);
    put_list(b, d->srcs, d->n_srcs, 0);
    buf_putc(b, ',');
    put_raw(b, d->platform);
    buf_putc(b, ',');
    put_esc(b, d->builder);
    buf_putc(b, ',');
    put_list(b, d->args, d->n_args, 1);
    buf_append(b, ",[", 2);
    for (size_t i = 0; i < d->n_env; i++) {
        if (i)
            buf_putc(b, ',');
        buf_putc(b, '(');
        put_esc(b, d->env[i].key);
        buf_putc(b, ',');
        put_esc(b, mask && is_output_name(d, d->env[i].key) ? "" : d->env[i].value);
        buf_putc(b, ')');
    }
    buf_append(b, "])", 2);
    return buf_status(b);
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
