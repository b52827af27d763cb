/* tests/nix/drv.c: the ATerm parser and printer, drv paths and `drv show` JSON against
 * derivations written by Nix 2.8 (tests/data/nix/drv: the spec's vectors;
 * tests/data/nix/odd: control bytes, non-UTF-8, raw LF/TAB in system, impure), and
 * hostile input (every prefix, byte mutations, a table of broken derivations). */
#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "nix/nix.h"
#include "test.h"

/* ---------------------------------------------------------------- helpers */

/* CHECK_OK through a pointer variable (the address of a local is never NULL). */
#define OK(expr, errv)                                                                             \
    do {                                                                                           \
        Err *ep_ = (errv);                                                                         \
        CHECK_OK(expr, ep_);                                                                       \
    } while (0)

/* Every .drv file under tests/data/nix/{drv,odd} (two levels), except broken ones. */
static void collect(const char *dir, int depth, StrVec *out)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    if (!d)
        return;
    while ((de = readdir(d))) {
        char *p;
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        p = xasprintf("%s/%s", dir, de->d_name);
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode) && depth < 2)
            collect(p, depth + 1, out);
        else if (util_ends_with(de->d_name, ".drv") && !strstr(de->d_name, "-sysq.drv"))
            strvec_push(out, p);
        free(p);
    }
    closedir(d);
}

static void all_drvs(StrVec *out)
{
    char *a, *b;
    strvec_init(out);
    a = xstrdup(test_data("nix/drv"));
    b = xstrdup(test_data("nix/odd"));
    collect(a, 0, out);
    collect(b, 0, out);
    strvec_sort_unique(out);
    free(a);
    free(b);
}

static int slurp(const char *path, Buf *b)
{
    buf_init(b, LIMIT_DRV_FILE_SIZE);
    return util_read_file(path, b, NULL);
}

