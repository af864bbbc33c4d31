/* SentencePiece's precompiled normalization map; see precompiled_charsmap.h.
 *
 * Mirrors tokenizers' Precompiled normalizer (normalizers/precompiled.rs with
 * the spm_precompiled crate): for each grapheme cluster g of the text,
 *   if len(g) < 6 bytes and the trie finds a key that is a prefix of g:
 *       emit replacement(first key found)          (rest of g dropped)
 *   else for each character c of g:
 *       emit replacement(first key prefix of c) if any, else c
 * The trie is darts-clone's double array: unit u has label u & 0x800000ff,
 * leaf flag bit 8, child offset (u >> 10) << ((u & 0x200) >> 6), and a leaf
 * unit's value u & 0x7fffffff. Every array index and string offset read from
 * the file is bounds-checked: an index outside the array fails the call. */
#include "text/precompiled_charsmap.h"

#include "core/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* The library looks a whole cluster up only below this many bytes. */
#define CHARSMAP_WHOLE_CLUSTER_BYTES 6

struct precompiled_charsmap {
    char *path;
    uint32_t *units;  /* the double array */
    size_t unit_count;
    char *strings;    /* replacement strings, NUL-separated */
    size_t strings_n;
};

/* ---- base64 (RFC 4648 standard alphabet, canonical padding) ------------- */

static int base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes text into a malloc'ed *out; -1 (no message) when malformed. */
static int base64_decode(const char *text, unsigned char **out, size_t *out_n)
{
    size_t n = strlen(text);
    if (n % 4) return -1;
    size_t padding = 0;
    if (n && text[n - 1] == '=') padding++;
    if (n > 1 && text[n - 2] == '=') padding++;
    unsigned char *bytes = malloc(n / 4 * 3 + 1);
    if (!bytes) return -1;
    size_t length = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int last_group = i + 4 == n;
        for (int k = 0; k < 4; k++) {
            int is_padding = last_group && k >= 4 - (int)padding;
            v[k] = is_padding ? 0 : base64_value((unsigned char)text[i + k]);
            if (v[k] < 0) {
                free(bytes);
                return -1;
            }
        }
        uint32_t group = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        int keep = last_group ? 3 - (int)padding : 3;
        /* Canonical: the bits below the kept bytes must be zero. */
        if (keep < 3 && (group & ((1u << (8 * (3 - keep))) - 1))) {
            free(bytes);
            return -1;
        }
        for (int k = 0; k < keep; k++) bytes[length++] = (unsigned char)(group >> (16 - 8 * k));
    }
    *out = bytes;
    *out_n = length;
    return 0;
}

/* ---- loading ------------------------------------------------------------- */

static int is_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t step = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (step <= 0) return 0;
        i += (size_t)step;
    }
    return 1;
}

static uint32_t read_u32_le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int precompiled_charsmap_load(precompiled_charsmap **out, const char *base64, const char *path)
{
    *out = NULL;
    if (!path) path = "tokenizer.json";
    if (!base64) return error_set("%s: normalizer Precompiled has no \"precompiled_charsmap\" string", path);
    unsigned char *data = NULL;
    size_t n = 0;
    if (base64_decode(base64, &data, &n))
        return error_set("%s: normalizer Precompiled: \"precompiled_charsmap\" is not valid base64", path);
    if (n < 4) {
        free(data);
        return error_set("%s: normalizer Precompiled: \"precompiled_charsmap\" is %zu bytes, too short for its "
                         "trie size", path, n);
    }
    uint32_t trie_size = read_u32_le(data);
    size_t unit_count = trie_size / 4;
    if (unit_count == 0 || unit_count > (n - 4) / 4) {
        free(data);
        return error_set("%s: normalizer Precompiled: \"precompiled_charsmap\" trie size %u is out of range "
                         "(%zu bytes follow it)", path, trie_size, n - 4);
    }
    size_t strings_at = 4 + unit_count * 4, strings_n = n - strings_at;
    if (!is_utf8(data + strings_at, strings_n)) {
        free(data);
        return error_set("%s: normalizer Precompiled: \"precompiled_charsmap\" replacement strings are not UTF-8",
                         path);
    }
    precompiled_charsmap *map = calloc(1, sizeof(*map));
    if (map) {
        map->path = strdup(path);
        map->units = malloc(unit_count * sizeof(uint32_t));
        map->strings = malloc(strings_n + 1);
    }
    if (!map || !map->path || !map->units || !map->strings) {
        free(data);
        precompiled_charsmap_free(map);
        return error_set("out of memory loading %s's precompiled_charsmap", path);
    }
    for (size_t i = 0; i < unit_count; i++) map->units[i] = read_u32_le(data + 4 + 4 * i);
    map->unit_count = unit_count;
    memcpy(map->strings, data + strings_at, strings_n);
    map->strings[strings_n] = '\0';
    map->strings_n = strings_n;
    free(data);
    *out = map;
    return 0;
}

