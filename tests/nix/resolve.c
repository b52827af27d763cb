/* tests/nix/resolve.c: resolution as Nix 2.8 does it (byte-exact resolved ATerm, its
 * store path and references for every drv Nix resolved in the vectors), force
 * resolution for IA drvs, placeholder rewriting rules and errors. */
#include "drv_vectors.h"

/* Inputs from facts' recomputedFromOriginal.inputOutputsUsed ("DRV!OUT": path). */
static size_t inputs_from_facts(json_t *facts, NixInputPath **out, char ***keep)
{
    json_t *used =
        json_object_get(json_object_get(facts, "recomputedFromOriginal"), "inputOutputsUsed");
    const char *key;
    json_t *v;
    size_t n = 0, k = 0;
    NixInputPath *in = xcalloc(json_object_size(used) + 1, sizeof *in);
    char **strs = xcalloc(2 * json_object_size(used) + 1, sizeof *strs);
    json_object_foreach(used, key, v)
    {
        const char *bang = strchr(key, '!');
        strs[k] = xstrndup(key, (size_t)(bang - key));
        strs[k + 1] = xstrdup(bang + 1);
        in[n].drv_path = strs[k];
        in[n].output = strs[k + 1];
        in[n].path = json_string_value(v);
        k += 2;
        n++;
    }
    *out = in;
    *keep = strs;
    return n;
}

static void check_resolution(const char *name)
{
    json_t *facts = vec_facts(name, 0), *rfacts = vec_facts(name, 1), *refs;
    Err err_ = {0}, *e = &err_;
    VecLoader l = {0};
    NixHashCache *c = nix_hash_cache_new(vec_loader, &l);
    NixDrv *d = NULL, *r = NULL, *want = NULL;
    NixInputPath *in = NULL;
    char **strs = NULL, *path = NULL;
    size_t n;
    Buf got, exp;

    buf_init(&got, 1u << 20);
    buf_init(&exp, 1u << 20);
    CHECK(facts && rfacts);
    CHECK_OK(vec_drv(name, 0, facts, &d, e), e);
    CHECK_OK(vec_drv(name, 1, rfacts, &want, e), e);
    n = inputs_from_facts(rfacts, &in, &strs);
    CHECK(n > 0);
    CHECK_OK(nix_drv_resolve(c, d, in, n, &r, e), e);
    CHECK_STR(r->name, d->name);
    CHECK_OK(nix_drv_print(r, &got), e);
    CHECK_OK(nix_drv_print(want, &exp), e);
    CHECK_STR(buf_cstr(&got), buf_cstr(&exp));
    path = nix_drv_store_path(r, r->name);
    CHECK_STR(path, vec_str(rfacts, "drvPath"));
    /* references of the resolved drv = its inputSrcs */
    refs = json_object_get(json_object_get(rfacts, "observed"), "storeReferencesOfResolvedDrv");
    CHECK_INT(r->n_inputs, 0);
    CHECK_INT(r->n_srcs, json_array_size(refs));
    for (size_t i = 0; i < r->n_srcs; i++)
        CHECK_STR(r->srcs[i], json_string_value(json_array_get(refs, i)));

    /* an input missing -> not found, naming it */
    nix_drv_free(r);
    r = NULL;
    CHECK_INT(nix_drv_resolve(c, d, in, n - 1, &r, e), ERR_NOTFOUND);
    CHECK(strstr(e->msg, "no output '") != NULL);
    CHECK(r == NULL);

    free(path);
    for (size_t i = 0; i < 2 * n; i++)
        free(strs[i]);
    free(strs);
    free(in);
    buf_dispose(&got);
    buf_dispose(&exp);
    nix_drv_free(d);
    nix_drv_free(want);
    json_decref(facts);
    json_decref(rfacts);
    nix_hash_cache_free(c);
}

TEST(nix, resolve, ca_b_floating_with_placeholder)
{
    check_resolution("ca-b");
}

TEST(nix, resolve, ca_c_floating_on_ia)
{
    check_resolution("ca-c");
}

TEST(nix, resolve, ia_on_ca_deferred_outputs_filled)
{
    check_resolution("ia-on-ca");
}

