/*
 * gen-graph.c: benchmark helper, built by the bench/ scripts from the project's objects.
 *
 *   gen-graph gen --nodes N --salt S --root-dir DIR [--builds B] [--bootstrap K]
 *                 [--depth D] [--ca-percent P] [--leaves] [--sleepers M] [--db URL]
 *                 [--conns C] [--global-priority G] [--list FILE]
 *       Writes N derivations into the local store (AddTextToStore over C parallel
 *       `nix-daemon --stdio` sessions, one layer at a time) and, with --db, queues B
 *       builds for them.  Shape (nixpkgs-like): K "bootstrap" nodes in 5 stages, each
 *       stage built from the previous one; the other nodes in D-5 layers, each with
 *       2-8 inputs: 1-2 widely shared nodes of the last bootstrap stages, the rest from
 *       the one to three layers below.  P percent of the non-bootstrap nodes are
 *       floating content-addressed (their input-addressed dependents become deferred,
 *       as Nix makes them).  Builds: every node that nothing depends on, then random
 *       other nodes up to B.  --leaves: N independent nodes, each a build (runnable at
 *       once).  --sleepers M: M more builds (global priority 1000) whose builders sleep
 *       an hour, to keep every slot busy.  Builders are /bin/sh one-liners.
 *       The top-level drvs are rooted: text files in the store referring to them
 *       (2000 per file), each with an indirect root DIR/<salt>-<n> (DIR absolute;
 *       removing DIR unroots the graph).  --list writes the builds, one a line:
 *       "DRV<TAB>OUT-or-empty<TAB>GLOBAL-PRIORITY".  Defaults: K 300, D 30, P 10,
 *       B N/2, C 2.  Prints "nodes ca deferred builds drv_seconds db_seconds".
 *   gen-graph queue --db URL --list FILE [--first K] [--count N]
 *       Queues the builds of a list (5000 a transaction, then builds_added), as
 *       Hydra's evaluator does (project and jobset "bench").  Prints "builds seconds".
 *   gen-graph latency --db URL --salt S [--reps R]
 *       R times: write a fresh trivial drv, queue it (insert + builds_added), and time
 *       until the runner has its first BuildSteps row (polled every 0.5 ms); prints
 *       one line of milliseconds per repetition.  Waits for each build to finish.
 *   gen-graph first-step --db URL --t0-ms T [--timeout S]
 *       Polls until some BuildSteps row of type 0 exists and prints the milliseconds
 *       since T (CLOCK_REALTIME ms, taken by the caller when it started the runner).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"
#include "nix/nix.h"
#include "store/store.h"
#include "util/util.h"

typedef struct Node {
    char *path;   /* drv store path */
    uint32_t *in; /* input node indices */
    uint8_t n_in;
    uint8_t ca;       /* floating CA */
    uint8_t deferred; /* IA with a CA input somewhere below */
    uint8_t has_rdep;
    uint8_t is_build;
    uint8_t sleeper;
    char *out_path; /* NULL unless statically known */
} Node;

typedef struct Gen {
    uint32_t n, bootstrap, depth, ca_percent, builds, sleepers, conns;
    int leaves;
    int64_t global_priority;
    const char *salt, *db_url, *root_dir, *list;
    Node *nodes;
    uint32_t *layer_start; /* depth + 1 entries */
    uint64_t rng;
    NixHashCache *cache;
} Gen;

static uint64_t rnd(Gen *g)
{
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    return g->rng;
}

