/* tests/store/serve.c: the serve-protocol client.  Replies recorded from Nix 2.8
 * (including the 2.4-2.10 quirk: builtOutputs sent to a client that announced 2.5),
 * then a real `nix-store --serve --write` reached as ssh://localhost (which, as in
 * Nix, runs the command locally). */
#include <sys/stat.h>

#include "store_test.h"

TEST(store, serve, handshake_and_path_infos)
{
    Buf rep;
    StoreConn *c;
    StorePathInfo **v = NULL;
    size_t n = 0;
    char t[NIX_HASH_TEXT_MAX];
    Err e, *ep = &e;
    static const uint8_t req[] = {0xeb, 0x9d, 0x0c, 0x39, 0, 0, 0, 0, 0x07, 0x02, 0, 0, 0, 0, 0, 0};
    CHECK_OK(st_read("store/tx/serve-handshake.reply", &rep), ep);
    c = store__conn_mem(STORE_PROTO_SERVE, 0, rep.p, rep.len);
    CHECK_OK(store__serve_handshake(c, ep), ep);
    CHECK_INT(c->version, 0x207);
    CHECK(c->w.wbuf.len == sizeof req && memcmp(c->w.wbuf.p, req, sizeof req) == 0);
    store_close(c);
    buf_dispose(&rep);

    CHECK_OK(st_read("store/tx/serve-query-path-infos.reply", &rep), ep);
    c = store__conn_mem(STORE_PROTO_SERVE, 0x207, rep.p, rep.len);
    CHECK_OK(store__serve_read_path_infos(&c->w, 0x207, &v, &n, ep), ep);
    CHECK(n >= 1);
    CHECK_STR(v[0]->path, "/nix/store/cy55in0i1srv9jd8f46ppxbg3qsf6x3q-ca-multi-lib");
    CHECK_STR(v[0]->deriver, "/nix/store/9x9b7vbccb5gshfjwx3mn38crl21w18k-ca-multi.drv");
    CHECK_INT(v[0]->references.n, 1); /* itself */
    CHECK_INT(v[0]->nar_size, 992);
    store_path_info_nar_hash_text(v[0], t);
    CHECK_STR(t, "sha256:12j4sr3r9g4pm00akgly5x7xwbvzx8pgy15davahfzyhn3swz3kv");
    CHECK_STR(v[0]->ca, "fixed:r:sha256:12sslrmq84mcv5qf9ls3mhwq536lhfir540p9h7r7fz98hs53g2m");
    for (size_t i = 0; i < n; i++)
        store_path_info_free(v[i]);
    free(v);
    CHECK(c->w.rpos == c->w.rlen);
    store_close(c);
    buf_dispose(&rep);
}

TEST(store, serve, root_path_infos_in_one_batch)
{
    static const char *p = "/nix/store/cy55in0i1srv9jd8f46ppxbg3qsf6x3q-ca-multi-lib";
    const char *paths[2] = {p, "/nix/store/00000000000000000000000000000000-missing"};
    StorePathInfo *out[2] = {NULL, NULL};
    Buf rep, infos, req;
    StoreConn *c;
    Err e, *ep = &e;
    buf_init(&rep, 1 << 20);
    buf_init(&req, 1 << 20);
    st_wire_u64(&rep, 1); /* QueryValidPaths: the one valid path */
    st_wire_str(&rep, p);
    CHECK_OK(st_read("store/tx/serve-query-path-infos.reply", &infos), ep);
    buf_append(&rep, infos.p, infos.len);
    c = store__conn_mem(STORE_PROTO_SERVE, 0x207, rep.p, rep.len);
    CHECK_OK(store__serve_root_path_infos(c, paths, 2, out, ep), ep);
    CHECK(out[0] != NULL && out[1] == NULL);
    CHECK_INT(out[0]->nar_size, 992);
    /* QueryValidPaths locking, QueryPathInfos, both sent before any reply was read */
    st_wire_u64(&req, 1); /* QueryValidPaths */
    st_wire_u64(&req, 1); /* lock */
    st_wire_u64(&req, 0); /* substitute */
    st_wire_u64(&req, 2);
    st_wire_str(&req, paths[0]);
    st_wire_str(&req, paths[1]);
    st_wire_u64(&req, 2); /* QueryPathInfos */
    st_wire_u64(&req, 2);
    st_wire_str(&req, paths[0]);
    st_wire_str(&req, paths[1]);
    ST_CHECK_EXCHANGE(c, req);
    store_path_info_free(out[0]);
    store_close(c);
    buf_dispose(&rep);
    buf_dispose(&req);
    buf_dispose(&infos);
}

