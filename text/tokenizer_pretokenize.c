/* Pre-tokenizers of tokenizers (its pre_tokenizers folder). Every step maps each
 * piece to sub-pieces; empty pieces vanish.
 *   Split{pattern, behavior, invert}  the pattern (String or Regex) cuts the
 *       piece into match / non-match segments (flipped by invert), combined by
 *       behavior: Removed drops matches; Isolated keeps each; MergedWithPrevious
 *       / MergedWithNext glue a match to its neighbour; Contiguous merges runs
 *   Whitespace        Split(\w+|[^\w\s]+, Removed, invert), Rust's \w and \s
 *   WhitespaceSplit   Split(char::is_whitespace, Removed)
 *   ByteLevel         optional " " prefix, the GPT-2 regex (use_regex,
 *       Isolated), then every byte b -> the printable code point bytes_char(b):
 *       b itself for '!'..'~', U+00A1..U+00AC and U+00AE..U+00FF, else 256 + k
 *       for the k-th remaining byte (GPT-2's bytes_to_unicode)
 *   Metaspace         ' ' -> replacement; prepend_scheme always / first (only
 *       the piece at offset 0 of the text) / never adds the replacement in
 *       front unless there; split: Split(replacement, MergedWithNext)
 *   Sequence          the steps in turn */
#include "text/tokenizer_pretokenize.h"

#include "core/error.h"
#include "text/tokenizer_json.h"
#include "text/tokenizer_regex.h"

#include <stdlib.h>
#include <string.h>

/* GPT-2's pre-tokenization regex (tokenizers' ByteLevel). */
#define BYTE_LEVEL_PATTERN "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
/* Whitespace's \w+|[^\w\s]+ with the regex crate's classes (not Oniguruma's:
 * "x²" is one word for Oniguruma, two for tokenizers' Whitespace). */
#define WHITESPACE_PATTERN \
    "[" TOKENIZER_RUST_WORD_CLASS "]+|[^" TOKENIZER_RUST_WORD_CLASS "\\p{White_Space}]+"

typedef enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREVIOUS, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS } split_behavior;

typedef enum { PRE_SPLIT, PRE_WHITESPACE_SPLIT, PRE_BYTE_LEVEL, PRE_METASPACE } pre_kind;

typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } prepend_scheme;

typedef struct pre_step {
    pre_kind kind;
    /* Split (also Whitespace) and ByteLevel's regex */
    tokenizer_regex *regex;
    char *literal; /* Split with a String pattern; Metaspace's replacement */
    split_behavior behavior;
    int invert;
    /* ByteLevel */
    int add_prefix_space;
    char byte_chars[256][3];
    unsigned char byte_lengths[256];
    /* Metaspace */
    prepend_scheme prepend;
    int split;
} pre_step;

struct tokenizer_pre_tokenizer {
    pre_step *steps;
    int count, capacity;
};

/* A segment of a piece: match or not. */
typedef struct segment {
    size_t start, end;
    int is_match;
} segment;

typedef struct segment_list {
    segment *items;
    int count, capacity;
} segment_list;

/* ---- loading --------------------------------------------------------------- */

static void byte_level_table(pre_step *step)
{
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)extra++;
        if (cp < 0x80) {
            step->byte_chars[b][0] = (char)cp;
            step->byte_lengths[b] = 1;
        } else {
            step->byte_chars[b][0] = (char)(0xC0 | (cp >> 6));
            step->byte_chars[b][1] = (char)(0x80 | (cp & 0x3F));
            step->byte_lengths[b] = 2;
        }
    }
}

