/* The BPE model of tokenizer.json (also CLIP's vocab.json + merges.txt).
 * Internal to text/tokenizer*.c. */
#ifndef MOEDIT_TEXT_TOKENIZER_BPE_H
#define MOEDIT_TEXT_TOKENIZER_BPE_H

#include "text/tokenizer_text.h"

#include <cjson/cJSON.h>

typedef struct tokenizer_bpe tokenizer_bpe;

/* Reads a "model" object of type BPE: vocab {token: id}, merges ["a b", ...]
 * or [["a", "b"], ...], unk_token, continuing_subword_prefix,
 * end_of_word_suffix, fuse_unk, byte_fallback, ignore_merges. dropout other
 * than null/0 fails (moedit is deterministic). */
int tokenizer_bpe_load(tokenizer_bpe **out, const cJSON *model, const char *path);

/* Appends the ids of one pre-tokenized piece. */
int tokenizer_bpe_encode(const tokenizer_bpe *m, const char *piece, size_t n, id_list *ids);

const vocab_table *tokenizer_bpe_vocab(const tokenizer_bpe *m);

void tokenizer_bpe_free(tokenizer_bpe *m);

#endif
