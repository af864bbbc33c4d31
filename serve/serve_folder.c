/* The ranks' temporary image folders; see serve_folder.h. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "serve/serve_folder.h"

#include "core/error.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int serve_folder_make(const world *w, char *folder, size_t size)
{
    char parent[4096] = "";
    if (w->rank == 0) {
        const char *tmp = getenv("TMPDIR");
        snprintf(parent, sizeof parent, "%s/moedit-serve-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(parent)) {
            error_set("cannot make a temporary folder %s for the images: %s", parent, strerror(errno));
            parent[0] = 0; /* the other ranks learn that rank 0 failed */
        }
    }
    if (w->size > 1 && world_broadcast_idle(w, parent, sizeof parent)) return -1;
    if (!parent[0]) return w->rank == 0 ? -1 : error_set("rank 0 could not make its temporary folder for the images");
    if (w->rank == 0) {
        snprintf(folder, size, "%s", parent);
        return 0;
    }
    if (!w->host_of || w->host_of[w->rank] == w->host_of[0]) { /* rank 0's host: inside its folder */
        snprintf(folder, size, "%s/rank-%d", parent, w->rank);
        if (mkdir(folder, 0700) == 0) return 0;
        return error_set("cannot make a temporary folder %s for the images: %s", folder, strerror(errno));
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(folder, size, "%s/moedit-serve-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(folder)) return 0;
    return error_set("cannot make a temporary folder %s for the images: %s", folder, strerror(errno));
}

static int remove_entry(const char *path, const struct stat *st, int kind, struct FTW *ftw)
{
    (void)st, (void)kind, (void)ftw;
    remove(path); /* a file, or a folder emptied first (FTW_DEPTH) */
    return 0;
}

void serve_folder_remove(const char *folder)
{
    if (folder[0]) nftw(folder, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}
