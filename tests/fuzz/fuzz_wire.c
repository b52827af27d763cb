/*
 * fuzz_wire.c: libFuzzer target for the store's frame and message decoders: a tour of
 * every decoder of peer bytes (handshakes, the stderr loop with log messages and
 * errors, path infos of both protocols, build results, framed streams, unframed NARs,
 * path lists, output maps, realisations, pipelined replies).
 *
 * Byte 0 picks the decoder, byte 1 the protocol version variant; the rest is what
 * the peer "sent".  Each decoder runs over a memory session exactly as over a real
 * one: whatever the bytes, it must end with 0 or an error, never crash, hang,
 * over-allocate (limits.h) or leak.  Built by `make fuzz`; the corpus
 * tests/fuzz/corpus/wire/ is replayed by tests/store/fuzz_wire_replay.c, which
 * includes this file with STORE_FUZZ_NO_MAIN.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

static int sink_discard(void *payload, const uint8_t *data, size_t n, Err *e)
{
    (void)data;
    (void)e;
    *(uint64_t *)payload += n;
    return 0;
}

static void log_discard(void *payload, StoreLogKind kind, const char *text, size_t len)
{
    (void)kind;
    (void)text;
    *(uint64_t *)payload += len;
}

static const unsigned worker_versions[] = {0x122, 0x11c, 0x11a, 0x115};
static const unsigned serve_versions[] = {0x207, 0x206, 0x205};

/* Run the decoder picked by data[0] over data[2..n). */
void store_fuzz_wire_one(const uint8_t *data, size_t n);
void store_fuzz_wire_one(const uint8_t *data, size_t n)
{
    StoreConn *c;
    Err e;
    uint64_t count = 0;
    unsigned wv, sv;
    int which;
    if (n < 2)
        return;
    which = data[0] % 12;
    wv = worker_versions[data[1] % UTIL_ARRAY_LEN(worker_versions)];
    sv = serve_versions[data[1] % UTIL_ARRAY_LEN(serve_versions)];
    data += 2;
    n -= 2;
    err_clear(&e);
    switch (which) {
    case 0: /* worker handshake (the version we get decides the rest) */
        c = store__conn_mem(STORE_PROTO_WORKER, 0, data, n);
        (void)store__worker_handshake(c, &e);
        store_close(c);
        break;
    case 1:
        c = store__conn_mem(STORE_PROTO_SERVE, 0, data, n);
        (void)store__serve_handshake(c, &e);
        store_close(c);
        break;
    case 2: { /* stderr loop, then a path info */
        StorePathInfo *pi = xcalloc(1, sizeof *pi);
        c = store__conn_mem(STORE_PROTO_WORKER, wv, data, n);
        c->log_cb = log_discard;
        c->log_payload = &count;
        store__path_info_init(pi);
        if (store__worker_stderr(c, NULL, &e) == 0)
            (void)store__worker_read_path_info(c, pi, &e);
        store_path_info_free(pi);
        store_close(c);
        break;
    }
    case 3: { /* worker BuildResult after the stderr loop */
        StoreBuildResult *r = NULL;
        c = store__conn_mem(STORE_PROTO_WORKER, wv, data, n);
        c->log_cb = log_discard;
        c->log_payload = &count;
        if (store__worker_stderr(c, NULL, &e) == 0 &&
            store__read_build_result(&c->w, STORE_PROTO_WORKER, wv, &r, &e) == 0)
            store_build_result_free(r);
        store_close(c);
        break;
    }
    case 4: { /* serve BuildResult */
        StoreBuildResult *r = NULL;
        c = store__conn_mem(STORE_PROTO_SERVE, sv, data, n);
        if (store__read_build_result(&c->w, STORE_PROTO_SERVE, sv, &r, &e) == 0)
            store_build_result_free(r);
        store_close(c);
        break;
    }
    case 5: { /* serve QueryPathInfos reply */
        StorePathInfo **v = NULL;
        size_t nv = 0;
        c = store__conn_mem(STORE_PROTO_SERVE, sv, data, n);
        if (store__serve_read_path_infos(&c->w, sv, &v, &nv, &e) == 0) {
            for (size_t i = 0; i < nv; i++)
                store_path_info_free(v[i]);
            free(v);
        }
        store_close(c);
        break;
    }
    case 6: /* framed stream */
        c = store__conn_mem(STORE_PROTO_WORKER, wv, data, n);
        (void)store__wire_read_framed(&c->w, LIMIT_WIRE_FRAME, sink_discard, &count, NULL, &e);
        store_close(c);
        break;
    case 7: /* unframed NAR */
        c = store__conn_mem(STORE_PROTO_WORKER, wv, data, n);
        (void)store__wire_copy_nar(&c->w, sink_discard, &count, NULL, &e);
        store_close(c);
        break;
    case 8: { /* a list of store paths (QueryValidPaths) */
        StrVec sv2;
        strvec_init(&sv2);
        c = store__conn_mem(STORE_PROTO_WORKER, wv, data, n);
        if (store__worker_stderr(c, NULL, &e) == 0)
            (void)store__wire_paths(&c->w, &sv2, &e);
        strvec_dispose(&sv2);
        store_close(c);
        break;
    }
    case 9: { /* QueryDerivationOutputMap reply */
        static const char drv[] = NIX_STORE_DIR "/00000000000000000000000000000000-x.drv";
        StoreOutputMap *m = NULL;
        c = store__conn_mem(STORE_PROTO_WORKER, wv, data, n);
        if (store__worker_query_output_map(c, drv, &m, &e) == 0)
            store_output_map_free(m);
        store_close(c);
        break;
    }
    case 10: { /* QueryRealisation reply */
        char *path = NULL, *json = NULL;
        c = store__conn_mem(STORE_PROTO_WORKER, wv, data, n);
        (void)store__worker_query_realisation(c, "sha256:00!out", &path, &json, &e);
        free(path);
        free(json);
        store_close(c);
        break;
    }
    default: { /* pipelined QueryPathInfo replies for three paths */
        static const char *const paths[] = {
            NIX_STORE_DIR "/00000000000000000000000000000000-a",
            NIX_STORE_DIR "/11111111111111111111111111111111-b",
            NIX_STORE_DIR "/22222222222222222222222222222222-c",
        };
        StorePathInfo *out[3] = {NULL, NULL, NULL};
        c = store__conn_mem(STORE_PROTO_WORKER, wv, data, n);
        (void)store__worker_query_path_infos(c, paths, 3, out, &e);
        for (size_t i = 0; i < 3; i++)
            store_path_info_free(out[i]);
        store_close(c);
        break;
    }
    }
}

#ifndef STORE_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    store_fuzz_wire_one(data, size);
    return 0;
}
#endif
