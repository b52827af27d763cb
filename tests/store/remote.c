/* tests/store/remote.c: building on builder hosts with their own /nix over real ssh
 * (tests/harness/machines.sh), through the API, once per protocol:
 *
 *   add the .drvs locally; for each step open a session on the machine (ssh
 *   ControlMaster), copy the inputs, build the BasicDerivation inline (the builder
 *   never receives a .drv), copy the outputs back, register realisations; an
 *   input-addressed chain and a floating-CA chain whose second node is resolved first
 *   (the resolved .drv written with AddTextToStore).  The result is checked against
 *   `nix-store -r` in a separate private store (the oracle): same paths, NAR hashes,
 *   sizes, references, content addresses, realisations; `nix-store --verify-path`.
 *   A GC on the builder while a step's session is open keeps its inputs and output;
 *   after the session closed the next GC collects them.
 *
 * Also: the master connection comes back after the machine crashed; with keepalives
 * a network cut ends a silent build's session within the configured limit.
 *
 * Runs only from tests/store/remote_*.test.sh, which starts the machines and runs this
 * binary with a private /nix as the local store (SLUICE_TEST_MACHINES=1). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include <jansson.h>

#include "store_test.h"

static int have_machines(void)
{
    const char *m = getenv("SLUICE_TEST_MACHINES");
    if (!m || strcmp(m, "1") != 0 || !getenv("SLUICE_LAB")) {
        test_skip("needs the builder hosts (tests/store/remote_*.test.sh)");
        return 0;
    }
    st_nix_env();
    return 1;
}

static const char *lab(void)
{
    return getenv("SLUICE_LAB");
}

/* Run a command on builder host bI. */
static char *on_host(const char *host, const char *cmd)
{
    return st_sh("ssh -F %s/ssh_config %s '%s' 2>/dev/null", lab(), host, cmd);
}

static int host_has(const char *host, const char *path)
{
    char *cmd =
        xasprintf("nix-store --check-validity %s >/dev/null 2>&1 && echo yes || echo no", path);
    char *r = on_host(host, cmd);
    int yes = r && strcmp(r, "yes") == 0;
    free(cmd);
    free(r);
    return yes;
}

static void host_gc(const char *host)
{
    free(on_host(host, "nix-store --gc >/dev/null 2>&1; true"));
}

/* The options a machines file gives: identity file and the host's public key. */
static void machine_opts(StoreOpenOptions *o, char **key, char **hostkey)
{
    memset(o, 0, sizeof *o);
    *key = xasprintf("%s/id", lab());
    *hostkey = st_sh("base64 -w0 < %s/hostkey.pub", lab());
    o->ssh_key = *key;
    o->host_key_b64 = *hostkey;
    o->connect_timeout_ms = 20000;
    o->io_timeout_ms = 60000;
}

static const char EXPR[] =
    "{ nonce }:\n"
    "let\n"
    "  mk = ca: name: deps: derivation ({ inherit name; system = \"x86_64-linux\";\n"
    "    builder = \"/bin/sh\";\n"
    "    args = [\"-c\" (\"echo ${nonce} ${name} building; echo ${nonce} ${name} > $out; \"\n"
    "      + \"for d in ${toString deps}; do echo $d >> $out; /bin/cat $d >> $out; done\")];\n"
    "  } // (if ca then { __contentAddressed = true; outputHashMode = \"recursive\";\n"
    "                     outputHashAlgo = \"sha256\"; } else {}));\n"
    "  iadep = mk false \"ia-dep\" [];\n"
    "  cadep = mk true \"ca-dep\" [];\n"
    "in { inherit iadep cadep; iatop = mk false \"ia-top\" [ iadep ];\n"
    "     catop = mk true \"ca-top\" [ cadep ]; }\n";

typedef struct Chain {
    char *expr_file, *nonce;
    char *oracle;                        /* private /nix of the oracle */
    char *iadep, *iatop, *cadep, *catop; /* drv paths */
} Chain;

