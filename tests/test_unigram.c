/* T5's tokenizer parts reproduce the `tokenizers` library:
 *  - the Precompiled normalizer (text/precompiled_charsmap.c) gives the
 *    library's normalize_str on every case of
 *    tests/fixtures/tokenizers/t5/charsmap_cases.json (tools/make_charsmap_cases.py);
 *  - the Unigram model (text/tokenizer_unigram.c) gives model.tokenize's ids on
 *    the tiny models of t5/unigram_cases.json (ties, fused unknowns, a repeated
 *    piece, byte fallback, no unk_id);
 *  - both, inside T5's simple pipeline (normalize, split on whitespace, "▁"
 *    before each word and split at each "▁", the model, then </s>), give
 *    transformers' ids for every string of t5/expected.jsonl without "<";
 *    strings with "<" may hold special tokens, which text/tokenizer.c's
 *    added-token splitter cuts out first: a stand-in splitter here (leftmost,
 *    longest match of "added_tokens") checks those too;
 *  - malformed charsmaps and vocabs fail with one line naming the file and
 *    key, and corrupt tries never read out of bounds (the ASan build runs this). */
#include "core/error.h"
#include "core/text_file.h"
#include "text/precompiled_charsmap.h"
#include "text/tokenizer_unigram.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T5_DIR MOEDIT_FIXTURES "/tokenizers/t5"
#define T5_EOS_ID 1

static cJSON *read_json(const char *path)
{
    char *text = NULL;
    if (text_file_read(path, (size_t)64 << 20, "fixture", &text)) {
        fprintf(stderr, "%s\n", error_message());
        return NULL;
    }
    cJSON *json = cJSON_Parse(text);
    free(text);
    return json;
}

/* cJSON ends strings at "\u0000", and some test strings hold NUL: the "text"
 * field of one expected.jsonl line decoded here, into a malloc'ed *out of *n
 * bytes (0 when the line has no such field). */
static size_t encode_utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) return out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000)
        return out[0] = (char)(0xe0 | cp >> 12), out[1] = (char)(0x80 | (cp >> 6 & 63)),
               out[2] = (char)(0x80 | (cp & 63)), 3;
    return out[0] = (char)(0xf0 | cp >> 18), out[1] = (char)(0x80 | (cp >> 12 & 63)),
           out[2] = (char)(0x80 | (cp >> 6 & 63)), out[3] = (char)(0x80 | (cp & 63)), 4;
}

