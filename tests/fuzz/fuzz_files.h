/* Scratch files for the fuzz targets: the loaders take paths, so each input
 * is written to a file of a private folder (mkdtemp under $TMPDIR, else
 * /dev/shm, else /tmp; made on first use, removed at exit) and the loader is
 * given its path. Files are rewritten in place and cut to size, never
 * truncated to zero first: ext4 flushes a file truncated to zero and
 * rewritten when it is closed, which made a disk-backed /tmp 10x slower.
 * Names are fixed per target (the loaders look at names: "x.safetensors",
 * "vocab.json"), so a run of millions of inputs rewrites the same few files. */
#ifndef MOEDIT_TESTS_FUZZ_FILES_H
#define MOEDIT_TESTS_FUZZ_FILES_H

#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_folder[4096];

static inline void fuzz_folder_remove(void)
{
    DIR *d = opendir(fuzz_folder);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(fuzz_folder);
}

/* The private folder; aborts (a harness failure, not a finding) if none can be made. */
static inline const char *fuzz_folder_path(void)
{
    if (fuzz_folder[0]) return fuzz_folder;
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_folder, sizeof fuzz_folder, "%s/moedit-fuzz-XXXXXX", tmp);
    if (!mkdtemp(fuzz_folder)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_folder_remove);
    return fuzz_folder;
}

/* Writes data[0 .. size) as NAME in the private folder; returns its path
 * (valid until the next call). */
static inline const char *fuzz_file_write(const char *name, const uint8_t *data, size_t size)
{
    static char path[4352];
    snprintf(path, sizeof path, "%s/%s", fuzz_folder_path(), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror("fuzz: open");
        abort();
    }
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            perror("fuzz: write");
            abort();
        }
        done += (size_t)n;
    }
    if (ftruncate(fd, (off_t)size)) {
        perror("fuzz: ftruncate");
        abort();
    }
    close(fd);
    return path;
}

/* Removes NAME from the private folder (a file an earlier input wrote). */
static inline void fuzz_file_remove(const char *name)
{
    char path[4352];
    snprintf(path, sizeof path, "%s/%s", fuzz_folder_path(), name);
    unlink(path);
}

/* Inputs of several files: the parts are separated by FUZZ_SEPARATOR lines.
 * fuzz_next_part cuts the next part off *data (all of it when no separator
 * is left) and returns its size; *part points at it. */
#define FUZZ_SEPARATOR "\n@@\n"

static inline size_t fuzz_next_part(const uint8_t **data, size_t *size, const uint8_t **part)
{
    size_t n = strlen(FUZZ_SEPARATOR);
    const uint8_t *at = *size >= n ? memmem(*data, *size, FUZZ_SEPARATOR, n) : NULL;
    size_t length = at ? (size_t)(at - *data) : *size;
    *part = *data;
    *data += at ? length + n : length;
    *size -= at ? length + n : length;
    return length;
}

#endif
