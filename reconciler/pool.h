/* A small fixed pool of threads working through numbered jobs. */
#pragma once

#include <stddef.h>

/* Runs fn(ctx, worker, i) for every i in [0, n), taken in increasing order
 * by up to `threads` threads (the calling thread is one of them; worker is
 * 0 .. threads-1, distinct among the jobs running at once).  Returns once
 * every job is done.  Fewer threads are used when fewer can be started or
 * there are fewer jobs. */
void zr_pool_run(size_t n, unsigned threads, void (*fn)(void *ctx, unsigned worker, size_t i),
                 void *ctx);
