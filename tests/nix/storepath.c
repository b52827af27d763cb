/* tests/nix/storepath.c: store path validation and makeStorePath against paths Nix 2.8
 * produced (tests/data/nix/store-path-examples.json). */
#include <jansson.h>
#include <stdlib.h>

#include "nix/nix.h"
#include "test.h"

static void hash_hex(const char *hex, NixHash *h)
{
    Err eb = {0}, *e = &eb;
    char typed[160];
    snprintf(typed, sizeof typed, "sha256:%s", hex);
    if (nix_hash_parse(typed, -1, h, e) < 0)
        memset(h, 0, sizeof *h);
}

TEST(nix, storepath, fingerprints_from_vectors)
{
    json_error_t je;
    json_t *arr = json_load_file(test_data("nix/store-path-examples.json"), 0, &je);
    size_t i;
    json_t *v;
    CHECK_MSG(arr && json_is_array(arr), "cannot load vectors: %s", je.text);
    CHECK(json_array_size(arr) >= 10);
    json_array_foreach(arr, i, v)
    {
        const char *fp = json_string_value(json_object_get(v, "fingerprint"));
        const char *want = json_string_value(json_object_get(v, "storePath"));
        const char *h = strstr(fp, ":sha256:");
        const char *name = strrchr(fp, ':') + 1;
        char *type = xstrndup(fp, (size_t)(h - fp));
        char hex[65];
        NixHash inner;
        char *got;
        memcpy(hex, h + 8, 64);
        hex[64] = '\0';
        hash_hex(hex, &inner);
        got = nix_make_store_path(type, &inner, name);
        free(type);
        if (!got || strcmp(got, want) != 0) {
            test_fail(__FILE__, __LINE__, "%s: got %s, expected %s", fp, got ? got : "NULL", want);
            free(got);
            json_decref(arr);
            return;
        }
        free(got);
    }
    json_decref(arr);
}

TEST(nix, storepath, fixed_output_paths)
{
    NixHash h;
    char *p;
    /* fo-flat: flat sha256 of "fixed\n" */
    nix_hash_bytes(NIX_HASH_SHA256, "fixed\n", 6, &h);
    p = nix_make_fixed_output_path(0, &h, "fo-flat", NULL, 0, 0);
    CHECK_STR(p, "/nix/store/wwxsp5alchk49n52d6k8bl3578zd72b7-fo-flat");
    free(p);
    nix_hash_bytes(NIX_HASH_SHA1, "fixed\n", 6, &h);
    p = nix_make_fixed_output_path(0, &h, "fo-flat-sha1", NULL, 0, 0);
    CHECK_STR(p, "/nix/store/mb1yq1smzz9kmq5mnq05r3q65ciljynp-fo-flat-sha1");
    free(p);
    /* recursive sha256 = source type */
    hash_hex("10060f1b3cd9269a5ab80a88ddba25a6d6efa45cabd19716beeb0a8a1facad8c", &h);
    p = nix_make_fixed_output_path(1, &h, "fo-rec", NULL, 0, 0);
    CHECK_STR(p, "/nix/store/519hb70ahx8fzjqmcchlzw9hsnawprk1-fo-rec");
    free(p);
    /* self reference */
    hash_hex("55bc513444e9bb930f4c179092a383d48c8239ac43d3e470d9ac12846ba65a8b", &h);
    p = nix_make_fixed_output_path(1, &h, "ca-multi-lib", NULL, 0, 1);
    CHECK_STR(p, "/nix/store/cy55in0i1srv9jd8f46ppxbg3qsf6x3q-ca-multi-lib");
    free(p);
    /* two references given unsorted */
    {
        char *refs[] = {"/nix/store/cy55in0i1srv9jd8f46ppxbg3qsf6x3q-ca-multi-lib",
                        "/nix/store/am5yjypfvcnvhkbk29lmvchax7dd7f23-ca-a"};
        hash_hex("e2b0c2d3703441d6b768d1e4b6796bc80be671b2f384c54c0519792f541a0069", &h);
        p = nix_make_fixed_output_path(1, &h, "ca-multi", refs, 2, 0);
        CHECK_STR(p, "/nix/store/gym0jidwrd65shrfb5nj9436iix6vg8g-ca-multi");
        free(p);
        /* a flat fixed path cannot have references */
        CHECK(nix_make_fixed_output_path(0, &h, "x", refs, 2, 0) == NULL);
    }
}

