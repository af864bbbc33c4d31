/* The tokenizer reproduces the `tokenizers` library on tokenizer.json files it
 * saved (tools/make_text_fixtures.py): every case of
 * tests/fixtures/text_tokenizers/cases.json (punctuation, unknown words, upper
 * case, non-ASCII, empty and whitespace-only text, added tokens in the text, a
 * 1,200-word prompt, truncation to several limits in both directions) gives
 * the same ids. Unsupported components and bad input fail with one line
 * naming the file and the component. */
#include "core/config.h"
#include "core/error.h"
#include "core/text_file.h"
#include "text/tokenizer.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIXTURE_DIR MOEDIT_FIXTURES "/text_tokenizers"
#define MAX_IDS 8192

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (!fp) return;
    fputs(text, fp);
    fclose(fp);
}

/* Writes json into a new temporary file, named in path (which the caller
 * unlinks), and loads it as a tokenizer.json; tokenizer_load's status. */
#define TEMP_TOKENIZER_PATH "/tmp/moedit_tokenizer_XXXXXX"
static int load_json_text(const char *json, char path[sizeof TEMP_TOKENIZER_PATH], tokenizer **tok)
{
    strcpy(path, TEMP_TOKENIZER_PATH);
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    write_text(path, json);
    *tok = NULL;
    return tokenizer_load(tok, path);
}

/* load_json_text of a file that must load: the tokenizer, or NULL with the check failed. */
static tokenizer *load_json_ok(const char *json, char path[sizeof TEMP_TOKENIZER_PATH])
{
    tokenizer *tok;
    CHECK_MSG(load_json_text(json, path, &tok) == 0, "%s", error_message());
    return tok;
}

/* "text" repeated "repeat" times, joined by spaces. */
static char *case_text(const cJSON *c)
{
    const char *unit = cJSON_GetObjectItem(c, "text")->valuestring;
    const cJSON *repeat = cJSON_GetObjectItem(c, "repeat");
    int times = repeat ? repeat->valueint : 1;
    size_t n = strlen(unit);
    char *text = malloc((n + 1) * (size_t)times + 1);
    text[0] = '\0';
    for (int i = 0; i < times; i++) {
        if (i) strcat(text, " ");
        strcat(text, unit);
    }
    return text;
}

static tokenizer *load_fixture(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", FIXTURE_DIR, name);
    tokenizer *tok = NULL;
    CHECK_MSG(tokenizer_load(&tok, path) == 0, "%s", error_message());
    return tok;
}

static void check_case(const cJSON *c, int *checked)
{
    const char *name = cJSON_GetObjectItem(c, "tokenizer")->valuestring;
    int max_length = cJSON_GetObjectItem(c, "max_length")->valueint;
    const cJSON *want = cJSON_GetObjectItem(c, "ids");
    tokenizer *tok = load_fixture(name);
    if (!tok) return;
    char *text = case_text(c);
    int32_t *ids = malloc(MAX_IDS * sizeof(int32_t));
    int count = -1;
    int status = tokenizer_encode(tok, text, ids, max_length ? max_length : MAX_IDS, &count);
    CHECK_MSG(status == 0, "%s", error_message());
    int n = cJSON_GetArraySize(want), same = count == n;
    for (int i = 0; same && i < n; i++) same = ids[i] == cJSON_GetArrayItem(want, i)->valueint;
    CHECK_MSG(same, "%s \"%.60s\" max %d: got %d ids, want %d (first difference shown by index)", name, text,
              max_length, count, n);
    if (!same)
        for (int i = 0; i < n && i < count; i++)
            if (ids[i] != cJSON_GetArrayItem(want, i)->valueint) {
                fprintf(stderr, "  index %d: got %d want %d\n", i, ids[i], cJSON_GetArrayItem(want, i)->valueint);
                break;
            }
    /* Counting agrees with encoding wherever nothing was truncated. */
    int full = -1;
    CHECK(tokenizer_count(tok, text, &full) == 0);
    CHECK(full >= count);
    if (max_length == 0 && strcmp(name, "wordlevel_split_eos.json") != 0) CHECK(full == count);
    *checked += same;
    free(ids);
    free(text);
    tokenizer_free(tok);
}

static void test_matches_tokenizers_library(void)
{
    char *json = NULL;
    CHECK_MSG(text_file_read(FIXTURE_DIR "/cases.json", CONFIG_MAX_BYTES, "fixture", &json) == 0, "%s", error_message());
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    CHECK(root != NULL);
    const cJSON *cases = cJSON_GetObjectItem(root, "cases"), *c;
    int total = 0, checked = 0;
    cJSON_ArrayForEach(c, cases)
    {
        check_case(c, &checked);
        total++;
    }
    CHECK(total >= 60);
    printf("  tokenizers library cases: %d of %d identical\n", checked, total);
    cJSON_Delete(root);
    free(json);
}