static int chain_init(Chain *ch, const char *tag)
{
    FILE *f;
    memset(ch, 0, sizeof *ch);
    ch->nonce = st_nonce();
    ch->expr_file = xasprintf("%s/chain-%s-%s.nix", test_tmpdir(), tag, ch->nonce);
    ch->oracle = xasprintf("%s/oracle-%s", test_tmpdir(), tag);
    f = fopen(ch->expr_file, "w");
    if (!f)
        return -1;
    fputs(EXPR, f);
    fclose(f);
#define INST(field, attr)                                                                          \
    ch->field = st_sh("nix-instantiate %s -A " attr " --argstr nonce %s 2>/dev/null",              \
                      ch->expr_file, ch->nonce);                                                   \
    if (!ch->field)                                                                                \
        return -1;
    INST(iadep, "iadep")
    INST(iatop, "iatop")
    INST(cadep, "cadep")
    INST(catop, "catop")
#undef INST
    return 0;
}

static void chain_dispose(Chain *ch)
{
    free(ch->expr_file);
    free(ch->nonce);
    free(ch->oracle);
    free(ch->iadep);
    free(ch->iatop);
    free(ch->cadep);
    free(ch->catop);
}

/* Build drv in the oracle store and print `nix path-info --json` of its outputs. */
static char *oracle(Chain *ch, const char *drv)
{
    return st_sh("%s/inns %s sh -c 'nix-instantiate %s -A %s --argstr nonce %s >/dev/null 2>&1 && "
                 "o=$(nix-store -r %s 2>/dev/null) && nix path-info --json $o'",
                 lab(), ch->oracle, ch->expr_file,
                 strstr(drv, "ia-dep")   ? "iadep"
                 : strstr(drv, "ia-top") ? "iatop"
                 : strstr(drv, "ca-dep") ? "cadep"
                                         : "catop",
                 ch->nonce, drv);
}

static char *oracle_realisations(Chain *ch, const char *drv)
{
    return st_sh("%s/inns %s nix realisation info --json %s 2>/dev/null", lab(), ch->oracle, drv);
}

/* Compare our local path-info JSON of outputs with the oracle's: every field but
 * registrationTime and ultimate (a copy is not where a path was made). */
static json_t *strip_info(const char *text)
{
    json_t *a = json_loads(text, 0, NULL), *out = json_object();
    size_t i;
    json_t *x;
    if (!json_is_array(a)) {
        json_decref(a);
        json_decref(out);
        return NULL;
    }
    json_array_foreach(a, i, x)
    {
        json_t *c = json_deep_copy(x);
        json_object_del(c, "registrationTime");
        json_object_del(c, "ultimate");
        json_object_set_new(out, json_string_value(json_object_get(c, "path")), c);
    }
    json_decref(a);
    return out;
}

static int same_path_info(const char *ours, const char *theirs, Err *e)
{
    json_t *a = strip_info(ours), *b = strip_info(theirs);
    int rc = a && b && json_equal(a, b) ? 0 : -1;
    if (rc < 0)
        err_set(e, ERR_CONFLICT, "path info differs:\n  ours:   %.400s\n  oracle: %.400s", ours,
                theirs);
    json_decref(a);
    json_decref(b);
    return rc;
}

/* One step on the machine: copy inputs, build inline, copy outputs back.  *outs gets
 * the output paths (name order of the drv); *r the build result.  When gc_host is set,
 * a GC runs on it while the session is open and the inputs must survive it. */
