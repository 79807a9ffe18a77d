/* Replays inputs through a fuzz target without libFuzzer, so the seed
 * corpora and every crasher kept as a regression input run as ordinary
 * tests in every build (gcc, ASan/UBSan, valgrind).
 *
 *   fuzz-TARGET-replay PATH...
 *
 * A PATH is a file or a directory, read recursively in name order.  Each
 * input is copied into a buffer of exactly its size, as libFuzzer does, so
 * an over-read is caught by the sanitizers or valgrind.  Its name is
 * printed before it runs: a crash names the input.  Exit status 0 when
 * every input ran, 1 when a path is missing or there was no input at all. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

static int run_file(const char *path, size_t *count)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd); /* sockets, FIFOs: not inputs */
        return 0;
    }
    size_t cap = (size_t)st.st_size, n = 0;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf)
        abort();
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n != cap) {
        fprintf(stderr, "%s: short read\n", path);
        free(buf);
        return -1;
    }
    printf("%s (%zu bytes)\n", path, n);
    fflush(stdout);
    /* An empty input as NULL: the least a target may be handed. */
    LLVMFuzzerTestOneInput(n ? buf : NULL, n);
    free(buf);
    (*count)++;
    return 0;
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int run_path(const char *path, size_t *count)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path, count);

    struct dirent **names;
    int n = scandir(path, &names, NULL, name_cmp);
    if (n < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    int ret = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && ret == 0) {
            char *sub = NULL;
            if (asprintf(&sub, "%s/%s", path, name) < 0)
                abort();
            ret = run_path(sub, count);
            free(sub);
        }
        free(names[i]);
    }
    free(names);
    return ret;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 1;
    }
    for (int i = 1; i < argc; i++)
        if (run_path(argv[i], &count) < 0)
            return 1;
    if (count == 0) {
        fprintf(stderr, "%s: no input found\n", argv[0]);
        return 1;
    }
    printf("%zu inputs replayed, no invariant violated\n", count);
    return 0;
}