TEST(nix, resolve, ca_multi)
{
    check_resolution("ca-multi");
}

TEST(nix, resolve, force_keeps_own_outputs)
{
    /* ia-deps, as a remote builder receives it */
    static const NixInputPath in[] = {
        {"/nix/store/024n98xilrjz8rwjnpyl4f1v51y3wrqy-fo-flat.drv", "out",
         "/nix/store/wwxsp5alchk49n52d6k8bl3578zd72b7-fo-flat"},
        {"/nix/store/dv9mvcb3l4bc417s1hn0ai46ss8m2vb8-ia-simple.drv", "out",
         "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple"},
        {"/nix/store/y1n44zwcv89j74hlv3ca809llbhhdxsp-ia-multi.drv", "dev",
         "/nix/store/p244b91v99b3wqr3kpx71cqfi1z5qfzz-ia-multi-dev"},
    };
    json_t *facts = vec_facts("ia-deps", 0);
    Err err_ = {0}, *e = &err_;
    NixDrv *d = NULL, *r = NULL;
    CHECK_OK(vec_drv("ia-deps", 0, facts, &d, e), e);
    CHECK_OK(nix_drv_resolve_force(NULL, d, in, 3, &r, e), e);
    CHECK_INT(r->n_inputs, 0);
    CHECK_INT(r->n_srcs, 4);
    CHECK_STR(r->srcs[0], "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple");
    CHECK_STR(r->srcs[1], "/nix/store/844hqcymid9ziy19p20kkbb2vxnk0y68-srcdir");
    CHECK_STR(r->srcs[2], "/nix/store/p244b91v99b3wqr3kpx71cqfi1z5qfzz-ia-multi-dev");
    CHECK_STR(r->srcs[3], "/nix/store/wwxsp5alchk49n52d6k8bl3578zd72b7-fo-flat");
    CHECK_INT(r->n_outputs, 1);
    CHECK_STR(r->outputs[0].path, d->outputs[0].path);
    CHECK_STR(nix_drv_env(r, "out"), d->outputs[0].path);
    CHECK_INT(r->n_args, d->n_args);
    for (size_t i = 0; i < d->n_args; i++)
        CHECK_STR(r->args[i], d->args[i]);
    CHECK_STR(r->builder, d->builder);
    CHECK_INT(r->n_env, d->n_env);
    nix_drv_free(r);

    /* a bad path is refused before it is used */
    {
        NixInputPath bad[3];
        memcpy(bad, in, sizeof bad);
        bad[1].path = "/nix/store/../etc/passwd";
        r = NULL;
        CHECK_INT(nix_drv_resolve_force(NULL, d, bad, 3, &r, e), ERR_MALFORMED);
        CHECK(strstr(e->msg, "ia-simple.drv") != NULL);
        CHECK(r == NULL);
    }
    nix_drv_free(d);
    json_decref(facts);
}

