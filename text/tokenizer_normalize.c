/* Normalizers of tokenizers (its normalizers folder), one step at a time:
 *   NFC | NFD | NFKC | NFKD   utf8proc_map with COMPOSE / DECOMPOSE / COMPAT
 *   Lowercase                 per code point, Rust's char::to_lowercase:
 *                             utf8proc's simple mapping, and U+0130 (İ) ->
 *                             "i" U+0307, the one unconditional multi-char
 *                             lowercase; no final-sigma rule
 *   Strip                     leading / trailing White_Space
 *   Replace                   every non-overlapping match of a String or a
 *                             Regex (tokenizer_regex.h) -> content
 *   Prepend                   prefix, when the text is not empty
 *   Precompiled               sentencepiece's charsmap (precompiled_charsmap.h)
 *   Sequence                  the list flattened */
#include "text/tokenizer_normalize.h"

#include "core/error.h"
#include "text/tokenizer_json.h"
#include "text/precompiled_charsmap.h"
#include "text/tokenizer_regex.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>


typedef enum {
    NORMALIZE_NFC,
    NORMALIZE_NFD,
    NORMALIZE_NFKC,
    NORMALIZE_NFKD,
    NORMALIZE_LOWERCASE,
    NORMALIZE_STRIP,
    NORMALIZE_REPLACE,
    NORMALIZE_PREPEND,
    NORMALIZE_PRECOMPILED,
} normalizer_kind;

typedef struct normalizer_step {
    normalizer_kind kind;
    int strip_left, strip_right; /* Strip */
    char *pattern;               /* Replace with a String pattern */
    tokenizer_regex *regex;      /* Replace with a Regex pattern */
    char *content;               /* Replace: the replacement; Prepend: the prefix */
    precompiled_charsmap *charsmap;
} normalizer_step;

struct tokenizer_normalizer {
    normalizer_step *steps;
    int count, capacity;
};

static void step_free(normalizer_step *step)
{
    free(step->pattern);
    free(step->content);
    tokenizer_regex_free(step->regex);
    precompiled_charsmap_free(step->charsmap);
}

static int load_replace(normalizer_step *step, const cJSON *json, const char *path)
{
    const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(json, "pattern");
    const char *literal = json_string_field(pattern, "String"), *regex = json_string_field(pattern, "Regex");
    const char *content = json_string_field(json, "content");
    if ((!literal && !regex) || !content)
        return error_set("%s: normalizer Replace needs \"pattern\" {\"String\" or \"Regex\"} and \"content\"", path);
    step->kind = NORMALIZE_REPLACE;
    if (regex && tokenizer_regex_compile(&step->regex, regex, path, "normalizer Replace")) return -1;
    if (literal && !*literal) return error_set("%s: normalizer Replace has an empty String pattern", path);
    if (literal && !(step->pattern = tokenizer_strdup(literal))) return error_set("out of memory loading %s", path);
    if (!(step->content = tokenizer_strdup(content))) return error_set("out of memory loading %s", path);
    return 0;
}

static int load_precompiled(normalizer_step *step, const cJSON *json, const char *path)
{
    const char *charsmap = json_string_field(json, "precompiled_charsmap");
    step->kind = NORMALIZE_PRECOMPILED;
    if (!charsmap) return error_set("%s: normalizer Precompiled has no \"precompiled_charsmap\" string", path);
    return precompiled_charsmap_load(&step->charsmap, charsmap, path);
}

static int load_step(normalizer_step *step, const char *type, const cJSON *json, const char *path)
{
    static const struct {
        const char *name;
        normalizer_kind kind;
    } plain[] = {{"NFC", NORMALIZE_NFC}, {"NFD", NORMALIZE_NFD}, {"NFKC", NORMALIZE_NFKC},
                 {"NFKD", NORMALIZE_NFKD}, {"Lowercase", NORMALIZE_LOWERCASE}};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (strcmp(type, plain[i].name) == 0) return step->kind = plain[i].kind, 0;
    if (strcmp(type, "Strip") == 0) {
        step->kind = NORMALIZE_STRIP;
        step->strip_left = json_bool_field(json, "strip_left", 1);
        step->strip_right = json_bool_field(json, "strip_right", 1);
        return 0;
    }
    if (strcmp(type, "Replace") == 0) return load_replace(step, json, path);
    if (strcmp(type, "Prepend") == 0) {
        const char *prepend = json_string_field(json, "prepend");
        if (!prepend) return error_set("%s: normalizer Prepend has no \"prepend\" string", path);
        step->kind = NORMALIZE_PREPEND;
        return (step->content = tokenizer_strdup(prepend)) ? 0 : error_set("out of memory loading %s", path);
    }
    if (strcmp(type, "Precompiled") == 0) return load_precompiled(step, json, path);
    return error_set("%s: normalizer %s is not supported (moedit reads NFC, NFD, NFKC, NFKD, Lowercase, Strip, "
                     "Replace, Prepend, Precompiled and Sequence)",
                     path, type);
}

static int add_step(void *owner, const char *type, const cJSON *json, const char *path)
{
    tokenizer_normalizer *n = owner;
    if (tokenizer_grow((void **)&n->steps, &n->capacity, n->count + 1, sizeof *n->steps)) return -1;
    normalizer_step *step = &n->steps[n->count++];
    memset(step, 0, sizeof *step);
    return load_step(step, type, json, path);
}

