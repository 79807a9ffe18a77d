/* Hostile domain XML: entities, DOCTYPEs and external references must
 * neither read a file nor open a connection.  Proved without strace: each
 * reference points at a file in a fresh directory watched with inotify
 * (any open or read inside it is an event) or at a loopback port we listen
 * on (any connection is accepted), and the referenced file holds a real
 * <hostdev>, so reading it would also change the result. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <unistd.h>

#include "domain.h"
#include "util.h"

static const char hostdev[] =
    "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
    "<address domain='0x0009' bus='0x00' slot='0x00' function='0x0'/></source></hostdev>";

struct trap {
    char dir[64];
    char *file;  /* dir/hostdev.xml, holding `hostdev` */
    int inotify; /* watches dir */
    int listener;
    unsigned port;
};

static void trap_set(struct trap *t)
{
    strcpy(t->dir, "/tmp/zr-test-hostile-XXXXXX");
    cr_assert_not_null(mkdtemp(t->dir));
    t->file = zr_asprintf("%s/hostdev.xml", t->dir);
    FILE *f = fopen(t->file, "w");
    cr_assert_not_null(f);
    fputs(hostdev, f);
    fclose(f);

    t->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    cr_assert_geq(t->inotify, 0);
    cr_assert_geq(inotify_add_watch(t->inotify, t->dir, IN_OPEN | IN_ACCESS), 0);

    t->listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_geq(t->listener, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(t->listener, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(t->listener, 8), 0);
    cr_assert_eq(getsockname(t->listener, (struct sockaddr *)&a, &len), 0);
    t->port = ntohs(a.sin_port);
}

/* Events since the last call: opens and reads in the directory. */
static size_t trap_file_events(struct trap *t)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    size_t n = 0;
    ssize_t r;
    while ((r = read(t->inotify, buf, sizeof(buf))) > 0)
        for (char *p = buf; p < buf + r; p += sizeof(struct inotify_event) +
                                                ((struct inotify_event *)p)->len)
            n++;
    return n;
}

/* Connections made to the port. */
static size_t trap_connections(struct trap *t)
{
    size_t n = 0;
    int c;
    while ((c = accept(t->listener, NULL, NULL)) >= 0) {
        close(c);
        n++;
    }
    return n;
}

static void trap_clear(struct trap *t)
{
    close(t->inotify);
    close(t->listener);
    unlink(t->file);
    rmdir(t->dir);
    free(t->file);
}

/* The detector works: reading the file ourselves is seen. */
Test(hostile_xml, the_trap_sees_a_read)
{
    struct trap t;
    trap_set(&t);
    cr_assert_eq(trap_file_events(&t), 0);
    FILE *f = fopen(t.file, "r");
    cr_assert_not_null(f);
    cr_assert_neq(fgetc(f), EOF);
    fclose(f);
    cr_expect_gt(trap_file_events(&t), 0);

    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)t.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
    close(s);
    usleep(10000);
    cr_expect_eq(trap_connections(&t), 1);
    trap_clear(&t);
}

/* Parses `xml` (a printf format: %1$s the file, %2$u the port) as a whole
 * domain and as a device; expects `error` (NULL: success with no device)
 * and nothing touched. */
static void expect_inert(const char *fmt, const char *error)
{
    struct trap t;
    trap_set(&t);
    _cleanup_free_ char *xml = NULL;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    cr_assert_geq(asprintf(&xml, fmt, t.file, t.port), 0);
#pragma GCC diagnostic pop

    struct zr_device_list list = {0};
    struct zr_error err = {0};
    int r = zr_domain_parse_devices(xml, strlen(xml), "hostile.xml", &list, &err);
    if (error) {
        cr_expect_eq(r, -EINVAL, "accepted:\n%s", xml);
        cr_expect(err.message && strstr(err.message, error), "message '%s', want '%s'",
                  err.message ? err.message : "", error);
    } else {
        cr_expect_eq(r, 0, "%s", err.message ? err.message : "");
    }
    cr_expect_eq(list.n, 0, "a device was read (the reference was followed):\n%s", xml);
    cr_expect_eq(trap_file_events(&t), 0, "the referenced file was opened or read");
    cr_expect_eq(trap_connections(&t), 0, "a connection was made");
    zr_device_list_finish(&list);
    zr_error_finish(&err);
    trap_clear(&t);
}

