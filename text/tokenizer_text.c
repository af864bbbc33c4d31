/* Growable lists, UTF-8 helpers and the vocabulary hash table; see
 * tokenizer_text.h. Decoding and White_Space come from utf8proc's tables. */
#include "text/tokenizer_text.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

int tokenizer_grow(void **data, int *capacity, int needed, size_t item)
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

int text_append(text_buffer *b, const char *s, size_t n)
{
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 64;
        while (capacity < b->length + n + 1) capacity *= 2;
        char *grown = realloc(b->data, capacity);
        if (!grown) return error_set("out of memory tokenizing");
        b->data = grown;
        b->capacity = capacity;
    }
    if (n) memcpy(b->data + b->length, s, n);
    b->length += n;
    b->data[b->length] = '\0';
    return 0;
}

int ids_push(id_list *l, int32_t id)
{
    if (tokenizer_grow((void **)&l->ids, &l->capacity, l->count + 1, sizeof(int32_t))) return -1;
    l->ids[l->count++] = id;
    return 0;
}

int spans_push(span_list *l, size_t start, size_t length, int at_origin)
{
    if (length == 0) return 0;
    if (tokenizer_grow((void **)&l->spans, &l->capacity, l->count + 1, sizeof(span))) return -1;
    l->spans[l->count++] = (span){start, length, at_origin};
    return 0;
}

char *tokenizer_strndup(const char *s, size_t n)
{
    char *copy = malloc(n + 1);
    if (!copy) return NULL;
    memcpy(copy, s, n);
    copy[n] = '\0';
    return copy;
}

char *tokenizer_strdup(const char *s) { return tokenizer_strndup(s, strlen(s)); }

int utf8_next(const char *s, size_t n, int32_t *cp)
{
    if (n == 0) return 0;
    utf8proc_ssize_t len = utf8proc_iterate((const utf8proc_uint8_t *)s, n > 4 ? 4 : (utf8proc_ssize_t)n, cp);
    return len > 0 ? (int)len : 0;
}

size_t utf8_previous(const char *s, size_t at, size_t floor)
{
    size_t start = at - 1;
    while (start > floor && ((unsigned char)s[start] & 0xC0) == 0x80) start--;
    return start;
}

size_t utf8_invalid_at(const char *s, size_t n)
{
    int32_t cp;
    for (size_t i = 0; i < n;) {
        int len = utf8_next(s + i, n - i, &cp);
        if (!len) return i;
        i += (size_t)len;
    }
    return n;
}

int unicode_is_whitespace(int32_t c)
{
    if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || c == 0x20;
    if (c == 0x85) return 1;
    utf8proc_category_t cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

/* ---- the vocabulary -------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

int vocab_init(vocab_table *v, size_t entries)
{
    memset(v, 0, sizeof *v);
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

static int vocab_rehash(vocab_table *v)
{
    vocab_table bigger;
    if (vocab_init(&bigger, v->capacity)) return -1;
    for (size_t i = 0; i < v->capacity; i++) {
        if (!v->keys[i]) continue;
        size_t j = vocab_slot(&bigger, v->keys[i], v->key_lengths[i]);
        bigger.keys[j] = v->keys[i];
        bigger.key_lengths[j] = v->key_lengths[i];
        bigger.values[j] = v->values[i];
    }
    bigger.entries = v->entries;
    free(v->keys);
    free(v->key_lengths);
    free(v->values);
    *v = bigger;
    return 0;
}

int vocab_put(vocab_table *v, const char *s, size_t n, int32_t id)
{
    if (2 * (v->entries + 1) > v->capacity && vocab_rehash(v)) return -1;
    size_t i = vocab_slot(v, s, n);
    if (v->keys[i]) return 0;
    if (!(v->keys[i] = tokenizer_strndup(s, n))) return error_set("out of memory loading a tokenizer vocabulary");
    v->key_lengths[i] = n;
    v->values[i] = id;
    v->entries++;
    return 0;
}

int32_t vocab_get(const vocab_table *v, const char *s, size_t n)
{
    if (!v->keys) return -1;
    size_t i = vocab_slot(v, s, n);
    return v->keys[i] ? v->values[i] : -1;
}

int vocab_reverse(const vocab_table *v, int32_t size, const char ***words)
{
    *words = calloc(size > 0 ? (size_t)size : 1, sizeof(char *));
    if (!*words) return error_set("out of memory loading a tokenizer vocabulary");
    for (size_t i = 0; i < v->capacity; i++)
        if (v->keys[i] && v->values[i] >= 0 && v->values[i] < size && !(*words)[v->values[i]])
            (*words)[v->values[i]] = v->keys[i];
    return 0;
}

void vocab_free(vocab_table *v)
{
    for (size_t i = 0; v->keys && i < v->capacity; i++) free(v->keys[i]);
    free(v->keys);
    free(v->key_lengths);
    free(v->values);
    memset(v, 0, sizeof *v);
}

int literal_find_all(const char *literal, const char *s, size_t n, span_list *matches)
{
    size_t m = strlen(literal);
    for (size_t i = 0; i + m <= n;) {
        if (memcmp(s + i, literal, m) != 0) {
            i++;
            continue;
        }
        if (spans_push(matches, i, m, 0)) return -1;
        i += m;
    }
    return 0;
}
