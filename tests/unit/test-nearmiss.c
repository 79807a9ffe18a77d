/* The "did you mean" index must name exactly what a scan of every name
 * with the full edit distance names (the closest, the first in sorted
 * order among equally close ones, none beyond the limit): its pruning is
 * checked against that scan on random names that share prefixes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nearmiss.h"

/* The old way: every name, the whole table. */
static const char *scan(const char *const *names, size_t n, const char *q)
{
    const char *best = NULL;
    size_t best_d = zr_near_miss_limit(strlen(q)) + 1;
    for (size_t i = 0; i < n; i++) {
        size_t d = zr_edit_distance(q, names[i]);
        if (d > 0 && (d < best_d || (d == best_d && best && strcmp(names[i], best) < 0))) {
            best = names[i];
            best_d = d;
        }
    }
    return best;
}

Test(nearmiss, edit_distance)
{
    cr_expect_eq(zr_edit_distance("", ""), 0);
    cr_expect_eq(zr_edit_distance("abc", ""), 3);
    cr_expect_eq(zr_edit_distance("", "ab"), 2);
    cr_expect_eq(zr_edit_distance("kitten", "sitting"), 3);
    cr_expect_eq(zr_edit_distance("linux01", "linux1"), 1);
    cr_expect_eq(zr_edit_distance("flaw", "lawn"), 2);
}

Test(nearmiss, the_hint_of_the_integration_tests)
{
    const char *names[] = {"linux1", "other", "linux10"};
    struct zr_name_index idx;
    zr_name_index_init(&idx, names, 3);
    cr_expect_str_eq(zr_name_index_nearest(&idx, "linux01"), "linux1");
    cr_expect_str_eq(zr_name_index_nearest(&idx, "linux-1"), "linux1");
    cr_expect_null(zr_name_index_nearest(&idx, "ghost"));
    /* the name itself is no suggestion; the next closest is */
    cr_expect_str_eq(zr_name_index_nearest(&idx, "linux1"), "linux10");
    zr_name_index_finish(&idx);
}

Test(nearmiss, ties_take_the_first_in_sorted_order)
{
    const char *names[] = {"web-b", "web-a", "web-c", NULL};
    struct zr_name_index idx;
    zr_name_index_init(&idx, names, 4);
    cr_expect_eq(idx.n, 3);
    cr_expect_str_eq(zr_name_index_nearest(&idx, "web-x"), "web-a");
    zr_name_index_finish(&idx);
}

Test(nearmiss, empty_index)
{
    struct zr_name_index idx;
    zr_name_index_init(&idx, NULL, 0);
    cr_expect_null(zr_name_index_nearest(&idx, "anything"));
    zr_name_index_finish(&idx);
}

static void random_name(char *buf, unsigned *seed)
{
    /* few letters and shared stems, so that prefixes repeat and many
     * names are within the limit of each other */
    static const char *const stems[] = {"", "web", "db-", "linux", "zrbench-00"};
    int k = snprintf(buf, 32, "%s", stems[rand_r(seed) % 5]);
    int extra = rand_r(seed) % 7;
    for (int i = 0; i < extra; i++)
        buf[k++] = "abc01-"[rand_r(seed) % 6];
    buf[k] = '\0';
}

Test(nearmiss, same_answer_as_a_full_scan)
{
    unsigned seed = 17;
    enum { N = 400, Q = 600 };
    static char store[N][32];
    const char *names[N];
    for (size_t i = 0; i < N; i++) {
        random_name(store[i], &seed);
        names[i] = store[i];
    }
    struct zr_name_index idx;
    zr_name_index_init(&idx, names, N);
    size_t found = 0;
    for (size_t q = 0; q < Q; q++) {
        char query[32];
        random_name(query, &seed);
        const char *want = scan(names, N, query);
        const char *got = zr_name_index_nearest(&idx, query);
        found += want != NULL;
        if (!want)
            cr_expect_null(got, "'%s': index says '%s', scan says none", query, got);
        else
            cr_expect(got && strcmp(got, want) == 0, "'%s': index says '%s', scan says '%s'", query,
                      got ? got : "(none)", want);
    }
    /* the case is not vacuous: most queries have a suggestion */
    cr_expect_gt(found, Q / 2);
    zr_name_index_finish(&idx);
}
