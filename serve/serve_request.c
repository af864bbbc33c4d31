/* Parsing, checking and packing of one image request; see serve_request.h. */
#include "serve/serve_request.h"

#include "core/error.h"
#include "moedit.h"
#include "pipelines/edit_image.h"
#include "pipelines/scheduler.h"
#include "text/tokenizer_text.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Drops what is not UTF-8 from s: a "%.48s" or a full buffer can cut a character of the client's text in two (and
 * its bytes may not be UTF-8 at all), and clients' JSON readers refuse an error object that is not UTF-8. */
static void keep_utf8(char *s)
{
    size_t n = strlen(s), kept = 0;
    for (size_t at = 0; at < n;) {
        size_t valid = utf8_invalid_at(s + at, n - at);
        memmove(s + kept, s + at, valid);
        kept += valid;
        at += valid + (at + valid < n); /* and the invalid byte */
    }
    s[kept] = 0;
}

int serve_error_set(serve_error *e, int status, const char *type, const char *param, const char *code,
                    const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list args;
    va_start(args, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, args);
    va_end(args);
    keep_utf8(e->message);
    keep_utf8(e->param);
    return -1;
}

char *serve_error_json(const serve_error *e)
{
    cJSON *root = cJSON_CreateObject(), *error = cJSON_AddObjectToObject(root, "error");
    if (!error) {
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_AddStringToObject(error, "message", e->message);
    cJSON_AddStringToObject(error, "type", e->type ? e->type : "invalid_request_error");
    if (e->param[0]) cJSON_AddStringToObject(error, "param", e->param);
    else cJSON_AddNullToObject(error, "param");
    if (e->code) cJSON_AddStringToObject(error, "code", e->code);
    else cJSON_AddNullToObject(error, "code");
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static int bad(serve_error *e, const char *param, const char *code, const char *fmt, const char *detail)
{
    return serve_error_set(e, 400, "invalid_request_error", param, code, fmt, param, detail);
}

/* An integral JSON number in [low, high] into *value. */
static int read_integer(const cJSON *item, const char *name, double low, double high, int64_t *value, serve_error *e)
{
    if (!cJSON_IsNumber(item)) return bad(e, name, "invalid_type", "'%s' must be an integer%s", "");
    double v = item->valuedouble;
    if (v != floor(v) || v < low || v > high) {
        char range[96];
        snprintf(range, sizeof range, " from %.0f to %.0f", low, high);
        return bad(e, name, "invalid_value", "'%s' must be an integer%s", range);
    }
    *value = (int64_t)v;
    return 0;
}

/* A finite JSON number in [low, high] (low itself excluded when low_open) into *value. */
static int read_number(const cJSON *item, const char *name, double low, double high, int low_open, double *value,
                       serve_error *e)
{
    if (!cJSON_IsNumber(item)) return bad(e, name, "invalid_type", "'%s' must be a number%s", "");
    double v = item->valuedouble;
    if (!isfinite(v) || v < low || (low_open && v == low) || v > high) {
        char range[96];
        snprintf(range, sizeof range, low_open ? " in (%g, %g]" : " between %g and %g", low, high);
        return bad(e, name, "invalid_value", "'%s' must be a number%s", range);
    }
    *value = v;
    return 0;
}

static int read_string(const cJSON *item, const char *name, char **value, serve_error *e)
{
    if (!cJSON_IsString(item)) return bad(e, name, "invalid_type", "'%s' must be a string%s", "");
    if (strlen(item->valuestring) > SERVE_MAX_PROMPT_BYTES)
        return bad(e, name, "invalid_value", "'%s' is longer than 65536 bytes%s", "");
    /* The tokenizer refuses it later: as a 500 after the request had waited its turn. */
    size_t n = strlen(item->valuestring), at = utf8_invalid_at(item->valuestring, n);
    if (at < n) {
        char where[48];
        snprintf(where, sizeof where, " (byte %zu)", at);
        return bad(e, name, "invalid_value", "'%s' is not valid UTF-8%s", where);
    }
    free(*value); /* a repeated field (JSON allows it): the last one counts, as a repeated form part's does */
    if (!(*value = strdup(item->valuestring)))
        return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory reading '%s'", name);
    return 0;
}

/* A non-square size beyond the transformer's max_resolution: the run would
 * refuse it (generate.c's validate_sizes), so the client hears it first. */
static int check_trained_size(int64_t w, int64_t h, const serve_limits *l, const char *param, serve_error *e)
{
    if (w == h || w * h <= l->nonsquare_max_pixels) return 0;
    return serve_error_set(e, 400, "invalid_request_error", param, "invalid_value",
                           "size %lldx%lld: a non-square image may have at most %lld pixels for this model "
                           "(the transformer's max_resolution); a square one of any size on the grid",
                           (long long)w, (long long)h, (long long)l->nonsquare_max_pixels);
}

/* "WxH" on the model's grid, or "auto" (the server's default size). */
static int read_size(const cJSON *item, const serve_limits *l, serve_request *r, serve_error *e)
{
    if (!cJSON_IsString(item)) return bad(e, "size", "invalid_type", "'%s' must be a string such as \"256x256\"%s", "");
    const char *s = item->valuestring;
    if (!strcmp(s, "auto")) return 0;
    long long w, h;
    char tail;
    if (sscanf(s, "%lldx%lld%c", &w, &h, &tail) != 2 || w < 1 || h < 1)
        return bad(e, "size", "invalid_value", "'%s' must be \"WIDTHxHEIGHT\" (e.g. \"256x256\") or \"auto\", not \"%s\"", s);
    if (w > l->max_side || h > l->max_side || w * h > l->max_pixels)
        return serve_error_set(e, 400, "invalid_request_error", "size", "invalid_value",
                               "size %lldx%lld: each side must be at most %lld and the image at most %lld pixels", w, h,
                               (long long)l->max_side, (long long)l->max_pixels);
    if (w % l->size_multiple || h % l->size_multiple)
        return serve_error_set(e, 400, "invalid_request_error", "size", "invalid_value",
                               "size %lldx%lld: both sides must be multiples of %lld for this model", w, h,
                               (long long)l->size_multiple);
    if (check_trained_size(w, h, l, "size", e)) return -1;
    r->width = w;
    r->height = h;
    return 0;
}

static int read_choice(const cJSON *item, const char *name, const char *const *choices, int count, int *index,
                       serve_error *e)
{
    if (!cJSON_IsString(item)) return bad(e, name, "invalid_type", "'%s' must be a string%s", "");
    for (int i = 0; i < count; i++)
        if (!strcmp(item->valuestring, choices[i])) {
            *index = i;
            return 0;
        }
    char list[128] = "";
    for (int i = 0; i < count; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", i ? " or " : "", choices[i]);
    return serve_error_set(e, 400, "invalid_request_error", name, "invalid_value", "'%s' must be %s, not \"%.80s\"", name,
                           list, item->valuestring);
}

/* OpenAI fields moedit does not use: accepted when of their type. */
static int ignored_field(const cJSON *item, serve_error *e)
{
    static const char *const strings[] = {"quality", "style", "user", "background", "moderation"};
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++)
        if (!strcmp(item->string, strings[i]))
            return cJSON_IsString(item) ? 0 : bad(e, item->string, "invalid_type", "'%s' must be a string%s", "");
    if (!strcmp(item->string, "output_compression"))
        return cJSON_IsNumber(item) ? 0 : bad(e, item->string, "invalid_type", "'%s' must be a number%s", "");
    return serve_error_set(e, 400, "invalid_request_error", item->string, "unknown_parameter",
                           "Unknown parameter: '%.48s'", item->string);
}

/* The fields only an edit has: strength, edit_mode; OpenAI's mask is refused (no inpainting). */
static int read_edit_field(const cJSON *item, serve_request *r, serve_error *e)
{
    const char *name = item->string;
    int choice;
    if (!strcmp(name, "strength")) return read_number(item, name, 0, 1, 1, &r->strength, e);
    if (!strcmp(name, "edit_mode")) {
        static const char *const modes[] = {"strength", "context"};
        if (read_choice(item, name, modes, 2, &choice, e)) return -1;
        r->edit_mode = choice == 1 ? MOEDIT_EDIT_CONTEXT : MOEDIT_EDIT_STRENGTH;
        return 0;
    }
    if (!strcmp(name, "mask"))
        return bad(e, name, "invalid_value", "'%s' is not supported: moedit edits the whole image (strength or "
                   "context mode)%s", "");
    if (!strcmp(name, "input_fidelity")) return cJSON_IsString(item) ? 0 : bad(e, name, "invalid_type", "'%s' must be a string%s", "");
    return ignored_field(item, e);
}

static int read_field(const cJSON *item, const serve_limits *l, serve_request *r, serve_error *e)
{
    const char *name = item->string;
    int64_t v;
    int choice;
    if (cJSON_IsNull(item)) return 0; /* null: the default, as OpenAI takes it */
    if (!strcmp(name, "prompt")) return read_string(item, name, &r->prompt, e);
    if (!strcmp(name, "negative_prompt")) return read_string(item, name, &r->negative_prompt, e);
    if (!strcmp(name, "model")) return cJSON_IsString(item) ? 0 : bad(e, name, "invalid_type", "'%s' must be a string%s", "");
    if (!strcmp(name, "size")) return read_size(item, l, r, e);
    if (!strcmp(name, "n")) {
        if (read_integer(item, name, 1, l->max_images, &v, e)) return -1;
        r->n = (int)v;
        return 0;
    }
    if (!strcmp(name, "seed")) {
        if (read_integer(item, name, 0, 9007199254740992.0, &v, e)) return -1;
        r->seed = (uint64_t)v;
        r->seed_given = 1;
        return 0;
    }
    if (!strcmp(name, "num_inference_steps")) return read_integer(item, name, 1, SERVE_MAX_STEPS, &r->steps, e);
    if (!strcmp(name, "guidance_scale")) return read_number(item, name, 0, 100, 0, &r->guidance, e);
    if (!strcmp(name, "response_format")) {
        static const char *const formats[] = {"b64_json", "url"};
        if (read_choice(item, name, formats, 2, &choice, e)) return -1;
        r->data_url = choice == 1;
        return 0;
    }
    if (!strcmp(name, "output_format")) {
        static const char *const formats[] = {"png"};
        return read_choice(item, name, formats, 1, &choice, e);
    }
    if (r->edit) return read_edit_field(item, r, e);
    return ignored_field(item, e);
}

/* The defaults of a request (an edit's size: 0, the input's own). */
static void start_request(serve_request *r, const serve_limits *l, int edit)
{
    memset(r, 0, sizeof *r);
    r->edit = edit;
    r->width = edit ? 0 : l->default_width;
    r->height = edit ? 0 : l->default_height;
    r->steps = l->default_steps;
    r->guidance = l->default_guidance;
    r->n = 1;
}

/* Every field of the object root, then what needs them all. */
static int read_fields(serve_request *r, const cJSON *root, const serve_limits *l, serve_error *e)
{
    int status = 0;
    for (const cJSON *item = root->child; item && !status; item = item->next) status = read_field(item, l, r, e);
    if (!status && (!r->prompt || !r->prompt[0]))
        status = serve_error_set(e, 400, "invalid_request_error", "prompt", "missing_required_parameter",
                                 "Missing required parameter: 'prompt'");
    if (!status && l->needs_guidance && r->guidance <= 1)
        status = serve_error_set(e, 400, "invalid_request_error", "guidance_scale", "invalid_value",
                                 "'guidance_scale' must be > 1 on this server: its CFG-parallel layout runs the "
                                 "unconditional branch on ranks of its own");
    if (!status && r->edit) {
        /* moedit edit's own rule (pipelines/edit.c), before the request waits in the queue. */
        double strength = r->strength ? r->strength : r->edit_mode == MOEDIT_EDIT_CONTEXT ? 1.0 : MOEDIT_EDIT_DEFAULT_STRENGTH;
        scheduler probe = {.steps = (int)r->steps};
        int start;
        if (scheduler_start_index(&probe, strength, &start)) {
            error_clear();
            status = serve_error_set(e, 400, "invalid_request_error", "strength", "invalid_value",
                                     "strength %g leaves none of the %lld inference steps to run; raise 'strength' or "
                                     "'num_inference_steps'", strength, (long long)r->steps);
        }
    }
    return status;
}

/* Where the body holds the JSON escape \u0000 (a backslash escaped itself,
 * "\\u0000", is text), or -1: cJSON's strings end at a NUL, so a prompt with
 * one would silently lose the rest. */
static long long nul_escape_at(const char *body, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        if (body[i] != '\\') continue;
        size_t run = i;
        while (run < length && body[run] == '\\') run++;
        if ((run - i) % 2 == 1 && length - run >= 5 && !memcmp(body + run, "u0000", 5)) return (long long)run - 1;
        i = run - 1;
    }
    return -1;
}

int serve_request_parse(serve_request *r, const char *body, size_t length, const serve_limits *l, serve_error *e)
{
    start_request(r, l, 0);
    long long nul = nul_escape_at(body, length);
    cJSON *root = nul < 0 ? cJSON_ParseWithLength(body, length) : NULL;
    int status = 0;
    if (nul >= 0)
        status = serve_error_set(e, 400, "invalid_request_error", NULL, "invalid_value",
                                 "the request body holds \\u0000 at byte %lld: moedit's texts cannot contain a NUL "
                                 "character",
                                 nul);
    else if (!root)
        status = serve_error_set(e, 400, "invalid_request_error", NULL, "invalid_json",
                                 "the request body is not valid JSON (near byte %lld)",
                                 (long long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - body : 0));
    else if (!cJSON_IsObject(root))
        status = serve_error_set(e, 400, "invalid_request_error", NULL, "invalid_json", "the request body must be a JSON object");
    if (!status) status = read_fields(r, root, l, e);
    cJSON_Delete(root);
    if (status) serve_request_free(r);
    return status;
}

/* A form's text as the JSON value a JSON body would carry: numbers for the
 * numeric fields when the whole text is one, the text otherwise (so that
 * "n=two" is the same invalid_type as {"n": "two"}). */
static cJSON *form_value(const cJSON *field)
{
    static const char *const numeric[] = {"n", "seed", "num_inference_steps", "guidance_scale", "strength",
                                          "output_compression"};
    if (!cJSON_IsString(field)) return cJSON_Duplicate(field, 1); /* a file part: serve_upload.c */
    const char *text = field->valuestring;
    for (size_t i = 0; i < sizeof numeric / sizeof *numeric; i++) {
        if (strcmp(field->string, numeric[i])) continue;
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (*text && !*end && !errno && isfinite(v)) return cJSON_CreateNumber(v);
    }
    return cJSON_CreateString(text);
}

int serve_request_parse_edit(serve_request *r, const cJSON *fields, uint8_t *image, size_t image_bytes,
                             const serve_limits *l, serve_error *e)
{
    start_request(r, l, 1);
    cJSON *root = cJSON_CreateObject();
    int status = root ? 0 : serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory reading the form");
    for (const cJSON *f = fields->child; f && !status; f = f->next) {
        cJSON *value = form_value(f);
        if (!value || !cJSON_AddItemToObject(root, f->string, value))
            status = serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory reading the form");
    }
    if (!status && !image)
        status = serve_error_set(e, 400, "invalid_request_error", "image", "missing_required_parameter",
                                 "Missing required parameter: 'image' (a PNG or JPEG file part)");
    if (!status) status = read_fields(r, root, l, e);
    cJSON_Delete(root);
    if (status) {
        serve_request_free(r);
        free(image);
        return status;
    }
    r->image = image;
    r->image_bytes = image_bytes;
    return 0;
}

void serve_request_image_path(const char *folder, uint64_t id, char *path, size_t size)
{
    snprintf(path, size, "%s/input-%llu", folder, (unsigned long long)id);
}

int serve_request_write_image(const serve_request *r, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) return error_set("cannot write the uploaded image to %s: %s", path, strerror(errno));
    size_t written = fwrite(r->image, 1, r->image_bytes, f);
    int failed = fclose(f) != 0 || written != r->image_bytes;
    return failed ? error_set("cannot write the uploaded image to %s", path) : 0;
}

