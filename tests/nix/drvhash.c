/* tests/nix/drvhash.c: hashDerivationModulo (masked, unmasked, deferred flag), output
 * paths and realisation ids against every derivation vector of Nix 2.8; memoisation,
 * cycles, deep chains and errors with an in-memory graph. */
#include "drv_vectors.h"

static void hex32(const NixHash *h, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hx[h->d[i] >> 4];
        out[2 * i + 1] = hx[h->d[i] & 15];
    }
    out[64] = '\0';
}

/* Check one vector (original or resolved) against its facts. */
static void check_vector(NixHashCache *c, const char *name, int resolved)
{
    json_t *facts = vec_facts(name, resolved), *hm, *masked, *unmasked, *outs, *ids;
    Err err_ = {0}, *e = &err_;
    NixDrv *d = NULL;
    NixModulo m1 = {0}, m0 = {0};
    char **paths = NULL, **rids = NULL;
    char hx[65];

    CHECK_MSG(facts != NULL, "facts of %s", name);
    CHECK_OK(vec_drv(name, resolved, facts, &d, e), e);
    hm = json_object_get(facts, "hashDerivationModulo");
    masked = json_object_get(hm, "maskOutputs=true (realisation id, own IA output paths)");
    unmasked = json_object_get(hm, "maskOutputs=false (substituted into dependents' inputDrvs)");
    outs = json_object_get(facts, "outputs");
    ids = json_object_get(facts, "realisationIds");
    CHECK(masked && unmasked && outs && ids);

    CHECK_OK(nix_drv_hash_modulo(c, d, 1, &m1, e), e);
    CHECK_OK(nix_drv_hash_modulo(c, d, 0, &m0, e), e);
    CHECK_INT(m1.n, d->n_outputs);
    CHECK_MSG(m1.deferred == json_is_true(json_object_get(hm, "deferred (DrvHash::Kind)")),
              "%s: deferred flag", name);
    CHECK_INT(m0.deferred, m1.deferred);
    if (m1.deferred)
        CHECK_INT(m1.kind, NIX_DRV_DEFERRED);
    CHECK_OK(nix_drv_output_paths(c, d, &paths, e), e);
    CHECK_OK(nix_drv_realisation_ids(c, d, &rids, e), e);
    for (size_t i = 0; i < d->n_outputs; i++) {
        const char *o = d->outputs[i].name;
        json_t *of = json_object_get(outs, o);
        const char *want_path = vec_str(of, "path");
        hex32(&m1.hashes[i], hx);
        CHECK_MSG(strcmp(hx, vec_str(masked, o)) == 0, "%s!%s masked: %s", name, o, hx);
        hex32(&m0.hashes[i], hx);
        CHECK_MSG(strcmp(hx, vec_str(unmasked, o)) == 0, "%s!%s unmasked: %s", name, o, hx);
        CHECK_STR(rids[i], vec_str(ids, o));
        if (want_path)
            CHECK_STR(paths[i], want_path);
        else
            CHECK_MSG(paths[i] == NULL, "%s!%s: path %s, expected none", name, o, paths[i]);
        /* an IA output path is makeOutputPath(o, masked hash, name) */
        if (nix_drv_output_kind(&d->outputs[i]) == NIX_OUT_INPUT_ADDRESSED) {
            char *p = nix_make_output_path(o, &m1.hashes[i], d->name);
            CHECK_STR(p, d->outputs[i].path);
            free(p);
        }
    }
    vec_free_strv(paths, d->n_outputs);
    vec_free_strv(rids, d->n_outputs);
    nix_modulo_dispose(&m0);
    nix_modulo_dispose(&m1);
    nix_drv_free(d);
    json_decref(facts);
}

TEST(nix, drvhash, every_vector)
{
    VecLoader l = {0};
    NixHashCache *c = nix_hash_cache_new(vec_loader, &l);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(vec_names); i++) {
        check_vector(c, vec_names[i], 0);
        if (test_failed())
            break;
    }
    /* the resolved drvs Nix wrote */
    check_vector(c, "ca-b", 1);
    check_vector(c, "ca-c", 1);
    check_vector(c, "ia-on-ca", 1);
    check_vector(c, "ca-multi", 1);
    nix_hash_cache_free(c);
}

