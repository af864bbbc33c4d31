/* libpng output into a temporary file with moedit's error path; see png_sink.h. */
#define _POSIX_C_SOURCE 200809L
#include "io/png_sink.h"

#include "core/error.h"

#include <string.h>

static void sink_write(png_structp png, png_bytep data, png_size_t n)
{
    png_sink *sink = png_get_io_ptr(png);
    if (temp_file_write(sink->file, data, n)) png_error(png, "write failed");
}

static void sink_flush(png_structp png) { (void)png; } /* temp_file_commit flushes */

static void sink_error(png_structp png, png_const_charp message)
{
    png_sink *sink = png_get_io_ptr(png);
    if (sink && sink->file->error) error_set("writing %s: %s", sink->file->target, strerror(sink->file->error));
    else error_set("writing %s: libpng: %s", sink ? sink->file->target : "a PNG", message);
    png_longjmp(png, 1);
}

static void sink_warning(png_structp png, png_const_charp message) { (void)png, (void)message; }

png_structp png_sink_create(png_sink *sink)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, sink_error, sink_warning);
    if (!png) {
        error_set("writing %s: out of memory in libpng", sink->file->target);
        return NULL;
    }
    png_set_write_fn(png, sink, sink_write, sink_flush);
    return png;
}
