/*
 * cmd_submit.c: `sluice submit`, queueing builds as Hydra's evaluator does.
 *
 *   sluice submit [--project P] [--jobset J] [--priority N] [--global-priority N]
 *                 [--timeout S] [--max-silent S]
 *                 (FILE.nix [-A ATTR]... [--arg NAME EXPR]... [--argstr NAME VALUE]... | DRV...)
 *
 * FILE.nix is evaluated by `nix-instantiate --eval --strict --json --read-write-mode`
 * on a small wrapper expression (below) that imports the file, calls it with the
 * --arg/--argstr values when it is a function, selects each -A path and collects the
 * derivations as nix-build does (a derivation; the derivations among an attribute set's
 * values, recursing where recurseForDerivations = true; every element of a list).  The
 * job name is the attribute path ("pkgs.hello", "0"; the derivation name for a lone
 * top-level derivation).  Per job it returns the drv path, name, system and the meta
 * fields Hydra records.  The file path and -A paths reach Nix as --argstr values, never
 * as expression text.  DRV... queues store derivations directly (job = derivation name).
 *
 * Columns as hydra-eval-jobset fills them: finished 0, timestamp now, jobset_id, job,
 * nixName, description, license and maintainers (", "-joined shortName / email),
 * homepage, maxsilent (meta.maxSilent) and timeout (meta.timeout) or NULL (the runner's
 * defaults apply), priority (meta.schedulingPriority, default 100), globalPriority 0,
 * isChannel (meta.isHydraChannel), isCurrent 1.  Flags override the meta values.
 * BuildOutputs come from the .drv: the path is NULL for floating content-addressed and
 * deferred outputs.  The project and jobset are created when missing (the project owned
 * by a user "sluice", the jobset disabled so Hydra's evaluator leaves it alone).
 *
 * Each top-level .drv is GC-rooted (nix-instantiate --add-root, an indirect root under
 * STATE_DIR/roots) before its row is committed, and the root is recorded in
 * sluice_gcroots with the build id; the runner removes it when the build finishes.
 * Everything is inserted in one transaction, which also sends builds_added with the
 * lowest new id (as hydra-eval-jobset does).  The new build ids are printed, one a line.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "db/db.h"
#include "nix/nix.h"

extern char **environ;

/* The evaluation wrapper.  Arguments: __sluiceFile (absolute path), __sluiceAttrs (JSON
 * list of attribute paths, each a list of strings; [[]] = the whole file), and the
 * user's --arg/--argstr values. */
