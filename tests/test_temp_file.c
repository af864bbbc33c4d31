/* Proves that output files are written whole or not at all (io/temp_file.h):
 * a legal 251-byte name gets its file (the temporary fits where the name
 * does); a write past the file-size limit fails with errno's reason ("File
 * too large") and leaves nothing; SIGINT or SIGTERM while a PNG is being
 * written removes the temporary and ends the process with that signal; and a
 * folder being made (temp_file_folder_create), with files, a folder inside
 * it, more entries than one directory listing read holds, and a temporary
 * file being written inside it, is removed whole by the signal, and kept
 * once released. */
#define _GNU_SOURCE
#include "core/error.h"
#include "io/image_io.h"
#include "io/temp_file.h"
#include "test_scratch_dir.h"
#include "test_util.h"

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Entries of scratch_dir other than "." and ".."; *temporaries counts hidden ones and NAME.tmp.PID. */
static int dir_entries(int *temporaries)
{
    DIR *d = opendir(scratch_dir);
    int n = 0;
    *temporaries = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        n++;
        if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp.")) ++*temporaries;
    }
    if (d) closedir(d);
    return n;
}

static void test_long_name(void)
{
    char name[256];
    memset(name, 'a', 247);
    memcpy(name + 247, ".png", 5); /* 251 bytes, legal (NAME_MAX 255) */
    uint8_t rgb[4 * 4 * 3] = {0};
    int rc = image_write(scratch_path(name), rgb, 4, 4, NULL);
    CHECK_MSG(rc == 0, "251-byte name: %s", error_message());
    struct stat st;
    CHECK(stat(scratch_path(name), &st) == 0 && st.st_size > 0);
    int temporaries;
    CHECK(dir_entries(&temporaries) == 1 && temporaries == 0);
    scratch_empty();
}

/* In a child: a file-size limit of 1 KiB (SIGXFSZ ignored, as moedit does). */
static void test_file_too_large(const char *name)
{
    pid_t pid = fork();
    if (pid == 0) {
        temp_file_handle_signals();
        struct rlimit limit = {1024, 1024};
        setrlimit(RLIMIT_FSIZE, &limit);
        static uint8_t rgb[64 * 64 * 3];
        uint32_t x = 12345;
        for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)((x = x * 1664525u + 1013904223u) >> 24); /* noise */
        int rc = image_write(scratch_path(name), rgb, 64, 64, NULL);
        printf("  %-10s -> %s\n", name, error_message());
        fflush(stdout);
        _exit(rc == -1 && strstr(error_message(), "File too large") && strstr(error_message(), name) ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s over the file-size limit: status %d", name, status);
    int temporaries;
    CHECK_MSG(dir_entries(&temporaries) == 0, "%s: something was left behind", name);
    scratch_empty();
}

/* A child writes a large noisy PNG; the parent signals it once the
 * temporary exists: the child dies of the signal and leaves nothing. */
static void test_signal_while_writing(int signo)
{
    pid_t pid = fork();
    if (pid == 0) {
        temp_file_handle_signals();
        int64_t side = 4096;
        uint8_t *rgb = malloc((size_t)(side * side * 3));
        uint32_t x = 12345;
        for (int64_t i = 0; rgb && i < side * side * 3; i++) rgb[i] = (uint8_t)((x = x * 1664525u + 1013904223u) >> 24);
        image_write(scratch_path("big.png"), rgb, side, side, NULL);
        _exit(3); /* the write finished before the signal: the test could not tell */
    }
    int temporaries = 0;
    for (int i = 0; i < 20000 && !temporaries; i++) { /* up to 20 s */
        dir_entries(&temporaries);
        if (!temporaries) usleep(1000);
    }
    CHECK_MSG(temporaries == 1, "no temporary appeared while writing");
    kill(pid, signo);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == signo, "signal %d: child status %d", signo, status);
    CHECK_MSG(dir_entries(&temporaries) == 0, "signal %d: %d file(s) left behind", signo, dir_entries(&temporaries));
    scratch_empty();
}

/* In the child: the folder "DIR/.made-XXXXXX" with sub/ (two levels of files
 * and folders, 300 names longer than a listing buffer holds) and an open
 * temporary inside; writes its name to `ready` (a pipe) and waits for the signal. */
static void make_folder_and_wait(int ready)
{
    temp_file_handle_signals();
    char folder[512], path[700];
    snprintf(folder, sizeof folder, "%s/.made-XXXXXX", scratch_dir);
    int slot;
    if (temp_file_folder_create(folder, &slot) || slot < 0) _exit(3);
    snprintf(path, sizeof path, "%s/sub", folder);
    mkdir(path, 0755);
    for (int i = 0; i < 300; i++) {
        snprintf(path, sizeof path, "%s/%s/file-%03d-with-a-name-long-enough-to-fill-listings", folder,
                 i % 2 ? "sub" : ".", i);
        FILE *f = fopen(path, "w");
        if (f) fclose(f);
    }
    snprintf(path, sizeof path, "%s/sub/deeper", folder);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/sub/deeper/weights.safetensors", folder);
    temp_file t;
    if (temp_file_open(&t, path) || temp_file_write(&t, "x", 1)) _exit(4);
    fflush(t.f);
    if (write(ready, folder, strlen(folder) + 1) < 0) _exit(5);
    for (;;) pause();
}

static void test_signal_while_making_folder(int signo)
{
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t pid = fork();
    if (pid == 0) make_folder_and_wait(ready[1]);
    close(ready[1]);
    char folder[512] = "";
    CHECK_MSG(read(ready[0], folder, sizeof folder) > 0, "the child made no folder");
    close(ready[0]);
    struct stat st;
    CHECK_MSG(folder[0] && stat(folder, &st) == 0 && S_ISDIR(st.st_mode), "no folder %s", folder);
    int temporaries;
    CHECK(dir_entries(&temporaries) == 1 && temporaries == 1);
    kill(pid, signo);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == signo, "signal %d: child status %d", signo, status);
    CHECK_MSG(dir_entries(&temporaries) == 0, "signal %d: the folder being made was left behind", signo);
}

/* Released (renamed into place), the folder stays; a failed mkdtemp is -1. */
static void test_folder_released(void)
{
    char folder[512], kept[512];
    snprintf(folder, sizeof folder, "%s/.made-XXXXXX", scratch_dir);
    int slot = -1;
    CHECK(temp_file_folder_create(folder, &slot) == 0 && slot >= 0);
    snprintf(kept, sizeof kept, "%s/kept", scratch_dir);
    CHECK(rename(folder, kept) == 0);
    temp_file_folder_release(slot);
    temp_file_remove_all();
    struct stat st;
    CHECK_MSG(stat(kept, &st) == 0, "a released folder was removed");
    rmdir(kept);
    char bad[64] = "/nonexistent-dir/.made-XXXXXX";
    CHECK(temp_file_folder_create(bad, &slot) == -1 && slot == -1);
}

int main(void)
{
    if (scratch_make("/tmp/moedit_temp_file_XXXXXX")) return 1;
    test_long_name();
    test_file_too_large("full.png");
    test_file_too_large("full.jpg");
    test_signal_while_writing(SIGINT);
    test_signal_while_writing(SIGTERM);
    test_signal_while_making_folder(SIGINT);
    test_signal_while_making_folder(SIGTERM);
    test_folder_released();
    scratch_remove();
    return test_finish("test_temp_file");
}
