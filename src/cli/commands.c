/*
 * commands.c: the table of `sluice` commands with their help text: the one text that
 * `sluice --help`, `sluice COMMAND --help` and the man pages (`make man`) print.
 */
#include <string.h>

#include "cli/cli.h"

#define EVAL_OPTIONS                                                                               \
    "  -A, --attr ATTR          attribute path of FILE.nix to build (repeatable)\n"                \
    "  --arg NAME EXPR          pass NAME = EXPR to FILE.nix's function\n"                         \
    "  --argstr NAME VALUE      pass NAME = \"VALUE\" to FILE.nix's function\n"                    \
    "  -I PATH                  add PATH to the Nix search path (as NIX_PATH does)\n"              \
    "  -E, --expr EXPR          build the Nix expression EXPR instead of a file\n"

#define SUBMIT_OPTIONS                                                                             \
    "  --project NAME           Hydra project of the builds (default sluice)\n"                    \
    "  --jobset NAME            Hydra jobset of the builds (default default)\n"                    \
    "  --priority N             Builds.priority (default meta.schedulingPriority or 100)\n"        \
    "  --global-priority N      Builds.globalPriority (default 0)\n"                               \
    "  --timeout S              Builds.timeout (default meta.timeout)\n"                           \
    "  --max-silent S           Builds.maxsilent (default meta.maxSilent)\n"

#define STORE_OPTIONS                                                                              \
    "  --ssh-key FILE           ssh private key\n"                                                 \
    "  --host-key KEY           base64 public host key (as in a machines file)\n"                  \
    "  --timeout S              give up after S seconds\n"                                         \
    "  --connect-timeout S      ssh ConnectTimeout\n"                                              \
    "  --keepalive S            ssh ServerAliveInterval\n"                                         \
    "  --json                   print JSON\n"

/* clang-format off */
static const CliCommand commands[] = {
    {"drv show", cli_cmd_drv_show, "[-r] DRV...", "JSON of derivations as `nix show-derivation`",
     "  -r, --recursive          also every input derivation\n"},
    {"drv path", cli_cmd_drv_path, "[--name NAME] FILE", "store path of the .drv text in FILE",
     "  --name NAME              derivation name (default: from FILE's name)\n"},
    {"drv outputs", cli_cmd_drv_outputs, "DRV",
     "per output: NAME, path or placeholder, realisation id", NULL},
    {"drv resolve", cli_cmd_drv_resolve, "[--force] DRV [--input 'DRV!OUT=PATH']...",
     "resolve a CA derivation: its store path, then its ATerm",
     "  --input 'DRV!OUT=PATH'   actual output path of an input (repeatable)\n"
     "  --force                  resolve without changing DRV's own outputs\n"},
    {"drv graph", cli_cmd_drv_graph, "[--edges] (FILE.nix [-A ATTR]... | DRV...)",
     "derivation graph and the kind of each derivation",
     "  --edges                  one line per derivation and per edge instead of a tree\n"
     "  -A, --attr ATTR          attribute path of FILE.nix (repeatable)\n"
     "  --arg NAME EXPR          pass NAME = EXPR to FILE.nix's function\n"
     "  --argstr NAME VALUE      pass NAME = \"VALUE\" to FILE.nix's function\n"
     "  -I PATH                  add PATH to the Nix search path\n"},
    {"nar hash", cli_cmd_nar_hash, "[--base32|--base16|--base64|--sri] [--type ALGO] PATH...",
     "hash of a path's NAR serialisation, as `nix hash path`",
     "  --base32, --base16, --base64, --sri   output encoding (default sri)\n"
     "  --type ALGO              sha256 (default), sha512, sha1 or md5\n"},
    {"nar dump", cli_cmd_nar_dump, "PATH", "NAR serialisation of PATH on stdout, as "
     "`nix-store --dump`", NULL},
    {"store ping", cli_cmd_store_ping, "[options] URI",
     "connect to a store: protocol, version, trust, ca-derivations", STORE_OPTIONS},
    {"store copy", cli_cmd_store_copy, "--from URI --to URI [options] PATH...",
     "copy the closures of store paths between stores",
     "  --from URI               source store\n"
     "  --to URI                 destination store\n" STORE_OPTIONS},
    {"db init", cli_cmd_db_init, "", "create the schema (sluice's tables; Hydra's on an empty "
     "database)", NULL},
    {"db upgrade", cli_cmd_db_upgrade, "",
     "apply Hydra's later schema migrations (as hydra-init does), then db init", NULL},
    {"db check", cli_cmd_db_check, "", "schema versions and what is missing", NULL},
    {"submit", cli_cmd_submit, "[options] (FILE.nix [-A ATTR]... | DRV...)",
     "queue builds as Hydra's evaluator does; prints their ids",
     SUBMIT_OPTIONS EVAL_OPTIONS
     "  --dry-run                print what would be built and fetched, submit nothing\n"},
    {"run", cli_cmd_run, "[--once | --build-one BUILD]", "the queue runner (the service)",
     "  --once                   stop when no unfinished build is left\n"
     "  --build-one BUILD        build this build alone and exit, as Hydra's runner does: 0\n"
     "                           once it is finished (any status), 1 when its own step fails\n"
     "                           transiently (not retried) or there is no such build\n"
     "  --http ADDR:PORT         HTTP server (status, metrics, logs, dashboard)\n"},
    {"build", cli_cmd_build, "[options] (FILE.nix [-A ATTR]... | -E EXPR | DRV...)",
     "build like nix-build: queue, build, link ./result, print the output paths",
     "  -o, --out-link PATH      name of the result symlink (default result)\n"
     "  --no-out-link            make no result symlink\n"
     "  -L, --print-build-logs   print build logs, each line prefixed by the drv name\n"
     "  -j, --max-jobs N         build at most N derivations at once locally\n"
     "  -k, --keep-going         keep building the others after one fails\n"
     "  --dry-run                print what would be built and fetched, build nothing\n"
     "  --keep-queued            on Ctrl-C leave the builds queued instead of cancelling them\n"
     SUBMIT_OPTIONS EVAL_OPTIONS},
    {"status", cli_cmd_status, "[--json]", "runner and queue summary, running steps, machines",
     "  --json                   print JSON\n"},
    {"builds", cli_cmd_builds, "[--queued] [--limit N] [--json]", "list builds, newest first",
     "  --queued                 only unfinished builds\n"
     "  --limit N                at most N builds (default 50)\n"
     "  --json                   print JSON\n"},
    {"steps", cli_cmd_steps, "[--json] BUILD", "the steps of a build",
     "  --json                   print JSON\n"},
    {"log", cli_cmd_log, "[-f] BUILD [STEP]",
     "a step's log: the running step, else the build's own step",
     "  -f, --follow             keep printing the running step's log until it ends\n"},
    {"restart", cli_cmd_restart, "BUILD...",
     "queue finished builds again, as Hydra's Restart (clears their cached failures)", NULL},
    {"cancel", cli_cmd_cancel, "BUILD...", "cancel queued builds, as Hydra's Cancel", NULL},
    {"bump", cli_cmd_bump, "[--priority N] BUILD...",
     "move builds to the front of the queue, as Hydra's Bump",
     "  --priority N             Builds.globalPriority to set (default: now, as Hydra)\n"},
    {"clear-failed", cli_cmd_clear_failed, "[DRV|PATH...]",
     "forget cached failures (FailedPaths): all, or those of the given drvs or paths", NULL},
    {"cache publish", cli_cmd_cache_publish, "[--log DRV=FILE]... ITEM...",
     "publish to the binary cache (store-uri) the closures of store paths, and the outputs of "
     "DRV or DRV!OUT (CA ones with their realisations)",
     "  --log DRV=FILE           upload FILE (zstd when it ends in .zst) as DRV's log\n"},
    {"config", cli_cmd_config, "", "every setting in effect, with where it came from",
     NULL},
};
/* clang-format on */

