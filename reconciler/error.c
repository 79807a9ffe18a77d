#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

void *zr_malloc0(size_t size)
{
    void *p = calloc(1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

void *zr_reallocarray(void *ptr, size_t n, size_t size)
{
    void *p = reallocarray(ptr, n ? n : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

void *zr_grow(void *v, size_t n, size_t add, size_t size)
{
    if (add > SIZE_MAX - n)
        abort();
    /* The block's own size is the capacity: no realloc() call while it
     * has room, whoever allocated it. */
    if (v && size && malloc_usable_size(v) / size >= n + add)
        return v;
    size_t cap = 8;
    while (cap < n + add) {
        if (cap > SIZE_MAX / 2)
            abort();
        cap *= 2;
    }
    return zr_reallocarray(v, cap, size);
}

void *zr_reallocarray_zero(size_t size, size_t n)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

char *zr_strdup(const char *s)
{
    if (!s)
        return NULL;
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}

char *zr_strndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p)
        abort();
    return p;
}

char *zr_vasprintf(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    return s;
}

FILE *zr_memstream_open(struct zr_memstream *m)
{
    *m = (struct zr_memstream){0};
    m->f = open_memstream(&m->buf, &m->len);
    if (!m->f)
        abort();
    return m->f;
}

char *zr_memstream_close(struct zr_memstream *m)
{
    if (fclose(m->f) != 0)
        abort();
    m->f = NULL;
    return TAKE_PTR(m->buf);
}

void zr_strbuf_addf(struct zr_strbuf *b, const char *sep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *piece = zr_vasprintf(fmt, ap);
    va_end(ap);
    size_t seplen = b->len ? strlen(sep) : 0, add = seplen + strlen(piece);
    if (b->len + add + 1 > b->cap) {
        b->cap = b->len + add + 1 > 2 * b->cap ? b->len + add + 1 : 2 * b->cap;
        b->s = zr_reallocarray(b->s, b->cap, 1);
    }
    memcpy(b->s + b->len, sep, seplen);
    memcpy(b->s + b->len + seplen, piece, strlen(piece) + 1);
    b->len += add;
}

char *zr_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = zr_vasprintf(fmt, ap);
    va_end(ap);
    return s;
}

_printf_(5, 0) static void error_vset(struct zr_error *e, const char *file, unsigned line,
                                      unsigned column, const char *fmt, va_list ap)
{
    if (!e)
        return;
    zr_error_finish(e);
    e->file = zr_strdup(file);
    e->line = line;
    e->column = column;
    e->message = zr_vasprintf(fmt, ap);
}

void zr_error_set(struct zr_error *e, const char *file, unsigned line, unsigned column,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(e, file, line, column, fmt, ap);
    va_end(ap);
}

void zr_error_setc(struct zr_error *e, zr_error_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(e, NULL, 0, 0, fmt, ap);
    va_end(ap);
    if (e)
        e->code = code;
}

void zr_error_finish(struct zr_error *e)
{
    if (!e)
        return;
    free(e->file);
    free(e->message);
    free(e->source_line);
    *e = (struct zr_error){0};
}

bool zr_errors_add(struct zr_errors *errs, const char *file, unsigned line, unsigned column,
                   const char *source_line, const char *fmt, ...)
{
    if (errs->n >= ZR_ERRORS_MAX) {
        errs->truncated = true;
        return false;
    }
    struct zr_error *e = ZR_APPEND(errs->items, errs->n);
    va_list ap;
    va_start(ap, fmt);
    error_vset(e, file, line, column, fmt, ap);
    va_end(ap);
    e->source_line = zr_strdup(source_line);
    e->code = ZR_ERR_INVALID_INPUT;
    return true;
}

void zr_errors_finish(struct zr_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        zr_error_finish(&errs->items[i]);
    free(errs->items);
    *errs = (struct zr_errors){0};
}

void zr_fputs_escaped(const char *s, FILE *f)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            fprintf(f, "\\u%04x", *++p);
        else
            fputc(*p, f);
    }
}

char *zr_escaped(const char *s)
{
    struct zr_memstream m;
    zr_fputs_escaped(s, zr_memstream_open(&m));
    return zr_memstream_close(&m);
}

void zr_error_print(const struct zr_error *e, FILE *f)
{
    /* Messages quote keys and values of the input: escaped, as the text
     * output escapes names. */
    if (e->file && e->line && e->column)
        fprintf(f, "%s:%u:%u: error: ", e->file, e->line, e->column);
    else if (e->file && e->line)
        fprintf(f, "%s:%u: error: ", e->file, e->line);
    else if (e->file)
        fprintf(f, "%s: error: ", e->file);
    else
        fputs("error: ", f);
    zr_fputs_escaped(e->message, f);
    fputc('\n', f);

    if (e->source_line && e->column) {
        fprintf(f, "%s\n", e->source_line);
        /* Columns count characters, not bytes; keep tabs so the caret
         * lines up under tab-indented text. */
        const unsigned char *p = (const unsigned char *)e->source_line;
        for (unsigned col = 1; col < e->column && *p; p++) {
            if ((*p & 0xc0) == 0x80)
                continue;
            fputc(*p == '\t' ? '\t' : ' ', f);
            col++;
        }
        fputs("^\n", f);
    }
}

void zr_errors_print(const struct zr_errors *errs, FILE *f)
{
    for (size_t i = 0; i < errs->n; i++)
        zr_error_print(&errs->items[i], f);
    if (errs->truncated)
        fprintf(f, "too many errors; stopped after %d\n", ZR_ERRORS_MAX);
}
