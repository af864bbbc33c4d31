/* Text to token ids, as transformers' `tokenizer(text)["input_ids"]` (special
 * tokens added), read from a checkpoint's own tokenizer folder: a Hugging Face
 * `tokenizer.json` (the format of the `tokenizers` library, which every
 * transformers 5 tokenizer runs on), or CLIP's vocab.json + merges.txt, which
 * transformers 5 turns into the same kind of pipeline in code.
 *
 * Encoding runs the library's pipeline, for one sequence:
 *   1. added tokens ("added_tokens", e.g. "<|begin_of_text|>") are cut out of
 *      the raw text first (leftmost, longest match; single_word, lstrip and
 *      rstrip honoured; "normalized" ones are searched for after step 2) and
 *      become their ids directly;
 *   2. each remaining span is normalized:   null | NFC | NFD | NFKC | NFKD |
 *      Lowercase | Strip | Replace (String or Regex) | Prepend | Precompiled |
 *      Sequence of those;
 *   3. pre-tokenized into pieces:           null | Split | Whitespace |
 *      WhitespaceSplit | ByteLevel | Metaspace | Sequence of those;
 *   4. each piece maps to ids:              model WordLevel | BPE | Unigram;
 *   5. post-processed:                      null | TemplateProcessing
 *      ("single" template) | RobertaProcessing | ByteLevel | Sequence.
 * Anything else fails at load with one line naming the file and the
 * component ("tokenizer.json: pre_tokenizer Digits is not supported"). The
 * "padding" entry is ignored: moedit never pads inside the tokenizer.
 *
 * Unicode: input must be valid UTF-8. Normalization forms and case mapping
 * come from utf8proc, character classes and every regular expression from
 * PCRE2 (with Oniguruma's meaning of \s and \w, as tokenizers runs them).
 *
 * Truncation contract (tokenizer_encode): at most `limit` ids are produced,
 * where limit is max_ids, or the file's "truncation.max_length" when that is
 * smaller. When the text yields more, the text's tokens are cut (from the
 * end, or from the start when the file says "direction": "Left") so that,
 * with the template's special tokens (which are always kept), exactly `limit`
 * ids remain: the same ids as transformers' tokenizer(text, truncation=True,
 * max_length=limit). A limit that cannot hold the template's special tokens
 * (or is < 1) is an error. */
#ifndef MOEDIT_TEXT_TOKENIZER_H
#define MOEDIT_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tokenizer tokenizer; /* opaque; immutable after load, so encode is thread-safe */

/* Loads path (a tokenizer.json). Fails naming the file and the unsupported
 * or malformed component. No pad token or model_max_length (those live in the
 * folder's tokenizer_config.json: use tokenizer_load_dir). */
int tokenizer_load(tokenizer **out, const char *path);

/* Loads a tokenizer folder: dir/tokenizer.json, else CLIP's dir/vocab.json +
 * dir/merges.txt; plus dir/tokenizer_config.json and special_tokens_map.json
 * when present (pad token, model_max_length, CLIP's added tokens). */
int tokenizer_load_dir(tokenizer **out, const char *dir);

/* Encodes text (UTF-8) into ids[0 .. *count), *count <= max_ids, truncating
 * as the contract above says. Fails on invalid UTF-8, on max_ids below the
 * template's special tokens, and on an unknown word when a WordLevel model has
 * no unk_token. */
int tokenizer_encode(const tokenizer *tok, const char *text, int32_t *ids, int max_ids, int *count);

/* Encodes text[0 .. length) (UTF-8; NUL bytes allowed) without any truncation
 * (transformers' tokenizer(text)); *ids is malloc'ed, the caller frees it. */
int tokenizer_encode_all(const tokenizer *tok, const char *text, size_t length, int32_t **ids, int *count);

/* The number of ids text encodes to without any truncation (special tokens
 * included), so callers can tell that tokenizer_encode truncated. */
int tokenizer_count(const tokenizer *tok, const char *text, int *count);

/* The words of text a WordLevel vocabulary lacks (read as its unk token):
 * *count of them, and in list[size] as "\"w1\", \"w2\"" (cut where it
 * is full; list may be NULL). BPE and Unigram models know every input: 0. */
int tokenizer_unknown_words(const tokenizer *tok, const char *text, char *list, size_t size, int *count);

/* Special tokens the template adds to one sequence (0 without a template). */
int tokenizer_num_special_tokens(const tokenizer *tok);

/* One more than the largest id the tokenizer can produce. */
int32_t tokenizer_vocab_size(const tokenizer *tok);

/* The id of a token (added tokens first, then the model's vocabulary); -1 if
 * absent. */
int32_t tokenizer_token_id(const tokenizer *tok, const char *token);

/* The token of an id (as tokenizers' id_to_token: byte-level or "▁" forms
 * included); NULL if none. Valid while tok lives. */
const char *tokenizer_token(const tokenizer *tok, int32_t id);

/* The pad token's id from tokenizer_config.json / special_tokens_map.json;
 * -1 when the folder names none (or the tokenizer came from tokenizer_load). */
int32_t tokenizer_pad_id(const tokenizer *tok);

/* The eos token's id, likewise; -1 when none. */
int32_t tokenizer_eos_id(const tokenizer *tok);

/* 1 when tokenizer_config.json says padding_side "left". */
int tokenizer_pads_left(const tokenizer *tok);

/* tokenizer_config.json's model_max_length; 0 when absent or "very large". */
int tokenizer_model_max_length(const tokenizer *tok);

/* The path it was loaded from (tokenizer.json, or CLIP's vocab.json). */
const char *tokenizer_path(const tokenizer *tok);

void tokenizer_free(tokenizer *tok);

#endif
