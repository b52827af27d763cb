/*
 * services.c: what every thread of the runner shares below the graph: the database
 * connection pool, the count of the runner's own threads (the last one out frees the
 * Runner through Runner.destroy when runner_free came first), the stop flag, and the
 * end of a build for --build / only-builds runs.
 */
#include <pthread.h>
#include <stdlib.h>

#include "runner/lock.h"
#include "runner/services.h"

int runner__db_get(Runner *r, Db **out, Err *e)
{
    pthread_mutex_lock(&r->db_lock);
    if (r->db_idle.n) {
        *out = r->db_idle.v[--r->db_idle.n];
        pthread_mutex_unlock(&r->db_lock);
        return 0;
    }
    pthread_mutex_unlock(&r->db_lock);
    if (db_open(r->opt.db_url, DB_OPEN_DEFAULT, out, e) < 0)
        return e->code ? e->code : ERR_DB;
    pthread_mutex_lock(&r->db_lock);
    ptrvec_push(&r->db_all, *out);
    if (atomic_load(&r->stopping))
        db_interrupt(*out); /* opened while stopping: no reconnect loop either */
    pthread_mutex_unlock(&r->db_lock);
    return 0;
}

void runner__db_put(Runner *r, Db *db)
{
    if (!db)
        return;
    pthread_mutex_lock(&r->db_lock);
    if (r->db_idle.n < 16) {
        ptrvec_push(&r->db_idle, db);
        db = NULL;
    } else {
        ptrvec_remove(&r->db_all, db);
    }
    pthread_mutex_unlock(&r->db_lock);
    db_close(db);
}

/* Stopping: every connection's reconnect loop (the database may be down) gives up at
 * once, so no thread waits out the reconnect timeout. */
static void interrupt_dbs(Runner *r)
{
    if (r->db)
        db_interrupt(r->db);
    pthread_mutex_lock(&r->db_lock);
    for (uint32_t i = 0; i < r->db_all.n; i++)
        db_interrupt(r->db_all.v[i]);
    pthread_mutex_unlock(&r->db_lock);
}

void runner__build_finished(Runner *r, int64_t id)
{
    runner__lock(r);
    for (size_t i = 0; i < r->opt.n_only_builds; i++)
        if (r->opt.only_builds[i] == id)
            r->only_left--;
    if (r->opt.n_only_builds && r->only_left <= 0)
        runner__stop_locked(r);
    runner__unlock(r);
}

void runner__stop_locked(Runner *r)
{
    atomic_store(&r->stopping, 1);
    pthread_cond_broadcast(&r->cond);
    interrupt_dbs(r);
}

void runner_stop(Runner *r)
{
    atomic_store(&r->stopping, 1);
    interrupt_dbs(r);
    runner__lock(r);
    pthread_cond_broadcast(&r->cond);
    runner__unlock(r);
}

int runner__thread_start(Runner *r, void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_attr_t a;
    int rc;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 1024 * 1024);
    runner__lock(r);
    r->threads++;
    runner__unlock(r);
    rc = pthread_create(&t, &a, fn, arg);
    pthread_attr_destroy(&a);
    if (rc != 0) {
        runner__lock(r);
        r->threads--;
        runner__unlock(r);
    }
    return rc;
}

void runner__thread_exit(Runner *r)
{
    int last;
    runner__lock(r);
    r->threads--;
    last = r->free_pending && r->threads == 0;
    pthread_cond_broadcast(&r->cond);
    runner__unlock(r);
    if (last)
        r->destroy(r);
}
