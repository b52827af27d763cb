/*
 * inputs.h: inputs.c's functions: the input paths of a derivation, from the store or
 * the DB's recorded outputs.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_INPUTS_H
#define SLUICE_RUNNER_INPUTS_H

#include "runner/core.h"

int runner__input_output_path(Runner *r, Db *db, StoreConn *local, const char *drv_path,
                              const char *output, char **out, Err *e);

int runner__collect_inputs(Runner *r, Db *db, StoreConn *local, const NixDrv *d, NixInputPath **out,
                           size_t *n_out, char **missing_drv, char **missing_out, Err *e);
void runner__inputs_free(NixInputPath *v, size_t n);

#endif
