/*
 * cmd_graph.c: `sluice drv graph`, the derivation graph of a Nix expression or of
 * store derivations.
 *
 *   sluice drv graph [--edges] (FILE.nix [-A ATTR]... [--arg N E]... [--argstr N V]... | DRV...)
 *
 * A .nix file is instantiated by running nix-instantiate as a child process (posix_spawnp
 * with an argument vector: user data never passes through a shell).  Every derivation
 * reachable from the resulting top-level .drv paths is then read from the store
 * (nix_drv_read, which validates the path first) and classified (nix_drv_kind).
 *
 * Output (stdout):
 *   default   an indented tree from each top-level drv: "PATH (KIND)", inputs indented
 *             by two spaces in ATerm order; a drv whose inputs were already shown is
 *             printed once more as "PATH (KIND, see above)" without its subtree;
 *   --edges   "KIND PATH" per drv in dependency order (inputs first), then
 *             "PATH -> INPUT" per input edge;
 *   then one summary line:
 *             "N derivations: a IA, b fixed, c CA, d deferred; E edges"
 *             (", i impure" before ';' when there are impure drvs).
 * KIND is IA (input-addressed), fixed (fixed-output), CA (floating content-addressed),
 * deferred (input-addressed with a CA input: output paths known only after resolution)
 * or impure.  Exit status: 0, 1 on errors, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "nix/nix.h"

extern char **environ;

typedef struct GraphNode {
    char *path;  /* owned: the .drv store path */
    NixDrv *drv; /* owned; NULL until loaded */
    NixDrvKind kind;
    int expanded; /* printing: subtree already shown / post-order emitted */
} GraphNode;

typedef struct Graph {
    Map *by_path;      /* path -> GraphNode* (the map frees nodes) */
    GraphNode **nodes; /* every node in discovery order (borrowed from by_path) */
    size_t n, cap;
    size_t n_edges;
    StrVec roots; /* top-level drv paths, deduplicated, in the order given */
} Graph;

static void node_free(void *p)
{
    GraphNode *node = p;
    if (!node)
        return;
    nix_drv_free(node->drv);
    free(node->path);
    free(node);
}

static void graph_init(Graph *g)
{
    memset(g, 0, sizeof *g);
    g->by_path = map_new(node_free);
    strvec_init(&g->roots);
}

static void graph_dispose(Graph *g)
{
    map_free(g->by_path);
    free(g->nodes);
    strvec_dispose(&g->roots);
}

/* The node for path, created (not yet loaded) when new. */
static GraphNode *graph_node(Graph *g, const char *path)
{
    GraphNode *node = map_get(g->by_path, path);
    if (node)
        return node;
    node = xcalloc(1, sizeof *node);
    node->path = xstrdup(path);
    map_put(g->by_path, path, node);
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->nodes = xrealloc(g->nodes, g->cap * sizeof *g->nodes);
    }
    g->nodes[g->n++] = node;
    return node;
}

static void graph_add_root(Graph *g, const char *path)
{
    if (!strvec_contains(&g->roots, path))
        strvec_push(&g->roots, path);
    graph_node(g, path);
}

/* Read every node not yet loaded, discovering inputs as it goes (breadth first). */
static int graph_load(Graph *g, Err *e)
{
    int rc = 0;
    for (size_t i = 0; i < g->n; i++) {
        GraphNode *node = g->nodes[i];
        if (node->drv)
            continue;
        rc = nix_drv_read(node->path, &node->drv, e);
        if (rc < 0)
            goto out;
        rc = nix_drv_kind(node->drv, &node->kind, e);
        if (rc < 0) {
            err_prefix(e, "%s", node->path);
            goto out;
        }
        for (size_t j = 0; j < node->drv->n_inputs; j++) {
            /* graph_node may grow g->nodes: take nothing from it across the call */
            graph_node(g, node->drv->inputs[j].drv_path);
            g->n_edges++;
        }
    }
out:
    return rc;
}

static const char *kind_name(NixDrvKind k)
{
    switch (k) {
    case NIX_DRV_INPUT_ADDRESSED: return "IA";
    case NIX_DRV_FIXED: return "fixed";
    case NIX_DRV_FLOATING: return "CA";
    case NIX_DRV_DEFERRED: return "deferred";
    case NIX_DRV_IMPURE: return "impure";
    }
    return "?";
}

/* One frame of the explicit DFS stack (graphs can be deep; no recursion). */
typedef struct Frame {
    GraphNode *node;
    size_t next; /* index of the next input to visit */
} Frame;

typedef struct Stack {
    Frame *v;
    size_t n, cap;
} Stack;

static void stack_push(Stack *s, GraphNode *node)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n].node = node;
    s->v[s->n].next = 0;
    s->n++;
}