TEST(nix, drvhash, memoised_loads_each_input_once)
{
    /* ia-on-ca -> ca-b -> ca-a and ia-on-ca -> ca-a: ca-a is loaded once */
    VecLoader l = {0};
    NixHashCache *c = nix_hash_cache_new(vec_loader, &l);
    Err err_ = {0}, *e = &err_;
    json_t *facts = vec_facts("ia-on-ca", 0);
    NixDrv *d = NULL;
    NixModulo m = {0};
    CHECK_OK(vec_drv("ia-on-ca", 0, facts, &d, e), e);
    CHECK_OK(nix_drv_hash_modulo(c, d, 1, &m, e), e);
    CHECK_INT(l.loads, 2);
    nix_modulo_dispose(&m);
    CHECK_OK(nix_drv_hash_modulo(c, d, 0, &m, e), e);
    CHECK_INT(l.loads, 2);
    nix_modulo_dispose(&m);
    /* adding a drv by path memoises it: nothing more is loaded */
    CHECK_OK(nix_hash_cache_add(c, vec_str(facts, "drvPath"), d, e), e);
    CHECK_INT(l.loads, 2);
    nix_drv_free(d);
    json_decref(facts);
    nix_hash_cache_free(c);
}

TEST(nix, drvhash, fixed_output_ignores_inputs)
{
    /* a fixed-output drv is hashed without reading its inputs (they may not exist) */
    const char *text =
        "Derive([(\"out\",\"/nix/store/wwxsp5alchk49n52d6k8bl3578zd72b7-fo-flat\",\"sha256\","
        "\"0c3071418e6356e614898c84ed064ca95e88551bc0811b534bdf1952ecdae534\")],"
        "[(\"/nix/store/00000000000000000000000000000000-missing.drv\",[\"out\"])],[],"
        "\"x86_64-linux\",\"/bin/sh\",[],[(\"name\",\"fo-flat\")])";
    VecLoader l = {0};
    NixHashCache *c = nix_hash_cache_new(vec_loader, &l);
    Err err_ = {0}, *e = &err_;
    NixDrv *d = NULL;
    NixModulo m = {0};
    char hx[65];
    CHECK_OK(nix_drv_parse((const uint8_t *)text, strlen(text), &d, e), e);
    d->name = xstrdup("fo-flat");
    CHECK_OK(nix_drv_hash_modulo(c, d, 1, &m, e), e);
    CHECK_INT(l.loads, 0);
    hex32(&m.hashes[0], hx);
    /* fo-flat's fixed hash (the inputs do not enter it) */
    CHECK_STR(hx, "003be7e699b7d6c3ffdea413186b81e6f4cb9d6b8abdaac3c3c018cbcc4258bd");
    CHECK_INT(m.kind, NIX_DRV_FIXED);
    nix_modulo_dispose(&m);
    nix_drv_free(d);
    nix_hash_cache_free(c);
}

/* ---------------------------------------------------------------- in-memory graphs */

/* Floating CA drv "<hash>-n<i>.drv" depends on n<i-1>!out (n0 has no inputs). */
typedef struct Chain {
    int loads;
    int fail_at; /* loader fails for this index (-1: never) */
} Chain;

static char *chain_path(long i)
{
    /* a valid hash part: 32 chars of the nix32 alphabet derived from i */
    static const char a[] = "0123456789abcdfghijklmnpqrsvwxyz";
    char h[33];
    long v = i;
    for (int k = 31; k >= 0; k--) {
        h[k] = a[v & 31];
        v >>= 5;
    }
    h[32] = '\0';
    return xasprintf("/nix/store/%s-n%ld.drv", h, i);
}

static char *chain_text(long i, const char *want_output)
{
    char *in = NULL, *t;
    if (i > 0) {
        char *p = chain_path(i - 1);
        in = xasprintf("(\"%s\",[\"%s\"])", p, want_output);
        free(p);
    }
    t = xasprintf("Derive([(\"out\",\"\",\"r:sha256\",\"\")],[%s],[],\"x86_64-linux\",\"/bin/sh\","
                  "[\"-c\",\"echo %ld > "
                  "$out\"],[(\"name\",\"n%ld\"),(\"out\",\"/"
                  "1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9\")])",
                  in ? in : "", i, i);
    free(in);
    return t;
}

