/* A whole file (an image the run wrote) into memory: for the answer's
 * base64 (serve_answer.c) and for a replica's images sent to rank 0
 * (serve_replicas.c). */
#ifndef MOEDIT_SERVE_SERVE_FILE_H
#define MOEDIT_SERVE_SERVE_FILE_H

#include <stddef.h>
#include <stdint.h>

/* 0 with *bytes (malloc'd; the caller frees it) of *n bytes, or -1 (cannot
 * open or read it, out of memory) with nothing to free. */
int serve_file_read(const char *path, uint8_t **bytes, size_t *n);

#endif
