/* The body of an answered image request, OpenAI's ImagesResponse:
 *   {"created": UNIX_SECONDS, "data": [{"b64_json": BASE64_PNG, "seed": S,
 *    "revised_prompt": PROMPT}, ...]}
 * with "url": "data:image/png;base64,..." instead of b64_json when the request
 * asked for response_format "url" (moedit keeps no files to link to). Each
 * PNG is the file moedit_generate wrote, metadata and all (base64, RFC 4648
 * with padding). */
#ifndef MOEDIT_SERVE_SERVE_ANSWER_H
#define MOEDIT_SERVE_SERVE_ANSWER_H

#include "serve/serve_request.h"

#include <stddef.h>
#include <stdint.h>

/* Base64 of n bytes (malloc'd, NUL-terminated), after `prefix`; NULL when out of memory. */
char *serve_base64(const uint8_t *bytes, size_t n, const char *prefix);

/* The JSON (malloc'd) for files[count] with their seeds; NULL with a 500 in e
 * when a file cannot be read. */
char *serve_answer_images(const serve_request *request, char *const *files, const unsigned long long *seeds, int count,
                          serve_error *e);

#endif