int serve_request_check_image(serve_request *r, const char *path, const serve_limits *l, serve_error *e)
{
    edit_image image;
    int status = serve_request_write_image(r, path);
    if (status) {
        unlink(path); /* a write that failed half-way (disk full) leaves part of it */
        serve_error_set(e, 500, "server_error", NULL, NULL, "%s", error_message());
        error_clear();
        return -1;
    }
    if (edit_image_load(&image, path, r->height, r->width, l->size_multiple, l->max_side, l->max_pixels)) {
        /* The message names the server's file: say "the image" instead. */
        const char *why = error_message(), *name = strstr(why, path);
        char text[512];
        size_t skip = name ? strlen(path) : 0;
        if (name && name - why >= 6 && !strncmp(name - 6, "image ", 6)) name -= 6, skip += 6;
        if (name) snprintf(text, sizeof text, "%.*sthe image%s", (int)(name - why), why, name + skip);
        else snprintf(text, sizeof text, "%s", why);
        error_clear();
        unlink(path);
        return serve_error_set(e, 400, "invalid_request_error", "image", "invalid_image", "%s", text);
    }
    r->width = image.width;
    r->height = image.height;
    edit_image_free(&image);
    if (check_trained_size(r->width, r->height, l, "image", e)) {
        unlink(path);
        return -1;
    }
    return 0;
}

