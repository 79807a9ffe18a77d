/* The YAML event stream read into a small tree of our own instead of
 * libyaml's document API: depth, node count and alias expansion are then
 * checked as the events arrive, before a hostile input can cost memory, and
 * an alias becomes a real copy, so the walker (inventory.c) never meets a
 * cycle.  Internal to the inventory reader. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source.h"

typedef enum {
    NODE_SCALAR,
    NODE_SEQUENCE,
    NODE_MAPPING,
    NODE__COUNT,
} node_type;

/* Kept small (56 bytes): an export of a large host has millions of nodes.
 * Counts fit 32 bits as the input is at most ZR_INVENTORY_MAX_BYTES. */
struct node {
    struct zr_mark mark; /* where it is written: messages about its content */
    struct zr_mark use;  /* where it is used: the alias, for a copy */
    char *text;          /* scalars: NUL-terminated, in the loader's text arena */
    struct node **items; /* sequence items; mapping keys and values in turn */
    uint32_t len;
    uint32_t n_items;
    uint32_t weight; /* nodes in this subtree */
    uint8_t type;    /* node_type */
    uint8_t height;  /* nested collections in this subtree, at most MAX_DEPTH */
    bool null;       /* plain empty, ~ or null */
    bool complete;   /* false while the collection is still open */
};

/* loader_finish() walks the node blocks as arrays of nodes. */
_Static_assert(sizeof(struct node) % 8 == 0, "nodes must fill arena blocks exactly");

/* Nodes and scalar text are carved from large blocks, not one malloc each:
 * per node that saves malloc's overhead and a pointer to free it by. */
enum {
    NODES_PER_BLOCK = 4096,
    TEXT_BLOCK = 256 * 1024,
};

struct arena {
    char **blocks;
    size_t n_blocks;
    size_t used, size; /* of the last block */
};

struct anchor {
    char *name;
    struct node *node;
};

/* Open addressing: a file may hold many anchors and many aliases, and a
 * linear search would make that quadratic. */
struct anchors {
    struct anchor *slots;
    size_t cap, n;
};

struct zr_ytree {
    struct zr_source *src; /* the input; its errors */
    struct arena node_arena, text_arena;
    size_t n_nodes;
    struct node **stack; /* collections still open */
    size_t depth;
    struct anchors anchors;
};

/* Reads src's data into *root.  Returns -EINVAL (syntax) or -E2BIG (a
 * limit) after reporting; 0 otherwise, *root NULL for an empty stream. */
int zr_ytree_read(struct zr_ytree *t, struct node **root);
/* Frees every node (and what the tree holds); the source stays. */
void zr_ytree_finish(struct zr_ytree *t);

/* "a mapping", "a list", "nothing", "null" or the quoted value. */
char *zr_ytree_describe(const struct node *n);
