/* The YAML tree.  See yaml-tree.h. */
#include <errno.h>
#include <string.h>
#include <yaml.h>

#include "util.h"
#include "yaml-tree.h"

enum {
    MAX_DEPTH = 64, /* nested collections; a real inventory needs 8 */
    /* After alias expansion.  Sized for the largest host export can read:
     * 65536 devices (docs/inventory.md, "Limits") of the largest form, an
     * interface with every key, 45 nodes; 56 bytes a node, about 170 MiB
     * of tree at most. */
    MAX_NODES = 3000000,
};

char *zr_ytree_describe(const struct node *n)
{
    switch (n->type) {
    case NODE_MAPPING:
        return zr_strdup("a mapping");
    case NODE_SEQUENCE:
        return zr_strdup("a list");
    case NODE_SCALAR:
        break;
    case NODE__COUNT:
        abort();
    }
    if (n->null)
        return zr_strdup(n->len == 0 ? "nothing" : "null");
    _cleanup_free_ char *s = zr_source_shown(n->text, n->len);
    return zr_asprintf("'%s'", s);
}

/* libyaml takes "KEY:" as a key only when KEY is at most 1024 characters
 * (YAML's limit for implicit keys), and otherwise says something about a
 * ':' that is no help.  A ':' at the problem (or a simple key scanned from
 * the context) that ends a one-line key over the limit gets a message that
 * says so, at the key. */
static bool report_long_key(struct zr_ytree *l, const yaml_parser_t *p, struct zr_mark problem,
                            struct zr_mark context)
{
    enum { MAX_IMPLICIT_KEY = 1024 };
    struct zr_mark start;
    if (p->context && strstr(p->context, "simple key")) {
        start = context;
    } else {
        const char *colon = zr_source_ptr(l->src, problem);
        if (colon >= l->src->data + l->src->len || *colon != ':')
            return false;
        /* The key starts after the indentation, "- " and flow openers. */
        const char *q = zr_source_line_start(l->src, problem.line);
        start = (struct zr_mark){problem.line, 1};
        while (q < colon && strchr(" \t-{[,", *q)) {
            q++;
            start.column++;
        }
    }
    if (start.line != problem.line || problem.column - start.column <= MAX_IMPLICIT_KEY)
        return false;
    zr_source_report(
        l->src, start,
        "this key is %u characters long; YAML reads a key written as 'KEY: VALUE' only up "
        "to %d characters: shorten it, or write it as '? KEY' with ': VALUE' on the next "
        "line",
        problem.column - start.column, MAX_IMPLICIT_KEY);
    return true;
}

static void report_reader_error(struct zr_ytree *l, const yaml_parser_t *p)
{
    /* libyaml's offset is where it noticed, often the byte after the
     * culprit (a Latin-1 letter before a plain one): name the first
     * byte that does not decode instead. */
    const char *bad = zr_source_first_non_utf8(l->src);
    if (zr_streq(p->problem, "control characters are not allowed") && p->problem_value == 0)
        zr_source_report(l->src, zr_source_offset_mark(l->src, p->problem_offset),
                         "NUL byte in the inventory; it must be a UTF-8 text file");
    else if (zr_streq(p->problem, "control characters are not allowed"))
        zr_source_report(l->src, zr_source_offset_mark(l->src, p->problem_offset),
                         "control character U+%04X is not allowed in YAML",
                         (unsigned)p->problem_value);
    else if (bad == l->src->data && l->src->len >= 2 &&
             ((bad[0] == '\xff' && bad[1] == '\xfe') || (bad[0] == '\xfe' && bad[1] == '\xff')))
        zr_source_report(
            l->src, (struct zr_mark){1, 1},
            "the inventory is UTF-16 (it starts with a UTF-16 byte order mark); save it "
            "as UTF-8");
    else if (bad)
        zr_source_report(l->src, zr_source_offset_mark(l->src, (size_t)(bad - l->src->data)),
                         "the inventory is not valid UTF-8 (byte 0x%02x); save it as UTF-8",
                         (unsigned char)*bad);
    else
        zr_source_report(l->src, zr_source_offset_mark(l->src, p->problem_offset),
                         "the inventory is not valid UTF-8 (%s); save it as UTF-8", p->problem);
}