void serve_request_free(serve_request *r)
{
    free(r->prompt);
    free(r->negative_prompt);
    free(r->image);
    r->prompt = r->negative_prompt = NULL;
    r->image = NULL;
}

/* Bytes: the struct with its pointers zeroed, then the lengths of the
 * prompt, the negative prompt (-1: none) and the image (0: none), then their
 * bytes in that order. */
int serve_request_pack(const serve_request *r, uint8_t **bytes, size_t *length)
{
    int64_t lengths[3] = {(int64_t)strlen(r->prompt), r->negative_prompt ? (int64_t)strlen(r->negative_prompt) : -1,
                          (int64_t)r->image_bytes};
    size_t texts = (size_t)lengths[0] + (size_t)(lengths[1] > 0 ? lengths[1] : 0);
    size_t n = sizeof *r + sizeof lengths + texts + r->image_bytes;
    uint8_t *out = malloc(n);
    if (!out) return -1;
    serve_request plain = *r;
    plain.prompt = plain.negative_prompt = NULL;
    plain.image = NULL;
    uint8_t *p = out;
    memcpy(p, &plain, sizeof plain), p += sizeof plain;
    memcpy(p, lengths, sizeof lengths), p += sizeof lengths;
    memcpy(p, r->prompt, (size_t)lengths[0]), p += lengths[0];
    if (lengths[1] > 0) memcpy(p, r->negative_prompt, (size_t)lengths[1]), p += lengths[1];
    if (r->image_bytes) memcpy(p, r->image, r->image_bytes);
    *bytes = out;
    *length = n;
    return 0;
}

