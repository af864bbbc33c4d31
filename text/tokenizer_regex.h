/* Regular expressions of tokenizer.json (Split, Replace) and of the built-in
 * pre-tokenizers, run by PCRE2 (8-bit, UTF + UCP, JIT-compiled when the
 * library has a JIT). Internal to text/tokenizer*.c. */
#ifndef MOEDIT_TEXT_TOKENIZER_REGEX_H
#define MOEDIT_TEXT_TOKENIZER_REGEX_H

#include "text/tokenizer_text.h"

#include <stddef.h>

typedef struct tokenizer_regex tokenizer_regex;

/* Compiles a pattern written for tokenizers (which runs Oniguruma): \s, \S,
 * \w, \W are rewritten to Oniguruma's Unicode classes (\s = White_Space,
 * \w = Letter|Mark|Number|Connector_Punctuation), which PCRE2's differ from.
 * what names the pattern in the error ("pre_tokenizer Split"). */
int tokenizer_regex_compile(tokenizer_regex **out, const char *pattern, const char *path, const char *what);

/* Appends to matches every non-overlapping match in s[0..n), leftmost first,
 * as (start, length) relative to s; empty matches are skipped. */
int tokenizer_regex_find_all(const tokenizer_regex *re, const char *s, size_t n, span_list *matches);

/* 1 when the pattern matches at s + at (anchored there), else 0. */
int tokenizer_regex_matches_at(const tokenizer_regex *re, const char *s, size_t n, size_t at);

/* Rust's regex \w (the regex crate: Alphabetic, marks, decimal digits,
 * connector punctuation, ZWNJ/ZWJ), which tokenizers' Whitespace
 * pre-tokenizer and single_word test use; spelled without \w so compiling
 * leaves it as is. */
#define TOKENIZER_RUST_WORD_CLASS "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}"

void tokenizer_regex_free(tokenizer_regex *re);

#endif