static uint32_t rnd_in(Gen *g, uint32_t lo, uint32_t hi) /* [lo, hi) */
{
    return hi > lo ? lo + (uint32_t)(rnd(g) % (hi - lo)) : lo;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void add_input(Node *nd, uint32_t k)
{
    for (uint32_t i = 0; i < nd->n_in; i++)
        if (nd->in[i] == k)
            return;
    nd->in[nd->n_in++] = k;
}

/* Layers and edges. */
static void shape(Gen *g)
{
    uint32_t body_layers, per;
    g->nodes = xcalloc(g->n + g->sleepers + 1, sizeof *g->nodes);
    if (g->leaves) {
        g->depth = 1;
        g->layer_start = xcalloc(3, sizeof *g->layer_start);
        g->layer_start[1] = g->n;
        return;
    }
    if (g->bootstrap < 5)
        g->bootstrap = 5;
    if (g->depth < 7)
        g->depth = 7;
    g->layer_start = xcalloc(g->depth + 2, sizeof *g->layer_start);
    for (uint32_t s = 0; s <= 5; s++)
        g->layer_start[s] = g->bootstrap * s / 5;
    body_layers = g->depth - 5;
    per = (g->n - g->bootstrap) / body_layers;
    for (uint32_t l = 6; l <= g->depth; l++)
        g->layer_start[l] = l == g->depth ? g->n : g->bootstrap + per * (l - 5);
    for (uint32_t l = 0; l < g->depth; l++) {
        for (uint32_t i = g->layer_start[l]; i < g->layer_start[l + 1]; i++) {
            Node *nd = &g->nodes[i];
            uint32_t want =
                l < 5 ? (l ? 2 + (uint32_t)(rnd(g) % 3) : 0) : 2 + (uint32_t)(rnd(g) % 7);
            nd->in = xcalloc(want + 1, sizeof *nd->in);
            if (l == 0)
                continue;
            if (l < 5) {
                /* a bootstrap stage: the previous stage (each of its nodes used) */
                uint32_t a = g->layer_start[l - 1], b = g->layer_start[l];
                add_input(nd, a + (i - g->layer_start[l]) % (b - a));
                while (nd->n_in < want && nd->n_in < b - a)
                    add_input(nd, rnd_in(g, a, b));
                continue;
            }
            nd->ca = (uint32_t)(rnd(g) % 100) < g->ca_percent;
            /* widely shared: the last two bootstrap stages */
            {
                uint32_t shared = 1 + (uint32_t)(rnd(g) % 2);
                for (uint32_t k = 0; k < shared && nd->n_in < want; k++)
                    add_input(nd, rnd_in(g, g->layer_start[3], g->layer_start[5]));
            }
            if (l == 5) {
                if (want > g->layer_start[5] - g->layer_start[3])
                    want = g->layer_start[5] - g->layer_start[3];
                while (nd->n_in < want)
                    add_input(nd, rnd_in(g, g->layer_start[3], g->layer_start[5]));
                continue;
            }
            {
                /* the layer below (each of its nodes used once), then up to 3 below */
                uint32_t a = g->layer_start[l - 1], b = g->layer_start[l];
                uint32_t lo = g->layer_start[l >= 8 ? l - 3 : 5];
                if (want > nd->n_in + (b - lo))
                    want = nd->n_in + (b - lo);
                add_input(nd, a + (i - g->layer_start[l]) % (b - a));
                while (nd->n_in < want) {
                    if (rnd(g) % 2)
                        add_input(nd, rnd_in(g, a, b));
                    else
                        add_input(nd, rnd_in(g, lo, b));
                }
            }
        }
    }
    for (uint32_t i = 0; i < g->n; i++)
        for (uint32_t k = 0; k < g->nodes[i].n_in; k++)
            g->nodes[g->nodes[i].in[k]].has_rdep = 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct Text {
    char *name; /* "<name>.drv" */
    char *text;
    size_t len;
    char **refs;
    size_t n_refs;
    char *expect; /* the path we computed */
} Text;

/* Fill the outputs of an input-addressed drv as Nix does (hash modulo with the outputs
 * masked); *out_path NULL when it is deferred (a floating CA input below it). */
static int fill_outputs(NixHashCache *c, NixDrv *d, char **out_path, Err *e)
{
    NixModulo m;
    char *p;
    int rc = nix_drv_hash_modulo(c, d, 1, &m, e);
    *out_path = NULL;
    if (rc < 0)
        return rc;
    if (!m.deferred) {
        p = nix_make_output_path(d->outputs[0].name, &m.hashes[0], d->name);
        free(d->outputs[0].path);
        d->outputs[0].path = xstrdup(p);
        for (size_t k = 0; k < d->n_env; k++)
            if (strcmp(d->env[k].key, "out") == 0) {
                free(d->env[k].value);
                d->env[k].value = xstrdup(p);
            }
        *out_path = p;
    }
    nix_modulo_dispose(&m);
    return 0;
}

/* ATerm of node i (outputs filled as Nix fills them), its refs and its path. */
static int make_text(Gen *g, uint32_t i, Text *t, Err *e)
{
    Node *nd = &g->nodes[i];
    Buf b;
    NixDrv *d = NULL;
    char name[64], ph[64];
    int rc;

    if (nd->sleeper)
        snprintf(name, sizeof name, "sleeper-%u", i - g->n);
    else
        snprintf(name, sizeof name, "g-%u", i);
    t->refs = xcalloc(nd->n_in + 1, sizeof *t->refs);
    for (uint32_t k = 0; k < nd->n_in; k++)
        t->refs[k] = g->nodes[nd->in[k]].path;
    t->n_refs = nd->n_in;
    qsort(t->refs, t->n_refs, sizeof *t->refs, cmp_str);

    buf_init(&b, LIMIT_BUF_DEFAULT);
    buf_printf(&b, "Derive([(\"out\",\"\",\"%s\",\"\")],[", nd->ca ? "r:sha256" : "");
    for (size_t k = 0; k < t->n_refs; k++)
        buf_printf(&b, "%s(\"%s\",[\"out\"])", k ? "," : "", t->refs[k]);
    buf_puts(&b, "],[],\"x86_64-linux\",\"/bin/sh\",[\"-c\",\"");
    if (nd->sleeper)
        buf_printf(&b, "/bin/sleep 3600; echo %s %s > $out", g->salt, name);
    else
        buf_printf(&b, "echo %s %s > $out", g->salt, name);
    buf_puts(&b, "\"],[");
    if (nd->ca)
        buf_puts(&b, "(\"__contentAddressed\",\"1\"),");
    nix_placeholder_own("out", ph);
    buf_printf(&b, "(\"builder\",\"/bin/sh\"),(\"name\",\"%s\"),(\"out\",\"%s\"),", name,
               nd->ca ? ph : "");
    if (nd->ca)
        buf_puts(&b, "(\"outputHashAlgo\",\"sha256\"),(\"outputHashMode\",\"recursive\"),");
    buf_puts(&b, "(\"system\",\"x86_64-linux\")])");
    rc = buf_status(&b);
    if (rc < 0)
        goto out;
    rc = nix_drv_parse(b.p, b.len, &d, e);
    if (rc < 0)
        goto out;
    d->name = xstrdup(name);
    if (!nd->ca) {
        rc = fill_outputs(g->cache, d, &nd->out_path, e);
        if (rc < 0)
            goto out;
        nd->deferred = nd->out_path == NULL;
    }
    buf_reset(&b);
    rc = nix_drv_print(d, &b);
    if (rc < 0)
        goto out;
    t->expect = nix_drv_store_path(d, name);
    rc = nix_hash_cache_add(g->cache, t->expect, d, e);
    if (rc < 0)
        goto out;
    t->name = xasprintf("%s.drv", name);
    t->len = b.len;
    t->text = buf_take(&b, NULL);
    nd->path = xstrdup(t->expect);
out:
    nix_drv_free(d);
    buf_dispose(&b);
    return rc;
}

typedef struct Writer {
    Text *t;
    size_t n;
    StoreConn *c;
    Err e;
    int rc;
} Writer;

static void *writer_main(void *arg)
{
    Writer *w = arg;
    for (size_t i = 0; i < w->n && w->rc == 0; i++) {
        char *got = NULL;
        Text *t = &w->t[i];
        w->rc = store_add_text_to_store(w->c, t->name, t->text, t->len,
                                        (const char *const *)t->refs, t->n_refs, &got, &w->e);
        if (w->rc == 0 && strcmp(got, t->expect) != 0)
            w->rc = err_set(&w->e, ERR_MALFORMED, "AddTextToStore gave %s, expected %s", got,
                            t->expect);
        free(got);
    }
    return NULL;
}

static void text_dispose(Text *t)
{
    free(t->name);
    free(t->text);
    free(t->refs); /* borrowed strings */
    free(t->expect);
}

/* Write texts [0, n) over the sessions in parallel. */
static int write_texts(StoreConn **conns, uint32_t nc, Text *t, size_t n, Err *e)
{
    pthread_t th[16];
    Writer w[16];
    size_t per = (n + nc - 1) / nc, at = 0;
    int rc = 0;
    memset(w, 0, sizeof w);
    for (uint32_t k = 0; k < nc; k++) {
        w[k].t = t + at;
        w[k].n = at < n ? (n - at < per ? n - at : per) : 0;
        w[k].c = conns[k];
        at += w[k].n;
        pthread_create(&th[k], NULL, writer_main, &w[k]);
    }
    for (uint32_t k = 0; k < nc; k++) {
        pthread_join(th[k], NULL);
        if (w[k].rc < 0 && rc == 0) {
            rc = w[k].rc;
            *e = w[k].e;
        }
    }
    return rc;
}

/* A store text referring to the given paths, rooted by DIR/<salt>-<k>. */
static int root_paths(Gen *g, StoreConn *c, char **paths, size_t n, uint32_t k, Err *e)
{
    Buf b;
    char *name = xasprintf("bench-roots-%u", k), *got = NULL, *link = NULL;
    int rc;
    qsort(paths, n, sizeof *paths, cmp_str);
    buf_init(&b, LIMIT_BUF_DEFAULT);
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "%s\n", paths[i]);
    rc = store_add_text_to_store(c, name, (const char *)b.p, b.len, (const char *const *)paths, n,
                                 &got, e);
    if (rc < 0)
        goto out;
    link = xasprintf("%s/%s-%u", g->root_dir, g->salt, k);
    unlink(link);
    if (symlink(got, link) != 0) {
        rc = err_sys(e, ERR_IO, "symlink %s", link);
        goto out;
    }
    rc = store_add_indirect_root(c, link, e);
out:
    buf_dispose(&b);
    free(name);
    free(got);
    free(link);
    return rc;
}

typedef struct Queue {
    Gen *g;
    uint32_t from, to; /* node range */
    int64_t jobset;
    int64_t lowest;
} Queue;

static int ensure_jobset(Db *db, const char *jobset, int64_t *id, Err *e)
{
    int rc = db_exec(db,
                     "INSERT INTO Users (userName, emailAddress, password) VALUES ('sluice', '', "
                     "'!') ON CONFLICT DO NOTHING",
                     NULL, 0, e);
    if (rc >= 0)
        rc = db_exec(db,
                     "INSERT INTO Projects (name, displayName, description, owner) VALUES "
                     "('bench', 'bench', 'benchmark builds', 'sluice') ON CONFLICT DO NOTHING",
                     NULL, 0, e);
    if (rc >= 0)
        rc = db_exec(db,
                     "INSERT INTO Jobsets (name, project, description, nixExprInput, "
                     "nixExprPath, enabled, emailOverride) VALUES ($1, 'bench', 'benchmark', "
                     "'bench', '', 0, '') ON CONFLICT DO NOTHING",
                     DB_ARGS(DB_P_TEXT(jobset)), e);
    if (rc < 0)
        return rc;
    rc = db_query_int64(db, "SELECT id FROM Jobsets WHERE project = 'bench' AND name = $1",
                        DB_ARGS(DB_P_TEXT(jobset)), id, e);
    if (rc == 0)
        rc = err_set(e, ERR_DB, "jobset bench:%s missing", jobset);
    return rc < 0 ? rc : 0;
}

static int insert_build(Db *db, Gen *g, uint32_t i, int64_t jobset, int64_t *id, Err *e)
{
    Node *nd = &g->nodes[i];
    char job[64];
    int64_t now = util_time_now();
    int rc;
    const char *nm = nix_store_path_name(nd->path);
    size_t nl = strlen(nm) - 4; /* minus .drv */
    char *nix_name = xstrndup(nm, nl);
    snprintf(job, sizeof job, "%s", nix_name);
    rc = db_query_int64(
        db,
        "INSERT INTO Builds (finished, timestamp, jobset_id, job, nixName, drvPath, system, "
        "isChannel, isCurrent, priority, globalPriority, keep) VALUES (0, $1, $2, $3, $3, $4, "
        "'x86_64-linux', 0, 1, 100, $5, 0) RETURNING id",
        DB_ARGS(DB_P_INT(now), DB_P_INT(jobset), DB_P_TEXT(job), DB_P_TEXT(nd->path),
                DB_P_INT(nd->sleeper ? 1000 : g->global_priority)),
        id, e);
    if (rc == 0)
        rc = err_set(e, ERR_DB, "INSERT INTO Builds returned no id");
    if (rc >= 0)
        rc = db_exec(db, "INSERT INTO BuildOutputs (build, name, path) VALUES ($1, 'out', $2)",
                     DB_ARGS(DB_P_INT(*id), DB_P_TEXT(nd->out_path)), e);
    free(nix_name);
    return rc < 0 ? rc : 0;
}

static int queue_tx(Db *db, void *payload, Err *e)
{
    Queue *q = payload;
    for (uint32_t i = q->from; i < q->to; i++) {
        int64_t id;
        int rc;
        if (!q->g->nodes[i].is_build)
            continue;
        rc = insert_build(db, q->g, i, q->jobset, &id, e);
        if (rc < 0)
            return rc;
        if (!q->lowest || id < q->lowest)
            q->lowest = id;
    }
    return 0;
}

static int notify_tx(Db *db, void *payload, Err *e)
{
    char t[32];
    snprintf(t, sizeof t, "%" PRId64, *(int64_t *)payload);
    return db_notify(db, DB_CH_BUILDS_ADDED, t, e);
}

static void pick_builds(Gen *g)
{
    uint32_t have = 0, total = g->n + g->sleepers;
    for (uint32_t i = 0; i < g->n; i++)
        if (!g->nodes[i].has_rdep) {
            g->nodes[i].is_build = 1;
            have++;
        }
    for (uint32_t tries = 0; have < g->builds && tries < 20 * g->n; tries++) {
        uint32_t i = rnd_in(g, g->leaves ? 0 : g->bootstrap, g->n);
        if (!g->nodes[i].is_build) {
            g->nodes[i].is_build = 1;
            have++;
        }
    }
    for (uint32_t i = g->n; i < total; i++)
        g->nodes[i].is_build = 1;
}

static int parse_u32(const char *s, uint32_t *out)
{
    int64_t v;
    if (util_parse_i64(s, &v) < 0 || v < 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int cmd_gen(int argc, char **argv)
{
    Gen g;
    Err e = {0};
    StoreConn *conns[16] = {0};
    Db *db = NULL;
    int rc = 0;
    double t0, t1, t2;
    uint32_t n_ca = 0, n_def = 0, n_builds = 0, total;
    memset(&g, 0, sizeof g);
    g.bootstrap = 300;
    g.depth = 30;
    g.ca_percent = 10;
    g.conns = 2;
    g.root_dir = "/tmp";
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp(a, "--leaves") == 0) {
            g.leaves = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "gen-graph: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--nodes") == 0)
            bad = parse_u32(v, &g.n);
        else if (strcmp(a, "--builds") == 0)
            bad = parse_u32(v, &g.builds);
        else if (strcmp(a, "--bootstrap") == 0)
            bad = parse_u32(v, &g.bootstrap);
        else if (strcmp(a, "--depth") == 0)
            bad = parse_u32(v, &g.depth);
        else if (strcmp(a, "--ca-percent") == 0)
            bad = parse_u32(v, &g.ca_percent);
        else if (strcmp(a, "--sleepers") == 0)
            bad = parse_u32(v, &g.sleepers);
        else if (strcmp(a, "--conns") == 0)
            bad = parse_u32(v, &g.conns);
        else if (strcmp(a, "--global-priority") == 0)
            bad = util_parse_i64(v, &g.global_priority);
        else if (strcmp(a, "--salt") == 0)
            g.salt = v;
        else if (strcmp(a, "--db") == 0)
            g.db_url = v;
        else if (strcmp(a, "--root-dir") == 0)
            g.root_dir = v;
        else if (strcmp(a, "--list") == 0)
            g.list = v;
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "gen-graph: bad option %s %s\n", a, v);
            return 2;
        }
    }
    if (!g.n || !g.salt || g.conns < 1 || g.conns > 16) {
        fprintf(stderr, "gen-graph gen: --nodes and --salt are required (--conns 1..16)\n");
        return 2;
    }
    if (!g.builds)
        g.builds = g.leaves ? g.n : g.n / 2;
    if (g.root_dir[0] != '/') {
        fprintf(stderr, "gen-graph gen: --root-dir must be an absolute path\n");
        return 2;
    }
    g.rng = 0x9e3779b97f4a7c15ull;
    for (const char *s = g.salt; *s; s++)
        g.rng = (g.rng ^ (uint8_t)*s) * 0x100000001b3ull;
    if (!g.rng)
        g.rng = 1;
    g.cache = nix_hash_cache_new(NULL, NULL);
    shape(&g);
    total = g.n + g.sleepers;
    for (uint32_t i = g.n; i < total; i++) {
        g.nodes[i].sleeper = 1;
        g.nodes[i].in = xcalloc(1, sizeof *g.nodes[i].in);
    }
    pick_builds(&g);
    mkdir(g.root_dir, 0755);

    t0 = now_s();
    for (uint32_t k = 0; k < g.conns; k++) {
        rc = store_open("local", NULL, &conns[k], &e);
        if (rc < 0)
            goto out;
    }
    {
        /* one layer at a time (inputs of a layer are below it); sleepers last */
        uint32_t n_layers = g.depth + 1;
        for (uint32_t l = 0; l < n_layers; l++) {
            uint32_t a = l < g.depth ? g.layer_start[l] : g.n;
            uint32_t b = l < g.depth ? g.layer_start[l + 1] : total;
            Text *t;
            if (b <= a)
                continue;
            t = xcalloc(b - a, sizeof *t);
            for (uint32_t i = a; i < b && rc == 0; i++)
                rc = make_text(&g, i, &t[i - a], &e);
            if (rc == 0)
                rc = write_texts(conns, g.conns, t, b - a, &e);
            for (uint32_t i = a; i < b; i++)
                text_dispose(&t[i - a]);
            free(t);
            if (rc < 0)
                goto out;
            fprintf(stderr, "gen-graph: layer %u: %u drvs (%.1f s)\n", l, b - a, now_s() - t0);
        }
    }
    {
        char **tops = xcalloc(total + 1, sizeof *tops);
        size_t nt = 0;
        uint32_t k = 0;
        for (uint32_t i = 0; i < total; i++) {
            if (!g.nodes[i].is_build)
                continue;
            n_builds++;
            tops[nt++] = g.nodes[i].path;
            if (nt == 2000 || i + 1 == total) {
                rc = root_paths(&g, conns[0], tops, nt, k++, &e);
                nt = 0;
                if (rc < 0)
                    break;
            }
        }
        if (rc == 0 && nt)
            rc = root_paths(&g, conns[0], tops, nt, k++, &e);
        free(tops);
        if (rc < 0)
            goto out;
    }
    t1 = now_s();
    if (g.list) {
        FILE *f = fopen(g.list, "w");
        if (!f) {
            rc = err_sys(&e, ERR_IO, "%s", g.list);
            goto out;
        }
        for (uint32_t i = g.n; i < total; i++)
            fprintf(f, "%s\t%s\t1000\n", g.nodes[i].path,
                    g.nodes[i].out_path ? g.nodes[i].out_path : "");
        for (uint32_t i = 0; i < g.n; i++)
            if (g.nodes[i].is_build)
                fprintf(f, "%s\t%s\t%" PRId64 "\n", g.nodes[i].path,
                        g.nodes[i].out_path ? g.nodes[i].out_path : "", g.global_priority);
        if (fclose(f) != 0) {
            rc = err_sys(&e, ERR_IO, "%s", g.list);
            goto out;
        }
    }
    if (g.db_url) {
        int64_t jobset = 0, lowest = 0;
        rc = db_open(g.db_url, DB_OPEN_DEFAULT, &db, &e);
        if (rc < 0)
            goto out;
        rc = ensure_jobset(db, "bench", &jobset, &e);
        if (rc < 0)
            goto out;
        /* sleepers first: their ids are lowest as well as their priority highest */
        for (uint32_t i = g.n; i < total && rc == 0; i++) {
            Queue q = {&g, i, i + 1, jobset, 0};
            rc = db_tx(db, queue_tx, &q, &e);
            if (!lowest || (q.lowest && q.lowest < lowest))
                lowest = q.lowest;
        }
        for (uint32_t a = 0; a < g.n && rc == 0; a += 5000) {
            Queue q = {&g, a, a + 5000 < g.n ? a + 5000 : g.n, jobset, 0};
            rc = db_tx(db, queue_tx, &q, &e);
            if (!lowest || (q.lowest && q.lowest < lowest))
                lowest = q.lowest;
        }
        if (rc == 0 && lowest)
            rc = db_tx(db, notify_tx, &lowest, &e);
        if (rc < 0)
            goto out;
    }
    t2 = now_s();
    for (uint32_t i = 0; i < g.n; i++) {
        n_ca += g.nodes[i].ca;
        n_def += g.nodes[i].deferred;
    }
    printf("%u\t%u\t%u\t%u\t%.2f\t%.2f\n", g.n, n_ca, n_def, n_builds, t1 - t0, t2 - t1);
