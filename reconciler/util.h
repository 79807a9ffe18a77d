/* Small helpers shared by every module: cleanup attributes, ownership
 * transfer and checked allocation.  Nothing here may do I/O or know about
 * inventories, domains or libvirt. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(zr_freep)
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unused_ __attribute__((unused))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Hand a pointer out of a cleanup scope: returns it and leaves NULL behind. */
#define TAKE_PTR(p)                                                                                \
    __extension__({                                                                                \
        __typeof__(p) _taken = (p);                                                                \
        (p) = NULL;                                                                                \
        _taken;                                                                                    \
    })

/* Defines `name##p(type *)`, calling `func` on a non-NULL pointer. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
    static inline void func##p(type *p)                                                            \
    {                                                                                              \
        if (*p)                                                                                    \
            func(*p);                                                                              \
    }

static inline void zr_freep(void *p)
{
    free(*(void **)p);
}

/* Allocation failure is not recoverable in a command-line tool: these abort
 * rather than thread ENOMEM through every caller. */
void *zr_malloc0(size_t size);
void *zr_reallocarray(void *ptr, size_t n, size_t size);
char *zr_strdup(const char *s);
char *zr_strndup(const char *s, size_t n);
char *zr_asprintf(const char *fmt, ...) _printf_(1, 2);
char *zr_vasprintf(const char *fmt, va_list ap) _printf_(1, 0);

#define zr_new0(type, n) ((type *)zr_reallocarray_zero(sizeof(type), (n)))
void *zr_reallocarray_zero(size_t size, size_t n);

/* The one growth rule for dynamic arrays: returns `v` (of `n` items of
 * `size` bytes) reallocated to hold at least `n + add`.  The allocation is
 * the next power of two (at least 8 items), so it doubles as the array
 * grows and copying stays linear in the final size.  No capacity is
 * stored: the block's usable size (malloc_usable_size) is the capacity, so
 * realloc() runs only when the array is full, and an array allocated some
 * other way (zr_new0, exactly sized) is grown correctly too.  Never
 * inlined: a caller must not see realloc()'s requested size, which
 * _FORTIFY_SOURCE=3 would take for the block's. */
__attribute__((noinline)) void *zr_grow(void *v, size_t n, size_t add, size_t size);

/* Grow a dynamic array `v` holding `n` items by one zeroed element and
 * return a pointer to it. */
#define ZR_APPEND(v, n)                                                                            \
    __extension__({                                                                                \
        (v) = zr_grow((v), (n), 1, sizeof(*(v)));                                                  \
        memset(&(v)[(n)], 0, sizeof(*(v)));                                                        \
        &(v)[(n)++];                                                                               \
    })

/* Closes *fd when open and marks it closed: a cleanup attribute, and the
 * way to close a kept descriptor (a second call does nothing). */
static inline void closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* A growing string, doubled as it grows, so appending stays linear. */
struct zr_strbuf {
    char *s; /* NUL-terminated once anything was added; owned */
    size_t len, cap;
};

/* A stream writing into memory, for text built with stdio: open, write,
 * close, take the string (owned by the caller) and its length.  Out of
 * memory aborts, as zr_malloc0() does.  The struct must not move while
 * the stream is open. */
struct zr_memstream {
    FILE *f;
    char *buf;
    size_t len;
};
FILE *zr_memstream_open(struct zr_memstream *m);
char *zr_memstream_close(struct zr_memstream *m);

/* Appends the formatted text, after `sep` when the string is not empty. */
void zr_strbuf_addf(struct zr_strbuf *b, const char *sep, const char *fmt, ...) _printf_(3, 4);

/* FNV-1a, 64 bits, of a NUL-terminated string: names for files and hash
 * table slots, never anything an attacker must not collide. */
static inline uint64_t zr_fnv1a64(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static inline bool zr_streq(const char *a, const char *b)
{
    return a == b || (a && b && __builtin_strcmp(a, b) == 0);
}

/* Writes all n bytes of p to fd, again after EINTR and short writes.
 * Returns 0, or -1 (errno says why when write() failed). */
static inline int zr_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}
