/* Proves that output files are written whole or not at all (io/temp_file.h):
 * a legal 251-byte name gets its file (the temporary fits where the name
 * does); a write past the file-size limit fails with errno's reason ("File
 * too large") and leaves nothing; SIGINT or SIGTERM while a PNG is being
 * written removes the temporary and ends the process with that signal. */
#define _GNU_SOURCE
#include "core/error.h"
#include "io/image_io.h"
#include "io/temp_file.h"
#include "test_util.h"

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];

static const char *in_dir(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

/* Entries of dir other than "." and ".."; *temporaries counts hidden ones and NAME.tmp.PID. */
static int dir_entries(int *temporaries)
{
    DIR *d = opendir(dir);
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

static void empty_dir(void)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(in_dir(e->d_name));
    if (d) closedir(d);
}

static void test_long_name(void)
{
    char name[256];
    memset(name, 'a', 247);
    memcpy(name + 247, ".png", 5); /* 251 bytes, legal (NAME_MAX 255) */
    uint8_t rgb[4 * 4 * 3] = {0};
    int rc = image_write(in_dir(name), rgb, 4, 4, NULL);
    CHECK_MSG(rc == 0, "251-byte name: %s", error_message());
    struct stat st;
    CHECK(stat(in_dir(name), &st) == 0 && st.st_size > 0);
    int temporaries;
    CHECK(dir_entries(&temporaries) == 1 && temporaries == 0);
    empty_dir();
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
        int rc = image_write(in_dir(name), rgb, 64, 64, NULL);
        printf("  %-10s -> %s\n", name, error_message());
        fflush(stdout);
        _exit(rc == -1 && strstr(error_message(), "File too large") && strstr(error_message(), name) ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s over the file-size limit: status %d", name, status);
    int temporaries;
    CHECK_MSG(dir_entries(&temporaries) == 0, "%s: something was left behind", name);
    empty_dir();
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
        image_write(in_dir("big.png"), rgb, side, side, NULL);
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
    empty_dir();
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/moedit_temp_file_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_long_name();
    test_file_too_large("full.png");
    test_file_too_large("full.jpg");
    test_signal_while_writing(SIGINT);
    test_signal_while_writing(SIGTERM);
    rmdir(dir);
    return test_finish("test_temp_file");
}
