/* The Unigram model of a tokenizer.json (model "type": "Unigram", as in T5's
 * SentencePiece tokenizers): one pre-tokenized piece ("▁Hello") to the ids of
 * its most probable segmentation, exactly as the `tokenizers` library's
 * Unigram model (models/unigram/model.rs, encode_optimized + tokenize):
 *
 *   best(0) = 0;  best(e) = max over vocab tokens t = piece[s .. e) of
 *                 best(s) + score(t)
 *   A character with no one-character token gets an <unk> edge of score
 *   min(all scores) - 10. Ties keep the path found first (the earlier start).
 *   On the best path, consecutive <unk> edges (any edge whose id is unk_id)
 *   fuse into one token; each token's id is its vocab id, else (with
 *   byte_fallback) the ids of "<0xXX>" for each of its bytes when all exist,
 *   else unk_id. A piece repeated in the vocab keeps its last id. */
#ifndef MOEDIT_TEXT_TOKENIZER_UNIGRAM_H
#define MOEDIT_TEXT_TOKENIZER_UNIGRAM_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef struct unigram_model unigram_model; /* immutable after load: encode is thread-safe */

/* Reads the "model" object of a tokenizer.json: "vocab" [[piece, score], ...],
 * "unk_id" (integer or null), "byte_fallback" (bool, default false). `path`
 * names the file in error messages. */
int unigram_load(unigram_model **out, const cJSON *model, const char *path);

/* Appends the ids of piece[0 .. n) (UTF-8) to *ids (realloc'ed as needed;
 * *count ids used of *capacity). An empty piece appends nothing. Fails when a
 * character is outside the vocab and the model has no unk_id. */
int unigram_encode(const unigram_model *m, const char *piece, size_t n, int32_t **ids, int *count,
                   int *capacity);

/* The id of the vocab piece token[0 .. n), -1 if absent. */
int32_t unigram_token_id(const unigram_model *m, const char *token, size_t n);

/* The number of vocab entries (ids run 0 .. size-1). */
int32_t unigram_vocab_size(const unigram_model *m);

void unigram_free(unigram_model *m);

#endif
