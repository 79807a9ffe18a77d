/* zr_pool_run: every job once, worker numbers that are never shared by two
 * jobs running at once, and as many jobs in flight as threads asked for
 * (apply's workers rely on the last two: a worker number picks the slot a
 * live detach waits in). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "pool.h"

#define MAX_JOBS 200
#define MAX_WORKERS 8

struct record {
    atomic_uint runs[MAX_JOBS];
    atomic_uint busy[MAX_WORKERS]; /* jobs running on each worker number */
    atomic_uint running, most_running;
    atomic_uint shared;   /* a worker number seen on two jobs at once */
    atomic_uint too_high; /* a worker number >= threads */
    unsigned threads;
    unsigned at_once; /* jobs that must run at once: threads, or fewer jobs */
};

static void job(void *ctx, unsigned worker, size_t i)
{
    struct record *r = ctx;
    if (worker >= r->threads || worker >= MAX_WORKERS) {
        atomic_fetch_add(&r->too_high, 1);
        return;
    }
    if (atomic_fetch_add(&r->busy[worker], 1) != 0)
        atomic_fetch_add(&r->shared, 1);
    unsigned now = atomic_fetch_add(&r->running, 1) + 1;
    for (unsigned seen = atomic_load(&r->most_running);
         now > seen && !atomic_compare_exchange_weak(&r->most_running, &seen, now);)
        ;
    /* The first jobs wait (up to 10 s, a safety net) until as many run as
     * the pool can run at once, so it must start them all together. */
    for (unsigned k = 0; i < r->at_once && k < 10000 && atomic_load(&r->most_running) < r->at_once;
         k++)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    atomic_fetch_add(&r->runs[i], 1);
    atomic_fetch_sub(&r->running, 1);
    atomic_fetch_sub(&r->busy[worker], 1);
}

static void run(size_t n, unsigned threads, struct record *r)
{
    *r = (struct record){.threads = threads ? threads : 1};
    r->at_once = n < r->threads ? (unsigned)n : r->threads;
    zr_pool_run(n, threads, job, r);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(atomic_load(&r->runs[i]), 1, "job %zu ran %u times", i,
                     atomic_load(&r->runs[i]));
    for (size_t i = n; i < MAX_JOBS; i++)
        cr_expect_eq(atomic_load(&r->runs[i]), 0, "job %zu is not one of the %zu", i, n);
    cr_expect_eq(atomic_load(&r->shared), 0, "a worker number ran two jobs at once");
    cr_expect_eq(atomic_load(&r->too_high), 0, "a worker number >= %u", r->threads);
}

Test(pool, every_job_once_on_four_workers)
{
    static struct record r;
    run(MAX_JOBS, 4, &r);
    cr_expect_eq(atomic_load(&r.most_running), 4, "%u jobs at once, not 4",
                 atomic_load(&r.most_running));
}

Test(pool, one_thread_runs_in_turn)
{
    static struct record r;
    run(50, 1, &r);
    cr_expect_eq(atomic_load(&r.most_running), 1);
}

Test(pool, zero_threads_is_one)
{
    static struct record r;
    run(20, 0, &r);
    cr_expect_eq(atomic_load(&r.most_running), 1);
}

Test(pool, fewer_jobs_than_threads)
{
    static struct record r;
    run(3, 8, &r);
    cr_expect_eq(atomic_load(&r.most_running), 3);
}

Test(pool, no_jobs)
{
    static struct record r;
    run(0, 4, &r);
    cr_expect_eq(atomic_load(&r.most_running), 0);
}
