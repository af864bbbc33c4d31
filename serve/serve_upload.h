/* The multipart/form-data body of POST /v1/images/edits, read by
 * libmicrohttpd's post processor (MHD_create_post_processor) as it arrives:
 * the text parts into a JSON object of strings (name -> value, the last of
 * a repeated name; another file part's value is {}), the file part named
 * "image" (or "image[]", as the openai clients name a list of one) into
 * memory. At most `limit` bytes of
 * body; more, a second image, or a body the post processor cannot parse are
 * remembered and answered as a 400 once the body has been read. */
#ifndef MOEDIT_SERVE_SERVE_UPLOAD_H
#define MOEDIT_SERVE_SERVE_UPLOAD_H

#include "serve/serve_request.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

/* Appends n bytes to a growing buffer data[used] of *capacity (doubling),
 * keeping a NUL after them; -1 when out of memory. Gathers the image here and
 * JSON bodies in serve_http.c. */
int serve_bytes_append(char **data, size_t *used, size_t *capacity, const char *more, size_t n);

typedef struct serve_upload {
    struct MHD_PostProcessor *processor; /* NULL: the body is not a form */
    cJSON *fields;
    char *image;
    size_t image_bytes, image_capacity;
    int images;                          /* image parts seen */
    size_t received, limit;
    int too_large, unreadable;
} serve_upload;

/* Starts reading the connection's body; -1 when out of memory. A body that
 * is not a form (another Content-Type) leaves processor NULL and is refused
 * by serve_upload_finish. */
int serve_upload_begin(serve_upload *u, struct MHD_Connection *connection, size_t limit);
/* Feeds n bytes of the body. */
void serve_upload_feed(serve_upload *u, const char *data, size_t n);
/* After the last bytes: 0, or -1 with a 400 in e. */
int serve_upload_finish(serve_upload *u, serve_error *e);
/* Hands the image over (the caller frees it). */
uint8_t *serve_upload_take_image(serve_upload *u, size_t *bytes);
void serve_upload_free(serve_upload *u);

#endif