const CliCommand *cli_commands(size_t *n)
{
    *n = UTIL_ARRAY_LEN(commands);
    return commands;
}

const char *cli_version(void)
{
    return SLUICE_VERSION;
}

void cli_command_help(const CliCommand *c, FILE *f)
{
    fprintf(f, "usage: sluice %s%s%s\n\n%s\n", c->name, c->synopsis[0] ? " " : "", c->synopsis,
            c->summary);
    fprintf(f, "\noptions:\n%s", c->options ? c->options : "");
    fprintf(f, "  -h, --help               this text\n"
               "\nglobal flags (sluice --help) and every configuration key as --KEY VALUE are "
               "accepted too.\n");
}

/* roff: a line starting with '.' or '\'' is escaped, as are backslashes and dashes. */
static void roff_text(const char *s, size_t n, FILE *f)
{
    if (n && (s[0] == '.' || s[0] == '\''))
        fputs("\\&", f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\')
            fputs("\\e", f);
        else if (s[i] == '-')
            fputs("\\-", f);
        else
            fputc(s[i], f);
    }
}

/* "drv show" -> "drv-show" */
static void page_name(const CliCommand *c, char *page, size_t cap)
{
    size_t j = 0;
    for (const char *p = c->name; *p && j + 1 < cap; p++)
        page[j++] = *p == ' ' ? '-' : *p;
    page[j] = '\0';
}

