/* A tokenizer folder's padding settings; see tokenizer_settings.h. */
#include "text/tokenizer_settings.h"

#include "core/config.h"
#include "core/error.h"
#include "core/text_file.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOKENIZER_FILE_MAX_BYTES ((size_t)256 << 20) /* Llama 3's tokenizer.json is 9 MB */

/* dir/name parsed, or NULL (not an error) when the file does not exist. */
static int read_json(const char *dir, const char *name, cJSON **out)
{
    char path[4200], *text = NULL;
    struct stat st;
    *out = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (stat(path, &st) != 0) return 0;
    if (text_file_read(path, TOKENIZER_FILE_MAX_BYTES, "tokenizer file", &text)) return -1;
    *out = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return error_set("%s: not a JSON object", path);
    }
    return 0;
}

/* "pad_token": "<pad>" or {"content": "<pad>", ...}; NULL when absent or null. */
static const char *token_text(const cJSON *files[2], const char *key)
{
    for (int f = 0; f < 2; f++) {
        const cJSON *item = files[f] ? cJSON_GetObjectItemCaseSensitive(files[f], key) : NULL;
        if (cJSON_IsObject(item)) item = cJSON_GetObjectItemCaseSensitive(item, "content");
        if (cJSON_IsString(item)) return item->valuestring;
    }
    return NULL;
}

/* The id of `token` in added_tokens_decoder {"id": {"content"}}, added_tokens
 * [{"id", "content"}], model.vocab ({piece: id} or [[piece, score]]) or
 * vocab.json; -1 when none has it. */
static int32_t find_id(const cJSON *config, const cJSON *tokenizer_json, const cJSON *vocab_json, const char *token)
{
    const cJSON *item;
    const cJSON *decoder = config ? cJSON_GetObjectItemCaseSensitive(config, "added_tokens_decoder") : NULL;
    cJSON_ArrayForEach(item, decoder)
    {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");
        if (cJSON_IsString(content) && !strcmp(content->valuestring, token)) return (int32_t)atol(item->string);
    }
    const cJSON *added = tokenizer_json ? cJSON_GetObjectItemCaseSensitive(tokenizer_json, "added_tokens") : NULL;
    cJSON_ArrayForEach(item, added)
    {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "id");
        if (cJSON_IsString(content) && cJSON_IsNumber(id) && !strcmp(content->valuestring, token))
            return (int32_t)id->valuedouble;
    }
    const cJSON *model = tokenizer_json ? cJSON_GetObjectItemCaseSensitive(tokenizer_json, "model") : NULL;
    const cJSON *vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : vocab_json;
    if (cJSON_IsObject(vocab)) {
        item = cJSON_GetObjectItemCaseSensitive(vocab, token);
        return cJSON_IsNumber(item) ? (int32_t)item->valuedouble : -1;
    }
    int32_t index = 0;
    cJSON_ArrayForEach(item, vocab) /* Unigram: [[piece, score], ...], id = index */
    {
        const cJSON *piece = cJSON_GetArrayItem(item, 0);
        if (cJSON_IsString(piece) && !strcmp(piece->valuestring, token)) return index;
        index++;
    }
    return -1;
}

static int resolve(const char *dir, const cJSON *files[2], const cJSON *tokenizer_json, const cJSON *vocab_json,
                   const char *key, int32_t *id)
{
    const char *token = token_text(files, key);
    *id = -1;
    if (!token) return 0;
    *id = find_id(files[0], tokenizer_json, vocab_json, token);
    if (*id < 0) return error_set("%s: %s \"%s\" is not in the tokenizer's vocabulary", dir, key, token);
    return 0;
}

static int read_settings(tokenizer_settings *s, const char *dir, const cJSON *files[2], const cJSON *tokenizer_json,
                         const cJSON *vocab_json)
{
    if (resolve(dir, files, tokenizer_json, vocab_json, "pad_token", &s->pad_id) ||
        resolve(dir, files, tokenizer_json, vocab_json, "eos_token", &s->eos_id))
        return -1;
    const cJSON *config = files[0];
    const cJSON *limit = config ? cJSON_GetObjectItemCaseSensitive(config, "model_max_length") : NULL;
    if (cJSON_IsNumber(limit) && limit->valuedouble >= 1 && limit->valuedouble < (double)TOKENIZER_NO_LIMIT)
        s->model_max_length = (int64_t)limit->valuedouble;
    const cJSON *side = config ? cJSON_GetObjectItemCaseSensitive(config, "padding_side") : NULL;
    if (cJSON_IsString(side)) {
        if (strcmp(side->valuestring, "left") && strcmp(side->valuestring, "right"))
            return error_set("%s/tokenizer_config.json: padding_side \"%s\" is neither left nor right", dir,
                             side->valuestring);
        s->pad_left = !strcmp(side->valuestring, "left");
    }
    return 0;
}

int tokenizer_settings_load(tokenizer_settings *s, const char *dir)
{
    s->pad_id = s->eos_id = -1;
    s->model_max_length = TOKENIZER_NO_LIMIT;
    s->pad_left = 0;
    cJSON *config = NULL, *map = NULL, *tokenizer_json = NULL, *vocab_json = NULL;
    int status = read_json(dir, "tokenizer_config.json", &config) || read_json(dir, "special_tokens_map.json", &map) ||
                 read_json(dir, "tokenizer.json", &tokenizer_json);
    if (!status && !tokenizer_json) status = read_json(dir, "vocab.json", &vocab_json);
    if (!status && !tokenizer_json && !vocab_json)
        status = error_set("%s: no tokenizer.json or vocab.json (a tokenizer folder holds one)", dir);
    const cJSON *files[2] = {config, map};
    if (!status) status = read_settings(s, dir, files, tokenizer_json, vocab_json);
    cJSON_Delete(config), cJSON_Delete(map), cJSON_Delete(tokenizer_json), cJSON_Delete(vocab_json);
    return status ? -1 : 0;
}
