/* moedit's tokenizers give exactly transformers' ids on HiDream-I1's
 * tokenizer formats: for every folder of tests/fixtures/tokenizers (made by
 * tools/make_tokenizer_fixtures.py with transformers 5.25 / tokenizers
 * 0.23.3), every line of expected.jsonl {"text", "ids", "tokens"} must encode
 * (tokenizer_load_dir + tokenizer_encode_all) to exactly "ids", and
 * tokenizer_token must name exactly "tokens". A mismatch fails the test and
 * the first few are printed with the text and both id lists. Also checked:
 * pad id and model_max_length from the folder's config, and truncation to a
 * few limits keeping the special tokens (transformers' truncation=True).
 * Prints the count equal per folder and the strings encoded per second.
 *
 * clip, clip2 (CLIP vocab.json + merges.txt), llama3 (BPE tokenizer.json) and
 * t5 (Unigram + Precompiled tokenizer.json). */
#include "core/error.h"
#include "core/text_file.h"
#include "text/tokenizer.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FIXTURE_DIR MOEDIT_FIXTURES "/tokenizers"
#define MAX_PRINTED_MISMATCHES 5

typedef struct folder {
    const char *name;
    int32_t pad_id;
    int model_max_length;
    int leading_specials, trailing_specials; /* the template around $A */
} folder;

static const folder folders[] = {
    {"clip", 3113, 77, 1, 1},
    {"clip2", 0, 77, 1, 1},
    {"llama3", -1, 131072, 1, 0},
    {"t5", 0, 512, 0, 1},
};

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void print_ids(const char *label, const int32_t *ids, int count)
{
    fprintf(stderr, "    %s [", label);
    for (int i = 0; i < count; i++) fprintf(stderr, "%s%d", i ? ", " : "", ids[i]);
    fprintf(stderr, "]\n");
}

/* Appends code point cp as UTF-8. */
static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) return out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), 2;
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

/* The line's "text" value decoded with its length: cJSON's strings end at a
 * NUL, and some test strings hold U+0000. NULL if the line has none. */
static char *text_value(const char *line, size_t *length)
{
    const char *p = strstr(line, "\"text\":");
    if (!p || !(p = strchr(p + 7, '"'))) return NULL;
    char *out = malloc(strlen(p) + 1);
    size_t n = 0;
    for (p++; *p && *p != '"'; p++) {
        if (*p != '\\') {
            out[n++] = *p;
            continue;
        }
        char c = *++p;
        if (c == 'u') {
            uint32_t cp = (uint32_t)strtoul((char[5]){p[1], p[2], p[3], p[4], 0}, NULL, 16);
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p[1] == '\\' && p[2] == 'u') {
                uint32_t low = (uint32_t)strtoul((char[5]){p[3], p[4], p[5], p[6], 0}, NULL, 16);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                p += 6;
            }
            n += put_utf8(out + n, cp);
        } else {
            out[n++] = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c == 'b' ? '\b' : c == 'f' ? '\f' : c;
        }
    }
    out[n] = '\0';
    *length = n;
    return out;
}

static int read_ids(const cJSON *list, int32_t **ids)
{
    int n = cJSON_GetArraySize(list), i = 0;
    *ids = malloc((size_t)(n + 1) * sizeof(int32_t));
    const cJSON *item;
    cJSON_ArrayForEach(item, list)(*ids)[i++] = (int32_t)item->valuedouble;
    return n;
}

static int same_tokens(const tokenizer *tok, const cJSON *tokens, const int32_t *ids, int count)
{
    if (cJSON_GetArraySize(tokens) != count) return 0;
    for (int i = 0; i < count; i++) {
        const char *got = tokenizer_token(tok, ids[i]);
        const cJSON *want = cJSON_GetArrayItem(tokens, i);
        if (!got || !cJSON_IsString(want) || strcmp(got, want->valuestring) != 0) return 0;
    }
    return 1;
}

/* Truncated to limit: the leading specials, the first content ids, the
 * trailing specials, as transformers' truncation=True, max_length=limit. */
