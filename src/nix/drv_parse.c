/*
 * drv_parse.c: the ATerm derivation parser and the NixDrv value (free, clone, kind,
 * env lookups).
 *
 * Grammar (Nix 2.8, no whitespace, no trailing newline):
 *
 *   Drv      = "Derive(" List(Output) "," List(InputDrv) "," List(Str) ","
 *              Str "," Str "," List(Str) "," List(EnvPair) ")"
 *   Output   = "(" Str "," Str "," Str "," Str ")"     name, path, hashAlgo, hash
 *   InputDrv = "(" Str "," List(Str) ")"               drv path, output names
 *   EnvPair  = "(" Str "," Str ")"
 *   List(X)  = "[" [ X { "," X } ] "]"
 *
 * Nix writes builder, args, env keys and env values with escapes (\" \\ \n \r \t) and
 * every other field raw.  This parser accepts exactly what Nix writes, so that
 * nix_drv_print() gives the input back byte for byte:
 *   - escaped fields: only those five escapes; raw LF, CR, TAB are rejected;
 *   - raw fields: no backslash (Nix would read it as an escape and get another value)
 *     and no NUL anywhere; the system string may hold any other byte (Nix writes LF
 *     and TAB there raw); other bytes, UTF-8 or not, are kept as they are;
 *   - outputs, inputDrvs, their output names, inputSrcs and env keys strictly
 *     ascending in byte order (Nix writes sets and maps), at least one output;
 *   - every path a valid store path (inputDrvs end in ".drv"); names of outputs from
 *     [A-Za-z0-9+-._?=]; output tuples in one of the five shapes of nix.h, all of one
 *     kind (fixed: exactly one output "out"; floating: one hash algorithm);
 *   - nothing after the final ')'.
 * Errors are ERR_MALFORMED (ERR_TOOBIG for a limit of limits.h) with "at byte N: ".
 *
 * The parser is one forward pass; each string is scanned once for its end and its
 * escapes and then copied into an allocation of its exact size.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "nix/nix_int.h"

typedef struct Parser {
    const uint8_t *base, *p, *end;
    Err *e;
} Parser;

/* Bytes that end the fast scan of a string: for escaped fields '"', '\\', NUL, LF,
 * CR, TAB; for raw fields '"', '\\', NUL. */
static const uint8_t stop_esc[256] = {
    [0] = 1, ['"'] = 1, ['\\'] = 1, ['\n'] = 1, ['\r'] = 1, ['\t'] = 1};
static const uint8_t stop_raw[256] = {[0] = 1, ['"'] = 1, ['\\'] = 1};

enum { STR_RAW = 0, STR_ESC = 1 };

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
/* Nonzero when a byte of x equals c / is below n (n <= 128); exact for "equals",
 * and "below" may also flag a byte after a match, which is fine for a pre-filter. */
static inline uint64_t has_byte(uint64_t x, uint8_t c)
{
    uint64_t y = x ^ (ONES * c);
    return (y - ONES) & ~y & HIGHS;
}

static inline uint64_t has_below(uint64_t x, uint8_t n)
{
    return (x - ONES * n) & ~x & HIGHS;
}

/* Words that may hold a byte ending the fast scan of an escaped / raw string. */
static inline uint64_t esc_candidates(uint64_t x)
{
    return has_below(x, 0x20) | has_byte(x, '"') | has_byte(x, '\\');
}

static inline uint64_t raw_candidates(uint64_t x)
{
    return has_byte(x, 0) | has_byte(x, '"') | has_byte(x, '\\');
}

/* A printable rendering of s (at most 60 bytes) for messages. */
static const char *shown(const char *s, size_t n, char *buf, size_t bufsize)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 4 < bufsize; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 60) {
            buf[j++] = '.';
            buf[j++] = '.';
            buf[j++] = '.';
            break;
        }
        buf[j++] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    buf[j] = '\0';
    return buf;
}