static int text_field(const char *line, char **out, size_t *n)
{
    const char *p = strstr(line, "\"text\":\"");
    if (!p) return 0;
    p += strlen("\"text\":\"");
    char *text = malloc(strlen(p) + 1);
    size_t length = 0;
    while (*p && *p != '"') {
        if (*p != '\\') {
            text[length++] = *p++;
            continue;
        }
        char e = p[1];
        p += 2;
        if (e != 'u') {
            text[length++] = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
            continue;
        }
        uint32_t cp = (uint32_t)strtoul((char[5]){p[0], p[1], p[2], p[3], 0}, NULL, 16);
        p += 4;
        if (cp >= 0xd800 && cp < 0xdc00 && p[0] == '\\' && p[1] == 'u') {
            uint32_t low = (uint32_t)strtoul((char[5]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            p += 6;
        }
        length += encode_utf8(cp, text + length);
    }
    *out = text;
    *n = length;
    return 1;
}

/* ---- T5's pipeline without added tokens ---------------------------------- */

/* Rust's char::is_whitespace (Unicode White_Space), for the code point at s. */
static size_t whitespace_length(const unsigned char *s, size_t n)
{
    static const char *const spaces[] = {"\t", "\n", "\v", "\f", "\r", " ", "\xc2\x85", "\xc2\xa0",
                                         "\xe1\x9a\x80", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\xaf",
                                         "\xe2\x81\x9f", "\xe3\x80\x80"};
    for (size_t i = 0; i < sizeof(spaces) / sizeof(spaces[0]); i++) {
        size_t length = strlen(spaces[i]);
        if (length <= n && memcmp(s, spaces[i], length) == 0) return length;
    }
    if (n >= 3 && s[0] == 0xe2 && s[1] == 0x80 && s[2] >= 0x80 && s[2] <= 0x8a) return 3; /* U+2000-200A */
    return 0;
}

static size_t utf8_length(unsigned char lead)
{
    return lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

#define METASPACE "\xe2\x96\x81" /* ▁ */

/* One word (no whitespace): Metaspace with prepend_scheme "always" and split:
 * "▁" in front unless the word starts with one, then a piece at each "▁". */
static int encode_word(const unigram_model *m, const char *word, size_t n, int32_t **ids, int *count, int *cap)
{
    char *piece = malloc(n + 4);
    size_t length = 0;
    if (!(n >= 3 && memcmp(word, METASPACE, 3) == 0)) {
        memcpy(piece, METASPACE, 3);
        length = 3;
    }
    memcpy(piece + length, word, n);
    length += n;
    size_t start = 0;
    int status = 0;
    for (size_t i = 3; i <= length && status == 0; i++) {
        if (i == length || (i + 3 <= length && memcmp(piece + i, METASPACE, 3) == 0)) {
            status = unigram_encode(m, piece + start, i - start, ids, count, cap);
            start = i;
        }
    }
    free(piece);
    return status;
}

static int append_id(int32_t **ids, int *count, int *cap, int32_t id)
{
    if (*count == *cap) {
        int32_t *grown = realloc(*ids, (size_t)(*cap * 2 + 16) * sizeof(int32_t));
        if (!grown) return -1;
        *ids = grown;
        *cap = *cap * 2 + 16;
    }
    (*ids)[(*count)++] = id;
    return 0;
}

/* Text between added tokens: normalize, WhitespaceSplit, Metaspace, Unigram. */
static int encode_segment(const precompiled_charsmap *map, const unigram_model *m, const char *text, size_t text_n,
                          int32_t **ids, int *count, int *cap)
{
    char *normalized;
    size_t n;
    if (precompiled_charsmap_normalize(map, text, text_n, &normalized, &n)) return -1;
    const unsigned char *s = (const unsigned char *)normalized;
    size_t i = 0;
    int status = 0;
    while (i < n && status == 0) {
        size_t space = whitespace_length(s + i, n - i);
        if (space) {
            i += space;
            continue;
        }
        size_t end = i;
        while (end < n && !whitespace_length(s + end, n - end)) end += utf8_length(s[end]);
        status = encode_word(m, normalized + i, end - i, ids, count, cap);
        i = end;
    }
    free(normalized);
    return status;
}

/* The longest of tokenizer.json's "added_tokens" at text[0 .. n): its length
 * and id, 0 if none. */
static size_t added_token_at(const cJSON *added, const char *text, size_t n, int32_t *id)
{
    size_t best = 0;
    const cJSON *token;
    cJSON_ArrayForEach(token, added) {
        const char *content = cJSON_GetObjectItem(token, "content")->valuestring;
        size_t length = strlen(content);
        if (length > best && length <= n && memcmp(text, content, length) == 0) {
            best = length;
            *id = cJSON_GetObjectItem(token, "id")->valueint;
        }
    }
    return best;
}

/* T5's whole encode, with a stand-in for the added-token splitter (leftmost,
 * longest match of the raw text; T5's are special, normalized false, no
 * strip) when `added` is not NULL, then "$A </s>". */
static int t5_encode(const precompiled_charsmap *map, const unigram_model *m, const cJSON *added, const char *text,
                     size_t n, int32_t **ids, int *count, int *cap)
{
    *count = 0;
    size_t segment = 0, i = 0;
    while (added && i < n) {
        int32_t id = -1;
        size_t length = added_token_at(added, text + i, n - i, &id);
        if (!length) {
            i++;
            continue;
        }
        if (encode_segment(map, m, text + segment, i - segment, ids, count, cap) || append_id(ids, count, cap, id))
            return -1;
        i += length;
        segment = i;
    }
    if (encode_segment(map, m, text + segment, n - segment, ids, count, cap)) return -1;
    return append_id(ids, count, cap, T5_EOS_ID);
}

/* ---- fixtures ------------------------------------------------------------ */

static const char *t5_charsmap(const cJSON *tokenizer_json)
{
    const cJSON *normalizer = cJSON_GetObjectItem(tokenizer_json, "normalizer");
    const cJSON *list = cJSON_GetObjectItem(normalizer, "normalizers"), *step;
    cJSON_ArrayForEach(step, list) {
        const cJSON *charsmap = cJSON_GetObjectItem(step, "precompiled_charsmap");
        if (cJSON_IsString(charsmap)) return charsmap->valuestring;
    }
    return NULL;
}

static int ids_equal(const int32_t *ids, int count, const cJSON *expected)
{
    if (cJSON_GetArraySize(expected) != count) return 0;
    for (int i = 0; i < count; i++)
        if (cJSON_GetArrayItem(expected, i)->valueint != ids[i]) return 0;
    return 1;
}

static void test_charsmap_cases(const precompiled_charsmap *map)
{
    cJSON *json = read_json(T5_DIR "/charsmap_cases.json");
    CHECK(json != NULL);
    if (!json) return;
    int matched = 0, total = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(json, "cases")) {
        const char *input = cJSON_GetArrayItem(c, 0)->valuestring, *expected = cJSON_GetArrayItem(c, 1)->valuestring;
        char *out = NULL;
        size_t out_n = 0;
        int status = precompiled_charsmap_normalize(map, input, strlen(input), &out, &out_n);
        int same = status == 0 && out_n == strlen(expected) && memcmp(out, expected, out_n) == 0;
        CHECK_MSG(same, "normalize(\"%s\") = \"%s\", the library gives \"%s\"", input, out ? out : "(error)",
                  expected);
        matched += same;
        total++;
        free(out);
    }
    printf("charsmap: %d of %d cases equal the library's normalize_str\n", matched, total);
    CHECK(total > 3000);
    cJSON_Delete(json);

    /* A NUL byte is never a key: kept, and it ends any cluster. */
    char *out = NULL;
    size_t out_n = 0;
    CHECK(precompiled_charsmap_normalize(map, "\0nul a\0\xcc\x81" "b", 11, &out, &out_n) == 0);
    CHECK(out_n == 11 && memcmp(out, "\0nul a\0\xcc\x81" "b", 11) == 0);
    free(out);
    CHECK(precompiled_charsmap_normalize(map, "\xff", 1, &out, &out_n) == -1);
    CHECK(strstr(error_message(), "UTF-8") != NULL);
    CHECK(precompiled_charsmap_normalize(map, "", 0, &out, &out_n) == 0 && out_n == 0 && out && out[0] == 0);
    free(out);
}

static void test_unigram_cases(void)
{
    cJSON *json = read_json(T5_DIR "/unigram_cases.json");
    CHECK(json != NULL);
    if (!json) return;
    int matched = 0, total = 0;
    const cJSON *spec;
    cJSON_ArrayForEach(spec, cJSON_GetObjectItem(json, "models")) {
        cJSON *model = cJSON_CreateObject();
        cJSON_AddStringToObject(model, "type", "Unigram");
        cJSON_AddItemToObject(model, "vocab", cJSON_Duplicate(cJSON_GetObjectItem(spec, "vocab"), 1));
        cJSON_AddItemToObject(model, "unk_id", cJSON_Duplicate(cJSON_GetObjectItem(spec, "unk_id"), 1));
        cJSON_AddItemToObject(model, "byte_fallback", cJSON_Duplicate(cJSON_GetObjectItem(spec, "byte_fallback"), 1));
        unigram_model *m = NULL;
        CHECK_MSG(unigram_load(&m, model, "unigram_cases.json") == 0, "%s", error_message());
        cJSON_Delete(model);
        if (!m) continue;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(spec, "cases")) {
            const char *piece = cJSON_GetArrayItem(c, 0)->valuestring;
            int32_t *ids = NULL;
            int count = 0, cap = 0;
            int same = unigram_encode(m, piece, strlen(piece), &ids, &count, &cap) == 0 &&
                       ids_equal(ids, count, cJSON_GetArrayItem(c, 1));
            CHECK_MSG(same, "model %d: unigram_encode(\"%s\") differs from the library", total, piece);
            matched += same;
            free(ids);
        }
        unigram_free(m);
        total++;
    }
    printf("unigram: %d cases of %d tiny models equal the library's tokenize\n", matched, total);
    cJSON_Delete(json);

    /* Without unk_id an unknown character is an error, as in the library. */
    cJSON *model = cJSON_Parse("{\"type\":\"Unigram\",\"unk_id\":null,\"vocab\":[[\"a\",-1.0]]}");
    unigram_model *m = NULL;
    CHECK(unigram_load(&m, model, "x.json") == 0);
    int32_t *ids = NULL;
    int count = 0, cap = 0;
    CHECK(unigram_encode(m, "aa", 2, &ids, &count, &cap) == 0 && count == 2 && ids[0] == 0 && ids[1] == 0);
    CHECK(unigram_encode(m, "q", 1, &ids, &count, &cap) == -1);
    CHECK(strstr(error_message(), "x.json") && strstr(error_message(), "unk_id"));
    /* Invalid UTF-8 pieces encode byte by byte, without reading past n. */
    CHECK(unigram_encode(m, "a\xe2\x96", 3, &ids, &count, &cap) == -1);
    free(ids);
    unigram_free(m);
    cJSON_Delete(model);
}

/* Every string of t5/expected.jsonl; those with '<' (which may hold added
 * tokens) go through the stand-in splitter and are counted apart. */
static void test_t5_expected(const precompiled_charsmap *map, const unigram_model *m, const cJSON *added)
{
    char *text = NULL;
    CHECK(text_file_read(T5_DIR "/expected.jsonl", (size_t)64 << 20, "fixture", &text) == 0);
    if (!text) return;
    int matched[2] = {0, 0}, total[2] = {0, 0}, shown = 0;
    int32_t *ids = NULL;
    int count = 0, cap = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *c = cJSON_Parse(line);
        char *raw = NULL;
        size_t raw_n = 0;
        CHECK(c != NULL && text_field(line, &raw, &raw_n));
        if (!c || !raw) {
            cJSON_Delete(c);
            free(raw);
            continue;
        }
        const char *input = cJSON_GetObjectItem(c, "text")->valuestring;
        CHECK(raw_n >= strlen(input) && memcmp(raw, input, strlen(input)) == 0);
        int with_added = memchr(raw, '<', raw_n) != NULL;
        int status = t5_encode(map, m, with_added ? added : NULL, raw, raw_n, &ids, &count, &cap);
        int same = status == 0 && ids_equal(ids, count, cJSON_GetObjectItem(c, "ids"));
        if (!same && shown++ < 10) {
            fprintf(stderr, "t5 mismatch on \"%s\" (%s): got", input, status ? error_message() : "ok");
            for (int i = 0; i < count && i < 40; i++) fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n");
        }
        matched[with_added] += same;
        total[with_added]++;
        free(raw);
        cJSON_Delete(c);
    }
    printf("t5: %d of %d strings without '<' give transformers' ids\n", matched[0], total[0]);
    printf("t5: %d of %d strings with '<' too, through the test's stand-in added-token splitter\n", matched[1],
           total[1]);
    CHECK(matched[0] == total[0] && total[0] > 5000);
    CHECK(matched[1] == total[1] && total[1] > 500);
    free(ids);
    free(text);
}