static const char wrapper_expr[] =
    "{ ... }@args:\n"
    "let\n"
    "  inherit (builtins) isAttrs isList isFunction isString isInt isFloat isBool functionArgs\n"
    "    intersectAttrs attrNames filter match genList length elemAt concatMap head tail;\n"
    "  user = removeAttrs args [ \"__sluiceFile\" \"__sluiceAttrs\" \"__sluiceExpr\" ];\n"
    "  call = f: if isFunction f then\n"
    "      (let fa = functionArgs f; in if fa == { } then f user else f (intersectAttrs fa user))\n"
    "    else f;\n"
    "  isDrv = v: isAttrs v && (v.type or null) == \"derivation\";\n"
    "  join = p: n: if p == \"\" then n else \"${p}.${n}\";\n"
    "  where = if args ? __sluiceExpr then \"the expression\" else args.__sluiceFile;\n"
    "  names = v: let n = attrNames v; in builtins.concatStringsSep \", \"\n"
    "    (if length n > 12 then genList (elemAt n) 12 ++ [ \"...\" ] else n);\n"
    "  select = v: path: full: if path == [ ] then v else\n"
    "    let v' = call v; h = head path; in\n"
    "    select (if isList v' && match \"[0-9]+\" h != null then elemAt v' (builtins.fromJSON h)\n"
    "            else if isAttrs v' && !(v' ? ${h}) then throw (\n"
    "              \"attribute '${h}' in selection path '${full}' not found in ${where} \"\n"
    "              + \"(it has: ${names v'})\")\n"
    "            else v'.${h}) (tail path) full;\n"
    "  collect = prefix: v0: let v = call v0; in\n"
    "    if isDrv v then [ { job = prefix; drv = v; } ]\n"
    "    else if isAttrs v then concatMap (n:\n"
    "        let x = v.${n}; p = join prefix n; in\n"
    "        if isDrv x then [ { job = p; drv = x; } ]\n"
    "        else if isAttrs x && (x.recurseForDerivations or false) == true then collect p x\n"
    "        else [ ])\n"
    "      (filter (n: match \"[A-Za-z_][A-Za-z0-9_+-]*\" n != null) (attrNames v))\n"
    "    else if isList v then concatMap (i: collect (join prefix (toString i)) (elemAt v i))\n"
    "      (genList (i: i) (length v))\n"
    "    else throw \"${if prefix == \"\" then \"the expression\" else \"'${prefix}'\"} does not "
    "evaluate to a derivation (or a set or list of those)\";\n"
    "  str = v: if isString v then v else if isInt v || isFloat v then toString v\n"
    "    else if isBool v then (if v then \"1\" else \"\") else null;\n"
    "  strs = v: k: if isAttrs v then (if v ? ${k} then [ (str v.${k}) ] else [ ])\n"
    "    else if isList v then concatMap (x: strs x k) v\n"
    "    else if v == null then [ ] else [ (str v) ];\n"
    "  num = v: if isInt v then v\n"
    "    else if isString v && match \"-?[0-9]+\" v != null then builtins.fromJSON v else null;\n"
    "  info = j: let d = j.drv; meta = d.meta or { }; in {\n"
    "    job = j.job;\n"
    "    drvPath = d.drvPath;\n"
    "    name = str (d.name or null);\n"
    "    system = str (d.system or null);\n"
    "    description = str (meta.description or null);\n"
    "    homepage = str (meta.homepage or null);\n"
    "    license = filter (x: x != null) (strs (meta.license or [ ]) \"shortName\");\n"
    "    maintainers = filter (x: x != null) (strs (meta.maintainers or [ ]) \"email\");\n"
    "    maxSilent = num (meta.maxSilent or null);\n"
    "    timeout = num (meta.timeout or null);\n"
    "    schedulingPriority = num (meta.schedulingPriority or null);\n"
    "    isChannel = (meta.isHydraChannel or false) == true;\n"
    "  };\n"
    "  top = if args ? __sluiceExpr then args.__sluiceExpr else import args.__sluiceFile;\n"
    "in map info (concatMap (p: let j = builtins.concatStringsSep \".\" p; in\n"
    "    collect j (select top p j))\n"
    "  (builtins.fromJSON args.__sluiceAttrs))\n";

/* Roots every derivation of __sluiceDrvs (a JSON list of .drv paths), in order. */
static const char root_expr[] = "{ ... }@args: map import (builtins.fromJSON args.__sluiceDrvs)";

/* Limits of what one submit takes. */
#define SUBMIT_MAX_JOBS   100000 /* derivations from one evaluation */
#define SUBMIT_MAX_STRING 65536  /* one meta string */

typedef struct Job {
    char *job;
    char *drv_path;
    char *nix_name;
    char *system;
    char *description, *homepage, *license, *maintainers;
    int64_t max_silent, timeout, priority;
    int has_max_silent, has_timeout, has_priority;
    int is_channel;
    char **out_names, **out_paths; /* out_paths[i] NULL when not statically known */
    size_t n_out;
    char *root; /* GC root symlink */
    int64_t id; /* after insertion */
} Job;

typedef struct Submit {
    const char *project, *jobset;
    int64_t priority, global_priority, timeout, max_silent;
    int has_priority, has_timeout, has_max_silent;
    StrVec attrs;    /* -A */
    StrVec nix_args; /* --arg/--argstr NAME VALUE, flattened */
    char *file;      /* FILE.nix (absolute) */
    char *expr;      /* -E: the Nix expression instead of a file */
    StrVec search;   /* -I PATH, flattened ("-I", PATH) */
    int dry_run;     /* --dry-run: print what would be built, submit nothing */
    StrVec drvs;     /* DRV... */
    Job *jobs;
    size_t n_jobs;
    char *state_dir;
} Submit;

static void job_dispose(Job *j)
{
    free(j->job);
    free(j->drv_path);
    free(j->nix_name);
    free(j->system);
    free(j->description);
    free(j->homepage);
    free(j->license);
    free(j->maintainers);
    for (size_t i = 0; i < j->n_out; i++) {
        free(j->out_names[i]);
        free(j->out_paths[i]);
    }
    free(j->out_names);
    free(j->out_paths);
    free(j->root);
}

