/* Source positions and messages of a text input (the inventory): libyaml's
 * character indices and byte offsets as an editor's line and column, the
 * line echoed under a message, errors collected in file order.  Part of
 * the inventory reader (inventory.c, yaml-tree.c); no libyaml here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <stdarg.h>

#include "device.h" /* struct zr_mark */
#include "error.h"

/* A position in the input, in libyaml's terms (a character index) and in
 * ours (a byte offset, an editor's line and column). */
struct zr_source_cursor {
    size_t index, offset;
    struct zr_mark mark;
};

struct zr_source {
    const char *file;
    const char *data;
    size_t len;
    struct zr_errors *errs;
    size_t first_error;             /* errs->items[first_error..] are ours */
    bool failed;                    /* set by every report, even one over the cap */
    struct zr_source_cursor cursor; /* the last index converted */
};

/* libyaml's character index as an editor's 1-based line and column.
 * Events come in file order, so the cursor only moves on: linear in the
 * input. */
struct zr_mark zr_source_mark(struct zr_source *s, size_t index);
/* A byte offset as a line and column. */
struct zr_mark zr_source_offset_mark(const struct zr_source *s, size_t offset);
/* Where a line and column are in the data (the end when past it). */
const char *zr_source_ptr(const struct zr_source *s, struct zr_mark m);
const char *zr_source_line_start(const struct zr_source *s, unsigned line);
/* The first byte that is not UTF-8, or NULL. */
const char *zr_source_first_non_utf8(const struct zr_source *s);

bool zr_mark_eq(struct zr_mark a, struct zr_mark b);
int zr_mark_cmp(struct zr_mark a, struct zr_mark b);

/* Records an error at `m` with the source line under it (once: the same
 * message at the same place is not repeated); sets s->failed. */
void zr_source_report(struct zr_source *s, struct zr_mark m, const char *fmt, ...) _printf_(3, 4);
void zr_source_vreport(struct zr_source *s, struct zr_mark m, const char *fmt, va_list ap)
    _printf_(3, 0);
/* Errors come out in file order, whichever check found them. */
void zr_source_sort_errors(struct zr_source *s);

/* A value quoted in a message: control characters escaped, long values
 * cut; a new string. */
char *zr_source_shown(const char *s, size_t len);