int tokenizer_normalizer_load(tokenizer_normalizer **out, const cJSON *json, const char *path)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return error_set("out of memory loading %s", path);
    if (!json || cJSON_IsNull(json)) return 0;
    if (tokenizer_json_steps(json, "normalizer", "normalizers", add_step, *out, path)) {
        tokenizer_normalizer_free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

void tokenizer_normalizer_free(tokenizer_normalizer *n)
{
    if (!n) return;
    for (int i = 0; i < n->count; i++) step_free(&n->steps[i]);
    free(n->steps);
    free(n);
}

/* ---- the steps ------------------------------------------------------------- */

static int normalize_unicode(normalizer_kind kind, const char *s, size_t n, text_buffer *out)
{
    utf8proc_option_t options = UTF8PROC_STABLE;
    if (kind == NORMALIZE_NFC || kind == NORMALIZE_NFKC) options |= UTF8PROC_COMPOSE;
    else options |= UTF8PROC_DECOMPOSE;
    if (kind == NORMALIZE_NFKC || kind == NORMALIZE_NFKD) options |= UTF8PROC_COMPAT;
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t length = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &mapped, options);
    if (length < 0) return error_set("Unicode normalization failed: %s", utf8proc_errmsg(length));
    int status = text_append(out, (const char *)mapped, (size_t)length);
    free(mapped);
    return status;
}

static int normalize_lowercase(const char *s, size_t n, text_buffer *out)
{
    for (size_t i = 0; i < n;) {
        int32_t cp;
        i += (size_t)utf8_next(s + i, n - i, &cp);
        utf8proc_uint8_t bytes[8];
        utf8proc_ssize_t written;
        if (cp == 0x130) {
            written = utf8proc_encode_char('i', bytes);
            written += utf8proc_encode_char(0x307, bytes + written);
        } else {
            written = utf8proc_encode_char(utf8proc_tolower(cp), bytes);
        }
        if (text_append(out, (const char *)bytes, (size_t)written)) return -1;
    }
    return 0;
}

static int normalize_strip(const normalizer_step *step, const char *s, size_t n, text_buffer *out)
{
    size_t first = 0, last = n;
    int32_t cp;
    while (step->strip_left && first < last) {
        int len = utf8_next(s + first, last - first, &cp);
        if (!unicode_is_whitespace(cp)) break;
        first += (size_t)len;
    }
    while (step->strip_right && last > first) {
        size_t start = utf8_previous(s, last, first);
        utf8_next(s + start, last - start, &cp);
        if (!unicode_is_whitespace(cp)) break;
        last = start;
    }
    return text_append(out, s + first, last - first);
}

static int normalize_replace(const normalizer_step *step, const char *s, size_t n, text_buffer *out)
{
    span_list matches = {0};
    int status = 0;
    status = step->regex ? tokenizer_regex_find_all(step->regex, s, n, &matches)
                         : literal_find_all(step->pattern, s, n, &matches);
    size_t done = 0;
    for (int k = 0; !status && k < matches.count; k++) {
        status = text_append(out, s + done, matches.spans[k].start - done) ||
                 text_append(out, step->content, strlen(step->content));
        done = matches.spans[k].start + matches.spans[k].length;
    }
    if (!status) status = text_append(out, s + done, n - done);
    free(matches.spans);
    return status;
}

static int normalize_precompiled(const normalizer_step *step, const char *s, size_t n, text_buffer *out)
{
    char *mapped = NULL;
    size_t length = 0;
    if (precompiled_charsmap_normalize(step->charsmap, s, n, &mapped, &length)) return -1;
    int status = text_append(out, mapped, length);
    free(mapped);
    return status;
}

static int normalize_step(const normalizer_step *step, const char *s, size_t n, text_buffer *out)
{
    switch (step->kind) {
    case NORMALIZE_NFC:
    case NORMALIZE_NFD:
    case NORMALIZE_NFKC:
    case NORMALIZE_NFKD: return normalize_unicode(step->kind, s, n, out);
    case NORMALIZE_LOWERCASE: return normalize_lowercase(s, n, out);
    case NORMALIZE_STRIP: return normalize_strip(step, s, n, out);
    case NORMALIZE_REPLACE: return normalize_replace(step, s, n, out);
    case NORMALIZE_PREPEND:
        if (n > 0 && text_append(out, step->content, strlen(step->content))) return -1;
        return text_append(out, s, n);
    case NORMALIZE_PRECOMPILED: return normalize_precompiled(step, s, n, out);
    }
    return 0;
}

int tokenizer_normalizer_apply(const tokenizer_normalizer *norm, const char *s, size_t n, text_buffer *out)
{
    out->length = 0;
    if (text_append(out, s, n)) return -1;
    text_buffer next = {0};
    for (int i = 0; i < norm->count; i++) {
        next.length = 0;
        int status = text_append(&next, "", 0) || normalize_step(&norm->steps[i], out->data, out->length, &next);
        /* A step's strings come from the file (Replace/Prepend content, a
         * charsmap): text that stops being UTF-8 would stall the loops after
         * it that walk code points. */
        size_t bad = status ? 0 : utf8_invalid_at(next.data, next.length);
        if (!status && bad < next.length)
            status = error_set("normalizer step %d made text that is not valid UTF-8 (byte %zu): the tokenizer file's "
                               "strings are not UTF-8", i + 1, bad);
        if (status) {
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
