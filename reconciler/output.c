#include <stdlib.h>
#include <string.h>

#include "hints.h"
#include "output.h"
#include "summary.h"

#define C_RESET "\033[0m"
#define C_GREEN "\033[32m"
#define C_RED "\033[31m"
#define C_YELLOW "\033[33m"
#define C_BOLD "\033[1m"
#define C_DIM "\033[2m"

void zr_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}


/* ---- JSON ---------------------------------------------------------------- */

static void json_action(FILE *f, const struct zr_report *rep, size_t i)
{
    const struct zr_plan *plan = &rep->plan;
    const struct zr_action *a = &plan->actions[i];
    const struct zr_action_result *r = zr_run_result(&rep->run, i);
    const struct zr_plan_guest *g = &plan->guests[a->guest_index];

    fputs("    {\"host\": ", f);
    zr_json_string(f, g->host);
    fputs(", \"uri\": ", f);
    if (g->uri)
        zr_json_string(f, g->uri);
    else
        fputs("null", f);
    fputs(", \"guest\": ", f);
    zr_json_string(f, g->guest);
    fprintf(f, ", \"op\": \"%s\", \"kind\": \"%s\", \"source\": \"" ZR_PCI_ADDR_FMT "\"",
            zr_op_to_string(a->op), zr_kind_to_string(a->kind), ZR_PCI_ADDR_ARGS(a->source));
    if (a->op == ZR_OP_ATTACH && a->device.pool) {
        fputs(", \"pool\": ", f);
        zr_json_string(f, a->device.pool);
    }
    fprintf(f, ", \"live\": %s, \"config\": %s", a->live ? "true" : "false",
            a->config ? "true" : "false");
    _cleanup_free_ char *reason = zr_action_reason(a);
    fputs(", \"reason\": ", f);
    zr_json_string(f, reason);
    if (a->note) {
        fputs(", \"note\": ", f);
        zr_json_string(f, a->note);
    }
    fputs(", \"xml\": ", f);
    zr_json_string(f, a->xml);
    fprintf(f, ", \"result\": \"%s\"", zr_result_to_string(r->result));
    if (r->error) {
        fputs(r->result == ZR_RESULT_SKIPPED ? ", \"skip_reason\": " : ", \"error\": ", f);
        zr_json_string(f, r->error);
    }
    fputc('}', f);
}

static void json_warnings(FILE *f, const struct zr_report *r)
{
    size_t n;
    _cleanup_free_ const struct zr_warning **all = zr_report_warnings(r, &n);
    fputs("  \"warnings\": [", f);
    for (size_t i = 0; i < n; i++) {
        const struct zr_warning *w = all[i];
        char src[ZR_PCI_ADDR_STRLEN];
        fputs(i ? ",\n    {\"host\": " : "\n    {\"host\": ", f);
        zr_json_string(f, w->host);
        fputs(", \"guest\": ", f);
        if (w->guest)
            zr_json_string(f, w->guest);
        else
            fputs("null", f);
        fputs(", \"source\": ", f);
        if (w->has_source)
            zr_json_string(f, zr_pci_addr_format(&w->source, src));
        else
            fputs("null", f);
        fputs(", \"message\": ", f);
        zr_json_string(f, w->message);
        fputc('}', f);
    }
    fputs(n ? "\n  ],\n" : "],\n", f);
}

static void json_hosts(FILE *f, const struct zr_plan *plan)
{
    /* Plans built without host records (the plan unit tests) keep the
     * shape they had before hosts were recorded. */
    if (!plan->n_hosts)
        return;
    fputs("  \"hosts\": [", f);
    for (size_t i = 0; i < plan->n_hosts; i++) {
        const struct zr_plan_host *h = &plan->hosts[i];
        fputs(i ? ",\n    {\"host\": " : "\n    {\"host\": ", f);
        zr_json_string(f, h->name);
        fputs(", \"uri\": ", f);
        if (h->uri)
            zr_json_string(f, h->uri);
        else
            fputs("null", f);
        fprintf(f, ", \"reached\": %s, \"error\": ", h->reached ? "true" : "false");
        if (h->error)
            zr_json_string(f, h->error);
        else
            fputs("null", f);
        fputc('}', f);
    }
    fputs("\n  ],\n", f);
}

