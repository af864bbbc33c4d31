/* See output_check.h. */
#include "io/output_check.h"

#include "core/error.h"
#include "core/file_open.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int output_check_writable(const char *path, const char *what)
{
    const char *name = what ? what : "output";
    if (!*path) return error_set("%s: the file name is empty", name);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return error_set("%s %s is a directory, not a file", name, path);
    /* A device, FIFO or socket would be replaced by the file renamed over it (io/temp_file.c refuses it too). */
    const char *kind = stat(path, &st) == 0 ? file_not_regular(&st) : NULL;
    if (kind) return error_set("%s %s is %s; moedit writes its outputs as new files", name, path, kind);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
    else snprintf(dir, sizeof dir, ".");
    if (access(dir, W_OK) != 0)
        return error_set("%s %s: directory %s is not writable: %s", name, path, dir, strerror(errno));
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    long name_max = pathconf(dir, _PC_NAME_MAX);
    if (name_max > 0 && strlen(base) > (size_t)name_max)
        return error_set("%s %s: the file name is %zu bytes, over the %ld its file system allows", name, path,
                         strlen(base), name_max);
    return 0;
}
