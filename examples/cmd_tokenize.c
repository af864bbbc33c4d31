/* moedit tokenize --tokenizer DIR (--prompt TEXT | --prompt-file FILE)
 *                 [--max-length N] [--json]
 *
 * Prints the ids transformers gives for each prompt (tokenizer(text)
 * ["input_ids"], special tokens added): space-separated, one line per prompt,
 * or with --json one line {"prompt": ..., "ids": [...], "tokens": [...]}.
 * Without --max-length nothing is truncated or padded; with it, truncation as
 * transformers' truncation=True, max_length=N (special tokens kept). A prompt
 * file holds one prompt per line ("\r\n" endings accepted). */
#include "examples/cli.h"

#include "core/error.h"
#include "core/text_file.h"
#include "io/json_out.h"
#include "text/tokenizer.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define TOKENIZE_MAX_PROMPT_FILE_BYTES ((size_t)1 << 30)

static void print_result(const tokenizer *tok, const char *prompt, const int32_t *ids, int count, int json)
{
    if (!json) {
        for (int i = 0; i < count; i++) printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
        return;
    }
    printf("{\"prompt\": ");
    json_write_string(stdout, prompt);
    printf(", \"ids\": [");
    for (int i = 0; i < count; i++) printf("%s%d", i ? ", " : "", ids[i]);
    printf("], \"tokens\": [");
    for (int i = 0; i < count; i++) {
        const char *token = tokenizer_token(tok, ids[i]);
        printf("%s", i ? ", " : "");
        if (token) json_write_string(stdout, token);
        else printf("null");
    }
    printf("]}\n");
}

static int tokenize_one(const tokenizer *tok, const char *prompt, int max_length, int json)
{
    int32_t *ids = NULL;
    int count = 0, status;
    if (max_length > 0) {
        if (!(ids = malloc((size_t)max_length * sizeof(int32_t)))) return error_set("out of memory tokenizing");
        status = tokenizer_encode(tok, prompt, ids, max_length, &count);
    } else {
        status = tokenizer_encode_all(tok, prompt, strlen(prompt), &ids, &count);
    }
    if (status == 0) print_result(tok, prompt, ids, count, json);
    free(ids);
    return status;
}

/* The whole file as bytes (NUL bytes kept, so they can be refused). */
static int read_prompt_file(const char *path, char **text, size_t *size)
{
    *text = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return error_set("%s: cannot open prompt file: %s", path, strerror(errno));
    size_t capacity = 0;
    for (;;) {
        if (*size + 4096 + 1 > capacity) {
            capacity = capacity ? 2 * capacity : 65536;
            char *grown = capacity <= TOKENIZE_MAX_PROMPT_FILE_BYTES ? realloc(*text, capacity) : NULL;
            if (!grown) {
                fclose(fp);
                return error_set("%s: prompt file over %zu MiB or out of memory", path,
                                 TOKENIZE_MAX_PROMPT_FILE_BYTES >> 20);
            }
            *text = grown;
        }
        size_t got = fread(*text + *size, 1, 4096, fp);
        *size += got;
        if (got < 4096) break;
    }
    int failed = ferror(fp);
    fclose(fp);
    (*text)[*size] = '\0';
    return failed ? error_set("%s: cannot read prompt file", path) : 0;
}

/* Line line_number of the file, s[0..n): UTF-8 without NUL bytes. */
static int check_line(const char *path, int line_number, const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t len = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (len <= 0) return error_set("%s: line %d is not valid UTF-8 (byte %zu of the line)", path, line_number, i + 1);
        if (cp == 0) return error_set("%s: line %d holds a NUL byte", path, line_number);
        i += (size_t)len;
    }
    return 0;
}

/* Every line of path is checked before any is printed, then encoded. */
static int tokenize_file(const tokenizer *tok, const char *path, int max_length, int json)
{
    char *text = NULL;
    size_t size = 0;
    int status = read_prompt_file(path, &text, &size), line_number = 1;
    for (char *line = text; !status && line < text + size; line_number++) {
        char *end = memchr(line, '\n', (size_t)(text + size - line));
        if (!end) end = text + size;
        status = check_line(path, line_number, line, (size_t)(end - line));
        line = end + 1;
    }
    for (char *line = text; !status && line < text + size;) {
        char *end = memchr(line, '\n', (size_t)(text + size - line));
        if (!end) end = text + size;
        *end = '\0';
        if (end > line && end[-1] == '\r') end[-1] = '\0';
        status = tokenize_one(tok, line, max_length, json);
        line = end + 1;
    }
    free(text);
    return status;
}

int cli_tokenize(int argc, char **argv)
{
    const char *dir = NULL, *model = NULL, *prompt = NULL, *prompt_file = NULL;
    int64_t max_length = CLI_UNSET; /* -1 typed was taken as "not given" */
    int json = 0;
    char model_tokenizer[4200];
    cli_option options[] = {
        {"tokenizer", OPT_STRING, &dir, "tokenizer folder: tokenizer.json, or CLIP's vocab.json + merges.txt", "DIR"},
        {"model", OPT_STRING, &model, "a model folder: its tokenizer/ (instead of --tokenizer)", "DIR"},
        {"prompt", OPT_STRING, &prompt, "the text to tokenize", "TEXT"},
        {"prompt-file", OPT_STRING, &prompt_file, "one prompt per line (UTF-8)", "FILE"},
        {"max-length", OPT_INT, &max_length, "truncate to N ids as transformers does (special tokens kept)", "N"},
        {"json", OPT_FLAG, &json, "one JSON line per prompt: {\"prompt\", \"ids\", \"tokens\"}", NULL},
    };
    int parsed = cli_parse(argc, argv,
                           "usage: moedit tokenize (--tokenizer DIR | --model DIR) (--prompt TEXT | --prompt-file FILE) "
                           "[--max-length N] [--json]",
                           options, (int)(sizeof options / sizeof options[0]));
    if (parsed != 0) return parsed < 0 ? -1 : 0;
    if (dir && model) return error_set("give --tokenizer DIR or --model DIR, not both");
    if (model) snprintf(model_tokenizer, sizeof model_tokenizer, "%s/tokenizer", model), dir = model_tokenizer;
    if (!dir) return error_set("tokenize needs --tokenizer DIR (or --model DIR: its tokenizer/)");
    if (!prompt == !prompt_file) return error_set("tokenize needs exactly one of --prompt TEXT and --prompt-file FILE");
    if (max_length != CLI_UNSET && (max_length < 1 || max_length > 1000000))
        return error_set("--max-length %lld: give a number of tokens from 1 to 1000000", (long long)max_length);
    tokenizer *tok = NULL;
    if (tokenizer_load_dir(&tok, dir)) return -1;
    int limit = max_length > 0 ? (int)max_length : 0;
    if (limit > 0 && limit < tokenizer_num_special_tokens(tok)) {
        int specials = tokenizer_num_special_tokens(tok);
        tokenizer_free(tok);
        return error_set("--max-length %d cannot hold the tokenizer's %d special token(s)", limit, specials);
    }
    int status = prompt ? tokenize_one(tok, prompt, limit, json) : tokenize_file(tok, prompt_file, limit, json);
    tokenizer_free(tok);
    fflush(stdout);
    return status;
}