static const char *base_of(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static const char SIMPLE[] =
    "Derive([(\"out\",\"/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple\",\"\",\"\")],[],"
    "[],\"x86_64-linux\",\"/bin/sh\",[\"-c\",\"echo\"],[(\"builder\",\"/bin/sh\"),(\"name\","
    "\"ia-simple\"),(\"out\",\"/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple\"),("
    "\"system\",\"x86_64-linux\")])";

/* ---------------------------------------------------------------- vectors */

TEST(nix, drv, vectors_round_trip_byte_exact)
{
    StrVec files;
    all_drvs(&files);
    CHECK_MSG(files.n >= 20, "only %zu drv files found", files.n);
    for (size_t i = 0; i < files.n; i++) {
        Buf in, out;
        NixDrv *d = NULL, *c;
        Err e = {0};
        int rc;
        CHECK(slurp(files.v[i], &in) == 0);
        rc = nix_drv_parse(in.p, in.len, &d, &e);
        if (rc < 0) {
            test_fail(__FILE__, __LINE__, "%s: %s", files.v[i], e.msg);
            buf_dispose(&in);
            break;
        }
        buf_init(&out, LIMIT_DRV_FILE_SIZE);
        CHECK(nix_drv_print(d, &out) == 0);
        CHECK_MSG(out.len == in.len && memcmp(out.p, in.p, in.len) == 0, "%s: print differs",
                  files.v[i]);
        /* a clone prints the same */
        c = nix_drv_clone(d);
        buf_reset(&out);
        CHECK(nix_drv_print(c, &out) == 0);
        CHECK_MSG(out.len == in.len && memcmp(out.p, in.p, in.len) == 0, "%s: clone differs",
                  files.v[i]);
        nix_drv_free(c);
        nix_drv_free(d);
        buf_dispose(&out);
        buf_dispose(&in);
    }
    strvec_dispose(&files);
}

TEST(nix, drv, vectors_drv_path)
{
    StrVec files;
    all_drvs(&files);
    for (size_t i = 0; i < files.n; i++) {
        NixDrv *d = NULL;
        Err e = {0};
        char *name, *path, *want;
        OK(nix_drv_read_file(files.v[i], &d, &e), &e);
        CHECK(d->name == NULL);
        want = xasprintf("%s/%s", NIX_STORE_DIR, base_of(files.v[i]));
        name = nix_drv_name_from_path(want);
        path = nix_drv_store_path(d, name);
        CHECK_STR(path, want);
        free(path);
        free(name);
        free(want);
        nix_drv_free(d);
    }
    strvec_dispose(&files);
}

TEST(nix, drv, vectors_show_json_equals_nix)
{
    StrVec files;
    int compared = 0;
    all_drvs(&files);
    for (size_t i = 0; i < files.n; i++) {
        char *dir = xstrndup(files.v[i], (size_t)(base_of(files.v[i]) - files.v[i]));
        char *want_file = xasprintf("%sshow-derivation.json", dir);
        char *key = xasprintf("%s/%s", NIX_STORE_DIR, base_of(files.v[i]));
        NixDrv *d = NULL;
        Err e = {0};
        json_t *want, *got;
        char *js;
        free(dir);
        want = json_load_file(want_file, 0, NULL);
        free(want_file);
        if (!want) { /* odd/: compared with Nix's own output by tests/nix/drv_show.test.sh */
            free(key);
            continue;
        }
        OK(nix_drv_read_file(files.v[i], &d, &e), &e);
        d->name = nix_drv_name_from_path(key);
        js = nix_drv_show_json(d, key);
        got = json_loads(js, 0, NULL);
        CHECK_MSG(got && json_equal(got, want), "%s: JSON differs:\n%s", files.v[i], js);
        compared++;
        json_decref(got);
        json_decref(want);
        free(js);
        free(key);
        nix_drv_free(d);
    }
    CHECK(compared >= 16);
    strvec_dispose(&files);
}

TEST(nix, drv, fields_and_escapes)
{
    Buf in;
    NixDrv *d = NULL;
    Err e = {0};
    StrVec feats;
    NixDrvKind k;
    CHECK(slurp(test_data("nix/drv/ia-multi/y1n44zwcv89j74hlv3ca809llbhhdxsp-ia-multi.drv"), &in) ==
          0);
    OK(nix_drv_parse(in.p, in.len, &d, &e), &e);
    buf_dispose(&in);
    CHECK_INT(d->n_outputs, 3);
    CHECK_STR(d->outputs[0].name, "bin");
    CHECK_STR(d->outputs[1].path, "/nix/store/p244b91v99b3wqr3kpx71cqfi1z5qfzz-ia-multi-dev");
    CHECK_STR(d->platform, "x86_64-linux");
    CHECK_STR(d->builder, "/bin/sh");
    CHECK_INT(d->n_args, 2);
    CHECK_STR(d->args[1], "echo \"$tricky\" > $out; echo dev > $dev; echo bin > $bin");
    CHECK_STR(nix_drv_env(d, "tricky"), "quote\" backslash\\ newline\n tab\t cr\r end");
    CHECK_STR(nix_drv_env(d, "outputs"), "out dev bin");
    CHECK(nix_drv_env(d, "nope") == NULL);
    OK(nix_drv_kind(d, &k, &e), &e);
    CHECK_INT(k, NIX_DRV_INPUT_ADDRESSED);
    nix_drv_required_features(d, &feats);
    CHECK_INT(feats.n, 0);
    strvec_dispose(&feats);
    nix_drv_free(d);
}

TEST(nix, drv, kinds_of_vectors)
{
    static const struct {
        const char *file;
        NixDrvKind kind;
    } v[] = {
        {"nix/drv/fo-rec/1kqv9la071n77gwv3chk5lgq0sni2qz8-fo-rec.drv", NIX_DRV_FIXED},
        {"nix/drv/ca-a/abz044s0863jizjik1j9bv0f1ybg447n-ca-a.drv", NIX_DRV_FLOATING},
        {"nix/drv/ia-on-ca/gjvki15qycidia59a2iaqr4yly4h5bcb-ia-on-ca.drv", NIX_DRV_DEFERRED},
        {"nix/drv/ia-deps/55nw3zqhs9fd0b89y1yjbsizfyprhqj9-ia-deps.drv", NIX_DRV_INPUT_ADDRESSED},
        {"nix/odd/hh7722gj59vsf7slzy7g16fp2ydkyhv5-imp.drv", NIX_DRV_IMPURE},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(v); i++) {
        NixDrv *d = NULL;
        Err e = {0};
        NixDrvKind k;
        OK(nix_drv_read_file(test_data(v[i].file), &d, &e), &e);
        OK(nix_drv_kind(d, &k, &e), &e);
        CHECK_MSG(k == v[i].kind, "%s: kind %d, expected %d", v[i].file, k, v[i].kind);
        nix_drv_free(d);
    }
}

TEST(nix, drv, required_features)
{
    static const char plain[] =
        "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"x\",\"b\",[],[(\"requiredSystemFeatures\","
        "\" kvm\\tbig-parallel  kvm\\n\")])";
    static const char structured[] =
        "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"x\",\"b\",[],[(\"__json\","
        "\"{\\\"requiredSystemFeatures\\\":[\\\"nixos-test\\\",\\\"benchmark\\\"]}\"),("
        "\"requiredSystemFeatures\",\"ignored\")])";
    NixDrv *d = NULL;
    Err e = {0};
    StrVec f;
    OK(nix_drv_parse((const uint8_t *)plain, strlen(plain), &d, &e), &e);
    nix_drv_required_features(d, &f);
    CHECK_INT(f.n, 2);
    CHECK_STR(f.v[0], "big-parallel");
    CHECK_STR(f.v[1], "kvm");
    strvec_dispose(&f);
    nix_drv_free(d);
    OK(nix_drv_parse((const uint8_t *)structured, strlen(structured), &d, &e), &e);
    nix_drv_required_features(d, &f);
    CHECK_INT(f.n, 2);
    CHECK_STR(f.v[0], "benchmark");
    CHECK_STR(f.v[1], "nixos-test");
    strvec_dispose(&f);
    nix_drv_free(d);
}

TEST(nix, drv, read_from_store_path)
{
    NixDrv *d = NULL;
    Err e = {0};
    CHECK_INT(nix_drv_read("/tmp/x.drv", &d, &e), ERR_MALFORMED);
    CHECK(strstr(e.msg, "/tmp/x.drv") != NULL);
    CHECK_INT(nix_drv_read("/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple", &d, &e),
              ERR_INVALID);
    CHECK(nix_drv_read("/nix/store/00000000000000000000000000000000-nope.drv", &d, &e) < 0);
    CHECK(d == NULL);
    CHECK(strstr(e.msg, "00000000000000000000000000000000-nope.drv") != NULL);
}

/* ---------------------------------------------------------------- bad input */

typedef struct Bad {
    const char *what;
    const char *text;
    size_t len; /* 0: strlen */
    int code;
    const char *msg; /* substring of the message */
    long offset;     /* expected "at byte N", or -1 for any */
} Bad;

#define O "Derive([(\"out\",\"/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-x\",\"\",\"\")],"
#define P "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-"

static const Bad bad[] = {
    {"empty", "", 0, ERR_MALFORMED, "truncated", 0},
    {"prefix only", "Derive", 0, ERR_MALFORMED, "truncated", 6},
    {"other constructor", "Drv([],[],[],\"\",\"\",[],[])", 0, ERR_MALFORMED, "not a derivation", 1},
    {"no outputs", "Derive([],[],[],\"x\",\"b\",[],[])", 0, ERR_MALFORMED, "no outputs", 7},
    {"trailing newline", O "[],[],\"x\",\"b\",[],[])\n", 0, ERR_MALFORMED, "after the derivation",
     (long)sizeof(O "[],[],\"x\",\"b\",[],[])") - 1},
    {"missing comma", O "[],[]\"x\",\"b\",[],[])", 0, ERR_MALFORMED, "expected ','", -1},
    {"unsorted env", O "[],[],\"x\",\"b\",[],[(\"b\",\"1\"),(\"a\",\"2\")])", 0, ERR_MALFORMED,
     "not sorted", -1},
    {"duplicate env", O "[],[],\"x\",\"b\",[],[(\"a\",\"1\"),(\"a\",\"2\")])", 0, ERR_MALFORMED,
     "duplicate environment variable 'a'", -1},
    {"unsorted srcs", O "[],[\"" P "b\",\"" P "a\"],\"x\",\"b\",[],[])", 0, ERR_MALFORMED,
     "not sorted", -1},
    {"duplicate srcs", O "[],[\"" P "a\",\"" P "a\"],\"x\",\"b\",[],[])", 0, ERR_MALFORMED,
     "duplicate", -1},
    {"unsorted outputs",
     "Derive([(\"out\",\"" P "x\",\"\",\"\"),(\"dev\",\"" P
     "x-dev\",\"\",\"\")],[],[],\"x\",\"b\",[],[])",
     0, ERR_MALFORMED, "output not sorted", -1},
    {"duplicate input drv",
     O "[(\"" P "a.drv\",[\"out\"]),(\"" P "a.drv\",[\"out\"])],[],\"x\",\"b\",[],[])", 0,
     ERR_MALFORMED, "duplicate input derivation", -1},
    {"unsorted input outputs", O "[(\"" P "a.drv\",[\"out\",\"dev\"])],[],\"x\",\"b\",[],[])", 0,
     ERR_MALFORMED, "output name not sorted", -1},
    {"input not a drv", O "[(\"" P "a\",[\"out\"])],[],\"x\",\"b\",[],[])", 0, ERR_MALFORMED,
     "does not end in .drv", -1},
    {"bad escape", O "[],[],\"x\",\"b\",[],[(\"a\",\"x\\ay\")])", 0, ERR_MALFORMED,
     "invalid escape '\\a'", -1},
    {"raw newline in env", O "[],[],\"x\",\"b\",[],[(\"a\",\"x\ny\")])", 0, ERR_MALFORMED,
     "raw control byte 0x0a", -1},
    {"raw tab in args", O "[],[],\"x\",\"b\",[\"\t\"],[])", 0, ERR_MALFORMED, "0x09", -1},
    {"escape in raw field", O "[],[],\"x\\\"\",\"b\",[],[])", 0, ERR_MALFORMED, "backslash", -1},
    {"nul byte", O "[],[],\"x\",\"b\",[\"a\0b\"],[])",
     sizeof(O "[],[],\"x\",\"b\",[\"a\0b\"],[])") - 1, ERR_MALFORMED, "NUL", -1},
    {"dotdot name", O "[],[\"" P "..\"],\"x\",\"b\",[],[])", 0, ERR_MALFORMED, "invalid store path",
     -1},
    {"slash in name", O "[],[\"" P "a/b\"],\"x\",\"b\",[],[])", 0, ERR_MALFORMED,
     "forbidden character", -1},
    {"bad hash part", O "[],[\"/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkje-a\"],\"x\",\"b\",[],[])",
     0, ERR_MALFORMED, "base-32", -1},
    {"not in store", O "[],[\"/tmp/5r10i2xayliqjmz28jb6np7iqcbgqkjk-a\"],\"x\",\"b\",[],[])", 0,
     ERR_MALFORMED, "not in /nix/store", -1},
    {"non-utf8 path", O "[],[\"" P "\xff\"],\"x\",\"b\",[],[])", 0, ERR_MALFORMED,
     "forbidden character (0xff)", -1},
    {"bad output path", "Derive([(\"out\",\"/nix/store/x\",\"\",\"\")],[],[],\"x\",\"b\",[],[])", 0,
     ERR_MALFORMED, "invalid store path", 15},
    {"output name with space", "Derive([(\"a b\",\"\",\"\",\"\")],[],[],\"x\",\"b\",[],[])", 0,
     ERR_MALFORMED, "invalid output name", 9},
    {"empty output name", "Derive([(\"\",\"\",\"\",\"\")],[],[],\"x\",\"b\",[],[])", 0,
     ERR_MALFORMED, "empty output name", 9},
    {"unknown hash algo", "Derive([(\"out\",\"\",\"r:sha3\",\"\")],[],[],\"x\",\"b\",[],[])", 0,
     ERR_MALFORMED, "unknown hash algorithm", -1},
    {"hash without algo", "Derive([(\"out\",\"" P "x\",\"\",\"abcd\")],[],[],\"x\",\"b\",[],[])", 0,
     ERR_MALFORMED, "no hash algorithm", -1},
    {"short fixed hash", "Derive([(\"out\",\"" P "x\",\"sha1\",\"abcd\")],[],[],\"x\",\"b\",[],[])",
     0, ERR_MALFORMED, "expected 40", -1},
    {"upper-case fixed hash",
     "Derive([(\"out\",\"" P
     "x\",\"md5\",\"0123456789ABCDEF0123456789abcdef\")],[],[],\"x\",\"b\",[],[])",
     0, ERR_MALFORMED, "lower-case", -1},
    {"fixed without path",
     "Derive([(\"out\",\"\",\"md5\",\"0123456789abcdef0123456789abcdef\")],[],[],\"x\",\"b\",[],[]"
     ")",
     0, ERR_MALFORMED, "has no path", -1},
    {"floating with path",
     "Derive([(\"out\",\"" P "x\",\"r:sha256\",\"\")],[],[],\"x\",\"b\",[],[])", 0, ERR_MALFORMED,
     "has a path", -1},
    {"mixed kinds",
     "Derive([(\"dev\",\"\",\"r:sha256\",\"\"),(\"out\",\"" P
     "x\",\"\",\"\")],[],[],\"x\",\"b\",[],[])",
     0, ERR_MALFORMED, "mixes output kinds", 7},
    {"floating algos differ",
     "Derive([(\"dev\",\"\",\"r:sha256\",\"\"),(\"out\",\"\",\"sha256\",\"\")],[],[],\"x\",\"b\",[]"
     ",[])",
     0, ERR_MALFORMED, "different hash algorithms", -1},
    {"fixed named dev",
     "Derive([(\"dev\",\"" P
     "x\",\"md5\",\"0123456789abcdef0123456789abcdef\")],[],[],\"x\",\"b\",[],[])",
     0, ERR_MALFORMED, "exactly one output", -1},
    {"list without brackets", O "[],[],\"x\",\"b\",\"a\",[])", 0, ERR_MALFORMED, "expected '['",
     -1},
    {"unterminated string", O "[],[],\"x\",\"b\",[\"abc", 0, ERR_MALFORMED, "truncated", -1},
    {"dangling backslash", O "[],[],\"x\",\"b\",[\"abc\\", 0, ERR_MALFORMED, "truncated", -1},
    {"trailing comma", O "[],[],\"x\",\"b\",[\"a\",],[])", 0, ERR_MALFORMED, "expected '\"'", -1},
};

TEST(nix, drv, bad_input_table)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
        const Bad *b = &bad[i];
        size_t len = b->len ? b->len : strlen(b->text);
        NixDrv *d = (NixDrv *)1;
        Err e = {0};
        int rc = nix_drv_parse((const uint8_t *)b->text, len, &d, &e);
        CHECK_MSG(rc == b->code, "%s: rc %d (%s), expected %d", b->what, rc, e.msg, b->code);
        CHECK_MSG(d == NULL, "%s: *out not cleared", b->what);
        CHECK_MSG(strstr(e.msg, b->msg) != NULL, "%s: message '%s' lacks '%s'", b->what, e.msg,
                  b->msg);
        CHECK_MSG(strncmp(e.msg, "at byte ", 8) == 0, "%s: message '%s' has no offset", b->what,
                  e.msg);
        if (b->offset >= 0) {
            long off = strtol(e.msg + 8, NULL, 10);
            CHECK_MSG(off == b->offset, "%s: offset %ld, expected %ld (%s)", b->what, off,
                      b->offset, e.msg);
        }
    }
}

