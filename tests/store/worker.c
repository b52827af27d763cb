/* tests/store/worker.c: the worker-protocol client.  Request bytes and reply decoding
 * against the transcripts recorded from Nix 2.8 (tests/data/store/tx/), then every
 * operation against a real child `nix-daemon --stdio`, checked with nix-store. */
#include <pthread.h>
#include <sys/stat.h>

#include "store_test.h"

/* ---------------------------------------------------------------- transcripts */

TEST(store, worker, handshake_bytes_match_nix)
{
    Buf req, rep;
    StoreConn *c;
    Err e, *ep = &e;
    CHECK_OK(st_read("store/tx/worker-handshake.req", &req), ep);
    CHECK_OK(st_read("store/tx/worker-handshake.reply", &rep), ep);
    c = store__conn_mem(STORE_PROTO_WORKER, 0, rep.p, rep.len);
    CHECK_OK(store__worker_handshake(c, ep), ep);
    CHECK_INT(c->version, 0x122);
    CHECK_STR(c->nix_version, "2.8.0");
    CHECK_INT(c->w.wbuf.len, req.len);
    CHECK(memcmp(c->w.wbuf.p, req.p, req.len) == 0);
    store_close(c);
    buf_dispose(&req);
    buf_dispose(&rep);
}

TEST(store, worker, older_daemon_gets_min_version)
{
    /* a 1.21 daemon: we announce 1.21, send no version string request */
    static const uint8_t rep[] = {0x6f, 0x69, 0x78, 0x64, 0,    0,    0,    0,    0x15, 0x01, 0, 0,
                                  0,    0,    0,    0,    0x73, 0x74, 0x6c, 0x61, 0,    0,    0, 0};
    StoreConn *c = store__conn_mem(STORE_PROTO_WORKER, 0, rep, sizeof rep);
    Err e, *ep = &e;
    CHECK_OK(store__worker_handshake(c, ep), ep);
    CHECK_INT(c->version, 0x115);
    CHECK(c->nix_version == NULL);
    CHECK_INT(c->w.wbuf.p[8], 0x15); /* the version we announced */
    store_close(c);
}

TEST(store, worker, query_valid_paths_bytes_and_reply)
{
    static const char *const paths[] = {
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple",
        "/nix/store/00000000000000000000000000000000-missing",
    };
    Buf req, rep;
    StoreConn *c;
    StrVec valid;
    Err e, *ep = &e;
    strvec_init(&valid);
    CHECK_OK(st_read("store/tx/worker-query-valid-paths.req", &req), ep);
    CHECK_OK(st_read("store/tx/worker-query-valid-paths.reply", &rep), ep);
    c = store__conn_mem(STORE_PROTO_WORKER, 0x122, rep.p, rep.len);
    CHECK_OK(store__worker_query_valid_paths(c, paths, 2, 0, &valid, ep), ep);
    CHECK_INT(valid.n, 1);
    CHECK_STR(valid.v[0], paths[0]);
    CHECK_INT(c->w.wbuf.len, req.len);
    CHECK(memcmp(c->w.wbuf.p, req.p, req.len) == 0);
    strvec_dispose(&valid);
    store_close(c);
    buf_dispose(&req);
    buf_dispose(&rep);
}

TEST(store, worker, path_info_reply)
{
    static const char *p = "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple";
    Buf rep, rep2;
    StoreConn *c;
    StorePathInfo *out[2] = {NULL, NULL};
    const char *paths[2] = {p, "/nix/store/00000000000000000000000000000000-missing"};
    char hex[NIX_HASH_TEXT_MAX];
    Err e, *ep = &e;
    CHECK_OK(st_read("store/tx/worker-query-path-info.reply", &rep), ep);
    CHECK_OK(st_read("store/tx/worker-query-path-info-invalid.reply", &rep2), ep);
    buf_append(&rep, rep2.p, rep2.len); /* two pipelined replies */
    c = store__conn_mem(STORE_PROTO_WORKER, 0x122, rep.p, rep.len);
    CHECK_OK(store__worker_query_path_infos(c, paths, 2, out, ep), ep);
    CHECK(out[0] != NULL && out[1] == NULL);
    CHECK_STR(out[0]->deriver, "/nix/store/dv9mvcb3l4bc417s1hn0ai46ss8m2vb8-ia-simple.drv");
    nix_hash_to_base16(&out[0]->nar_hash, hex);
    CHECK_STR(hex, "1c37d01af40be2e80691de3cc3df44377a699afbb17c68f080964b2fd071fc13");
    CHECK_INT(out[0]->nar_size, 120);
    CHECK_INT(out[0]->ultimate, 1);
    CHECK_INT(out[0]->references.n, 0);
    CHECK(out[0]->ca == NULL);
    /* both requests went out before any reply was read */
    CHECK_INT(c->w.wbuf.len, 2 * (8 + 8 + 56));
    store_path_info_free(out[0]);
    store_close(c);
    buf_dispose(&rep);
    buf_dispose(&rep2);
}

