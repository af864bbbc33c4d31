/* The form of an image edit, through libmicrohttpd's post processor; see
 * serve_upload.h. */
#include "serve/serve_upload.h"

#include <stdlib.h>
#include <string.h>

static int is_image_part(const char *key) { return !strcmp(key, "image") || !strcmp(key, "image[]"); }

int serve_bytes_append(char **data, size_t *used, size_t *capacity, const char *more, size_t n)
{
    if (*used + n + 1 > *capacity) {
        size_t grown_capacity = 2 * (*used + n + 1);
        char *grown = realloc(*data, grown_capacity);
        if (!grown) return -1;
        *data = grown;
        *capacity = grown_capacity;
    }
    memcpy(*data + *used, more, n);
    *used += n;
    (*data)[*used] = 0;
    return 0;
}

/* Field key of the form becomes value (a part of a repeated name replaces the earlier one). */
static int set_field(serve_upload *u, const char *key, cJSON *value)
{
    if (!value) return -1;
    int set = cJSON_GetObjectItemCaseSensitive(u->fields, key)
                  ? cJSON_ReplaceItemInObjectCaseSensitive(u->fields, key, value)
                  : cJSON_AddItemToObject(u->fields, key, value);
    if (!set) cJSON_Delete(value);
    return set ? 0 : -1;
}

/* A text part's next bytes: the first piece (offset 0) replaces an earlier
 * part of the same name, later pieces are appended. Each piece copies the
 * text so far: a part is kept to one byte over the longest text a field
 * takes (SERVE_MAX_PROMPT_BYTES), enough for the parser's "longer than", so
 * a 16 MiB field costs no more than that (it took 11 s of copies). */
static int append_text(serve_upload *u, const char *key, const char *data, size_t size, uint64_t offset)
{
    cJSON *field = cJSON_GetObjectItemCaseSensitive(u->fields, key);
    const char *before = offset > 0 && cJSON_IsString(field) ? field->valuestring : "";
    size_t had = strlen(before);
    if (had > SERVE_MAX_PROMPT_BYTES) return 0;
    if (size > SERVE_MAX_PROMPT_BYTES + 1 - had) size = SERVE_MAX_PROMPT_BYTES + 1 - had;
    char *text = malloc(had + size + 1);
    if (!text) return -1;
    memcpy(text, before, had);
    memcpy(text + had, data, size);
    text[had + size] = 0;
    /* A NUL inside a value ends it, as it would end a JSON body's string. */
    cJSON *value = cJSON_CreateString(text);
    free(text);
    return set_field(u, key, value);
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                               const char *content_type, const char *transfer_encoding, const char *data,
                               uint64_t offset, size_t size)
{
    serve_upload *u = cls;
    if (!key) return MHD_YES;
    if (is_image_part(key)) {
        if (offset == 0) u->images++;
        return u->images > 1 || serve_bytes_append(&u->image, &u->image_bytes, &u->image_capacity, data, size) == 0
                   ? MHD_YES
                   : MHD_NO;
    }
    /* Another file part (a mask, say) becomes a field of its name holding an
     * empty object, which the request's parser refuses as it refuses {} in a
     * JSON body (a text field's "must be a string"; a mask's "not supported"). */
    if (filename) return offset > 0 || set_field(u, key, cJSON_CreateObject()) == 0 ? MHD_YES : MHD_NO;
    return append_text(u, key, data, size, offset) == 0 ? MHD_YES : MHD_NO;
}

int serve_upload_begin(serve_upload *u, struct MHD_Connection *connection, size_t limit)
{
    memset(u, 0, sizeof *u);
    u->limit = limit;
    if (!(u->fields = cJSON_CreateObject())) return -1;
    /* NULL for a body of another type: answered by serve_upload_finish. */
    u->processor = MHD_create_post_processor(connection, 64 * 1024, on_part, u);
    return 0;
}

void serve_upload_feed(serve_upload *u, const char *data, size_t n)
{
    u->received += n;
    if (u->received > u->limit) u->too_large = 1;
    if (!u->processor || u->too_large || u->unreadable) return;
    if (MHD_post_process(u->processor, data, n) != MHD_YES) u->unreadable = 1;
}

int serve_upload_finish(serve_upload *u, serve_error *e)
{
    if (u->too_large)
        return serve_error_set(e, 400, "invalid_request_error", NULL, "body_too_large",
                               "the request body is larger than %zu bytes (the server's --max-upload)", u->limit);
    if (!u->processor)
        return serve_error_set(e, 400, "invalid_request_error", NULL, "invalid_content_type",
                               "/v1/images/edits takes a multipart/form-data body (the image as a file part)");
    int complete = MHD_destroy_post_processor(u->processor) == MHD_YES;
    u->processor = NULL;
    if (u->unreadable || !complete)
        return serve_error_set(e, 400, "invalid_request_error", NULL, "invalid_form",
                               "the multipart/form-data body could not be read (truncated or malformed)");
    if (u->images > 1)
        return serve_error_set(e, 400, "invalid_request_error", "image", "invalid_value",
                               "%d images sent: moedit edits one image per request", u->images);
    return 0;
}

uint8_t *serve_upload_take_image(serve_upload *u, size_t *bytes)
{
    uint8_t *image = u->images == 1 ? (uint8_t *)u->image : NULL;
    *bytes = image ? u->image_bytes : 0;
    if (image) u->image = NULL;
    return image;
}

void serve_upload_free(serve_upload *u)
{
    if (u->processor) MHD_destroy_post_processor(u->processor);
    cJSON_Delete(u->fields);
    free(u->image);
    memset(u, 0, sizeof *u);
}