void precompiled_charsmap_free(precompiled_charsmap *map)
{
    if (!map) return;
    free(map->path);
    free(map->units);
    free(map->strings);
    free(map);
}

/* ---- lookup -------------------------------------------------------------- */

static size_t unit_offset(uint32_t u) { return (size_t)(u >> 10) << ((u & (1u << 9)) >> 6); }
static uint32_t unit_label(uint32_t u) { return u & (0x80000000u | 0xffu); }
static int unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }

static int trie_index_error(const precompiled_charsmap *map, size_t pos)
{
    return error_set("%s: normalizer Precompiled: trie index %zu is outside its %zu units", map->path, pos,
                     map->unit_count);
}

/* The replacement of the shortest key that prefixes key[0 .. n) (the walk
 * stops at a NUL byte, as darts does): 1 with repl and repl_n set, 0 if none,
 * -1 on a malformed trie. */
static int charsmap_first_prefix(const precompiled_charsmap *map, const unsigned char *key, size_t n,
                                 const char **repl, size_t *repl_n)
{
    size_t pos = unit_offset(map->units[0]);
    for (size_t i = 0; i < n && key[i]; i++) {
        pos ^= key[i];
        if (pos >= map->unit_count) return trie_index_error(map, pos);
        uint32_t unit = map->units[pos];
        if (unit_label(unit) != key[i]) return 0;
        pos ^= unit_offset(unit);
        if (!unit_has_leaf(unit)) continue;
        if (pos >= map->unit_count) return trie_index_error(map, pos);
        size_t at = map->units[pos] & 0x7fffffffu;
        /* The offset must start a character inside the strings (or be their end). */
        if (at > map->strings_n || (at < map->strings_n && ((unsigned char)map->strings[at] & 0xc0) == 0x80))
            return error_set("%s: normalizer Precompiled: trie value %zu is not a string offset (%zu bytes of "
                             "strings)", map->path, at, map->strings_n);
        *repl = map->strings + at;
        *repl_n = strlen(map->strings + at); /* a NUL ends the strings */
        return 1;
    }
    return 0;
}

/* ---- normalizing --------------------------------------------------------- */

typedef struct byte_buffer {
    char *data;
    size_t length, capacity;
} byte_buffer;

static int buffer_append(byte_buffer *b, const void *bytes, size_t n)
{
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 64;
        while (b->length + n + 1 > capacity) capacity *= 2;
        char *grown = realloc(b->data, capacity);
        if (!grown) return error_set("out of memory normalizing text");
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, bytes, n);
    b->length += n;
    b->data[b->length] = '\0';
    return 0;
}

/* Appends the normalization of one grapheme cluster s[0 .. n). */
static int normalize_cluster(const precompiled_charsmap *map, const unsigned char *s, size_t n, byte_buffer *b)
{
    const char *repl;
    size_t repl_n;
    if (n < CHARSMAP_WHOLE_CLUSTER_BYTES) {
        int found = charsmap_first_prefix(map, s, n, &repl, &repl_n);
        if (found < 0) return -1;
        if (found) return buffer_append(b, repl, repl_n);
    }
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        size_t char_n = (size_t)utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp); /* validated */
        int found = charsmap_first_prefix(map, s + i, char_n, &repl, &repl_n);
        if (found < 0) return -1;
        if (found ? buffer_append(b, repl, repl_n) : buffer_append(b, s + i, char_n)) return -1;
        i += char_n;
    }
    return 0;
}

int precompiled_charsmap_normalize(const precompiled_charsmap *map, const char *text, size_t n, char **out,
                                   size_t *out_n)
{
    *out = NULL;
    *out_n = 0;
    const unsigned char *s = (const unsigned char *)text;
    if (!is_utf8(s, n)) return error_set("text to normalize is not valid UTF-8");
    byte_buffer b = {0};
    if (buffer_append(&b, "", 0)) return -1;
    size_t cluster_start = 0, i = 0;
    utf8proc_int32_t previous = 0, state = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        size_t char_n = (size_t)utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (i > 0 && utf8proc_grapheme_break_stateful(previous, cp, &state)) {
            if (normalize_cluster(map, s + cluster_start, i - cluster_start, &b)) goto fail;
            cluster_start = i;
        }
        previous = cp;
        i += char_n;
    }
    if (n > 0 && normalize_cluster(map, s + cluster_start, n - cluster_start, &b)) goto fail;
    *out = b.data;
    *out_n = b.length;
    return 0;
fail:
    free(b.data);
    return -1;
}