static void output_json(FILE *f, const struct zr_report *r, const struct zr_output_options *o)
{
    const struct zr_plan *plan = &r->plan;
    _cleanup_(zr_summary_finish) struct zr_summary c;
    zr_summary_count(r, o->applied, &c);

    fputs("{\n  \"version\": 1,\n  \"actions\": [", f);
    for (size_t i = 0; i < plan->n_actions; i++) {
        fputs(i ? ",\n" : "\n", f);
        json_action(f, r, i);
    }
    fputs(plan->n_actions ? "\n  ],\n" : "],\n", f);

    json_warnings(f, r);

    fputs("  \"errors\": [", f);
    bool first = true;
    for (size_t i = 0; i < plan->n_guests; i++) {
        const struct zr_plan_guest *g = &plan->guests[i];
        if (!g->error)
            continue;
        fputs(first ? "\n    {\"host\": " : ",\n    {\"host\": ", f);
        first = false;
        zr_json_string(f, g->host);
        fputs(", \"guest\": ", f);
        zr_json_string(f, g->guest);
        fputs(", \"message\": ", f);
        zr_json_string(f, g->error);
        fputc('}', f);
    }
    fputs(first ? "],\n" : "\n  ],\n", f);

    json_hosts(f, plan);

    fprintf(f,
            "  \"summary\": {\"attach\": %zu, \"detach\": %zu, \"replace\": %zu, \"failed\": %zu, "
            "\"skipped\": %zu, \"rolled_back\": %zu, "
            "\"guests\": %zu, \"guests_changed\": %zu, \"guests_in_sync\": %zu, "
            "\"guests_failed\": %zu",
            c.calls[ZR_OP_ATTACH], c.calls[ZR_OP_DETACH], c.replaced, c.by_result[ZR_RESULT_FAILED],
            c.by_result[ZR_RESULT_SKIPPED], c.by_result[ZR_RESULT_ROLLED_BACK], c.guests.total,
            c.guests.changed, c.guests.in_sync, c.guests.failed);
    if (plan->n_hosts)
        fprintf(f, ", \"hosts_failed\": %zu", c.hosts_failed);
    fputs("}\n}\n", f);
}

/* The JSON document `buf` on one line and a newline. */
static void json_one_line(FILE *f, char *buf, size_t len)
{
    /* Every newline of the document is layout, as is the indentation after
     * it: zr_json_string() escapes the newlines inside strings. */
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n') {
            fputc(buf[i], f);
            continue;
        }
        while (i + 1 < len && buf[i + 1] == ' ')
            i++;
    }
    fputc('\n', f);
    free(buf);
}

void zr_output_json_line(FILE *f, const struct zr_report *r, const struct zr_output_options *o)
{
    struct zr_memstream m;
    output_json(zr_memstream_open(&m), r, o);
    char *buf = zr_memstream_close(&m);
    json_one_line(f, buf, m.len);
}

/* `"errors": [...], "errors_truncated": B,` of an input's errors. */
static void json_input_errors(FILE *f, const struct zr_errors *errs)
{
    fputs("  \"errors\": [", f);
    for (size_t i = 0; i < errs->n; i++) {
        const struct zr_error *e = &errs->items[i];
        fputs(i ? ",\n    {\"host\": null, \"guest\": null, \"file\": "
                : "\n    {\"host\": null, \"guest\": null, \"file\": ",
              f);
        if (e->file)
            zr_json_string(f, e->file);
        else
            fputs("null", f);
        if (e->line)
            fprintf(f, ", \"line\": %u", e->line);
        else
            fputs(", \"line\": null", f);
        if (e->column)
            fprintf(f, ", \"column\": %u", e->column);
        else
            fputs(", \"column\": null", f);
        fputs(", \"message\": ", f);
        zr_json_string(f, e->message);
        fputc('}', f);
    }
    fputs(errs->n ? "\n  ],\n" : "],\n", f);
    fprintf(f, "  \"errors_truncated\": %s,\n", errs->truncated ? "true" : "false");
}