/* ---- malformed input ----------------------------------------------------- */

static void expect_charsmap_error(const char *base64, const char *fragment)
{
    precompiled_charsmap *map = NULL;
    CHECK_MSG(precompiled_charsmap_load(&map, base64, "bad/tokenizer.json") == -1, "accepted \"%s\"", base64);
    CHECK_MSG(strstr(error_message(), "bad/tokenizer.json") && strstr(error_message(), "precompiled_charsmap") &&
                  strstr(error_message(), fragment),
              "\"%s\" -> \"%s\"", base64, error_message());
    CHECK(map == NULL);
    precompiled_charsmap_free(map);
}

static char *base64_of(const unsigned char *data, size_t n)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(n / 3 * 4 + 8), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0) |
                     (i + 2 < n ? data[i + 2] : 0);
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? alphabet[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void test_malformed_charsmaps(void)
{
    expect_charsmap_error("not base64!", "base64");
    expect_charsmap_error("QUJD=", "base64");        /* length not a multiple of 4 */
    expect_charsmap_error("QQ=A", "base64");          /* padding in the middle */
    expect_charsmap_error("QR==", "base64");          /* non-zero trailing bits */
    expect_charsmap_error("", "too short");
    expect_charsmap_error("QUJD", "too short");       /* 3 bytes */
    expect_charsmap_error("AAAAAA==", "out of range"); /* trie size 0 */
    expect_charsmap_error("QAAAAAAAAAA=", "out of range"); /* 64-byte trie, 4 bytes follow */
    expect_charsmap_error("/////wAAAAA=", "out of range"); /* 4 GiB trie */
    unsigned char bad_strings[] = {4, 0, 0, 0, 0, 0, 0, 0, 'a', 0xff, 0};
    char *b64 = base64_of(bad_strings, sizeof bad_strings);
    expect_charsmap_error(b64, "UTF-8");
    free(b64);
    precompiled_charsmap *map = NULL;
    CHECK_MSG(precompiled_charsmap_load(&map, NULL, "bad/tokenizer.json") == -1 &&
                  strstr(error_message(), "bad/tokenizer.json"), "%s", error_message());

    /* Random tries and string offsets: every call either normalizes or fails
     * cleanly; ASan proves nothing is read out of bounds. */
    static const char *const texts[] = {"abc", "ﬁ x² ＡＢ", "a\xcc\x80\xcc\xa3", "한국어 👨\xe2\x80\x8d👩", "\x01\x7f\xc2\x85",
                                        "\xe2\x96\x81hello world"};
    int normalized = 0, failed = 0;
    for (int trial = 0; trial < 3000; trial++) {
        size_t units = 1 + rng_next() % 300, strings_n = rng_next() % 12;
        size_t n = 4 + units * 4 + strings_n;
        unsigned char *data = malloc(n);
        uint32_t size = (uint32_t)(units * 4 + (trial % 7 == 0 ? rng_next() % 4 : 0));
        memcpy(data, &size, 4);
        for (size_t i = 0; i < units; i++) {
            uint32_t u = rng_next();
            if (trial % 2) u &= 0x3ffff | (u & 0x80000000u); /* small offsets: walks go deeper */
            memcpy(data + 4 + 4 * i, &u, 4);
        }
        for (size_t i = 0; i < strings_n; i++) data[4 + units * 4 + i] = (unsigned char)("ab\0c\xc3\xa9\0xyz\0\0\0"[i]);
        b64 = base64_of(data, n);
        if (precompiled_charsmap_load(&map, b64, "fuzz.json") == 0) {
            for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
                char *out = NULL;
                size_t out_n = 0;
                if (precompiled_charsmap_normalize(map, texts[t], strlen(texts[t]), &out, &out_n) == 0) {
                    normalized++;
                    CHECK(out != NULL && out[out_n] == '\0');
                } else {
                    failed++;
                    CHECK(out == NULL && strstr(error_message(), "fuzz.json"));
                }
                free(out);
            }
            precompiled_charsmap_free(map);
        }
        free(b64);
        free(data);
    }
    printf("corrupt tries: %d texts normalized, %d refused\n", normalized, failed);
    CHECK(normalized > 0 && failed > 0);
}

