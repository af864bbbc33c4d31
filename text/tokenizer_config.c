/* tokenizer_config.json + special_tokens_map.json; see tokenizer_config.h.
 * transformers reads bos/eos/unk/pad_token and model_max_length from them,
 * and turns added_tokens_decoder {"id": {content, lstrip, ...}} into the
 * backend's added tokens. */
#include "text/tokenizer_config.h"

#include "core/error.h"
#include "core/text_file.h"
#include "text/tokenizer_text.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKENIZER_MAX_FILE_BYTES ((size_t)1 << 30)

int tokenizer_json_read(cJSON **out, const char *path, int missing_ok)
{
    *out = NULL;
    if (missing_ok && access(path, F_OK) != 0) return 0;
    char *text = NULL;
    if (text_file_read(path, TOKENIZER_MAX_FILE_BYTES, "tokenizer", &text)) return -1;
    const char *end = NULL;
    *out = cJSON_ParseWithOpts(text, &end, 1);
    int status = 0;
    if (!*out) {
        int line = 1;
        for (const char *p = text; end && p < end; p++) line += *p == '\n';
        status = error_set("%s: malformed JSON at line %d", path, line);
    }
    free(text);
    return status;
}

/* "<s>" or {"content": "<s>", ...}. */
static const char *token_content(const cJSON *item)
{
    if (cJSON_IsString(item)) return item->valuestring;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");
    return cJSON_IsString(content) ? content->valuestring : NULL;
}

static int take_tokens(tokenizer_config *c, const cJSON *root)
{
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    char **slots[] = {&c->bos_token, &c->eos_token, &c->unk_token, &c->pad_token};
    for (int i = 0; i < 4; i++) {
        const char *content = token_content(cJSON_GetObjectItemCaseSensitive(root, keys[i]));
        if (*slots[i] || !content) continue;
        if (!(*slots[i] = tokenizer_strdup(content))) return error_set("out of memory reading a tokenizer config");
    }
    return 0;
}

static int take_added_tokens(tokenizer_config *c, const cJSON *decoder, const char *path)
{
    if (!cJSON_IsObject(decoder)) return 0;
    if (!(c->added_tokens = cJSON_CreateArray())) return error_set("out of memory reading %s", path);
    const cJSON *entry;
    cJSON_ArrayForEach(entry, decoder)
    {
        char *end = NULL;
        long id = strtol(entry->string, &end, 10);
        const char *content = token_content(entry);
        if (!*entry->string || *end || id < 0 || id > INT32_MAX || !content)
            return error_set("%s: added_tokens_decoder[\"%s\"] is not {\"content\": ...} under an integer id", path,
                             entry->string);
        cJSON *token = cJSON_Duplicate(entry, 1);
        if (!token || !cJSON_AddNumberToObject(token, "id", (double)id)) {
            cJSON_Delete(token);
            return error_set("out of memory reading %s", path);
        }
        cJSON_AddItemToArray(c->added_tokens, token);
    }
    return 0;
}

int tokenizer_config_read(tokenizer_config *c, const char *dir)
{
    memset(c, 0, sizeof *c);
    char path[4200];
    cJSON *config = NULL, *map = NULL;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (tokenizer_json_read(&config, path, 1)) return -1;
    int status = 0;
    if (config) {
        const cJSON *max = cJSON_GetObjectItemCaseSensitive(config, "model_max_length");
        if (cJSON_IsNumber(max) && max->valuedouble >= 1 && max->valuedouble <= INT_MAX)
            c->model_max_length = (int)max->valuedouble;
        const cJSON *side = cJSON_GetObjectItemCaseSensitive(config, "padding_side");
        c->pad_left = cJSON_IsString(side) && strcmp(side->valuestring, "left") == 0;
        status = take_tokens(c, config) ||
                 take_added_tokens(c, cJSON_GetObjectItemCaseSensitive(config, "added_tokens_decoder"), path);
    }
    snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
    if (!status && !(status = tokenizer_json_read(&map, path, 1)) && map) status = take_tokens(c, map);
    cJSON_Delete(config);
    cJSON_Delete(map);
    if (status) tokenizer_config_free(c);
    return status ? -1 : 0;
}

void tokenizer_config_free(tokenizer_config *c)
{
    free(c->bos_token);
    free(c->eos_token);
    free(c->unk_token);
    free(c->pad_token);
    cJSON_Delete(c->added_tokens);
    memset(c, 0, sizeof *c);
}
