/* The "normalizer" of tokenizer.json: a list of steps applied in turn to each
 * stretch of raw text between added tokens. Internal to text/tokenizer*.c. */
#ifndef MOEDIT_TEXT_TOKENIZER_NORMALIZE_H
#define MOEDIT_TEXT_TOKENIZER_NORMALIZE_H

#include "text/tokenizer_text.h"

#include <cjson/cJSON.h>

typedef struct tokenizer_normalizer tokenizer_normalizer;

/* Reads a normalizer object (null: no steps). Unsupported types fail naming
 * path and the type ("tokenizer.json: normalizer BertNormalizer is not
 * supported"). */
int tokenizer_normalizer_load(tokenizer_normalizer **out, const cJSON *json, const char *path);

/* out = s[0..n) normalized (out is reset first; s must be valid UTF-8). */
int tokenizer_normalizer_apply(const tokenizer_normalizer *n, const char *s, size_t length, text_buffer *out);

void tokenizer_normalizer_free(tokenizer_normalizer *n);

#endif
