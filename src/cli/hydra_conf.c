/*
 * hydra_conf.c: reading Hydra's hydra.conf (`--hydra-conf FILE`, or $HYDRA_CONFIG as
 * Hydra's own programs read it) into sluice settings.
 *
 * Lines are read as Hydra's queue runner reads them: `key = value`, `#` starts a
 * comment anywhere, lines without `=` (such as `<section>` lines) are skipped, the
 * last occurrence of a key wins.  Each key Hydra's runner reads becomes the sluice
 * setting with the same meaning, or a warning saying that sluice ignores it and why;
 * keys of Hydra's other programs (hydra-server, hydra-notify, the evaluator) are not
 * the runner's business and are passed over quietly.  The caller gives the result the
 * lowest precedence: sluice.conf, the environment and flags override it.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef enum {
    HK_SAME,     /* the value as it is */
    HK_BYTES,    /* a byte count (an integer) */
    HK_SECONDS,  /* seconds (an integer) */
    HK_STORE,    /* store_uri: a file:// or http(s):// binary cache becomes store-uri; the local
                    store (auto, daemon, local) is the one sluice uses anyway; others are
                    ignored */
    HK_BOOL,     /* a Boolean as Hydra reads it (1 or true), as true or false */
    HK_OFF_ONLY, /* a Boolean: false is what sluice does; true is ignored with a warning */
    HK_IGNORED,  /* read by Hydra's runner, not by sluice: a warning */
} HydraKeyKind;

typedef struct HydraKey {
    const char *hydra;  /* key in hydra.conf */
    const char *sluice; /* sluice's key, or NULL */
    HydraKeyKind kind;
    const char *why; /* for HK_OFF_ONLY, HK_IGNORED and HK_STORE: why sluice ignores it */
} HydraKey;

/* clang-format off */
static const HydraKey hydra_keys[] = {
    {"max_output_size", "max-output-size", HK_BYTES, NULL},
    {"max_log_size", "max-log-size", HK_BYTES, NULL},
    {"max_unsupported_time", "max-unsupported-time", HK_SECONDS, NULL},
    {"gc_roots_dir", "gc-roots-dir", HK_SAME, NULL},
    {"queue_runner_metrics_address", "http", HK_SAME, NULL},
    {"store_uri", "store-uri", HK_STORE,
     "sluice publishes to file:// and http(s):// binary caches only"},
    {"use-substitutes", NULL, HK_OFF_ONLY, "sluice does not substitute inputs"},
    {"upload_logs_to_binary_cache", "upload-logs-to-binary-cache", HK_BOOL, NULL},
    {"store_mode", NULL, HK_IGNORED, "binary-cache settings are not used by sluice"},
    {"binary_cache_dir", NULL, HK_IGNORED, "binary-cache settings are not used by sluice"},
    {"binary_cache_s3_bucket", NULL, HK_IGNORED, "binary-cache settings are not used by sluice"},
    {"binary_cache_secret_key_file", NULL, HK_IGNORED,
     "binary-cache settings are not used by sluice"},
    {"max_db_connections", NULL, HK_IGNORED, "sluice uses a few database connections of its own"},
    {"max_local_worker_threads", NULL, HK_IGNORED,
     "sluice's local slots are max-jobs (default: the number of cores)"},
    {"xxx-jobset-repeats", "jobset-repeats", HK_SAME, NULL},
};
/* clang-format on */

void cli_hydra_conf_init(CliHydraConf *h)
{
    strvec_init(&h->keys);
    strvec_init(&h->values);
    strvec_init(&h->warnings);
}

void cli_hydra_conf_dispose(CliHydraConf *h)
{
    if (!h)
        return;
    strvec_dispose(&h->keys);
    strvec_dispose(&h->values);
    strvec_dispose(&h->warnings);
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

static const HydraKey *find_key(const char *k)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(hydra_keys); i++)
        if (strcmp(hydra_keys[i].hydra, k) == 0)
            return &hydra_keys[i];
    return NULL;
}