TEST(store, worker, root_path_infos_in_one_batch)
{
    static const char *p = "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple";
    const char *paths[2] = {p, "/nix/store/00000000000000000000000000000000-missing"};
    StorePathInfo *out[2] = {NULL, NULL};
    Buf rep, info, missing, req;
    StoreConn *c;
    Err e, *ep = &e;
    buf_init(&rep, 1 << 20);
    buf_init(&req, 1 << 20);
    for (int i = 0; i < 2; i++) { /* AddTempRoot: STDERR_LAST, 1 */
        st_wire_u64(&rep, 0x616c7473);
        st_wire_u64(&rep, 1);
    }
    CHECK_OK(st_read("store/tx/worker-query-path-info.reply", &info), ep);
    CHECK_OK(st_read("store/tx/worker-query-path-info-invalid.reply", &missing), ep);
    buf_append(&rep, info.p, info.len);
    buf_append(&rep, missing.p, missing.len);
    c = store__conn_mem(STORE_PROTO_WORKER, 0x122, rep.p, rep.len);
    CHECK_OK(store__worker_root_path_infos(c, paths, 2, out, ep), ep);
    CHECK(out[0] != NULL && out[1] == NULL);
    CHECK_STR(out[0]->path, p);
    CHECK_INT(out[0]->nar_size, 120);
    /* the roots first, then the queries, all sent before any reply was read */
    for (int op = 0; op < 2; op++)
        for (int i = 0; i < 2; i++) {
            st_wire_u64(&req, op == 0 ? 11 : 26); /* AddTempRoot, QueryPathInfo */
            st_wire_str(&req, paths[i]);
        }
    ST_CHECK_EXCHANGE(c, req);
    store_path_info_free(out[0]);
    store_close(c);
    buf_dispose(&rep);
    buf_dispose(&req);
    buf_dispose(&info);
    buf_dispose(&missing);
}