static void print_tree_line(FILE *f, size_t depth, const GraphNode *node, int seen)
{
    int shows_subtree = node->drv->n_inputs > 0;
    fprintf(f, "%*s%s (%s%s)\n", (int)(depth * 2), "", node->path, kind_name(node->kind),
            seen && shows_subtree ? ", see above" : "");
}

static void print_tree(Graph *g, FILE *f)
{
    Stack s = {0};
    for (size_t r = 0; r < g->roots.n; r++) {
        GraphNode *root = map_get(g->by_path, g->roots.v[r]);
        print_tree_line(f, 0, root, root->expanded);
        if (root->expanded)
            continue;
        root->expanded = 1;
        stack_push(&s, root);
        while (s.n > 0) {
            Frame *top = &s.v[s.n - 1];
            GraphNode *child;
            int seen;
            if (top->next >= top->node->drv->n_inputs) {
                s.n--;
                continue;
            }
            child = map_get(g->by_path, top->node->drv->inputs[top->next++].drv_path);
            seen = child->expanded;
            print_tree_line(f, s.n, child, seen);
            if (!seen) {
                child->expanded = 1;
                stack_push(&s, child);
            }
        }
    }
    free(s.v);
}

/* Post-order DFS: every drv after its inputs (a topological order). */
static void print_edges(Graph *g, FILE *f)
{
    Stack s = {0};
    GraphNode **order = xcalloc(g->n ? g->n : 1, sizeof *order);
    size_t n_order = 0;
    for (size_t r = 0; r < g->roots.n; r++) {
        GraphNode *root = map_get(g->by_path, g->roots.v[r]);
        if (root->expanded)
            continue;
        root->expanded = 1;
        stack_push(&s, root);
        while (s.n > 0) {
            Frame *top = &s.v[s.n - 1];
            GraphNode *child;
            if (top->next >= top->node->drv->n_inputs) {
                order[n_order++] = top->node;
                s.n--;
                continue;
            }
            child = map_get(g->by_path, top->node->drv->inputs[top->next++].drv_path);
            if (!child->expanded) {
                child->expanded = 1;
                stack_push(&s, child);
            }
        }
    }
    for (size_t i = 0; i < n_order; i++)
        fprintf(f, "%s %s\n", kind_name(order[i]->kind), order[i]->path);
    for (size_t i = 0; i < n_order; i++)
        for (size_t j = 0; j < order[i]->drv->n_inputs; j++)
            fprintf(f, "%s -> %s\n", order[i]->path, order[i]->drv->inputs[j].drv_path);
    free(order);
    free(s.v);
}

static void print_summary(const Graph *g, FILE *f)
{
    size_t count[NIX_DRV_IMPURE + 1] = {0};
    for (size_t i = 0; i < g->n; i++)
        count[g->nodes[i]->kind]++;
    fprintf(f, "%zu derivation%s: %zu IA, %zu fixed, %zu CA, %zu deferred", g->n,
            g->n == 1 ? "" : "s", count[NIX_DRV_INPUT_ADDRESSED], count[NIX_DRV_FIXED],
            count[NIX_DRV_FLOATING], count[NIX_DRV_DEFERRED]);
    if (count[NIX_DRV_IMPURE])
        fprintf(f, ", %zu impure", count[NIX_DRV_IMPURE]);
    fprintf(f, "; %zu edge%s\n", g->n_edges, g->n_edges == 1 ? "" : "s");
}

/* Check one drv path (from the command line or a tool) before anything reads it. */
static int check_drv_path(const char *path, Err *e)
{
    int rc = nix_store_path_check(path, e);
    if (rc < 0)
        return rc;
    if (!nix_store_path_is_drv(path))
        return err_set(e, ERR_INVALID, "'%s' is not a derivation (.drv)", path);
    return 0;
}

/* nix-instantiate the files; add every printed drv path as a root. */
static int instantiate(Graph *g, const StrVec *nix_args, const StrVec *files, Err *e)
{
    StrVec argv;
    Buf out;
    char *p, *end;
    int rc;

    strvec_init(&argv);
    buf_init(&out, LIMIT_TOOL_OUTPUT);
    strvec_push(&argv, "nix-instantiate");
    strvec_push(&argv, "--no-gc-warning");
    /* sluice handles CA derivations; instantiating them needs the feature */
    strvec_push(&argv, "--extra-experimental-features");
    strvec_push(&argv, "ca-derivations");
    for (size_t i = 0; i < nix_args->n; i++)
        strvec_push(&argv, nix_args->v[i]);
    for (size_t i = 0; i < files->n; i++) {
        /* a file name must not be taken for an option */
        if (files->v[i][0] == '-' && files->v[i][1] != '\0')
            strvec_push_take(&argv, xasprintf("./%s", files->v[i]));
        else
            strvec_push(&argv, files->v[i]);
    }
    strvec_push_take(&argv, NULL);

    rc = cli_run_capture(argv.v, &out, e);
    if (rc < 0)
        goto out;
    p = (char *)out.p;
    end = p + out.len;
    while (p && p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p)), *bang;
        if (nl)
            *nl = '\0';
        /* "-A x.out" prints "DRV!out" */
        bang = strchr(p, '!');
        if (bang)
            *bang = '\0';
        if (*p) {
            rc = check_drv_path(p, e);
            if (rc < 0) {
                err_prefix(e, "nix-instantiate printed an unexpected line");
                goto out;
            }
            graph_add_root(g, p);
        }
        p = nl ? nl + 1 : NULL;
    }
