/* Temporary files renamed into place, removed on a signal; see temp_file.h.
 *
 * The registry is a fixed array of slots, each a state and a path. A slot is
 * claimed with a compare-and-swap (free -> busy), its path written, and only
 * then marked live (release store); the handler reads the state (acquire)
 * and unlinks live paths only, so it never sees half a name. The path is
 * registered before the file is created: a signal in between unlinks a name
 * that does not exist yet, which is harmless, and the name holds our pid, so
 * it is nobody else's file. */
#define _POSIX_C_SOURCE 200809L
#include "io/temp_file.h"

#include "core/error.h"
#include "core/file_open.h"
#include "io/directory_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#define TEMP_FILE_SLOTS 64

enum { SLOT_FREE = 0, SLOT_BUSY, SLOT_LIVE };

static struct {
    int state;
    int folder; /* a folder being made: removed with everything below it */
    char path[TEMP_FILE_PATH];
} registry[TEMP_FILE_SLOTS];

static unsigned temp_counter;

static int slot_claim(void)
{
    for (int i = 0; i < TEMP_FILE_SLOTS; i++) {
        int expected = SLOT_FREE;
        if (__atomic_compare_exchange_n(&registry[i].state, &expected, SLOT_BUSY, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            return i;
    }
    return -1; /* full: the file is still written, just not removed on a signal */
}

static void slot_publish(int slot, const char *path, int folder)
{
    if (slot < 0) return;
    __atomic_store_n(&registry[slot].state, SLOT_BUSY, __ATOMIC_RELEASE);
    registry[slot].folder = folder;
    snprintf(registry[slot].path, sizeof registry[slot].path, "%s", path);
    __atomic_store_n(&registry[slot].state, SLOT_LIVE, __ATOMIC_RELEASE);
}

static void slot_release(int slot)
{
    if (slot >= 0) __atomic_store_n(&registry[slot].state, SLOT_FREE, __ATOMIC_RELEASE);
}

void temp_file_remove_all(void)
{
    for (int i = 0; i < TEMP_FILE_SLOTS; i++)
        if (__atomic_load_n(&registry[i].state, __ATOMIC_ACQUIRE) == SLOT_LIVE) {
            if (registry[i].folder) directory_tree_remove(registry[i].path);
            else unlink(registry[i].path);
        }
}

static void on_signal(int signo)
{
    temp_file_remove_all();
    signal(signo, SIG_DFL);
    raise(signo); /* pending until this handler returns, then the default action ends the process */
}

void temp_file_handle_signals(void)
{
    const int signals[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        struct sigaction old, action;
        if (sigaction(signals[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL) continue; /* ignored or taken */
        memset(&action, 0, sizeof action);
        action.sa_handler = on_signal;
        sigemptyset(&action.sa_mask);
        sigaction(signals[i], &action, NULL);
    }
    signal(SIGXFSZ, SIG_IGN);
}

/* "DIR/.moedit-PID-N" for target "DIR/NAME" (".moedit-PID-N" for "NAME"). */
static int temporary_name(char *buf, const char *target)
{
    const char *slash = strrchr(target, '/');
    int dir_len = slash ? (int)(slash - target) + 1 : 0;
    unsigned n = __atomic_fetch_add(&temp_counter, 1, __ATOMIC_RELAXED);
    int len = snprintf(buf, TEMP_FILE_PATH, "%.*s.moedit-%ld-%u", dir_len, target, (long)getpid(), n);
    return len > 0 && len < TEMP_FILE_PATH ? 0 : -1;
}

int temp_file_open(temp_file *t, const char *target)
{
    memset(t, 0, sizeof *t);
    t->slot = -1;
    if (snprintf(t->target, sizeof t->target, "%s", target) >= (int)sizeof t->target)
        return error_set("cannot write %.200s...: the path is too long", target);
    /* The rename would replace a device, FIFO or socket by a file: as root, --cache-schedule-capture
     * /dev/full made /dev/full a regular file. Only files (and symlinks to them) are replaced. */
    struct stat st;
    const char *kind = stat(target, &st) == 0 && !S_ISDIR(st.st_mode) ? file_not_regular(&st) : NULL;
    if (kind) return error_set("cannot write %s: %s; moedit writes its outputs as new files", target, kind);
    t->slot = slot_claim();
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
        if (temporary_name(t->path, target)) {
            errno = ENAMETOOLONG;
            break;
        }
        slot_publish(t->slot, t->path, 0);
        fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break; /* EEXIST: a leftover of a killed run with our pid; next name */
    }
    if (fd < 0 || !(t->f = fdopen(fd, "wb"))) {
        int saved = errno;
        if (fd >= 0) close(fd), unlink(t->path);
        slot_release(t->slot);
        t->slot = -1;
        return error_set("cannot write %s: %s", target, strerror(saved));
    }
    return 0;
}

int temp_file_write(temp_file *t, const void *data, size_t n)
{
    if (n == 0 || fwrite(data, 1, n, t->f) == n) return 0;
    if (!t->error) t->error = errno ? errno : EIO;
    return -1;
}

void temp_file_discard(temp_file *t)
{
    if (t->f) fclose(t->f);
    t->f = NULL;
    if (t->path[0]) unlink(t->path);
    slot_release(t->slot);
    t->slot = -1;
    t->path[0] = '\0';
}

int temp_file_commit(temp_file *t, int sync)
{
    errno = 0;
    int err = t->error;
    if (!err && (fflush(t->f) != 0 || ferror(t->f))) err = errno ? errno : EIO;
    if (!err && sync && fsync(fileno(t->f)) != 0) err = errno;
    int closed = fclose(t->f);
    t->f = NULL;
    if (!err && closed != 0) err = errno;
    if (!err && rename(t->path, t->target) != 0) {
        int saved = errno;
        temp_file_discard(t);
        return error_set("cannot rename into %s: %s", t->target, strerror(saved));
    }
    if (err) {
        temp_file_discard(t);
        return error_set("writing %s: %s", t->target, strerror(err));
    }
    slot_release(t->slot);
    t->slot = -1;
    t->path[0] = '\0';
    return 0;
}

/* The signals the handler takes, held back while a folder is made and listed. */
static void hold_signals(int how, sigset_t *old)
{
    sigset_t held;
    sigemptyset(&held);
    sigaddset(&held, SIGINT);
    sigaddset(&held, SIGTERM);
    sigaddset(&held, SIGHUP);
    pthread_sigmask(how, how == SIG_BLOCK ? &held : old, how == SIG_BLOCK ? old : NULL);
}

int temp_file_folder_create(char *template, int *slot)
{
    sigset_t old;
    hold_signals(SIG_BLOCK, &old);
    *slot = -1;
    char *made = mkdtemp(template);
    int saved = errno;
    if (made) {
        *slot = slot_claim();
        slot_publish(*slot, template, 1);
    }
    hold_signals(SIG_SETMASK, &old); /* a signal that came meanwhile is handled now, and removes the folder */
    errno = saved;
    return made ? 0 : -1;
}

void temp_file_folder_release(int slot)
{
    slot_release(slot);
}
