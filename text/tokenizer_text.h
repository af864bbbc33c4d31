/* Building blocks shared by the tokenizer's files: growable byte, id and span
 * lists, UTF-8 decoding (utf8proc), and the word -> id hash table every model
 * keeps its vocabulary in. Internal to text/tokenizer*.c. */
#ifndef MOEDIT_TEXT_TOKENIZER_TEXT_H
#define MOEDIT_TEXT_TOKENIZER_TEXT_H

#include <stddef.h>
#include <stdint.h>

typedef struct text_buffer {
    char *data; /* NUL-terminated once anything was appended */
    size_t length, capacity;
} text_buffer;

typedef struct id_list {
    int32_t *ids;
    int count, capacity;
} id_list;

/* A piece of text: (start, length) into some buffer; at_origin marks the
 * piece that begins at offset 0 of the original text (Metaspace "first"). */
typedef struct span {
    size_t start, length;
    int at_origin;
} span;

typedef struct span_list {
    span *spans;
    int count, capacity;
} span_list;

int tokenizer_grow(void **data, int *capacity, int needed, size_t item);
int text_append(text_buffer *b, const char *s, size_t n);
int ids_push(id_list *l, int32_t id);
/* Empty spans are dropped, as tokenizers drops empty splits. */
int spans_push(span_list *l, size_t start, size_t length, int at_origin);
/* Every non-overlapping occurrence of `literal` (not empty: the loaders
 * refuse an empty String pattern) in s[0..n), left to right. */
int literal_find_all(const char *literal, const char *s, size_t n, span_list *matches);
char *tokenizer_strdup(const char *s);
char *tokenizer_strndup(const char *s, size_t n);

/* The code point at s[0..n) and its byte length; 0 if s is not valid UTF-8. */
int utf8_next(const char *s, size_t n, int32_t *cp);
/* Start of the code point that ends at s + at (at > floor). */
size_t utf8_previous(const char *s, size_t at, size_t floor);
/* Byte offset of the first invalid UTF-8 sequence, or n if none. */
size_t utf8_invalid_at(const char *s, size_t n);

/* Unicode White_Space: Rust's char::is_whitespace (U+180E, U+200B are not). */
int unicode_is_whitespace(int32_t cp);

/* Open-addressing hash map from word (bytes) to id, with the id -> word
 * reverse list for printing tokens. */
typedef struct vocab_table {
    char **keys;
    size_t *key_lengths;
    int32_t *values;
    size_t capacity; /* a power of two, at least twice the entries */
    size_t entries;
} vocab_table;

int vocab_init(vocab_table *v, size_t entries);
/* Inserts a copy of s[0..n) -> id; a word already present keeps its first id. */
int vocab_put(vocab_table *v, const char *s, size_t n, int32_t id);
int32_t vocab_get(const vocab_table *v, const char *s, size_t n); /* -1 if absent */
/* words[id] for every id in the table (others NULL); words point into v. */
int vocab_reverse(const vocab_table *v, int32_t size, const char ***words);
void vocab_free(vocab_table *v);

#endif
