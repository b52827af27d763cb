/*
 * config.c: sluice's settings: the table of every key (type, default, environment
 * variable, whether it is a secret), the configuration file with nix.conf's semantics,
 * the layering of defaults < file < environment < flags with each value's origin, and
 * the typed readers every subcommand uses.
 *
 * The file, like nix.conf: one `key = value` a line; `#` starts a comment anywhere on
 * a line (so `key = value # why` sets "value"); blank lines are skipped;
 * `include PATH` reads another file (relative to this one), `!include PATH` the same
 * but a missing file is no error.  A key this table does not know is a warning naming
 * the nearest known key; a value that is not of its key's type (an integer, a number,
 * `true`/`false`) is an error (cli_config_validate).
 *
 * Files (cli_config_load): --config FILE or $SLUICE_CONFIG (that file only, which must
 * exist); otherwise SLUICE_CONF_DIR/sluice.conf (default /etc/sluice/sluice.conf) and
 * then STATE_DIR/sluice.conf, each when present, the later one winning.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

/* clang-format off */
static const CliSettingDef settings[] = {
    {"state-dir", CLI_T_STRING, NULL, "SLUICE_STATE_DIR", 0, 0,
     "state directory: database, build logs, GC roots, the runner lock"},
    {"config", CLI_T_STRING, NULL, "SLUICE_CONFIG", 0, 0,
     "configuration file (instead of SLUICE_CONF_DIR/sluice.conf and STATE_DIR/sluice.conf)"},
    {"db", CLI_T_STRING, NULL, "SLUICE_DB", 0, 0,
     "database: sqlite:PATH or postgresql://... (default sqlite:STATE_DIR/sluice.db)"},
    {"machines", CLI_T_STRING, NULL, NULL, 0, 0, "machines file in Nix's builders format"},
    {"store", CLI_T_STRING, "auto", NULL, 0, 0,
     "local store: auto (local as root, else daemon), local (a child nix-daemon --stdio), "
     "daemon or unix://PATH"},
    {"log-dir", CLI_T_STRING, NULL, NULL, 0, 0, "build logs (default STATE_DIR/build-logs)"},
    {"log-level", CLI_T_STRING, "info", "SLUICE_LOG", 0, 0,
     "journal detail: error, warn, info or debug (or 0..3); each -v adds one"},
    {"http", CLI_T_STRING, NULL, NULL, 0, 0, "HTTP server of `sluice run`: ADDR:PORT or PORT"},
    {"http-admin-token", CLI_T_STRING, NULL, NULL, 1, 0,
     "bearer token for the HTTP mutations (cancel, bump, restart)"},
    {"max-jobs", CLI_T_INT, "0", NULL, 0, 0, "slots of the local store (0: number of cores)"},
    {"build-cores", CLI_T_INT, "0", NULL, 0, 0, "`cores` passed to builders (0: all)"},
    {"max-silent-time", CLI_T_INT, "3600", NULL, 0, 0, "seconds without log output (status 7)"},
    {"timeout", CLI_T_INT, "36000", NULL, 0, 0, "seconds a build may run (status 7)"},
    {"max-log-size", CLI_T_INT, "67108864", NULL, 0, 0, "bytes of log per step (status 10)"},
    {"max-output-size", CLI_T_INT, "2147483648", NULL, 0, 0,
     "NAR bytes of a step's outputs (status 11)"},
    {"max-retries", CLI_T_INT, "5", NULL, 0, 0, "attempts of a step that fails transiently"},
    {"retry-interval", CLI_T_INT, "60", NULL, 0, 0, "seconds before the first retry"},
    {"retry-backoff", CLI_T_DOUBLE, "3", NULL, 0, 0, "factor per further retry"},
    {"max-unsupported-time", CLI_T_INT, "120", NULL, 0, 0,
     "seconds a step may wait for a machine that can build it (status 9)"},
    {"keep-outputs-days", CLI_T_INT, "30", NULL, 0, -1,
     "days outputs of finished builds stay rooted (-1: for good)"},
    {"jobset-repeats", CLI_T_STRING, NULL, NULL, 0, 0,
     "Hydra's xxx-jobset-repeats: PROJECT:JOBSET:N ...; steps of their builds built N more "
     "times, a difference marked isNonDeterministic"},
    {"gc-roots-dir", CLI_T_STRING, NULL, NULL, 0, 0,
     "Hydra's gc_roots_dir: output roots there, pruned by hydra-update-gc-roots"},
    {"hydra-conf", CLI_T_STRING, NULL, "HYDRA_CONFIG", 0, 0,
     "Hydra's hydra.conf: the runner's keys sluice understands, under everything else"},
    {"keep-going", CLI_T_BOOL, "false", NULL, 0, 0,
     "sluice build: keep building other derivations after one fails"},
    {"ssh-server-alive-interval", CLI_T_INT, "15", NULL, 0, 1, "ssh ServerAliveInterval"},
    {"ssh-server-alive-count-max", CLI_T_INT, "4", NULL, 0, 1, "ssh ServerAliveCountMax"},
    {"warm-sessions", CLI_T_INT, "4", NULL, 0, 0,
     "sessions per remote machine opened ahead of need (at most twice its max jobs and 8; "
     "0: none)"},
    {"session-steps", CLI_T_INT, "8", NULL, 0, 1,
     "a remote session serves up to this many steps in a row while its machine is busy, "
     "keeping their temp roots until it ends (1: a session per step)"},
    {"local-daemon-max-steps", CLI_T_INT, "1000", NULL, 0, 1,
     "retire a pooled local nix-daemon after this many steps"},
    {"local-daemon-idle-time", CLI_T_INT, "600", NULL, 0, 1,
     "... or after this many idle seconds"},
    {"store-uri", CLI_T_STRING, NULL, NULL, 0, 0,
     "binary cache every built output goes to: file:///DIR or http(s)://... with Nix's "
     "parameters (secret-key, compression, write-nar-listing, ...)"},
    {"upload-logs-to-binary-cache", CLI_T_BOOL, "false", NULL, 0, 0,
     "also upload each built step's log to the binary cache (log/DRV)"},
    {"use-substitutes", CLI_T_BOOL, "false", NULL, 0, 0,
     "fetch outputs the local store's substituters have instead of building them (Nix's "
     "substituters and trusted-public-keys decide)"},
    {"max-substitution-jobs", CLI_T_INT, "16", NULL, 0, 1, "substitutions at a time"},
    {"builders-use-substitutes", CLI_T_BOOL, "false", NULL, 0, 0,
     "remote machines fetch inputs their own substituters have instead of getting them "
     "copied"},
    {"crash-point", CLI_T_STRING, NULL, "SLUICE_CRASH_POINT", 0, 0, "tests: kill at this point"},
    {"machine-backoff-scale", CLI_T_DOUBLE, "1", NULL, 0, 0, "tests: scale machine back-off"},
};
/* clang-format on */

