/* A scratch directory for the tests that write files and look at what is
 * left: made once per test, paths in it, emptied between cases, removed at
 * the end. Uses test_util.h's CHECK. */
#ifndef MOEDIT_TESTS_TEST_SCRATCH_DIR_H
#define MOEDIT_TESTS_TEST_SCRATCH_DIR_H

#include "test_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char scratch_dir[256];

/* scratch_dir from mkdtemp's `template` ("/tmp/moedit_..._XXXXXX"); 0 or -1. */
static inline int scratch_make(const char *template)
{
    snprintf(scratch_dir, sizeof scratch_dir, "%s", template);
    return mkdtemp(scratch_dir) ? 0 : -1;
}

/* scratch_dir/name (a static buffer: the next call overwrites it). */
static inline const char *scratch_path(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", scratch_dir, name);
    return path;
}

/* Removes every file in scratch_dir (it holds no directories). */
static inline void scratch_empty(void)
{
    DIR *d = opendir(scratch_dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(scratch_path(e->d_name));
    if (d) closedir(d);
}

static inline void scratch_remove(void)
{
    scratch_empty();
    CHECK(rmdir(scratch_dir) == 0);
}

#endif
