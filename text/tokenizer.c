/* tokenizer.json loading and encoding; see tokenizer.h.
 *
 * Mirrors tokenizers' Tokenizer::encode(text, add_special_tokens=True) for
 * one sequence: AddedVocabulary::extract_and_normalize (added tokens cut out
 * of the raw text, the rest normalized), pre-tokenization, the model, then
 * truncation and the post-processor. Strings are UTF-8 bytes; spans are
 * (offset, length) into a buffer. */
#include "text/tokenizer.h"

#include "core/error.h"
#include "core/text_file.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKENIZER_MAX_FILE_BYTES ((size_t)1 << 30)

typedef enum { NORMALIZE_LOWERCASE, NORMALIZE_STRIP, NORMALIZE_REPLACE, NORMALIZE_PREPEND } normalizer_kind;

typedef struct normalizer_step {
    normalizer_kind kind;
    int strip_left, strip_right; /* Strip */
    char *pattern, *content;     /* Replace: pattern -> content; Prepend: content */
} normalizer_step;

typedef enum { PRE_TOKENIZE_WHITESPACE, PRE_TOKENIZE_WHITESPACE_SPLIT } pre_tokenizer_kind;

typedef struct added_token {
    char *content;
    size_t length;
    int32_t id;
    int single_word, lstrip, rstrip, normalized;
} added_token;

/* One piece of the "single" template: the sequence ($A) or special ids. */
typedef struct template_piece {
    int is_sequence;
    int32_t *ids;
    int count;
} template_piece;

/* Open-addressing hash map from word to id. */
typedef struct vocab_table {
    char **keys;
    size_t *key_lengths;
    int32_t *values;
    size_t capacity; /* a power of two, at least twice the entries */
} vocab_table;

struct tokenizer {
    char *path;
    vocab_table vocab;
    int32_t unk_id; /* -1: no unk_token */
    int32_t max_id;
    normalizer_step *normalizers;
    int normalizer_count;
    pre_tokenizer_kind *pre_tokenizers;
    int pre_tokenizer_count; /* 0: the whole span is one word */
    added_token *added;
    int added_count;
    template_piece *template_pieces;
    int template_count; /* 0: no post-processor */
    int template_specials;
    int truncation_max; /* 0: none in the file */
    int truncate_left;
};

/* ---- growable buffers ---------------------------------------------------- */

typedef struct text_buffer {
    char *data;
    size_t length, capacity;
} text_buffer;

typedef struct id_list {
    int32_t *ids;
    int count, capacity;
} id_list;

typedef struct span {
    size_t start, length;
} span;

typedef struct span_list {
    span *spans;
    int count, capacity;
} span_list;

static int grow(void **data, int *capacity, int needed, size_t item)
{
    if (needed <= *capacity) return 0;
    int capacity_new = *capacity ? *capacity : 16;
    while (capacity_new < needed) capacity_new *= 2;
    void *grown = realloc(*data, (size_t)capacity_new * item);
    if (!grown) return error_set("out of memory tokenizing");
    *data = grown;
    *capacity = capacity_new;
    return 0;
}

static int text_append(text_buffer *b, const char *s, size_t n)
{
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 64;
        while (capacity < b->length + n + 1) capacity *= 2;
        char *grown = realloc(b->data, capacity);
        if (!grown) return error_set("out of memory tokenizing");
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, s, n);
    b->length += n;
    b->data[b->length] = '\0';
    return 0;
}

static int ids_push(id_list *l, int32_t id)
{
    if (grow((void **)&l->ids, &l->capacity, l->count + 1, sizeof(int32_t))) return -1;
    l->ids[l->count++] = id;
    return 0;
}

static int spans_push(span_list *l, size_t start, size_t length)
{
    if (length == 0) return 0;
    if (grow((void **)&l->spans, &l->capacity, l->count + 1, sizeof(span))) return -1;
    l->spans[l->count++] = (span){start, length};
    return 0;
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy) memcpy(copy, s, n);
    return copy;
}

/* ---- UTF-8 and character classes ---------------------------------------- */