static void check_truncation(const tokenizer *tok, const folder *f, const char *text, const int32_t *want, int count)
{
    static const int limits[] = {2, 3, 5, 8, 77};
    int specials = f->leading_specials + f->trailing_specials;
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        int limit = limits[k];
        if (limit >= count) continue;
        int32_t got[128], expect[128];
        int n = 0, m = 0;
        for (int i = 0; i < limit - f->trailing_specials; i++) expect[m++] = want[i];
        for (int i = count - f->trailing_specials; i < count; i++) expect[m++] = want[i];
        int status = tokenizer_encode(tok, text, got, limit, &n);
        CHECK_MSG(status == 0 && n == limit && n == m && memcmp(got, expect, (size_t)m * sizeof(int32_t)) == 0,
                  "%s: truncation to %d (%d specials) of \"%.60s\" differs", f->name, limit, specials, text);
    }
}

static void check_folder(const folder *f)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s", FIXTURE_DIR, f->name);
    snprintf(path, sizeof path, "%s/expected.jsonl", dir);
    tokenizer *tok = NULL;
    CHECK_MSG(tokenizer_load_dir(&tok, dir) == 0, "%s", error_message());
    char *text = NULL;
    CHECK_MSG(text_file_read(path, (size_t)1 << 30, "fixture", &text) == 0, "%s", error_message());
    if (!tok || !text) {
        tokenizer_free(tok);
        free(text);
        return;
    }
    CHECK_MSG(tokenizer_pad_id(tok) == f->pad_id, "%s: pad id %d, want %d", f->name, tokenizer_pad_id(tok), f->pad_id);
    CHECK_MSG(tokenizer_model_max_length(tok) == f->model_max_length, "%s: model_max_length %d, want %d", f->name,
              tokenizer_model_max_length(tok), f->model_max_length);
    CHECK(tokenizer_num_special_tokens(tok) == f->leading_specials + f->trailing_specials);
    int strings = 0, equal = 0, tokens_equal = 0, truncations = 0;
    double encode_seconds = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        cJSON *entry = cJSON_Parse(line);
        size_t length = 0;
        char *string = text_value(line, &length);
        if (!entry || !string) {
            CHECK_MSG(0, "%s: line %d is not {\"text\", \"ids\", \"tokens\"}", path, strings + 1);
            cJSON_Delete(entry);
            free(string);
            continue;
        }
        int32_t *want = NULL, *got = NULL;
        int want_count = read_ids(cJSON_GetObjectItemCaseSensitive(entry, "ids"), &want), got_count = 0;
        double start = seconds_now();
        int status = tokenizer_encode_all(tok, string, length, &got, &got_count);
        encode_seconds += seconds_now() - start;
        strings++;
        if (status == 0 && got_count == want_count && memcmp(got, want, (size_t)got_count * sizeof(int32_t)) == 0) {
            equal++;
            tokens_equal += same_tokens(tok, cJSON_GetObjectItemCaseSensitive(entry, "tokens"), want, want_count);
            if (strings % 97 == 0 && strlen(string) == length && truncations++ < 40)
                check_truncation(tok, f, string, want, want_count);
        } else if (strings - equal <= MAX_PRINTED_MISMATCHES) {
            fprintf(stderr, "  %s line %d mismatch%s%s\n    text \"%s\"\n", f->name, strings, status ? ": " : "",
                    status ? error_message() : "", string);
            print_ids("want", want, want_count);
            print_ids("got ", got, got_count);
        }
        free(want);
        free(got);
        free(string);
        cJSON_Delete(entry);
    }
    CHECK_MSG(equal == strings, "%s: %d of %d strings differ from transformers", f->name, strings - equal, strings);
    CHECK_MSG(tokens_equal == equal, "%s: %d strings with equal ids name other tokens", f->name, equal - tokens_equal);
    printf("  %-7s %d/%d strings equal to transformers (tokens equal: %d), %.0f strings/s\n", f->name, equal, strings,
           tokens_equal, encode_seconds > 0 ? strings / encode_seconds : 0.0);
    free(text);
    tokenizer_free(tok);
}

int main(void)
{
    for (size_t i = 0; i < sizeof folders / sizeof folders[0]; i++) check_folder(&folders[i]);
    return test_finish("test_tokenizer_fixtures");
}
