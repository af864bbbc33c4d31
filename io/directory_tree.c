/* Copying and removing directory trees; see directory_tree.h. */
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC, lstat, link */
#include "io/directory_tree.h"

#include "core/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_BUFFER 4096
#define COPY_CHUNK ((size_t)1 << 20)

static int join(char *buf, const char *dir, const char *name)
{
    int n = snprintf(buf, PATH_BUFFER, "%s/%s", dir, name);
    return n > 0 && n < PATH_BUFFER ? 0 : error_set("%s/%s: path too long", dir, name);
}

static int copy_bytes(const char *src, const char *dst)
{
    static char buffer[COPY_CHUNK];
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return error_set("cannot read %s: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return error_set("cannot create %s: %s", dst, strerror(errno));
    }
    int status = 0;
    for (ssize_t n; status == 0 && (n = read(in, buffer, sizeof buffer)) != 0;) {
        if (n < 0) status = error_set("cannot read %s: %s", src, strerror(errno));
        for (ssize_t done = 0; status == 0 && done < n;) {
            ssize_t w = write(out, buffer + done, (size_t)(n - done));
            if (w < 0) status = error_set("cannot write %s: %s", dst, strerror(errno));
            else done += w;
        }
    }
    close(in);
    if (close(out) != 0 && status == 0) status = error_set("cannot write %s: %s", dst, strerror(errno));
    return status;
}

static int copy_file(const char *src, const char *dst)
{
    if (link(src, dst) == 0) return 0;
    return copy_bytes(src, dst);
}

int directory_tree_copy(const char *src, const char *dst)
{
    struct stat info;
    if (stat(src, &info) != 0) return error_set("cannot read %s: %s", src, strerror(errno));
    if (!S_ISDIR(info.st_mode)) return S_ISREG(info.st_mode) ? copy_file(src, dst) : error_set("%s: not a file or directory", src);
    if (mkdir(dst, 0755) != 0) return error_set("cannot create %s: %s", dst, strerror(errno));
    DIR *d = opendir(src);
    if (!d) return error_set("cannot open directory %s: %s", src, strerror(errno));
    int status = 0;
    char from[PATH_BUFFER], to[PATH_BUFFER];
    for (struct dirent *e; status == 0 && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        status = join(from, src, e->d_name) || join(to, dst, e->d_name) || directory_tree_copy(from, to) ? -1 : 0;
    }
    closedir(d);
    return status;
}

void directory_tree_remove(const char *path)
{
    struct stat info;
    if (lstat(path, &info) != 0) return;
    if (!S_ISDIR(info.st_mode)) {
        unlink(path);
        return;
    }
    DIR *d = opendir(path);
    char child[PATH_BUFFER];
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && join(child, path, e->d_name) == 0)
            directory_tree_remove(child);
    if (d) closedir(d);
    rmdir(path);
}
