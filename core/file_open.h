/* Opening input files without hanging: open(2) of a FIFO with no writer
 * blocks forever, so inputs are opened with O_NONBLOCK (which returns at
 * once for a FIFO), checked to be regular files with fstat, and only then
 * read (O_NONBLOCK cleared). */
#ifndef MOEDIT_CORE_FILE_OPEN_H
#define MOEDIT_CORE_FILE_OPEN_H

#include <sys/stat.h>

/* A read-only descriptor of path (close-on-exec) with *st filled, or -1 with
 * errno set by open(2) or fstat(2). Never blocks on a FIFO or a device. */
int file_open_read(const char *path, struct stat *st);

/* NULL for a regular file; else why it is not one: "Is a directory", "not a
 * regular file (a FIFO)", "... (a character device)", ... */
const char *file_not_regular(const struct stat *st);

/* Both: NULL with *fd open on a regular file, or the reason (errno's text,
 * or file_not_regular's) with nothing left open. */
const char *file_open_regular(const char *path, int *fd, struct stat *st);

#endif