/* T5's real map with random base64 digits of its trie and strings replaced:
 * deep walks through a mostly valid trie that meet corrupt units. */
static void test_mutated_charsmap(const char *base64)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char *const texts[] = {"ﬁ x² ＡＢ ½ ｶﾞ", "a\xcc\x80\xcc\xa3 e\xcc\x81 A\xcc\x82\xcc\x80",
                                        "한국어 👨\xe2\x80\x8d👩 🇯🇵", "\x01\x7f\xc2\x85 \xe2\x80\x8b", "Ⅻ ① ㎏ ℃ ™ 𝐁"};
    size_t n = strlen(base64);
    char *copy = malloc(n + 1);
    int normalized = 0, failed = 0, loaded = 0;
    for (int trial = 0; trial < 60; trial++) {
        memcpy(copy, base64, n + 1);
        /* The trie is the first ~75% of T5's map; the strings stay intact. */
        for (int k = 0; k < 300; k++) copy[8 + rng_next() % (n * 7 / 10)] = alphabet[rng_next() % 64];
        precompiled_charsmap *map = NULL;
        if (precompiled_charsmap_load(&map, copy, "mutated.json")) continue; /* strings no longer UTF-8 */
        loaded++;
        for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
            char *out = NULL;
            size_t out_n = 0;
            if (precompiled_charsmap_normalize(map, texts[t], strlen(texts[t]), &out, &out_n) == 0)
                normalized++;
            else
                failed++;
            free(out);
        }
        precompiled_charsmap_free(map);
    }
    free(copy);
    printf("mutated T5 maps: %d loaded, %d texts normalized, %d refused\n", loaded, normalized, failed);
    CHECK(loaded > 30 && normalized > 0);
}

