/* Fuzz target: input images (io/image_read.c: PNG through libpng, JPEG
 * through stb_image), as --image and edit inputs are read.
 *
 * image_read tells the format by its first bytes, not by the name. Each
 * input is read under limits of side 2048 and 4 Mpixels (the CLI's are
 * larger; a fuzzer that decodes 64 Mpixel garbage runs slowly, not deeper)
 * and under small ones (side 64, 4096 pixels), so that the size refusal
 * before any pixel allocation is fuzzed as well. No input may crash,
 * read out of bounds or leak; a read that succeeds gives W x H >= 1 pixels. */
#include "tests/fuzz/fuzz_files.h"

#include "core/error.h"
#include "io/image_io.h"

static void read_image(const char *path, int64_t max_side, int64_t max_pixels)
{
    uint8_t *rgb = NULL;
    int64_t width = 0, height = 0;
    if (image_read(path, max_side, max_pixels, &rgb, &width, &height) == 0) {
        if (width < 1 || height < 1 || width > max_side || height > max_side || width * height > max_pixels) abort();
        /* Touch the last pixel: the buffer must hold W x H x 3 bytes. */
        volatile uint8_t last = rgb[width * height * 3 - 1];
        (void)last;
        free(rgb);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file_write("input.png", data, size);
    read_image(path, 2048, (int64_t)1 << 22);
    read_image(path, 64, 4096);
    error_clear();
    return 0;
}