static void output_errors(FILE *f, const struct zr_errors *errs)
{
    fputs("{\n  \"version\": 1,\n  \"actions\": [],\n  \"warnings\": [],\n", f);
    json_input_errors(f, errs);
    fputs("  \"summary\": {\"attach\": 0, \"detach\": 0, \"replace\": 0, \"failed\": 0, "
          "\"skipped\": 0, \"rolled_back\": 0, \"guests\": 0, \"guests_changed\": 0, "
          "\"guests_in_sync\": 0, \"guests_failed\": 0}\n}\n",
          f);
}

void zr_output_errors(FILE *f, const struct zr_errors *errs, const struct zr_output_options *o)
{
    if (o->format != ZR_FORMAT_JSON)
        return;
    if (!o->one_line) {
        output_errors(f, errs);
        return;
    }
    struct zr_memstream m;
    output_errors(zr_memstream_open(&m), errs);
    char *buf = zr_memstream_close(&m);
    json_one_line(f, buf, m.len);
}

void zr_output_validate(FILE *f, const char *file, const struct zr_inventory_counts *counts,
                        const struct zr_errors *errs)
{
    fputs("{\n  \"version\": 1,\n  \"file\": ", f);
    if (file)
        zr_json_string(f, file);
    else
        fputs("null", f);
    fprintf(f, ",\n  \"valid\": %s,\n", counts ? "true" : "false");
    json_input_errors(f, errs);
    if (counts)
        fprintf(f, "  \"hosts\": %zu, \"guests\": %zu, \"devices\": %zu\n}\n", counts->hosts,
                counts->guests, counts->devices);
    else
        fputs("  \"hosts\": null, \"guests\": null, \"devices\": null\n}\n", f);
}

/* ---- text ---------------------------------------------------------------- */

/* Hints already printed: each is shown once, under the first message that
 * calls for it (a host that cannot be reached fails every guest alike). */
struct hints_seen {
    const char **items;
    size_t n;
};

static void text_hint(FILE *f, zr_error_code code, const char *indent, struct hints_seen *seen,
                      const struct zr_output_options *o)
{
    const char *hint = zr_hint_for(code);
    if (!hint)
        return;
    for (size_t i = 0; i < seen->n; i++)
        if (seen->items[i] == hint)
            return;
    *ZR_APPEND(seen->items, seen->n) = hint;
    fprintf(f, "%s%shint:%s %s\n", indent, o->color ? C_BOLD : "", o->color ? C_RESET : "", hint);
}

/* One line of a guest's block: an attach, a detach, or a replacement pair. */
struct line {
    const struct zr_action *first;  /* the detach of a pair, or the action */
    const struct zr_action *second; /* the attach of a pair, or NULL */
    /* What became of them (PLANNED in a plan). */
    const struct zr_action_result *first_result, *second_result;
};

static int line_cmp(const void *pa, const void *pb)
{
    const struct line *a = pa, *b = pb;
    int r = zr_pci_addr_cmp(&a->first->source, &b->first->source);
    if (r)
        return r;
    if (a->first->kind != b->first->kind)
        return a->first->kind < b->first->kind ? -1 : 1;
    if (a->first->op != b->first->op)
        return a->first->op < b->first->op ? -1 : 1;
    /* Same key and op: live+config, config, live. */
    int wa = (a->first->config ? 2 : 0) + (a->first->live ? 1 : 0);
    int wb = (b->first->config ? 2 : 0) + (b->first->live ? 1 : 0);
    return wb - wa;
}

/* A line's result as "WORD" and, after ": ", *prefix then *error.  A
 * replacement whose detach was done but whose attach was not left the
 * guest without the function: the line says so, never only "failed" or
 * "skipped" (the summary counts it as detached). */