TEST(nix, drv, accepts_what_nix_writes)
{
    /* non-UTF-8, DEL and control bytes other than LF/CR/TAB are raw in escaped fields;
     * LF and TAB are raw in system (Nix does not escape it) */
    static const char ok[] = O "[],[],\"x86\n_64\t-linux\",\"b\",[\"\x01\x7f\xff\xfe\"],"
                               "[(\"k\\\"ey\\n\",\"\xc3\xa9 \\\\ \\r\")])";
    NixDrv *d = NULL;
    Err e = {0};
    Buf out;
    OK(nix_drv_parse((const uint8_t *)ok, strlen(ok), &d, &e), &e);
    CHECK_STR(d->platform, "x86\n_64\t-linux");
    CHECK_STR(d->args[0], "\x01\x7f\xff\xfe");
    CHECK_STR(d->env[0].key, "k\"ey\n");
    CHECK_STR(d->env[0].value, "\xc3\xa9 \\ \r");
    buf_init(&out, 4096);
    CHECK(nix_drv_print(d, &out) == 0);
    CHECK(out.len == strlen(ok) && memcmp(out.p, ok, out.len) == 0);
    buf_dispose(&out);
    nix_drv_free(d);
}

TEST(nix, drv, limits)
{
    NixDrv *d = NULL;
    Err e = {0};
    Buf b;
    /* over the file size limit: refused before reading a byte */
    CHECK_INT(nix_drv_parse((const uint8_t *)SIMPLE, (size_t)LIMIT_DRV_FILE_SIZE + 1, &d, &e),
              ERR_TOOBIG);
    /* too many outputs */
    buf_init(&b, LIMIT_BUF_DEFAULT);
    buf_puts(&b, "Derive([");
    for (unsigned i = 0; i <= LIMIT_DRV_OUTPUTS; i++)
        buf_printf(&b, "%s(\"o%05u\",\"\",\"\",\"\")", i ? "," : "", i);
    buf_puts(&b, "],[],[],\"x\",\"b\",[],[])");
    CHECK_INT(nix_drv_parse(b.p, b.len, &d, &e), ERR_TOOBIG);
    CHECK(strstr(e.msg, "at byte ") != NULL);
    buf_dispose(&b);
}