static void submit_dispose(Submit *s)
{
    for (size_t i = 0; i < s->n_jobs; i++)
        job_dispose(&s->jobs[i]);
    free(s->jobs);
    strvec_dispose(&s->attrs);
    strvec_dispose(&s->nix_args);
    strvec_dispose(&s->drvs);
    strvec_dispose(&s->search);
    free(s->file);
    free(s->expr);
}

/* ---------------------------------------------------------------- arguments */

static int parse_num(const char *flag, const char *v, int64_t min, int64_t *out, Err *e)
{
    if (util_parse_i64(v, out) < 0 || *out < min || *out > INT32_MAX)
        return err_set(e, ERR_INVALID, "%s: '%s' is not a valid number", flag, v);
    return 0;
}

/* Was `key` given as a flag (main.c takes global keys such as --timeout out of argv)? */
static const char *flag_value(const CliConfig *cfg, const char *key)
{
    if (cli_config_origin(cfg, key, NULL) != CLI_ORIGIN_FLAG)
        return NULL;
    return cli_config_get(cfg, key);
}

static int parse_args(CliConfig *cfg, int argc, char **argv, Submit *s, Err *e)
{
    StrVec pos;
    const char *v;
    int rc = 0, is_expr = 0;
    strvec_init(&pos);
    s->project = "sluice";
    s->jobset = "default";
    /* --timeout and --max-silent-time are also global configuration keys */
    if ((v = flag_value(cfg, "timeout"))) {
        rc = parse_num("--timeout", v, 0, &s->timeout, e);
        s->has_timeout = 1;
    }
    if (rc == 0 && (v = flag_value(cfg, "max-silent-time"))) {
        rc = parse_num("--max-silent-time", v, 0, &s->max_silent, e);
        s->has_max_silent = 1;
    }
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        char name[64];
        size_t nl = eq && strncmp(a, "--", 2) == 0 ? (size_t)(eq - a) : strlen(a);
        snprintf(name, sizeof name, "%.*s", (int)(nl < sizeof name ? nl : sizeof name - 1), a);
#define VALUE() (eq && strncmp(a, "--", 2) == 0 ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL))
        if (strcmp(name, "--project") == 0 || strcmp(name, "--jobset") == 0 ||
            strcmp(name, "--priority") == 0 || strcmp(name, "--global-priority") == 0 ||
            strcmp(name, "--timeout") == 0 || strcmp(name, "--max-silent") == 0 ||
            strcmp(name, "-A") == 0 || strcmp(name, "--attr") == 0 || strcmp(name, "-I") == 0) {
            const char *val = VALUE();
            if (!val) {
                rc = err_set(e, ERR_INVALID, "%s needs a value", name);
                break;
            }
            if (strcmp(name, "--project") == 0)
                s->project = val;
            else if (strcmp(name, "--jobset") == 0)
                s->jobset = val;
            else if (strcmp(name, "--priority") == 0) {
                rc = parse_num(name, val, INT32_MIN, &s->priority, e);
                s->has_priority = 1;
            } else if (strcmp(name, "--global-priority") == 0)
                rc = parse_num(name, val, INT32_MIN, &s->global_priority, e);
            else if (strcmp(name, "--timeout") == 0) {
                rc = parse_num(name, val, 0, &s->timeout, e);
                s->has_timeout = 1;
            } else if (strcmp(name, "--max-silent") == 0) {
                rc = parse_num(name, val, 0, &s->max_silent, e);
                s->has_max_silent = 1;
            } else if (strcmp(name, "-I") == 0) {
                strvec_push(&s->search, "-I");
                strvec_push(&s->search, val);
            } else
                strvec_push(&s->attrs, val);
        } else if (strcmp(a, "--arg") == 0 || strcmp(a, "--argstr") == 0) {
            if (i + 2 >= argc) {
                rc = err_set(e, ERR_INVALID, "%s needs a name and a value", a);
                break;
            }
            strvec_push(&s->nix_args, a);
            strvec_push(&s->nix_args, argv[i + 1]);
            strvec_push(&s->nix_args, argv[i + 2]);
            i += 2;
        } else if (strcmp(a, "-E") == 0 || strcmp(a, "--expr") == 0) {
            is_expr = 1;
        } else if (strcmp(a, "--dry-run") == 0) {
            s->dry_run = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            rc = err_set(e, ERR_INVALID, "unknown option '%s'", a);
        } else {
            strvec_push(&pos, a);
        }
#undef VALUE
    }
    if (rc < 0)
        goto out;
    if (!*s->project || !*s->jobset) {
        rc = err_set(e, ERR_INVALID, "--project and --jobset must not be empty");
        goto out;
    }
    if (pos.n == 0) {
        rc = err_set(e, ERR_INVALID, "nothing to submit: give FILE.nix, -E EXPR or DRV...");
        goto out;
    }
    if (is_expr) {
        if (pos.n > 1) {
            rc = err_set(e, ERR_INVALID, "one expression at a time with -E");
            goto out;
        }
        s->expr = xstrdup(pos.v[0]);
    } else if (util_ends_with(pos.v[0], ".drv")) {
        for (size_t i = 0; i < pos.n; i++) {
            if (!util_ends_with(pos.v[i], ".drv")) {
                rc = err_set(e, ERR_INVALID, "'%s': give either one FILE.nix or store derivations",
                             pos.v[i]);
                goto out;
            }
            rc = nix_store_path_check(pos.v[i], e);
            if (rc < 0) {
                rc = ERR_INVALID; /* a bad argument: usage error */
                if (e)
                    e->code = rc;
                goto out;
            }
            strvec_push(&s->drvs, pos.v[i]);
        }
        if (s->attrs.n || s->nix_args.n) {
            rc = err_set(e, ERR_INVALID, "-A, --arg and --argstr need a FILE.nix");
            goto out;
        }
    } else {
        char real[PATH_MAX];
        if (pos.n > 1) {
            rc = err_set(e, ERR_INVALID, "one FILE.nix at a time (got '%s' and '%s')", pos.v[0],
                         pos.v[1]);
            goto out;
        }
        if (!realpath(pos.v[0], real)) {
            rc = err_sys(e, ERR_NOTFOUND, "%s", pos.v[0]);
            goto out;
        }
        s->file = xstrdup(real);
    }
