/*
 * cli: the `sluice` command.  main.c reads the configuration (defaults, config file,
 * environment, flags) and dispatches to a subcommand.  Every configuration key is also
 * a flag `--KEY VALUE` (or `--KEY=VALUE`) accepted before or after the subcommand;
 * what remains is handed to the subcommand.
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include "util/util.h"

/* Where a setting's value came from; a higher origin wins over a lower one. */
typedef enum {
    CLI_ORIGIN_DEFAULT = 0,
    CLI_ORIGIN_FILE,
    CLI_ORIGIN_ENV,
    CLI_ORIGIN_FLAG,
} CliOrigin;

typedef enum { CLI_T_STRING, CLI_T_INT, CLI_T_DOUBLE, CLI_T_BOOL } CliType;

/* One known key of sluice.conf (config.c's table). */
typedef struct CliSettingDef {
    const char *key;
    CliType type;
    const char *dflt; /* shown by `sluice config`; NULL: unset or derived */
    const char *env;  /* environment variable that sets it, or NULL */
    int secret;       /* masked by `sluice config` */
    int64_t min;      /* CLI_T_INT: smallest value */
    const char *help; /* one line */
} CliSettingDef;

/* One value that was set, with its origin.  where: "FILE:LINE", the environment
 * variable or the flag's key. */
typedef struct CliSetting {
    char *key, *value, *where;
    CliOrigin origin;
} CliSetting;

/* Configuration: every value set (any origin) plus the few paths everyone needs.
 * Strings are owned (NULL = unset). */
typedef struct CliConfig {
    char *state_dir;   /* absolute */
    char *config_file; /* --config / SLUICE_CONFIG, else STATE_DIR/sluice.conf */
    char *db;          /* db: sqlite:PATH or postgresql://... (default sqlite:STATE/sluice.db) */
    char *machines;    /* machines file (Nix format) */
    char *store;   /* local store URI: "local" (child nix-daemon --stdio), "daemon", unix://PATH */
    char *log_dir; /* log-dir (default STATE/build-logs) */
    char *http;    /* http ADDR:PORT */
    char *http_admin_token;
    CliSetting *set;
    size_t n_set;
    StrVec files;    /* configuration files read, in order */
    StrVec warnings; /* unknown keys and the like, printed once by main */
    int verbose;
} CliConfig;

void cli_config_init(CliConfig *c);
void cli_config_dispose(CliConfig *c);
/* The table of known keys. */
const CliSettingDef *cli_settings(size_t *n);
const CliSettingDef *cli_setting_find(const char *key);
/* The known key nearest to a misspelt one, or NULL when none is close. */
const char *cli_setting_nearest(const char *key);
/* Set key unless a higher origin already did; 1 when set. */
int cli_config_set(CliConfig *c, const char *key, const char *value, CliOrigin origin,
                   const char *where);
/* Read a configuration file (nix.conf's syntax, see config.c) into c at
 * CLI_ORIGIN_FILE; a missing file is ERR_NOTFOUND only when must_exist. */
int cli_config_load_file(CliConfig *c, const char *path, int must_exist, Err *e) UTIL_WUR;
/* After the flags were set: the environment, the configuration files, validation,
 * an absolute state dir and the paths in CliConfig.  Warnings land in c->warnings. */
int cli_config_load(CliConfig *c, Err *e) UTIL_WUR;
/* Every known key's value against its type: ERR_INVALID naming the key and where it
 * was set. */
int cli_config_validate(const CliConfig *c, Err *e) UTIL_WUR;

/* Look up any configuration key (flag, env or file); NULL when unset. */
const char *cli_config_get(const CliConfig *c, const char *key);
CliOrigin cli_config_origin(const CliConfig *c, const char *key, const char **where);
const char *cli_origin_name(CliOrigin o);
/* Typed values (validated by cli_config_validate) with a default when unset. */
int64_t cli_config_int(const CliConfig *c, const char *key, int64_t dflt);
double cli_config_double(const CliConfig *c, const char *key, double dflt);
/* log-level: "error", "warn", "info", "debug" or 0..3 as LOG_*; -1 for anything else. */
int cli_log_level_parse(const char *v);
/* The level log-level sets (LOG_INFO when unset); --verbose is added by the caller. */
int cli_config_log_level(const CliConfig *c);
int cli_config_bool(const CliConfig *c, const char *key, int dflt);
/* The database URL (default sqlite:STATE_DIR/sluice.db); borrowed. */
const char *cli_config_db_url(CliConfig *c);
/* The log directory (default STATE_DIR/build-logs); borrowed. */
const char *cli_config_log_dir(CliConfig *c);

/* Hydra's hydra.conf (hydra_conf.c): the sluice settings it implies (keys[i] =
 * values[i], sluice's key names) and one warning per key of Hydra's runner that sluice
 * ignores.  The caller applies them under sluice.conf, the environment and flags. */
