/* The pipeline transformers 5.25's CLIPTokenizer.__init__ builds on
 * tokenizers (models/clip/tokenization_clip.py), written as tokenizer.json:
 *   normalizer     Sequence[NFC, Replace(Regex \s+ -> " "), Lowercase]
 *   pre_tokenizer  Sequence[Split(<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|
 *                  'm|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+, Removed,
 *                  invert), ByteLevel(add_prefix_space false, use_regex)]
 *   model          BPE(vocab.json, merges.txt, continuing_subword_prefix "",
 *                  end_of_word_suffix "</w>", unk_token, fuse_unk false)
 *   post_processor RobertaProcessing: bos $A eos
 *   added_tokens   tokenizer_config.json's added_tokens_decoder, plus the
 *                  bos/eos/unk/pad tokens it lacks (special, not normalized)
 * Token names default to CLIP's: unk/eos/pad <|endoftext|>, bos <|startoftext|>.
 * No ftfy, no html.unescape: transformers 5 has no slow CLIP tokenizer. */
#include "text/tokenizer_clip.h"

#include "core/error.h"
#include "core/text_file.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIP_SPLIT_PATTERN \
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"

#define CLIP_PIPELINE                                                                                             \
    "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, {\"type\": \"Replace\", "    \
    "\"pattern\": {\"Regex\": \"\\\\s+\"}, \"content\": \" \"}, {\"type\": \"Lowercase\"}]}, "                     \
    "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "          \
    "{\"Regex\": \"\"}, \"behavior\": \"Removed\", \"invert\": true}, {\"type\": \"ByteLevel\", "                  \
    "\"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}]}}"

#define TOKENIZER_MAX_FILE_BYTES ((size_t)1 << 30)

/* merges.txt: "#version" lines skipped, one "a b" pair per line. */
static int read_merges(cJSON *merges, const char *path)
{
    char *text = NULL;
    if (text_file_read(path, TOKENIZER_MAX_FILE_BYTES, "CLIP merges", &text)) return -1;
    int status = 0, line_number = 0;
    for (char *line = text; !status && line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        line_number++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r') line[--n] = '\0';
        if (n && strncmp(line, "#version", 8) != 0) {
            char *space = strchr(line, ' ');
            if (!space || strchr(space + 1, ' ') || space == line || !space[1])
                status = error_set("%s: line %d is not two tokens separated by one space", path, line_number);
            else if (!cJSON_AddItemToArray(merges, cJSON_CreateString(line)))
                status = error_set("out of memory reading %s", path);
        }
        line = next;
    }
    free(text);
    return status;
}

/* An id as JSON gives it: a whole number in [0, INT32_MAX], else -2 (1e20,
 * inf or 0.5 must not reach an int cast: that is undefined). */
static int32_t json_id(const cJSON *id)
{
    double v = id->valuedouble;
    return v >= 0 && v <= INT32_MAX && v == floor(v) ? (int32_t)v : -2;
}

/* The token's id: added tokens first, then the vocabulary; -1 when absent,
 * -2 when its id is no valid id. */
static int32_t token_id(const cJSON *vocab, const cJSON *added, const char *token)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, added)
    {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "id");
        if (cJSON_IsString(content) && cJSON_IsNumber(id) && strcmp(content->valuestring, token) == 0)
            return json_id(id);
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(vocab, token);
    return cJSON_IsNumber(id) ? json_id(id) : -1;
}

/* A special token the config names but added_tokens_decoder lacks. */
static int add_missing_special(cJSON *added, const cJSON *vocab, const char *token)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, added)
    {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");
        if (cJSON_IsString(content) && strcmp(content->valuestring, token) == 0) return 0;
    }
    int32_t id = token_id(vocab, NULL, token);
    if (id < 0) return 0;
    cJSON *entry = cJSON_CreateObject();
    if (!entry || !cJSON_AddNumberToObject(entry, "id", id) || !cJSON_AddStringToObject(entry, "content", token) ||
        !cJSON_AddBoolToObject(entry, "normalized", 0) || !cJSON_AddBoolToObject(entry, "special", 1)) {
        cJSON_Delete(entry);
        return error_set("out of memory building a CLIP tokenizer");
    }
    cJSON_AddItemToArray(added, entry);
    return 0;
}

