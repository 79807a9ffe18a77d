/* The fixed-point worklist.  See cascade.h. */
#include "cascade.h"
#include "util.h"

static void heap_push(struct zr_cascade *c, uint64_t key)
{
    size_t i = c->n_heap++;
    c->heap[i] = key;
    while (i > 0 && c->heap[(i - 1) / 2] > c->heap[i]) {
        uint64_t t = c->heap[i];
        c->heap[i] = c->heap[(i - 1) / 2];
        c->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static uint64_t heap_pop(struct zr_cascade *c)
{
    uint64_t top = c->heap[0];
    c->heap[0] = c->heap[--c->n_heap];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < c->n_heap && c->heap[l] < c->heap[m])
            m = l;
        if (r < c->n_heap && c->heap[r] < c->heap[m])
            m = r;
        if (m == i)
            break;
        uint64_t t = c->heap[i];
        c->heap[i] = c->heap[m];
        c->heap[m] = t;
        i = m;
    }
    return top;
}

void zr_cascade_init(struct zr_cascade *c, size_t n)
{
    *c = (struct zr_cascade){.n = n, .cap = n ? n : 1};
    c->heap = zr_new0(uint64_t, c->cap);
    c->queued = zr_new0(uint64_t, n);
    /* Keys 0..n-1 in order already form a heap. */
    for (size_t i = 0; i < n; i++)
        c->heap[i] = c->queued[i] = i;
    c->n_heap = n;
}

void zr_cascade_finish(struct zr_cascade *c)
{
    free(c->heap);
    free(c->queued);
    *c = (struct zr_cascade){0};
}

bool zr_cascade_next(struct zr_cascade *c, size_t *item)
{
    while (c->n_heap > 0) {
        uint64_t key = heap_pop(c);
        size_t i = (size_t)(key % c->n);
        if (c->queued[i] != key)
            continue; /* stale: queued again for an earlier check */
        c->queued[i] = UINT64_MAX;
        c->now = key;
        *item = i;
        return true;
    }
    return false;
}

void zr_cascade_wake(struct zr_cascade *c, size_t item)
{
    uint64_t pass = c->now / c->n, current = c->now % c->n;
    uint64_t key = (item > current ? pass : pass + 1) * c->n + item;
    if (c->queued[item] <= key)
        return; /* a check still to come will see the change */
    /* A key it replaces stays in the heap until popped (stale). */
    if (c->n_heap == c->cap) {
        c->cap *= 2;
        c->heap = zr_reallocarray(c->heap, c->cap, sizeof(*c->heap));
    }
    c->queued[item] = key;
    heap_push(c, key);
}
