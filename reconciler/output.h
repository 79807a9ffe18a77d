/* Plans and apply results for people (a diff per guest, a summary line)
 * and for machines (the JSON object of CONTRACT.md).  Writes only to the
 * FILE it is given; decides nothing. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "run.h"

typedef enum {
    ZR_FORMAT_TEXT,
    ZR_FORMAT_JSON,
    ZR_FORMAT__COUNT,
} zr_format;

struct zr_output_options {
    zr_format format;
    bool color;   /* ANSI colours in text */
    bool quiet;   /* text: only the summary line */
    bool applied; /* results are apply's, not a plan's */
    bool one_line; /* zr_output_errors(): one line of JSON Lines (watch) */
};

/* The plan and what the run made of it (no results: every action
 * planned). */
void zr_output_plan(FILE *f, const struct zr_report *r, const struct zr_output_options *o);

/* The JSON document of zr_output_plan() on one line and a newline: one
 * line of JSON Lines, as watch prints one per repair. */
void zr_output_json_line(FILE *f, const struct zr_report *r, const struct zr_output_options *o);

/* A run that ended before any plan (an invalid inventory, a usage error):
 * with JSON, the document of CONTRACT.md with no actions and `errors`
 * holding each error's file, line and column (null when unknown) and
 * message, so a script always reads JSON; with text, nothing (the errors
 * went to stderr). */
void zr_output_errors(FILE *f, const struct zr_errors *errs, const struct zr_output_options *o);

/* validate -o json: {"version", "file", "valid", "errors" (as above),
 * "errors_truncated", "hosts", "guests", "devices"}; counts is NULL when
 * the inventory is invalid (the counts are then null), file NULL when no
 * file was named (a usage error). */
struct zr_inventory_counts {
    size_t hosts, guests, devices;
};
void zr_output_validate(FILE *f, const char *file, const struct zr_inventory_counts *counts,
                        const struct zr_errors *errs);

/* JSON string literal with every character that needs it escaped. */
void zr_json_string(FILE *f, const char *s);