TEST(nix, drv, every_prefix_fails_cleanly)
{
    StrVec files;
    all_drvs(&files);
    for (size_t i = 0; i < files.n; i++) {
        Buf in;
        CHECK(slurp(files.v[i], &in) == 0);
        for (size_t n = 0; n < in.len; n++) {
            NixDrv *d = NULL;
            Err e = {0};
            /* a private copy so ASan sees any read past the prefix */
            uint8_t *copy = xmalloc(n ? n : 1);
            memcpy(copy, in.p, n);
            int rc = nix_drv_parse(copy, n, &d, &e);
            free(copy);
            CHECK_MSG(rc == ERR_MALFORMED && d == NULL, "%s: prefix of %zu bytes: rc %d",
                      files.v[i], n, rc);
            CHECK_MSG(strstr(e.msg, "truncated") != NULL, "%s: prefix %zu: '%s'", files.v[i], n,
                      e.msg);
        }
        buf_dispose(&in);
    }
    strvec_dispose(&files);
}

/* Flip, drop and insert bytes: the parser never crashes, and whatever it accepts
 * prints back to exactly the bytes it was given. */
TEST(nix, drv, mutations_round_trip_or_fail)
{
    static const uint8_t subst[] = {'"', '\\', ',', '(',  ')', '[', ']',
                                    'n', '\n', 0,   0xff, 'a', '/'};
    StrVec files;
    uint32_t seed = 12345;
    size_t accepted = 0, rejected = 0;
    all_drvs(&files);
    for (size_t i = 0; i < files.n; i++) {
        Buf in, out;
        CHECK(slurp(files.v[i], &in) == 0);
        buf_init(&out, LIMIT_DRV_FILE_SIZE);
        for (int round = 0; round < 300; round++) {
            uint8_t *m = xmalloc(in.len + 1);
            size_t n = in.len, pos;
            NixDrv *d = NULL;
            Err e = {0};
            seed = seed * 1103515245u + 12345u;
            pos = (seed >> 8) % in.len;
            memcpy(m, in.p, in.len);
            switch ((seed >> 4) % 3) {
            case 0: m[pos] = subst[(seed >> 20) % sizeof subst]; break;
            case 1:
                memmove(m + pos, m + pos + 1, n - pos - 1);
                n--;
                break;
            default:
                memmove(m + pos + 1, m + pos, n - pos);
                m[pos] = subst[(seed >> 20) % sizeof subst];
                n++;
                break;
            }
            if (nix_drv_parse(m, n, &d, &e) == 0) {
                buf_reset(&out);
                CHECK(nix_drv_print(d, &out) == 0);
                CHECK_MSG(out.len == n && memcmp(out.p, m, n) == 0,
                          "%s: accepted mutation does not round-trip", files.v[i]);
                nix_drv_free(d);
                accepted++;
            } else {
                CHECK(d == NULL && strncmp(e.msg, "at byte ", 8) == 0);
                rejected++;
            }
            free(m);
        }
        buf_dispose(&out);
        buf_dispose(&in);
    }
    CHECK(accepted > 0 && rejected > 0);
    strvec_dispose(&files);
}