static int step(StoreMachine *m, StoreConn *local, const char *drv_path, const NixDrv *basic,
                const char *gc_host, StoreBuildResult **r, StrVec *outs, Err *e)
{
    StoreConn *s = NULL;
    StoreBuildOptions bo;
    StoreCopyStats st;
    StorePathInfo **infos = NULL, **again = NULL;
    Buf log;
    int rc;
    memset(&bo, 0, sizeof bo);
    bo.max_silent_time = 60;
    bo.build_timeout = 120;
    buf_init(&log, 1 << 20);
    rc = store_machine_session(m, &s, e);
    if (rc < 0)
        goto out;
    rc = store_copy_closure(local, s, (const char *const *)basic->srcs, basic->n_srcs, &st, e);
    if (rc < 0)
        goto out;
    if (gc_host) {
        host_gc(gc_host);
        for (size_t i = 0; i < basic->n_srcs; i++)
            if (!host_has(gc_host, basic->srcs[i])) {
                rc = err_set(e, ERR_CONFLICT, "input %s collected during its step", basic->srcs[i]);
                goto out;
            }
    }
    rc = store_build_derivation(s, drv_path, basic, &bo, st_log, &log, r, e);
    if (rc < 0)
        goto out;
    if (!store_build_status_success((*r)->status)) {
        rc = err_set(e, ERR_PEER, "build of %s: %s: %s", drv_path,
                     store_build_status_name((*r)->status), (*r)->error_msg);
        goto out;
    }
    if (!strstr(buf_cstr(&log), "building")) {
        rc = err_set(e, ERR_CONFLICT, "no build log for %s: '%s'", drv_path, buf_cstr(&log));
        goto out;
    }
    /* outputs: IA paths from the drv; floating ones from builtOutputs */
    for (size_t i = 0; i < basic->n_outputs; i++) {
        const char *p = basic->outputs[i].path;
        if (!p || !p[0]) {
            p = NULL;
            for (size_t k = 0; k < (*r)->n_outputs; k++)
                if (strcmp((*r)->outputs[k].output, basic->outputs[i].name) == 0)
                    p = (*r)->outputs[k].out_path;
        }
        if (!p) {
            rc = err_set(e, ERR_PEER, "no path for output %s", basic->outputs[i].name);
            goto out;
        }
        strvec_push(outs, p);
    }
    /* rooted with their infos in one round trip, as the runner does: a GC meanwhile
     * leaves them (a floating CA output has no other root), and the infos are the
     * builder's */
    infos = xcalloc(outs->n, sizeof *infos);
    again = xcalloc(outs->n, sizeof *again);
    rc = store_root_path_infos(s, (const char *const *)outs->v, outs->n, infos, e);
    if (rc < 0)
        goto out;
    if (gc_host) {
        host_gc(gc_host);
        for (size_t i = 0; i < outs->n; i++)
            if (!host_has(gc_host, outs->v[i])) {
                rc = err_set(e, ERR_CONFLICT, "output %s collected after its root", outs->v[i]);
                goto out;
            }
    }
    rc = store_query_path_infos(s, (const char *const *)outs->v, outs->n, again, e);
    for (size_t i = 0; rc >= 0 && i < outs->n; i++)
        if (!infos[i] || !again[i] || infos[i]->nar_size != again[i]->nar_size ||
            memcmp(&infos[i]->nar_hash, &again[i]->nar_hash, sizeof again[i]->nar_hash) != 0 ||
            infos[i]->references.n != again[i]->references.n)
            rc =
                err_set(e, ERR_CONFLICT, "info of %s differs when asked with its root", outs->v[i]);
    if (rc >= 0)
        rc = store_copy_closure_known(s, local, (const StorePathInfo *const *)infos, outs->n, &st,
                                      e);
out:
    for (size_t i = 0; infos && i < outs->n; i++) {
        store_path_info_free(infos[i]);
        store_path_info_free(again[i]);
    }
    free(infos);
    free(again);
    buf_dispose(&log);
    store_machine_release(m, s);
    return rc;
}

static int register_json(StoreConn *local, const char *id, const char *out_path,
                         const char *deps_json, Err *e)
{
    char *json = xasprintf("{\"dependentRealisations\":{%s},\"id\":\"%s\",\"outPath\":\"%s\","
                           "\"signatures\":[]}",
                           deps_json, id, nix_store_path_base(out_path));
    int rc = store_register_drv_output(local, json, e);
    free(json);
    return rc;
}

