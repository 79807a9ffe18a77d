/* The one process supervisor (fleet.h) that apply's and watch's hosts:
 * runs share: each child's output and end reach the caller whatever order
 * they come in, a signal is a source of its loop, and a stop ends and
 * reaps every child. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fleet.h"

#define SLOTS 3

struct seen {
    struct zr_supervisor *s;
    size_t ended;
    int code[SLOTS], status[SLOTS];
    char out[SLOTS][64];
    int signal;
};

/* Slot i writes its number; slot 1 after a pause (it ends last), slot 2
 * fails with status 3. */
static int child_writes(void *data, size_t i, int fd)
{
    if (i == 1)
        usleep(200 * 1000);
    char line[32];
    int n = snprintf(line, sizeof(line), "host %zu", i);
    if (write(fd, line, (size_t)n) != n)
        return 1;
    return i == 2 ? 3 : 0;
}

static void note_end(void *data, size_t i, const siginfo_t *si, const char *out, size_t len)
{
    struct seen *v = data;
    v->code[i] = si->si_code;
    v->status[i] = si->si_status;
    snprintf(v->out[i], sizeof(v->out[i]), "%.*s", (int)len, out ? out : "");
    if (++v->ended == SLOTS)
        zr_supervisor_exit(v->s);
}

Test(fleet, each_child_output_and_status_reach_the_caller)
{
    struct seen v = {0};
    struct zr_supervisor_ops ops = {
        .data = &v, .pipe = true, .child = child_writes, .ended = note_end};
    int r;
    v.s = zr_supervisor_new(SLOTS, (const int[]){0}, &ops, &r);
    cr_assert_not_null(v.s, "%s", strerror(-r));
    for (size_t i = 0; i < SLOTS; i++)
        cr_assert_eq(zr_supervisor_start(v.s, i), 0);
    zr_supervisor_loop(v.s);
    for (size_t i = 0; i < SLOTS; i++) {
        char want[32];
        snprintf(want, sizeof(want), "host %zu", i);
        cr_expect_str_eq(v.out[i], want);
        cr_expect_eq(v.code[i], CLD_EXITED);
        cr_expect_eq(v.status[i], i == 2 ? 3 : 0);
        cr_expect_not(zr_supervisor_running(v.s, i));
    }
    zr_supervisor_free(v.s);
}

static int child_killed(void *data, size_t i, int fd)
{
    raise(SIGKILL);
    return 0;
}

Test(fleet, a_killed_child_is_told_with_its_signal)
{
    struct seen v = {0};
    struct zr_supervisor_ops ops = {
        .data = &v, .pipe = true, .child = child_killed, .ended = note_end};
    int r;
    v.s = zr_supervisor_new(SLOTS, (const int[]){0}, &ops, &r);
    cr_assert_not_null(v.s);
    for (size_t i = 0; i < SLOTS; i++)
        cr_assert_eq(zr_supervisor_start(v.s, i), 0);
    zr_supervisor_loop(v.s);
    for (size_t i = 0; i < SLOTS; i++) {
        cr_expect_eq(v.code[i], CLD_KILLED);
        cr_expect_eq(v.status[i], SIGKILL);
        cr_expect_str_eq(v.out[i], "");
    }
    zr_supervisor_free(v.s);
}

static int child_waits(void *data, size_t i, int fd)
{
    pause(); /* until SIGTERM ends it */
    return 0;
}

static void note_signal(void *data, int sig)
{
    struct seen *v = data;
    v->signal = sig;
    zr_supervisor_exit(v->s);
}

Test(fleet, a_signal_is_a_source_and_a_stop_reaps_every_child)
{
    struct seen v = {0};
    struct zr_supervisor_ops ops = {
        .data = &v, .child = child_waits, .ended = note_end, .signal = note_signal};
    int r;
    v.s = zr_supervisor_new(SLOTS, (const int[]){SIGUSR1, 0}, &ops, &r);
    cr_assert_not_null(v.s);
    for (size_t i = 0; i < SLOTS; i++)
        cr_assert_eq(zr_supervisor_start(v.s, i), 0);
    raise(SIGUSR1); /* blocked: the loop reads it */
    zr_supervisor_loop(v.s);
    cr_expect_eq(v.signal, SIGUSR1);
    cr_expect_eq(v.ended, 0);
    /* SIGTERM's default action ends them: not status 0, so 1. */
    cr_expect_eq(zr_supervisor_stop(v.s, SIGTERM), 1);
    for (size_t i = 0; i < SLOTS; i++)
        cr_expect_not(zr_supervisor_running(v.s, i));
    cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1, "a child was left unreaped");
    zr_supervisor_free(v.s);
}