#define REFUSED "DOCTYPE declaration refused"

Test(hostile_xml, external_entity_in_devices)
{
    expect_inert("<!DOCTYPE domain [<!ENTITY x SYSTEM 'file://%1$s'>]>"
                 "<domain><devices>&x;</devices></domain>",
                 REFUSED);
}

Test(hostile_xml, external_entity_by_plain_path)
{
    expect_inert("<!DOCTYPE domain [<!ENTITY x SYSTEM '%1$s'>]>"
                 "<domain><devices>&x;</devices></domain>",
                 REFUSED);
}

Test(hostile_xml, external_entity_over_http)
{
    expect_inert("<!DOCTYPE domain [<!ENTITY x SYSTEM 'http://127.0.0.1:%2$u/x.xml'>]>"
                 "<domain><devices>&x;</devices></domain>",
                 REFUSED);
}

Test(hostile_xml, external_dtd_file)
{
    expect_inert("<!DOCTYPE domain SYSTEM 'file://%1$s'><domain><devices/></domain>", REFUSED);
}

Test(hostile_xml, external_dtd_over_http)
{
    expect_inert("<!DOCTYPE domain PUBLIC '-//x//y' 'http://127.0.0.1:%2$u/d.dtd'>"
                 "<domain><devices/></domain>",
                 REFUSED);
}

Test(hostile_xml, parameter_entity)
{
    expect_inert("<!DOCTYPE domain [<!ENTITY %% p SYSTEM 'file://%1$s'> %%p;]>"
                 "<domain><devices/></domain>",
                 REFUSED);
}

Test(hostile_xml, internal_entity_holding_a_device)
{
    /* Not external, but still a device smuggled in through an entity. */
    expect_inert("<!DOCTYPE domain [<!ENTITY x \"<hostdev mode='subsystem' type='pci'><source>"
                 "<address domain='9' bus='0' slot='0' function='0'/></source></hostdev>\">]>"
                 "<domain><devices>&x;</devices></domain>%1$.0s%2$.0u",
                 REFUSED);
}

Test(hostile_xml, undeclared_entity)
{
    expect_inert("<domain><devices>&x;</devices></domain>%1$.0s%2$.0u", "not well-formed XML");
}

Test(hostile_xml, xinclude_is_not_processed)
{
    expect_inert("<domain><devices><xi:include xmlns:xi='http://www.w3.org/2001/XInclude' "
                 "href='file://%1$s' parse='xml'/><xi:include "
                 "xmlns:xi='http://www.w3.org/2001/XInclude' href='http://127.0.0.1:%2$u/'/>"
                 "</devices></domain>",
                 NULL);
}

Test(hostile_xml, stylesheet_and_schema_location_are_not_followed)
{
    expect_inert("<?xml-stylesheet type='text/xsl' href='file://%1$s'?>"
                 "<domain xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' "
                 "xsi:noNamespaceSchemaLocation='http://127.0.0.1:%2$u/s.xsd'>"
                 "<devices/></domain>",
                 NULL);
}

Test(hostile_xml, device_xml_with_external_entity)
{
    struct trap t;
    trap_set(&t);
    _cleanup_free_ char *xml =
        zr_asprintf("<!DOCTYPE hostdev [<!ENTITY x SYSTEM 'file://%s'>]>"
                    "<hostdev mode='subsystem' type='pci'>&x;</hostdev>",
                    t.file);
    struct zr_device d = {0};
    struct zr_error err = {0};
    cr_expect_eq(zr_domain_parse_device(xml, strlen(xml), &d, &err), -EINVAL);
    cr_expect(err.message && strstr(err.message, REFUSED));
    cr_expect_eq(trap_file_events(&t), 0, "the referenced file was opened or read");
    zr_device_finish(&d);
    zr_error_finish(&err);
    trap_clear(&t);
}