TEST(nix, resolve, rewrite_rules)
{
    /* placeholders everywhere: builder, args (several times, glued to text), env keys and
     * values; own-output placeholders and look-alikes stay; a key that becomes equal to an
     * existing key loses to the first one in the original order */
    const char *dp = "/nix/store/abz044s0863jizjik1j9bv0f1ybg447n-ca-a.drv";
    const char *ph = "/1yh042plzbvmq4wzvr2cn90xb6czpxn1x72pwpjibyvnyzyblf9m"; /* dp!out */
    const char *own = "/1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9";
    const char *real = "/nix/store/am5yjypfvcnvhkbk29lmvchax7dd7f23-ca-a";
    char *text = xasprintf(
        "Derive([(\"out\",\"\",\"r:sha256\",\"\")],[(\"%s\",[\"out\"])],[\"/nix/store/"
        "844hqcymid9ziy19p20kkbb2vxnk0y68-srcdir\"],\"x86_64-linux\",\"%s/bin/sh\","
        "[\"%s%s\",\"x%sy\",\"%s\",\"/1yh042plzbvmq4wzvr2cn90xb6czpxn1x72pwpjibyvnyzyblf9\"],"
        "[(\"%s\",\"from-placeholder\"),(\"%s\",\"real\"),(\"out\",\"%s\"),(\"v\",\"%s\")])",
        dp, ph, ph, ph, ph, own, ph, real, own, ph);
    NixInputPath in = {dp, "out", real};
    Err err_ = {0}, *e = &err_;
    NixDrv *d = NULL, *r = NULL;
    char *want;
    CHECK_OK(nix_drv_parse((const uint8_t *)text, strlen(text), &d, e), e);
    d->name = xstrdup("x");
    CHECK_OK(nix_drv_resolve(NULL, d, &in, 1, &r, e), e);
    want = xasprintf("%s/bin/sh", real);
    CHECK_STR(r->builder, want);
    free(want);
    want = xasprintf("%s%s", real, real);
    CHECK_STR(r->args[0], want);
    free(want);
    want = xasprintf("x%sy", real);
    CHECK_STR(r->args[1], want);
    free(want);
    CHECK_STR(r->args[2], own);
    CHECK_STR(r->args[3], "/1yh042plzbvmq4wzvr2cn90xb6czpxn1x72pwpjibyvnyzyblf9");
    /* env: "<ph>" (first in the original order) and "<real>" both become "<real>" */
    CHECK_INT(r->n_env, 3);
    CHECK_STR(r->env[0].key, real);
    CHECK_STR(r->env[0].value, "from-placeholder");
    CHECK_STR(nix_drv_env(r, "out"), own);
    CHECK_STR(nix_drv_env(r, "v"), real);
    CHECK_INT(r->n_srcs, 2);
    CHECK_STR(r->srcs[1], real); /* sorted: "/nix/store/844h..." first */
    /* floating outputs are not filled */
    CHECK_STR(r->outputs[0].path, "");
    nix_drv_free(r);
    nix_drv_free(d);
    free(text);
}

TEST(nix, resolve, many_inputs_use_an_index)
{
    /* more than 16 given pairs (index path); extra pairs that the drv does not use are
     * ignored */
    NixInputPath in[40];
    char *paths[40], *drvs[40];
    Err err_ = {0}, *e = &err_;
    NixDrv *d = NULL, *r = NULL;
    const char *text =
        "Derive([(\"out\",\"\",\"\",\"\")],[(\"/nix/store/"
        "abz044s0863jizjik1j9bv0f1ybg447n-ca-a.drv\",[\"out\"])],[],\"x\",\"/bin/sh\","
        "[\"/1yh042plzbvmq4wzvr2cn90xb6czpxn1x72pwpjibyvnyzyblf9m\"],[(\"name\",\"n\"),"
        "(\"out\",\"\")])";
    for (int i = 0; i < 40; i++) {
        drvs[i] = xasprintf("/nix/store/%032d-d%d.drv", i, i);
        paths[i] = xasprintf("/nix/store/%032d-p%d", i, i);
        for (char *p = drvs[i] + 11; *p != '-'; p++)
            *p = 'a';
        in[i].drv_path = drvs[i];
        in[i].output = "out";
        in[i].path = paths[i];
    }
    in[25].drv_path = "/nix/store/abz044s0863jizjik1j9bv0f1ybg447n-ca-a.drv";
    in[25].path = "/nix/store/am5yjypfvcnvhkbk29lmvchax7dd7f23-ca-a";
    CHECK_OK(nix_drv_parse((const uint8_t *)text, strlen(text), &d, e), e);
    CHECK_OK(nix_drv_resolve(NULL, d, in, 40, &r, e), e);
    CHECK_STR(r->args[0], "/nix/store/am5yjypfvcnvhkbk29lmvchax7dd7f23-ca-a");
    /* deferred without a drv name in d->name: the env "name" is used */
    CHECK(util_starts_with(r->outputs[0].path, "/nix/store/"));
    CHECK(util_ends_with(r->outputs[0].path, "-n"));
    CHECK_STR(nix_drv_env(r, "out"), r->outputs[0].path);
    nix_drv_free(r);
    nix_drv_free(d);
    for (int i = 0; i < 40; i++) {
        free(drvs[i]);
        free(paths[i]);
    }
}
