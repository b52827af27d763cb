/*
 * graph.h: graph.c's functions: the in-memory step graph: steps, builds, deps,
 * priorities, jobsets charged.  For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_GRAPH_H
#define SLUICE_RUNNER_GRAPH_H

#include "runner/core.h"

void runner__graph_step_add_jobset(Runner *r, Step *s, int64_t jobset_id);
void runner__graph_charge_jobsets(Runner *r, const Step *s, int64_t start, int64_t stop);
Step *runner__graph_step_get(Runner *r, const char *drv_path);

Step *runner__graph_step_new(Runner *r, const char *drv_path, const char *system,
                             const char *features, int kind, int two_phase);
void runner__graph_step_free(Step *s);
void runner__graph_add_dep(Runner *r, Step *s, Step *dep);
Build *runner__graph_build_get(Runner *r, int64_t id);
void runner__graph_build_attach(Runner *r, Build *b, Step *top);
void runner__graph_propagate_priorities(Runner *r, Build *b, Step *top);
void runner__graph_step_ready(Runner *r, Step *s);
void runner__graph_step_done(Runner *r, Step *s, PtrVec *finished_builds);
void runner__graph_dependent_builds(Runner *r, Step *s, PtrVec *out);
void runner__graph_step_forget(Runner *r, Step *s);
void runner__graph_fail_with_rdeps(Runner *r, Step *s);
void runner__graph_build_forget(Runner *r, Build *b);
void runner__graph_step_redirect(Runner *r, Step *p, Step *q);
void runner__graph_step_succeeded(Runner *r, Step *s);

#endif