/* Decodes the code point at s[0..n); returns its byte length, 0 if invalid. */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0) return 0;
    if (s[0] < 0x80) return *cp = s[0], 1;
    int len = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || (size_t)len > n) return 0;
    uint32_t v = s[0] & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    static const uint32_t smallest[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < smallest[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

static int utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Unicode White_Space: Rust's char::is_whitespace and regex \s. */
static int is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

typedef struct range {
    uint32_t first, last;
} range;

/* Non-ASCII code points that are not \w (Alphabetic, marks, decimal digits,
 * connector punctuation, join controls): Latin-1 punctuation and symbols,
 * spacing modifiers, Greek punctuation, general punctuation, super/subscript
 * digits, currency, letterlike and number-form symbols, arrows through
 * dingbats, CJK punctuation, presentation forms, fullwidth punctuation,
 * private use, emoji and tags. Other scripts' own punctuation is not listed. */
static const range non_word_ranges[] = {
    {0x80, 0xA9},       {0xAB, 0xB4},       {0xB6, 0xB9},       {0xBB, 0xBF},       {0xD7, 0xD7},
    {0xF7, 0xF7},       {0x2C2, 0x2C5},     {0x2D2, 0x2DF},     {0x2E5, 0x2EB},     {0x2ED, 0x2ED},
    {0x2EF, 0x2FF},     {0x375, 0x375},     {0x37E, 0x37E},     {0x384, 0x385},     {0x387, 0x387},
    {0x3F6, 0x3F6},     {0x482, 0x482},     {0x55A, 0x55F},     {0x589, 0x58A},     {0x2000, 0x200B},
    {0x200E, 0x203E},   {0x2041, 0x2053},   {0x2055, 0x2070},   {0x2072, 0x207E},   {0x2080, 0x208F},
    {0x209D, 0x20CF},   {0x2100, 0x2101},   {0x2103, 0x2106},   {0x2108, 0x2109},   {0x2114, 0x2114},
    {0x2116, 0x2118},   {0x211E, 0x2123},   {0x2125, 0x2125},   {0x2127, 0x2127},   {0x2129, 0x2129},
    {0x212E, 0x212E},   {0x213A, 0x213B},   {0x2140, 0x2144},   {0x214A, 0x214D},   {0x214F, 0x215F},
    {0x2189, 0x24B5},   {0x24EA, 0x2BFF},   {0x2E00, 0x2E2E},   {0x2E30, 0x2E7F},   {0x3000, 0x3004},
    {0x3008, 0x3020},   {0x3030, 0x3030},   {0x3036, 0x3037},   {0x303D, 0x303F},   {0xE000, 0xF8FF},
    {0xFE10, 0xFE19},   {0xFE30, 0xFE32},   {0xFE35, 0xFE4C},   {0xFE50, 0xFE6B},   {0xFF01, 0xFF0F},
    {0xFF1A, 0xFF20},   {0xFF3B, 0xFF3E},   {0xFF40, 0xFF40},   {0xFF5B, 0xFF65},   {0xFFE0, 0xFFEE},
    {0xFFF9, 0xFFFF},   {0x1F000, 0x1F12F}, {0x1F14A, 0x1F14F}, {0x1F16A, 0x1F16F}, {0x1F18A, 0x1FAFF},
    {0xE0000, 0xE007F}, {0xF0000, 0x10FFFF},
};

/* Regex \w (Unicode): see non_word_ranges for what is exact. */
static int is_word(uint32_t c)
{
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    int lo = 0, hi = (int)(sizeof non_word_ranges / sizeof non_word_ranges[0]) - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c < non_word_ranges[mid].first) hi = mid - 1;
        else if (c > non_word_ranges[mid].last) lo = mid + 1;
        else return 0;
    }
    return 1;
}

/* Simple lowercase mapping (Rust's char::to_lowercase) for the scripts the
 * header names; U+0130 maps to two code points and is handled by the caller. */
static uint32_t to_lower(uint32_t c)
{
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
    if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
        return c % 2 == 0 ? c + 1 : c;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return c % 2 == 1 ? c + 1 : c;
    if (c == 0x178) return 0xFF;
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 63;
    if ((c >= 0x391 && c <= 0x3A1) || (c >= 0x3A3 && c <= 0x3AB)) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF)) return c % 2 == 0 ? c + 1 : c;
    if (c >= 0x531 && c <= 0x556) return c + 48;
    if ((c >= 0x1E00 && c <= 0x1E95) || (c >= 0x1EA0 && c <= 0x1EFF)) return c % 2 == 0 ? c + 1 : c;
    if (c == 0x1E9E) return 0xDF;
    if (c >= 0x2160 && c <= 0x216F) return c + 16;
    if (c >= 0x24B6 && c <= 0x24CF) return c + 26;
    if (c >= 0xFF21 && c <= 0xFF3A) return c + 32;
    return c;
}