static const char *result_suffix(const struct zr_action_result *a,
                                 const struct zr_action_result *b, const char **prefix,
                                 const char **error)
{
    *prefix = "";
    *error = NULL;
    if (b && a->result == ZR_RESULT_DONE &&
        (b->result == ZR_RESULT_FAILED || b->result == ZR_RESULT_SKIPPED)) {
        *error = b->error;
        if (b->result == ZR_RESULT_FAILED) {
            *prefix = "detached, not attached again: ";
            return "failed";
        }
        return "detached, not attached again";
    }
    const struct zr_action_result *pair[2] = {a, b};
    for (int i = 0; i < 2; i++)
        if (pair[i] && pair[i]->result == ZR_RESULT_FAILED) {
            *error = pair[i]->error;
            return "failed";
        }
    for (int i = 0; i < 2; i++)
        if (pair[i] && pair[i]->result == ZR_RESULT_ROLLED_BACK)
            return "rolled back";
    for (int i = 0; i < 2; i++)
        if (pair[i] && pair[i]->result == ZR_RESULT_SKIPPED) {
            *error = pair[i]->error;
            return "skipped";
        }
    return zr_result_to_string(a->result);
}

static void text_line(FILE *f, const struct line *l, struct hints_seen *seen,
                      const struct zr_output_options *o)
{
    const struct zr_action *a = l->first;
    const char *marker, *verb, *color;
    const struct zr_action *shown = l->second ? l->second : a;

    if (l->second) {
        marker = "~";
        verb = "replace";
        color = C_YELLOW;
    } else if (a->op == ZR_OP_ATTACH) {
        marker = "+";
        verb = "attach";
        color = C_GREEN;
    } else {
        marker = "-";
        verb = "detach";
        color = C_RED;
    }
    _cleanup_free_ char *desc = zr_device_describe(&shown->device);
    fprintf(f, "  %s%s %s ", o->color ? color : "", marker, verb);
    zr_fputs_escaped(desc, f);
    fprintf(f, "%s [%s]", o->color ? C_RESET : "", zr_action_flags_string(shown));
    if (!l->second && a->op == ZR_OP_DETACH) {
        _cleanup_free_ char *reason = zr_action_reason(a);
        fprintf(f, " (%s)", reason);
    }
    const char *error = NULL;
    if (o->applied) {
        const char *prefix;
        const char *res = result_suffix(l->first_result, l->second_result, &prefix, &error);
        bool bad = strcmp(res, "done") != 0 || error;
        fprintf(f, " %s%s%s", o->color && bad ? C_RED C_BOLD : "", res,
                o->color && bad ? C_RESET : "");
        if (error) {
            fprintf(f, ": %s", prefix);
            zr_fputs_escaped(error, f);
        }
    }
    fputc('\n', f);
    if (l->second && l->second->n_changes) {
        _cleanup_free_ char *changes =
            zr_changes_format(l->second->changes, l->second->n_changes);
        fprintf(f, "      %s", o->color ? C_DIM : "");
        zr_fputs_escaped(changes, f);
        fprintf(f, "%s\n", o->color ? C_RESET : "");
    }
    if (shown->note) {
        fprintf(f, "      %s", o->color ? C_DIM : "");
        zr_fputs_escaped(shown->note, f);
        fprintf(f, "%s\n", o->color ? C_RESET : "");
    }
    if (error)
        text_hint(f,
                  l->second && error == l->second_result->error ? l->second_result->error_code
                                                                 : l->first_result->error_code,
                  "      ", seen, o);
}

