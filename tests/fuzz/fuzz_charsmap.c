/* Fuzz target: SentencePiece's precompiled normalization map
 * (text/precompiled_charsmap.c): the darts-clone trie and replacement strings
 * that T5's tokenizer.json carries as base64.
 *
 * Input: the map's raw bytes [FUZZ_SEPARATOR text]. The harness base64-encodes
 * the bytes (so mutations reach the trie, not the base64 checks; those are
 * fuzzed through fuzz_tokenizer's Precompiled normalizers), loads the map and
 * normalizes a few fixed strings (ligatures, fullwidth, combining sequences,
 * Hangul jamo, emoji clusters) and the input's text. No input may crash,
 * read out of bounds or leak. */
#include "tests/fuzz/fuzz_files.h"

#include "core/error.h"
#include "text/precompiled_charsmap.h"

static const char *const fixed_texts[] = {
    "",
    "plain ascii",
    "\xef\xac\x81 \xef\xbc\xa1\xef\xbc\xa2 \xe2\x91\xa0 x\xc2\xb2",
    "a\xcc\x80\xcc\xa3 e\xcc\x81\xcc\x81 A\xcc\x82",
    "\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8 \xed\x95\x9c",
    "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 \xf0\x9f\x87\xaf\xf0\x9f\x87\xb5 \xe2\x80\x8b\xe3\x80\x80",
};

static char *base64_encode(const uint8_t *data, size_t size)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((size + 2) / 3 * 4 + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < size; i += 3) {
        uint32_t group = (uint32_t)data[i] << 16;
        if (i + 1 < size) group |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < size) group |= data[i + 2];
        out[o++] = alphabet[group >> 18 & 63];
        out[o++] = alphabet[group >> 12 & 63];
        out[o++] = i + 1 < size ? alphabet[group >> 6 & 63] : '=';
        out[o++] = i + 2 < size ? alphabet[group & 63] : '=';
    }
    out[o] = 0;
    return out;
}

static void normalize(const precompiled_charsmap *map, const char *text, size_t length)
{
    char *out = NULL;
    size_t out_n;
    (void)precompiled_charsmap_normalize(map, text, length, &out, &out_n);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part;
    size_t length = fuzz_next_part(&data, &size, &part);
    char *base64 = base64_encode(part, length);
    if (!base64) return 0;
    precompiled_charsmap *map = NULL;
    if (precompiled_charsmap_load(&map, base64, "fuzz/tokenizer.json") == 0) {
        for (size_t i = 0; i < sizeof fixed_texts / sizeof fixed_texts[0]; i++)
            normalize(map, fixed_texts[i], strlen(fixed_texts[i]));
        normalize(map, (const char *)data, size);
        precompiled_charsmap_free(map);
    }
    free(base64);
    error_clear();
    return 0;
}