/* ---- the vocabulary -------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int vocab_init(vocab_table *v, size_t entries)
{
    v->capacity = 16;
    while (v->capacity < 2 * entries) v->capacity *= 2;
    v->keys = calloc(v->capacity, sizeof(char *));
    v->key_lengths = calloc(v->capacity, sizeof(size_t));
    v->values = calloc(v->capacity, sizeof(int32_t));
    return v->keys && v->key_lengths && v->values ? 0 : error_set("out of memory loading a tokenizer vocabulary");
}

static size_t vocab_slot(const vocab_table *v, const char *s, size_t n)
{
    size_t i = (size_t)hash_bytes(s, n) & (v->capacity - 1);
    while (v->keys[i] && !(v->key_lengths[i] == n && memcmp(v->keys[i], s, n) == 0)) i = (i + 1) & (v->capacity - 1);
    return i;
}

/* Inserts (a copy of) s -> id; a duplicate word keeps the first id. */
static int vocab_put(vocab_table *v, const char *s, int32_t id)
{
    size_t n = strlen(s), i = vocab_slot(v, s, n);
    if (v->keys[i]) return 0;
    if (!(v->keys[i] = copy_string(s))) return error_set("out of memory loading a tokenizer vocabulary");
    v->key_lengths[i] = n;
    v->values[i] = id;
    return 0;
}

static int32_t vocab_get(const vocab_table *v, const char *s, size_t n)
{
    size_t i = vocab_slot(v, s, n);
    return v->keys[i] ? v->values[i] : -1;
}

static void vocab_free(vocab_table *v)
{
    for (size_t i = 0; v->keys && i < v->capacity; i++) free(v->keys[i]);
    free(v->keys);
    free(v->key_lengths);
    free(v->values);
}

/* ---- loading --------------------------------------------------------------- */

static const char *type_of(const cJSON *component)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(component, "type");
    return cJSON_IsString(type) ? type->valuestring : NULL;
}

static int bool_field(const cJSON *object, const char *key, int fallback)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    return cJSON_IsBool(item) ? cJSON_IsTrue(item) : fallback;
}

static const char *string_field(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static int load_normalizer(tokenizer *tok, const cJSON *n)
{
    const char *type = type_of(n);
    if (!type) return error_set("%s: normalizer has no \"type\"", tok->path);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *item;
        if (!cJSON_IsArray(list)) return error_set("%s: normalizer Sequence has no \"normalizers\" list", tok->path);
        cJSON_ArrayForEach(item, list) if (load_normalizer(tok, item)) return -1;
        return 0;
    }
    normalizer_step step = {0};
    if (strcmp(type, "Lowercase") == 0) {
        step.kind = NORMALIZE_LOWERCASE;
    } else if (strcmp(type, "Strip") == 0) {
        step.kind = NORMALIZE_STRIP;
        step.strip_left = bool_field(n, "strip_left", 1);
        step.strip_right = bool_field(n, "strip_right", 1);
    } else if (strcmp(type, "Replace") == 0) {
        const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const char *from = string_field(pattern, "String"), *to = string_field(n, "content");
        if (!from || !to || !*from)
            return error_set("%s: normalizer Replace with a Regex pattern is not supported (only String patterns)",
                             tok->path);
        step.kind = NORMALIZE_REPLACE;
        step.pattern = copy_string(from);
        step.content = copy_string(to);
    } else if (strcmp(type, "Prepend") == 0) {
        const char *prepend = string_field(n, "prepend");
        if (!prepend) return error_set("%s: normalizer Prepend has no \"prepend\" string", tok->path);
        step.kind = NORMALIZE_PREPEND;
        step.content = copy_string(prepend);
    } else {
        return error_set("%s: normalizer %s is not supported (moedit reads Lowercase, Strip, Replace, Prepend "
                         "and Sequence)",
                         tok->path, type);
    }
    if ((step.kind == NORMALIZE_REPLACE && (!step.pattern || !step.content)) ||
        (step.kind == NORMALIZE_PREPEND && !step.content))
        return error_set("out of memory loading %s", tok->path);
    normalizer_step *grown = realloc(tok->normalizers, (size_t)(tok->normalizer_count + 1) * sizeof *grown);
    if (!grown) return error_set("out of memory loading %s", tok->path);
    tok->normalizers = grown;
    tok->normalizers[tok->normalizer_count++] = step;
    return 0;
}