TEST(store, worker, output_map_realisation_nar_error)
{
    Buf rep;
    StoreConn *c;
    StoreOutputMap *m = NULL;
    char *path = NULL, *json = NULL;
    Err e, *ep = &e;
    Buf nar;
    uint64_t size;

    CHECK_OK(st_read("store/tx/worker-output-map.reply", &rep), ep);
    c = store__conn_mem(STORE_PROTO_WORKER, 0x122, rep.p, rep.len);
    CHECK_OK(store__worker_query_output_map(
                 c, "/nix/store/2rz4z7b4xsc3y6cxabh6flq71c9gknrg-ca-b.drv", &m, ep),
             ep);
    CHECK_INT(m->n, 1);
    CHECK_STR(m->v[0].name, "out");
    CHECK_STR(m->v[0].path, "/nix/store/0jbb69q0s5s7fj1l3xivnm1ml1vbrfwd-ca-b");
    store_output_map_free(m);
    store_close(c);
    buf_dispose(&rep);

    CHECK_OK(st_read("store/tx/worker-realisation.reply", &rep), ep);
    c = store__conn_mem(STORE_PROTO_WORKER, 0x122, rep.p, rep.len);
    CHECK_OK(store__worker_query_realisation(c, "sha256:e6!out", &path, &json, ep), ep);
    CHECK_STR(path, "fanbg5hzr0lsic3nxxf9gg27n1q0a60h-wire-ca");
    CHECK(json && strstr(json, "\"dependentRealisations\":{}"));
    free(path);
    free(json);
    store_close(c);
    buf_dispose(&rep);

    CHECK_OK(st_read("store/tx/worker-nar-from-path.reply", &rep), ep);
    c = store__conn_mem(STORE_PROTO_WORKER, 0x122, rep.p, rep.len);
    buf_init(&nar, 1 << 20);
    CHECK_OK(
        store__worker_nar_begin(c, "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple", ep),
        ep);
    CHECK_OK(store__wire_copy_nar(&c->w, st_buf_sink, &nar, &size, ep), ep);
    CHECK_INT(size, 120);
    {
        NixHash h;
        char b32[NIX_HASH_TEXT_MAX];
        nix_hash_bytes(NIX_HASH_SHA256, nar.p, nar.len, &h);
        nix_hash_to_base32(&h, b32);
        CHECK_STR(b32, "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw");
    }
    buf_dispose(&nar);
    store_close(c);
    buf_dispose(&rep);

    /* STDERR_ERROR: the peer's message, ANSI codes stripped */
    CHECK_OK(st_read("store/tx/worker-error.reply", &rep), ep);
    c = store__conn_mem(STORE_PROTO_WORKER, 0x122, rep.p, rep.len);
    CHECK_INT(store__worker_stderr(c, NULL, &e), ERR_PEER);
    CHECK_STR(e.msg, "path '/tmp/x' is not in the Nix store");
    store_close(c);
    buf_dispose(&rep);
}

/* ---------------------------------------------------------------- a real daemon */

static StoreConn *open_local(Err *e)
{
    StoreConn *c = NULL;
    st_nix_env();
    if (store_open("local", NULL, &c, e) < 0)
        return NULL;
    return c;
}

/* Instantiate a two-derivation expression; prints the top drv path. */
static char *instantiate(const char *nonce, const char *what)
{
    const char *dir = test_tmpdir();
    char *file = xasprintf("%s/%s-%s.nix", dir, what, nonce);
    char *out;
    FILE *f = fopen(file, "w");
    if (!f) {
        free(file);
        return NULL;
    }
    fprintf(
        f,
        "let dep = derivation { name = \"dep\"; system = \"x86_64-linux\"; builder = \"/bin/sh\";\n"
        "  args = [\"-c\" \"echo %s > $out\"]; };\n"
        "in derivation { name = \"%s\"; system = \"x86_64-linux\"; builder = \"/bin/sh\";\n"
        "  args = [\"-c\" \"echo building %s; /bin/cat ${dep} > $out\"]; }\n",
        nonce, what, nonce);
    fclose(f);
    out = st_sh("nix-instantiate %s 2>/dev/null", file);
    free(file);
    return out;
}