static void run_chain(const char *uri, const char *host, const char *tag)
{
    Err e, *ep = &e;
    Chain ch;
    StoreOpenOptions o;
    StoreMachine *m = NULL;
    StoreConn *local = NULL;
    NixHashCache *cache = nix_hash_cache_new(NULL, NULL);
    NixDrv *iadep = NULL, *iatop = NULL, *cadep = NULL, *catop = NULL, *basic = NULL,
           *resolved = NULL;
    StoreBuildResult *r = NULL;
    StrVec outs_iadep, outs_iatop, outs_cadep, outs_catop;
    char *key = NULL, *hk = NULL, *q = NULL, *resolved_path = NULL, *added = NULL;
    char **ids = NULL;
    strvec_init(&outs_iadep);
    strvec_init(&outs_iatop);
    strvec_init(&outs_cadep);
    strvec_init(&outs_catop);
    CHECK(chain_init(&ch, tag) == 0);
    machine_opts(&o, &key, &hk);
    m = store_machine_new(uri, &o, NULL);
    CHECK_OK(store_open("local", NULL, &local, ep), ep);
    CHECK_OK(nix_drv_read(ch.iadep, &iadep, ep), ep);
    CHECK_OK(nix_drv_read(ch.iatop, &iatop, ep), ep);
    CHECK_OK(nix_drv_read(ch.cadep, &cadep, ep), ep);
    CHECK_OK(nix_drv_read(ch.catop, &catop, ep), ep);

    /* ---- input-addressed: dep, then top with dep's output folded into its srcs */
    CHECK_OK(step(m, local, ch.iadep, iadep, NULL, &r, &outs_iadep, ep), ep);
    CHECK(store_machine_master_alive(m) || strcmp(host, "localhost") == 0);
    store_build_result_free(r);
    r = NULL;
    host_gc(host); /* dep's output leaves the builder: the next step copies it again */
    CHECK(!host_has(host, outs_iadep.v[0]));
    {
        NixInputPath in = {.drv_path = ch.iadep, .output = "out", .path = outs_iadep.v[0]};
        CHECK_OK(nix_drv_resolve_force(cache, iatop, &in, 1, &basic, ep), ep);
    }
    CHECK_OK(step(m, local, ch.iatop, basic, host, &r, &outs_iatop, ep), ep);
    CHECK_STR(outs_iatop.v[0], iatop->outputs[0].path);
    store_build_result_free(r);
    r = NULL;
    nix_drv_free(basic);
    basic = NULL;
    /* the step's session is closed: its input and output go with the next GC */
    host_gc(host);
    CHECK_MSG(!host_has(host, outs_iadep.v[0]), "input survived the session");
    CHECK_MSG(!host_has(host, outs_iatop.v[0]), "output survived the session");
    /* realisations of both, as Nix registers them with ca-derivations on */
    CHECK_OK(nix_drv_realisation_ids(cache, iadep, &ids, ep), ep);
    CHECK_OK(register_json(local, ids[0], outs_iadep.v[0], "", ep), ep);
    free(ids[0]);
    free(ids);
    CHECK_OK(nix_drv_realisation_ids(cache, iatop, &ids, ep), ep);
    CHECK_OK(register_json(local, ids[0], outs_iatop.v[0], "", ep), ep);
    free(ids[0]);
    free(ids);

    /* ---- floating CA: dep as it is, top resolved first */
    CHECK_OK(step(m, local, ch.cadep, cadep, NULL, &r, &outs_cadep, ep), ep);
    CHECK_OK(nix_drv_realisation_ids(cache, cadep, &ids, ep), ep);
    CHECK_INT(r->n_outputs, 1);
    CHECK_STR(r->outputs[0].id, ids[0]); /* no resolution: the builder's id is the drv's */
    CHECK_OK(store_register_drv_output(local, r->outputs[0].json, ep), ep);
    {
        char *cadep_id = ids[0];
        char *deps;
        StorePathInfo *pi = NULL;
        NixInputPath in = {.drv_path = ch.cadep, .output = "out", .path = outs_cadep.v[0]};
        free(ids);
        store_build_result_free(r);
        r = NULL;
        CHECK_OK(nix_drv_resolve(cache, catop, &in, 1, &resolved, ep), ep);
        resolved_path = nix_drv_store_path(resolved, "ca-top");
        /* write the resolved .drv locally: text path with srcs as references */
        {
            Buf t;
            buf_init(&t, LIMIT_DRV_FILE_SIZE);
            CHECK_OK(nix_drv_print(resolved, &t), ep);
            CHECK_OK(store_add_text_to_store(local, "ca-top.drv", (const char *)t.p, t.len,
                                             (const char *const *)resolved->srcs, resolved->n_srcs,
                                             &added, ep),
                     ep);
            buf_dispose(&t);
        }
        CHECK_STR(added, resolved_path);
        /* the builder keeps cadep's output (built there in the last step): copied inputs
         * that are already present get a temp root for this step */
        CHECK(host_has(host, outs_cadep.v[0]));
        CHECK_OK(step(m, local, resolved_path, resolved, host, &r, &outs_catop, ep), ep);
        CHECK_OK(nix_drv_realisation_ids(cache, resolved, &ids, ep), ep);
        CHECK_STR(r->outputs[0].id, ids[0]);
        CHECK_OK(store_register_drv_output(local, r->outputs[0].json, ep), ep);
        free(ids[0]);
        free(ids);
        /* the original: dependent realisations = inputs its output refers to */
        CHECK_OK(store_query_path_info(local, outs_catop.v[0], &pi, ep), ep);
        deps = strvec_contains(&pi->references, outs_cadep.v[0])
                   ? xasprintf("\"%s\":\"%s\"", cadep_id, nix_store_path_base(outs_cadep.v[0]))
                   : xstrdup("");
        CHECK(deps[0]); /* ca-top's output names ca-dep's */
        CHECK_OK(nix_drv_realisation_ids(cache, catop, &ids, ep), ep);
        CHECK_OK(register_json(local, ids[0], outs_catop.v[0], deps, ep), ep);
        free(ids[0]);
        free(ids);
        free(deps);
        free(cadep_id);
        store_path_info_free(pi);
    }
    host_gc(host);
    CHECK(!host_has(host, outs_cadep.v[0]));
    CHECK(!host_has(host, outs_catop.v[0]));

    /* ---- against the oracle */
    {
        const char *drvs[4] = {ch.iadep, ch.iatop, ch.cadep, ch.catop};
        StrVec *outs[4] = {&outs_iadep, &outs_iatop, &outs_cadep, &outs_catop};
        for (int i = 0; i < 4; i++) {
            char *theirs = oracle(&ch, drvs[i]);
            char *ours = st_sh("nix path-info --json %s", outs[i]->v[0]);
            char *ok = st_sh("nix-store --verify-path %s && echo ok", outs[i]->v[0]);
            CHECK_MSG(theirs && ours, "no path info for %s", drvs[i]);
            CHECK_STR(ok, "ok");
            CHECK_MSG(same_path_info(ours, theirs, &e) == 0, "%s: %s", drvs[i], e.msg);
            free(theirs);
            free(ours);
            free(ok);
        }
        for (int i = 0; i < 4; i++) {
            char *theirs = oracle_realisations(&ch, drvs[i]);
            char *ours = st_sh("nix realisation info --json %s 2>/dev/null", drvs[i]);
            CHECK_MSG(theirs && ours && strcmp(theirs, ours) == 0,
                      "realisations of %s differ:\n  ours:   %s\n  oracle: %s", drvs[i],
                      ours ? ours : "?", theirs ? theirs : "?");
            free(theirs);
            free(ours);
        }
    }
    store_build_result_free(r);
    store_close(local);
    store_machine_free(m);
    nix_drv_free(iadep);
    nix_drv_free(iatop);
    nix_drv_free(cadep);
    nix_drv_free(catop);
    nix_drv_free(resolved);
    nix_hash_cache_free(cache);
    free(resolved_path);
    free(added);
    free(key);
    free(hk);
    free(q);
    strvec_dispose(&outs_iadep);
    strvec_dispose(&outs_iatop);
    strvec_dispose(&outs_cadep);
    strvec_dispose(&outs_catop);
    chain_dispose(&ch);
}