static void report_yaml_error(struct zr_ytree *l, const yaml_parser_t *p)
{
    switch (p->error) {
    case YAML_READER_ERROR:
        report_reader_error(l, p);
        return;
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR: {
        struct zr_mark m = zr_source_mark(l->src, (p->problem_mark).index),
                       c = zr_source_mark(l->src, (p->context_mark).index);
        const char *at = zr_source_ptr(l->src, m);
        if (report_long_key(l, p, m, c))
            return;
        const char *hint = at < l->src->data + l->src->len && *at == '\t'
                               ? "; YAML does not allow tabs for indentation, use spaces"
                               : "";
        if (p->context && !zr_mark_eq(m, c))
            zr_source_report(l->src, m,
                             "YAML syntax error: %s (%s that starts at line %u, column %u)%s",
                             p->problem, p->context, c.line, c.column, hint);
        else if (p->context)
            zr_source_report(l->src, m, "YAML syntax error: %s (%s)%s", p->problem, p->context,
                             hint);
        else
            zr_source_report(l->src, m, "YAML syntax error: %s%s", p->problem, hint);
        return;
    }
    case YAML_MEMORY_ERROR:
        abort();
    case YAML_NO_ERROR:
    case YAML_COMPOSER_ERROR:
    case YAML_WRITER_ERROR:
    case YAML_EMITTER_ERROR:
        break;
    }
    zr_source_report(l->src, (struct zr_mark){0, 0}, "YAML error: %s",
                     p->problem ? p->problem : "unknown");
}

/* ---- anchors ----------------------------------------------------------- */

static struct anchor *anchors_slot(struct anchor *slots, size_t cap, const char *name)
{
    for (size_t i = (size_t)zr_fnv1a64(name) & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!slots[i].name || strcmp(slots[i].name, name) == 0)
            return &slots[i];
}

/* A later anchor of the same name replaces the earlier one, as YAML says. */
static void anchors_put(struct anchors *a, const char *name, struct node *n)
{
    if (2 * (a->n + 1) > a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 16;
        struct anchor *slots = zr_new0(struct anchor, cap);
        for (size_t i = 0; i < a->cap; i++)
            if (a->slots[i].name)
                *anchors_slot(slots, cap, a->slots[i].name) = a->slots[i];
        free(a->slots);
        a->slots = slots;
        a->cap = cap;
    }
    struct anchor *s = anchors_slot(a->slots, a->cap, name);
    if (!s->name) {
        s->name = zr_strdup(name);
        a->n++;
    }
    s->node = n;
}

static struct node *anchors_get(const struct anchors *a, const char *name)
{
    if (a->cap == 0)
        return NULL;
    return anchors_slot(a->slots, a->cap, name)->node;
}

static void anchors_finish(struct anchors *a)
{
    for (size_t i = 0; i < a->cap; i++)
        free(a->slots[i].name);
    free(a->slots);
    *a = (struct anchors){0};
}

/* ---- the tree ---------------------------------------------------------- */

/* `size` bytes, zeroed, aligned for a node, valid until arena_finish. */
static void *arena_alloc(struct arena *a, size_t size, size_t block)
{
    size = (size + 7) & ~(size_t)7;
    if (a->n_blocks == 0 || a->size - a->used < size) {
        a->size = size > block ? size : block;
        *ZR_APPEND(a->blocks, a->n_blocks) = zr_malloc0(a->size);
        a->used = 0;
    }
    void *p = a->blocks[a->n_blocks - 1] + a->used;
    a->used += size;
    return p;
}

static void arena_finish(struct arena *a)
{
    for (size_t i = 0; i < a->n_blocks; i++)
        free(a->blocks[i]);
    free(a->blocks);
    *a = (struct arena){0};
}

