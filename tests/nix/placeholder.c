/* tests/nix/placeholder.c: own-output and downstream placeholders against the values
 * Nix 2.8 wrote into the vectors (facts.json of every drv: its outputs' placeholders and
 * the placeholders of its inputs). */
#include "drv_vectors.h"

TEST(nix, placeholder, own_outputs)
{
    char ph[NIX_PLACEHOLDER_LEN + 1];
    nix_placeholder_own("out", ph);
    CHECK_STR(ph, "/1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9");
    CHECK_INT(strlen(ph), NIX_PLACEHOLDER_LEN);
    nix_placeholder_own("lib", ph);
    CHECK_STR(ph, "/0sra2y18lr3h6j58qjm0w46yv36h1wjmilb09n8aimdpivdymscx");
}

TEST(nix, placeholder, every_vector)
{
    Err err_ = {0}, *e = &err_;
    char ph[NIX_PLACEHOLDER_LEN + 1];
    int checked = 0;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(vec_names); i++) {
        for (int resolved = 0; resolved < 2; resolved++) {
            json_t *facts = vec_facts(vec_names[i], resolved), *outs, *v;
            const char *drv, *key;
            if (!facts)
                continue;
            drv = vec_str(facts, "drvPath");
            outs = json_object_get(facts, "outputs");
            json_object_foreach(outs, key, v)
            {
                const char *own = vec_str(v, "hashPlaceholder");
                CHECK_OK(nix_placeholder_downstream(drv, key, ph, e), e);
                CHECK_STR(ph, vec_str(v, "downstreamPlaceholder"));
                checked++;
                if (own) {
                    nix_placeholder_own(key, ph);
                    CHECK_STR(ph, own);
                }
            }
            json_object_foreach(json_object_get(facts, "inputPlaceholders"), key, v)
            {
                const char *bang = strchr(key, '!');
                char *dp = xstrndup(key, (size_t)(bang - key));
                int rc = nix_placeholder_downstream(dp, bang + 1, ph, e);
                free(dp);
                CHECK_OK(rc, e);
                CHECK_STR(ph, json_string_value(v));
                checked++;
            }
            json_decref(facts);
        }
    }
    CHECK(checked >= 30);
}

TEST(nix, placeholder, downstream_rejects_bad_paths)
{
    Err err_ = {0}, *e = &err_;
    char ph[NIX_PLACEHOLDER_LEN + 1];
    CHECK_INT(nix_placeholder_downstream("/nix/store/abz044s0863jizjik1j9bv0f1ybg447n-ca-a", "out",
                                         ph, e),
              ERR_MALFORMED); /* not a .drv */
    CHECK_INT(
        nix_placeholder_downstream("/tmp/abz044s0863jizjik1j9bv0f1ybg447n-ca-a.drv", "out", ph, e),
        ERR_MALFORMED);
    CHECK_INT(nix_placeholder_downstream("/nix/store/abz044s0863jizjik1j9bv0f1ybg447n-ca-a.drv", "",
                                         ph, e),
              ERR_INVALID);
}
