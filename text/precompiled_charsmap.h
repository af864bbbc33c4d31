/* SentencePiece's precompiled normalization map, applied the way the
 * `tokenizers` library's Precompiled normalizer applies it (T5's
 * tokenizer.json: normalizer Precompiled{precompiled_charsmap: base64}).
 *
 * The map is base64 of
 *   [u32 LE trie_size][trie_size / 4 u32 LE units: a darts-clone double-array
 *   trie over UTF-8 bytes][normalized strings, each ended by NUL]
 * where a key's trie value is the byte offset of its replacement string.
 *
 * Normalizing walks the text's extended grapheme clusters (UAX #29, through
 * utf8proc). For a cluster under 6 bytes whose bytes begin with a key, the
 * whole cluster becomes the replacement of the SHORTEST such key (the first
 * prefix the trie meets; whatever follows that key in the cluster is dropped:
 * "a" U+0323 U+0300 -> U+1EA1). Otherwise each character of the cluster is
 * looked up alone and replaced when it is a key, else kept. */
#ifndef MOEDIT_TEXT_PRECOMPILED_CHARSMAP_H
#define MOEDIT_TEXT_PRECOMPILED_CHARSMAP_H

#include <stddef.h>

typedef struct precompiled_charsmap precompiled_charsmap; /* immutable after load */

/* Decodes and checks `base64` (the "precompiled_charsmap" string); `path`
 * names the file in error messages. Fails on bad base64, a trie size beyond
 * the data, an empty trie, or replacement strings that are not UTF-8. */
int precompiled_charsmap_load(precompiled_charsmap **out, const char *base64, const char *path);

/* s[0 .. n) (UTF-8) normalized into a malloc'ed *out of *out_n bytes (also
 * NUL-terminated; the caller frees it). Fails on invalid UTF-8 input and on a
 * trie value that points outside the replacement strings. */
int precompiled_charsmap_normalize(const precompiled_charsmap *map, const char *s, size_t n, char **out,
                                   size_t *out_n);

void precompiled_charsmap_free(precompiled_charsmap *map);

#endif