static cJSON *special_pair(const char *token, int32_t id)
{
    cJSON *pair = cJSON_CreateArray();
    if (pair) {
        cJSON_AddItemToArray(pair, cJSON_CreateString(token));
        cJSON_AddItemToArray(pair, cJSON_CreateNumber(id));
    }
    return pair;
}

static int build_model(cJSON *root, cJSON *vocab, const char *dir, const char *unk)
{
    char path[4200];
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON *merges = cJSON_CreateArray();
    if (!model || !merges) {
        cJSON_Delete(merges);
        cJSON_Delete(vocab);
        return error_set("out of memory building a CLIP tokenizer");
    }
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddStringToObject(model, "unk_token", unk);
    cJSON_AddStringToObject(model, "continuing_subword_prefix", "");
    cJSON_AddStringToObject(model, "end_of_word_suffix", "</w>");
    cJSON_AddBoolToObject(model, "fuse_unk", 0);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    return read_merges(merges, path);
}

static int build(cJSON *root, const char *dir, const tokenizer_config *config)
{
    const char *unk = config->unk_token ? config->unk_token : "<|endoftext|>";
    const char *bos = config->bos_token ? config->bos_token : "<|startoftext|>";
    const char *eos = config->eos_token ? config->eos_token : "<|endoftext|>";
    const char *pad = config->pad_token ? config->pad_token : "<|endoftext|>";
    char path[4200];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    cJSON *vocab = NULL;
    if (tokenizer_json_read(&vocab, path, 0)) return -1;
    if (!cJSON_IsObject(vocab)) {
        cJSON_Delete(vocab);
        return error_set("%s: not a JSON object of token -> id", path);
    }
    if (build_model(root, vocab, dir, unk)) return -1;
    cJSON *added = config->added_tokens ? cJSON_Duplicate(config->added_tokens, 1) : cJSON_CreateArray();
    if (!added) return error_set("out of memory building a CLIP tokenizer");
    cJSON_AddItemToObject(root, "added_tokens", added);
    const char *specials[] = {bos, eos, unk, pad};
    for (int i = 0; i < 4; i++)
        if (add_missing_special(added, vocab, specials[i])) return -1;
    int32_t bos_id = token_id(vocab, added, bos), eos_id = token_id(vocab, added, eos);
    if (bos_id == -2 || eos_id == -2)
        return error_set("%s: CLIP's bos token \"%s\" or eos token \"%s\" has an id that is not a whole number in "
                         "[0, 2^31)", dir, bos, eos);
    if (bos_id < 0 || eos_id < 0)
        return error_set("%s: CLIP's bos token \"%s\" or eos token \"%s\" is not in the vocabulary", dir, bos, eos);
    cJSON *post = cJSON_AddObjectToObject(root, "post_processor");
    if (!post) return error_set("out of memory building a CLIP tokenizer");
    cJSON_AddStringToObject(post, "type", "RobertaProcessing");
    cJSON_AddItemToObject(post, "sep", special_pair(eos, eos_id));
    cJSON_AddItemToObject(post, "cls", special_pair(bos, bos_id));
    return 0;
}

int tokenizer_clip_build(cJSON **out, const char *dir, const tokenizer_config *config)
{
    *out = NULL;
    cJSON *root = cJSON_Parse(CLIP_PIPELINE);
    if (!root) return error_set("out of memory building a CLIP tokenizer");
    cJSON *split = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pretokenizers"), 0);
    cJSON *pattern = cJSON_GetObjectItemCaseSensitive(split, "pattern");
    if (!cJSON_ReplaceItemInObject(pattern, "Regex", cJSON_CreateString(CLIP_SPLIT_PATTERN)) ||
        build(root, dir, config)) {
        cJSON_Delete(root);
        return -1;
    }
    *out = root;
    return 0;
}