/* Hydra's runner takes "true" or "1" as true, anything else as false. */
static int hydra_true(const char *v)
{
    return strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
}

static void set(CliHydraConf *h, const char *key, const char *value)
{
    for (size_t i = 0; i < h->keys.n; i++)
        if (strcmp(h->keys.v[i], key) == 0) {
            free(h->values.v[i]);
            h->values.v[i] = xstrdup(value);
            return;
        }
    strvec_push(&h->keys, key);
    strvec_push(&h->values, value);
}

/* One key = value of the file (after the last occurrence won). */
static int take(CliHydraConf *h, const char *path, const char *k, const char *v, Err *e)
{
    const HydraKey *d = find_key(k);
    int64_t n;
    if (!d)
        return 0; /* another Hydra program's key */
    switch (d->kind) {
    case HK_BYTES:
    case HK_SECONDS:
        if (util_parse_i64(v, &n) < 0 || n < 0)
            return err_set(e, ERR_INVALID, "%s: %s = '%s' is not a %s", path, k, v,
                           d->kind == HK_BYTES ? "byte count" : "number of seconds");
        /* Hydra's runner reads 0 as "fail unsupported steps at once" */
        set(h, d->sluice, v);
        return 0;
    case HK_SAME:
        if (*v)
            set(h, d->sluice, v);
        return 0;
    case HK_STORE:
        if (util_starts_with(v, "file://") || util_starts_with(v, "http://") ||
            util_starts_with(v, "https://"))
            set(h, d->sluice, v);
        else if (*v && strcmp(v, "auto") != 0 && strcmp(v, "daemon") != 0 &&
                 strcmp(v, "local") != 0)
            strvec_push_take(&h->warnings,
                             xasprintf("%s: ignoring %s = %s: %s", path, k, v, d->why));
        return 0;
    case HK_BOOL: set(h, d->sluice, hydra_true(v) ? "true" : "false"); return 0;
    case HK_OFF_ONLY:
        if (hydra_true(v))
            strvec_push_take(&h->warnings,
                             xasprintf("%s: ignoring %s = %s: %s", path, k, v, d->why));
        return 0;
    case HK_IGNORED:
        strvec_push_take(&h->warnings, xasprintf("%s: ignoring %s: %s", path, k, d->why));
        return 0;
    }
    return 0;
}

int cli_hydra_conf_parse(CliHydraConf *h, const char *path, char *text, Err *e)
{
    StrVec ks, vs;
    char *line, *next;
    int rc = 0;
    strvec_init(&ks);
    strvec_init(&vs);
    for (line = text; line; line = next) {
        char *eq, *hash, *k;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if ((hash = strchr(line, '#')))
            *hash = '\0';
        eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        k = trim(line);
        if (!*k)
            continue;
        /* the last occurrence wins, as in Hydra's runner */
        {
            size_t i = 0;
            for (; i < ks.n && strcmp(ks.v[i], k) != 0; i++)
                ;
            if (i < ks.n) {
                free(vs.v[i]);
                vs.v[i] = xstrdup(trim(eq + 1));
            } else {
                strvec_push(&ks, k);
                strvec_push(&vs, trim(eq + 1));
            }
        }
    }
    for (size_t i = 0; i < ks.n && rc == 0; i++)
        rc = take(h, path, ks.v[i], vs.v[i], e);
    strvec_dispose(&ks);
    strvec_dispose(&vs);
    return rc;
}

int cli_hydra_conf_read(CliHydraConf *h, const char *path, Err *e)
{
    Buf b;
    int rc;
    buf_init(&b, LIMIT_CONFIG_FILE);
    rc = util_read_file(path, &b, e);
    if (rc < 0) {
        err_prefix(e, "Hydra configuration %s", path);
        goto out;
    }
    rc = cli_hydra_conf_parse(h, path, (char *)buf_cstr(&b), e);
out:
    buf_dispose(&b);
    return rc;
}
