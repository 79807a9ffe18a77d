/* Source positions and messages.  See source.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "source.h"
#include "util.h"

enum {
    MAX_SHOWN = 40,        /* characters of a value quoted in a message */
    MAX_SOURCE_LINE = 512, /* longer lines are not echoed under a message */
};

/* Positions are reported as editors count them: lines end at CR LF, CR or
 * LF.  libyaml also breaks lines at NEL, LS and PS (YAML 1.1), so its line
 * numbers can run past the end of the file; its marks are converted through
 * their character index instead (zr_source_mark).  Returns the length of the break
 * at p, 0 when there is none. */
static size_t break_len(const char *p, const char *end)
{
    if (p[0] == '\r')
        return p + 1 < end && p[1] == '\n' ? 2 : 1;
    if (p[0] == '\n')
        return 1;
    return 0;
}

/* Bytes of the UTF-8 character at p, or 0 when it is not valid UTF-8. */
static size_t utf8_len(const char *p, const char *end)
{
    unsigned char c = (unsigned char)p[0];
    size_t n = c < 0x80             ? 1
               : (c & 0xe0) == 0xc0 ? 2
               : (c & 0xf0) == 0xe0 ? 3
               : (c & 0xf8) == 0xf0 ? 4
                                    : 0;
    if (n == 0 || (size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++)
        if (((unsigned char)p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* One character as libyaml's columns count it; a byte that is not UTF-8
 * counts as one. */
static size_t char_len(const char *p, const char *end)
{
    size_t n = utf8_len(p, end);
    return n ? n : 1;
}

const char *zr_source_line_start(const struct zr_source *l, unsigned line)
{
    const char *p = l->data, *end = l->data + l->len;
    for (unsigned cur = 1; cur < line && p < end; p++) {
        size_t b = break_len(p, end);
        if (b) {
            p += b - 1;
            cur++;
        }
    }
    return p;
}

/* The text of a line for the caret: NULL when the line does not exist or
 * is too long to be useful; bytes a terminal should not see become '?'. */
static char *source_line(const struct zr_source *l, unsigned line)
{
    const char *end = l->data + l->len;
    const char *p = zr_source_line_start(l, line);
    if (line == 0 || p >= end)
        return NULL;
    const char *q = p;
    while (q < end && !break_len(q, end))
        q++;
    if (q - p > MAX_SOURCE_LINE)
        return NULL;

    char *s = zr_malloc0((size_t)(q - p) + 1), *o = s;
    while (p < q) {
        size_t n = utf8_len(p, q);
        unsigned char c = (unsigned char)*p;
        /* C1 controls (NEL among them) and the line and paragraph
         * separators would move or clear the terminal's line. */
        bool c1 = n == 2 && c == 0xc2 && (unsigned char)p[1] <= 0x9f;
        bool sep = n == 3 && c == 0xe2 && (unsigned char)p[1] == 0x80 &&
                   ((unsigned char)p[2] == 0xa8 || (unsigned char)p[2] == 0xa9);
        if (c1 || sep) {
            *o++ = '?';
            p += n;
            continue;
        }
        if (n == 0 || (n == 1 && ((c < 0x20 && c != '\t') || c == 0x7f))) {
            *o++ = '?';
            p++;
            continue;
        }
        memcpy(o, p, n);
        o += n;
        p += n;
    }
    return s;
}

const char *zr_source_first_non_utf8(const struct zr_source *l)
{
    const char *p = l->data, *end = l->data + l->len;
    for (size_t n; p < end; p += n)
        if (!(n = utf8_len(p, end)))
            return p;
    return NULL;
}

/* The start of the input for the cursor: libyaml's character index does
 * not count a UTF-8 byte order mark. */
static struct zr_source_cursor cursor_start(const struct zr_source *l)
{
    bool bom = l->len >= 3 && memcmp(l->data, "\xef\xbb\xbf", 3) == 0;
    return (struct zr_source_cursor){.index = 0, .offset = bom ? 3 : 0, .mark = {1, 1}};
}

/* One character on: libyaml counts each character (CR and LF of a CR LF
 * apart); the line goes on at LF, or at a CR without LF. */
static void cursor_step(const struct zr_source *l, struct zr_source_cursor *c)
{
    const char *p = l->data + c->offset, *end = l->data + l->len;
    bool crlf = p[0] == '\r' && p + 1 < end && p[1] == '\n';
    if (p[0] == '\n' || (p[0] == '\r' && !crlf)) {
        c->mark.line++;
        c->mark.column = 1;
    } else if (!crlf) {
        c->mark.column++;
    }
    c->offset += char_len(p, end);
    c->index++;
}

struct zr_mark zr_source_offset_mark(const struct zr_source *l, size_t offset)
{
    struct zr_source_cursor c = {.mark = {1, 1}};
    while (c.offset < offset && c.offset < l->len)
        cursor_step(l, &c);
    return c.mark;
}

const char *zr_source_ptr(const struct zr_source *l, struct zr_mark m)
{
    const char *end = l->data + l->len;
    const char *p = zr_source_line_start(l, m.line);
    for (unsigned col = 1; col < m.column && p < end && !break_len(p, end); col++)
        p += char_len(p, end);
    return p;
}

/* Printable ASCII from the cursor on, up to `n` bytes: each is one
 * character, one column and one byte, so a run of them is one step. */
static size_t plain_run(const struct zr_source *l, const struct zr_source_cursor *c, size_t n)
{
    const unsigned char *p = (const unsigned char *)l->data + c->offset;
    size_t k = 0;
    while (k < n && p[k] >= 0x20 && p[k] < 0x7f)
        k++;
    return k;
}

struct zr_mark zr_source_mark(struct zr_source *l, size_t index)
{
    if (index < l->cursor.index || l->cursor.mark.line == 0)
        l->cursor = cursor_start(l);
    while (l->cursor.index < index && l->cursor.offset < l->len) {
        size_t want = index - l->cursor.index, left = l->len - l->cursor.offset;
        size_t k = plain_run(l, &l->cursor, want < left ? want : left);
        if (k == 0) {
            cursor_step(l, &l->cursor);
            continue;
        }
        l->cursor.offset += k;
        l->cursor.index += k;
        l->cursor.mark.column += (unsigned)k;
    }
    return l->cursor.mark;
}

bool zr_mark_eq(struct zr_mark a, struct zr_mark b)
{
    return a.line == b.line && a.column == b.column;
}

int zr_mark_cmp(struct zr_mark a, struct zr_mark b)
{
    if (a.line != b.line)
        return a.line < b.line ? -1 : 1;
    if (a.column != b.column)
        return a.column < b.column ? -1 : 1;
    return 0;
}

void zr_source_vreport(struct zr_source *l, struct zr_mark m, const char *fmt, va_list ap)
{
    _cleanup_free_ char *msg = zr_vasprintf(fmt, ap);

    l->failed = true;
    /* An anchored node used twice would otherwise say the same thing twice. */
    for (size_t i = l->first_error; i < l->errs->n; i++) {
        const struct zr_error *e = &l->errs->items[i];
        if (e->line == m.line && e->column == m.column && zr_streq(e->message, msg))
            return;
    }
    _cleanup_free_ char *line = l->errs->n < ZR_ERRORS_MAX ? source_line(l, m.line) : NULL;
    zr_errors_add(l->errs, l->file, m.line, m.column, line, "%s", msg);
}

void zr_source_report(struct zr_source *s, struct zr_mark m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    zr_source_vreport(s, m, fmt, ap);
    va_end(ap);
}

char *zr_source_shown(const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    size_t n = 0;
    /* Each character takes at most four bytes, escaped or not. */
    char *out = zr_malloc0(MAX_SHOWN * 4 + sizeof("...")), *o = out;
    while (p < end && n < MAX_SHOWN) {
        unsigned char c = (unsigned char)*p;
        size_t w = char_len(p, end);
        if (c < 0x20 || c == 0x7f)
            o += sprintf(o, "\\x%02x", c);
        else {
            memcpy(o, p, w);
            o += w;
        }
        p += w;
        n++;
    }
    if (p < end)
        strcpy(o, "...");
    return out;
}

void zr_source_sort_errors(struct zr_source *l)
{
    struct zr_error *e = l->errs->items;
    for (size_t i = l->first_error + 1; i < l->errs->n; i++) {
        struct zr_error cur = e[i];
        size_t j = i;
        while (j > l->first_error && (e[j - 1].line > cur.line || (e[j - 1].line == cur.line &&
                                                                   e[j - 1].column > cur.column))) {
            e[j] = e[j - 1];
            j--;
        }
        e[j] = cur;
    }
}
