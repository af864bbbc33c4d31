/* A whole file into memory; see serve_file.h. */
#include "serve/serve_file.h"

#include <stdio.h>
#include <stdlib.h>

int serve_file_read(const char *path, uint8_t **bytes, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t capacity = 1 << 16, used = 0;
    uint8_t *data = malloc(capacity);
    while (data) {
        used += fread(data + used, 1, capacity - used, f);
        if (used < capacity) break;
        uint8_t *grown = realloc(data, capacity *= 2);
        if (!grown) free(data);
        data = grown;
    }
    int failed = !data || ferror(f);
    fclose(f);
    if (failed) {
        free(data);
        return -1;
    }
    *bytes = data;
    *n = used;
    return 0;
}