static uint8_t *copy_bytes(const uint8_t *p, int64_t n)
{
    uint8_t *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    memcpy(s, p, (size_t)n);
    s[n] = 0;
    return s;
}

int serve_request_unpack(serve_request *r, const uint8_t *bytes, size_t length)
{
    int64_t lengths[3];
    if (length < sizeof *r + sizeof lengths) return -1;
    memcpy(r, bytes, sizeof *r);
    memcpy(lengths, bytes + sizeof *r, sizeof lengths);
    const uint8_t *p = bytes + sizeof *r + sizeof lengths;
    size_t rest = length - sizeof *r - sizeof lengths;
    int64_t negative = lengths[1] > 0 ? lengths[1] : 0;
    r->prompt = r->negative_prompt = NULL;
    r->image = NULL;
    /* Each length alone first (their sum could overflow); the image's length is the struct's image_bytes, which
     * packing it again and writing it read (a damaged message that disagrees would read past the copy). */
    if (lengths[0] < 0 || lengths[2] < 0 || (uint64_t)lengths[2] != r->image_bytes) return -1;
    if ((uint64_t)lengths[0] > rest || (uint64_t)negative > rest - (uint64_t)lengths[0] ||
        (uint64_t)lengths[2] != rest - (uint64_t)lengths[0] - (uint64_t)negative)
        return -1;
    r->prompt = (char *)copy_bytes(p, lengths[0]);
    r->negative_prompt = lengths[1] >= 0 ? (char *)copy_bytes(p + lengths[0], lengths[1]) : NULL;
    r->image = lengths[2] ? copy_bytes(p + lengths[0] + negative, lengths[2]) : NULL;
    if (!r->prompt || (lengths[1] >= 0 && !r->negative_prompt) || (lengths[2] && !r->image)) {
        serve_request_free(r);
        return -1;
    }
    return 0;
}