TEST(store, worker, local_add_text_lands_at_instantiate_path)
{
    Err e, *ep = &e;
    StoreConn *c;
    char *nonce = st_nonce(), *drv = NULL, *got = NULL, *q = NULL;
    NixDrv *d = NULL;
    Buf text;
    StrVec refs;
    StorePathInfo *pi = NULL;
    int valid = -1;
    if (!test_have_nix()) {
        test_skip("no nix");
        return;
    }
    strvec_init(&refs);
    buf_init(&text, 1 << 24);
    c = open_local(ep);
    CHECK_MSG(c, "open: %s", e.msg);
    CHECK_INT(store_conn_protocol(c), STORE_PROTO_WORKER);
    CHECK_INT(store_conn_version(c), 0x122);
    drv = instantiate(nonce, "addtext");
    CHECK(drv);
    CHECK_OK(util_read_file(drv, &text, ep), ep);
    CHECK_OK(nix_drv_parse(text.p, text.len, &d, ep), ep);
    for (size_t i = 0; i < d->n_inputs; i++)
        strvec_push(&refs, d->inputs[i].drv_path);
    for (size_t i = 0; i < d->n_srcs; i++)
        strvec_push(&refs, d->srcs[i]);
    CHECK_INT(refs.n, 1);
    /* remove it, then write it back through the daemon */
    free(st_sh("nix-store --delete %s >/dev/null 2>&1", drv));
    CHECK_OK(store_is_valid_path(c, drv, &valid, ep), ep);
    CHECK_INT(valid, 0);
    CHECK_OK(store_add_text_to_store(c, nix_store_path_name(drv), (const char *)text.p, text.len,
                                     (const char *const *)refs.v, refs.n, &got, ep),
             ep);
    CHECK_STR(got, drv);
    CHECK_OK(store_is_valid_path(c, drv, &valid, ep), ep);
    CHECK_INT(valid, 1);
    CHECK_OK(store_query_path_info(c, drv, &pi, ep), ep);
    CHECK(pi->ca && util_starts_with(pi->ca, "text:sha256:"));
    CHECK_INT(pi->references.n, 1);
    CHECK_STR(pi->references.v[0], refs.v[0]);
    q = st_sh("nix-store -q --hash %s", drv);
    {
        char t[NIX_HASH_TEXT_MAX];
        store_path_info_nar_hash_text(pi, t);
        CHECK_STR(t, q);
    }
    free(q);
    q = st_sh("nix-store --verify-path %s && echo ok", drv);
    CHECK_STR(q, "ok");
    free(q);
    /* a missing path is ERR_NOTFOUND and the session stays usable */
    store_path_info_free(pi);
    pi = NULL;
    CHECK_INT(store_query_path_info(c, "/nix/store/00000000000000000000000000000000-nope", &pi, &e),
              ERR_NOTFOUND);
    CHECK(!store_conn_broken(c));
    /* a bad argument is refused before anything is sent */
    CHECK_INT(store_is_valid_path(c, "/tmp/x", &valid, &e), ERR_INVALID);
    CHECK(!store_conn_broken(c));
    {
        StoreOutputMap *m = NULL;
        char *outs = st_sh("nix-store -q --outputs %s", drv);
        CHECK_OK(store_query_derivation_output_map(c, drv, &m, ep), ep);
        CHECK_INT(m->n, 1);
        CHECK_STR(m->v[0].name, "out");
        CHECK_STR(m->v[0].path, outs);
        free(outs);
        store_output_map_free(m);
    }
    store_close(c);
    nix_drv_free(d);
    strvec_dispose(&refs);
    buf_dispose(&text);
    free(nonce);
    free(drv);
    free(got);
}