const CliSettingDef *cli_settings(size_t *n)
{
    *n = UTIL_ARRAY_LEN(settings);
    return settings;
}

const CliSettingDef *cli_setting_find(const char *key)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(settings); i++)
        if (strcmp(settings[i].key, key) == 0)
            return &settings[i];
    return NULL;
}

/* Levenshtein distance, for keys of at most 64 characters (longer: "far"). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

const char *cli_setting_nearest(const char *key)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(settings); i++) {
        size_t d = edit_distance(key, settings[i].key);
        if (d < best_d) {
            best_d = d;
            best = settings[i].key;
        }
    }
    /* a typo, not a different word: at most a third of the key changed */
    return best && best_d * 3 <= strlen(key) + 2 ? best : NULL;
}

static CliSetting *find(const CliConfig *c, const char *key)
{
    for (size_t i = 0; i < c->n_set; i++)
        if (strcmp(c->set[i].key, key) == 0)
            return &c->set[i];
    return NULL;
}

int cli_config_set(CliConfig *c, const char *key, const char *value, CliOrigin origin,
                   const char *where)
{
    CliSetting *s = find(c, key);
    if (s && s->origin > origin)
        return 0; /* a higher layer already set it */
    if (!s) {
        c->set = xrealloc(c->set, (c->n_set + 1) * sizeof *c->set);
        s = &c->set[c->n_set++];
        s->key = xstrdup(key);
    } else {
        free(s->value);
        free(s->where);
    }
    s->value = xstrdup(value);
    s->origin = origin;
    s->where = xstrdup(where ? where : "");
    return 1;
}

const char *cli_config_get(const CliConfig *c, const char *key)
{
    const CliSetting *s = find(c, key);
    return s ? s->value : NULL;
}

