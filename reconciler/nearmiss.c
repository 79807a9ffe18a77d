/* The closest guest name.  See nearmiss.h. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "nearmiss.h"
#include "util.h"

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void zr_name_index_init(struct zr_name_index *idx, const char *const *names, size_t n)
{
    *idx = (struct zr_name_index){0};
    idx->names = zr_new0(const char *, n);
    idx->shared = zr_new0(size_t, n);
    for (size_t i = 0; i < n; i++)
        if (names[i])
            idx->names[idx->n++] = names[i];
    if (idx->n)
        qsort(idx->names, idx->n, sizeof(*idx->names), str_cmp);
    for (size_t i = 0; i < idx->n; i++) {
        size_t len = strlen(idx->names[i]);
        if (len > idx->max_len)
            idx->max_len = len;
        if (i == 0)
            continue;
        const char *a = idx->names[i - 1], *b = idx->names[i];
        size_t k = 0;
        while (a[k] && a[k] == b[k])
            k++;
        idx->shared[i] = k;
    }
}

void zr_name_index_finish(struct zr_name_index *idx)
{
    free(idx->names);
    free(idx->shared);
    *idx = (struct zr_name_index){0};
}

size_t zr_near_miss_limit(size_t len)
{
    return len / 3 > 2 ? len / 3 : 2;
}

/* Row `j` of the distance table (prefix of j characters of a name ending
 * in `c`, against every prefix of the query) from row j - 1; returns the
 * row's smallest value, below which no longer name can come. */
static size_t next_row(const size_t *prev, size_t *row, size_t j, char c, const char *q, size_t lq)
{
    row[0] = j;
    size_t low = j;
    for (size_t i = 1; i <= lq; i++) {
        size_t best = prev[i - 1] + (q[i - 1] != c);
        if (prev[i] + 1 < best)
            best = prev[i] + 1;
        if (row[i - 1] + 1 < best)
            best = row[i - 1] + 1;
        row[i] = best;
        if (best < low)
            low = best;
    }
    return low;
}

/* The first name after `i` that does not start with the `depth`
 * characters names[i] starts with (sorted: they follow each other). */
static size_t skip_prefix(const struct zr_name_index *idx, size_t i, size_t depth)
{
    for (i++; i < idx->n && idx->shared[i] >= depth; i++)
        ;
    return i;
}

const char *zr_name_index_nearest(const struct zr_name_index *idx, const char *name)
{
    size_t lq = strlen(name), width = lq + 1;
    size_t best_d = zr_near_miss_limit(lq) + 1;
    const char *best = NULL;
    if (idx->n == 0)
        return NULL;
    /* rows[j * width ...]: the distances of the current name's first j
     * characters; rows 0..valid are those of the name walked last. */
    _cleanup_free_ size_t *rows = zr_new0(size_t, (idx->max_len + 1) * width);
    for (size_t i = 0; i < width; i++)
        rows[i] = i;
    size_t valid = 0;
    for (size_t i = 0; i < idx->n && best_d > 1;) {
        const char *cand = idx->names[i];
        size_t len = strlen(cand);
        /* The rows of the prefix it shares with the name walked last. */
        size_t j = i == 0 ? 0 : idx->shared[i] < valid ? idx->shared[i] : valid;
        /* A length difference alone costs that many edits. */
        if ((len > lq ? len - lq : lq - len) >= best_d) {
            valid = j;
            i++;
            continue;
        }
        bool pruned = false;
        for (; j < len && !pruned; j++) {
            size_t low =
                next_row(&rows[j * width], &rows[(j + 1) * width], j + 1, cand[j], name, lq);
            pruned = low >= best_d;
        }
        valid = j;
        if (pruned) {
            i = skip_prefix(idx, i, j);
            continue;
        }
        size_t d = rows[len * width + lq];
        if (d > 0 && d < best_d) {
            best = cand;
            best_d = d;
        }
        i++;
    }
    return best;
}

size_t zr_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    _cleanup_free_ size_t *prev = zr_new0(size_t, la + 1);
    _cleanup_free_ size_t *row = zr_new0(size_t, la + 1);
    for (size_t i = 0; i <= la; i++)
        prev[i] = i;
    for (size_t j = 1; j <= lb; j++) {
        next_row(prev, row, j, b[j - 1], a, la);
        memcpy(prev, row, (la + 1) * sizeof(*row));
    }
    return prev[la];
}
