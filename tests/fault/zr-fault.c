/* Test-only LD_PRELOAD shim: makes chosen libvirt calls of zpci-reconcile
 * fail, or pauses the process at them, so every failure path can be driven
 * against real libvirt.  Never linked into the tool; tests preload it.
 *
 *   ZR_FAULT=SPEC[,SPEC...]   SPEC is FUNCTION[@GUEST]:N[+][:ACTION]
 *       N      the 1-based call of FUNCTION (counted over all threads);
 *              "N+" means that call and every later one
 *       @GUEST counts only FUNCTION's calls on the domain named GUEST (a
 *              function taking a domain): the same call whatever order
 *              parallel threads make them in
 *       ACTION fail (default): return the failure value with the libvirt
 *                error "zr-fault: FUNCTION call N failed" (VIR_ERR_INTERNAL_ERROR)
 *              no-domain / no-support: the same with VIR_ERR_NO_DOMAIN /
 *                VIR_ERR_NO_SUPPORT
 *              stop: raise SIGSTOP, then make the call (the test decides
 *                what happens meanwhile, then sends SIGCONT)
 *              sigint / sigterm: raise that signal in the calling thread
 *                (its handler runs before the call is made), then make
 *                the call: a ^C that lands during exactly this call
 *              slow: sleep half a second, then make the call (a call
 *                that takes long, so parallel callers overtake it)
 *   ZR_FAULT_COUNTS=PATH      at exit, write "FUNCTION CALLS" lines for every
 *                             wrapped function that was called
 *
 * A malformed ZR_FAULT aborts the process: a test must not pass because
 * its fault was silently ignored. */
#include <dlfcn.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WRAPPED(X)                                                                                 \
    X(virConnectOpen)                                                                              \
    X(virConnectGetURI)                                                                            \
    X(virConnectListAllDomains)                                                                    \
    X(virConnectListAllNodeDevices)                                                                \
    X(virNodeDeviceLookupByName)                                                                   \
    X(virNodeDeviceGetXMLDesc)                                                                     \
    X(virDomainLookupByName)                                                                       \
    X(virDomainIsActive)                                                                           \
    X(virDomainGetXMLDesc)                                                                         \
    X(virDomainAttachDeviceFlags)                                                                  \
    X(virDomainDetachDeviceFlags)                                                                  \
    X(virConnectDomainEventRegisterAny)                                                            \
    X(virEventRegisterDefaultImpl)

#define AS_ID(f) ID_##f,
#define AS_NAME(f) #f,
enum { WRAPPED(AS_ID) N_FUNCS };
static const char *const names[N_FUNCS] = {WRAPPED(AS_NAME)};

typedef enum {
    ACT_FAIL,
    ACT_SIGNAL,
    ACT_SLOW,
} action;

struct fault {
    int func;
    char guest[128];      /* "" for any */
    atomic_ulong matched; /* calls on `guest` so far */
    unsigned long call;
    bool and_later;
    action act;
    int code; /* ACT_FAIL: the libvirt error code; ACT_SIGNAL: the signal */
};

#define MAX_FAULTS 16
static struct fault faults[MAX_FAULTS];
static size_t n_faults;
static atomic_ulong calls[N_FUNCS];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void die(const char *what, const char *spec)
{
    fprintf(stderr, "zr-fault: %s in ZR_FAULT: '%s'\n", what, spec);
    abort();
}

static void parse_spec(char *spec)
{
    char *save = NULL;
    char *fn = strtok_r(spec, ":", &save);
    char *num = strtok_r(NULL, ":", &save);
    char *act = strtok_r(NULL, ":", &save);
    if (!fn || !num || strtok_r(NULL, ":", &save))
        die("expected FUNCTION[@GUEST]:N[+][:ACTION]", spec);
    if (n_faults == MAX_FAULTS)
        die("too many faults", spec);
    struct fault *f = &faults[n_faults++];
    char *at = strchr(fn, '@');
    if (at) {
        *at = '\0';
        if (!at[1] || strlen(at + 1) >= sizeof(f->guest))
            die("bad guest name", at + 1);
        strcpy(f->guest, at + 1);
    }
    f->func = -1;
    for (int i = 0; i < N_FUNCS; i++)
        if (strcmp(fn, names[i]) == 0)
            f->func = i;
    if (f->func < 0)
        die("not a wrapped function", fn);
    if (*f->guest && f->func != ID_virDomainIsActive && f->func != ID_virDomainGetXMLDesc &&
        f->func != ID_virDomainAttachDeviceFlags && f->func != ID_virDomainDetachDeviceFlags)
        die("@GUEST needs a function taking a domain", fn);
    char *end;
    f->call = strtoul(num, &end, 10);
    f->and_later = *end == '+';
    if (f->call == 0 || end == num || *(end + f->and_later))
        die("bad call number", num);
    f->act = ACT_FAIL;
    f->code = VIR_ERR_INTERNAL_ERROR;
    if (!act || strcmp(act, "fail") == 0)
        ;
    else if (strcmp(act, "no-domain") == 0)
        f->code = VIR_ERR_NO_DOMAIN;
    else if (strcmp(act, "no-support") == 0)
        f->code = VIR_ERR_NO_SUPPORT;
    else if (strcmp(act, "stop") == 0)
        f->act = ACT_SIGNAL, f->code = SIGSTOP;
    else if (strcmp(act, "sigint") == 0)
        f->act = ACT_SIGNAL, f->code = SIGINT;
    else if (strcmp(act, "sigterm") == 0)
        f->act = ACT_SIGNAL, f->code = SIGTERM;
    else if (strcmp(act, "slow") == 0)
        f->act = ACT_SLOW;
    else
        die("unknown action", act);
}