void zr_ytree_finish(struct zr_ytree *t)
{
    /* Every node lives in the node arena, in creation order. */
    for (size_t b = 0, left = t->n_nodes; b < t->node_arena.n_blocks; b++) {
        struct node *nodes = (struct node *)(void *)t->node_arena.blocks[b];
        for (size_t i = 0; i < NODES_PER_BLOCK && left; i++, left--)
            free(nodes[i].items);
    }
    arena_finish(&t->node_arena);
    arena_finish(&t->text_arena);
    free(t->stack);
    anchors_finish(&t->anchors);
}

static struct node *node_new(struct zr_ytree *l, node_type type, struct zr_mark mark)
{
    struct node *n =
        arena_alloc(&l->node_arena, sizeof(struct node), NODES_PER_BLOCK * sizeof(struct node));
    l->n_nodes++;
    n->type = (uint8_t)type;
    n->mark = n->use = mark;
    n->weight = 1;
    n->complete = type == NODE_SCALAR;
    return n;
}

static struct node *node_copy(struct zr_ytree *l, const struct node *src, struct zr_mark use)
{
    struct node *n = node_new(l, src->type, src->mark);
    n->use = use;
    n->null = src->null;
    n->complete = true;
    n->text = src->text;
    n->len = src->len;
    n->weight = src->weight;
    n->height = src->height;
    if (src->n_items) {
        n->items = zr_new0(struct node *, src->n_items);
        n->n_items = src->n_items;
        for (size_t i = 0; i < src->n_items; i++)
            n->items[i] = node_copy(l, src->items[i], use);
    }
    return n;
}

static void attach(struct zr_ytree *l, struct node *n, struct node **root)
{
    if (l->depth == 0) {
        *root = n;
        return;
    }
    struct node *parent = l->stack[l->depth - 1];
    *ZR_APPEND(parent->items, parent->n_items) = n;
}

static bool is_null_word(const char *s, size_t len)
{
    return len == 0 || (len == 1 && s[0] == '~') ||
           (len == 4 &&
            (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 || memcmp(s, "NULL", 4) == 0));
}

static int check_budget(struct zr_ytree *l, size_t more, struct zr_mark m)
{
    if (l->n_nodes + more <= MAX_NODES)
        return 0;
    zr_source_report(l->src, m, "the inventory has more than %d YAML nodes; refusing to read it",
                     MAX_NODES);
    return -E2BIG;
}

static void note_anchor_and_tag(struct zr_ytree *l, const yaml_char_t *anchor,
                                const yaml_char_t *tag, struct node *n)
{
    if (anchor)
        anchors_put(&l->anchors, (const char *)anchor, n);
    if (tag)
        zr_source_report(l->src, n->mark,
                         "YAML tag '%s' is not supported: every key has a fixed type, and quotes "
                         "are enough to keep a value as text",
                         (const char *)tag);
}

static int on_alias(struct zr_ytree *l, const yaml_event_t *ev, struct node **root)
{
    const char *name = (const char *)ev->data.alias.anchor;
    struct zr_mark m = zr_source_mark(l->src, (ev->start_mark).index);
    struct node *target = anchors_get(&l->anchors, name);
    _cleanup_free_ char *s = zr_source_shown(name, strlen(name));

    /* Fatal: a stand-in value would only add errors that are not the
     * user's. */
    if (!target) {
        zr_source_report(l->src, m, "alias '*%s' refers to no anchor '&%s' before it", s, s);
        return -EINVAL;
    }
    if (!target->complete) {
        zr_source_report(l->src, m,
                         "alias '*%s' is inside the node it refers to; an inventory cannot "
                         "contain itself",
                         s);
        return -EINVAL;
    }
    if (l->depth + target->height > MAX_DEPTH) {
        zr_source_report(l->src, m, "alias '*%s' nests the inventory deeper than %d levels", s,
                         MAX_DEPTH);
        return -E2BIG;
    }
    if (l->n_nodes + target->weight > MAX_NODES) {
        zr_source_report(l->src, m,
                         "alias '*%s' would expand the inventory to more than %d YAML nodes; "
                         "refusing it (too many nested aliases)",
                         s, MAX_NODES);
        return -E2BIG;
    }
    attach(l, node_copy(l, target, m), root);
    return 0;
}