CliOrigin cli_config_origin(const CliConfig *c, const char *key, const char **where)
{
    const CliSetting *s = find(c, key);
    if (where)
        *where = s ? s->where : "";
    return s ? s->origin : CLI_ORIGIN_DEFAULT;
}

const char *cli_origin_name(CliOrigin o)
{
    switch (o) {
    case CLI_ORIGIN_DEFAULT: return "default";
    case CLI_ORIGIN_FILE: return "file";
    case CLI_ORIGIN_ENV: return "env";
    case CLI_ORIGIN_FLAG: return "flag";
    }
    return "?";
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

static int load_file(CliConfig *c, const char *path, int must_exist, int depth, Err *e);

/* `include PATH` / `!include PATH`: relative to the including file's directory. */
static int include(CliConfig *c, const char *from, const char *arg, int optional, int depth, Err *e)
{
    const char *slash = strrchr(from, '/');
    char *path = arg[0] == '/' || !slash ? xstrdup(arg)
                                         : xasprintf("%.*s/%s", (int)(slash - from), from, arg);
    int rc = load_file(c, path, !optional, depth + 1, e);
    free(path);
    return rc;
}

static int parse_line(CliConfig *c, const char *path, int lineno, char *line, int depth, Err *e)
{
    char *hash = strchr(line, '#'), *eq, *k, *v, *where;
    if (hash)
        *hash = '\0'; /* nix.conf: a comment may follow a value */
    line = trim(line);
    if (!*line)
        return 0;
    if (util_starts_with(line, "include ") || util_starts_with(line, "!include ")) {
        int optional = line[0] == '!';
        return include(c, path, trim(line + (optional ? 9 : 8)), optional, depth, e);
    }
    eq = strchr(line, '=');
    if (!eq)
        return err_set(e, ERR_INVALID, "%s: line %d: expected 'key = value'", path, lineno);
    *eq = '\0';
    k = trim(line);
    v = trim(eq + 1);
    if (!*k)
        return err_set(e, ERR_INVALID, "%s: line %d: expected 'key = value'", path, lineno);
    where = xasprintf("%s:%d", path, lineno);
    if (!cli_setting_find(k)) {
        const char *near = cli_setting_nearest(k);
        strvec_push_take(
            &c->warnings,
            near ? xasprintf("%s: unknown setting '%s'; did you mean '%s'?", where, k, near)
                 : xasprintf("%s: unknown setting '%s'", where, k));
    }
    cli_config_set(c, k, v, CLI_ORIGIN_FILE, where);
    free(where);
    return 0;
}

static int load_file(CliConfig *c, const char *path, int must_exist, int depth, Err *e)
{
    Buf b;
    int rc, lineno = 0;
    char *next, *line;
    if (depth > 8)
        return err_set(e, ERR_INVALID, "%s: includes nested too deeply", path);
    buf_init(&b, LIMIT_CONFIG_FILE);
    rc = util_read_file(path, &b, e);
    if (rc == ERR_NOTFOUND && !must_exist) {
        err_clear(e);
        buf_dispose(&b);
        return 0;
    }
    if (rc < 0)
        goto out;
    strvec_push(&c->files, path);
    for (line = (char *)buf_cstr(&b); line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        if ((rc = parse_line(c, path, lineno, line, depth, e)) < 0)
            goto out;
    }
    rc = 0;
out:
    buf_dispose(&b);
    return rc;
}

int cli_config_load_file(CliConfig *c, const char *path, int must_exist, Err *e)
{
    return load_file(c, path, must_exist, 0, e);
}

static int parse_bool(const char *v, int *out)
{
    if (strcmp(v, "true") == 0)
        *out = 1;
    else if (strcmp(v, "false") == 0)
        *out = 0;
    else
        return -1;
    return 0;
}

static int parse_double(const char *v, double *out)
{
    char *end = NULL;
    if (!*v || isspace((unsigned char)*v))
        return -1;
    *out = strtod(v, &end);
    return end && !*end && *out > 0 ? 0 : -1;
}

int cli_log_level_parse(const char *v)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    int64_t n;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(names); i++)
        if (strcmp(v, names[i]) == 0)
            return (int)i;
    if (util_parse_i64(v, &n) == 0 && n >= LOG_ERROR && n <= LOG_DEBUG)
        return (int)n;
    return -1;
}