TEST(store, remote, ssh_ng_ia_and_ca_chains)
{
    if (!have_machines())
        return;
    run_chain("ssh-ng://b1", "b1", "ng");
}

TEST(store, remote, ssh_serve_ia_and_ca_chains)
{
    if (!have_machines())
        return;
    run_chain("ssh://b2", "b2", "serve");
}

typedef struct Cutter {
    const char *what;
    int delay_ms;
} Cutter;

static void *cut_later(void *arg)
{
    Cutter *c = arg;
    usleep((useconds_t)c->delay_ms * 1000);
    free(st_sh("SLUICE_LAB=%s %s %s", lab(), test_data("../harness/machines.sh"), c->what));
    return NULL;
}

TEST(store, remote, master_restarts_and_keepalive_ends_cut_sessions)
{
    Err e, *ep = &e;
    StoreOpenOptions o;
    StoreMachine *m;
    StoreConn *s = NULL;
    char *key, *hk, *nonce, *script, *drv_path;
    NixDrv *d;
    StoreBuildOptions bo;
    StoreBuildResult *r = NULL;
    pthread_t th;
    Cutter cut = {.what = "cut 1", .delay_ms = 1000};
    uint64_t t0;
    int rc, valid;
    if (!have_machines())
        return;
    machine_opts(&o, &key, &hk);
    o.server_alive_interval = 1;
    o.server_alive_count_max = 2;
    m = store_machine_new("ssh-ng://b1", &o, NULL);
    CHECK_OK(store_machine_session(m, &s, ep), ep);
    CHECK(store_machine_master_alive(m));
    CHECK_OK(store_is_valid_path(s, "/nix/store/00000000000000000000000000000000-x", &valid, ep),
             ep);
    store_machine_release(m, s);
    /* the machine crashes: the master dies with it; the next session restarts it */
    free(st_sh("SLUICE_LAB=%s %s crash 1 && SLUICE_LAB=%s %s restart 1", lab(),
               test_data("../harness/machines.sh"), lab(), test_data("../harness/machines.sh")));
    for (int i = 0; i < 100 && store_machine_master_alive(m); i++)
        usleep(20000);
    CHECK(!store_machine_master_alive(m));
    CHECK_OK(store_machine_session(m, &s, ep), ep);
    CHECK(store_machine_master_alive(m));
    /* a silent build; the network is cut under it: keepalives end it in ~2-3 s */
    nonce = st_nonce();
    script = xasprintf("echo %s; /bin/sleep 60; echo %s > $out", nonce, nonce);
    d = st_ca_drv("silent", script);
    drv_path = nix_drv_store_path(d, "silent");
    memset(&bo, 0, sizeof bo);
    bo.max_silent_time = 600;
    pthread_create(&th, NULL, cut_later, &cut);
    t0 = util_now_ms();
    rc = store_build_derivation(s, drv_path, d, &bo, NULL, NULL, &r, &e);
    pthread_join(th, NULL);
    CHECK_MSG(rc == ERR_EOF, "rc %d: %s", rc, e.msg);
    CHECK_MSG(util_now_ms() - t0 < 8000, "noticed after %llu ms",
              (unsigned long long)(util_now_ms() - t0));
    store_machine_release(m, s);
    free(st_sh("SLUICE_LAB=%s %s uncut 1", lab(), test_data("../harness/machines.sh")));
    /* and it works again */
    CHECK_OK(store_machine_session(m, &s, ep), ep);
    CHECK_OK(store_is_valid_path(s, "/nix/store/00000000000000000000000000000000-x", &valid, ep),
             ep);
    store_machine_release(m, s);
    /* query sessions are pooled over the same master */
    {
        StoreConn *q1 = NULL, *q2 = NULL;
        CHECK_OK(store_machine_query_get(m, &q1, ep), ep);
        store_machine_query_put(m, q1);
        CHECK_OK(store_machine_query_get(m, &q2, ep), ep);
        CHECK(q1 == q2);
        store_machine_query_put(m, q2);
    }
    store_machine_free(m);
    nix_drv_free(d);
    free(drv_path);
    free(script);
    free(nonce);
    free(key);
    free(hk);
}

