/* libpng writing into a temp_file (io/temp_file.h). libpng's own error and
 * warning paths would print "libpng error: ..." on stderr beside moedit's
 * line; here an error becomes the run's one message, "writing PATH: REASON"
 * (errno's reason when a write failed, e.g. "No space left on device"; else
 * "libpng: MESSAGE"), and warnings are dropped. */
#ifndef MOEDIT_IO_PNG_SINK_H
#define MOEDIT_IO_PNG_SINK_H

#include "io/temp_file.h"

#include <png.h>

typedef struct png_sink {
    temp_file *file;
} png_sink;

/* A write struct whose output is sink->file; NULL (error set) when out of
 * memory. After setjmp(png_jmpbuf(png)) returns nonzero the error is set. */
png_structp png_sink_create(png_sink *sink);

#endif
