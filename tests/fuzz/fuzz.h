/* Shared by the fuzz targets and their replay driver.  A target is a
 * libFuzzer entry point; an invariant that does not hold aborts, so both
 * libFuzzer and the replay test (tests/fuzz/fuzz-main.c) report it as a
 * crash with the message on stderr. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs larger than this are skipped: every target is linear or close to
 * it below the parsers' own limits, and a bigger input only slows the
 * search down. */
#define ZR_FUZZ_MAX_INPUT (256u * 1024u)

#define zr_fuzz_assert(cond, ...)                                            \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: invariant '%s' violated: ", __FILE__,    \
                    __LINE__, #cond);                                        \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* A memory stream for the printers: their output is really formatted (and
 * seen by the sanitizers), then thrown away; no file is opened. */
struct zr_fuzz_sink {
    FILE *f;
    char *buf;
    size_t len;
};
void zr_fuzz_sink_open(struct zr_fuzz_sink *s);
/* Closes the stream and returns what was written (s->buf, NUL-terminated),
 * owned by the sink until zr_fuzz_sink_free(). */
const char *zr_fuzz_sink_close(struct zr_fuzz_sink *s);
void zr_fuzz_sink_free(struct zr_fuzz_sink *s);

/* The first field that differs between two devices, among those the
 * device XML builder writes (kind, source, managed, zPCI ids, guest
 * address, MAC, virtualport, a single vlan tag); NULL when none does.  With
 * `with_xml_only`, also driver and alias, which only the reader fills. */
const char *zr_fuzz_device_diff(const struct zr_device *a, const struct zr_device *b,
                                bool with_xml_only);

/* Reads device XML the tool made (`what` says which, for the message) into
 * `out`; aborts unless it parses as an in-scope device. */
void zr_fuzz_read_device(const char *xml, const char *what, struct zr_device *out);

/* fuzz-plan's checks on one input in its NUL-separated form (fuzz-plan.c);
 * fuzz-plan-gen builds such inputs from a structured description. */
void zr_fuzz_plan_check(const uint8_t *data, size_t size);