/* The truncation contract on the text_tiny tokenizer ("[BOS] $A"). */
static void test_truncation_contract(void)
{
    tokenizer *tok = load_fixture("wordlevel_bos.json");
    if (!tok) return;
    int32_t ids[16];
    int count = -1, full = -1;
    const char *text = "a red circle on the left";
    CHECK(tokenizer_num_special_tokens(tok) == 1);
    CHECK(tokenizer_count(tok, text, &full) == 0 && full == 7);
    CHECK(tokenizer_encode(tok, text, ids, 4, &count) == 0 && count == 4);
    CHECK(ids[0] == 1); /* BOS survives */
    CHECK(tokenizer_encode(tok, text, ids, 1, &count) == 0 && count == 1 && ids[0] == 1);
    CHECK(tokenizer_encode(tok, "", ids, 16, &count) == 0 && count == 1 && ids[0] == 1);
    CHECK(tokenizer_encode(tok, text, ids, 0, &count) != 0 && count == 0);
    CHECK_MSG(strstr(error_message(), "wordlevel_bos.json") && strstr(error_message(), "special token"), "got: %s",
              error_message());
    CHECK(tokenizer_vocab_size(tok) == 64);
    tokenizer_free(tok);

    tok = load_fixture("wordlevel_split_eos.json"); /* "[BOS] $A [EOS]", file max_length 8, Left */
    if (!tok) return;
    CHECK(tokenizer_encode(tok, text, ids, 16, &count) == 0 && count == 8);
    CHECK(tokenizer_encode(tok, text, ids, 1, &count) != 0);
    tokenizer_free(tok);
}

static void test_bad_input(void)
{
    tokenizer *tok = load_fixture("wordlevel_bos.json");
    if (!tok) return;
    int32_t ids[8];
    int count;
    CHECK(tokenizer_encode(tok, "a red \xC3\x28 circle", ids, 8, &count) != 0);
    CHECK_MSG(strstr(error_message(), "not valid UTF-8") != NULL, "got: %s", error_message());
    tokenizer_free(tok);
}

/* Writes the fixture tokenizer with one JSON member replaced, loads it, and
 * expects a failure whose message names the file and contains `expect`. */
static void expect_load_error(const char *member, const char *json_value, const char *expect)
{
    char *text = NULL;
    CHECK_MSG(text_file_read(FIXTURE_DIR "/wordlevel_bos.json", CONFIG_MAX_BYTES, "fixture", &text) == 0, "%s", error_message());
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *value = cJSON_Parse(json_value);
    const char *dot = strchr(member, '.');
    if (dot) { /* "model.type" */
        char outer[64];
        snprintf(outer, sizeof outer, "%.*s", (int)(dot - member), member);
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(root, outer), dot + 1, value);
    } else {
        cJSON_ReplaceItemInObject(root, member, value);
    }
    char *printed = cJSON_Print(root);
    char path[sizeof TEMP_TOKENIZER_PATH];
    tokenizer *tok;
    CHECK_MSG(load_json_text(printed, path, &tok) != 0 && tok == NULL, "%s = %s loaded", member, json_value);
    CHECK_MSG(strstr(error_message(), path) && strstr(error_message(), expect), "%s: got: %s", member,
              error_message());
    printf("  %-14s %-40.40s -> %s\n", member, json_value, error_message());
    unlink(path);
    free(printed);
    cJSON_Delete(root);
}

static void test_unsupported_components(void)
{
    expect_load_error("model.type", "\"BPE\"", "model.merges is not a list");
    expect_load_error("model.type", "\"WordPiece\"", "model type WordPiece is not supported");
    expect_load_error("model.vocab", "[1, 2]", "model.vocab is not an object");
    expect_load_error("normalizer", "{\"type\": \"StripAccents\"}", "normalizer StripAccents is not supported");
    expect_load_error("normalizer", "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Lowercase\"}, "
                                    "{\"type\": \"BertNormalizer\"}]}",
                      "normalizer BertNormalizer is not supported");
    expect_load_error("normalizer", "{\"type\": \"Replace\", \"pattern\": {\"Regex\": \"(\\\\s+\"}, \"content\": \" \"}",
                      "does not compile");
    expect_load_error("pre_tokenizer", "{\"type\": \"Punctuation\"}", "pre_tokenizer Punctuation is not supported");
    expect_load_error("pre_tokenizer", "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\"}]}",
                      "pre_tokenizer Digits is not supported");
    expect_load_error("post_processor", "{\"type\": \"BertProcessing\"}",
                      "post_processor BertProcessing is not supported");
    expect_load_error("model", "null", "no \"model\" object");
    /* An id far beyond any vocabulary: refused, not a table of gigabytes (found by fuzz_clip_tokenizer). */
    expect_load_error("model.vocab", "{\"[UNK]\": 0, \"a\": 536870912}", "moedit reads vocabularies of at most");

    tokenizer *tok = NULL;
    CHECK(tokenizer_load(&tok, "/nonexistent/tokenizer.json") != 0);
    CHECK_MSG(strstr(error_message(), "/nonexistent/tokenizer.json") != NULL, "got: %s", error_message());
    char path[sizeof TEMP_TOKENIZER_PATH];
    CHECK(load_json_text("{\"model\": {\n\"type\": \"WordLevel\",,}", path, &tok) != 0);
    CHECK_MSG(strstr(error_message(), "malformed JSON at line 2") != NULL, "got: %s", error_message());
    unlink(path);
}

