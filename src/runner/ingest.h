/*
 * ingest.h: ingest.c's functions: queue passes: new builds walked into the graph.
 * For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_INGEST_H
#define SLUICE_RUNNER_INGEST_H

#include "runner/core.h"
#include "runner/rdb.h"

int runner__drv_loader(void *payload, const char *drv_path, NixDrv **out, Err *e);
int runner__queue_pass(Runner *r, Db *db, Err *e);

#endif