/* `acts` are the indices of the guest's actions, in plan order. */
static void text_guest(FILE *f, const struct zr_report *r, size_t gi, const size_t *acts,
                       size_t n_acts, struct hints_seen *seen, const struct zr_output_options *o)
{
    const struct zr_plan *plan = &r->plan;
    const struct zr_plan_guest *g = &plan->guests[gi];
    if (g->error) {
        fputs(o->color ? C_BOLD : "", f);
        zr_fputs_escaped(g->guest, f);
        fprintf(f, ":%s %serror:%s ", o->color ? C_RESET : "", o->color ? C_RED C_BOLD : "",
                o->color ? C_RESET : "");
        zr_fputs_escaped(g->error, f);
        fputc('\n', f);
        text_hint(f, g->error_code, "  ", seen, o);
        return;
    }
    fputs(o->color ? C_BOLD : "", f);
    zr_fputs_escaped(g->guest, f);
    fprintf(f, ":%s%s\n", o->color ? C_RESET : "", g->changed ? "" : " in sync");
    if (!g->changed)
        return;

    _cleanup_free_ struct line *lines = NULL;
    size_t n = 0;
    for (size_t i = 0; i < n_acts; i++) {
        const struct zr_action *a = &plan->actions[acts[i]];
        /* A replacement's attach is on its detach's line. */
        if (a->role == ZR_ROLE_REPLACE_IN && a->pair != ZR_NO_PAIR)
            continue;
        struct line *l = ZR_APPEND(lines, n);
        l->first = a;
        l->first_result = zr_run_result(&r->run, acts[i]);
        if (a->role == ZR_ROLE_REPLACE_OUT && a->pair != ZR_NO_PAIR) {
            l->second = &plan->actions[a->pair];
            l->second_result = zr_run_result(&r->run, a->pair);
        }
    }
    qsort(lines, n, sizeof(*lines), line_cmp);
    for (size_t i = 0; i < n; i++)
        text_line(f, &lines[i], seen, o);
}

/* The plan's action indices grouped by guest, each group in plan order:
 * guest i's are order[start[i] .. start[i + 1]).  One pass, so the text
 * output stays linear in guests and actions. */
struct by_guest {
    size_t *order;
    size_t *start;
};

static void by_guest_init(struct by_guest *b, const struct zr_plan *plan)
{
    b->order = zr_new0(size_t, plan->n_actions);
    b->start = zr_new0(size_t, plan->n_guests + 1);
    for (size_t i = 0; i < plan->n_actions; i++)
        b->start[plan->actions[i].guest_index + 1]++;
    for (size_t g = 0; g < plan->n_guests; g++)
        b->start[g + 1] += b->start[g];
    _cleanup_free_ size_t *fill = zr_new0(size_t, plan->n_guests + 1);
    memcpy(fill, b->start, (plan->n_guests + 1) * sizeof(*fill));
    for (size_t i = 0; i < plan->n_actions; i++)
        b->order[fill[plan->actions[i].guest_index]++] = i;
}

static void by_guest_finish(struct by_guest *b)
{
    free(b->order);
    free(b->start);
}

/* Nothing for the one host of an inventory without hosts:. */
static void text_host_header(FILE *f, const struct zr_plan *plan, const char *host,
                             const char *uri, const struct zr_output_options *o)
{
    if (!plan->has_hosts)
        return;
    fprintf(f, "%s== host ", o->color ? C_BOLD : "");
    zr_fputs_escaped(host, f);
    fputs(" (", f);
    zr_fputs_escaped(uri ? uri : "libvirt default", f);
    fprintf(f, ") ==%s\n", o->color ? C_RESET : "");
}

static void text_warnings(FILE *f, const struct zr_report *r, struct hints_seen *seen,
                          const struct zr_output_options *o)
{
    size_t n;
    _cleanup_free_ const struct zr_warning **all = zr_report_warnings(r, &n);
    if (n)
        fputs("\nWarnings:\n", f);
    for (size_t i = 0; i < n; i++) {
        const struct zr_warning *w = all[i];
        fputs("  ", f);
        if (r->plan.has_hosts) {
            zr_fputs_escaped(w->host, f);
            fputs(": ", f);
        }
        if (w->guest) {
            zr_fputs_escaped(w->guest, f);
            fputs(": ", f);
        }
        if (w->has_source)
            fprintf(f, ZR_PCI_ADDR_FMT ": ", ZR_PCI_ADDR_ARGS(w->source));
        zr_fputs_escaped(w->message, f);
        fputc('\n', f);
        text_hint(f, w->code, "    ", seen, o);
    }
}

