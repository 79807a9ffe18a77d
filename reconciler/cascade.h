/* The order of a fixed-point check over n items, as a worklist: the
 * conflict check refuses a guest, which then keeps what it holds and may
 * refuse another, and so on.  Checking every item again after each
 * refusal costs a pass per step of the cascade (quadratic, and worse with
 * the work of a check); here only the items that a refusal can affect are
 * checked again, in exactly the order repeated passes would check them
 * (pass by pass, item by item), so the outcome - which refusal comes first
 * for an item - is the same.  Pure: no libvirt, no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zr_cascade {
    size_t n;
    uint64_t now;   /* the key being checked: pass * n + item */
    uint64_t *heap; /* keys to check, smallest first */
    size_t n_heap, cap;
    uint64_t *queued; /* per item: its smallest queued key, UINT64_MAX none */
};

/* Queues every item for the first pass. */
void zr_cascade_init(struct zr_cascade *c, size_t n);
void zr_cascade_finish(struct zr_cascade *c);

/* The next item to check, in pass order; false when none is left. */
bool zr_cascade_next(struct zr_cascade *c, size_t *item);

/* Something `item` reads has changed during the current check: check it
 * again where a pass over every item would next reach it (later in this
 * pass when it comes after the current item, else in the next pass). */
void zr_cascade_wake(struct zr_cascade *c, size_t item);