int cli_config_log_level(const CliConfig *c)
{
    const char *v = cli_config_get(c, "log-level");
    int lv = v ? cli_log_level_parse(v) : -1;
    return lv < 0 ? LOG_INFO : lv;
}

static int check_value(const CliSettingDef *d, const char *v, Err *e)
{
    int64_t n;
    double x;
    int b;
    /* a key naming a place means that place: empty is an error, not "/" or "." */
    static const char *const places[] = {"state-dir", "log-dir",      "machines",  "db",
                                         "config",    "gc-roots-dir", "hydra-conf"};
    switch (d->type) {
    case CLI_T_STRING:
        if (strcmp(d->key, "log-level") == 0 && cli_log_level_parse(v) < 0)
            return err_set(e, ERR_INVALID, "'%s' is not a log level (error, warn, info, debug)", v);
        for (size_t i = 0; i < UTIL_ARRAY_LEN(places); i++)
            if (!*v && strcmp(d->key, places[i]) == 0)
                return err_set(e, ERR_INVALID, "empty value (leave it out for the default)");
        return 0;
    case CLI_T_INT:
        if (util_parse_i64(v, &n) < 0)
            return err_set(e, ERR_INVALID, "'%s' is not an integer", v);
        if (n < d->min)
            return err_set(e, ERR_INVALID, "%s is below the minimum %lld", v, (long long)d->min);
        return 0;
    case CLI_T_DOUBLE:
        if (parse_double(v, &x) < 0)
            return err_set(e, ERR_INVALID, "'%s' is not a positive number", v);
        return 0;
    case CLI_T_BOOL:
        if (parse_bool(v, &b) < 0)
            return err_set(e, ERR_INVALID, "'%s' is not a Boolean (true or false)", v);
        return 0;
    }
    return 0;
}

int cli_config_validate(const CliConfig *c, Err *e)
{
    for (size_t i = 0; i < c->n_set; i++) {
        const CliSetting *s = &c->set[i];
        const CliSettingDef *d = cli_setting_find(s->key);
        Err why = {0};
        if (!d || check_value(d, s->value, &why) == 0)
            continue;
        if (s->origin == CLI_ORIGIN_FILE)
            return err_set(e, ERR_INVALID, "%s: %s: %s", s->where, s->key, why.msg);
        return err_set(e, ERR_INVALID, "%s %s: %s", s->origin == CLI_ORIGIN_ENV ? "env" : "flag",
                       s->origin == CLI_ORIGIN_ENV ? s->where : s->key, why.msg);
    }
    return 0;
}

/* A value that failed validation never reaches here (main validates first); a caller
 * that skipped validation still gets the default, never garbage. */
int64_t cli_config_int(const CliConfig *c, const char *key, int64_t dflt)
{
    const char *v = cli_config_get(c, key);
    int64_t n;
    return v && util_parse_i64(v, &n) == 0 ? n : dflt;
}

double cli_config_double(const CliConfig *c, const char *key, double dflt)
{
    const char *v = cli_config_get(c, key);
    double x;
    return v && parse_double(v, &x) == 0 ? x : dflt;
}

int cli_config_bool(const CliConfig *c, const char *key, int dflt)
{
    const char *v = cli_config_get(c, key);
    int b;
    return v && parse_bool(v, &b) == 0 ? b : dflt;
}

const char *cli_config_db_url(CliConfig *c)
{
    if (!c->db) {
        const char *v = cli_config_get(c, "db");
        c->db = v ? xstrdup(v) : xasprintf("sqlite:%s/sluice.db", c->state_dir);
    }
    return c->db;
}

const char *cli_config_log_dir(CliConfig *c)
{
    if (!c->log_dir) {
        const char *v = cli_config_get(c, "log-dir");
        c->log_dir = v ? xstrdup(v) : xasprintf("%s/build-logs", c->state_dir);
    }
    return c->log_dir;
}

void cli_config_dispose(CliConfig *c)
{
    for (size_t i = 0; i < c->n_set; i++) {
        free(c->set[i].key);
        free(c->set[i].value);
        free(c->set[i].where);
    }
    free(c->set);
    strvec_dispose(&c->files);
    strvec_dispose(&c->warnings);
    free(c->state_dir);
    free(c->config_file);
    free(c->db);
    free(c->machines);
    free(c->store);
    free(c->log_dir);
    free(c->http);
    free(c->http_admin_token);
    memset(c, 0, sizeof *c);
}

