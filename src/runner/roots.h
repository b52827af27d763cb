/*
 * roots.h: roots.c's functions: GC roots of outputs and resolved derivations.  For
 * src/runner/ only.
 */
#ifndef SLUICE_RUNNER_ROOTS_H
#define SLUICE_RUNNER_ROOTS_H

#include "runner/core.h"

int runner__root_path(Runner *r, Db *db, StoreConn *c, const char *path, const char *kind,
                      int64_t build, Err *e);
void runner__root_output(Runner *r, Db *db, const char *path, int64_t build);
int runner__roots_release_build(Db *db, int64_t build, Err *e);
int runner__roots_reconcile(Runner *r, Db *db, Err *e);

#endif
