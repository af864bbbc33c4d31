/* What transformers reads from a tokenizer folder beside the vocabulary and
 * the encoding rules, and that padding a prompt needs:
 *   pad_token, eos_token   tokenizer_config.json, else special_tokens_map.json
 *                          (a string, or an object with "content")
 *   model_max_length       tokenizer_config.json (absent: no limit, as
 *                          transformers' VERY_LARGE_INTEGER)
 *   padding_side           tokenizer_config.json ("right" when absent)
 * A token's id is looked up as transformers resolves it: tokenizer_config's
 * added_tokens_decoder, tokenizer.json's added_tokens, then the model's
 * vocabulary (tokenizer.json model.vocab, an object or Unigram's list of
 * [piece, score], or vocab.json). */
#ifndef MOEDIT_TEXT_TOKENIZER_SETTINGS_H
#define MOEDIT_TEXT_TOKENIZER_SETTINGS_H

#include <stdint.h>

#define TOKENIZER_NO_LIMIT ((int64_t)1 << 53)

typedef struct tokenizer_settings {
    int32_t pad_id;           /* -1: no pad token */
    int32_t eos_id;           /* -1: no eos token */
    int64_t model_max_length; /* TOKENIZER_NO_LIMIT when the folder sets none */
    int pad_left;             /* padding_side "left" */
} tokenizer_settings;

/* Reads dir's files; a token named but found nowhere is an error naming it
 * and the folder. */
int tokenizer_settings_load(tokenizer_settings *s, const char *dir);

#endif