TEST(nix, storepath, text_and_output_paths)
{
    NixHash h;
    char *p, *n;
    const char *contents = "points at /nix/store/844hqcymid9ziy19p20kkbb2vxnk0y68-srcdir\n";
    char *refs[] = {"/nix/store/844hqcymid9ziy19p20kkbb2vxnk0y68-srcdir",
                    "/nix/store/844hqcymid9ziy19p20kkbb2vxnk0y68-srcdir"};
    nix_hash_bytes(NIX_HASH_SHA256, contents, strlen(contents), &h);
    p = nix_make_text_path("note.txt", &h, refs, 2); /* duplicates count once */
    CHECK_STR(p, "/nix/store/d8ravdq3d4kvapgjvnddmi453qsragzz-note.txt");
    free(p);
    hash_hex("4f7e6ed036b87d8de7e553eec94085f9675643a20418a93a43c1d957b7a795b7", &h);
    p = nix_make_output_path("out", &h, "ia-simple");
    CHECK_STR(p, "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple");
    free(p);
    hash_hex("3477680bb9ffbac23c0b1450df03c69e1fef09f0c4e246f3226e93f80db78677", &h);
    p = nix_make_output_path("dev", &h, "ia-multi");
    CHECK_STR(p, "/nix/store/p244b91v99b3wqr3kpx71cqfi1z5qfzz-ia-multi-dev");
    free(p);
    n = nix_output_path_name("x", "out");
    CHECK_STR(n, "x");
    free(n);
    n = nix_output_path_name("x", "lib");
    CHECK_STR(n, "x-lib");
    free(n);
    /* invalid names give no path */
    CHECK(nix_make_output_path("out", &h, "a/b") == NULL);
    CHECK(nix_make_store_path("text", &h, "..") == NULL);
    CHECK(nix_make_store_path("text", &h, "") == NULL);
}

TEST(nix, storepath, check_valid)
{
    Err eb = {0}, *e = &eb;
    char longname[300];
    char *p;
    CHECK_OK(nix_store_path_check("/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple", e), (e));
    CHECK_OK(nix_store_path_check("/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-a+b-c.d_e?f=g", e),
             (e));
    CHECK_OK(nix_store_path_check("/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-...", e), (e));
    CHECK_OK(nix_store_basename_check("5r10i2xayliqjmz28jb6np7iqcbgqkjk-x.drv", e), (e));
    memset(longname, 'a', 211);
    longname[211] = '\0';
    p = xasprintf("/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-%s", longname);
    CHECK_OK(nix_store_path_check(p, e), (e));
    free(p);
    CHECK_STR(nix_store_path_base("/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple"),
              "5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple");
    CHECK_STR(nix_store_path_name("/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple"),
              "ia-simple");
    CHECK(nix_store_path_is_drv("/nix/store/dv9mvcb3l4bc417s1hn0ai46ss8m2vb8-ia-simple.drv"));
    CHECK(!nix_store_path_is_drv("/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple"));
    p = nix_drv_name_from_path("/nix/store/dv9mvcb3l4bc417s1hn0ai46ss8m2vb8-ia-simple.drv");
    CHECK_STR(p, "ia-simple");
    free(p);
}

TEST(nix, storepath, check_invalid)
{
    static const char *const bad[] = {
        "",
        "/nix/store",
        "/nix/store/",
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk",
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-",
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkj-x",    /* 31-char hash */
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjkk-x",  /* 33-char hash */
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkje-x",   /* 'e' not nix32 */
        "/nix/store/5R10i2xayliqjmz28jb6np7iqcbgqkjk-x",   /* upper case */
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk_x",   /* no dash */
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-a/b", /* inside a store object */
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-..",
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-.",
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-a b",
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-\xc3\xa9",
        "/nix/store//5r10i2xayliqjmz28jb6np7iqcbgqkjk-x",
        "/nix/storex/5r10i2xayliqjmz28jb6np7iqcbgqkjk-x",
        "/gnu/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-x",
        "nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-x",
        "5r10i2xayliqjmz28jb6np7iqcbgqkjk-x",
    };
    Err eb = {0}, *e = &eb;
    char longname[300];
    char *p;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
        err_clear(e);
        CHECK_MSG(nix_store_path_check(bad[i], e) == ERR_MALFORMED, "accepted '%s'", bad[i]);
        CHECK_MSG(strstr(e->msg, "invalid store path") != NULL, "message '%s'", e->msg);
    }
    memset(longname, 'a', 212);
    longname[212] = '\0';
    p = xasprintf("/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-%s", longname);
    CHECK_INT(nix_store_path_check(p, e), ERR_MALFORMED);
    free(p);
    CHECK_INT(nix_store_basename_check("5r10i2xayliqjmz28jb6np7iqcbgqkjk-a/b", e), ERR_MALFORMED);
    CHECK_INT(nix_store_basename_check("../5r10i2xayliqjmz28jb6np7iqcbgqkjk", e), ERR_MALFORMED);
}

TEST(nix, storepath, scratch_path_of_a_floating_output)
{
    /* the vector's makeFallbackPath row: output lib of the resolved ca-multi drv */
    char *p = nix_scratch_path("/nix/store/9x9b7vbccb5gshfjwx3mn38crl21w18k-ca-multi.drv", "lib");
    CHECK_STR(p, "/nix/store/x07w2923fpkxczy0k8rhryvsaf1llx0i-ca-multi-lib");
    free(p);
    CHECK(nix_scratch_path("/nix/store/9x9b7vbccb5gshfjwx3mn38crl21w18k-ca-multi", "out") == NULL);
    CHECK(nix_scratch_path("/tmp/x.drv", "out") == NULL);
}
