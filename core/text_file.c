/* Whole text files; see text_file.h. */
#define _POSIX_C_SOURCE 200809L /* fdopen */
#include "core/text_file.h"

#include "core/error.h"
#include "core/file_open.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int text_file_read(const char *path, size_t max_bytes, const char *what, char **text)
{
    *text = NULL;
    struct stat st;
    int fd = file_open_read(path, &st); /* a FIFO would block a plain open forever */
    if (fd < 0) return error_set("%s: cannot open %s: %s", path, what, strerror(errno));
    const char *why = file_not_regular(&st);
    FILE *fp = why ? NULL : fdopen(fd, "rb");
    if (!fp) {
        int saved = errno;
        close(fd);
        return error_set("%s: cannot read %s: %s", path, what, why ? why : strerror(saved));
    }
    long n = (long)st.st_size;
    if ((size_t)n > max_bytes) {
        fclose(fp);
        return error_set("%s: cannot read %s: %ld bytes, over the %zu MiB limit", path, what, n, max_bytes >> 20);
    }
    char *buffer = malloc((size_t)n + 1);
    errno = 0;
    int ok = buffer && fread(buffer, 1, (size_t)n, fp) == (size_t)n;
    int read_errno = errno;
    fclose(fp);
    if (!ok) {
        free(buffer);
        return error_set("%s: cannot read %s: %s", path, what,
                         !buffer ? "out of memory" : read_errno ? strerror(read_errno) : "it ended early");
    }
    buffer[n] = '\0';
    if (strlen(buffer) != (size_t)n) {
        free(buffer);
        return error_set("%s: %s contains a NUL byte; not a text file", path, what);
    }
    *text = buffer;
    return 0;
}
