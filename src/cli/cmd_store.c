/*
 * cmd_store.c: `sluice store ping URI` and `sluice store copy --from URI --to URI PATH...`.
 *
 *   store ping [--json] URI      the peer's protocol and Nix version, whether it trusts
 *                                us and whether ca-derivations is on (store_probe)
 *   store copy [--from URI] [--to URI] PATH...
 *                                copy the closures of PATHs (default URIs: the
 *                                configured local store, `store` key, else "local");
 *                                prints what was copied and sluice's peak RSS
 *
 * Both take `--ssh-key FILE`, `--host-key BASE64`, `--timeout MS` (I/O),
 * `--connect-timeout MS`, `--keepalive SECONDS` (ServerAliveInterval; 0 = default 15,
 * -1 = off).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "store/store.h"

typedef struct StoreArgs {
    StoreOpenOptions o;
    const char *from, *to;
    int json;
    StrVec rest;
} StoreArgs;

static int int_arg(const char *flag, const char *v, int *out)
{
    int64_t n;
    if (util_parse_i64(v, &n) < 0 || n < -1 || n > INT32_MAX) {
        cli_error("%s: not a number: '%s'", flag, v);
        return -1;
    }
    *out = (int)n;
    return 0;
}

/* Parse the flags shared by the store commands; positional arguments go to a->rest. */
static int parse_args(int argc, char **argv, int allow_copy, StoreArgs *a)
{
    memset(a, 0, sizeof *a);
    strvec_init(&a->rest);
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strcmp(f, "--json") == 0) {
            a->json = 1;
            takes = 0;
        } else if (f[0] != '-' || strcmp(f, "-") == 0) {
            strvec_push(&a->rest, f);
            takes = 0;
        } else if (!v) {
            cli_error("%s: flag %s needs a value", argv[0], f);
            return -1;
        } else if (strcmp(f, "--ssh-key") == 0) {
            a->o.ssh_key = v;
        } else if (strcmp(f, "--host-key") == 0) {
            a->o.host_key_b64 = v;
        } else if (strcmp(f, "--timeout") == 0) {
            if (int_arg(f, v, &a->o.io_timeout_ms) < 0)
                return -1;
        } else if (strcmp(f, "--connect-timeout") == 0) {
            if (int_arg(f, v, &a->o.connect_timeout_ms) < 0)
                return -1;
        } else if (strcmp(f, "--keepalive") == 0) {
            if (int_arg(f, v, &a->o.server_alive_interval) < 0)
                return -1;
        } else if (allow_copy && strcmp(f, "--from") == 0) {
            a->from = v;
        } else if (allow_copy && strcmp(f, "--to") == 0) {
            a->to = v;
        } else {
            cli_error("%s: unknown flag '%s'", argv[0], f);
            return -1;
        }
        if (takes)
            i++;
    }
    return 0;
}

static const char *tri(int v, const char *yes, const char *no)
{
    return v > 0 ? yes : v == 0 ? no : "unknown";
}

int cli_cmd_store_ping(CliConfig *cfg, int argc, char **argv)
{
    StoreArgs a;
    StoreProbe p;
    Err e;
    const char *uri;
    int rc = 2;
    if (parse_args(argc, argv, 0, &a) < 0)
        goto out;
    if (a.rest.n > 1) {
        cli_error("store ping: one URI expected");
        goto out;
    }
    uri = a.rest.n ? a.rest.v[0] : (cfg->store ? cfg->store : "local");
    err_clear(&e);
    if (store_probe(uri, &a.o, &p, &e) < 0) {
        rc = cli_fail(&e);
        goto out;
    }
    if (a.json) {
        printf(
            "{\"uri\":\"%s\",\"protocol\":\"%s\",\"version\":\"%u.%u\",\"peerVersion\":\"%u.%u\","
            "\"nixVersion\":%s%s%s,\"trusted\":%s,\"caDerivations\":%s}\n",
            uri, p.proto == STORE_PROTO_WORKER ? "worker" : "serve", p.version >> 8,
            p.version & 0xff, p.peer_version >> 8, p.peer_version & 0xff, p.nix_version ? "\"" : "",
            p.nix_version ? p.nix_version : "null", p.nix_version ? "\"" : "",
            p.trusted < 0 ? "null"
            : p.trusted   ? "true"
                          : "false",
            p.ca_derivations < 0 ? "null"
            : p.ca_derivations   ? "true"
                                 : "false");
    } else {
        printf("Store URL: %s\n", uri);
        printf("Protocol: %s %u.%u (peer %u.%u)\n",
               p.proto == STORE_PROTO_WORKER ? "worker" : "serve", p.version >> 8, p.version & 0xff,
               p.peer_version >> 8, p.peer_version & 0xff);
        printf("Nix version: %s\n", p.nix_version ? p.nix_version : "unknown");
        if (p.proto == STORE_PROTO_SERVE && p.trusted < 0)
            printf("Trusted: n/a (serve protocol: any ssh user may build)\n");
        else
            printf("Trusted: %s\n", tri(p.trusted, "yes", "no"));
        printf("ca-derivations: %s\n", tri(p.ca_derivations, "on", "off"));
    }
    store_probe_dispose(&p);
    rc = 0;
out:
    strvec_dispose(&a.rest);
    return rc;
}

int cli_cmd_store_copy(CliConfig *cfg, int argc, char **argv)
{
    StoreArgs a;
    StoreConn *from = NULL, *to = NULL;
    StoreCopyStats st;
    Err e;
    const char *dflt = cfg->store ? cfg->store : "local";
    int rc = 2;
    if (parse_args(argc, argv, 1, &a) < 0)
        goto out;
    if (a.rest.n == 0) {
        cli_error("store copy: no paths given (store copy --from URI --to URI PATH...)");
        goto out;
    }
    err_clear(&e);
    if (store_open(a.from ? a.from : dflt, &a.o, &from, &e) < 0 ||
        store_open(a.to ? a.to : dflt, &a.o, &to, &e) < 0 ||
        store_copy_closure(from, to, (const char *const *)a.rest.v, a.rest.n, &st, &e) < 0) {
        rc = cli_fail(&e);
        goto out;
    }
    {
        struct rusage ru;
        memset(&ru, 0, sizeof ru);
        getrusage(RUSAGE_SELF, &ru);
        printf("copied %zu of %zu paths (%llu bytes; peak RSS %ld KiB)\n", st.copied_paths,
               st.closure_paths, (unsigned long long)st.copied_bytes, ru.ru_maxrss);
    }
    rc = 0;
out:
    store_close(from);
    store_close(to);
    strvec_dispose(&a.rest);
    return rc;
}
