/* cli_run.h: what `sluice run` shares with `sluice build` (cli/ internal). */
#ifndef SLUICE_CLI_RUN_H
#define SLUICE_CLI_RUN_H

#include "cli/cli.h"
#include "runner/runner.h"

void cli_runner_options(CliConfig *cfg, RunnerOptions *o);
/* Run r until it stops: SIGINT/SIGTERM stop it, SIGHUP re-reads cfg (may be NULL). */
int cli_run_runner(Runner *r, CliConfig *cfg, Err *e);
/* Tell systemd (NOTIFY_SOCKET) a state: "READY=1", "STOPPING=1", ... */
void cli_sd_notify(const char *state);

#endif
