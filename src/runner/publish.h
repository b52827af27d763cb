/*
 * publish.h: publish.c's functions: the binary cache (store-uri) and the upload pool.
 * For src/runner/ only.
 */
#ifndef SLUICE_RUNNER_PUBLISH_H
#define SLUICE_RUNNER_PUBLISH_H

#include "runner/core.h"

int runner__cache_open(Runner *r, Err *e);

/* Record in sluice_uploads that w's outputs are on their way to the cache (before its
 * upload is handed over); runner__cache_publish_step drops the row once they are there.
 * runner__uploads_resume: a thread hands the rows a previous runner left over to the
 * upload pool (no-op without a cache). */
void runner__cache_pending_add(Runner *r, Worker *w, int two_phase, const StrVec *out_paths);
void runner__uploads_resume(Runner *r);

void runner__cache_publish_step(Runner *r, Worker *w, const NixDrv *drv, int two_phase,
                                const StrVec *out_paths, int *status, int *can_retry, char **msg);

/* {"url", "nrNars", "narBytes", "uploadedBytes", ..., "nrFailures", "uploadSeconds"} or NULL
 * without a cache (caller-owned) */
struct json_t *runner__cache_status_json(Runner *r);

int runner__cache_publish_cached(Runner *r, const char *drv_path, char *const *out_paths, size_t n,
                                 Err *e);

/* The upload pool: built steps' uploads run on their own threads (at most
 * RUNNER_UPLOAD_THREADS), never on the dispatcher nor in a machine slot.  Hand w's upload
 * over (w NULL: an upload that is no step's): w's machine slot is given back
 * (runner__worker_release_slot), then fn(arg, interrupted) runs on a pool thread; interrupted is 1
 * when the runner stops before the upload began (fn then records the step as interrupted).  When
 * RUNNER_UPLOAD_QUEUE uploads wait already, the caller waits for room first (holding its
 * slot: a cache slower than the builds slows the builds, memory stays bounded). */
#define RUNNER_UPLOAD_THREADS 4
#define RUNNER_UPLOAD_QUEUE   64
typedef void (*RunnerUploadFn)(void *arg, int interrupted);
void runner__upload_submit(Runner *r, Worker *w, RunnerUploadFn fn, void *arg);

/* Wake idle pool threads (the runner stops); free the pool (no thread left). */
void runner__uploads_wake(Runner *r);
void runner__uploads_free(Runner *r);

#endif
