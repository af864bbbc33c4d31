/* The "pre_tokenizer" of tokenizer.json: splits normalized text into the
 * pieces the model encodes one at a time. Internal to text/tokenizer*.c. */
#ifndef MOEDIT_TEXT_TOKENIZER_PRETOKENIZE_H
#define MOEDIT_TEXT_TOKENIZER_PRETOKENIZE_H

#include "text/tokenizer_text.h"

#include <cjson/cJSON.h>

typedef struct tokenizer_pre_tokenizer tokenizer_pre_tokenizer;

/* Pieces as spans into text; scratch_* are reused between steps and calls. */
typedef struct pre_tokenized {
    text_buffer text, scratch_text;
    span_list pieces, scratch_pieces;
} pre_tokenized;

/* Reads a pre_tokenizer object (null: the whole text is one piece).
 * Unsupported types fail naming path and the type. */
int tokenizer_pre_tokenizer_load(tokenizer_pre_tokenizer **out, const cJSON *json, const char *path);

/* Splits s[0..n) into out->pieces (out->text holds their bytes). at_origin:
 * s begins at offset 0 of the original text (Metaspace's "first" scheme). */
int tokenizer_pre_tokenize(const tokenizer_pre_tokenizer *p, const char *s, size_t n, int at_origin,
                           pre_tokenized *out);

void pre_tokenized_free(pre_tokenized *p);
void tokenizer_pre_tokenizer_free(tokenizer_pre_tokenizer *p);

#endif
