/* Fuzz target: what `moedit serve` reads off the network (serve/serve_request.h).
 *
 * The input's first byte picks what the rest is (byte % 3) and whether the
 * server's layout is CFG-parallel (needs_guidance: byte / 3 odd):
 *   0  a JSON body of POST /v1/images/generations into serve_request_parse;
 *   1  the bytes a rank receives from rank 0 into serve_request_unpack and
 *      serve_request_unpack_list (damaged or hostile: refused, never read
 *      out of bounds);
 *   2  an edit's form fields (a JSON object) into serve_request_parse_edit;
 *      bytes after a NUL are the image file part, else a fixed 1x1 PNG.
 *
 * Properties beyond "no crash, leak or UB": an accepted request is within
 * the server's limits and packs -> unpacks -> packs to the same bytes, alone
 * and in a list (what every rank runs must be what rank 0 parsed); a refused
 * one carries a 4xx status and an error object that is valid JSON and valid
 * UTF-8, whatever bytes the client sent. A violation traps. */
#include "serve/serve_request.h"

#include "core/error.h"
#include "moedit.h"
#include "text/tokenizer_text.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) __builtin_trap();                                                                                 \
    } while (0)

/* serve's defaults (examples/cmd_serve.c, pipelines/generate.h) for a HiDream
 * model: VAE factor 8 x patch 2, max_resolution 128x128 latents. */
static serve_limits limits_of(int needs_guidance)
{
    return (serve_limits){.size_multiple = 16, .max_side = 16384, .max_pixels = (int64_t)64 << 20,
                          .nonsquare_max_pixels = 1024 * 1024, .max_images = 4, .default_width = 1024,
                          .default_height = 1024, .default_steps = 50, .default_guidance = 5.0,
                          .needs_guidance = needs_guidance};
}

static const uint8_t tiny_png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00,
    0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xdf, 0xc0, 0x00, 0x00, 0x04, 0x01, 0x01, 0x80, 0xc5,
    0x2a, 0x18, 0x5d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

/* A refusal: a client error, answered with a well-formed OpenAI error object. */
static void check_refusal(const serve_error *e)
{
    CHECK(e->status >= 400 && e->status <= 499);
    char *text = serve_error_json(e);
    if (!text) return; /* out of memory */
    cJSON *root = cJSON_Parse(text);
    CHECK(root);
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(error, "message")));
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(error, "type")));
    CHECK(utf8_invalid_at(text, strlen(text)) == strlen(text));
    cJSON_Delete(root);
    free(text);
}

/* An accepted request asks nothing the limits forbid. */
static void check_limits(const serve_request *r, const serve_limits *l)
{
    CHECK(r->prompt && r->prompt[0]);
    CHECK(r->n >= 1 && r->n <= l->max_images);
    CHECK(r->steps >= 1 && r->steps <= SERVE_MAX_STEPS);
    CHECK(isfinite(r->guidance) && (!l->needs_guidance || r->guidance > 1));
    CHECK(r->strength >= 0 && r->strength <= 1);
    if (r->edit && !r->width) return; /* the image's own size, checked with the image */
    CHECK(r->width >= 1 && r->height >= 1 && r->width <= l->max_side && r->height <= l->max_side);
    CHECK(r->width % l->size_multiple == 0 && r->height % l->size_multiple == 0);
    CHECK(r->width * r->height <= l->max_pixels);
}

/* pack -> unpack -> pack gives the same bytes, for one request and a list of two. */
static void check_round_trip(const serve_request *r)
{
    uint8_t *first, *second, *list;
    size_t first_n, second_n, list_n;
    if (serve_request_pack(r, &first, &first_n)) return; /* out of memory */
    serve_request back;
    CHECK(serve_request_unpack(&back, first, first_n) == 0);
    if (serve_request_pack(&back, &second, &second_n) == 0) {
        CHECK(second_n == first_n && !memcmp(first, second, first_n));
        free(second);
    }
    const serve_request *const pair[2] = {r, &back};
    if (serve_request_pack_list(pair, 2, &list, &list_n) == 0) {
        serve_request got[2];
        int count;
        CHECK(serve_request_unpack_list(got, 2, &count, list, list_n) == 0 && count == 2);
        for (int i = 0; i < 2; i++) {
            if (serve_request_pack(&got[i], &second, &second_n) == 0) {
                CHECK(second_n == first_n && !memcmp(first, second, first_n));
                free(second);
            }
            serve_request_free(&got[i]);
        }
        /* One fewer slot than requests: refused. */
        CHECK(serve_request_unpack_list(got, 1, &count, list, list_n) != 0);
        free(list);
    }
    serve_request_free(&back);
    free(first);
}

static void fuzz_body(const uint8_t *data, size_t size, const serve_limits *l)
{
    serve_request r;
    serve_error e;
    if (serve_request_parse(&r, (const char *)data, size, l, &e)) {
        check_refusal(&e);
        return;
    }
    check_limits(&r, l);
    check_round_trip(&r);
    serve_request_free(&r);
}

/* A request a rank received: used as the rank uses it (its texts, its image
 * bytes), which packing it again reads in full. */
static void use_unpacked(const serve_request *r)
{
    uint8_t *bytes;
    size_t n;
    if (serve_request_pack(r, &bytes, &n) == 0) free(bytes);
}

static void fuzz_rank_message(const uint8_t *data, size_t size)
{
    serve_request r, list[4];
    if (serve_request_unpack(&r, data, size) == 0) {
        use_unpacked(&r);
        serve_request_free(&r);
    }
    int count;
    if (serve_request_unpack_list(list, 4, &count, data, size) == 0) {
        CHECK(count >= 1 && count <= 4);
        for (int i = 0; i < count; i++) {
            use_unpacked(&list[i]);
            serve_request_free(&list[i]);
        }
    }
}

static void fuzz_edit(const uint8_t *data, size_t size, const serve_limits *l)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t fields_n = nul ? (size_t)(nul - data) : size;
    const uint8_t *image_data = nul ? nul + 1 : tiny_png;
    size_t image_n = nul ? size - fields_n - 1 : sizeof tiny_png;
    cJSON *fields = cJSON_ParseWithLength((const char *)data, fields_n);
    /* serve_upload.c hands over an object (text parts as strings, other file parts as {}). */
    if (!cJSON_IsObject(fields)) {
        cJSON_Delete(fields);
        return;
    }
    uint8_t *image = malloc(image_n ? image_n : 1); /* taken by the request, or freed on refusal */
    if (!image) {
        cJSON_Delete(fields);
        return;
    }
    memcpy(image, image_data, image_n);
    serve_request r;
    serve_error e;
    if (serve_request_parse_edit(&r, fields, image, image_n, l, &e)) {
        check_refusal(&e);
    } else {
        CHECK(r.edit && r.image == image && r.image_bytes == image_n);
        check_limits(&r, l);
        check_round_trip(&r);
        serve_request_free(&r);
    }
    cJSON_Delete(fields);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size) return 0;
    serve_limits l = limits_of(data[0] / 3 % 2);
    switch (data[0] % 3) {
    case 0: fuzz_body(data + 1, size - 1, &l); break;
    case 1: fuzz_rank_message(data + 1, size - 1); break;
    default: fuzz_edit(data + 1, size - 1, &l); break;
    }
    error_clear();
    return 0;
}