/* The last line: what was (or would be) done, on how many guests. */
static void text_summary(FILE *f, const struct zr_report *r, const struct zr_output_options *o)
{
    _cleanup_(zr_summary_finish) struct zr_summary c;
    zr_summary_count(r, o->applied, &c);
    const struct zr_guest_counts *g = &c.guests;
    if (o->applied) {
        fprintf(f, "Apply: %zu attached, %zu detached, %zu replaced, %zu failed", c.attached,
                c.detached, c.replaced, c.by_result[ZR_RESULT_FAILED]);
        if (c.by_result[ZR_RESULT_SKIPPED])
            fprintf(f, ", %zu skipped", c.by_result[ZR_RESULT_SKIPPED]);
        if (c.by_result[ZR_RESULT_ROLLED_BACK])
            fprintf(f, ", %zu rolled back", c.by_result[ZR_RESULT_ROLLED_BACK]);
        fprintf(f, " on %zu of %zu guests", g->changed, g->total);
    } else if (c.attached + c.detached + c.replaced == 0) {
        fprintf(f, "Plan: no changes; %zu of %zu guests in sync", g->in_sync, g->total);
    } else {
        fprintf(f, "Plan: %zu to attach, %zu to detach, %zu to replace on %zu of %zu guests",
                c.attached, c.detached, c.replaced, g->changed, g->total);
    }
    if (g->failed)
        fprintf(f, " (%zu with errors)", g->failed);
    if (c.hosts_failed)
        fprintf(f, "; %zu of %zu hosts failed", c.hosts_failed, r->plan.n_hosts);
    fputs(".\n", f);
}

static void output_text(FILE *f, const struct zr_report *r, const struct zr_output_options *o)
{
    const struct zr_plan *plan = &r->plan;
    if (!o->quiet) {
        /* Guests come host by host, in the order of the host records.  A
         * host's error gets a line of its own only when no guest line
         * carries it (a host without guests). */
        struct hints_seen seen = {0};
        _cleanup_(by_guest_finish) struct by_guest acts = {0};
        by_guest_init(&acts, plan);
#define GUEST_ACTIONS(gi) acts.order + acts.start[gi], acts.start[(gi) + 1] - acts.start[gi]
        size_t gi = 0;
        for (size_t h = 0; h < plan->n_hosts; h++) {
            const struct zr_plan_host *host = &plan->hosts[h];
            size_t first = gi;
            text_host_header(f, plan, host->name, host->uri, o);
            for (; gi < plan->n_guests && zr_streq(plan->guests[gi].host, host->name); gi++)
                text_guest(f, r, gi, GUEST_ACTIONS(gi), &seen, o);
            if (host->error && gi == first) {
                fprintf(f, "%serror:%s ", o->color ? C_RED C_BOLD : "", o->color ? C_RESET : "");
                zr_fputs_escaped(host->error, f);
                fputc('\n', f);
                text_hint(f, host->error_code, "  ", &seen, o);
            }
        }
        /* Guests without a host record: plans built by hand (unit tests). */
        for (const char *host = NULL; gi < plan->n_guests; gi++) {
            const struct zr_plan_guest *g = &plan->guests[gi];
            if (!zr_streq(g->host, host))
                text_host_header(f, plan, g->host, g->uri, o);
            host = g->host;
            text_guest(f, r, gi, GUEST_ACTIONS(gi), &seen, o);
        }
#undef GUEST_ACTIONS
        text_warnings(f, r, &seen, o);
        free(seen.items);
        fputc('\n', f);
    }

    text_summary(f, r, o);
}

void zr_output_plan(FILE *f, const struct zr_report *r, const struct zr_output_options *o)
{
    switch (o->format) {
    case ZR_FORMAT_JSON:
        output_json(f, r, o);
        break;
    case ZR_FORMAT_TEXT:
    case ZR_FORMAT__COUNT:
        output_text(f, r, o);
        break;
    }
}