int serve_request_pack_list(const serve_request *const *requests, int count, uint8_t **bytes, size_t *length)
{
    uint8_t *packed[count ? count : 1];
    size_t sizes[count ? count : 1], total = sizeof(int64_t);
    int made = 0;
    for (; made < count; made++) {
        if (serve_request_pack(requests[made], &packed[made], &sizes[made])) break;
        total += sizeof(int64_t) + sizes[made];
    }
    uint8_t *out = made == count ? malloc(total) : NULL, *p = out;
    if (out) {
        int64_t n = count;
        memcpy(p, &n, sizeof n), p += sizeof n;
        for (int i = 0; i < count; i++) {
            int64_t size = (int64_t)sizes[i];
            memcpy(p, &size, sizeof size), p += sizeof size;
            memcpy(p, packed[i], sizes[i]), p += sizes[i];
        }
    }
    for (int i = 0; i < made; i++) free(packed[i]);
    if (!out) return -1;
    *bytes = out;
    *length = total;
    return 0;
}

int serve_request_unpack_list(serve_request *requests, int max, int *count, const uint8_t *bytes, size_t length)
{
    int64_t n;
    if (length < sizeof n) return -1;
    memcpy(&n, bytes, sizeof n);
    if (n < 1 || n > max) return -1;
    size_t at = sizeof n;
    int made = 0;
    for (; made < n; made++) {
        int64_t size;
        if (length - at < sizeof size) break;
        memcpy(&size, bytes + at, sizeof size);
        at += sizeof size;
        if (size < 0 || (size_t)size > length - at || serve_request_unpack(&requests[made], bytes + at, (size_t)size))
            break;
        at += (size_t)size;
    }
    if (made == n) {
        *count = made;
        return 0;
    }
    for (int i = 0; i < made; i++) serve_request_free(&requests[i]);
    return -1;
}
