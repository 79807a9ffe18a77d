/* Errors as values: a position (file, 1-based line and column, 0 when not
 * known) and a message, optionally the source line for a caret.  Modules
 * fill them; only main.c and apply.c print them. */
#pragma once

#include <stdio.h>

#include "util.h"

/* What went wrong, for callers and hints to branch on: never the message
 * text, which may be reworded.  Kept in the plan's records (host, guest,
 * action, warning) beside the message. */
typedef enum {
    ZR_ERR_OTHER,           /* no more specific code (0: the default) */
    ZR_ERR_INVALID_INPUT,   /* the inventory or an option */
    ZR_ERR_CONNECT,         /* the connection failed, reason not known */
    ZR_ERR_NO_DAEMON,       /* no daemon behind the socket */
    ZR_ERR_AUTH,            /* the socket, polkit or the system bus said no */
    ZR_ERR_NOT_FOUND,       /* no guest of that name */
    ZR_ERR_NOT_FOUND_NEAR,  /* no guest of that name; the message names a close one */
    ZR_ERR_LIBVIRT_REFUSED, /* libvirt refused a call */
    ZR_ERR_NO_VFIO,         /* the host cannot pass PCI devices through */
    ZR_ERR_HOST_CHECK,      /* the host check refused or warned */
    ZR_ERR_NO_FUNCTION,     /* the host has no such PCI function */
    ZR_ERR_NO_NODEDEVS,     /* the connection lists no node devices */
    ZR_ERR_NOT_VF,          /* an interface on a function that is no SR-IOV VF */
    ZR_ERR_IOMMU_GROUP,     /* the function shares its IOMMU group */
    ZR_ERR_CONFLICT,        /* another guest holds the function */
    ZR_ERR_TIMEOUT,         /* a live detach did not complete in time */
    ZR_ERR_LOCK,            /* another apply holds the host */
    ZR_ERR_INTERRUPTED,     /* a signal stopped the run */
    /* The plan's own refusals and warnings. */
    ZR_ERR_HELD,        /* a wanted value another device of the guest keeps */
    ZR_ERR_BOOT_ORDER,  /* a boot order libvirt would refuse */
    ZR_ERR_KIND_KEPT,   /* wanted as one kind, kept (prune: false) as the other */
    ZR_ERR_UNBUILDABLE, /* the device's XML cannot be built */
    ZR_ERR_LIVE_DRIFT,  /* --config-only leaves the running guest's drift */
    ZR_ERR_ROLLBACK,    /* --atomic's rollback left the guest otherwise than before */
    ZR_ERR_POOL,        /* a pool entry could not be served (exhausted, no node devices) */
    ZR_ERR__COUNT,
} zr_error_code;

struct zr_error {
    zr_error_code code;
    char *file;        /* NULL when the error has no source position */
    unsigned line;     /* 1-based, 0 = none */
    unsigned column;   /* 1-based, 0 = none */
    char *message;
    char *source_line; /* the offending line of the input, for the caret */
};

/* Errors collected over a whole input, capped so a broken file cannot flood
 * the terminal. */
#define ZR_ERRORS_MAX 20

struct zr_errors {
    struct zr_error *items;
    size_t n;
    bool truncated; /* more errors than ZR_ERRORS_MAX were found */
};

void zr_error_set(struct zr_error *e, const char *file, unsigned line, unsigned column,
                  const char *fmt, ...) _printf_(5, 6);
void zr_error_finish(struct zr_error *e);
/* zr_error_set() without a position, with a code. */
void zr_error_setc(struct zr_error *e, zr_error_code code, const char *fmt, ...) _printf_(3, 4);

/* Adds an error; returns false when the cap was reached (the error is then
 * only counted as truncation). */
bool zr_errors_add(struct zr_errors *errs, const char *file, unsigned line, unsigned column,
                   const char *source_line, const char *fmt, ...) _printf_(6, 7);
void zr_errors_finish(struct zr_errors *errs);

/* Writes "FILE:LINE:COLUMN: error: MESSAGE", then the source line and a
 * caret under the column when both are known. */
void zr_error_print(const struct zr_error *e, FILE *f);

/* Writes s for a terminal: C0 controls and DEL as \xHH, C1 controls
 * (U+0080-U+009F) as \uHHHH, so a name or message from outside cannot move
 * the cursor, clear the screen or retitle the window.  Tab stays (it moves
 * nothing but the column). */
void zr_fputs_escaped(const char *s, FILE *f);
/* The same as a new string, for printf-style messages. */
char *zr_escaped(const char *s);
void zr_errors_print(const struct zr_errors *errs, FILE *f);