out:
    strvec_dispose(&argv);
    buf_dispose(&out);
    return rc;
}

/* A DRV argument: a store path, or a link to one (e.g. a root made by --add-root). */
static int add_drv_arg(Graph *g, const char *arg, Err *e)
{
    char *real = NULL;
    int rc;
    if (!util_starts_with(arg, NIX_STORE_DIR "/")) {
        real = realpath(arg, NULL);
        if (!real)
            return err_sys(e, ERR_NOTFOUND, "cannot resolve '%s'", arg);
        arg = real;
    }
    rc = check_drv_path(arg, e);
    if (rc == 0 && access(arg, F_OK) != 0)
        rc = err_sys(e, ERR_NOTFOUND, "'%s' is not in the store", arg);
    if (rc == 0)
        graph_add_root(g, arg);
    free(real);
    return rc;
}

static int usage_error(const char *msg, const char *arg)
{
    cli_error("drv graph: %s%s%s", msg, arg ? " " : "", arg ? arg : "");
    cli_error("usage: sluice drv graph [--edges] (FILE.nix [-A ATTR]... [--arg NAME EXPR]... "
              "[--argstr NAME VALUE]... [-I PATH]... | DRV...)");
    return 2;
}

int cli_cmd_drv_graph(CliConfig *cfg, int argc, char **argv)
{
    Graph g;
    StrVec nix_args, files, drvs;
    Err e = {0};
    int rc = 0, edges = 0, options_done = 0;

    (void)cfg;
    graph_init(&g);
    strvec_init(&nix_args);
    strvec_init(&files);
    strvec_init(&drvs);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = 1;
        } else if (!options_done && strcmp(a, "--edges") == 0) {
            edges = 1;
        } else if (!options_done &&
                   (strcmp(a, "-A") == 0 || strcmp(a, "--attr") == 0 || strcmp(a, "-I") == 0)) {
            if (i + 1 >= argc) {
                rc = usage_error("missing value after", a);
                goto out;
            }
            strvec_push(&nix_args, a);
            strvec_push(&nix_args, argv[++i]);
        } else if (!options_done && (strcmp(a, "--arg") == 0 || strcmp(a, "--argstr") == 0)) {
            if (i + 2 >= argc) {
                rc = usage_error("missing NAME and VALUE after", a);
                goto out;
            }
            strvec_push(&nix_args, a);
            strvec_push(&nix_args, argv[++i]);
            strvec_push(&nix_args, argv[++i]);
        } else if (!options_done && a[0] == '-' && a[1] != '\0') {
            rc = usage_error("unknown option", a);
            goto out;
        } else if (util_ends_with(a, ".drv")) {
            strvec_push(&drvs, a);
        } else {
            strvec_push(&files, a);
        }
    }
    if (files.n == 0 && drvs.n == 0) {
        rc = usage_error("nothing to show: give a .nix file or .drv paths", NULL);
        goto out;
    }
    if (files.n == 0 && nix_args.n > 0) {
        rc = usage_error("-A, -I, --arg and --argstr need a .nix file", NULL);
        goto out;
    }

    if (files.n > 0 && instantiate(&g, &nix_args, &files, &e) < 0) {
        rc = cli_fail(&e);
        goto out;
    }
    for (size_t i = 0; i < drvs.n; i++) {
        if (add_drv_arg(&g, drvs.v[i], &e) < 0) {
            rc = cli_fail(&e);
            goto out;
        }
    }
    if (graph_load(&g, &e) < 0) {
        rc = cli_fail(&e);
        goto out;
    }
    if (edges)
        print_edges(&g, stdout);
    else
        print_tree(&g, stdout);
    print_summary(&g, stdout);
    if (fflush(stdout) != 0) {
        cli_error("drv graph: writing the output: %s", strerror(errno));
        rc = 1;
    }
out:
    strvec_dispose(&nix_args);
    strvec_dispose(&files);
    strvec_dispose(&drvs);
    graph_dispose(&g);
    return rc;
}
