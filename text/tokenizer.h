/* Text to token ids, read from a Hugging Face `tokenizer.json` (the format of
 * the `tokenizers` library, which transformers' fast tokenizers save).
 *
 * Encoding runs the library's pipeline, for one sequence:
 *   1. added tokens ("added_tokens", e.g. "[BOS]") are cut out of the raw
 *      text first (leftmost, longest match; single_word, lstrip and rstrip
 *      honoured) and become their ids directly;
 *   2. each remaining span is normalized:   null | Lowercase | Strip |
 *      Replace (string pattern) | Prepend | Sequence of those;
 *   3. pre-tokenized into words:            null | Whitespace (\w+|[^\w\s]+) |
 *      WhitespaceSplit | Sequence of those;
 *   4. each word maps to an id:             model "WordLevel" (vocab, unk_token);
 *   5. post-processed:                      null | TemplateProcessing ("single"
 *      template, e.g. "[BOS] $A" or "[BOS] $A [EOS]").
 * Any other model type, normalizer, pre-tokenizer or post-processor fails at
 * load with one line naming the file and the component ("tokenizer.json:
 * model type BPE is not supported yet"). The "padding" entry is ignored:
 * moedit never pads a prompt.
 *
 * Unicode: input must be valid UTF-8. Lowercase and the \w / \s classes are
 * exact for ASCII and follow Unicode for Latin, Greek, Cyrillic and Armenian
 * letters, fullwidth forms, and the punctuation, symbol and emoji blocks
 * (tokenizer.c lists them); characters of other scripts count as letters that
 * lowercase to themselves.
 *
 * Truncation contract: at most `limit` ids are produced, where limit is
 * max_ids, or the file's "truncation.max_length" when that is smaller. When
 * the text yields more, the text's tokens are cut (from the end, or from the
 * start when the file says "direction": "Left") so that, with the template's
 * special tokens (which are always kept), exactly `limit` ids remain: the
 * same ids as tokenizers' enable_truncation(max_length=limit). A limit that
 * cannot hold the template's special tokens (or is < 1) is an error. */
#ifndef MOEDIT_TEXT_TOKENIZER_H
#define MOEDIT_TEXT_TOKENIZER_H

#include <stdint.h>

typedef struct tokenizer tokenizer; /* opaque; immutable after load, so encode is thread-safe */

/* Loads path (a tokenizer.json). Fails naming the file and the unsupported
 * or malformed component. */
int tokenizer_load(tokenizer **out, const char *path);

/* Encodes text (UTF-8) into ids[0 .. *count), *count <= max_ids, truncating
 * as the contract above says. Fails on invalid UTF-8, on max_ids below the
 * template's special tokens, and on an unknown word when the model has no
 * unk_token. */
int tokenizer_encode(const tokenizer *tok, const char *text, int32_t *ids, int max_ids, int *count);

/* The number of ids text encodes to without any truncation (special tokens
 * included), so callers can tell that tokenizer_encode truncated. */
int tokenizer_count(const tokenizer *tok, const char *text, int *count);

/* Special tokens the template adds to one sequence (0 without a template). */
int tokenizer_num_special_tokens(const tokenizer *tok);

/* One more than the largest id the tokenizer can produce. */
int32_t tokenizer_vocab_size(const tokenizer *tok);

/* The path it was loaded from. */
const char *tokenizer_path(const tokenizer *tok);

void tokenizer_free(tokenizer *tok);

#endif