TEST(store, serve, build_results_and_the_quirk)
{
    Buf rep;
    StoreConn *c;
    StoreBuildResult *r = NULL;
    Err e, *ep = &e;
    CHECK_OK(st_read("store/tx/serve-build-ca.reply", &rep), ep);
    c = store__conn_mem(STORE_PROTO_SERVE, 0x207, rep.p, rep.len);
    CHECK_OK(store__read_build_result(&c->w, STORE_PROTO_SERVE, 0x207, &r, ep), ep);
    CHECK_INT(r->status, 0);
    CHECK_INT(r->times_built, 1);
    CHECK_INT(r->n_outputs, 1);
    CHECK_STR(r->outputs[0].id,
              "sha256:f10efa76a7d9a3114a83bf6037c854673c38e0e4da243c01a49a374c475a5811!out");
    CHECK_STR(r->outputs[0].output, "out");
    CHECK_STR(r->outputs[0].out_path, "/nix/store/axfwds8dm6v5vjwf8qcx8jcyrp1wgmhc-serve-ca");
    CHECK(c->w.rpos == c->w.rlen);
    store_build_result_free(r);
    store_close(c);
    buf_dispose(&rep);

    /* what a 2.8 server sent to a client announcing 2.5: builtOutputs anyway; read as
     * we read it (we announce 2.7), nothing is left over */
    CHECK_OK(st_read("store/tx/serve205-build-ca.reply", &rep), ep);
    c = store__conn_mem(STORE_PROTO_SERVE, 0x207, rep.p, rep.len);
    CHECK_OK(store__read_build_result(&c->w, STORE_PROTO_SERVE, 0x207, &r, ep), ep);
    CHECK_INT(r->n_outputs, 1);
    CHECK(c->w.rpos == c->w.rlen);
    store_build_result_free(r);
    store_close(c);
    buf_dispose(&rep);

    CHECK_OK(st_read("store/tx/serve-build-fail.reply", &rep), ep);
    c = store__conn_mem(STORE_PROTO_SERVE, 0x207, rep.p, rep.len);
    CHECK_OK(store__read_build_result(&c->w, STORE_PROTO_SERVE, 0x207, &r, ep), ep);
    CHECK_INT(r->status, STORE_BUILD_PERMANENT_FAILURE);
    CHECK_STR(r->error_msg,
              "builder for '/nix/store/aykbzwj1s26qk6f7yircm5big6bs88s1-serve-fail.drv' "
              "failed with exit code 1");
    CHECK_INT(r->n_outputs, 0);
    store_build_result_free(r);
    store_close(c);
    buf_dispose(&rep);
}

TEST(store, serve, dump_reply)
{
    Buf rep, nar;
    StoreConn *c;
    uint64_t size = 0;
    Err e, *ep = &e;
    CHECK_OK(st_read("store/tx/serve-dump.reply", &rep), ep);
    buf_init(&nar, 1 << 20);
    c = store__conn_mem(STORE_PROTO_SERVE, 0x207, rep.p, rep.len);
    CHECK_OK(store__wire_copy_nar(&c->w, st_buf_sink, &nar, &size, ep), ep);
    CHECK_INT(size, 120);
    store_close(c);
    buf_dispose(&rep);
    buf_dispose(&nar);
}

/* ---------------------------------------------------------------- a real server */

#define LOCAL_SERVE "ssh://localhost?remote-program=nix-store"

