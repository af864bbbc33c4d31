/* A digest of a model folder's files; see model_digest.h. */
#include "pipelines/model_digest.h"

#include "parallel/world_request.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JSON_MAX_BYTES ((off_t)64 << 20)

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int ends_with(const char *name, const char *tail)
{
    size_t n = strlen(name), t = strlen(tail);
    return n >= t && !strcmp(name + n - t, tail);
}

/* A JSON file's bytes into the hash (O_NONBLOCK: a FIFO must not block; it is skipped as not regular). */
static uint64_t hash_json(uint64_t hash, const char *path, off_t size)
{
    if (size > JSON_MAX_BYTES) return hash;
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return hash;
    char buffer[65536];
    ssize_t got;
    while ((got = read(fd, buffer, sizeof buffer)) > 0) hash = world_request_hash(hash, buffer, (size_t)got);
    close(fd);
    return hash;
}

/* The folder's files (and, at depth 0, its subfolders' files) into the hash. */
static uint64_t hash_folder(uint64_t hash, const char *dir, const char *prefix, int depth, int *files)
{
    DIR *d = opendir(dir);
    if (!d) return world_request_hash(hash, "(no folder)", 11);
    char **names = NULL;
    size_t count = 0, capacity = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (count == capacity) {
            capacity = capacity ? 2 * capacity : 64;
            char **grown = realloc(names, capacity * sizeof *names);
            if (!grown) break;
            names = grown;
        }
        if (!(names[count] = strdup(e->d_name))) break;
        count++;
    }
    closedir(d);
    if (names) qsort(names, count, sizeof *names, compare_names);
    for (size_t i = 0; i < count; i++) {
        char path[4400], shown[600];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(shown, sizeof shown, "%s%s", prefix, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && depth == 0) {
            char sub[600];
            snprintf(sub, sizeof sub, "%s/", names[i]);
            hash = hash_folder(hash, path, sub, 1, files);
        } else if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            hash = world_request_hash(hash, shown, strlen(shown) + 1);
            int64_t size = (int64_t)st.st_size;
            hash = world_request_hash(hash, &size, sizeof size);
            if (ends_with(names[i], ".json")) hash = hash_json(hash, path, st.st_size);
            (*files)++;
        }
        free(names[i]);
    }
    free(names);
    return hash;
}

void model_digest(const char *dir, uint64_t *digest, int *files)
{
    *files = 0;
    *digest = hash_folder(WORLD_REQUEST_HASH_START, dir, "", 0, files);
}