static int load_pre_tokenizer(tokenizer *tok, const cJSON *p)
{
    const char *type = type_of(p);
    if (!type) return error_set("%s: pre_tokenizer has no \"type\"", tok->path);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *item;
        if (!cJSON_IsArray(list))
            return error_set("%s: pre_tokenizer Sequence has no \"pretokenizers\" list", tok->path);
        cJSON_ArrayForEach(item, list) if (load_pre_tokenizer(tok, item)) return -1;
        return 0;
    }
    pre_tokenizer_kind kind;
    if (strcmp(type, "Whitespace") == 0) kind = PRE_TOKENIZE_WHITESPACE;
    else if (strcmp(type, "WhitespaceSplit") == 0) kind = PRE_TOKENIZE_WHITESPACE_SPLIT;
    else
        return error_set("%s: pre_tokenizer %s is not supported (moedit reads Whitespace, WhitespaceSplit and "
                         "Sequence)",
                         tok->path, type);
    pre_tokenizer_kind *grown = realloc(tok->pre_tokenizers, (size_t)(tok->pre_tokenizer_count + 1) * sizeof *grown);
    if (!grown) return error_set("out of memory loading %s", tok->path);
    tok->pre_tokenizers = grown;
    tok->pre_tokenizers[tok->pre_tokenizer_count++] = kind;
    return 0;
}

static int note_id(tokenizer *tok, int32_t id)
{
    if (id < 0) return error_set("%s: negative token id %d", tok->path, id);
    if (id > tok->max_id) tok->max_id = id;
    return 0;
}

static int load_model(tokenizer *tok, const cJSON *model)
{
    const char *type = type_of(model);
    if (!type) return error_set("%s: model has no \"type\"", tok->path);
    if (strcmp(type, "BPE") == 0) return error_set("%s: model type BPE is not supported yet", tok->path);
    if (strcmp(type, "WordLevel") != 0)
        return error_set("%s: model type %s is not supported (moedit reads WordLevel)", tok->path, type);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *entry;
    if (!cJSON_IsObject(vocab)) return error_set("%s: model.vocab is not an object", tok->path);
    if (vocab_init(&tok->vocab, (size_t)cJSON_GetArraySize(vocab))) return -1;
    cJSON_ArrayForEach(entry, vocab)
    {
        double id = cJSON_IsNumber(entry) ? entry->valuedouble : -1;
        if (!(id >= 0 && id <= INT32_MAX && id == (double)(int32_t)id))
            return error_set("%s: model.vocab[\"%s\"] is not a non-negative integer id", tok->path, entry->string);
        if (note_id(tok, (int32_t)id) || vocab_put(&tok->vocab, entry->string, (int32_t)id)) return -1;
    }
    tok->unk_id = -1;
    const char *unk = string_field(model, "unk_token");
    if (unk) tok->unk_id = vocab_get(&tok->vocab, unk, strlen(unk));
    return 0;
}

static int load_added_tokens(tokenizer *tok, const cJSON *list)
{
    if (!list || cJSON_IsNull(list)) return 0;
    if (!cJSON_IsArray(list)) return error_set("%s: added_tokens is not a list", tok->path);
    tok->added = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(added_token));
    if (!tok->added) return error_set("out of memory loading %s", tok->path);
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        const char *content = string_field(item, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "id");
        if (!content || !cJSON_IsNumber(id)) return error_set("%s: an added token lacks content or id", tok->path);
        if (!*content) continue;
        added_token *t = &tok->added[tok->added_count++];
        t->content = copy_string(content);
        if (!t->content) return error_set("out of memory loading %s", tok->path);
        t->length = strlen(content);
        t->id = (int32_t)id->valuedouble;
        t->single_word = bool_field(item, "single_word", 0);
        t->lstrip = bool_field(item, "lstrip", 0);
        t->rstrip = bool_field(item, "rstrip", 0);
        t->normalized = bool_field(item, "normalized", 0);
        if (note_id(tok, t->id)) return -1;
    }
    return 0;
}