TEST(nix, drv, show_json_escaping)
{
    static const char t[] = "Derive([(\"out\",\"\",\"r:sha1\",\"\")],[],[],\"x\",\"b\\\\\",["
                            "\"\x01\x08\x0c\x1f\x7f\xff\"],"
                            "[(\"k\",\"\\\"\\n\\r\\t/\")])";
    static const char want[] =
        "{\"/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-y.drv\":{\"args\":[\"\\u0001\\u0008\\u000c"
        "\\u001f\x7f\xff\"],\"builder\":\"b\\\\\",\"env\":{\"k\":\"\\\"\\n\\r\\t/"
        "\"},\"inputDrvs\":{},"
        "\"inputSrcs\":[],\"outputs\":{\"out\":{\"hashAlgo\":\"r:sha1\"}},\"system\":\"x\"}}";
    NixDrv *d = NULL;
    Err e = {0};
    char *js;
    OK(nix_drv_parse((const uint8_t *)t, strlen(t), &d, &e), &e);
    js = nix_drv_show_json(d, "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-y.drv");
    CHECK_STR(js, want);
    free(js);
    nix_drv_free(d);
}

TEST(nix, drv, store_path_of_simple)
{
    NixDrv *d = NULL;
    Err e = {0};
    char *p;
    OK(nix_drv_parse((const uint8_t *)SIMPLE, strlen(SIMPLE), &d, &e), &e);
    p = nix_drv_store_path(d, "ia-simple");
    CHECK(p != NULL && nix_store_path_check(p, &e) == 0 && util_ends_with(p, "-ia-simple.drv"));
    free(p);
    CHECK(nix_drv_store_path(d, "a/b") == NULL);
    nix_drv_free(d);
}
