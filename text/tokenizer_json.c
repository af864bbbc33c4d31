/* tokenizer.json field readers and Sequence walking (see tokenizer_json.h). */
#include "text/tokenizer_json.h"

#include "core/error.h"

#include <string.h>

const char *json_string_field(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

int json_bool_field(const cJSON *object, const char *key, int fallback)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    return cJSON_IsBool(item) ? cJSON_IsTrue(item) : fallback;
}

int tokenizer_json_steps(const cJSON *json, const char *what, const char *list_key, tokenizer_step_adder add,
                         void *owner, const char *path)
{
    const char *type = json_string_field(json, "type");
    if (!type) return error_set("%s: %s has no \"type\"", path, what);
    if (strcmp(type, "Sequence") != 0) return add(owner, type, json, path);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(json, list_key), *item;
    if (!cJSON_IsArray(list)) return error_set("%s: %s Sequence has no \"%s\" list", path, what, list_key);
    cJSON_ArrayForEach(item, list) if (tokenizer_json_steps(item, what, list_key, add, owner, path)) return -1;
    return 0;
}