static void cli_command_man(const CliCommand *c, FILE *f)
{
    char page[64];
    page_name(c, page, sizeof page);
    fprintf(f, ".TH SLUICE-%s 1 \"\" \"sluice %s\"\n.SH NAME\nsluice-", page, SLUICE_VERSION);
    roff_text(page, strlen(page), f);
    fputs(" \\- ", f);
    roff_text(c->summary, strlen(c->summary), f);
    fputs("\n.SH SYNOPSIS\n.B sluice ", f);
    roff_text(c->name, strlen(c->name), f);
    fputc(' ', f);
    roff_text(c->synopsis, strlen(c->synopsis), f);
    fputs("\n.SH OPTIONS\n", f);
    for (const char *p = c->options ? c->options : ""; *p;) {
        const char *nl = strchr(p, '\n'), *gap;
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        while (n && *p == ' ')
            p++, n--;
        gap = strstr(p, "   ");
        fputs(".TP\n.B ", f);
        if (gap && gap < p + n) {
            const char *d = gap;
            roff_text(p, (size_t)(gap - p), f);
            fputc('\n', f);
            while (*d == ' ')
                d++;
            roff_text(d, (size_t)(p + n - d), f);
        } else {
            roff_text(p, n, f);
        }
        fputc('\n', f);
        p += n + (nl ? 1 : 0);
    }
    fputs(".SH SEE ALSO\n.BR sluice (1),\n.BR sluice.conf (5)\n", f);
}

/* sluice(1): the commands and the global flags. */
static void main_man(FILE *f)
{
    size_t n;
    const CliCommand *cmds = cli_commands(&n);
    fprintf(f,
            ".TH SLUICE 1 \"\" \"sluice %s\"\n.SH NAME\nsluice \\- a build-farm queue "
            "runner for Nix, compatible with Hydra\n.SH SYNOPSIS\n.B sluice\n"
            "[\\-\\-state\\-dir DIR] [\\-\\-config FILE] [\\-\\-db URL] COMMAND [ARGS]\n"
            ".SH COMMANDS\n",
            SLUICE_VERSION);
    for (size_t i = 0; i < n; i++) {
        char page[64];
        page_name(&cmds[i], page, sizeof page);
        fputs(".TP\n.B ", f);
        roff_text(cmds[i].name, strlen(cmds[i].name), f);
        fputc('\n', f);
        roff_text(cmds[i].summary, strlen(cmds[i].summary), f);
        fprintf(f, " (\\fBsluice\\-%s\\fR(1))\n", page);
    }
    fputs(".SH GLOBAL FLAGS\n.TP\n.B \\-\\-KEY VALUE\nany configuration key "
          "(\\fBsluice.conf\\fR(5)), before or after the command\n.TP\n.B \\-v, "
          "\\-\\-verbose\nmore logging\n.TP\n.B \\-\\-version\nthe version\n"
          ".SH SEE ALSO\n.BR sluice.conf (5)\n",
          f);
}

/* sluice.conf(5): every key of the table in config.c. */
static void conf_man(FILE *f)
{
    size_t n;
    const CliSettingDef *d = cli_settings(&n);
    fprintf(f,
            ".TH SLUICE.CONF 5 \"\" \"sluice %s\"\n.SH NAME\nsluice.conf \\- sluice's "
            "configuration\n.SH DESCRIPTION\nLines \\fIkey\\fR = \\fIvalue\\fR as in "
            "nix.conf: # starts a comment anywhere on a line; include FILE and !include "
            "FILE read another file.  Read from \\-\\-config FILE or $SLUICE_CONFIG, "
            "else /etc/sluice/sluice.conf then STATE_DIR/sluice.conf.  The environment "
            "and flags (\\-\\-KEY VALUE) override the file; \\fBsluice config\\fR "
            "prints every value with its origin.\n.SH KEYS\n",
            SLUICE_VERSION);
    for (size_t i = 0; i < n; i++) {
        fputs(".TP\n.B ", f);
        roff_text(d[i].key, strlen(d[i].key), f);
        fputc('\n', f);
        roff_text(d[i].help, strlen(d[i].help), f);
        if (d[i].dflt) {
            fputs(" (default ", f);
            roff_text(d[i].dflt, strlen(d[i].dflt), f);
            fputc(')', f);
        }
        if (d[i].env)
            fprintf(f, "; environment %s", d[i].env);
        fputc('\n', f);
    }
    fputs(".SH SEE ALSO\n.BR sluice (1)\n", f);
}

int cli_man_page(const char *name, FILE *f)
{
    size_t n;
    const CliCommand *cmds = cli_commands(&n);
    char page[80];
    if (!name) {
        fputs("sluice\nsluice.conf\n", f);
        for (size_t i = 0; i < n; i++) {
            page_name(&cmds[i], page, sizeof page);
            fprintf(f, "sluice-%s\n", page);
        }
        return 0;
    }
    if (strcmp(name, "sluice") == 0) {
        main_man(f);
        return 0;
    }
    if (strcmp(name, "sluice.conf") == 0) {
        conf_man(f);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        page_name(&cmds[i], page, sizeof page);
        if (util_starts_with(name, "sluice-") && strcmp(name + 7, page) == 0) {
            cli_command_man(&cmds[i], f);
            return 0;
        }
    }
    return -1;
}