typedef struct Aborter {
    StoreConn *c;
    int delay_ms;
} Aborter;

static void *abort_later(void *arg)
{
    Aborter *a = arg;
    usleep((useconds_t)a->delay_ms * 1000);
    store_conn_abort(a->c);
    return NULL;
}

/* Cancelling a remote build: the call returns at once and the builder process on the
 * host goes away (the remote nix sees its stdin close). */
static void abort_remote_build(const char *uri, const char *host)
{
    Err e;
    StoreOpenOptions o;
    StoreMachine *m;
    StoreConn *s = NULL;
    char *key, *hk, *nonce = st_nonce(), *script, *drv_path, *cmd;
    NixDrv *d;
    StoreBuildResult *r = NULL;
    pthread_t th;
    Aborter a;
    uint64_t t0;
    int rc, gone = 0;
    machine_opts(&o, &key, &hk);
    m = store_machine_new(uri, &o, NULL);
    rc = store_machine_session(m, &s, &e);
    CHECK_MSG(rc == 0, "%s", e.msg);
    script = xasprintf("echo %s; /bin/sleep 60; echo %s > $out", nonce, nonce);
    d = st_ca_drv("cancelled", script);
    drv_path = nix_drv_store_path(d, "cancelled");
    a.c = s;
    a.delay_ms = 1500;
    pthread_create(&th, NULL, abort_later, &a);
    t0 = util_now_ms();
    rc = store_build_derivation(s, drv_path, d, NULL, NULL, NULL, &r, &e);
    pthread_join(th, NULL);
    CHECK_MSG(rc == ERR_CANCELLED, "rc %d: %s", rc, e.msg);
    CHECK(util_now_ms() - t0 < 3000);
    store_machine_release(m, s);
    cmd = xasprintf("pgrep -f \"[e]cho %s; /bin/sleep 60\" || true", nonce);
    for (int i = 0; i < 50 && !gone; i++) {
        char *q = on_host(host, cmd);
        gone = q && !q[0];
        free(q);
        if (!gone)
            usleep(100000);
    }
    CHECK_MSG(gone, "the builder still runs on %s", host);
    store_machine_free(m);
    nix_drv_free(d);
    free(cmd);
    free(drv_path);
    free(script);
    free(nonce);
    free(key);
    free(hk);
}