/* TemplateProcessing: "single" is a list of {"SpecialToken": {"id": NAME}} and
 * {"Sequence": {"id": "A"}}; special_tokens[NAME].ids are the ids to emit. */
static int load_template(tokenizer *tok, const cJSON *post)
{
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(post, "single"), *piece;
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(post, "special_tokens");
    if (!cJSON_IsArray(single))
        return error_set("%s: post_processor TemplateProcessing has no \"single\" list", tok->path);
    tok->template_pieces = calloc((size_t)cJSON_GetArraySize(single) + 1, sizeof(template_piece));
    if (!tok->template_pieces) return error_set("out of memory loading %s", tok->path);
    int sequences = 0;
    cJSON_ArrayForEach(piece, single)
    {
        template_piece *t = &tok->template_pieces[tok->template_count++];
        const cJSON *special = cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(piece, "Sequence")) {
            t->is_sequence = 1;
            sequences++;
            continue;
        }
        const char *name = string_field(special, "id");
        const cJSON *entry = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids"), *id;
        if (!cJSON_IsArray(ids))
            return error_set("%s: post_processor template names special token %s without ids in special_tokens",
                             tok->path, name ? name : "(none)");
        t->ids = calloc((size_t)cJSON_GetArraySize(ids) + 1, sizeof(int32_t));
        if (!t->ids) return error_set("out of memory loading %s", tok->path);
        cJSON_ArrayForEach(id, ids)
        {
            if (!cJSON_IsNumber(id)) return error_set("%s: special token %s has a non-numeric id", tok->path, name);
            t->ids[t->count++] = (int32_t)id->valuedouble;
            if (note_id(tok, (int32_t)id->valuedouble)) return -1;
        }
        tok->template_specials += t->count;
    }
    if (sequences != 1) return error_set("%s: post_processor template must hold $A exactly once", tok->path);
    return 0;
}

static int load_post_processor(tokenizer *tok, const cJSON *post)
{
    if (!post || cJSON_IsNull(post)) return 0;
    const char *type = type_of(post);
    if (type && strcmp(type, "TemplateProcessing") == 0) return load_template(tok, post);
    return error_set("%s: post_processor %s is not supported (moedit reads TemplateProcessing)", tok->path,
                     type ? type : "without a type");
}

static int load_truncation(tokenizer *tok, const cJSON *truncation)
{
    if (!truncation || cJSON_IsNull(truncation)) return 0;
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(truncation, "max_length");
    const char *direction = string_field(truncation, "direction");
    if (!cJSON_IsNumber(max) || max->valuedouble < 0)
        return error_set("%s: truncation.max_length is not a non-negative integer", tok->path);
    tok->truncation_max = max->valuedouble > 1e9 ? 1000000000 : (int)max->valuedouble;
    tok->truncate_left = direction && strcmp(direction, "Left") == 0;
    return 0;
}

