/* The page at GET / of `moedit serve`: serve/page.html, carried in the
 * binary as bytes (cmake/embed_file.cmake writes them into a generated C
 * file at build time). One static file: prompt, size, steps, seed, a
 * generate button and a gallery of results with their settings, through
 * POST /v1/images/generations. */
#ifndef MOEDIT_SERVE_SERVE_PAGE_H
#define MOEDIT_SERVE_SERVE_PAGE_H

#include <stddef.h>

extern const unsigned char serve_page_html[];
extern const size_t serve_page_html_size;

#endif