TEST(store, worker, local_build_inline_log_and_realisation)
{
    Err e, *ep = &e;
    StoreConn *c;
    char *nonce = st_nonce(), *script, *drv_path, *q, *rpath = NULL, *rjson = NULL;
    NixDrv *d;
    StoreBuildResult *r = NULL;
    StoreBuildOptions bo;
    Buf log;
    if (!test_have_nix()) {
        test_skip("no nix");
        return;
    }
    memset(&bo, 0, sizeof bo);
    buf_init(&log, 1 << 20);
    c = open_local(ep);
    CHECK_MSG(c, "open: %s", e.msg);
    script = xasprintf("echo hello from %s; echo %s > $out", nonce, nonce);
    d = st_ca_drv("wtest-ca", script);
    CHECK(d);
    drv_path = nix_drv_store_path(d, "wtest-ca");
    CHECK_OK(store_build_derivation(c, drv_path, d, &bo, st_log, &log, &r, ep), ep);
    CHECK_MSG(r->status == STORE_BUILD_BUILT, "status %d: %s", r->status, r->error_msg);
    CHECK_INT(r->times_built, 1);
    CHECK_INT(r->n_outputs, 1);
    CHECK_STR(r->outputs[0].output, "out");
    CHECK(strstr(buf_cstr(&log), "hello from ") != NULL);
    q = st_sh("cat %s", r->outputs[0].out_path);
    CHECK_STR(q, nonce);
    free(q);
    /* the daemon registered the realisation of what it built */
    CHECK_OK(store_query_realisation(c, r->outputs[0].id, &rpath, &rjson, ep), ep);
    CHECK_STR(rpath, nix_store_path_base(r->outputs[0].out_path));
    free(rpath);
    free(rjson);
    rpath = rjson = NULL;
    /* register another id for that output and read it back */
    {
        char *id = xasprintf("sha256:%064x!out", (unsigned)util_now_ms());
        char *json = xasprintf("{\"dependentRealisations\":{},\"id\":\"%s\",\"outPath\":\"%s\","
                               "\"signatures\":[]}",
                               id, nix_store_path_base(r->outputs[0].out_path));
        CHECK_OK(store_register_drv_output(c, json, ep), ep);
        CHECK_OK(store_query_realisation(c, id, &rpath, NULL, ep), ep);
        CHECK_STR(rpath, nix_store_path_base(r->outputs[0].out_path));
        free(rpath);
        rpath = NULL;
        /* unknown id */
        id[10] = id[10] == 'a' ? 'b' : 'a';
        CHECK_OK(store_query_realisation(c, id, &rpath, NULL, ep), ep);
        CHECK(rpath == NULL);
        free(id);
        free(json);
    }
    /* again: already valid */
    store_build_result_free(r);
    r = NULL;
    CHECK_OK(store_build_derivation(c, drv_path, d, &bo, NULL, NULL, &r, ep), ep);
    CHECK_INT(r->status, STORE_BUILD_ALREADY_VALID);
    CHECK(store_build_status_success(r->status));
    store_build_result_free(r);
    r = NULL;
    /* a failing builder: status 3, message without colour codes */
    nix_drv_free(d);
    free(drv_path);
    free(script);
    script = xasprintf("echo about to fail %s; exit 3", nonce);
    d = st_ca_drv("wtest-fail", script);
    drv_path = nix_drv_store_path(d, "wtest-fail");
    CHECK_OK(store_build_derivation(c, drv_path, d, &bo, NULL, NULL, &r, ep), ep);
    CHECK_INT(r->status, STORE_BUILD_PERMANENT_FAILURE);
    CHECK(strstr(r->error_msg, "failed with exit code 3") != NULL);
    CHECK(strchr(r->error_msg, '\x1b') == NULL);
    CHECK(!store_build_status_success(r->status));
    store_build_result_free(r);
    store_close(c);
    nix_drv_free(d);
    free(drv_path);
    free(script);
    free(nonce);
    buf_dispose(&log);
}

