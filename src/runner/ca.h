/*
 * ca.h: ca.c's functions: CA resolution on the graph side and realisation
 * registration.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_CA_H
#define SLUICE_RUNNER_CA_H

#include "runner/core.h"

void runner__attach_resolved(Runner *r, Db *db, const char *drv_path, const char *rpath,
                             const NixDrv *rd, int prebuilt, const StrVec *names,
                             const StrVec *paths);

void runner__register_realisations(Runner *r, StoreConn *c, Worker *w, const NixDrv *basic,
                                   const StoreBuildResult *res, char *const *names,
                                   char *const *paths, size_t n);

#endif