static void setup(void)
{
    const char *env = getenv("ZR_FAULT");
    if (!env || !*env)
        return;
    char *copy = strdup(env);
    if (!copy)
        abort();
    char *save = NULL;
    for (char *spec = strtok_r(copy, ",", &save); spec; spec = strtok_r(NULL, ",", &save))
        parse_spec(spec);
    free(copy);
}

/* Makes `e` this thread's libvirt error, as a failing libvirt call would:
 * the tool reads it back with virGetLastError().  libvirt 9.0 exports
 * virSetError only as a private symbol, hence dlsym; it copies `e`. */
static void set_error(virErrorPtr e)
{
    int (*fn)(virErrorPtr);
    void *sym = dlsym(RTLD_DEFAULT, "virSetError");
    if (!sym) {
        fprintf(stderr, "zr-fault: this libvirt has no virSetError: %s\n", dlerror());
        abort();
    }
    memcpy(&fn, &sym, sizeof(fn));
    fn(e);
}

/* Counts the call (on dom, NULL for a function without a domain); true
 * when it must fail (the libvirt error is set). */
static bool inject(int func, virDomainPtr dom)
{
    pthread_once(&once, setup);
    unsigned long n = atomic_fetch_add(&calls[func], 1) + 1;
    for (size_t i = 0; i < n_faults; i++) {
        struct fault *f = &faults[i];
        if (f->func != func)
            continue;
        unsigned long k = n;
        if (*f->guest) {
            const char *name = dom ? virDomainGetName(dom) : NULL;
            if (!name || strcmp(name, f->guest) != 0)
                continue;
            k = atomic_fetch_add(&f->matched, 1) + 1;
        }
        if (!(k == f->call || (f->and_later && k > f->call)))
            continue;
        if (f->act == ACT_SLOW) {
            nanosleep(&(struct timespec){.tv_nsec = 500000000}, NULL);
            continue;
        }
        if (f->act == ACT_SIGNAL) {
            raise(f->code);
            continue;
        }
        char msg[160];
        snprintf(msg, sizeof(msg), "zr-fault: %s call %lu failed", names[func], k);
        virError e = {
            .code = f->code,
            .domain = VIR_FROM_NONE,
            .message = msg,
            .level = VIR_ERR_ERROR,
        };
        set_error(&e);
        return true;
    }
    return false;
}

static void *real(int func)
{
    void *p = dlsym(RTLD_NEXT, names[func]);
    if (!p) {
        fprintf(stderr, "zr-fault: %s not found: %s\n", names[func], dlerror());
        abort();
    }
    return p;
}

__attribute__((destructor)) static void write_counts(void)
{
    const char *path = getenv("ZR_FAULT_COUNTS");
    if (!path || !*path)
        return;
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    for (int i = 0; i < N_FUNCS; i++) {
        unsigned long n = atomic_load(&calls[i]);
        if (n)
            fprintf(f, "%s %lu\n", names[i], n);
    }
    fclose(f);
}

/* One wrapper per function: count, maybe fail, else call through. */
#define WRAP_ON(dom, ret, fn, fail, params, args)                                                  \
    ret fn params                                                                                  \
    {                                                                                              \
        if (inject(ID_##fn, dom))                                                                  \
            return fail;                                                                           \
        ret(*next) params;                                                                         \
        void *sym = real(ID_##fn);                                                                 \
        /* ISO C has no cast from object to function pointer. */                                   \
        memcpy(&next, &sym, sizeof(next));                                                         \
        return next args;                                                                          \
    }
#define WRAP(...) WRAP_ON(NULL, __VA_ARGS__)

WRAP(virConnectPtr, virConnectOpen, NULL, (const char *name), (name))
WRAP(char *, virConnectGetURI, NULL, (virConnectPtr conn), (conn))
WRAP(int, virConnectListAllDomains, -1,
     (virConnectPtr conn, virDomainPtr **domains, unsigned int flags), (conn, domains, flags))
WRAP(int, virConnectListAllNodeDevices, -1,
     (virConnectPtr conn, virNodeDevicePtr **devices, unsigned int flags), (conn, devices, flags))
WRAP(virNodeDevicePtr, virNodeDeviceLookupByName, NULL, (virConnectPtr conn, const char *name),
     (conn, name))
WRAP(char *, virNodeDeviceGetXMLDesc, NULL, (virNodeDevicePtr dev, unsigned int flags),
     (dev, flags))
WRAP(virDomainPtr, virDomainLookupByName, NULL, (virConnectPtr conn, const char *name),
     (conn, name))
WRAP_ON(dom, int, virDomainIsActive, -1, (virDomainPtr dom), (dom))
WRAP_ON(dom, char *, virDomainGetXMLDesc, NULL, (virDomainPtr dom, unsigned int flags),
        (dom, flags))
WRAP_ON(dom, int, virDomainAttachDeviceFlags, -1,
        (virDomainPtr dom, const char *xml, unsigned int flags), (dom, xml, flags))
WRAP_ON(dom, int, virDomainDetachDeviceFlags, -1,
        (virDomainPtr dom, const char *xml, unsigned int flags), (dom, xml, flags))
WRAP(int, virConnectDomainEventRegisterAny, -1,
     (virConnectPtr conn, virDomainPtr dom, int id, virConnectDomainEventGenericCallback cb,
      void *opaque, virFreeCallback freecb),
     (conn, dom, id, cb, opaque, freecb))
WRAP(int, virEventRegisterDefaultImpl, -1, (void), ())