typedef struct CliHydraConf {
    StrVec keys, values;
    StrVec warnings;
} CliHydraConf;
void cli_hydra_conf_init(CliHydraConf *h);
void cli_hydra_conf_dispose(CliHydraConf *h);
/* Parse the text of a hydra.conf (modified in place); path is for messages.  A byte
 * count or number of seconds that is not a non-negative integer is ERR_INVALID. */
int cli_hydra_conf_parse(CliHydraConf *h, const char *path, char *text, Err *e) UTIL_WUR;
int cli_hydra_conf_read(CliHydraConf *h, const char *path, Err *e) UTIL_WUR;

typedef int (*CliCmdFn)(CliConfig *cfg, int argc, char **argv);

typedef struct CliCommand {
    const char *name; /* "drv show", "run", ... (two words for grouped commands) */
    CliCmdFn fn;
    const char *synopsis; /* arguments after the name, one line */
    const char *summary;  /* what it does, one line */
    const char *options;  /* "  -x, --long ARG   what it does\n" lines; NULL: none */
} CliCommand;

/* Every command (commands.c), in the order `sluice --help` lists them. */
const CliCommand *cli_commands(size_t *n);
/* `sluice COMMAND --help`: synopsis, summary, every option a line. */
void cli_command_help(const CliCommand *c, FILE *f);
/* Man pages (roff) from the same text, for `make man`: NAME "sluice", "sluice.conf" or
 * "sluice-drv-show"...; NULL lists the names.  -1 for an unknown name. */
int cli_man_page(const char *name, FILE *f);
/* sluice's version ("0.4.0" or what the build was given). */
const char *cli_version(void);

/* Print "sluice: <msg>" to stderr. */
void cli_error(const char *fmt, ...) UTIL_PRINTF(1, 2);
/* Report an Err and return exit status 1. */
int cli_fail(const Err *e);
/* s (text from the database) escaped for the terminal (util_text_escape); the copy is
 * kept in *keep until the caller disposes of it.  NULL stays NULL. */
const char *cli_esc(StrVec *keep, const char *s);

/* Submit builds as `sluice submit` does (argv as for submit: argv[0] the command
 * name); *ids receives the new build ids (caller frees).  Used by `sluice build`. */
int cli_submit_builds(CliConfig *cfg, int argc, char **argv, int64_t **ids, size_t *n, Err *e);

/* Read DRV: a store path /nix/store/<hash>-<name>.drv, or a file whose base name has
 * that form.  *key is the store path it stands for (caller frees); *out caller-owned. */
struct NixDrv;
int cli_drv_load(const char *arg, char **key, struct NixDrv **out, Err *e);

/* Run argv (argv[0] looked up in PATH, no shell) with stdout captured into out (capped
 * by out->max) and stderr passed through.  A non-zero exit is ERR_PEER. */
int cli_run_capture(char *const *argv, Buf *out, Err *e);

/* Subcommands (one file each: cmd_<verb>.c). argv[0] is the command name. */
int cli_cmd_drv_show(CliConfig *cfg, int argc, char **argv);
int cli_cmd_drv_path(CliConfig *cfg, int argc, char **argv);
int cli_cmd_drv_outputs(CliConfig *cfg, int argc, char **argv);
int cli_cmd_drv_resolve(CliConfig *cfg, int argc, char **argv);
int cli_cmd_drv_graph(CliConfig *cfg, int argc, char **argv);
int cli_cmd_nar_hash(CliConfig *cfg, int argc, char **argv);
int cli_cmd_nar_dump(CliConfig *cfg, int argc, char **argv);
int cli_cmd_store_ping(CliConfig *cfg, int argc, char **argv);
int cli_cmd_store_copy(CliConfig *cfg, int argc, char **argv);
int cli_cmd_db_init(CliConfig *cfg, int argc, char **argv);
int cli_cmd_db_upgrade(CliConfig *cfg, int argc, char **argv);
int cli_cmd_db_check(CliConfig *cfg, int argc, char **argv);
int cli_cmd_submit(CliConfig *cfg, int argc, char **argv);
int cli_cmd_run(CliConfig *cfg, int argc, char **argv);
int cli_cmd_build(CliConfig *cfg, int argc, char **argv);
int cli_cmd_status(CliConfig *cfg, int argc, char **argv);
int cli_cmd_builds(CliConfig *cfg, int argc, char **argv);
int cli_cmd_steps(CliConfig *cfg, int argc, char **argv);
int cli_cmd_log(CliConfig *cfg, int argc, char **argv);
int cli_cmd_config(CliConfig *cfg, int argc, char **argv);
int cli_cmd_restart(CliConfig *cfg, int argc, char **argv);
int cli_cmd_cancel(CliConfig *cfg, int argc, char **argv);
int cli_cmd_bump(CliConfig *cfg, int argc, char **argv);
int cli_cmd_clear_failed(CliConfig *cfg, int argc, char **argv);
int cli_cmd_cache_publish(CliConfig *cfg, int argc, char **argv);

#endif