static int load_json(tokenizer *tok, const cJSON *root)
{
    if (!cJSON_IsObject(root)) return error_set("%s: top level is not a JSON object", tok->path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return error_set("%s: no \"model\" object (not a tokenizers tokenizer.json?)", tok->path);
    if (load_model(tok, model)) return -1;
    const cJSON *normalizer = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (normalizer && !cJSON_IsNull(normalizer) && load_normalizer(tok, normalizer)) return -1;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (pre && !cJSON_IsNull(pre) && load_pre_tokenizer(tok, pre)) return -1;
    return load_added_tokens(tok, cJSON_GetObjectItemCaseSensitive(root, "added_tokens")) ||
                   load_post_processor(tok, cJSON_GetObjectItemCaseSensitive(root, "post_processor")) ||
                   load_truncation(tok, cJSON_GetObjectItemCaseSensitive(root, "truncation"))
               ? -1
               : 0;
}

int tokenizer_load(tokenizer **out, const char *path)
{
    *out = NULL;
    tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok || !(tok->path = copy_string(path))) {
        free(tok);
        return error_set("out of memory loading %s", path);
    }
    tok->unk_id = -1;
    char *text = NULL;
    if (text_file_read(path, TOKENIZER_MAX_FILE_BYTES, "tokenizer", &text)) {
        tokenizer_free(tok);
        return -1;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    int status;
    if (!root) {
        int line = 1;
        for (const char *p = text; end && p < end; p++) line += *p == '\n';
        status = error_set("%s: malformed JSON at line %d", path, line);
    } else {
        status = load_json(tok, root);
    }
    cJSON_Delete(root);
    free(text);
    if (status) {
        tokenizer_free(tok);
        return -1;
    }
    *out = tok;
    return 0;
}

void tokenizer_free(tokenizer *tok)
{
    if (!tok) return;
    vocab_free(&tok->vocab);
    for (int i = 0; i < tok->normalizer_count; i++) {
        free(tok->normalizers[i].pattern);
        free(tok->normalizers[i].content);
    }
    free(tok->normalizers);
    free(tok->pre_tokenizers);
    for (int i = 0; i < tok->added_count; i++) free(tok->added[i].content);
    free(tok->added);
    for (int i = 0; i < tok->template_count; i++) free(tok->template_pieces[i].ids);
    free(tok->template_pieces);
    free(tok->path);
    free(tok);
}

const char *tokenizer_path(const tokenizer *tok) { return tok->path; }
int tokenizer_num_special_tokens(const tokenizer *tok) { return tok->template_specials; }
int32_t tokenizer_vocab_size(const tokenizer *tok) { return tok->max_id + 1; }

/* ---- normalization --------------------------------------------------------- */

static int normalize_lowercase(const char *s, size_t n, text_buffer *out)
{
    char bytes[8];
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        i += (size_t)len;
        int written = cp == 0x130 ? utf8_encode('i', bytes) + utf8_encode(0x307, bytes + 1)
                                  : utf8_encode(to_lower(cp), bytes);
        if (text_append(out, bytes, (size_t)written)) return -1;
    }
    return 0;
}

static int normalize_strip(const normalizer_step *step, const char *s, size_t n, text_buffer *out)
{
    size_t first = 0, last = n;
    uint32_t cp;
    while (step->strip_left && first < last) {
        int len = utf8_decode((const unsigned char *)s + first, last - first, &cp);
        if (!is_space(cp)) break;
        first += (size_t)len;
    }
    while (step->strip_right && last > first) {
        size_t start = last - 1;
        while (start > first && ((unsigned char)s[start] & 0xC0) == 0x80) start--;
        utf8_decode((const unsigned char *)s + start, last - start, &cp);
        if (!is_space(cp)) break;
        last = start;
    }
    return text_append(out, s + first, last - first);
}

static int normalize_replace(const normalizer_step *step, const char *s, size_t n, text_buffer *out)
{
    size_t m = strlen(step->pattern), i = 0;
    while (i < n) {
        if (i + m <= n && memcmp(s + i, step->pattern, m) == 0) {
            if (text_append(out, step->content, strlen(step->content))) return -1;
            i += m;
        } else {
            if (text_append(out, s + i, 1)) return -1;
            i++;
        }
    }
    return 0;
}

static int normalize_step(const normalizer_step *step, const char *s, size_t n, text_buffer *out)
{
    switch (step->kind) {
    case NORMALIZE_LOWERCASE: return normalize_lowercase(s, n, out);
    case NORMALIZE_STRIP: return normalize_strip(step, s, n, out);
    case NORMALIZE_REPLACE: return normalize_replace(step, s, n, out);
    case NORMALIZE_PREPEND:
        if (n > 0 && text_append(out, step->content, strlen(step->content))) return -1;
        return text_append(out, s, n);
    }
    return 0;
}

/* out = every normalizer applied in turn to s[0..n). */
static int normalize(const tokenizer *tok, const char *s, size_t n, text_buffer *out)
{
    out->length = 0;
    if (text_append(out, s, n)) return -1;
    text_buffer next = {0};
    for (int i = 0; i < tok->normalizer_count; i++) {
        next.length = 0;
        if (text_append(&next, "", 0) || normalize_step(&tok->normalizers[i], out->data, out->length, &next)) {
            free(next.data);
            return -1;
        }
        text_buffer swap = *out;
        *out = next;
        next = swap;
    }
    free(next.data);
    return 0;
}

/* ---- pre-tokenization and the model -------------------------------------- */

/* Splits s[sp] by the pre-tokenizer into out: WhitespaceSplit keeps maximal
 * runs of non-space; Whitespace keeps runs of \w and runs of [^\w\s]. */
