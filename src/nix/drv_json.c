/*
 * drv_json.c: the JSON of `nix show-derivation` (Nix 2.8) for `sluice drv show`.
 *
 * Written compactly with the keys of every object in byte order, so it equals
 * Nix's output once both are key-sorted:
 *
 *   {"<drv path>":{"args":[...],"builder":"...","env":{...},
 *     "inputDrvs":{"<drv path>":["out",...],...},"inputSrcs":[...],
 *     "outputs":{"<name>":{...},...},"system":"..."}}
 *
 *   output kind       | object
 *   input-addressed   | {"path":P}
 *   fixed             | {"hash":HEX,"hashAlgo":"[r:]ALGO","path":P}  P recomputed from the hash
 *   floating          | {"hashAlgo":"[r:]ALGO"}
 *   deferred          | {}
 *   impure            | {"hashAlgo":"[r:]ALGO","impure":true}
 *
 * Nix 2.8 recomputes a fixed output's path from its hash and the drv name instead of
 * printing the path in the file; so do we.  Strings are escaped the way Nix's JSON
 * writer of that version escapes them: \" \\ \n \r \t, other bytes below 0x20 as
 * \u00xx, everything else (DEL, bytes that are not UTF-8) copied raw.  jansson cannot
 * produce that (it refuses invalid UTF-8), hence this small writer.
 */
#include <stdlib.h>
#include <string.h>

#include "nix/nix_int.h"

static void json_str(Buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;
    buf_putc(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[6];
        size_t n = 0;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_append(b, run, (size_t)(s - run));
        run = s + 1;
        esc[n++] = '\\';
        switch (c) {
        case '"':
        case '\\': esc[n++] = (char)c; break;
        case '\n': esc[n++] = 'n'; break;
        case '\r': esc[n++] = 'r'; break;
        case '\t': esc[n++] = 't'; break;
        default:
            esc[n++] = 'u';
            esc[n++] = '0';
            esc[n++] = '0';
            esc[n++] = hex[c >> 4];
            esc[n++] = hex[c & 15];
            break;
        }
        buf_append(b, esc, n);
    }
    buf_append(b, run, (size_t)(s - run));
    buf_putc(b, '"');
}

static void json_str_list(Buf *b, char *const *v, size_t n)
{
    buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        json_str(b, v[i]);
    }
    buf_putc(b, ']');
}

/* The path Nix 2.8 shows for a fixed output: makeFixedOutputPath over the hash and
 * outputPathName(drv name, output).  Falls back to the path in the file when the
 * name is unknown or the hash does not parse (not from our parser). */
static char *fixed_path(const NixDrv *d, const NixDrvOutput *o)
{
    const char *algo = o->hash_algo;
    int recursive = 0;
    NixHashAlgo a;
    NixHash h;
    char *drv_name, *pname, *p;

    if (strncmp(algo, "r:", 2) == 0) {
        recursive = 1;
        algo += 2;
    }
    if (nix_hash_algo_parse(algo, &a) < 0 || nix_hash_parse(o->hash, (int)a, &h, NULL) < 0)
        return xstrdup(o->path);
    if (d->name) {
        drv_name = xstrdup(d->name);
    } else if (strcmp(o->name, "out") == 0 && nix_store_path_check(o->path, NULL) == 0) {
        drv_name = xstrdup(nix_store_path_name(o->path));
    } else {
        return xstrdup(o->path);
    }
    pname = nix_output_path_name(drv_name, o->name);
    p = nix_make_fixed_output_path(recursive, &h, pname, NULL, 0, 0);
    free(pname);
    free(drv_name);
    return p ? p : xstrdup(o->path);
}

static void json_output(Buf *b, const NixDrv *d, const NixDrvOutput *o)
{
    char *p;
    json_str(b, o->name);
    buf_putc(b, ':');
    switch (nix_drv_output_kind(o)) {
    case NIX_OUT_INPUT_ADDRESSED:
        buf_puts(b, "{\"path\":");
        json_str(b, o->path);
        buf_putc(b, '}');
        break;
    case NIX_OUT_FIXED:
        buf_puts(b, "{\"hash\":");
        json_str(b, o->hash);
        buf_puts(b, ",\"hashAlgo\":");
        json_str(b, o->hash_algo);
        buf_puts(b, ",\"path\":");
        p = fixed_path(d, o);
        json_str(b, p);
        free(p);
        buf_putc(b, '}');
        break;
    case NIX_OUT_FLOATING:
        buf_puts(b, "{\"hashAlgo\":");
        json_str(b, o->hash_algo);
        buf_putc(b, '}');
        break;
    case NIX_OUT_DEFERRED: buf_puts(b, "{}"); break;
    case NIX_OUT_IMPURE:
        buf_puts(b, "{\"hashAlgo\":");
        json_str(b, o->hash_algo);
        buf_puts(b, ",\"impure\":true}");
        break;
    }
}

int nix_drv_show_json_member(const NixDrv *d, const char *drv_path, Buf *b)
{
    json_str(b, drv_path);
    buf_puts(b, ":{\"args\":");
    json_str_list(b, d->args, d->n_args);
    buf_puts(b, ",\"builder\":");
    json_str(b, d->builder);
    buf_puts(b, ",\"env\":{");
    for (size_t i = 0; i < d->n_env; i++) {
        if (i)
            buf_putc(b, ',');
        json_str(b, d->env[i].key);
        buf_putc(b, ':');
        json_str(b, d->env[i].value);
    }
    buf_puts(b, "},\"inputDrvs\":{");
    for (size_t i = 0; i < d->n_inputs; i++) {
        if (i)
            buf_putc(b, ',');
        json_str(b, d->inputs[i].drv_path);
        buf_putc(b, ':');
        json_str_list(b, d->inputs[i].outputs, d->inputs[i].n_outputs);
    }
    buf_puts(b, "},\"inputSrcs\":");
    json_str_list(b, d->srcs, d->n_srcs);
    buf_puts(b, ",\"outputs\":{");
    for (size_t i = 0; i < d->n_outputs; i++) {
        if (i)
            buf_putc(b, ',');
        json_output(b, d, &d->outputs[i]);
    }
    buf_puts(b, "},\"system\":");
    json_str(b, d->platform);
    buf_putc(b, '}');
    return buf_status(b);
}

char *nix_drv_show_json(const NixDrv *d, const char *drv_path)
{
    Buf b;
    buf_init(&b, LIMIT_BUF_DEFAULT);
    buf_putc(&b, '{');
    nix_drv_show_json_member(d, drv_path, &b);
    buf_putc(&b, '}');
    if (buf_status(&b) < 0) {
        buf_dispose(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}
