/* Whole text files; see text_file.h. */
#define _POSIX_C_SOURCE 200809L /* fileno */
#include "core/text_file.h"

#include "core/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* fp's size into *n, or why it has none: a directory opens but does not read. */
static const char *file_size(FILE *fp, long *n)
{
    struct stat st;
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) return strerror(EISDIR);
    *n = fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
    if (*n < 0 || fseek(fp, 0, SEEK_SET) != 0) return "not a regular file (cannot find its size)";
    return NULL;
}

int text_file_read(const char *path, size_t max_bytes, const char *what, char **text)
{
    *text = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return error_set("%s: cannot open %s: %s", path, what, strerror(errno));
    long n = 0;
    const char *no_size = file_size(fp, &n);
    if (no_size || (size_t)n > max_bytes) {
        fclose(fp);
        if (no_size) return error_set("%s: cannot read %s: %s", path, what, no_size);
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