TEST(store, serve, local_queries_nar_and_build)
{
    Err e, *ep = &e;
    StoreConn *s = NULL, *w = NULL;
    char *nonce = st_nonce(), *dir, *file, *script, *drv_path, *q;
    Buf nar, back, log;
    StorePathInfo info, *pi = NULL, *wpi = NULL;
    StMemNar src;
    StrVec valid;
    char b32[NIX_HASH_TEXT_MAX];
    StoreBuildOptions bo;
    StoreBuildResult *r = NULL;
    NixDrv *d;
    FILE *f;
    int isvalid = -1;
    if (!test_have_nix()) {
        test_skip("no nix");
        return;
    }
    st_nix_env();
    memset(&bo, 0, sizeof bo);
    strvec_init(&valid);
    buf_init(&nar, 1 << 24);
    buf_init(&back, 1 << 24);
    buf_init(&log, 1 << 20);
    CHECK_OK(store_open(LOCAL_SERVE, NULL, &s, ep), ep);
    CHECK_INT(store_conn_protocol(s), STORE_PROTO_SERVE);
    CHECK_INT(store_conn_version(s), 0x207);
    CHECK_OK(store_open("local", NULL, &w, ep), ep);

    /* AddToStoreNar (serve) of a fresh path, then read everything back */
    dir = xasprintf("%s/snar-%s", test_tmpdir(), nonce);
    CHECK(mkdir(dir, 0755) == 0);
    file = xasprintf("%s/f", dir);
    f = fopen(file, "w");
    CHECK(f);
    fprintf(f, "%s\n", nonce);
    fclose(f);
    CHECK_OK(nix_nar_dump_path(dir, st_buf_sink, &nar, ep), ep);
    store__path_info_init(&info);
    nix_hash_bytes(NIX_HASH_SHA256, nar.p, nar.len, &info.nar_hash);
    info.nar_size = nar.len;
    info.path = nix_make_fixed_output_path(1, &info.nar_hash, "sluice-serve-nar", NULL, 0, 0);
    nix_hash_to_base32(&info.nar_hash, b32);
    info.ca = xasprintf("fixed:r:sha256:%s", b32);
    src = (StMemNar){.p = nar.p, .n = nar.len};
    CHECK_OK(store_add_to_store_nar(s, &info, st_mem_src, &src, ep), ep);
    CHECK_OK(store_is_valid_path(s, info.path, &isvalid, ep), ep);
    CHECK_INT(isvalid, 1);
    {
        const char *qp[2] = {info.path, "/nix/store/00000000000000000000000000000000-missing"};
        StorePathInfo *out[2];
        CHECK_OK(store_query_valid_paths(s, qp, 2, &valid, ep), ep);
        CHECK_INT(valid.n, 1);
        CHECK_OK(store_query_path_infos(s, qp, 2, out, ep), ep);
        CHECK(out[0] && !out[1]);
        pi = out[0];
    }
    CHECK_OK(store_query_path_info(w, info.path, &wpi, ep), ep);
    CHECK(memcmp(pi->nar_hash.d, wpi->nar_hash.d, 32) == 0);
    CHECK_INT(pi->nar_size, wpi->nar_size);
    CHECK_STR(pi->ca, wpi->ca); /* AddToStoreNar keeps ca */
    CHECK_OK(store_nar_from_path(s, info.path, st_buf_sink, &back, ep), ep);
    CHECK(back.len == nar.len && memcmp(back.p, nar.p, nar.len) == 0);
    CHECK_OK(store_add_temp_roots(s, (const char *const *)&info.path, 1, ep), ep);
    /* worker-only operations are refused, the session stays usable */
    {
        char *out = NULL;
        CHECK_INT(store_add_text_to_store(s, "x", "x", 1, NULL, 0, &out, &e), ERR_UNSUPPORTED);
        CHECK(!store_conn_broken(s));
    }

    /* BuildDerivation: log from the server's stderr, built outputs */
    script = xasprintf("echo serve log %s; echo %s > $out", nonce, nonce);
    d = st_ca_drv("stest-ca", script);
    drv_path = nix_drv_store_path(d, "stest-ca");
    CHECK_OK(store_build_derivation(s, drv_path, d, &bo, st_log, &log, &r, ep), ep);
    CHECK_MSG(r->status == STORE_BUILD_BUILT, "status %d: %s", r->status, r->error_msg);
    CHECK_INT(r->n_outputs, 1);
    q = st_sh("cat %s", r->outputs[0].out_path);
    CHECK_STR(q, nonce);
    free(q);
    CHECK_MSG(strstr(buf_cstr(&log), "serve log") != NULL, "log: %s", buf_cstr(&log));
    store_build_result_free(r);
    r = NULL;
    /* a builder that fails: status 3 and the message */
    nix_drv_free(d);
    free(drv_path);
    free(script);
    script = xasprintf("echo %s; exit 1", nonce);
    d = st_ca_drv("stest-fail", script);
    drv_path = nix_drv_store_path(d, "stest-fail");
    CHECK_OK(store_build_derivation(s, drv_path, d, &bo, NULL, NULL, &r, ep), ep);
    CHECK_INT(r->status, STORE_BUILD_PERMANENT_FAILURE);
    CHECK(strstr(r->error_msg, "failed with exit code 1"));
    store_build_result_free(r);
    /* an error of the server (invalid path): it exits, we get its words */
    back.len = 0;
    CHECK_INT(store_nar_from_path(s, "/nix/store/00000000000000000000000000000000-missing",
                                  st_buf_sink, &back, &e),
              ERR_EOF);
    CHECK_MSG(strstr(e.msg, "is not valid") != NULL, "%s", e.msg);
    CHECK(store_conn_broken(s));

    nix_drv_free(d);
    free(drv_path);
    free(script);
    store_close(s);
    store_close(w);
    free(st_sh("nix-store --delete %s >/dev/null 2>&1", info.path));
    store_path_info_free(pi);
    store_path_info_free(wpi);
    free(info.path);
    free(info.ca);
    strvec_dispose(&info.references);
    strvec_dispose(&info.sigs);
    strvec_dispose(&valid);
    buf_dispose(&nar);
    buf_dispose(&back);
    buf_dispose(&log);
    free(dir);
    free(file);
    free(nonce);
}
