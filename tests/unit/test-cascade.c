/* The worklist must refuse exactly what repeated passes refuse, in the same
 * order (which refusal comes first decides a guest's message): checked
 * against the passes on random dependency graphs. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cascade.h"

enum { N = 60, MAX_DEPS = 3 };

/* Item i is refused when it is a seed, or when one of the items it
 * depends on is refused; `order` records when each item was refused
 * (position in the sequence of refusals) and by which dependency. */
struct graph {
    bool seed[N];
    size_t deps[N][MAX_DEPS];
    size_t n_deps[N];
    /* the reverse: who depends on i */
    size_t users[N][N];
    size_t n_users[N];
};

struct outcome {
    bool refused[N];
    size_t by[N];  /* the dependency that refused it, N: a seed */
    size_t seq[N]; /* the order of refusals */
    size_t n_seq;
    size_t checks;
};

/* One check of item i against what is refused so far: the first refused
 * dependency (in dependency order) refuses it. */
static bool check(const struct graph *gr, struct outcome *o, size_t i)
{
    o->checks++;
    if (o->refused[i])
        return false;
    if (gr->seed[i]) {
        o->by[i] = N;
    } else {
        size_t d = 0;
        while (d < gr->n_deps[i] && !o->refused[gr->deps[i][d]])
            d++;
        if (d == gr->n_deps[i])
            return false;
        o->by[i] = gr->deps[i][d];
    }
    o->refused[i] = true;
    o->seq[o->n_seq++] = i;
    return true;
}

static void passes(const struct graph *gr, struct outcome *o)
{
    bool changed;
    do {
        changed = false;
        for (size_t i = 0; i < N; i++)
            changed |= check(gr, o, i);
    } while (changed);
}

static void worklist(const struct graph *gr, struct outcome *o)
{
    struct zr_cascade c;
    zr_cascade_init(&c, N);
    size_t i;
    while (zr_cascade_next(&c, &i))
        if (check(gr, o, i))
            for (size_t u = 0; u < gr->n_users[i]; u++)
                zr_cascade_wake(&c, gr->users[i][u]);
    zr_cascade_finish(&c);
}

static void random_graph(struct graph *gr, unsigned *seed)
{
    memset(gr, 0, sizeof(*gr));
    for (size_t i = 0; i < N; i++) {
        gr->seed[i] = rand_r(seed) % 17 == 0;
        gr->n_deps[i] = (size_t)(rand_r(seed) % (MAX_DEPS + 1));
        for (size_t d = 0; d < gr->n_deps[i]; d++) {
            size_t on = (size_t)rand_r(seed) % N;
            gr->deps[i][d] = on;
            gr->users[on][gr->n_users[on]++] = i;
        }
    }
}

Test(cascade, same_refusals_in_the_same_order_as_repeated_passes)
{
    unsigned seed = 7;
    size_t cascading = 0;
    for (int round = 0; round < 500; round++) {
        struct graph gr;
        random_graph(&gr, &seed);
        struct outcome a = {0}, b = {0};
        passes(&gr, &a);
        worklist(&gr, &b);
        cr_assert_eq(a.n_seq, b.n_seq, "round %d", round);
        for (size_t k = 0; k < a.n_seq; k++)
            cr_assert_eq(a.seq[k], b.seq[k], "round %d, refusal %zu", round, k);
        for (size_t i = 0; i < N; i++)
            if (a.refused[i])
                cr_assert_eq(a.by[i], b.by[i], "round %d, item %zu", round, i);
        size_t seeds = 0;
        for (size_t i = 0; i < N; i++)
            seeds += gr.seed[i];
        cascading += a.n_seq > seeds;
    }
    cr_expect_gt(cascading, 100); /* most graphs do cascade */
}

/* A chain refused from its far end: repeated passes take one pass per
 * link (n * n checks); the worklist checks each link a bounded number of
 * times. */
Test(cascade, a_chain_costs_a_check_or_two_per_link)
{
    static struct graph gr;
    memset(&gr, 0, sizeof(gr));
    for (size_t i = 0; i + 1 < N; i++) {
        gr.deps[i][0] = i + 1;
        gr.n_deps[i] = 1;
        gr.users[i + 1][gr.n_users[i + 1]++] = i;
    }
    gr.seed[N - 1] = true;
    struct outcome a = {0}, b = {0};
    passes(&gr, &a);
    worklist(&gr, &b);
    cr_assert_eq(b.n_seq, N);
    cr_assert_eq(a.n_seq, N);
    cr_expect_geq(a.checks, (size_t)N * N);
    cr_expect_leq(b.checks, 2 * (size_t)N);
}

Test(cascade, nothing_to_check)
{
    struct zr_cascade c;
    zr_cascade_init(&c, 0);
    size_t i;
    cr_expect_not(zr_cascade_next(&c, &i));
    zr_cascade_finish(&c);
}