static int fail_at(Parser *ps, const uint8_t *at, int code, const char *fmt, ...) UTIL_PRINTF(4, 5);
static int fail_at(Parser *ps, const uint8_t *at, int code, const char *fmt, ...)
{
    char msg[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(ps->e, code, "at byte %zu: %s", (size_t)(at - ps->base), msg);
}

static int truncated(Parser *ps, const char *what)
{
    return fail_at(ps, ps->end, ERR_MALFORMED, "unexpected end of input (truncated), expected %s",
                   what);
}

static int expect(Parser *ps, char c)
{
    char what[8] = {'\'', c, '\'', 0};
    if (ps->p >= ps->end)
        return truncated(ps, what);
    if (*ps->p != (uint8_t)c) {
        unsigned char f = *ps->p;
        if (f >= 0x20 && f < 0x7f)
            return fail_at(ps, ps->p, ERR_MALFORMED, "expected '%c', found '%c'", c, f);
        return fail_at(ps, ps->p, ERR_MALFORMED, "expected '%c', found byte 0x%02x", c, f);
    }
    ps->p++;
    return 0;
}

/* Read a string.  *out is a new NUL-terminated copy, *outlen its length. */
static int read_str(Parser *ps, int kind, char **out, size_t *outlen)
{
    const uint8_t *stop = kind == STR_ESC ? stop_esc : stop_raw;
    const uint8_t *s, *q, *end = ps->end;
    size_t escapes = 0, n;
    char *r;
    int rc;

    *out = NULL;
    rc = expect(ps, '"');
    if (rc < 0)
        return rc;
    s = q = ps->p;
    for (;;) {
        const uint8_t *lim;
        /* eight bytes at a time while none can be a stop byte (bytes below 0x20
         * are only candidates: the byte loop below decides) */
        while (end - q >= 8) {
            uint64_t x;
            memcpy(&x, q, 8);
            if (kind == STR_ESC ? esc_candidates(x) : raw_candidates(x))
                break;
            q += 8;
        }
        lim = end - q > 8 ? q + 8 : end;
        while (q < lim && !stop[*q])
            q++;
        if (q == lim) {
            if (q >= end)
                return truncated(ps, "'\"'");
            continue;
        }
        if (*q == '"')
            break;
        if (*q == '\\') {
            if (kind == STR_RAW)
                return fail_at(ps, q, ERR_MALFORMED,
                               "backslash in a field that Nix writes without escapes");
            if (q + 1 >= end)
                return truncated(ps, "an escaped character");
            switch (q[1]) {
            case '"':
            case '\\':
            case 'n':
            case 'r':
            case 't': break;
            default:
                if (q[1] >= 0x20 && q[1] < 0x7f)
                    return fail_at(ps, q, ERR_MALFORMED, "invalid escape '\\%c'", q[1]);
                return fail_at(ps, q, ERR_MALFORMED, "invalid escape: backslash before byte 0x%02x",
                               q[1]);
            }
            escapes++;
            q += 2;
            continue;
        }
        if (*q == 0)
            return fail_at(ps, q, ERR_MALFORMED, "NUL byte in a string");
        return fail_at(ps, q, ERR_MALFORMED, "raw control byte 0x%02x in a string (Nix escapes it)",
                       *q);
    }
    n = (size_t)(q - s);
    if (n > LIMIT_DRV_STRING)
        return fail_at(ps, s, ERR_TOOBIG, "string of %zu bytes is over the limit of %u", n,
                       LIMIT_DRV_STRING);
    n -= escapes;
    r = xmalloc(n + 1);
    if (!escapes) {
        memcpy(r, s, n);
    } else {
        size_t j = 0;
        for (const uint8_t *x = s; x < q; x++) {
            if (*x != '\\') {
                r[j++] = (char)*x;
                continue;
            }
            x++;
            r[j++] = *x == 'n' ? '\n' : *x == 'r' ? '\r' : *x == 't' ? '\t' : (char)*x;
        }
    }
    r[n] = '\0';
    ps->p = q + 1;
    *out = r;
    if (outlen)
        *outlen = n;
    return 0;
}

/* Read a raw string that must be a valid store path (a drv path when want_drv). */
static int read_path(Parser *ps, int want_drv, char **out)
{
    const uint8_t *at = ps->p;
    char show[80];
    size_t n = 0;
    Err why = {0};
    int rc = read_str(ps, STR_RAW, out, &n);
    if (rc < 0)
        return rc;
    rc = nix__store_path_check_n(*out, n, &why);
    if (rc < 0)
        rc = fail_at(ps, at, ERR_MALFORMED, "invalid store path '%s': %s",
                     shown(*out, n, show, sizeof show), why.msg);
    else if (want_drv && !nix_store_path_is_drv(*out))
        rc = fail_at(ps, at, ERR_MALFORMED, "input derivation '%s' does not end in .drv",
                     shown(*out, n, show, sizeof show));
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* Read a raw string that must be an output name. */
static int read_output_name(Parser *ps, char **out)
{
    const uint8_t *at = ps->p;
    char show[80];
    size_t n = 0;
    int rc = read_str(ps, STR_RAW, out, &n);
    if (rc < 0)
        return rc;
    if (n == 0)
        rc = fail_at(ps, at, ERR_MALFORMED, "empty output name");
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!nix__name_char((unsigned char)(*out)[i]))
            rc = fail_at(ps, at, ERR_MALFORMED, "invalid output name '%s'",
                         shown(*out, n, show, sizeof show));
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* Make room for one more element of size `sz` in *arr (n used, *cap allocated). */
static int grow(Parser *ps, void **arr, size_t n, size_t *cap, size_t sz, size_t limit,
                const char *what)
{
    size_t ncap;
    if (n < *cap)
        return 0;
    if (n >= limit)
        return fail_at(ps, ps->p, ERR_TOOBIG, "more than %zu %s", limit, what);
    ncap = *cap ? *cap * 2 : 4;
    if (ncap > limit)
        ncap = limit;
    *arr = xrealloc(*arr, ncap * sz);
    *cap = ncap;
    return 0;
}

/* After '[' or ',' of a list: 1 when the list ends here (consumes ']'), 0 when another
 * item follows (consumes ',' unless first). */
static int list_next(Parser *ps, size_t i, int *done)
{
    if (ps->p >= ps->end)
        return truncated(ps, i ? "',' or ']'" : "an item or ']'");
    if (*ps->p == ']') {
        ps->p++;
        *done = 1;
        return 0;
    }
    *done = 0;
    if (i == 0)
        return 0;
    return expect(ps, ',');
}

/* Check that s comes strictly after prev (byte order). */
static int check_order(Parser *ps, const uint8_t *at, const char *prev, const char *s,
                       const char *what)
{
    int c;
    char a[80], b[80];
    if (!prev)
        return 0;
    c = strcmp(prev, s);
    if (c < 0)
        return 0;
    if (c == 0)
        return fail_at(ps, at, ERR_MALFORMED, "duplicate %s '%s'", what,
                       shown(s, strlen(s), a, sizeof a));
    return fail_at(ps, at, ERR_MALFORMED, "%s not sorted: '%s' after '%s'", what,
                   shown(s, strlen(s), a, sizeof a), shown(prev, strlen(prev), b, sizeof b));
}

/* List(Str) of raw output names (sorted) or paths (sorted) or escaped args (any order). */
enum { LIST_OUTNAMES, LIST_SRCS, LIST_ARGS };

static int read_str_list(Parser *ps, int what, char ***out, size_t *nout)
{
    size_t cap = 0, n = 0;
    char **v = NULL;
    int rc, done = 0;
    size_t limit = what == LIST_OUTNAMES ? LIMIT_DRV_OUTPUTS : LIMIT_DRV_LIST_ITEMS;

    rc = expect(ps, '[');
    for (size_t i = 0; rc == 0; i++) {
        const uint8_t *at;
        rc = list_next(ps, i, &done);
        if (rc < 0 || done)
            break;
        rc = grow(ps, (void **)&v, n, &cap, sizeof *v, limit, "list items");
        if (rc < 0)
            break;
        at = ps->p;
        if (what == LIST_OUTNAMES)
            rc = read_output_name(ps, &v[n]);
        else if (what == LIST_SRCS)
            rc = read_path(ps, 0, &v[n]);
        else
            rc = read_str(ps, STR_ESC, &v[n], NULL);
        if (rc < 0)
            break;
        n++;
        if (what != LIST_ARGS) {
            rc = check_order(ps, at, n > 1 ? v[n - 2] : NULL, v[n - 1],
                             what == LIST_SRCS ? "input source" : "output name");
        }
    }
    *out = v;
    *nout = n;
    return rc;
}

static int check_hash_algo(Parser *ps, const uint8_t *at, const char *algo, NixHashAlgo *a)
{
    const char *name = algo;
    char show[80];
    if (strncmp(name, "r:", 2) == 0)
        name += 2;
    if (nix_hash_algo_parse(name, a) < 0)
        return fail_at(ps, at, ERR_MALFORMED, "unknown hash algorithm '%s'",
                       shown(algo, strlen(algo), show, sizeof show));
    return 0;
}

static int read_output(Parser *ps, NixDrvOutput *o)
{
    const uint8_t *at_path, *at_algo, *at_hash;
    NixHashAlgo a;
    size_t hlen = 0;
    int rc;

    rc = expect(ps, '(');
    if (rc == 0)
        rc = read_output_name(ps, &o->name);
    if (rc == 0)
        rc = expect(ps, ',');
    if (rc < 0)
        return rc;
    at_path = ps->p;
    rc = read_str(ps, STR_RAW, &o->path, NULL);
    if (rc == 0)
        rc = expect(ps, ',');
    if (rc < 0)
        return rc;
    at_algo = ps->p;
    rc = read_str(ps, STR_RAW, &o->hash_algo, NULL);
    if (rc == 0)
        rc = expect(ps, ',');
    if (rc < 0)
        return rc;
    at_hash = ps->p;
    rc = read_str(ps, STR_RAW, &o->hash, &hlen);
    if (rc == 0)
        rc = expect(ps, ')');
    if (rc < 0)
        return rc;

    if (o->hash_algo[0] == '\0') {
        if (o->hash[0] != '\0')
            return fail_at(ps, at_hash, ERR_MALFORMED,
                           "output '%s' has a hash but no hash algorithm", o->name);
    } else {
        rc = check_hash_algo(ps, at_algo, o->hash_algo, &a);
        if (rc < 0)
            return rc;
        if (strcmp(o->hash, "impure") == 0 || o->hash[0] == '\0') {
            if (o->path[0] != '\0')
                return fail_at(ps, at_path, ERR_MALFORMED,
                               "output '%s' is content-addressed but has a path", o->name);
        } else {
            if (hlen != 2 * nix_hash_algo_size(a))
                return fail_at(ps, at_hash, ERR_MALFORMED,
                               "output '%s': hash has %zu characters, expected %zu for %s", o->name,
                               hlen, 2 * nix_hash_algo_size(a), nix_hash_algo_name(a));
            for (size_t i = 0; i < hlen; i++) {
                char c = o->hash[i];
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                    return fail_at(ps, at_hash + 1 + i, ERR_MALFORMED,
                                   "output '%s': hash is not lower-case base-16", o->name);
            }
            if (o->path[0] == '\0')
                return fail_at(ps, at_path, ERR_MALFORMED, "fixed output '%s' has no path",
                               o->name);
        }
    }
    if (o->path[0] != '\0') {
        Err why = {0};
        char show[80];
        if (nix__store_path_check_n(o->path, strlen(o->path), &why) < 0)
            return fail_at(ps, at_path, ERR_MALFORMED, "invalid store path '%s': %s",
                           shown(o->path, strlen(o->path), show, sizeof show), why.msg);
    }
    return 0;
}

static int read_input(Parser *ps, NixDrvInput *in)
{
    int rc = expect(ps, '(');
    if (rc == 0)
        rc = read_path(ps, 1, &in->drv_path);
    if (rc == 0)
        rc = expect(ps, ',');
    if (rc == 0)
        rc = read_str_list(ps, LIST_OUTNAMES, &in->outputs, &in->n_outputs);
    if (rc == 0)
        rc = expect(ps, ')');
    return rc;
}

static int read_env_pair(Parser *ps, NixEnvPair *kv)
{
    int rc = expect(ps, '(');
    if (rc == 0)
        rc = read_str(ps, STR_ESC, &kv->key, NULL);
    if (rc == 0)
        rc = expect(ps, ',');
    if (rc == 0)
        rc = read_str(ps, STR_ESC, &kv->value, NULL);
    if (rc == 0)
        rc = expect(ps, ')');
    return rc;
}

static int parse_drv(Parser *ps, NixDrv *d)
{
    static const char head[] = "Derive(";
    size_t cap, hl = sizeof head - 1;
    int rc = 0, done;
    const uint8_t *at;
    NixDrvKind kind;

    for (size_t i = 0; i < hl; i++) {
        if (ps->p >= ps->end)
            return truncated(ps, "\"Derive(\"");
        if (*ps->p != (uint8_t)head[i])
            return fail_at(ps, ps->p, ERR_MALFORMED, "not a derivation: expected \"Derive(\"");
        ps->p++;
    }

    /* outputs */
    at = ps->p;
    rc = expect(ps, '[');
    cap = 0;
    for (size_t i = 0; rc == 0; i++) {
        const uint8_t *item;
        rc = list_next(ps, i, &done);
        if (rc < 0 || done)
            break;
        rc = grow(ps, (void **)&d->outputs, d->n_outputs, &cap, sizeof *d->outputs,
                  LIMIT_DRV_OUTPUTS, "outputs");
        if (rc < 0)
            break;
        item = ps->p;
        memset(&d->outputs[d->n_outputs], 0, sizeof *d->outputs);
        d->n_outputs++;
        rc = read_output(ps, &d->outputs[d->n_outputs - 1]);
        if (rc == 0 && d->n_outputs > 1)
            rc = check_order(ps, item, d->outputs[d->n_outputs - 2].name,
                             d->outputs[d->n_outputs - 1].name, "output");
    }
    if (rc < 0)
        return rc;
    if (d->n_outputs == 0)
        return fail_at(ps, at, ERR_MALFORMED, "derivation has no outputs");
    rc = nix_drv_kind(d, &kind, ps->e);
    if (rc < 0)
        return fail_at(ps, at, ERR_MALFORMED, "%s", ps->e->msg);

    /* input derivations */
    rc = expect(ps, ',');
    if (rc == 0)
        rc = expect(ps, '[');
    cap = 0;
    for (size_t i = 0; rc == 0; i++) {
        const uint8_t *item;
        rc = list_next(ps, i, &done);
        if (rc < 0 || done)
            break;
        rc = grow(ps, (void **)&d->inputs, d->n_inputs, &cap, sizeof *d->inputs,
                  LIMIT_DRV_LIST_ITEMS, "input derivations");
        if (rc < 0)
            break;
        item = ps->p;
        memset(&d->inputs[d->n_inputs], 0, sizeof *d->inputs);
        d->n_inputs++;
        rc = read_input(ps, &d->inputs[d->n_inputs - 1]);
        if (rc == 0 && d->n_inputs > 1)
            rc = check_order(ps, item, d->inputs[d->n_inputs - 2].drv_path,
                             d->inputs[d->n_inputs - 1].drv_path, "input derivation");
    }
    if (rc < 0)
        return rc;

    /* input sources, system, builder, args */
    rc = expect(ps, ',');
    if (rc == 0)
        rc = read_str_list(ps, LIST_SRCS, &d->srcs, &d->n_srcs);
    if (rc == 0)
        rc = expect(ps, ',');
    if (rc == 0)
        rc = read_str(ps, STR_RAW, &d->platform, NULL);
    if (rc == 0)
        rc = expect(ps, ',');
    if (rc == 0)
        rc = read_str(ps, STR_ESC, &d->builder, NULL);
    if (rc == 0)
        rc = expect(ps, ',');
    if (rc == 0)
        rc = read_str_list(ps, LIST_ARGS, &d->args, &d->n_args);
    if (rc == 0)
        rc = expect(ps, ',');
    if (rc == 0)
        rc = expect(ps, '[');
    if (rc < 0)
        return rc;

    /* environment */
    cap = 0;
    for (size_t i = 0; rc == 0; i++) {
        const uint8_t *item;
        rc = list_next(ps, i, &done);
        if (rc < 0 || done)
            break;
        rc = grow(ps, (void **)&d->env, d->n_env, &cap, sizeof *d->env, LIMIT_DRV_LIST_ITEMS,
                  "environment entries");
        if (rc < 0)
            break;
        item = ps->p;
        memset(&d->env[d->n_env], 0, sizeof *d->env);
        d->n_env++;
        rc = read_env_pair(ps, &d->env[d->n_env - 1]);
        if (rc == 0 && d->n_env > 1)
            rc = check_order(ps, item, d->env[d->n_env - 2].key, d->env[d->n_env - 1].key,
                             "environment variable");
    }
    if (rc == 0)
        rc = expect(ps, ')');
    if (rc < 0)
        return rc;
    if (ps->p != ps->end)
        return fail_at(ps, ps->p, ERR_MALFORMED, "%zu unexpected bytes after the derivation",
                       (size_t)(ps->end - ps->p));
    return 0;
}

int nix_drv_parse(const uint8_t *text, size_t len, NixDrv **out, Err *e)
{
    Err local;
    Parser ps = {.base = text, .p = text, .end = text + len, .e = e ? e : &local};
    NixDrv *d = NULL;
    int rc;

    *out = NULL;
    if (len > LIMIT_DRV_FILE_SIZE)
        return err_set(e, ERR_TOOBIG, "derivation of %zu bytes is over the limit of %u bytes", len,
                       LIMIT_DRV_FILE_SIZE);
    d = xcalloc(1, sizeof *d);
    rc = parse_drv(&ps, d);
    if (rc < 0)
        goto out;
    *out = d;
    d = NULL;
out:
    nix_drv_free(d);
    return rc;
}

static int read_and_parse(const char *file, NixDrv **out, Err *e)
{
    Buf b;
    int rc;
    *out = NULL;
    buf_init(&b, LIMIT_DRV_FILE_SIZE);
    rc = util_read_file(file, &b, e);
    if (rc == ERR_TOOBIG)
        rc = err_set(e, ERR_TOOBIG, "%s: larger than the limit of %u bytes for a derivation", file,
                     LIMIT_DRV_FILE_SIZE);
    if (rc < 0)
        goto out;
    rc = nix_drv_parse(b.p, b.len, out, e);
    if (rc < 0)
        err_prefix(e, "%s", file);
out:
    buf_dispose(&b);
    return rc;
}

int nix_drv_read(const char *drv_path, NixDrv **out, Err *e)
{
    int rc;
    *out = NULL;
    rc = nix_store_path_check(drv_path, e);
    if (rc < 0)
        return rc;
    if (!nix_store_path_is_drv(drv_path))
        return err_set(e, ERR_INVALID, "%s is not a derivation (no .drv suffix)", drv_path);
    rc = read_and_parse(drv_path, out, e);
    if (rc < 0)
        return rc;
    (*out)->name = nix_drv_name_from_path(drv_path);
    return 0;
}

int nix_drv_read_file(const char *file, NixDrv **out, Err *e)
{
    return read_and_parse(file, out, e);
}

/* ---------------------------------------------------------------- the value */

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void nix_drv_free(NixDrv *d)
{
    if (!d)
        return;
    free(d->name);
    for (size_t i = 0; i < d->n_outputs; i++) {
        free(d->outputs[i].name);
        free(d->outputs[i].path);
        free(d->outputs[i].hash_algo);
        free(d->outputs[i].hash);
    }
    free(d->outputs);
    for (size_t i = 0; i < d->n_inputs; i++) {
        free(d->inputs[i].drv_path);
        free_strv(d->inputs[i].outputs, d->inputs[i].n_outputs);
    }
    free(d->inputs);
    free_strv(d->srcs, d->n_srcs);
    free(d->platform);
    free(d->builder);
    free_strv(d->args, d->n_args);
    for (size_t i = 0; i < d->n_env; i++) {
        free(d->env[i].key);
        free(d->env[i].value);
    }
    free(d->env);
    free(d);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static char **dup_strv(char *const *v, size_t n)
{
    char **r;
    if (!n)
        return NULL;
    r = xmalloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++)
        r[i] = dup_or_null(v[i]);
    return r;
}

NixDrv *nix_drv_clone(const NixDrv *d)
{
    NixDrv *c = xcalloc(1, sizeof *c);
    c->name = dup_or_null(d->name);
    if (d->n_outputs) {
        c->outputs = xcalloc(d->n_outputs, sizeof *c->outputs);
        for (size_t i = 0; i < d->n_outputs; i++) {
            c->outputs[i].name = dup_or_null(d->outputs[i].name);
            c->outputs[i].path = dup_or_null(d->outputs[i].path);
            c->outputs[i].hash_algo = dup_or_null(d->outputs[i].hash_algo);
            c->outputs[i].hash = dup_or_null(d->outputs[i].hash);
        }
    }
    c->n_outputs = d->n_outputs;
    if (d->n_inputs) {
        c->inputs = xcalloc(d->n_inputs, sizeof *c->inputs);
        for (size_t i = 0; i < d->n_inputs; i++) {
            c->inputs[i].drv_path = dup_or_null(d->inputs[i].drv_path);
            c->inputs[i].outputs = dup_strv(d->inputs[i].outputs, d->inputs[i].n_outputs);
            c->inputs[i].n_outputs = d->inputs[i].n_outputs;
        }
    }
    c->n_inputs = d->n_inputs;
    c->srcs = dup_strv(d->srcs, d->n_srcs);
    c->n_srcs = d->n_srcs;
    c->platform = dup_or_null(d->platform);
    c->builder = dup_or_null(d->builder);
    c->args = dup_strv(d->args, d->n_args);
    c->n_args = d->n_args;
    if (d->n_env) {
        c->env = xcalloc(d->n_env, sizeof *c->env);
        for (size_t i = 0; i < d->n_env; i++) {
            c->env[i].key = dup_or_null(d->env[i].key);
            c->env[i].value = dup_or_null(d->env[i].value);
        }
    }
    c->n_env = d->n_env;
    return c;
}

NixOutputKind nix_drv_output_kind(const NixDrvOutput *o)
{
    if (!o->hash_algo || o->hash_algo[0] == '\0')
        return (!o->path || o->path[0] == '\0') ? NIX_OUT_DEFERRED : NIX_OUT_INPUT_ADDRESSED;
    if (!o->hash || o->hash[0] == '\0')
        return NIX_OUT_FLOATING;
    if (strcmp(o->hash, "impure") == 0)
        return NIX_OUT_IMPURE;
    return NIX_OUT_FIXED;
}

int nix_drv_kind(const NixDrv *d, NixDrvKind *out, Err *e)
{
    static const char *const names[] = {"input-addressed", "fixed-output", "floating CA",
                                        "deferred", "impure"};
    NixOutputKind k;
    if (d->n_outputs == 0)
        return err_set(e, ERR_MALFORMED, "derivation has no outputs");
    k = nix_drv_output_kind(&d->outputs[0]);
    for (size_t i = 1; i < d->n_outputs; i++) {
        NixOutputKind ki = nix_drv_output_kind(&d->outputs[i]);
        if (ki != k)
            return err_set(e, ERR_MALFORMED,
                           "derivation mixes output kinds: '%s' is %s, '%s' is %s",
                           d->outputs[0].name, names[k], d->outputs[i].name, names[ki]);
        if ((k == NIX_OUT_FLOATING || k == NIX_OUT_IMPURE) &&
            strcmp(d->outputs[i].hash_algo, d->outputs[0].hash_algo) != 0)
            return err_set(e, ERR_MALFORMED,
                           "content-addressed outputs '%s' and '%s' use different hash algorithms",
                           d->outputs[0].name, d->outputs[i].name);
    }
    if (k == NIX_OUT_FIXED && (d->n_outputs != 1 || strcmp(d->outputs[0].name, "out") != 0))
        return err_set(e, ERR_MALFORMED,
                       "a fixed-output derivation must have exactly one output, named 'out'");
    /* NixDrvKind and NixOutputKind list the kinds in the same order */
    *out = (NixDrvKind)k;
    return 0;
}

const char *nix_drv_env(const NixDrv *d, const char *key)
{
    size_t lo = 0, hi = d->n_env;
    /* env is sorted by key; fall back to a scan if a caller built it unsorted */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(d->env[mid].key, key);
        if (c == 0)
            return d->env[mid].value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = 0; i < d->n_env; i++)
        if (strcmp(d->env[i].key, key) == 0)
            return d->env[i].value;
    return NULL;
}

int nix_drv_prefers_local(const NixDrv *d)
{
    const char *json = nix_drv_env(d, "__json"), *v;
    if (json) {
        json_t *root = json_loads(json, 0, NULL);
        int yes = root && json_is_true(json_object_get(root, "preferLocalBuild"));
        json_decref(root);
        return yes;
    }
    v = nix_drv_env(d, "preferLocalBuild");
    return v && strcmp(v, "1") == 0;
}

void nix_drv_required_features(const NixDrv *d, StrVec *out)
{
    const char *json = nix_drv_env(d, "__json");
    const char *s;
    strvec_init(out);
    if (json) {
        /* structured attrs: a list of strings under requiredSystemFeatures */
        json_t *root = json_loads(json, 0, NULL), *list;
        size_t i;
        json_t *v;
        list = root ? json_object_get(root, "requiredSystemFeatures") : NULL;
        if (json_is_array(list)) {
            json_array_foreach(list, i, v)
            {
                if (json_is_string(v))
                    strvec_push(out, json_string_value(v));
            }
        }
        json_decref(root);
        strvec_sort_unique(out);
        return;
    }
    s = nix_drv_env(d, "requiredSystemFeatures");
    while (s && *s) {
        size_t n;
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
            s++;
        n = strcspn(s, " \t\n\r");
        if (n)
            strvec_push_take(out, xstrndup(s, n));
        s += n;
    }
    strvec_sort_unique(out);
}
