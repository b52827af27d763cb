/*
 * lock.c: the graph lock (Runner.lock) and its checks.  Every function that needs the
 * lock asserts that the calling thread holds it (RUNNER_ASSERT_LOCKED); debug builds
 * (without NDEBUG, the default) record the owner for that.  Also the wake-up of the
 * dispatcher (Runner.cond, signalled under the lock).
 *
 * Lock order (a thread holding one may take only those after it):
 *
 *   Runner.lock  ->  Runner.db_lock  ->  Worker.conn_lock
 *   Runner.hash_lock is never held together with Runner.lock
 *
 * No I/O, protocol or database work is done while holding Runner.lock.
 */
#include <pthread.h>
#include <stdint.h>

#include "runner/lock.h"

static uintptr_t self_id(void)
{
    return (uintptr_t)pthread_self();
}

void runner__lock(Runner *r)
{
    pthread_mutex_lock(&r->lock);
#ifndef NDEBUG
    atomic_store_explicit(&r->lock_owner, self_id(), memory_order_relaxed);
#endif
}

void runner__unlock(Runner *r)
{
#ifndef NDEBUG
    atomic_store_explicit(&r->lock_owner, 0, memory_order_relaxed);
#endif
    pthread_mutex_unlock(&r->lock);
}

int runner__lock_held(const Runner *r)
{
#ifndef NDEBUG
    return atomic_load_explicit(&((Runner *)r)->lock_owner, memory_order_relaxed) == self_id();
#else
    (void)r;
    return 1;
#endif
}

/* Wait on Runner.cond (the lock is released meanwhile); abs NULL: no deadline. */
void runner__cond_wait(Runner *r, const struct timespec *abs)
{
    RUNNER_ASSERT_LOCKED(r);
#ifndef NDEBUG
    atomic_store_explicit(&r->lock_owner, 0, memory_order_relaxed);
#endif
    if (abs)
        pthread_cond_timedwait(&r->cond, &r->lock, abs);
    else
        pthread_cond_wait(&r->cond, &r->lock);
#ifndef NDEBUG
    atomic_store_explicit(&r->lock_owner, self_id(), memory_order_relaxed);
#endif
}

void runner__graph_wake_dispatcher(Runner *r)
{
    RUNNER_ASSERT_LOCKED(r);
    r->dispatch_pending = 1;
    pthread_cond_broadcast(&r->cond);
}
