/* Byte-pair encoding, as tokenizers' models/bpe (BPE::tokenize, merge_word,
 * Word::merge_all without dropout):
 *   ignore_merges and the whole piece is a token  ->  that token;
 *   else the piece's characters become symbols: continuing_subword_prefix
 *   before every symbol but the first, end_of_word_suffix after the last;
 *   a symbol not in the vocabulary becomes byte_fallback's <0xXX> tokens if
 *   all exist, else unk_token (consecutive unknowns fused with fuse_unk), or
 *   is dropped when there is no unk_token;
 *   then, repeatedly, the adjacent pair with the lowest merge rank (leftmost
 *   on ties) becomes the merged token vocab[a + b without b's prefix]. */
#include "text/tokenizer_bpe.h"

#include "core/error.h"
#include "text/tokenizer_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct merge_entry {
    uint64_t pair; /* (a << 32) | b; 0 = empty slot (ids are shifted by one) */
    int32_t rank, merged;
} merge_entry;

struct tokenizer_bpe {
    vocab_table vocab;
    merge_entry *merges;
    size_t merge_capacity; /* a power of two */
    int32_t unk_id;        /* -1: none */
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix (NULL: none) */
    int fuse_unk, byte_fallback, ignore_merges;
};

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1); }

static size_t merge_slot(const tokenizer_bpe *m, uint64_t key)
{
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (m->merge_capacity - 1);
    while (m->merges[i].pair && m->merges[i].pair != key) i = (i + 1) & (m->merge_capacity - 1);
    return i;
}

static int load_vocab(tokenizer_bpe *m, const cJSON *vocab, const char *path)
{
    if (!cJSON_IsObject(vocab)) return error_set("%s: model.vocab is not an object", path);
    if (vocab_init(&m->vocab, (size_t)cJSON_GetArraySize(vocab))) return -1;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, vocab)
    {
        double id = cJSON_IsNumber(entry) ? entry->valuedouble : -1;
        if (!(id >= 0 && id <= INT32_MAX && id == (double)(int32_t)id))
            return error_set("%s: model.vocab[\"%s\"] is not a non-negative integer id", path, entry->string);
        if (vocab_put(&m->vocab, entry->string, strlen(entry->string), (int32_t)id)) return -1;
    }
    return 0;
}

static int32_t lookup(const tokenizer_bpe *m, const char *token, int index, const char *path)
{
    int32_t id = vocab_get(&m->vocab, token, strlen(token));
    if (id < 0) error_set("%s: model.merges[%d]: \"%s\" is not in the vocabulary", path, index, token);
    return id;
}

/* One merge "a b" (or [a, b]): rank = its index. */
static int add_merge(tokenizer_bpe *m, const cJSON *item, int index, const char *path)
{
    char *a = NULL, *b = NULL;
    if (cJSON_IsString(item)) {
        const char *space = strchr(item->valuestring, ' ');
        if (!space || strchr(space + 1, ' '))
            return error_set("%s: model.merges[%d] \"%s\" is not two tokens separated by one space", path, index,
                             item->valuestring);
        a = tokenizer_strndup(item->valuestring, (size_t)(space - item->valuestring));
        b = tokenizer_strdup(space + 1);
    } else if (cJSON_IsArray(item) && cJSON_GetArraySize(item) == 2 && cJSON_IsString(cJSON_GetArrayItem(item, 0)) &&
               cJSON_IsString(cJSON_GetArrayItem(item, 1))) {
        a = tokenizer_strdup(cJSON_GetArrayItem(item, 0)->valuestring);
        b = tokenizer_strdup(cJSON_GetArrayItem(item, 1)->valuestring);
    } else {
        return error_set("%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", path, index);
    }
    char *joined = NULL;
    int status = 0;
    size_t skip = m->prefix && strncmp(b ? b : "", m->prefix, strlen(m->prefix)) == 0 ? strlen(m->prefix) : 0;
    if (a && b && (joined = malloc(strlen(a) + strlen(b) + 1))) {
        strcpy(joined, a);
        strcat(joined, b + skip);
    } else {
        status = error_set("out of memory loading %s", path);
    }
    int32_t ia = -1, ib = -1, merged = -1;
    if (!status && ((ia = lookup(m, a, index, path)) < 0 || (ib = lookup(m, b, index, path)) < 0 ||
                    (merged = lookup(m, joined, index, path)) < 0))
        status = -1;
    if (!status) {
        uint64_t key = pair_key(ia, ib);
        size_t slot = merge_slot(m, key);
        m->merges[slot] = (merge_entry){key, index, merged}; /* a repeated pair: the later rank, as a HashMap */
    }
    free(a);
    free(b);
    free(joined);
    return status;
}

static int load_merges(tokenizer_bpe *m, const cJSON *merges, const char *path)
{
    if (!cJSON_IsArray(merges)) return error_set("%s: model.merges is not a list", path);
    int count = cJSON_GetArraySize(merges);
    m->merge_capacity = 16;
    while (m->merge_capacity < 2 * (size_t)count) m->merge_capacity *= 2;
    if (!(m->merges = calloc(m->merge_capacity, sizeof(merge_entry)))) return error_set("out of memory loading %s", path);
    const cJSON *item;
    int index = 0;
    cJSON_ArrayForEach(item, merges) if (add_merge(m, item, index++, path)) return -1;
    return 0;
}

