/* transformers' side files of a tokenizer folder: tokenizer_config.json and
 * special_tokens_map.json (either may be absent). Internal to
 * text/tokenizer*.c. */
#ifndef MOEDIT_TEXT_TOKENIZER_CONFIG_H
#define MOEDIT_TEXT_TOKENIZER_CONFIG_H

#include <cjson/cJSON.h>

typedef struct tokenizer_config {
    /* Token strings (a plain string or {"content": ...}); NULL when absent.
     * tokenizer_config.json first, special_tokens_map.json fills the gaps. */
    char *bos_token, *eos_token, *unk_token, *pad_token;
    int model_max_length; /* 0: absent or above INT_MAX (transformers' "very large") */
    int pad_left;         /* padding_side "left" (absent: "right") */
    /* tokenizer_config.json's added_tokens_decoder as tokenizer.json's
     * "added_tokens" list ({id, content, single_word, lstrip, rstrip,
     * normalized, special}); NULL when absent. */
    cJSON *added_tokens;
} tokenizer_config;

/* Reads dir/tokenizer_config.json and dir/special_tokens_map.json; a missing
 * file is fine, a malformed one fails naming it. */
int tokenizer_config_read(tokenizer_config *c, const char *dir);
void tokenizer_config_free(tokenizer_config *c);

/* Reads a whole JSON file (NULL *out and 0 when missing_ok and absent). */
int tokenizer_json_read(cJSON **out, const char *path, int missing_ok);

#endif