/* A WordLevel model without unk_token: an unknown word is an error, not a silent drop. */
static void test_unknown_word_without_unk(void)
{
    char path[sizeof TEMP_TOKENIZER_PATH];
    tokenizer *tok = load_json_ok("{\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0, \"red\": 1}}, "
                                  "\"pre_tokenizer\": {\"type\": \"WhitespaceSplit\"}}",
                                  path);
    if (tok) {
        int32_t ids[4];
        int count;
        CHECK(tokenizer_encode(tok, "a red", ids, 4, &count) == 0 && count == 2 && ids[0] == 0 && ids[1] == 1);
        CHECK(tokenizer_encode(tok, "a blue", ids, 4, &count) != 0);
        CHECK_MSG(strstr(error_message(), "\"blue\" is not in the vocabulary") != NULL, "got: %s", error_message());
        CHECK(tokenizer_encode(tok, "", ids, 4, &count) == 0 && count == 0);
        tokenizer_free(tok);
    }
    unlink(path);
}

/* A Replace whose content is not UTF-8 (raw byte 0xFF in the file) makes
 * text the code-point loops after it cannot walk: one error, not a hang
 * (found by fuzz_tokenizer: WhitespaceSplit spun on such a byte). */
static void test_normalizer_output_not_utf8(void)
{
    char path[sizeof TEMP_TOKENIZER_PATH];
    tokenizer *tok = load_json_ok("{\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}, \"unk_token\": \"a\"}, "
                                  "\"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"String\": \"b\"}, "
                                  "\"content\": \"\xff\"}, "
                                  "\"pre_tokenizer\": {\"type\": \"WhitespaceSplit\"}}",
                                  path);
    if (tok) {
        int32_t ids[4];
        int count;
        CHECK(tokenizer_encode(tok, "a b", ids, 4, &count) != 0);
        CHECK_MSG(strstr(error_message(), "normalizer step 1 made text that is not valid UTF-8") != NULL, "got: %s",
                  error_message());
        CHECK_MSG(tokenizer_encode(tok, "a a", ids, 4, &count) == 0 && count == 2, "%s", error_message());
        tokenizer_free(tok);
    }
    unlink(path);
}

/* tokenizer_unknown_words lists the words a WordLevel vocabulary reads as its unk token (the demo's). */
static void test_unknown_words_listed(void)
{
    char path[sizeof TEMP_TOKENIZER_PATH];
    tokenizer *tok = load_json_ok("{\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"[UNK]\": 0, \"a\": 1, "
                                  "\"red\": 2}, "
                                  "\"unk_token\": \"[UNK]\"}, \"normalizer\": {\"type\": \"Lowercase\"}, "
                                  "\"pre_tokenizer\": {\"type\": \"Whitespace\"}}",
                                  path);
    if (tok) {
        char list[64];
        int count = -1;
        CHECK(tokenizer_unknown_words(tok, "A red circle, a Hexagon", list, sizeof list, &count) == 0);
        CHECK_MSG(count == 3 && !strcmp(list, "\"circle\", \",\", \"hexagon\""), "%d: %s", count, list);
        CHECK(tokenizer_unknown_words(tok, "a red", list, sizeof list, &count) == 0 && count == 0 && !list[0]);
        /* A list too short for every word still counts them all. */
        CHECK(tokenizer_unknown_words(tok, "x y z", list, 8, &count) == 0 && count == 3 && !strcmp(list, "\"x\""));
        CHECK(tokenizer_unknown_words(tok, "x y", NULL, 0, &count) == 0 && count == 2);
        tokenizer_free(tok);
    }
    unlink(path);
}

int main(void)
{
    test_unknown_words_listed();
    test_matches_tokenizers_library();
    test_truncation_contract();
    test_bad_input();
    test_unsupported_components();
    test_unknown_word_without_unk();
    test_normalizer_output_not_utf8();
    return test_finish("test_tokenizer");
}