TEST(store, worker, local_nar_roundtrip_and_pipelined_infos)
{
    Err e, *ep = &e;
    StoreConn *c;
    char *nonce = st_nonce(), *dir, *file, *q;
    Buf nar, back;
    StorePathInfo info, *pi = NULL;
    StMemNar src;
    char b32[NIX_HASH_TEXT_MAX];
    FILE *f;
    if (!test_have_nix()) {
        test_skip("no nix");
        return;
    }
    buf_init(&nar, 1 << 24);
    buf_init(&back, 1 << 24);
    c = open_local(ep);
    CHECK_MSG(c, "open: %s", e.msg);
    dir = xasprintf("%s/nar-%s", test_tmpdir(), nonce);
    CHECK(mkdir(dir, 0755) == 0);
    file = xasprintf("%s/data", dir);
    f = fopen(file, "w");
    CHECK(f);
    for (int i = 0; i < 20000; i++)
        fprintf(f, "%s line %d\n", nonce, i);
    fclose(f);
    CHECK_OK(nix_nar_dump_path(dir, st_buf_sink, &nar, ep), ep);
    store__path_info_init(&info);
    nix_hash_bytes(NIX_HASH_SHA256, nar.p, nar.len, &info.nar_hash);
    info.nar_size = nar.len;
    info.path = nix_make_fixed_output_path(1, &info.nar_hash, "sluice-nar-test", NULL, 0, 0);
    nix_hash_to_base32(&info.nar_hash, b32);
    info.ca = xasprintf("fixed:r:sha256:%s", b32);
    src = (StMemNar){.p = nar.p, .n = nar.len};
    CHECK_OK(store_add_to_store_nar(c, &info, st_mem_src, &src, ep), ep);
    q = st_sh("nix-store --verify-path %s && echo ok", info.path);
    CHECK_STR(q, "ok");
    free(q);
    CHECK_OK(store_nar_from_path(c, info.path, st_buf_sink, &back, ep), ep);
    CHECK(back.len == nar.len && memcmp(back.p, nar.p, nar.len) == 0);
    CHECK_OK(store_query_path_info(c, info.path, &pi, ep), ep);
    CHECK_STR(pi->ca, info.ca);
    CHECK_INT(pi->nar_size, nar.len);
    store_path_info_free(pi);
    /* 300 requests, more than one pipeline window, valid and not */
    {
        const char *paths[300];
        StorePathInfo *out[300];
        static const char missing[] = "/nix/store/00000000000000000000000000000000-missing";
        for (int i = 0; i < 300; i++)
            paths[i] = i % 3 ? info.path : missing;
        CHECK_OK(store_query_path_infos(c, paths, 300, out, ep), ep);
        for (int i = 0; i < 300; i++) {
            CHECK((out[i] != NULL) == (i % 3 != 0));
            store_path_info_free(out[i]);
        }
    }
    /* temp root and indirect root */
    CHECK_OK(store_add_temp_roots(c, (const char *const *)&info.path, 1, ep), ep);
    {
        char *link = xasprintf("%s/root-link", dir);
        char *found;
        CHECK(symlink(info.path, link) == 0);
        CHECK_OK(store_add_indirect_root(c, link, ep), ep);
        found = st_sh("for l in /nix/var/nix/gcroots/auto/*; do [ \"$(readlink $l)\" = %s ] && "
                      "echo $l; done; true",
                      link);
        CHECK(found && found[0]);
        free(st_sh("rm -f %s", found));
        free(found);
        free(link);
    }
    store_close(c);
    free(st_sh("nix-store --delete %s >/dev/null 2>&1", info.path));
    free(info.path);
    free(info.ca);
    strvec_dispose(&info.references);
    strvec_dispose(&info.sigs);
    buf_dispose(&nar);
    buf_dispose(&back);
    free(dir);
    free(file);
    free(nonce);
}

typedef struct AbortArg {
    StoreConn *c;
    int delay_ms;
} AbortArg;

