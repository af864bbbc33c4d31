/* Oniguruma-compatible patterns on PCRE2; see tokenizer_regex.h.
 *
 * tokenizers' SysRegex is Oniguruma (Ruby syntax, Unicode classes). PCRE2 with
 * PCRE2_UCP agrees on \p{..}, \d (= \p{Nd}), look-around and alternation order
 * (both backtrack), but its \s also matches U+180E and its \w lacks marks and
 * connector punctuation other than '_', so those escapes are rewritten before
 * compiling. Text reaching here was checked as UTF-8 once (PCRE2_NO_UTF_CHECK).
 * find_iter semantics: after a match the search resumes at its end;
 * after an empty match one character later. */
#include "text/tokenizer_regex.h"

#include "core/error.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

struct tokenizer_regex {
    pcre2_code *code;
    int jit; /* pcre2_jit_compile succeeded */
};

#define CLASS_SPACE "\\p{White_Space}"
#define CLASS_NOT_SPACE "\\P{White_Space}"
#define CLASS_WORD "\\p{L}\\p{M}\\p{N}\\p{Pc}"

/* Rewrites \s \S \w \W; fails on \W inside a bracket class (not expressible
 * as a union). */
static int translate(const char *pattern, text_buffer *out, const char *path, const char *what)
{
    int in_class = 0;
    for (const char *p = pattern; *p; p++) {
        if (*p == '\\' && p[1]) {
            const char *replacement = NULL;
            switch (p[1]) {
            case 's': replacement = CLASS_SPACE; break;
            case 'S': replacement = CLASS_NOT_SPACE; break;
            case 'w': replacement = in_class ? CLASS_WORD : "[" CLASS_WORD "]"; break;
            case 'W':
                if (in_class)
                    return error_set("%s: %s pattern \"%s\": \\W inside a character class is not supported", path, what,
                                     pattern);
                replacement = "[^" CLASS_WORD "]";
                break;
            }
            if (replacement ? text_append(out, replacement, strlen(replacement)) : text_append(out, p, 2)) return -1;
            p++;
            continue;
        }
        if (*p == '[' && !in_class) {
            in_class = 1;
            if (text_append(out, p, 1)) return -1;
            if (p[1] == '^') {
                if (text_append(out, ++p, 1)) return -1;
            }
            if (p[1] == ']') {
                if (text_append(out, ++p, 1)) return -1; /* a leading ']' is literal */
            }
            continue;
        }
        if (*p == ']' && in_class) in_class = 0;
        if (text_append(out, p, 1)) return -1;
    }
    return text_append(out, "", 0);
}

int tokenizer_regex_compile(tokenizer_regex **out, const char *pattern, const char *path, const char *what)
{
    *out = NULL;
    text_buffer translated = {0};
    if (translate(pattern, &translated, path, what)) {
        free(translated.data);
        return -1;
    }
    int code;
    PCRE2_SIZE offset;
    pcre2_code *compiled = pcre2_compile((PCRE2_SPTR)translated.data, translated.length, PCRE2_UTF | PCRE2_UCP, &code,
                                         &offset, NULL);
    free(translated.data);
    if (!compiled) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(code, message, sizeof message);
        return error_set("%s: %s pattern \"%s\" does not compile: %s", path, what, pattern, (const char *)message);
    }
    tokenizer_regex *re = calloc(1, sizeof *re);
    if (!re) {
        pcre2_code_free(compiled);
        return error_set("out of memory compiling a pattern of %s", path);
    }
    re->code = compiled;
    re->jit = pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE) == 0;
    *out = re;
    return 0;
}

int tokenizer_regex_find_all(const tokenizer_regex *re, const char *s, size_t n, span_list *matches)
{
    pcre2_match_data *data = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!data) return error_set("out of memory matching a pattern");
    int status = 0;
    size_t at = 0;
    while (at <= n) {
        int rc = re->jit ? pcre2_jit_match(re->code, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, data, NULL)
                         : PCRE2_ERROR_JIT_STACKLIMIT;
        /* Without a JIT, or when a long input outgrows the JIT's stack, the
         * interpreter gives the same match. */
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, data, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR message[256];
            pcre2_get_error_message(rc, message, sizeof message);
            status = error_set("pattern match failed: %s", (const char *)message);
            break;
        }
        const PCRE2_SIZE *ovector = pcre2_get_ovector_pointer(data);
        size_t start = ovector[0], end = ovector[1];
        if (end > start) {
            if (tokenizer_grow((void **)&matches->spans, &matches->capacity, matches->count + 1, sizeof(span))) {
                status = -1;
                break;
            }
            matches->spans[matches->count++] = (span){start, end - start, 0};
            at = end;
            continue;
        }
        if (start >= n) break;
        at = start + 1; /* an empty match: step over one character */
        while (at < n && ((unsigned char)s[at] & 0xC0) == 0x80) at++;
    }
    pcre2_match_data_free(data);
    return status;
}

int tokenizer_regex_matches_at(const tokenizer_regex *re, const char *s, size_t n, size_t at)
{
    pcre2_match_data *data = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!data) return 0;
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, at, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, data, NULL);
    pcre2_match_data_free(data);
    return rc >= 0;
}

void tokenizer_regex_free(tokenizer_regex *re)
{
    if (!re) return;
    pcre2_code_free(re->code);
    free(re);
}
