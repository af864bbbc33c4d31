/* Reading tokenizer.json's objects: typed fields with fallbacks, and the
 * "Sequence" trees that normalizers and pre-tokenizers nest. Internal to
 * text/tokenizer*.c. */
#ifndef MOEDIT_TEXT_TOKENIZER_JSON_H
#define MOEDIT_TEXT_TOKENIZER_JSON_H

#include <cjson/cJSON.h>

/* The string at object[key], or NULL when absent or not a string. */
const char *json_string_field(const cJSON *object, const char *key);
/* The boolean at object[key], or fallback when absent or not a boolean. */
int json_bool_field(const cJSON *object, const char *key, int fallback);

/* Adds one step of type `type` (described by json) to owner; 0 or -1 with the error set. */
typedef int (*tokenizer_step_adder)(void *owner, const char *type, const cJSON *json, const char *path);

/* Walks a step tree as tokenizers writes it: an object with a "type"; a
 * "Sequence" holds its steps under list_key ("normalizers", "pretokenizers")
 * and may nest. Calls add for each leaf in order. what ("normalizer",
 * "pre_tokenizer") names the tree in errors. */
int tokenizer_json_steps(const cJSON *json, const char *what, const char *list_key, tokenizer_step_adder add,
                         void *owner, const char *path);

#endif
