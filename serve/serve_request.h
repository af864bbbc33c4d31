/* One image request of `moedit serve`: the JSON body of POST
 * /v1/images/generations read into a struct, checked against the served
 * model's limits, and packed into bytes that rank 0 broadcasts to every rank
 * of the layout (serve_loop.c).
 *
 * Fields (OpenAI Images API, plus moedit's own):
 *   prompt (string, required), n (integer 1..max_images), size ("WxH" or
 *   "auto"), response_format ("b64_json" or "url": a data: URL),
 *   output_format ("png"), model (string, not checked), negative_prompt
 *   (string), seed (integer 0..2^53), num_inference_steps (integer),
 *   guidance_scale (number); OpenAI's quality, style, user, background,
 *   moderation, output_compression are accepted and ignored when of their
 *   type. Any other field is refused, as OpenAI refuses unknown parameters.
 *
 * POST /v1/images/edits sends the same fields as multipart/form-data text
 * parts (serve_upload.h gathers them), plus the image file part and the
 * edit's own: strength (number in (0, 1]) and edit_mode ("strength" or
 * "context"), as `moedit edit` --strength and --edit-mode. An edit's size
 * defaults to the input image's own (rounded to the grid), as moedit edit's. */
#ifndef MOEDIT_SERVE_SERVE_REQUEST_H
#define MOEDIT_SERVE_SERVE_REQUEST_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define SERVE_MAX_PROMPT_BYTES (64 * 1024)
#define SERVE_MAX_STEPS 1000

/* An HTTP error with the OpenAI error object {"error": {"message", "type",
 * "param", "code"}}. */
typedef struct serve_error {
    int status;          /* 400, 401, 404, 405, 429, 500, 503 */
    char message[600];
    const char *type;    /* "invalid_request_error", "server_error", ... */
    char param[64];      /* "" = null */
    const char *code;    /* NULL = null */
} serve_error;

/* Fills e and returns -1. */
int serve_error_set(serve_error *e, int status, const char *type, const char *param, const char *code,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* The error object as a JSON text (malloc'd; NULL when out of memory). */
char *serve_error_json(const serve_error *e);

typedef struct serve_request {
    uint64_t id;           /* numbered by rank 0 */
    char *prompt;          /* owned */
    char *negative_prompt; /* owned; NULL: the server's default */
    int64_t width, height, steps;
    double guidance;
    uint64_t seed;
    int n;
    int seed_given;        /* 0: rank 0 drew it */
    int data_url;          /* response_format "url" */
    /* POST /v1/images/edits: */
    int edit;
    int edit_mode;         /* MOEDIT_EDIT_STRENGTH or MOEDIT_EDIT_CONTEXT */
    double strength;       /* 0: the mode's default */
    uint8_t *image;        /* owned: the uploaded file's bytes (PNG or JPEG) */
    size_t image_bytes;
} serve_request;

/* What a request may ask of the served model, and its defaults. */
typedef struct serve_limits {
    int64_t size_multiple;   /* VAE factor x patch size */
    int64_t max_side, max_pixels;
    int64_t nonsquare_max_pixels; /* the transformer's max_resolution (generate_nonsquare_max_pixels) */
    int max_images;          /* n at most */
    int64_t default_width, default_height, default_steps;
    double default_guidance;
    int needs_guidance;      /* CFG-parallel layout: guidance_scale must be > 1 */
} serve_limits;

/* Parses and checks a body; 0, or -1 with a 400 in e. Sets every field of r
 * but id (seed: drawn by the caller when !seed_given). */
int serve_request_parse(serve_request *r, const char *body, size_t length, const serve_limits *limits, serve_error *e);

/* The same for an edit: fields is a JSON object of the form's text parts
 * (every value a string; numbers are read from their text), image the file
 * part (taken by r on success, freed on failure). The image itself is
 * checked by serve_request_check_image. */
int serve_request_parse_edit(serve_request *r, const cJSON *fields, uint8_t *image, size_t image_bytes,
                             const serve_limits *limits, serve_error *e);

/* An edit's image: writes it to path, reads and sizes it as moedit edit will
 * (a bad, truncated or oversized image: 400 naming the reason) and sets r's
 * width and height to the size the edit runs at. The file stays for the run. */
int serve_request_check_image(serve_request *r, const char *path, const serve_limits *limits, serve_error *e);

/* folder/input-ID: where request ID's image waits for its run on a rank. */
void serve_request_image_path(const char *folder, uint64_t id, char *path, size_t size);

/* Writes the request's image bytes to path. */
int serve_request_write_image(const serve_request *r, const char *path);

void serve_request_free(serve_request *r);

/* The request as bytes (malloc'd) and back; the same binary reads what it packed. */
int serve_request_pack(const serve_request *r, uint8_t **bytes, size_t *length);
int serve_request_unpack(serve_request *r, const uint8_t *bytes, size_t length);

/* Several requests (a batch) as one message: [count] then, per request,
 * [length] and its packed bytes. Unpacking fills at most max requests; -1
 * when the bytes are damaged (nothing left to free then). */
int serve_request_pack_list(const serve_request *const *requests, int count, uint8_t **bytes, size_t *length);
int serve_request_unpack_list(serve_request *requests, int max, int *count, const uint8_t *bytes, size_t length);

#endif
