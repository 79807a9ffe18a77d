#include <pthread.h>
#include <stdatomic.h>

#include "pool.h"
#include "util.h"

struct pool {
    void (*fn)(void *ctx, unsigned worker, size_t i);
    void *ctx;
    size_t n;
    atomic_size_t next;
};

struct pool_worker {
    struct pool *pool;
    unsigned index;
};

static void *pool_work(void *arg)
{
    const struct pool_worker *w = arg;
    struct pool *p = w->pool;
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n)
            break;
        p->fn(p->ctx, w->index, i);
    }
    return NULL;
}

void zr_pool_run(size_t n, unsigned threads, void (*fn)(void *ctx, unsigned worker, size_t i),
                 void *ctx)
{
    struct pool p = {.fn = fn, .ctx = ctx, .n = n};
    atomic_init(&p.next, 0);
    size_t extra = threads > 1 ? threads - 1 : 0;
    if (extra + 1 > n)
        extra = n > 0 ? n - 1 : 0;
    _cleanup_free_ pthread_t *ids = zr_new0(pthread_t, extra);
    _cleanup_free_ struct pool_worker *workers = zr_new0(struct pool_worker, extra + 1);
    size_t started = 0;
    for (; started < extra; started++) {
        workers[started + 1] = (struct pool_worker){&p, (unsigned)started + 1};
        if (pthread_create(&ids[started], NULL, pool_work, &workers[started + 1]) != 0)
            break;
    }
    workers[0] = (struct pool_worker){&p, 0};
    pool_work(&workers[0]);
    for (size_t i = 0; i < started; i++)
        pthread_join(ids[i], NULL);
}
