/* libvirt URIs as values.  See uri.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/uri.h>

#include "uri.h"
#include "util.h"

/* A path as libvirt's drivers resolve it: runs of '/' are one, "." segments
 * name the directory they are in, a trailing '/' changes nothing.  ".." is
 * kept: through a symlink it need not be the parent. */
static void normalize_path(char *p)
{
    char *o = p;
    for (const char *i = p; *i;) {
        if (*i == '/' && (i[1] == '/' || (i[1] == '.' && (i[2] == '/' || i[2] == '\0')))) {
            i += i[1] == '/' ? 1 : 2;
            continue;
        }
        *o++ = *i++;
    }
    *o = '\0';
    if (o - p > 1 && o[-1] == '/')
        o[-1] = '\0';
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *zr_uri_normalize(const char *uri)
{
    xmlURIPtr u = uri ? xmlParseURI(uri) : NULL;
    if (!u || !u->scheme) {
        xmlFreeURI(u);
        return zr_strdup(uri);
    }
    for (char *c = u->scheme; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    for (char *c = u->server; c && *c; c++)
        *c = (char)tolower((unsigned char)*c);
    /* Without a host name the remote driver's default transport is the
     * local socket: qemu+unix:///system is qemu:///system. */
    size_t sl = strlen(u->scheme);
    if ((!u->server || !*u->server) && sl > 5 && strcmp(u->scheme + sl - 5, "+unix") == 0)
        u->scheme[sl - 5] = '\0';
    if (u->path)
        normalize_path(u->path);

    /* Parameters in any order are one URI; a root= (embedded driver) is a
     * path like the URI's own. */
    char **params = NULL;
    size_t n = 0;
    const char *query = u->query_raw ? u->query_raw : u->query;
    _cleanup_free_ char *q = zr_strdup(query);
    for (char *save = NULL, *t = q ? strtok_r(q, "&;", &save) : NULL; t;
         t = strtok_r(NULL, "&;", &save)) {
        char *param = zr_strdup(t);
        if (strncmp(param, "root=", 5) == 0)
            normalize_path(param + 5);
        *ZR_APPEND(params, n) = param;
    }
    if (n)
        qsort(params, n, sizeof(*params), str_cmp);

    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        abort();
    fprintf(f, "%s://", u->scheme);
    if (u->user)
        fprintf(f, "%s@", u->user);
    if (u->server)
        fputs(u->server, f);
    if (u->port > 0)
        fprintf(f, ":%d", u->port);
    fputs(u->path && *u->path ? u->path : "/", f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%c%s", i ? '&' : '?', params[i]);
        free(params[i]);
    }
    free(params);
    fclose(f);
    xmlFreeURI(u);
    return out;
}

bool zr_uri_may_be_embedded(const char *uri)
{
    _cleanup_free_ char *n = zr_uri_normalize(uri);
    xmlURIPtr u = xmlParseURI(n);
    bool embedded = !u || !u->scheme || (u->path && strcmp(u->path, "/embed") == 0);
    xmlFreeURI(u);
    return embedded;
}

/* The normalized URI's parts: scheme "qemu" without a host (a local QEMU
 * driver URI), and its path. */
static bool local_qemu(const char *uri, bool *embed)
{
    _cleanup_free_ char *n = zr_uri_normalize(uri);
    xmlURIPtr u = n ? xmlParseURI(n) : NULL;
    bool local = u && u->scheme && strcmp(u->scheme, "qemu") == 0 && (!u->server || !*u->server);
    *embed = local && u->path && strcmp(u->path, "/embed") == 0;
    xmlFreeURI(u);
    return local;
}

bool zr_uri_is_embedded(const char *uri)
{
    bool embed = false;
    return uri && local_qemu(uri, &embed) && embed;
}

/* The value of parameter `name` of URI u, unescaped, or NULL. */
static char *uri_param(xmlURIPtr u, const char *name)
{
    const char *query = u->query_raw ? u->query_raw : u->query;
    _cleanup_free_ char *q = zr_strdup(query);
    size_t len = strlen(name);
    for (char *save = NULL, *t = q ? strtok_r(q, "&;", &save) : NULL; t;
         t = strtok_r(NULL, "&;", &save))
        if (strncmp(t, name, len) == 0 && t[len] == '=')
            return xmlURIUnescapeString(t + len + 1, 0, NULL);
    return NULL;
}

char *zr_uri_config_dir(const char *uri)
{
    _cleanup_free_ char *n = zr_uri_normalize(uri);
    xmlURIPtr u = n ? xmlParseURI(n) : NULL;
    bool local = u && u->scheme && strcmp(u->scheme, "qemu") == 0 && (!u->server || !*u->server);
    const char *path = local && u->path ? u->path : "";
    char *dir = NULL;
    if (strcmp(path, "/system") == 0) {
        dir = zr_strdup("/etc/libvirt/qemu");
    } else if (strcmp(path, "/session") == 0) {
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        if (xdg && *xdg == '/')
            dir = zr_asprintf("%s/libvirt/qemu", xdg);
        else if (home && *home == '/')
            dir = zr_asprintf("%s/.config/libvirt/qemu", home);
    } else if (strcmp(path, "/embed") == 0) {
        char *root = uri_param(u, "root");
        if (root && *root == '/')
            dir = zr_asprintf("%s/etc/qemu", root);
        xmlFree(root);
    }
    xmlFreeURI(u);
    return dir;
}

bool zr_uri_blocked_by_embed(const char *root, const char *uri)
{
    if (!uri)
        return true;
    _cleanup_free_ char *a = zr_uri_normalize(root);
    _cleanup_free_ char *b = zr_uri_normalize(uri);
    bool embed;
    return strcmp(a, b) != 0 && local_qemu(uri, &embed);
}