out:
    strvec_dispose(&pos);
    return rc;
}

/* ---------------------------------------------------------------- running Nix */

/* -A "a.b.0" or 'a."b.c"' -> ["a", "b", "0"] / ["a", "b.c"]. */
static json_t *attr_path_json(const char *path)
{
    json_t *a = json_array();
    Buf cur;
    int quoted = 0;
    buf_init(&cur, SUBMIT_MAX_STRING);
    for (const char *p = path;; p++) {
        if (*p == '"') {
            quoted = !quoted;
        } else if ((*p == '.' && !quoted) || *p == '\0') {
            if (cur.len || *p == '.')
                json_array_append_new(a, json_string(buf_cstr(&cur)));
            buf_reset(&cur);
            if (!*p)
                break;
        } else {
            buf_putc(&cur, *p);
        }
    }
    buf_dispose(&cur);
    return a;
}

static char *dup_json_str(json_t *o, const char *key, int *bad)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v) || json_string_length(v) > SUBMIT_MAX_STRING) {
        *bad = 1;
        return NULL;
    }
    return xstrdup(json_string_value(v));
}

static char *join_json_list(json_t *o, const char *key, int *bad)
{
    json_t *v = json_object_get(o, key);
    Buf b;
    size_t i;
    json_t *x;
    if (!v || !json_is_array(v) || json_array_size(v) == 0)
        return NULL;
    buf_init(&b, SUBMIT_MAX_STRING);
    json_array_foreach(v, i, x)
    {
        if (!json_is_string(x)) {
            *bad = 1;
            continue;
        }
        if (b.len)
            buf_puts(&b, ", ");
        buf_puts(&b, json_string_value(x));
    }
    if (buf_status(&b) < 0 || b.len == 0) {
        buf_dispose(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

static int json_num(json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || !json_is_integer(v))
        return 0;
    *out = (int64_t)json_integer_value(v);
    return 1;
}

static int evaluate(Submit *s, Err *e)
{
    StrVec argv;
    Buf out;
    json_t *attrs = json_array(), *root = NULL, *x;
    json_error_t jerr;
    char *attrs_text = NULL;
    size_t i;
    int rc;
    strvec_init(&argv);
    buf_init(&out, LIMIT_TOOL_OUTPUT);
    if (s->attrs.n == 0)
        json_array_append_new(attrs, json_array());
    for (i = 0; i < s->attrs.n; i++)
        json_array_append_new(attrs, attr_path_json(s->attrs.v[i]));
    attrs_text = json_dumps(attrs, JSON_COMPACT);
    strvec_push(&argv, "nix-instantiate");
    strvec_push(&argv, "--eval");
    strvec_push(&argv, "--strict");
    strvec_push(&argv, "--json");
    strvec_push(&argv, "--read-write-mode");
    for (i = 0; i < s->search.n; i++)
        strvec_push(&argv, s->search.v[i]);
    strvec_push(&argv, "-E");
    strvec_push(&argv, wrapper_expr);
    if (s->expr) {
        strvec_push(&argv, "--arg");
        strvec_push(&argv, "__sluiceExpr");
        strvec_push(&argv, s->expr);
    } else {
        strvec_push(&argv, "--argstr");
        strvec_push(&argv, "__sluiceFile");
        strvec_push(&argv, s->file);
    }
    strvec_push(&argv, "--argstr");
    strvec_push(&argv, "__sluiceAttrs");
    strvec_push(&argv, attrs_text);
    for (i = 0; i < s->nix_args.n; i++)
        strvec_push(&argv, s->nix_args.v[i]);
    argv.v = xrealloc(argv.v, (argv.n + 1) * sizeof *argv.v);
    argv.v[argv.n] = NULL;
    rc = cli_run_capture(argv.v, &out, e);
    if (rc < 0) {
        err_prefix(e, "evaluating %s", s->expr ? "the expression" : s->file);
        goto out;
    }
    root = json_loadb((const char *)out.p, out.len, 0, &jerr);
    if (!root || !json_is_array(root)) {
        rc = err_set(e, ERR_MALFORMED, "nix-instantiate printed no job list: %s", jerr.text);
        goto out;
    }
    if (json_array_size(root) > SUBMIT_MAX_JOBS) {
        rc = err_set(e, ERR_TOOBIG, "%s gives %zu derivations (limit %d)",
                     s->expr ? "the expression" : s->file, json_array_size(root), SUBMIT_MAX_JOBS);
        goto out;
    }
    s->jobs = xcalloc(json_array_size(root) + 1, sizeof *s->jobs);
    json_array_foreach(root, i, x)
    {
        Job *j = &s->jobs[s->n_jobs++];
        int bad = 0;
        j->drv_path = dup_json_str(x, "drvPath", &bad);
        j->job = dup_json_str(x, "job", &bad);
        j->nix_name = dup_json_str(x, "name", &bad);
        j->system = dup_json_str(x, "system", &bad);
        j->description = dup_json_str(x, "description", &bad);
        j->homepage = dup_json_str(x, "homepage", &bad);
        j->license = join_json_list(x, "license", &bad);
        j->maintainers = join_json_list(x, "maintainers", &bad);
        j->has_max_silent = json_num(x, "maxSilent", &j->max_silent);
        j->has_timeout = json_num(x, "timeout", &j->timeout);
        j->has_priority = json_num(x, "schedulingPriority", &j->priority);
        j->is_channel = json_is_true(json_object_get(x, "isChannel"));
        if (bad || !j->drv_path || !j->job) {
            rc = err_set(e, ERR_MALFORMED, "unexpected job record from nix-instantiate");
            goto out;
        }
        if (!*j->job) {
            free(j->job);
            j->job = xstrdup(j->nix_name ? j->nix_name : "default");
        }
    }
out:
    json_decref(root);
    json_decref(attrs);
    free(attrs_text);
    buf_dispose(&out);
    strvec_dispose(&argv);
    return rc;
}

/* Read each job's .drv: outputs (NULL path when not static) and the system. */
static int read_drvs(Submit *s, Err *e)
{
    for (size_t i = 0; i < s->n_jobs; i++) {
        Job *j = &s->jobs[i];
        NixDrv *d = NULL;
        int rc = nix_drv_read(j->drv_path, &d, e);
        if (rc < 0)
            return rc;
        j->n_out = d->n_outputs;
        j->out_names = xcalloc(d->n_outputs + 1, sizeof *j->out_names);
        j->out_paths = xcalloc(d->n_outputs + 1, sizeof *j->out_paths);
        for (size_t k = 0; k < d->n_outputs; k++) {
            j->out_names[k] = xstrdup(d->outputs[k].name);
            j->out_paths[k] = d->outputs[k].path[0] ? xstrdup(d->outputs[k].path) : NULL;
        }
        if (!j->system)
            j->system = xstrdup(d->platform);
        if (!j->nix_name)
            j->nix_name = xstrdup(d->name ? d->name : "");
        nix_drv_free(d);
    }
    return 0;
}

static void remove_roots(Submit *s)
{
    for (size_t i = 0; i < s->n_jobs; i++)
        if (s->jobs[i].root)
            unlink(s->jobs[i].root);
}

/* nix-instantiate --add-root PREFIX on `map import [drvs]`: roots PREFIX, PREFIX-2, ...
 * in the order of the list (it prints each root, with "!OUTPUT" when the derivation's
 * first output is not "out"). */
static int add_roots(Submit *s, Err *e)
{
    char *dir = xasprintf("%s/roots", s->state_dir), *prefix = NULL, *drvs_text = NULL;
    json_t *drvs = json_array();
    Buf out;
    char *argv[10], *line, *next;
    size_t k = 0;
    int rc;
    buf_init(&out, LIMIT_TOOL_OUTPUT);
    if (s->n_jobs == 0) {
        rc = 0;
        goto out;
    }
    rc = util_mkdir_p(dir, 0755, e);
    if (rc < 0)
        goto out;
    prefix = xasprintf("%s/submit-%lld-%ld", dir, (long long)util_time_now(), (long)getpid());
    for (size_t i = 0; i < s->n_jobs; i++) {
        json_array_append_new(drvs, json_string(s->jobs[i].drv_path));
        s->jobs[i].root = i == 0 ? xstrdup(prefix) : xasprintf("%s-%zu", prefix, i + 1);
    }
    drvs_text = json_dumps(drvs, JSON_COMPACT);
    argv[0] = "nix-instantiate";
    argv[1] = "--add-root";
    argv[2] = prefix;
    argv[3] = "-E";
    argv[4] = (char *)root_expr;
    argv[5] = "--argstr";
    argv[6] = "__sluiceDrvs";
    argv[7] = drvs_text;
    argv[8] = NULL;
    rc = cli_run_capture(argv, &out, e);
    if (rc < 0) {
        err_prefix(e, "adding GC roots");
        goto out;
    }
    for (line = (char *)out.p; line && *line; line = next) {
        char target[PATH_MAX];
        ssize_t n;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        line[strcspn(line, "!")] = '\0';
        if (!*line)
            continue;
        if (k >= s->n_jobs || strcmp(line, s->jobs[k].root) != 0) {
            rc =
                err_set(e, ERR_MALFORMED, "nix-instantiate printed an unexpected GC root %s", line);
            goto out;
        }
        n = readlink(line, target, sizeof target - 1);
        if (n >= 0)
            target[n] = '\0';
        if (n < 0 || strcmp(target, s->jobs[k].drv_path) != 0) {
            rc = err_set(e, ERR_MALFORMED, "GC root %s does not point to %s", line,
                         s->jobs[k].drv_path);
            goto out;
        }
        k++;
    }
    if (k != s->n_jobs)
        rc = err_set(e, ERR_MALFORMED, "nix-instantiate made %zu GC roots for %zu derivations", k,
                     s->n_jobs);
out:
    if (rc < 0)
        remove_roots(s);
    json_decref(drvs);
    free(drvs_text);
    free(prefix);
    free(dir);
    buf_dispose(&out);
    return rc;
}

/* ---------------------------------------------------------------- the transaction */

static int ensure_jobset(Db *db, Submit *s, int64_t *jobset_id, Err *e)
{
    int64_t n = 0;
    int rc = db_query_int64(db, "SELECT count(*) FROM Projects WHERE name = $1",
                            DB_ARGS(DB_P_TEXT(s->project)), &n, e);
    if (rc < 0)
        return rc;
    if (n == 0) {
        rc = db_exec(db,
                     "INSERT INTO Users (userName, emailAddress, password) VALUES ('sluice', '', "
                     "'!') ON CONFLICT DO NOTHING",
                     NULL, 0, e);
        if (rc >= 0)
            rc =
                db_exec(db,
                        "INSERT INTO Projects (name, displayName, description, owner) VALUES "
                        "($1, $1, 'builds submitted with sluice', 'sluice') ON CONFLICT DO NOTHING",
                        DB_ARGS(DB_P_TEXT(s->project)), e);
        if (rc < 0)
            return rc;
    }
    rc = db_query_int64(db, "SELECT id FROM Jobsets WHERE project = $1 AND name = $2",
                        DB_ARGS(DB_P_TEXT(s->project), DB_P_TEXT(s->jobset)), jobset_id, e);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    rc = db_query_int64(
        db,
        "INSERT INTO Jobsets (name, project, description, nixExprInput, "
        "nixExprPath, enabled, emailOverride) VALUES ($1, $2, 'builds submitted "
        "with sluice', 'sluice', $3, 0, '') ON CONFLICT DO NOTHING RETURNING id",
        DB_ARGS(DB_P_TEXT(s->jobset), DB_P_TEXT(s->project), DB_P_TEXT(s->file ? s->file : "")),
        jobset_id, e);
    if (rc == 0)
        rc = db_query_int64(db, "SELECT id FROM Jobsets WHERE project = $1 AND name = $2",
                            DB_ARGS(DB_P_TEXT(s->project), DB_P_TEXT(s->jobset)), jobset_id, e);
    if (rc == 0)
        return err_set(e, ERR_DB, "jobset %s:%s could not be created", s->project, s->jobset);
    return rc < 0 ? rc : 0;
}

static int insert_body(Db *db, void *payload, Err *e)
{
    Submit *s = payload;
    int64_t jobset_id = 0, now = util_time_now(), lowest = 0;
    int rc;
    char lowest_text[32];
    for (size_t i = 0; i < s->n_jobs; i++)
        s->jobs[i].id = 0;
    rc = ensure_jobset(db, s, &jobset_id, e);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < s->n_jobs; i++) {
        Job *j = &s->jobs[i];
        int has_ms = s->has_max_silent || j->has_max_silent;
        int has_to = s->has_timeout || j->has_timeout;
        int64_t ms = s->has_max_silent ? s->max_silent : j->max_silent;
        int64_t to = s->has_timeout ? s->timeout : j->timeout;
        int64_t prio = s->has_priority ? s->priority : j->has_priority ? j->priority : 100;
        rc = db_query_int64(
            db,
            "INSERT INTO Builds (finished, timestamp, jobset_id, job, nixName, description, "
            "drvPath, system, license, homepage, maintainers, maxsilent, timeout, isChannel, "
            "isCurrent, priority, globalPriority, keep) VALUES (0, $1, $2, $3, $4, $5, $6, $7, $8, "
            "$9, $10, $11, $12, $13, 1, $14, $15, 0) RETURNING id",
            DB_ARGS(DB_P_INT(now), DB_P_INT(jobset_id), DB_P_TEXT(j->job), DB_P_TEXT(j->nix_name),
                    DB_P_TEXT(j->description), DB_P_TEXT(j->drv_path), DB_P_TEXT(j->system),
                    DB_P_TEXT(j->license), DB_P_TEXT(j->homepage), DB_P_TEXT(j->maintainers),
                    DB_P_INT_OR_NULL(ms, !has_ms), DB_P_INT_OR_NULL(to, !has_to),
                    DB_P_INT(j->is_channel), DB_P_INT(prio), DB_P_INT(s->global_priority)),
            &j->id, e);
        if (rc == 0)
            rc = err_set(e, ERR_DB, "INSERT INTO Builds returned no id");
        if (rc < 0)
            return rc;
        for (size_t k = 0; k < j->n_out; k++) {
            rc = db_exec(
                db, "INSERT INTO BuildOutputs (build, name, path) VALUES ($1, $2, $3)",
                DB_ARGS(DB_P_INT(j->id), DB_P_TEXT(j->out_names[k]), DB_P_TEXT(j->out_paths[k])),
                e);
            if (rc < 0)
                return rc;
        }
        if (j->root) {
            rc = db_exec(
                db,
                "INSERT INTO sluice_gcroots (root, path, kind, build, created) VALUES ($1, "
                "$2, 'drv', $3, $4)",
                DB_ARGS(DB_P_TEXT(j->root), DB_P_TEXT(j->drv_path), DB_P_INT(j->id), DB_P_INT(now)),
                e);
            if (rc < 0)
                return rc;
        }
        if (!lowest || j->id < lowest)
            lowest = j->id;
    }
    if (!lowest)
        return 0;
    snprintf(lowest_text, sizeof lowest_text, "%lld", (long long)lowest);
    return db_notify(db, DB_CH_BUILDS_ADDED, lowest_text, e);
}

/* --dry-run: what `nix-store --realise --dry-run` says it would build and fetch. */
static int dry_run(Submit *s, Err *e)
{
    StrVec argv;
    Buf out;
    int rc;
    strvec_init(&argv);
    buf_init(&out, LIMIT_TOOL_OUTPUT);
    strvec_push(&argv, "nix-store");
    strvec_push(&argv, "--realise");
    strvec_push(&argv, "--dry-run");
    for (size_t i = 0; i < s->n_jobs; i++)
        strvec_push(&argv, s->jobs[i].drv_path);
    argv.v = xrealloc(argv.v, (argv.n + 1) * sizeof *argv.v);
    argv.v[argv.n] = NULL;
    rc = cli_run_capture(argv.v, &out, e);
    buf_dispose(&out);
    strvec_dispose(&argv);
    return rc;
}

int cli_submit_builds(CliConfig *cfg, int argc, char **argv, int64_t **ids, size_t *n, Err *e)
{
    Submit s;
    Db *db = NULL;
    int rc;
    *ids = NULL;
    *n = 0;
    memset(&s, 0, sizeof s);
    strvec_init(&s.attrs);
    strvec_init(&s.nix_args);
    strvec_init(&s.drvs);
    strvec_init(&s.search);
    s.state_dir = cfg->state_dir;
    rc = parse_args(cfg, argc, argv, &s, e);
    if (rc < 0)
        goto out;
    /* the database first: a bad URL or schema fails before any evaluation */
    rc = db_open(cli_config_db_url(cfg), DB_OPEN_DEFAULT, &db, e);
    if (rc < 0)
        goto out;
    if (s.file || s.expr) {
        rc = evaluate(&s, e);
    } else {
        s.jobs = xcalloc(s.drvs.n + 1, sizeof *s.jobs);
        for (size_t i = 0; i < s.drvs.n; i++) {
            Job *j = &s.jobs[s.n_jobs++];
            j->drv_path = xstrdup(s.drvs.v[i]);
            j->job = nix_drv_name_from_path(s.drvs.v[i]);
        }
    }
    if (rc < 0)
        goto out;
    rc = read_drvs(&s, e);
    if (rc < 0)
        goto out;
    if (s.dry_run) {
        rc = dry_run(&s, e);
        goto out;
    }
    rc = add_roots(&s, e);
    if (rc < 0)
        goto out;
    rc = db_tx(db, insert_body, &s, e);
    if (rc < 0) {
        remove_roots(&s);
        goto out;
    }
    *ids = xcalloc(s.n_jobs + 1, sizeof **ids);
    for (size_t i = 0; i < s.n_jobs; i++)
        (*ids)[i] = s.jobs[i].id;
    *n = s.n_jobs;
out:
    db_close(db);
    submit_dispose(&s);
    return rc;
}

static int has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return 1;
    return 0;
}

int cli_cmd_submit(CliConfig *cfg, int argc, char **argv)
{
    int64_t *ids = NULL;
    size_t n = 0;
    Err e = {0};
    int rc = cli_submit_builds(cfg, argc, argv, &ids, &n, &e);
    if (rc < 0) {
        cli_fail(&e);
        return rc == ERR_INVALID ? 2 : 1;
    }
    if (n == 0 && !has_flag(argc, argv, "--dry-run"))
        cli_error("no derivations found; nothing submitted");
    for (size_t i = 0; i < n; i++)
        printf("%lld\n", (long long)ids[i]);
    free(ids);
    return 0;
}