TEST(store, remote, abort_stops_the_remote_builder)
{
    if (!have_machines())
        return;
    abort_remote_build("ssh-ng://b1", "b1");
    abort_remote_build("ssh://b2", "b2");
}

/* Has pid exited and been reaped (by the machine's closer: the test never waits)? */
static int reaped(pid_t pid)
{
    return kill(pid, 0) < 0 && errno == ESRCH;
}

/* A released session ends off the step's path and still ends: the closer reaps its
 * process without any further call, and store_machine_free waits for a close still
 * pending.  Both protocols. */
TEST(store, remote, release_closes_sessions_off_the_step)
{
    static const char *const uris[] = {"ssh-ng://b1", "ssh://b2"};
    Err e, *ep = &e;
    StoreOpenOptions o;
    char *key, *hk;
    if (!have_machines())
        return;
    machine_opts(&o, &key, &hk);
    for (size_t u = 0; u < 2; u++) {
        StoreMachine *m = store_machine_new(uris[u], &o, NULL);
        StoreConn *s = NULL;
        pid_t pid;
        int valid, gone = 0;
        CHECK_OK(store_machine_session(m, &s, ep), ep);
        CHECK_OK(
            store_is_valid_path(s, "/nix/store/00000000000000000000000000000000-x", &valid, ep),
            ep);
        pid = s->pid;
        CHECK(pid > 0);
        store_machine_release(m, s);
        for (int i = 0; i < 200 && !gone; i++) {
            gone = reaped(pid);
            if (!gone)
                usleep(50000);
        }
        CHECK_MSG(gone, "%s: the released session's process %d was not reaped", uris[u], (int)pid);
        /* a close still pending when the machine goes: freed and reaped by then */
        CHECK_OK(store_machine_session(m, &s, ep), ep);
        pid = s->pid;
        store_machine_release(m, s);
        store_machine_free(m);
        CHECK_MSG(reaped(pid), "%s: process %d outlived store_machine_free", uris[u], (int)pid);
    }
    free(key);
    free(hk);
}