void cli_config_init(CliConfig *c)
{
    memset(c, 0, sizeof *c);
    strvec_init(&c->files);
    strvec_init(&c->warnings);
}

/* ---------------------------------------------------------------- loading */

static char *default_state_dir(void)
{
    const char *home = getenv("HOME");
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *service = getenv("STATE_DIRECTORY"); /* systemd StateDirectory= */
    if (service && *service)
        return xstrndup(service, strcspn(service, ":"));
    if (xdg && *xdg)
        return xasprintf("%s/sluice", xdg);
    if (home && *home)
        return xasprintf("%s/.local/state/sluice", home);
    return xstrdup("/var/lib/sluice");
}

static void load_env(CliConfig *cfg)
{
    size_t n;
    const CliSettingDef *d = cli_settings(&n);
    for (size_t i = 0; i < n; i++) {
        const char *v = d[i].env ? getenv(d[i].env) : NULL;
        if (v && *v)
            cli_config_set(cfg, d[i].key, v, CLI_ORIGIN_ENV, d[i].env);
    }
}

static void take_state_dir(CliConfig *cfg)
{
    const char *sd = cli_config_get(cfg, "state-dir");
    free(cfg->state_dir);
    cfg->state_dir = sd ? xstrdup(sd) : default_state_dir();
}

/* The configuration files (see the top of this file). */
static int load_files(CliConfig *cfg, Err *e)
{
    const char *explicit = cli_config_get(cfg, "config");
    const char *dir = getenv("SLUICE_CONF_DIR");
    char *system;
    int rc;
    if (explicit) {
        cfg->config_file = xstrdup(explicit);
        rc = cli_config_load_file(cfg, explicit, 1, e);
        take_state_dir(cfg);
        return rc;
    }
    system = xasprintf("%s/sluice.conf", dir && *dir ? dir : "/etc/sluice");
    rc = cli_config_load_file(cfg, system, 0, e);
    free(system);
    if (rc < 0)
        return rc;
    take_state_dir(cfg);
    cfg->config_file = xasprintf("%s/sluice.conf", cfg->state_dir);
    rc = cli_config_load_file(cfg, cfg->config_file, 0, e);
    take_state_dir(cfg); /* the state dir's file may move it (when no flag or env did) */
    return rc;
}

static char *dup_opt(const CliConfig *c, const char *key)
{
    const char *v = cli_config_get(c, key);
    return v ? xstrdup(v) : NULL;
}

/* Hydra's hydra.conf (hydra-conf, env HYDRA_CONFIG): each setting it implies that
 * nothing else set, with the file as its origin; a warning per ignored key. */
static int load_hydra_conf(CliConfig *cfg, Err *e)
{
    const char *path = cli_config_get(cfg, "hydra-conf");
    CliHydraConf h;
    int rc;
    if (!path || !*path)
        return 0;
    cli_hydra_conf_init(&h);
    rc = cli_hydra_conf_read(&h, path, e);
    for (size_t i = 0; rc == 0 && i < h.warnings.n; i++)
        strvec_push(&cfg->warnings, h.warnings.v[i]);
    for (size_t i = 0; rc == 0 && i < h.keys.n; i++)
        if (!cli_config_get(cfg, h.keys.v[i]))
            cli_config_set(cfg, h.keys.v[i], h.values.v[i], CLI_ORIGIN_FILE, path);
    cli_hydra_conf_dispose(&h);
    return rc;
}

int cli_config_load(CliConfig *cfg, Err *e)
{
    int rc;
    load_env(cfg);
    if ((rc = load_files(cfg, e)) < 0)
        return rc;
    if ((rc = load_hydra_conf(cfg, e)) < 0)
        return rc;
    if ((rc = cli_config_validate(cfg, e)) < 0)
        return rc;
    /* GC roots and the default database live under it: make it absolute once. */
    if (cfg->state_dir[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return err_sys(e, ERR_IO, "cannot resolve relative state dir %s", cfg->state_dir);
        char *abs = xasprintf("%s/%s", cwd, cfg->state_dir);
        free(cfg->state_dir);
        cfg->state_dir = abs;
    }
    cfg->machines = dup_opt(cfg, "machines");
    cfg->store = dup_opt(cfg, "store");
    cfg->http = dup_opt(cfg, "http");
    cfg->http_admin_token = dup_opt(cfg, "http-admin-token");
    return 0;
}