static int chain_loader(void *payload, const char *drv_path, NixDrv **out, Err *e)
{
    Chain *ch = payload;
    const char *name = nix_store_path_name(drv_path);
    char *t;
    long i = strtol(name + 1, NULL, 10);
    int rc;
    if (i == ch->fail_at)
        return err_set(e, ERR_IO, "cannot read %s", drv_path);
    t = chain_text(i, "out");
    rc = nix_drv_parse((const uint8_t *)t, strlen(t), out, e);
    free(t);
    ch->loads++;
    return rc;
}

TEST(nix, drvhash, deep_chain_no_recursion)
{
    /* 50,000 drvs deep: an explicit stack, not C recursion */
    Chain ch = {0, -1};
    NixHashCache *c = nix_hash_cache_new(chain_loader, &ch);
    Err err_ = {0}, *e = &err_;
    long n = 50000;
    char *t = chain_text(n, "out");
    NixDrv *d = NULL;
    NixModulo m = {0};
    CHECK_OK(nix_drv_parse((const uint8_t *)t, strlen(t), &d, e), e);
    CHECK_OK(nix_drv_hash_modulo(c, d, 1, &m, e), e);
    CHECK_INT(ch.loads, n);
    CHECK_INT(m.deferred, 1);
    nix_modulo_dispose(&m);
    nix_drv_free(d);
    free(t);
    nix_hash_cache_free(c);
}

TEST(nix, drvhash, loader_error_leaves_cache_usable)
{
    Chain ch = {0, 3};
    NixHashCache *c = nix_hash_cache_new(chain_loader, &ch);
    Err err_ = {0}, *e = &err_;
    char *t = chain_text(10, "out");
    NixDrv *d = NULL;
    NixModulo m = {0}, m2 = {0};
    CHECK_OK(nix_drv_parse((const uint8_t *)t, strlen(t), &d, e), e);
    CHECK_INT(nix_drv_hash_modulo(c, d, 1, &m, e), ERR_IO);
    CHECK(strstr(e->msg, "cannot read") != NULL);
    ch.fail_at = -1; /* the store recovered: the same cache now works */
    CHECK_OK(nix_drv_hash_modulo(c, d, 1, &m, e), e);
    /* and equals a fresh computation */
    nix_hash_cache_free(c);
    c = nix_hash_cache_new(chain_loader, &ch);
    CHECK_OK(nix_drv_hash_modulo(c, d, 1, &m2, e), e);
    CHECK(memcmp(m.hashes[0].d, m2.hashes[0].d, 32) == 0);
    nix_modulo_dispose(&m);
    nix_modulo_dispose(&m2);
    nix_drv_free(d);
    free(t);
    nix_hash_cache_free(c);
}

TEST(nix, drvhash, missing_output_of_input)
{
    Chain ch = {0, -1};
    NixHashCache *c = nix_hash_cache_new(chain_loader, &ch);
    Err err_ = {0}, *e = &err_;
    char *t = chain_text(2, "dev"); /* n2 wants n1!dev; n1 has only out */
    NixDrv *d = NULL;
    NixModulo m = {0};
    CHECK_OK(nix_drv_parse((const uint8_t *)t, strlen(t), &d, e), e);
    CHECK_INT(nix_drv_hash_modulo(c, d, 1, &m, e), ERR_MALFORMED);
    CHECK(strstr(e->msg, "has no output 'dev'") != NULL);
    nix_drv_free(d);
    free(t);
    nix_hash_cache_free(c);
}

static int cycle_loader(void *payload, const char *drv_path, NixDrv **out, Err *e)
{
    /* a.drv -> b.drv -> a.drv */
    const char *a = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.drv";
    const char *b = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b.drv";
    const char *other = strcmp(drv_path, a) == 0 ? b : a;
    char *t =
        xasprintf("Derive([(\"out\",\"\",\"\",\"\")],[(\"%s\",[\"out\"])],[],\"x\",\"/bin/sh\","
                  "[],[])",
                  other);
    int rc = nix_drv_parse((const uint8_t *)t, strlen(t), out, e);
    (void)payload;
    free(t);
    return rc;
}