out:
    if (rc < 0)
        fprintf(stderr, "gen-graph: %s\n", e.msg);
    for (uint32_t k = 0; k < 16; k++)
        store_close(conns[k]);
    db_close(db);
    for (uint32_t i = 0; g.nodes && i < total; i++) {
        free(g.nodes[i].path);
        free(g.nodes[i].in);
        free(g.nodes[i].out_path);
    }
    free(g.nodes);
    free(g.layer_start);
    nix_hash_cache_free(g.cache);
    return rc < 0 ? 1 : 0;
}

static const char *opt_value(int argc, char **argv, const char *name)
{
    for (int i = 2; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

/* Poll until `sql` (one int64, $1 = arg) is > 0; returns ms waited or -1 on timeout. */
static int64_t poll_until(Db *db, const char *sql, int64_t arg, int use_arg, int timeout_s,
                          int sleep_us, Err *e)
{
    uint64_t t0 = util_now_ms();
    for (;;) {
        int64_t v = 0;
        int rc = use_arg ? db_query_int64(db, sql, DB_ARGS(DB_P_INT(arg)), &v, e)
                         : db_query_int64(db, sql, NULL, 0, &v, e);
        if (rc < 0)
            return -2;
        if (v > 0)
            return (int64_t)(util_now_ms() - t0);
        if (util_now_ms() - t0 > (uint64_t)timeout_s * 1000)
            return -1;
        usleep((useconds_t)sleep_us);
    }
}

typedef struct OneBuild {
    const char *drv;
    int64_t jobset, id;
    uint64_t t_commit;
} OneBuild;

static int one_build_tx(Db *db, void *payload, Err *e)
{
    OneBuild *o = payload;
    char t[32];
    int rc = db_query_int64(
        db,
        "INSERT INTO Builds (finished, timestamp, jobset_id, job, nixName, drvPath, system, "
        "isChannel, isCurrent, priority, globalPriority, keep) VALUES (0, $1, $2, 'latency', "
        "'latency', $3, 'x86_64-linux', 0, 1, 100, 0, 0) RETURNING id",
        DB_ARGS(DB_P_INT(util_time_now()), DB_P_INT(o->jobset), DB_P_TEXT(o->drv)), &o->id, e);
    if (rc == 0)
        rc = err_set(e, ERR_DB, "no id");
    if (rc < 0)
        return rc;
    snprintf(t, sizeof t, "%" PRId64, o->id);
    return db_notify(db, DB_CH_BUILDS_ADDED, t, e);
}

static int cmd_latency(int argc, char **argv)
{
    const char *url = opt_value(argc, argv, "--db"), *salt = opt_value(argc, argv, "--salt");
    const char *reps_s = opt_value(argc, argv, "--reps");
    int64_t reps = 10, jobset = 0;
    Db *db = NULL;
    StoreConn *c = NULL;
    NixHashCache *cache = nix_hash_cache_new(NULL, NULL);
    Err e = {0};
    int rc;
    if (!url || !salt || (reps_s && util_parse_i64(reps_s, &reps) < 0)) {
        fprintf(stderr, "gen-graph latency --db URL --salt S [--reps R]\n");
        return 2;
    }
    rc = db_open(url, DB_OPEN_DEFAULT, &db, &e);
    if (rc == 0)
        rc = ensure_jobset(db, "latency", &jobset, &e);
    if (rc == 0)
        rc = store_open("local", NULL, &c, &e);
    for (int64_t k = 0; k < reps && rc == 0; k++) {
        char *text = NULL, *name = xasprintf("lat-%" PRId64, k), *path = NULL;
        Buf b;
        NixDrv *d = NULL;
        OneBuild o = {0};
        int64_t ms, done;
        buf_init(&b, LIMIT_BUF_DEFAULT);
        buf_printf(&b,
                   "Derive([(\"out\",\"\",\"\",\"\")],[],[],\"x86_64-linux\",\"/bin/sh\",[\"-c\","
                   "\"echo %s %s > $out\"],[(\"builder\",\"/bin/sh\"),(\"name\",\"%s\"),(\"out\","
                   "\"\"),(\"system\",\"x86_64-linux\")])",
                   salt, name, name);
        rc = nix_drv_parse(b.p, b.len, &d, &e);
        if (rc == 0) {
            char *op = NULL;
            d->name = xstrdup(name);
            rc = fill_outputs(cache, d, &op, &e);
            free(op);
        }
        if (rc == 0) {
            buf_reset(&b);
            rc = nix_drv_print(d, &b);
        }
        if (rc == 0) {
            text = xasprintf("%s.drv", name);
            rc = store_add_text_to_store(c, text, (const char *)b.p, b.len, NULL, 0, &path, &e);
        }
        if (rc == 0) {
            o.drv = path;
            o.jobset = jobset;
            rc = db_tx(db, one_build_tx, &o, &e);
        }
        if (rc == 0) {
            ms = poll_until(db, "SELECT count(*) FROM BuildSteps WHERE build = $1 AND type = 0",
                            o.id, 1, 30, 200, &e);
            done = poll_until(db, "SELECT count(*) FROM Builds WHERE id = $1 AND finished = 1",
                              o.id, 1, 60, 2000, &e);
            if (ms < 0 || done < 0)
                rc = err_set(&e, ERR_TIMEOUT, "build %" PRId64 " was not started/finished", o.id);
            else
                printf("%" PRId64 "\n", ms);
            fflush(stdout);
            usleep(300000);
        }
        nix_drv_free(d);
        buf_dispose(&b);
        free(text);
        free(name);
        free(path);
    }
    if (rc < 0)
        fprintf(stderr, "gen-graph latency: %s\n", e.msg);
    store_close(c);
    db_close(db);
    nix_hash_cache_free(cache);
    return rc < 0 ? 1 : 0;
}

static int cmd_first_step(int argc, char **argv)
{
    const char *url = opt_value(argc, argv, "--db"), *t0s = opt_value(argc, argv, "--t0-ms");
    const char *to_s = opt_value(argc, argv, "--timeout");
    int64_t t0 = 0, timeout = 120, v;
    Db *db = NULL;
    Err e = {0};
    int rc;
    if (!url || !t0s || util_parse_i64(t0s, &t0) < 0 ||
        (to_s && util_parse_i64(to_s, &timeout) < 0)) {
        fprintf(stderr, "gen-graph first-step --db URL --t0-ms T [--timeout S]\n");
        return 2;
    }
    /* the runner creates the schema of a new SQLite database: wait for it */
    for (int i = 0;; i++) {
        rc = db_open(url, DB_OPEN_NO_SCHEMA, &db, &e);
        if (rc == 0)
            break;
        if (i > 1000) {
            fprintf(stderr, "gen-graph first-step: %s\n", e.msg);
            return 1;
        }
        usleep(10000);
    }
    v = poll_until(db, "SELECT count(*) FROM BuildSteps WHERE type = 0", 0, 0, (int)timeout, 2000,
                   &e);
    db_close(db);
    if (v < 0) {
        fprintf(stderr, "gen-graph first-step: %s\n", v == -1 ? "timeout" : e.msg);
        return 1;
    }
    printf("%" PRId64 "\n", realtime_ms() - t0);
    return 0;
}

/* queue --db URL --list FILE: builds from a list written by gen --list */
typedef struct ListQueue {
    char **lines;
    size_t from, to;
    int64_t jobset, lowest;
} ListQueue;

static int list_tx(Db *db, void *payload, Err *e)
{
    ListQueue *q = payload;
    for (size_t i = q->from; i < q->to; i++) {
        char *f[3] = {q->lines[i], NULL, NULL};
        char *t1 = strchr(f[0], '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        int64_t id = 0, prio = 0, now = util_time_now();
        const char *nm;
        char *nix_name;
        int rc;
        if (!t1 || !t2)
            return err_set(e, ERR_MALFORMED, "bad list line %zu", i + 1);
        *t1 = 0;
        *t2 = 0;
        f[1] = t1 + 1;
        f[2] = t2 + 1;
        if (util_parse_i64(f[2], &prio) < 0)
            return err_set(e, ERR_MALFORMED, "bad priority on line %zu", i + 1);
        nm = nix_store_path_name(f[0]);
        nix_name = xstrndup(nm, strlen(nm) - 4);
        rc = db_query_int64(
            db,
            "INSERT INTO Builds (finished, timestamp, jobset_id, job, nixName, drvPath, system, "
            "isChannel, isCurrent, priority, globalPriority, keep) VALUES (0, $1, $2, $3, $3, $4, "
            "'x86_64-linux', 0, 1, 100, $5, 0) RETURNING id",
            DB_ARGS(DB_P_INT(now), DB_P_INT(q->jobset), DB_P_TEXT(nix_name), DB_P_TEXT(f[0]),
                    DB_P_INT(prio)),
            &id, e);
        free(nix_name);
        if (rc == 0)
            rc = err_set(e, ERR_DB, "INSERT INTO Builds returned no id");
        if (rc >= 0)
            rc = db_exec(db, "INSERT INTO BuildOutputs (build, name, path) VALUES ($1, 'out', $2)",
                         DB_ARGS(DB_P_INT(id), DB_P_TEXT(f[1][0] ? f[1] : NULL)), e);
        *t1 = '\t';
        *t2 = '\t';
        if (rc < 0)
            return rc;
        if (!q->lowest || id < q->lowest)
            q->lowest = id;
    }
    return 0;
}

static int cmd_queue(int argc, char **argv)
{
    const char *url = opt_value(argc, argv, "--db"), *list = opt_value(argc, argv, "--list");
    const char *first = opt_value(argc, argv, "--first"), *count = opt_value(argc, argv, "--count");
    int64_t from = 0, cnt = -1, jobset = 0, lowest = 0;
    Buf b;
    StrVec lines;
    Db *db = NULL;
    Err e = {0};
    int rc;
    double t0 = now_s();
    if (!url || !list || (first && util_parse_i64(first, &from) < 0) ||
        (count && util_parse_i64(count, &cnt) < 0)) {
        fprintf(stderr, "gen-graph queue --db URL --list FILE [--first K] [--count N]\n");
        return 2;
    }
    buf_init(&b, LIMIT_BUF_DEFAULT);
    strvec_init(&lines);
    rc = util_read_file(list, &b, &e);
    if (rc == 0) {
        char *p = (char *)b.p, *end = p + b.len;
        while (p < end) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl)
                nl = end;
            if (nl > p)
                strvec_push_take(&lines, xstrndup(p, (size_t)(nl - p)));
            p = nl + 1;
        }
    }
    if (rc == 0)
        rc = db_open(url, DB_OPEN_DEFAULT, &db, &e);
    if (rc == 0)
        rc = ensure_jobset(db, "bench", &jobset, &e);
    {
        size_t a = (size_t)from, z = cnt < 0 ? lines.n : (size_t)(from + cnt);
        if (z > lines.n)
            z = lines.n;
        for (size_t k = a; k < z && rc == 0; k += 5000) {
            ListQueue q = {lines.v, k, k + 5000 < z ? k + 5000 : z, jobset, 0};
            rc = db_tx(db, list_tx, &q, &e);
            if (!lowest || (q.lowest && q.lowest < lowest))
                lowest = q.lowest;
        }
        if (rc == 0 && lowest)
            rc = db_tx(db, notify_tx, &lowest, &e);
        if (rc == 0)
            printf("%zu\t%.2f\n", z > a ? z - a : 0, now_s() - t0);
    }
    if (rc < 0)
        fprintf(stderr, "gen-graph queue: %s\n", e.msg);
    db_close(db);
    strvec_dispose(&lines);
    buf_dispose(&b);
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "gen") == 0)
        return cmd_gen(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "queue") == 0)
        return cmd_queue(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "latency") == 0)
        return cmd_latency(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "first-step") == 0)
        return cmd_first_step(argc, argv);
    fprintf(stderr, "usage: gen-graph (gen|queue|latency|first-step) ...\n");
    return 2;
}