static int load_options(tokenizer_bpe *m, const cJSON *model, const char *path)
{
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble != 0)
        return error_set("%s: model BPE dropout %g is not supported (moedit encodes deterministically)", path,
                         dropout->valuedouble);
    const char *prefix = json_string_field(model, "continuing_subword_prefix");
    const char *suffix = json_string_field(model, "end_of_word_suffix");
    if ((prefix && !(m->prefix = tokenizer_strdup(prefix))) || (suffix && !(m->suffix = tokenizer_strdup(suffix))))
        return error_set("out of memory loading %s", path);
    m->fuse_unk = json_bool_field(model, "fuse_unk", 0);
    m->byte_fallback = json_bool_field(model, "byte_fallback", 0);
    m->ignore_merges = json_bool_field(model, "ignore_merges", 0);
    return 0;
}

int tokenizer_bpe_load(tokenizer_bpe **out, const cJSON *model, const char *path)
{
    tokenizer_bpe *m = *out = calloc(1, sizeof *m);
    if (!m) return error_set("out of memory loading %s", path);
    m->unk_id = -1;
    if (load_options(m, model, path) || load_vocab(m, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path) ||
        load_merges(m, cJSON_GetObjectItemCaseSensitive(model, "merges"), path))
        goto fail;
    const char *unk = json_string_field(model, "unk_token");
    if (unk && (m->unk_id = vocab_get(&m->vocab, unk, strlen(unk))) < 0) {
        error_set("%s: model.unk_token \"%s\" is not in the vocabulary", path, unk);
        goto fail;
    }
    return 0;
fail:
    tokenizer_bpe_free(m);
    *out = NULL;
    return -1;
}

void tokenizer_bpe_free(tokenizer_bpe *m)
{
    if (!m) return;
    vocab_free(&m->vocab);
    free(m->merges);
    free(m->prefix);
    free(m->suffix);
    free(m);
}

const vocab_table *tokenizer_bpe_vocab(const tokenizer_bpe *m) { return &m->vocab; }

/* ---- encoding ---------------------------------------------------------------- */

/* The id of one character symbol (prefix / suffix added), or -1. */
static int32_t symbol_id(const tokenizer_bpe *m, const char *c, size_t len, int first, int last, text_buffer *scratch)
{
    scratch->length = 0;
    if ((!first && m->prefix && text_append(scratch, m->prefix, strlen(m->prefix))) ||
        text_append(scratch, c, len) || (last && m->suffix && text_append(scratch, m->suffix, strlen(m->suffix))))
        return -2;
    return vocab_get(&m->vocab, scratch->data, scratch->length);
}

/* Pushes <0xXX> for every byte of the symbol if all exist: 1; none: 0. */
static int push_byte_fallback(const tokenizer_bpe *m, const char *s, size_t n, id_list *symbols)
{
    int32_t found[64];
    if (n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", (unsigned char)s[i]);
        if ((found[i] = vocab_get(&m->vocab, name, strlen(name))) < 0) return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (ids_push(symbols, found[i])) return -1;
    return 1;
}

/* The piece's initial symbols (merge_word before merging). */
static int initial_symbols(const tokenizer_bpe *m, const char *s, size_t n, id_list *symbols, text_buffer *scratch)
{
    int pending_unk = 0; /* an unk not yet pushed (fuse_unk) */
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int len = utf8_next(s + i, n - i, &cp);
        if (!len) len = 1; /* byte-level text is valid UTF-8; be safe anyway */
        int32_t id = symbol_id(m, s + i, (size_t)len, i == 0, i + (size_t)len >= n, scratch);
        if (id == -2) return -1;
        if (id >= 0) {
            if (pending_unk && ids_push(symbols, m->unk_id)) return -1;
            pending_unk = 0;
            if (ids_push(symbols, id)) return -1;
        } else {
            int fallback = m->byte_fallback ? push_byte_fallback(m, scratch->data, scratch->length, symbols) : 0;
            if (fallback < 0) return -1;
            if (!fallback && m->unk_id >= 0) {
                if (pending_unk && !m->fuse_unk && ids_push(symbols, m->unk_id)) return -1;
                pending_unk = 1;
            }
        }
        i += (size_t)len;
    }
    return pending_unk ? ids_push(symbols, m->unk_id) : 0;
}

/* Merges the lowest-ranked adjacent pair until none has a rank. */
static void merge_all(const tokenizer_bpe *m, int32_t *symbols, int *count)
{
    for (;;) {
        int best = -1;
        int32_t best_rank = INT32_MAX, best_merged = -1;
        for (int i = 0; i + 1 < *count; i++) {
            const merge_entry *e = &m->merges[merge_slot(m, pair_key(symbols[i], symbols[i + 1]))];
            if (e->pair && e->rank < best_rank) best = i, best_rank = e->rank, best_merged = e->merged;
        }
        if (best < 0) return;
        symbols[best] = best_merged;
        memmove(symbols + best + 1, symbols + best + 2, (size_t)(*count - best - 2) * sizeof(int32_t));
        (*count)--;
    }
}

int tokenizer_bpe_encode(const tokenizer_bpe *m, const char *piece, size_t n, id_list *ids)
{
    if (m->ignore_merges) {
        int32_t whole = vocab_get(&m->vocab, piece, n);
        if (whole >= 0) return ids_push(ids, whole);
    }
    int first = ids->count;
    text_buffer scratch = {0};
    int status = initial_symbols(m, piece, n, ids, &scratch);
    free(scratch.data);
    if (status) return -1;
    int count = ids->count - first;
    if (count == 0) return 0; /* an empty piece: ids->ids may be NULL, and NULL + 0 is undefined */
    merge_all(m, ids->ids + first, &count);
    ids->count = first + count;
    return 0;
}