TEST(nix, drvhash, cycle_is_an_error)
{
    NixHashCache *c = nix_hash_cache_new(cycle_loader, NULL);
    Err err_ = {0}, *e = &err_;
    NixDrv *d = NULL;
    NixModulo m = {0};
    CHECK_OK(cycle_loader(NULL, "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b.drv", &d, e), e);
    CHECK_INT(nix_drv_hash_modulo(c, d, 1, &m, e), ERR_MALFORMED);
    CHECK(strstr(e->msg, "depends on itself") != NULL);
    nix_drv_free(d);
    nix_hash_cache_free(c);
}

TEST(nix, drvhash, impure_and_mixed_kinds)
{
    const char *impure =
        "Derive([(\"out\",\"\",\"r:sha256\",\"impure\")],[],[],\"x\",\"/bin/sh\",[],[])";
    const char *mixed =
        "Derive([(\"a\",\"\",\"\",\"\"),(\"out\",\"\",\"r:sha256\",\"\")],[],[],\"x\","
        "\"/bin/sh\",[],[])";
    Err err_ = {0}, *e = &err_;
    NixDrv *d = NULL;
    NixModulo m = {0};
    NixHash h;
    char **ids = NULL, **paths = NULL;
    CHECK_OK(nix_drv_parse((const uint8_t *)impure, strlen(impure), &d, e), e);
    CHECK_OK(nix_drv_hash_modulo(NULL, d, 1, &m, e), e);
    nix_hash_bytes(NIX_HASH_SHA256, "impure", 6, &h);
    CHECK(memcmp(m.hashes[0].d, h.d, 32) == 0);
    CHECK_INT(m.deferred, 1);
    CHECK_OK(nix_drv_output_paths(NULL, d, &paths, e), e);
    CHECK(paths[0] == NULL);
    CHECK_OK(nix_drv_realisation_ids(NULL, d, &ids, e), e);
    CHECK(util_starts_with(ids[0], "sha256:") && util_ends_with(ids[0], "!out"));
    vec_free_strv(ids, 1);
    vec_free_strv(paths, 1);
    nix_modulo_dispose(&m);
    nix_drv_free(d);
    d = NULL;
    /* a drv mixing a deferred and a floating output is refused when read, as Nix refuses
     * it ("can't mix derivation output types", checked in tests/nix/drv_show.test.sh) */
    CHECK_INT(nix_drv_parse((const uint8_t *)mixed, strlen(mixed), &d, e), ERR_MALFORMED);
    CHECK_MSG(strstr(e->msg, "mixes output kinds") != NULL, "%s", e->msg);
    CHECK(d == NULL);
}

TEST(nix, drvhash, failures_at_every_depth_keep_the_table_consistent)
{
    /* a loader failing deep inside a 3000-drv chain, again and again at other depths:
     * each failure removes the unfinished entries (the table grows meanwhile), and the
     * final result equals a fresh computation */
    Chain ch = {0, 0};
    NixHashCache *c = nix_hash_cache_new(chain_loader, &ch), *fresh;
    Err err_ = {0}, *e = &err_;
    char *t = chain_text(3000, "out");
    NixDrv *d = NULL;
    NixModulo m = {0}, m2 = {0};
    CHECK_OK(nix_drv_parse((const uint8_t *)t, strlen(t), &d, e), e);
    for (long at = 2990; at > 0; at -= 97) {
        ch.fail_at = at;
        CHECK_INT(nix_drv_hash_modulo(c, d, 1, &m, e), ERR_IO);
    }
    ch.fail_at = -1;
    CHECK_OK(nix_drv_hash_modulo(c, d, 1, &m, e), e);
    fresh = nix_hash_cache_new(chain_loader, &ch);
    CHECK_OK(nix_drv_hash_modulo(fresh, d, 1, &m2, e), e);
    CHECK(memcmp(m.hashes[0].d, m2.hashes[0].d, 32) == 0);
    nix_modulo_dispose(&m);
    nix_modulo_dispose(&m2);
    nix_hash_cache_free(fresh);
    nix_drv_free(d);
    free(t);
    nix_hash_cache_free(c);
}