/* A step's session on m, used once (a validity query); the pid of its ssh process. */
static pid_t pass_on_session(StoreMachine *m, StoreConn **s, Err *e)
{
    int valid;
    if (store_machine_session(m, s, e) < 0)
        return -1;
    if (store_is_valid_path(*s, "/nix/store/00000000000000000000000000000000-x", &valid, e) < 0)
        return -1;
    return (*s)->pid;
}

static void pass_on_uri(const char *uri, const char *host, const char *peer)
{
    Err e, *ep = &e;
    StoreOpenOptions o;
    StoreMachine *m;
    StoreConn *s = NULL;
    char *key, *hk, *cmd, *killed;
    pid_t first, pid;
    int gone = 0, valid;
    machine_opts(&o, &key, &hk);
    m = store_machine_new(uri, &o, NULL);
    store_machine_set_session_steps(m, 3);
    first = pass_on_session(m, &s, ep);
    CHECK_MSG(first > 0, "%s: %s", uri, e.msg);
    for (int i = 1; i < 3; i++) { /* steps 2 and 3 on the first one */
        CHECK_OK(store_conn_sync_log(s, NULL, NULL, ep), ep);
        store_machine_pass_on(m, s);
        pid = pass_on_session(m, &s, ep);
        CHECK_MSG(pid == first, "%s: step %d: session %d, not the one passed on (%d)", uri, i + 1,
                  (int)pid, (int)first);
    }
    store_machine_pass_on(m, s); /* served 3: closed */
    pid = pass_on_session(m, &s, ep);
    CHECK_MSG(pid > 0 && pid != first, "%s: a session that served its 3 steps was kept (%d)", uri,
              (int)first);
    for (int i = 0; i < 200 && !gone; i++)
        if (!(gone = reaped(first)))
            usleep(50000);
    CHECK_MSG(gone, "%s: a session that served its 3 steps was not closed (%d)", uri, (int)first);
    store_machine_pass_on(m, s); /* nobody takes it */
    usleep(STORE_PASS_ON_MS * 1000);
    gone = 0;
    for (int i = 0; i < 100 && !gone; i++)
        if (!(gone = reaped(pid)))
            usleep(50000);
    CHECK_MSG(gone, "%s: a session passed on that no step took was not closed (%d)", uri, (int)pid);
    /* the builder's processes die while a session waits for the next step */
    first = pass_on_session(m, &s, ep);
    CHECK(first > 0);
    store_machine_pass_on(m, s);
    cmd = xasprintf("pkill -KILL -f \"%s\"; echo done", peer);
    killed = on_host(host, cmd);
    CHECK_STR(killed, "done");
    free(killed);
    free(cmd);
    usleep(200000);
    CHECK_OK(store_machine_session(m, &s, ep), ep);
    CHECK_MSG(s->pid != first, "%s: the session whose peer was killed was taken", uri);
    CHECK_OK(store_is_valid_path(s, "/nix/store/00000000000000000000000000000000-x", &valid, ep),
             ep);
    store_machine_release(m, s);
    store_machine_free(m);
    free(key);
    free(hk);
}

/* A session passed on serves the machine's next steps, up to its session steps; one
 * not taken within STORE_PASS_ON_MS is closed by the closer; one whose builder died
 * while it waited is found dead, closed, and replaced by a working session.  Both
 * protocols. */
TEST(store, remote, pass_on_serves_the_next_steps)
{
    if (!have_machines())
        return;
    pass_on_uri("ssh-ng://b1", "b1", "nix-daemon --[s]tdio");
    pass_on_uri("ssh://b2", "b2", "nix-store --[s]erve");
}
