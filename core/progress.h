/* A one-line progress bar on stderr: "denoise [#####.....] 5/10 1.3 it/s ETA 4s".
 * Silent when stderr is not a terminal or when quiet is set, so logs and
 * pipes stay clean. */
#ifndef MOEDIT_CORE_PROGRESS_H
#define MOEDIT_CORE_PROGRESS_H

#include <stdint.h>

typedef struct progress {
    const char *label;
    int64_t total;
    int64_t done;
    double start;
    int enabled;
} progress;

void progress_begin(progress *p, const char *label, int64_t total, int quiet);
void progress_advance(progress *p, int64_t count);
/* Ends the line (prints the total time). */
void progress_end(progress *p);

#endif
