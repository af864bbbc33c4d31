/* Non-blocking opens of regular input files; see file_open.h. */
#define _POSIX_C_SOURCE 200809L
#include "core/file_open.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int file_open_read(const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    int flags = fcntl(fd, F_GETFL);
    if (fstat(fd, st) != 0 || (flags >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

const char *file_not_regular(const struct stat *st)
{
    if (S_ISREG(st->st_mode)) return NULL;
    if (S_ISDIR(st->st_mode)) return strerror(EISDIR);
    if (S_ISFIFO(st->st_mode)) return "not a regular file (a FIFO)";
    if (S_ISCHR(st->st_mode)) return "not a regular file (a character device)";
    if (S_ISBLK(st->st_mode)) return "not a regular file (a block device)";
    if (S_ISSOCK(st->st_mode)) return "not a regular file (a socket)";
    return "not a regular file";
}

const char *file_open_regular(const char *path, int *fd, struct stat *st)
{
    *fd = file_open_read(path, st);
    if (*fd < 0) return strerror(errno);
    const char *why = file_not_regular(st);
    if (why) {
        close(*fd);
        *fd = -1;
    }
    return why;
}