static void expect_unigram_error(const char *model_json, const char *fragment)
{
    cJSON *model = cJSON_Parse(model_json);
    CHECK_MSG(model != NULL, "test JSON %s", model_json);
    unigram_model *m = NULL;
    CHECK_MSG(unigram_load(&m, model, "bad/tokenizer.json") == -1, "accepted %s", model_json);
    CHECK_MSG(strstr(error_message(), "bad/tokenizer.json") && strstr(error_message(), fragment), "%s -> \"%s\"",
              model_json, error_message());
    CHECK(m == NULL);
    unigram_free(m);
    cJSON_Delete(model);
}

static void test_malformed_vocabs(void)
{
    expect_unigram_error("[]", "\"model\"");
    expect_unigram_error("{\"type\":\"BPE\",\"vocab\":[]}", "model.type");
    expect_unigram_error("{\"type\":\"Unigram\"}", "model.vocab");
    expect_unigram_error("{\"vocab\":{\"a\":1}}", "model.vocab");
    expect_unigram_error("{\"vocab\":[[\"a\",-1],\"b\"]}", "model.vocab[1]");
    expect_unigram_error("{\"vocab\":[[\"a\",-1],[\"b\"]]}", "model.vocab[1]");
    expect_unigram_error("{\"vocab\":[[\"a\",-1],[\"b\",-1,3]]}", "model.vocab[1]");
    expect_unigram_error("{\"vocab\":[[1,-1]]}", "model.vocab[0]");
    expect_unigram_error("{\"vocab\":[[\"a\",\"-1\"]]}", "model.vocab[0]");
    expect_unigram_error("{\"vocab\":[[\"a\",null]]}", "model.vocab[0]");
    expect_unigram_error("{\"vocab\":[[\"a\",-1]],\"unk_id\":1}", "model.unk_id");
    expect_unigram_error("{\"vocab\":[[\"a\",-1]],\"unk_id\":-1}", "model.unk_id");
    expect_unigram_error("{\"vocab\":[[\"a\",-1]],\"unk_id\":0.5}", "model.unk_id");
    expect_unigram_error("{\"vocab\":[[\"a\",-1]],\"unk_id\":\"0\"}", "model.unk_id");
    expect_unigram_error("{\"vocab\":[],\"unk_id\":0}", "empty");
    expect_unigram_error("{\"vocab\":[[\"a\",-1]],\"byte_fallback\":\"yes\"}", "model.byte_fallback");
    /* An empty vocab without unk_id loads (as in the library) and fails on any character. */
    cJSON *model = cJSON_Parse("{\"vocab\":[]}");
    unigram_model *m = NULL;
    CHECK(unigram_load(&m, model, "e.json") == 0);
    int32_t *ids = NULL;
    int count = 0, cap = 0;
    CHECK(m && unigram_encode(m, "a", 1, &ids, &count, &cap) == -1);
    CHECK(m && unigram_encode(m, "", 0, &ids, &count, &cap) == 0 && count == 0);
    CHECK(m && unigram_token_id(m, "a", 1) == -1 && unigram_vocab_size(m) == 0);
    free(ids);
    unigram_free(m);
    cJSON_Delete(model);
}

