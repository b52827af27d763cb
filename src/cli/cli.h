/*
 * cli: the `sluice` command.  main.c reads the configuration (defaults, config file,
 * environment, flags) and dispatches to a subcommand.  Every configuration key is also
 * a flag `--KEY VALUE` (or `--KEY=VALUE`) accepted before or after the subcommand;
 * what remains is handed to the subcommand.
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include "util/util.h"

/* Configuration: every key of sluice.conf.  Strings are owned (NULL = unset). */
typedef struct CliConfig {
    char *state_dir;   /* state-dir; env SLUICE_STATE_DIR */
    char *config_file; /* config */
    char *db;          /* db: sqlite:PATH or postgresql://... (default sqlite:STATE/sluice.db) */
    char *machines;    /* machines file (Nix format) */
    char *store;   /* local store URI: "local" (child nix-daemon --stdio), "daemon", unix://PATH */
    char *log_dir; /* log-dir (default STATE/build-logs) */
    char *http;    /* http ADDR:PORT */
    char *http_admin_token;
    char **keys; /* every key=value pair seen (for subsystem-specific keys) */
    char **values;
    size_t n_kv;
    int verbose;
    const StrVec *flag_keys; /* keys set by a flag or the environment, not the config file
                                (borrowed; NULL when unknown) */
} CliConfig;

/* Look up any configuration key (flag, env or file); NULL when unset. */
const char *cli_config_get(const CliConfig *c, const char *key);
/* Integer value of a key with a default; invalid numbers are reported and give the default. */
int64_t cli_config_int(const CliConfig *c, const char *key, int64_t dflt);
/* The database URL (default sqlite:STATE_DIR/sluice.db); borrowed. */
const char *cli_config_db_url(CliConfig *c);
/* The log directory (default STATE_DIR/build-logs); borrowed. */
const char *cli_config_log_dir(CliConfig *c);

typedef int (*CliCmdFn)(CliConfig *cfg, int argc, char **argv);

typedef struct CliCommand {
    const char *name; /* "drv show", "run", ... (two words for grouped commands) */
    CliCmdFn fn;
    const char *usage; /* one line */
} CliCommand;

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
int cli_cmd_db_check(CliConfig *cfg, int argc, char **argv);
int cli_cmd_submit(CliConfig *cfg, int argc, char **argv);
int cli_cmd_run(CliConfig *cfg, int argc, char **argv);
int cli_cmd_build(CliConfig *cfg, int argc, char **argv);
int cli_cmd_status(CliConfig *cfg, int argc, char **argv);
int cli_cmd_builds(CliConfig *cfg, int argc, char **argv);
int cli_cmd_steps(CliConfig *cfg, int argc, char **argv);
int cli_cmd_log(CliConfig *cfg, int argc, char **argv);
int cli_cmd_config(CliConfig *cfg, int argc, char **argv);

#endif
