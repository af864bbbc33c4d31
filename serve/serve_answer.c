/* The JSON answer of an image request; see serve_answer.h. */
#include "serve/serve_answer.h"

#include "serve/serve_file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *serve_base64(const uint8_t *in, size_t n, const char *prefix)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t skip = strlen(prefix);
    char *out = malloc(skip + 4 * ((n + 2) / 3) + 1), *p;
    if (!out) return NULL;
    memcpy(out, prefix, skip);
    p = out + skip;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = digits[v >> 18], *p++ = digits[v >> 12 & 63], *p++ = digits[v >> 6 & 63], *p++ = digits[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        *p++ = digits[v >> 18], *p++ = digits[v >> 12 & 63];
        *p++ = i + 1 < n ? digits[v >> 6 & 63] : '=';
        *p++ = '=';
    }
    *p = 0;
    return out;
}

static int add_image(cJSON *list, const serve_request *request, const char *path, unsigned long long seed, serve_error *e)
{
    uint8_t *png = NULL;
    size_t n = 0;
    if (serve_file_read(path, &png, &n))
        return serve_error_set(e, 500, "server_error", NULL, NULL, "cannot read the image %s back: %s", path, strerror(errno));
    char *text = serve_base64(png, n, request->data_url ? "data:image/png;base64," : "");
    free(png);
    cJSON *item = cJSON_CreateObject();
    if (!text || !item || !cJSON_AddItemToArray(list, item)) {
        free(text);
        cJSON_Delete(item);
        return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory answering");
    }
    cJSON *value = cJSON_CreateStringReference(text); /* freed by the caller once printed */
    cJSON_AddItemToObject(item, request->data_url ? "url" : "b64_json", value);
    cJSON_AddNumberToObject(item, "seed", (double)seed);
    cJSON_AddStringToObject(item, "revised_prompt", request->prompt);
    return 0;
}

char *serve_answer_images(const serve_request *request, char *const *files, const unsigned long long *seeds, int count,
                          serve_error *e)
{
    cJSON *root = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(root, "data");
    cJSON_AddNumberToObject(root, "created", (double)time(NULL));
    int status = list ? 0 : serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory answering");
    for (int i = 0; i < count && !status; i++) status = add_image(list, request, files[i], seeds[i], e);
    char *text = status ? NULL : cJSON_PrintUnformatted(root);
    if (!status && !text) serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory answering");
    /* The base64 strings were added by reference: free them here. */
    for (cJSON *item = list ? list->child : NULL; item; item = item->next) {
        cJSON *value = item->child;
        if (value) free((char *)value->valuestring);
    }
    cJSON_Delete(root);
    return text;
}
