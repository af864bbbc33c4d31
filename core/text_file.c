/* Whole text files; see text_file.h. */
#include "core/text_file.h"

#include "core/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int text_file_read(const char *path, size_t max_bytes, const char *what, char **text)
{
    *text = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return error_set("%s: cannot open %s: %s", path, what, strerror(errno));
    long n = fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
    char *buffer = NULL;
    int ok = n >= 0 && (size_t)n <= max_bytes && fseek(fp, 0, SEEK_SET) == 0 && (buffer = malloc((size_t)n + 1)) &&
             fread(buffer, 1, (size_t)n, fp) == (size_t)n;
    fclose(fp);
    if (!ok) {
        free(buffer);
        return error_set("%s: cannot read %s (unreadable, a directory, or over %zu MiB)", path, what, max_bytes >> 20);
    }
    buffer[n] = '\0';
    if (strlen(buffer) != (size_t)n) {
        free(buffer);
        return error_set("%s: %s contains a NUL byte; not a text file", path, what);
    }
    *text = buffer;
    return 0;
}