static void *abort_later(void *p)
{
    AbortArg *a = p;
    struct timespec ts = {a->delay_ms / 1000, (a->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    store_conn_abort(a->c);
    return NULL;
}

TEST(store, worker, abort_interrupts_a_running_build)
{
    Err e, *ep = &e;
    StoreConn *c;
    char *nonce = st_nonce(), *script, *drv_path, *q;
    NixDrv *d;
    StoreBuildResult *r = NULL;
    StoreBuildOptions bo;
    pthread_t th;
    AbortArg a;
    uint64_t t0;
    int rc;
    if (!test_have_nix()) {
        test_skip("no nix");
        return;
    }
    memset(&bo, 0, sizeof bo);
    c = open_local(ep);
    CHECK_MSG(c, "open: %s", e.msg);
    script = xasprintf("echo %s; /bin/sleep 30; echo %s > $out", nonce, nonce);
    d = st_ca_drv("wtest-sleep", script);
    drv_path = nix_drv_store_path(d, "wtest-sleep");
    a.c = c;
    a.delay_ms = 500;
    pthread_create(&th, NULL, abort_later, &a);
    t0 = util_now_ms();
    rc = store_build_derivation(c, drv_path, d, &bo, NULL, NULL, &r, &e);
    pthread_join(th, NULL);
    CHECK_INT(rc, ERR_CANCELLED);
    CHECK_MSG(util_now_ms() - t0 < 3000, "took %llu ms", (unsigned long long)(util_now_ms() - t0));
    CHECK(store_conn_broken(c));
    CHECK_INT(store_is_valid_path(c, drv_path, &rc, &e), ERR_CANCELLED);
    store_close(c);
    /* the builder is gone (the daemon saw the hang-up and killed it) */
    {
        int gone = 0;
        for (int i = 0; i < 100 && !gone; i++) {
            q = st_sh("pgrep -f '[e]cho %s; /bin/sleep 30' || true", nonce);
            gone = q && !q[0];
            free(q);
            if (!gone)
                usleep(50000);
        }
        CHECK_MSG(gone, "builder still running");
    }
    nix_drv_free(d);
    free(drv_path);
    free(script);
    free(nonce);
}

TEST(store, worker, pool_reuses_and_retires)
{
    Err e, *ep = &e;
    StorePool *p;
    StorePoolOptions po = {.max_uses = 2, .max_idle_s = 1, .max_idle = 4};
    StoreConn *a = NULL, *b = NULL, *c2 = NULL;
    size_t open, idle;
    if (!test_have_nix()) {
        test_skip("no nix");
        return;
    }
    st_nix_env();
    p = store_pool_new("local", NULL, &po);
    CHECK_OK(store_pool_get(p, &a, ep), ep);
    CHECK_OK(store_pool_get(p, &b, ep), ep);
    CHECK(a != b);
    store_pool_counts(p, &open, &idle);
    CHECK_INT(open, 2);
    CHECK_INT(idle, 0);
    store_pool_put(p, a);
    CHECK_OK(store_pool_get(p, &c2, ep), ep);
    CHECK(c2 == a);        /* reused */
    store_pool_put(p, c2); /* second use: retired */
    store_pool_counts(p, &open, &idle);
    CHECK_INT(open, 1);
    CHECK_INT(idle, 0);
    store_pool_put(p, b);
    store_pool_counts(p, &idle, &idle);
    CHECK_INT(idle, 1);
    usleep(1100 * 1000);
    store_pool_reap(p); /* idle too long */
    store_pool_counts(p, &open, &idle);
    CHECK_INT(open, 0);
    /* a broken session is not handed out again */
    CHECK_OK(store_pool_get(p, &a, ep), ep);
    store_conn_abort(a);
    store_pool_put(p, a);
    store_pool_counts(p, &open, &idle);
    CHECK_INT(open, 0);
    store_pool_free(p);
}

TEST(store, worker, substitutable_reply_and_bounds)
{
    static const char *const paths[] = {
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple",
        "/nix/store/00000000000000000000000000000000-missing",
    };
    Buf rep;
    StoreConn *c;
    StrVec got;
    Err e, *ep = &e;
    /* SetOptions (useSubstitutes on), then QuerySubstitutablePathInfos: one known */
    buf_init(&rep, 1 << 20);
    st_wire_u64(&rep, 0x616c7473); /* STDERR_LAST */
    st_wire_u64(&rep, 0x616c7473);
    st_wire_u64(&rep, 1);
    st_wire_str(&rep, paths[0]);
    st_wire_str(&rep, "");
    st_wire_u64(&rep, 1);
    st_wire_str(&rep, paths[0]);
    st_wire_u64(&rep, 100); /* downloadSize */
    st_wire_u64(&rep, 200); /* narSize */
    strvec_init(&got);
    c = store__conn_mem(STORE_PROTO_WORKER, 0x122, rep.p, rep.len);
    CHECK_OK(store_query_substitutable(c, paths, 2, &got, ep), ep);
    CHECK_INT(got.n, 1);
    CHECK_STR(got.v[0], paths[0]);
    CHECK(c->opts_sent && c->opts.substitute && c->opts.no_builds);
    store_close(c);
    strvec_dispose(&got);

    /* more answers than questions: refused, nothing returned */
    buf_reset(&rep);
    st_wire_u64(&rep, 0x616c7473);
    st_wire_u64(&rep, 0x616c7473);
    st_wire_u64(&rep, 3);
    strvec_init(&got);
    c = store__conn_mem(STORE_PROTO_WORKER, 0x122, rep.p, rep.len);
    CHECK(store_query_substitutable(c, paths, 2, &got, ep) < 0);
    CHECK_INT(got.n, 0);
    store_close(c);
    strvec_dispose(&got);
    buf_dispose(&rep);
}

/* DRV!OUT substitutions at Nix's debug level: the misses Nix names ("derivation output
 * 'ID' ..." and "path 'P' ... is required, but there is no substituter"), except a name
 * a warning or error of the request mentions (a truncated NAR, a cache answering 500);
 * only warnings and errors make the message; the next path substitution goes back to
 * warnings. */
TEST(store, worker, substitute_outputs_names_misses)
{
    static const char *const derived[] = {
        "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ca-a.drv!out",
        "/nix/store/00000000000000000000000000000000-ca-b.drv!out",
    };
    static const char *const lines[] = {
        "substitution of 'sha256:aa!out': created\n",
        "derivation output 'sha256:aa!out' is required, but there is no substituter that can "
        "provide it\n",
        "\033[31;1merror:\033[0m NAR for '/nix/store/11111111111111111111111111111111-trunc' "
        "fetched from 'file:///c' is incomplete\n",
        "path '/nix/store/11111111111111111111111111111111-trunc' is required, but there is no "
        "substituter that can build it\n",
        "path '/nix/store/22222222222222222222222222222222-gone' is required, but there is no "
        "substituter that can build it\n",
        "error: unable to download 'http://c/realisations/sha256:bb!out.doi': HTTP error 500\n",
        "derivation output 'sha256:bb!out' is required, but there is no substituter that can "
        "provide it\n",
        "derivation output 'sha256:cc!out' is required, ", /* one line in two messages */
        "but there is no substituter that can provide it\n",
        "\033[35;1mwarning:\033[0m the substitute for 'x' is not signed\n",
    };
    Buf rep;
    StoreConn *c;
    StrVec misses;
    Err e, *ep = &e;
    buf_init(&rep, 1 << 20);
    st_wire_u64(&rep, 0x616c7473); /* SetOptions: STDERR_LAST */
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        st_wire_u64(&rep, 0x6f6c6d67); /* STDERR_NEXT */
        st_wire_str(&rep, lines[i]);
    }
    st_wire_u64(&rep, 0x63787470); /* STDERR_ERROR (>= 1.26) */
    st_wire_str(&rep, "Error");
    st_wire_u64(&rep, 0);
    st_wire_str(&rep, "Error");
    st_wire_str(&rep, "unable to start any build; either increase '--max-jobs' or enable remote "
                      "builds.");
    st_wire_u64(&rep, 0);
    st_wire_u64(&rep, 0);
    strvec_init(&misses);
    c = store__conn_mem(STORE_PROTO_WORKER, 0x122, rep.p, rep.len);
    CHECK_INT(store_substitute_outputs(c, derived, 2, &misses, &e), ERR_PEER);
    CHECK_INT(c->opts.verbosity, STORE_VERBOSITY_DEBUG);
    CHECK_INT(misses.n, 3);
    CHECK_STR(misses.v[0], "/nix/store/22222222222222222222222222222222-gone");
    CHECK_STR(misses.v[1], "sha256:aa!out");
    CHECK_STR(misses.v[2], "sha256:cc!out");
    CHECK_MSG(strstr(e.msg, "is incomplete") && strstr(e.msg, "HTTP error 500") &&
                  strstr(e.msg, "is not signed") && strstr(e.msg, "unable to start any build"),
              "%s", e.msg);
    CHECK_MSG(!strstr(e.msg, "substitution of") && !strstr(e.msg, "is required"), "%s", e.msg);
    CHECK_MSG(!strchr(e.msg, '\033'), "%s", e.msg);
    strvec_dispose(&misses);
    store_close(c);

    /* the next path substitution goes back to warnings (SetOptions again) */
    buf_reset(&rep);
    st_wire_u64(&rep, 0x616c7473); /* SetOptions */
    st_wire_u64(&rep, 0x616c7473); /* BuildPaths */
    st_wire_u64(&rep, 1);
    c = store__conn_mem(STORE_PROTO_WORKER, 0x122, rep.p, rep.len);
    c->opts_sent = 1;
    c->opts.substitute = c->opts.no_builds = 1;
    c->opts.verbosity = STORE_VERBOSITY_DEBUG;
    {
        static const char *const paths[] = {
            "/nix/store/5r10i2xayliqjmz28jb6np7iqcbgqkjk-ia-simple"};
        CHECK_OK(store_substitute_paths(c, paths, 1, ep), ep);
    }
    CHECK_INT(c->opts.verbosity, STORE_VERBOSITY_WARN);
    store_close(c);
    buf_dispose(&rep);
}
