/* A PNG that moedit wrote, read back with libpng itself rather than moedit's
 * io/image_io.h, so that a writer and reader wrong in the same way (rows,
 * channel order) cannot hide each other in the tests that compare its
 * pixels with a reference. */
#ifndef MOEDIT_TESTS_TEST_PNG_H
#define MOEDIT_TESTS_TEST_PNG_H

#include <png.h>
#include <stdio.h>
#include <string.h>

/* The 8-bit RGB pixels of path into rgb [height * width * 3] and, when prompt
 * is not NULL, its "prompt" text chunk into prompt[prompt_size] (left as it
 * is without one). 0, or -1 when the file is missing or not width x height. */
static inline int test_png_read(const char *path, int width, int height, unsigned char *rgb, char *prompt,
                                size_t prompt_size)
{
    FILE *file = fopen(path, "rb");
    if (!file) return -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, file);
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    int ok = (int)png_get_image_width(png, info) == width && (int)png_get_image_height(png, info) == height;
    png_bytepp rows = png_get_rows(png, info);
    for (int y = 0; ok && y < height; y++) memcpy(rgb + (size_t)y * width * 3, rows[y], (size_t)width * 3);
    png_textp text;
    int count = prompt ? png_get_text(png, info, &text, NULL) : 0;
    for (int i = 0; i < count; i++)
        if (!strcmp(text[i].key, "prompt")) snprintf(prompt, prompt_size, "%s", text[i].text);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(file);
    return ok ? 0 : -1;
}

#endif