int main(void)
{
    cJSON *tokenizer_json = read_json(T5_DIR "/tokenizer.json");
    CHECK(tokenizer_json != NULL);
    if (!tokenizer_json) return test_finish("test_unigram");
    precompiled_charsmap *map = NULL;
    unigram_model *m = NULL;
    CHECK_MSG(precompiled_charsmap_load(&map, t5_charsmap(tokenizer_json), T5_DIR "/tokenizer.json") == 0, "%s",
              error_message());
    CHECK_MSG(unigram_load(&m, cJSON_GetObjectItem(tokenizer_json, "model"), T5_DIR "/tokenizer.json") == 0, "%s",
              error_message());
    if (map && m) {
        CHECK(unigram_vocab_size(m) == 3100);
        CHECK(unigram_token_id(m, "</s>", 4) == 1 && unigram_token_id(m, "<unk>", 5) == 2);
        CHECK(unigram_token_id(m, "<extra_id_0>", 12) == 3099 && unigram_token_id(m, "no such piece", 13) == -1);
        test_charsmap_cases(map);
        test_t5_expected(map, m, cJSON_GetObjectItem(tokenizer_json, "added_tokens"));
        test_mutated_charsmap(t5_charsmap(tokenizer_json));
    }
    precompiled_charsmap_free(map);
    unigram_free(m);
    cJSON_Delete(tokenizer_json);
    test_unigram_cases();
    test_malformed_charsmaps();
    test_malformed_vocabs();
    return test_finish("test_unigram");
}