static int pre_tokenize_span(pre_tokenizer_kind kind, const char *s, span sp, span_list *out)
{
    size_t run_start = sp.start;
    int run_class = -1; /* -1: in whitespace; 0: punctuation run; 1: word run */
    for (size_t i = sp.start; i <= sp.start + sp.length;) {
        int cls = -1, len = 1;
        uint32_t cp = 0;
        if (i < sp.start + sp.length) {
            len = utf8_decode((const unsigned char *)s + i, sp.start + sp.length - i, &cp);
            cls = is_space(cp) ? -1 : kind == PRE_TOKENIZE_WHITESPACE_SPLIT ? 1 : is_word(cp);
        }
        if (cls != run_class || i == sp.start + sp.length) {
            if (run_class >= 0 && spans_push(out, run_start, i - run_start)) return -1;
            run_start = i;
            run_class = cls;
        }
        i += (size_t)len;
    }
    return 0;
}

static int pre_tokenize(const tokenizer *tok, const char *s, size_t n, span_list *words)
{
    words->count = 0;
    if (spans_push(words, 0, n)) return -1;
    span_list next = {0};
    for (int p = 0; p < tok->pre_tokenizer_count; p++) {
        next.count = 0;
        for (int w = 0; w < words->count; w++)
            if (pre_tokenize_span(tok->pre_tokenizers[p], s, words->spans[w], &next)) {
                free(next.spans);
                return -1;
            }
        span_list swap = *words;
        *words = next;
        next = swap;
    }
    free(next.spans);
    return 0;
}

static int model_word(const tokenizer *tok, const char *s, size_t n, id_list *ids)
{
    int32_t id = vocab_get(&tok->vocab, s, n);
    if (id < 0) id = tok->unk_id;
    if (id < 0)
        return error_set("%s: word \"%.*s\" is not in the vocabulary and the model has no unk_token", tok->path,
                         (int)(n > 64 ? 64 : n), s);
    return ids_push(ids, id);
}

/* Normalized text span -> ids: pre-tokenize, then the model per word. */
static int encode_normalized(const tokenizer *tok, const char *s, size_t n, span_list *words, id_list *ids)
{
    if (pre_tokenize(tok, s, n, words)) return -1;
    for (int w = 0; w < words->count; w++)
        if (model_word(tok, s + words->spans[w].start, words->spans[w].length, ids)) return -1;
    return 0;
}

/* ---- added tokens ----------------------------------------------------------- */

static int char_before_is_word(const char *s, size_t at)
{
    if (at == 0) return 0;
    size_t start = at - 1;
    while (start > 0 && ((unsigned char)s[start] & 0xC0) == 0x80) start--;
    uint32_t cp;
    return utf8_decode((const unsigned char *)s + start, at - start, &cp) && is_word(cp);
}

static int char_at_is_word(const char *s, size_t at, size_t n)
{
    uint32_t cp;
    return at < n && utf8_decode((const unsigned char *)s + at, n - at, &cp) && is_word(cp);
}

static size_t skip_spaces_back(const char *s, size_t at, size_t floor)
{
    while (at > floor) {
        size_t start = at - 1;
        while (start > floor && ((unsigned char)s[start] & 0xC0) == 0x80) start--;
        uint32_t cp;
        if (!utf8_decode((const unsigned char *)s + start, at - start, &cp) || !is_space(cp)) break;
        at = start;
    }
    return at;
}

static size_t skip_spaces_forward(const char *s, size_t at, size_t n)
{
    uint32_t cp;
    int len;
    while (at < n && (len = utf8_decode((const unsigned char *)s + at, n - at, &cp)) && is_space(cp)) at += (size_t)len;
    return at;
}

/* The longest added token (of the given normalized kind) matching at s + at. */
static const added_token *added_match_at(const tokenizer *tok, int normalized, const char *s, size_t at, size_t n)
{
    const added_token *best = NULL;
    for (int t = 0; t < tok->added_count; t++) {
        const added_token *a = &tok->added[t];
        if (a->normalized != normalized || a->length > n - at || (best && a->length <= best->length)) continue;
        if (memcmp(s + at, a->content, a->length) == 0) best = a;
    }
    return best;
}

typedef int (*text_piece_fn)(const tokenizer *tok, const char *s, size_t n, void *state);

