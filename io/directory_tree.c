/* Copying and removing directory trees; see directory_tree.h.
 *
 * Removal uses only async-signal-safe calls (open/openat, the getdents64
 * system call, unlinkat, rmdir, close; fixed buffers on the stack, no
 * malloc, no stdio), because io/temp_file.c's signal handler removes a
 * half-made output folder with it. */
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC, lstat, link, openat, unlinkat */
#define _DEFAULT_SOURCE         /* syscall */
#include "io/directory_tree.h"

#include "core/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PATH_BUFFER 4096
#define COPY_CHUNK ((size_t)1 << 20)
#define DIRECTORY_TREE_DEPTH 32 /* levels below the removed folder (a model folder has 2) */

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

/* One record of getdents64(2) (struct linux_dirent64). */
typedef struct directory_record {
    uint64_t inode;
    int64_t next_offset;
    unsigned short length;
    unsigned char type;
    char name[];
} directory_record;

/* Removes everything inside the directory open as fd, at most `depth`
 * levels down. Passes over the listing repeat until one removes nothing, so
 * entries removed while the listing is read cannot hide others. */
static void remove_contents(int fd, int depth)
{
    _Alignas(8) char listing[2048];
    for (int removed = 1; removed;) {
        removed = 0;
        if (lseek(fd, 0, SEEK_SET) != 0) return;
        for (long n; (n = syscall(SYS_getdents64, fd, listing, sizeof listing)) > 0;)
            for (long at = 0; at < n;) {
                const directory_record *r = (const directory_record *)(listing + at);
                at += r->length;
                if (!strcmp(r->name, ".") || !strcmp(r->name, "..")) continue;
                if (unlinkat(fd, r->name, 0) == 0) {
                    removed = 1;
                    continue;
                }
                if ((errno != EISDIR && errno != EPERM) || depth <= 0) continue; /* EPERM: POSIX's "a directory" */
                int child = openat(fd, r->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (child < 0) continue;
                remove_contents(child, depth - 1);
                close(child);
                removed |= unlinkat(fd, r->name, AT_REMOVEDIR) == 0;
            }
    }
}

void directory_tree_remove(const char *path)
{
    int saved = errno; /* a signal handler's caller keeps its errno */
    if (unlink(path) != 0) {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            remove_contents(fd, DIRECTORY_TREE_DEPTH);
            close(fd);
            rmdir(path);
        }
    }
    errno = saved;
}
