/* The "did you mean" hint for a guest name that matches nothing: the
 * closest name (edit distance) among a host's guests.  Pure: an index built
 * once per host from one listing answers every missing guest, so a plan
 * with thousands of unknown names costs no listing per name.  No libvirt,
 * no I/O. */
#pragma once

#include <stddef.h>

/* The names, sorted, with the length of the prefix each shares with the
 * one before it: a search walks them as the paths of a trie, reusing the
 * edit distance rows of a shared prefix and skipping every name under a
 * prefix that is already too far away. */
struct zr_name_index {
    const char **names; /* borrowed strings, sorted by strcmp */
    size_t *shared;     /* shared[i]: common prefix of names[i - 1] and names[i] */
    size_t n;
    size_t max_len;
};

/* Indexes `names` (n strings, which must outlive the index; NULLs are
 * skipped). */
void zr_name_index_init(struct zr_name_index *idx, const char *const *names, size_t n);
void zr_name_index_finish(struct zr_name_index *idx);

/* How many typos a name of `len` characters may have for a suggestion:
 * a third of its length, at least 2. */
size_t zr_near_miss_limit(size_t len);

/* The indexed name closest to `name` (0 < edit distance <=
 * zr_near_miss_limit()), the first in sorted order among equally close
 * ones; NULL when none is close enough.  Points into the index's names. */
const char *zr_name_index_nearest(const struct zr_name_index *idx, const char *name);

/* Levenshtein distance (insert, delete, substitute: 1 each). */
size_t zr_edit_distance(const char *a, const char *b);