/* AddedVocabulary::find_matches: cuts s[0..n) at leftmost-longest matches of
 * added tokens; matches become ids, the text between goes to on_text. */
static int split_added(const tokenizer *tok, int normalized, const char *s, size_t n, id_list *ids,
                       text_piece_fn on_text, void *state)
{
    size_t done = 0, at = 0;
    while (at < n) {
        const added_token *a = added_match_at(tok, normalized, s, at, n);
        if (!a) {
            at++;
            continue;
        }
        size_t start = at, stop = at + a->length;
        at = stop;
        if (a->single_word && (char_before_is_word(s, start) || char_at_is_word(s, stop, n))) continue;
        if (a->lstrip) start = skip_spaces_back(s, start, done);
        if (a->rstrip) stop = skip_spaces_forward(s, stop, n);
        if (start > done && on_text(tok, s + done, start - done, state)) return -1;
        if (ids_push(ids, a->id)) return -1;
        done = at = stop;
    }
    return done < n ? on_text(tok, s + done, n - done, state) : 0;
}

typedef struct encode_state {
    text_buffer normalized;
    span_list words;
    id_list ids;
} encode_state;

static int on_normalized_text(const tokenizer *tok, const char *s, size_t n, void *user)
{
    encode_state *st = user;
    return encode_normalized(tok, s, n, &st->words, &st->ids);
}

static int on_raw_text(const tokenizer *tok, const char *s, size_t n, void *user)
{
    encode_state *st = user;
    if (normalize(tok, s, n, &st->normalized)) return -1;
    /* The normalized copy must outlive the nested split: take it over. */
    text_buffer own = st->normalized;
    st->normalized = (text_buffer){0};
    int status = split_added(tok, 1, own.data, own.length, &st->ids, on_normalized_text, st);
    free(own.data);
    return status;
}

static int validate_utf8(const tokenizer *tok, const char *text)
{
    size_t n = strlen(text);
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        int len = utf8_decode((const unsigned char *)text + i, n - i, &cp);
        if (!len) return error_set("%s: text is not valid UTF-8 (byte %zu)", tok->path, i);
        i += (size_t)len;
    }
    return 0;
}

/* The text's own tokens, before truncation and the template. */
static int encode_content(const tokenizer *tok, const char *text, encode_state *st)
{
    memset(st, 0, sizeof *st);
    if (validate_utf8(tok, text)) return -1;
    return split_added(tok, 0, text, strlen(text), &st->ids, on_raw_text, st);
}

static void encode_state_free(encode_state *st)
{
    free(st->normalized.data);
    free(st->words.spans);
    free(st->ids.ids);
}

int tokenizer_count(const tokenizer *tok, const char *text, int *count)
{
    encode_state st;
    int status = encode_content(tok, text, &st);
    *count = status ? 0 : st.ids.count + tok->template_specials;
    encode_state_free(&st);
    return status;
}

int tokenizer_encode(const tokenizer *tok, const char *text, int32_t *ids, int max_ids, int *count)
{
    *count = 0;
    int limit = max_ids;
    if (tok->truncation_max > 0 && tok->truncation_max < limit) limit = tok->truncation_max;
    if (limit < 1 || limit < tok->template_specials)
        return error_set("%s: at most %d token(s) cannot hold the %d special token(s) of the template", tok->path,
                         limit, tok->template_specials);
    encode_state st;
    if (encode_content(tok, text, &st)) {
        encode_state_free(&st);
        return -1;
    }
    int keep = st.ids.count, room = limit - tok->template_specials;
    int first = 0;
    if (keep > room) {
        first = tok->truncate_left ? keep - room : 0;
        keep = room;
    }
    int n = 0;
    if (tok->template_count == 0) {
        memcpy(ids, st.ids.ids + first, (size_t)keep * sizeof(int32_t));
        n = keep;
    }
    for (int p = 0; p < tok->template_count; p++) {
        const template_piece *piece = &tok->template_pieces[p];
        const int32_t *src = piece->is_sequence ? st.ids.ids + first : piece->ids;
        int m = piece->is_sequence ? keep : piece->count;
        if (m > 0) memcpy(ids + n, src, (size_t)m * sizeof(int32_t));
        n += m;
    }
    *count = n;
    encode_state_free(&st);
    return 0;
}