static int on_scalar(struct zr_ytree *l, const yaml_event_t *ev, struct node **root)
{
    struct zr_mark m = zr_source_mark(l->src, (ev->start_mark).index);
    if (check_budget(l, 1, m) < 0)
        return -E2BIG;

    struct node *n = node_new(l, NODE_SCALAR, m);
    n->len = (uint32_t)ev->data.scalar.length;
    n->text = arena_alloc(&l->text_arena, (size_t)n->len + 1, TEXT_BLOCK);
    memcpy(n->text, ev->data.scalar.value, n->len);
    n->null = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && is_null_word(n->text, n->len);
    /* A "\0" escape would silently cut every C string made from this one. */
    if (memchr(n->text, '\0', n->len))
        zr_source_report(l->src, m, "NUL character in a string");
    note_anchor_and_tag(l, ev->data.scalar.anchor, ev->data.scalar.tag, n);
    attach(l, n, root);
    return 0;
}

static int on_collection_start(struct zr_ytree *l, const yaml_event_t *ev, node_type type,
                               struct node **root)
{
    struct zr_mark m = zr_source_mark(l->src, (ev->start_mark).index);
    if (l->depth >= MAX_DEPTH) {
        zr_source_report(l->src, m, "the inventory nests deeper than %d levels", MAX_DEPTH);
        return -E2BIG;
    }
    if (check_budget(l, 1, m) < 0)
        return -E2BIG;

    struct node *n = node_new(l, type, m);
    if (type == NODE_MAPPING)
        note_anchor_and_tag(l, ev->data.mapping_start.anchor, ev->data.mapping_start.tag, n);
    else
        note_anchor_and_tag(l, ev->data.sequence_start.anchor, ev->data.sequence_start.tag, n);
    attach(l, n, root);
    *ZR_APPEND(l->stack, l->depth) = n;
    return 0;
}

static void on_collection_end(struct zr_ytree *l)
{
    struct node *n = l->stack[--l->depth];
    for (size_t i = 0; i < n->n_items; i++) {
        n->weight += n->items[i]->weight;
        if (n->items[i]->height > n->height)
            n->height = n->items[i]->height;
    }
    n->height++;
    n->complete = true;
}

/* One event into the tree: < 0 an error (reported), 1 the end of what
 * is read, 0 go on. */
static int on_event(struct zr_ytree *l, const yaml_event_t *ev, unsigned *documents,
                    struct node **root)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*documents < 2)
            return 0;
        zr_source_report(l->src, zr_source_mark(l->src, (ev->start_mark).index),
                         "a second YAML document; an inventory is exactly one document");
        return 1;
    case YAML_ALIAS_EVENT:
        return on_alias(l, ev, root);
    case YAML_SCALAR_EVENT:
        return on_scalar(l, ev, root);
    case YAML_SEQUENCE_START_EVENT:
        return on_collection_start(l, ev, NODE_SEQUENCE, root);
    case YAML_MAPPING_START_EVENT:
        return on_collection_start(l, ev, NODE_MAPPING, root);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        on_collection_end(l);
        return 0;
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_NO_EVENT:
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
        break;
    }
    return 0;
}

int zr_ytree_read(struct zr_ytree *l, struct node **root)
{
    _cleanup_(yaml_parser_delete) yaml_parser_t parser;
    unsigned documents = 0;

    *root = NULL;
    if (!yaml_parser_initialize(&parser))
        abort();
    /* Forcing UTF-8 turns a UTF-16 file into a clear encoding error instead
     * of positions that no longer match the bytes we show. */
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    yaml_parser_set_input_string(&parser, (const unsigned char *)l->src->data, l->src->len);

    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            report_yaml_error(l, &parser);
            return -EINVAL;
        }
        int r = on_event(l, &ev, &documents, root);
        yaml_event_delete(&ev);
        if (r != 0)
            return r < 0 ? r : 0;
    }
}