static int load_split(pre_step *step, const cJSON *json, const char *path)
{
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(json, "pattern");
    const char *literal = json_string_field(pattern, "String"), *regex = json_string_field(pattern, "Regex");
    const char *behavior = json_string_field(json, "behavior");
    if (!literal && !regex) return error_set("%s: pre_tokenizer Split needs \"pattern\" {\"String\" or \"Regex\"}", path);
    step->kind = PRE_SPLIT;
    step->invert = json_bool_field(json, "invert", 0);
    int found = 0;
    for (int i = 0; behavior && i < 5; i++)
        if (strcmp(behavior, names[i]) == 0) step->behavior = (split_behavior)i, found = 1;
    if (!found)
        return error_set("%s: pre_tokenizer Split behavior %s is not supported", path, behavior ? behavior : "(none)");
    if (regex) return tokenizer_regex_compile(&step->regex, regex, path, "pre_tokenizer Split");
    if (!*literal) return error_set("%s: pre_tokenizer Split has an empty String pattern", path);
    return (step->literal = tokenizer_strdup(literal)) ? 0 : error_set("out of memory loading %s", path);
}

static int load_metaspace(pre_step *step, const cJSON *json, const char *path)
{
    const char *replacement = json_string_field(json, "replacement");
    const char *scheme = json_string_field(json, "prepend_scheme");
    step->kind = PRE_METASPACE;
    if (!replacement || !*replacement) return error_set("%s: pre_tokenizer Metaspace has no \"replacement\"", path);
    int32_t cp;
    if (utf8_next(replacement, strlen(replacement), &cp) != (int)strlen(replacement))
        return error_set("%s: pre_tokenizer Metaspace replacement must be one character", path);
    if (!(step->literal = tokenizer_strdup(replacement))) return error_set("out of memory loading %s", path);
    step->split = json_bool_field(json, "split", 1);
    if (!scheme) step->prepend = json_bool_field(json, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
    else if (strcmp(scheme, "always") == 0) step->prepend = PREPEND_ALWAYS;
    else if (strcmp(scheme, "first") == 0) step->prepend = PREPEND_FIRST;
    else if (strcmp(scheme, "never") == 0) step->prepend = PREPEND_NEVER;
    else return error_set("%s: pre_tokenizer Metaspace prepend_scheme %s is not supported", path, scheme);
    return 0;
}

static int load_step(pre_step *step, const char *type, const cJSON *json, const char *path)
{
    if (strcmp(type, "Split") == 0) return load_split(step, json, path);
    if (strcmp(type, "Whitespace") == 0) {
        step->kind = PRE_SPLIT;
        step->behavior = SPLIT_REMOVED;
        step->invert = 1;
        return tokenizer_regex_compile(&step->regex, WHITESPACE_PATTERN, path, "pre_tokenizer Whitespace");
    }
    if (strcmp(type, "WhitespaceSplit") == 0) return step->kind = PRE_WHITESPACE_SPLIT, 0;
    if (strcmp(type, "ByteLevel") == 0) {
        step->kind = PRE_BYTE_LEVEL;
        step->add_prefix_space = json_bool_field(json, "add_prefix_space", 1);
        byte_level_table(step);
        if (!json_bool_field(json, "use_regex", 1)) return 0;
        return tokenizer_regex_compile(&step->regex, BYTE_LEVEL_PATTERN, path, "pre_tokenizer ByteLevel");
    }
    if (strcmp(type, "Metaspace") == 0) return load_metaspace(step, json, path);
    return error_set("%s: pre_tokenizer %s is not supported (moedit reads Split, Whitespace, WhitespaceSplit, "
                     "ByteLevel, Metaspace and Sequence)",
                     path, type);
}

static int add_step(void *owner, const char *type, const cJSON *json, const char *path)
{
    tokenizer_pre_tokenizer *p = owner;
    if (tokenizer_grow((void **)&p->steps, &p->capacity, p->count + 1, sizeof *p->steps)) return -1;
    pre_step *step = &p->steps[p->count++];
    memset(step, 0, sizeof *step);
    return load_step(step, type, json, path);
}

int tokenizer_pre_tokenizer_load(tokenizer_pre_tokenizer **out, const cJSON *json, const char *path)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return error_set("out of memory loading %s", path);
    if (!json || cJSON_IsNull(json)) return 0;
    if (tokenizer_json_steps(json, "pre_tokenizer", "pretokenizers", add_step, *out, path)) {
        tokenizer_pre_tokenizer_free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

void tokenizer_pre_tokenizer_free(tokenizer_pre_tokenizer *p)
{
    if (!p) return;
    for (int i = 0; i < p->count; i++) {
        tokenizer_regex_free(p->steps[i].regex);
        free(p->steps[i].literal);
    }
    free(p->steps);
    free(p);
}

void pre_tokenized_free(pre_tokenized *p)
{
    free(p->text.data);
    free(p->scratch_text.data);
    free(p->pieces.spans);
    free(p->scratch_pieces.spans);
    memset(p, 0, sizeof *p);
}

/* ---- splitting --------------------------------------------------------------- */

static int segment_push(segment_list *l, size_t start, size_t end, int is_match)
{
    if (tokenizer_grow((void **)&l->items, &l->capacity, l->count + 1, sizeof(segment))) return -1;
    l->items[l->count++] = (segment){start, end, is_match};
    return 0;
}

/* Pattern::find_matches: the piece as alternating non-match / match segments. */
static int find_segments(const pre_step *step, const char *s, size_t n, segment_list *out)
{
    span_list matches = {0};
    int status = 0;
    if (step->regex) {
        status = tokenizer_regex_find_all(step->regex, s, n, &matches);
    } else if (step->kind == PRE_WHITESPACE_SPLIT) {
        int32_t cp;
        for (size_t i = 0; !status && i < n;) {
            int len = utf8_next(s + i, n - i, &cp);
            if (unicode_is_whitespace(cp)) status = spans_push(&matches, i, (size_t)len, 0);
            i += (size_t)len;
        }
    } else {
        status = literal_find_all(step->literal, s, n, &matches);
    }
    size_t previous = 0;
    for (int k = 0; !status && k < matches.count; k++) {
        size_t start = matches.spans[k].start, end = start + matches.spans[k].length;
        if (previous != start) status = segment_push(out, previous, start, 0);
        if (!status) status = segment_push(out, start, end, 1);
        previous = end;
    }
    if (!status && previous != n) status = segment_push(out, previous, n, 0);
    free(matches.spans);
    if (!status && step->invert)
        for (int k = 0; k < out->count; k++) out->items[k].is_match = !out->items[k].is_match;
    return status;
}

/* SplitDelimiterBehavior applied in place; kept segments get is_match = 0,
 * removed ones is_match = 1. */
static void apply_behavior(split_behavior behavior, segment_list *l)
{
    int kept = 0, previous_match = 0;
    if (behavior == SPLIT_ISOLATED) {
        for (int k = 0; k < l->count; k++) l->items[k].is_match = 0;
        return;
    }
    if (behavior == SPLIT_REMOVED) return;
    if (behavior == SPLIT_MERGED_NEXT) {
        /* Walk backwards: a match joins the segment after it. */
        int write = l->count;
        for (int k = l->count - 1; k >= 0; k--) {
            segment seg = l->items[k];
            if (seg.is_match && !previous_match && write < l->count) l->items[write].start = seg.start;
            else l->items[--write] = (segment){seg.start, seg.end, 0};
            previous_match = seg.is_match;
        }
        memmove(l->items, l->items + write, (size_t)(l->count - write) * sizeof(segment));
        l->count -= write;
        return;
    }
    for (int k = 0; k < l->count; k++) {
        segment seg = l->items[k];
        int merge = behavior == SPLIT_MERGED_PREVIOUS ? seg.is_match && !previous_match : seg.is_match == previous_match;
        if (merge && kept > 0) l->items[kept - 1].end = seg.end;
        else l->items[kept++] = (segment){seg.start, seg.end, 0};
        previous_match = seg.is_match;
    }
    l->count = kept;
}

static int emit(pre_tokenized *p, const char *s, size_t n, int at_origin)
{
    size_t start = p->scratch_text.length;
    if (text_append(&p->scratch_text, s, n)) return -1;
    return spans_push(&p->scratch_pieces, start, n, at_origin);
}

static int split_piece(const pre_step *step, split_behavior behavior, const char *s, size_t n, int at_origin,
                       pre_tokenized *p)
{
    segment_list segments = {0};
    int status = find_segments(step, s, n, &segments);
    if (!status) apply_behavior(behavior, &segments);
    for (int k = 0; !status && k < segments.count; k++) {
        const segment *seg = &segments.items[k];
        if (!seg->is_match) status = emit(p, s + seg->start, seg->end - seg->start, at_origin && seg->start == 0);
    }
    free(segments.items);
    return status;
}

static int byte_level_piece(const pre_step *step, const char *s, size_t n, int at_origin, pre_tokenized *p)
{
    text_buffer prefixed = {0}, mapped = {0};
    int status = 0;
    if (step->add_prefix_space && (n == 0 || s[0] != ' ')) {
        status = text_append(&prefixed, " ", 1) || text_append(&prefixed, s, n);
        s = prefixed.data;
        n = prefixed.length;
    }
    segment_list segments = {0};
    if (!status && step->regex) status = find_segments(step, s, n, &segments);
    else if (!status) status = segment_push(&segments, 0, n, 0);
    for (int k = 0; !status && k < segments.count; k++) {
        mapped.length = 0;
        for (size_t i = segments.items[k].start; !status && i < segments.items[k].end; i++) {
            unsigned char b = (unsigned char)s[i];
            status = text_append(&mapped, step->byte_chars[b], step->byte_lengths[b]);
        }
        if (!status && mapped.length) status = emit(p, mapped.data, mapped.length, at_origin && segments.items[k].start == 0);
    }
    free(segments.items);
    free(prefixed.data);
    free(mapped.data);
    return status;
}

static int metaspace_piece(const pre_step *step, const char *s, size_t n, int at_origin, pre_tokenized *p)
{
    text_buffer replaced = {0};
    size_t r = strlen(step->literal);
    int status = 0;
    int has_prefix = n >= r && memcmp(s, step->literal, r) == 0;
    /* A piece starting with ' ' starts with the replacement once replaced. */
    if (n > 0 && s[0] == ' ') has_prefix = 1;
    if ((step->prepend == PREPEND_ALWAYS || (step->prepend == PREPEND_FIRST && at_origin)) && !has_prefix)
        status = text_append(&replaced, step->literal, r);
    for (size_t i = 0; !status && i < n; i++)
        status = s[i] == ' ' ? text_append(&replaced, step->literal, r) : text_append(&replaced, s + i, 1);
    if (!status) {
        if (step->split) status = split_piece(step, SPLIT_MERGED_NEXT, replaced.data, replaced.length, at_origin, p);
        else status = emit(p, replaced.data, replaced.length, at_origin);
    }
    free(replaced.data);
    return status;
}

static int step_piece(const pre_step *step, const char *s, size_t n, int at_origin, pre_tokenized *p)
{
    switch (step->kind) {
    case PRE_SPLIT: return split_piece(step, step->behavior, s, n, at_origin, p);
    case PRE_WHITESPACE_SPLIT: return split_piece(step, SPLIT_REMOVED, s, n, at_origin, p);
    case PRE_BYTE_LEVEL: return byte_level_piece(step, s, n, at_origin, p);
    case PRE_METASPACE: return metaspace_piece(step, s, n, at_origin, p);
    }
    return 0;
}

int tokenizer_pre_tokenize(const tokenizer_pre_tokenizer *pre, const char *s, size_t n, int at_origin,
                           pre_tokenized *p)
{
    p->text.length = 0;
    p->pieces.count = 0;
    if (text_append(&p->text, s, n) || spans_push(&p->pieces, 0, n, at_origin)) return -1;
    for (int k = 0; k < pre->count; k++) {
        p->scratch_text.length = 0;
        p->scratch_pieces.count = 0;
        for (int i = 0; i < p->pieces.count; i++) {
            const span *piece = &p->pieces.spans[i];
            if (step_piece(&pre->steps[k], p->text.data + piece->start, piece->length, piece->at_origin, p)) return -1;
        }
        text_buffer text = p->text;
        p->text = p->scratch_text;
        p->scratch_text = text;
        span_list pieces = p->pieces;
        p->pieces = p->scratch_pieces;
        p->scratch_pieces = pieces;
    }
    return 0;
}
