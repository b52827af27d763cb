/*
 * facts.h: facts.c's functions: facts about a step's outputs (sizes, nix-support).
 * For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_FACTS_H
#define SLUICE_RUNNER_FACTS_H

#include "runner/core.h"
#include "runner/rdb.h"

/* Facts about the outputs of a step, read from the local store. */
typedef struct OutputFacts {
    int failed; /* nix-support/failed */
    char *release_name;
    int64_t size, closure_size;
    struct RdbProduct *products;
    size_t n_products;
    struct RdbMetric *metrics;
    size_t n_metrics;
} OutputFacts;
void runner__output_facts_dispose(OutputFacts *f);

/* names: the output names (NULL: all "out"), for the default nix-build products. */
int runner__output_facts_collect(StoreConn *c, char *const *names, char *const *paths, size_t n,
                                 OutputFacts *f, Err *e);

#endif
