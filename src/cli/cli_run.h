/* cli_run.h: what `sluice run` shares with `sluice build` (cli/ internal). */
#ifndef SLUICE_CLI_RUN_H
#define SLUICE_CLI_RUN_H

#include "cli/cli.h"
#include "runner/runner.h"

void cli_runner_options(CliConfig *cfg, RunnerOptions *o);
int cli_run_runner(Runner *r, Err *e);

#endif
