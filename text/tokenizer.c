/* tokenizer.json loading and encoding; see tokenizer.h.
 *
 * Mirrors tokenizers' Tokenizer::encode(text, add_special_tokens=True) for
 * one sequence: AddedVocabulary::extract_and_normalize (added tokens that are
 * not "normalized" cut out of the raw text, the rest normalized, then the
 * "normalized" added tokens cut out of that), pre-tokenization, the model
 * per piece, then truncation and the post-processor. Strings are UTF-8 bytes.
 * The components live beside this file: tokenizer_normalize.c,
 * tokenizer_pretokenize.c, tokenizer_bpe.c, tokenizer_unigram.c, tokenizer_clip.c (CLIP folders without tokenizer.json) and
 * tokenizer_config.c (pad token, model_max_length). */
#include "text/tokenizer.h"

#include "core/error.h"
#include "text/tokenizer_json.h"
#include "text/tokenizer_bpe.h"
#include "text/tokenizer_clip.h"
#include "text/tokenizer_config.h"
#include "text/tokenizer_normalize.h"
#include "text/tokenizer_pretokenize.h"
#include "text/tokenizer_regex.h"
#include "text/tokenizer_text.h"
#include "text/tokenizer_unigram.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


typedef enum { MODEL_WORD_LEVEL, MODEL_BPE, MODEL_UNIGRAM } model_kind;

typedef struct added_token {
    char *content; /* as in the file */
    char *match;   /* what is searched for: content, normalized when "normalized" */
    size_t length; /* of match */
    int32_t id;
    int single_word, lstrip, rstrip, normalized;
} added_token;

/* One piece of the "single" template: the sequence ($A) or special ids. */
typedef struct template_piece {
    int is_sequence;
    int32_t *ids;
    int count;
} template_piece;

struct tokenizer {
    char *path;
    model_kind model;
    vocab_table vocab; /* WordLevel's and Unigram's words (BPE keeps its own) */
    int32_t unk_id;    /* WordLevel: -1 without unk_token */
    tokenizer_bpe *bpe;
    unigram_model *unigram;
    int32_t max_id;
    tokenizer_normalizer *normalizer;
    tokenizer_pre_tokenizer *pre_tokenizer;
    added_token *added; /* sorted by the first byte of match */
    int added_count;
    int added_first[257]; /* added[added_first[b] .. added_first[b + 1]) start with byte b */
    tokenizer_regex *word_char; /* Rust's \w, when an added token is single_word */
    template_piece *template_pieces;
    int template_count; /* 0: no post-processor */
    int template_specials;
    int truncation_max; /* 0: none in the file */
    int truncate_left;
    const char **words; /* id -> token, max_id + 1 entries */
    int32_t pad_id;     /* -1: none */
    int32_t eos_id;     /* -1: none */
    int model_max_length;
    int pad_left;       /* padding_side "left" */
};

static const char *type_of(const cJSON *component)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(component, "type");
    return cJSON_IsString(type) ? type->valuestring : NULL;
}

#define TOKENIZER_MAX_IDS (1 << 24)

static int note_id(tokenizer *tok, int32_t id)
{
    if (id < 0) return error_set("%s: negative token id %d", tok->path, id);
    if (id > tok->max_id) tok->max_id = id;
    return 0;
}

static int integer_id(const cJSON *item, int32_t *id)
{
    double v = cJSON_IsNumber(item) ? item->valuedouble : -1;
    if (!(v >= 0 && v <= INT32_MAX && v == (double)(int32_t)v)) return -1;
    *id = (int32_t)v;
    return 0;
}

/* ---- the model -------------------------------------------------------------- */

static int load_word_level(tokenizer *tok, const cJSON *model)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *entry;
    if (!cJSON_IsObject(vocab)) return error_set("%s: model.vocab is not an object", tok->path);
    if (vocab_init(&tok->vocab, (size_t)cJSON_GetArraySize(vocab))) return -1;
    cJSON_ArrayForEach(entry, vocab)
    {
        int32_t id;
        if (integer_id(entry, &id))
            return error_set("%s: model.vocab[\"%s\"] is not a non-negative integer id", tok->path, entry->string);
        if (note_id(tok, id) || vocab_put(&tok->vocab, entry->string, strlen(entry->string), id)) return -1;
    }
    const char *unk = json_string_field(model, "unk_token");
    if (unk) tok->unk_id = vocab_get(&tok->vocab, unk, strlen(unk));
    return 0;
}

/* Unigram's vocab is a list of [piece, score]; the id is the index. moedit
 * keeps the words for token <-> id; the scores are the Unigram module's. */
static int load_unigram(tokenizer *tok, const cJSON *model)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *entry;
    if (!cJSON_IsArray(vocab)) return error_set("%s: model.vocab of a Unigram model is not a list", tok->path);
    if (vocab_init(&tok->vocab, (size_t)cJSON_GetArraySize(vocab))) return -1;
    int32_t id = 0;
    cJSON_ArrayForEach(entry, vocab)
    {
        const cJSON *piece = cJSON_GetArrayItem(entry, 0);
        if (!cJSON_IsString(piece)) return error_set("%s: model.vocab[%d] is not [piece, score]", tok->path, id);
        if (vocab_put(&tok->vocab, piece->valuestring, strlen(piece->valuestring), id)) return -1;
        tok->max_id = id++;
    }
    return unigram_load(&tok->unigram, model, tok->path);
}

static int load_model(tokenizer *tok, const cJSON *model)
{
    const char *type = type_of(model);
    if (!type) return error_set("%s: model has no \"type\"", tok->path);
    if (strcmp(type, "WordLevel") == 0) return tok->model = MODEL_WORD_LEVEL, load_word_level(tok, model);
    if (strcmp(type, "Unigram") == 0) return tok->model = MODEL_UNIGRAM, load_unigram(tok, model);
    if (strcmp(type, "BPE") != 0)
        return error_set("%s: model type %s is not supported (moedit reads WordLevel, BPE and Unigram)", tok->path,
                         type);
    tok->model = MODEL_BPE;
    if (tokenizer_bpe_load(&tok->bpe, model, tok->path)) return -1;
    const vocab_table *v = tokenizer_bpe_vocab(tok->bpe);
    for (size_t i = 0; i < v->capacity; i++)
        if (v->keys[i] && v->values[i] > tok->max_id) tok->max_id = v->values[i];
    return 0;
}

static const vocab_table *model_vocab(const tokenizer *tok)
{
    return tok->model == MODEL_BPE ? tokenizer_bpe_vocab(tok->bpe) : &tok->vocab;
}

/* Appends the ids of one pre-tokenized piece. */
static int model_encode(const tokenizer *tok, const char *s, size_t n, id_list *ids)
{
    if (tok->model == MODEL_BPE) return tokenizer_bpe_encode(tok->bpe, s, n, ids);
    if (tok->model == MODEL_UNIGRAM) return unigram_encode(tok->unigram, s, n, &ids->ids, &ids->count, &ids->capacity);
    int32_t id = vocab_get(&tok->vocab, s, n);
    if (id < 0) id = tok->unk_id;
    if (id < 0)
        return error_set("%s: word \"%.*s\" is not in the vocabulary and the model has no unk_token", tok->path,
                         (int)(n > 64 ? 64 : n), s);
    return ids_push(ids, id);
}

/* ---- added tokens, post-processor, truncation ---------------------------------- */

static int compare_added(const void *a, const void *b)
{
    const added_token *x = a, *y = b;
    int bx = (unsigned char)x->match[0], by = (unsigned char)y->match[0];
    return bx != by ? bx - by : (x->id > y->id) - (x->id < y->id);
}

/* A "normalized" added token is searched for in normalized text, so its own
 * content goes through the normalizer too (tokenizers' normalized trie). */
static int added_match_string(tokenizer *tok, added_token *t)
{
    if (!t->normalized) return (t->match = tokenizer_strdup(t->content)) ? 0 : error_set("out of memory");
    text_buffer normalized = {0};
    if (tokenizer_normalizer_apply(tok->normalizer, t->content, strlen(t->content), &normalized)) {
        free(normalized.data);
        return -1;
    }
    t->match = normalized.data;
    return 0;
}

static int load_added_tokens(tokenizer *tok, const cJSON *list)
{
    if (!list || cJSON_IsNull(list)) return 0;
    if (!cJSON_IsArray(list)) return error_set("%s: added_tokens is not a list", tok->path);
    tok->added = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(added_token));
    if (!tok->added) return error_set("out of memory loading %s", tok->path);
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        const char *content = json_string_field(item, "content");
        int32_t id;
        if (!content || integer_id(cJSON_GetObjectItemCaseSensitive(item, "id"), &id))
            return error_set("%s: an added token lacks content or a non-negative integer id", tok->path);
        if (!*content) continue;
        added_token *t = &tok->added[tok->added_count++];
        t->id = id;
        t->single_word = json_bool_field(item, "single_word", 0);
        t->lstrip = json_bool_field(item, "lstrip", 0);
        t->rstrip = json_bool_field(item, "rstrip", 0);
        t->normalized = json_bool_field(item, "normalized", !json_bool_field(item, "special", 0));
        if (!(t->content = tokenizer_strdup(content))) return error_set("out of memory loading %s", tok->path);
        if (added_match_string(tok, t) || note_id(tok, id)) return -1;
        if (!(t->length = strlen(t->match))) tok->added_count--, free(t->content), free(t->match);
    }
    qsort(tok->added, (size_t)tok->added_count, sizeof(added_token), compare_added);
    int single_word = 0;
    for (int i = 0; i < tok->added_count; i++) single_word |= tok->added[i].single_word;
    if (single_word &&
        tokenizer_regex_compile(&tok->word_char, "[" TOKENIZER_RUST_WORD_CLASS "]", tok->path, "single_word"))
        return -1;
    int b = 0;
    for (int i = 0; i <= tok->added_count; i++) {
        int first = i < tok->added_count ? (unsigned char)tok->added[i].match[0] : 256;
        while (b <= first) tok->added_first[b++] = i;
    }
    return 0;
}

static int add_template_piece(tokenizer *tok, int is_sequence, const int32_t *ids, int count)
{
    template_piece *grown = realloc(tok->template_pieces, (size_t)(tok->template_count + 1) * sizeof *grown);
    if (!grown) return error_set("out of memory loading %s", tok->path);
    tok->template_pieces = grown;
    template_piece *t = &grown[tok->template_count++];
    *t = (template_piece){is_sequence, NULL, 0};
    if (is_sequence) return 0;
    if (!(t->ids = malloc((size_t)(count > 0 ? count : 1) * sizeof(int32_t))))
        return error_set("out of memory loading %s", tok->path);
    for (int i = 0; i < count; i++)
        if (note_id(tok, ids[i])) return -1;
    memcpy(t->ids, ids, (size_t)count * sizeof(int32_t));
    t->count = count;
    tok->template_specials += count;
    return 0;
}

/* TemplateProcessing: "single" is a list of {"SpecialToken": {"id": NAME}} and
 * {"Sequence": {"id": "A"}}; special_tokens[NAME].ids are the ids to emit. */
static int load_template(tokenizer *tok, const cJSON *post)
{
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(post, "single"), *piece;
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(post, "special_tokens");
    if (!cJSON_IsArray(single))
        return error_set("%s: post_processor TemplateProcessing has no \"single\" list", tok->path);
    int sequences = 0;
    cJSON_ArrayForEach(piece, single)
    {
        if (cJSON_GetObjectItemCaseSensitive(piece, "Sequence")) {
            sequences++;
            if (add_template_piece(tok, 1, NULL, 0)) return -1;
            continue;
        }
        const char *name = json_string_field(cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken"), "id");
        const cJSON *entry = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids"), *id;
        if (!cJSON_IsArray(ids))
            return error_set("%s: post_processor template names special token %s without ids in special_tokens",
                             tok->path, name ? name : "(none)");
        int32_t values[64];
        int count = 0;
        cJSON_ArrayForEach(id, ids)
        {
            if (count == 64 || integer_id(id, &values[count++]))
                return error_set("%s: special token %s has a non-numeric id (or more than 64)", tok->path, name);
        }
        if (add_template_piece(tok, 0, values, count)) return -1;
    }
    if (sequences != 1) return error_set("%s: post_processor template must hold $A exactly once", tok->path);
    return 0;
}

/* RobertaProcessing: cls $A sep, with cls / sep = [token, id]. */
static int load_roberta(tokenizer *tok, const cJSON *post)
{
    int32_t cls, sep;
    if (integer_id(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(post, "cls"), 1), &cls) ||
        integer_id(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(post, "sep"), 1), &sep))
        return error_set("%s: post_processor RobertaProcessing needs \"cls\" and \"sep\" as [token, id]", tok->path);
    return add_template_piece(tok, 0, &cls, 1) || add_template_piece(tok, 1, NULL, 0) ||
                   add_template_piece(tok, 0, &sep, 1)
               ? -1
               : 0;
}

static int load_post_processor(tokenizer *tok, const cJSON *post)
{
    if (!post || cJSON_IsNull(post)) return 0;
    const char *type = type_of(post);
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(post, "processors"), *item;
        if (!cJSON_IsArray(list)) return error_set("%s: post_processor Sequence has no \"processors\" list", tok->path);
        cJSON_ArrayForEach(item, list) if (load_post_processor(tok, item)) return -1;
        return 0;
    }
    if (type && strcmp(type, "ByteLevel") == 0) return 0; /* offsets only: the ids stay */
    int is_template = type && strcmp(type, "TemplateProcessing") == 0;
    int is_roberta = type && strcmp(type, "RobertaProcessing") == 0;
    if (!is_template && !is_roberta)
        return error_set("%s: post_processor %s is not supported (moedit reads TemplateProcessing, "
                         "RobertaProcessing, ByteLevel and Sequence)",
                         tok->path, type ? type : "without a type");
    if (tok->template_count) return error_set("%s: post_processor holds two templates", tok->path);
    return is_template ? load_template(tok, post) : load_roberta(tok, post);
}

static int load_truncation(tokenizer *tok, const cJSON *truncation)
{
    if (!truncation || cJSON_IsNull(truncation)) return 0;
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(truncation, "max_length");
    const char *direction = json_string_field(truncation, "direction");
    if (!cJSON_IsNumber(max) || max->valuedouble < 0)
        return error_set("%s: truncation.max_length is not a non-negative integer", tok->path);
    tok->truncation_max = max->valuedouble > 1e9 ? 1000000000 : (int)max->valuedouble;
    tok->truncate_left = direction && strcmp(direction, "Left") == 0;
    return 0;
}

/* words[id]: added tokens over the model's (tokenizers' id_to_token). */
static int build_words(tokenizer *tok)
{
    /* The id -> token table is as long as the largest id: an id far beyond any
     * real vocabulary (the largest have a few hundred thousand) would make it
     * gigabytes (the fuzzer found 2^29). */
    if (tok->max_id >= TOKENIZER_MAX_IDS)
        return error_set("%s: token id %d: moedit reads vocabularies of at most %d ids", tok->path, tok->max_id,
                         TOKENIZER_MAX_IDS);
    if (vocab_reverse(model_vocab(tok), tok->max_id + 1, &tok->words)) return -1;
    for (int i = 0; i < tok->added_count; i++) tok->words[tok->added[i].id] = tok->added[i].content;
    return 0;
}

static int load_json(tokenizer *tok, const cJSON *root)
{
    if (!cJSON_IsObject(root)) return error_set("%s: top level is not a JSON object", tok->path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return error_set("%s: no \"model\" object (not a tokenizers tokenizer.json?)", tok->path);
    if (load_model(tok, model) ||
        tokenizer_normalizer_load(&tok->normalizer, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), tok->path) ||
        tokenizer_pre_tokenizer_load(&tok->pre_tokenizer, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"),
                                     tok->path))
        return -1;
    return load_added_tokens(tok, cJSON_GetObjectItemCaseSensitive(root, "added_tokens")) ||
                   load_post_processor(tok, cJSON_GetObjectItemCaseSensitive(root, "post_processor")) ||
                   load_truncation(tok, cJSON_GetObjectItemCaseSensitive(root, "truncation")) || build_words(tok)
               ? -1
               : 0;
}

static tokenizer *tokenizer_new(const char *path)
{
    tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok || !(tok->path = tokenizer_strdup(path))) {
        free(tok);
        error_set("out of memory loading %s", path);
        return NULL;
    }
    tok->unk_id = -1;
    tok->pad_id = -1;
    tok->eos_id = -1;
    return tok;
}

int tokenizer_load(tokenizer **out, const char *path)
{
    *out = NULL;
    tokenizer *tok = tokenizer_new(path);
    if (!tok) return -1;
    cJSON *root = NULL;
    int status = tokenizer_json_read(&root, path, 0) || load_json(tok, root) ? -1 : 0;
    cJSON_Delete(root);
    if (status) {
        tokenizer_free(tok);
        return -1;
    }
    *out = tok;
    return 0;
}

/* The id of a token the folder's config files name (-1 when they name none). */
static int config_token_id(const tokenizer *tok, const char *key, const char *token, int32_t *id)
{
    *id = -1;
    if (token && (*id = tokenizer_token_id(tok, token)) < 0)
        return error_set("%s: %s \"%s\" is not a token of this tokenizer", tok->path, key, token);
    return 0;
}

/* pad_token, eos_token, model_max_length and padding_side from the folder's config files. */
static int apply_config(tokenizer *tok, const tokenizer_config *config)
{
    tok->model_max_length = config->model_max_length;
    tok->pad_left = config->pad_left;
    return config_token_id(tok, "pad_token", config->pad_token, &tok->pad_id) ||
                   config_token_id(tok, "eos_token", config->eos_token, &tok->eos_id)
               ? -1
               : 0;
}

int tokenizer_load_dir(tokenizer **out, const char *dir)
{
    *out = NULL;
    char json_path[4200], vocab_path[4200], merges_path[4200];
    snprintf(json_path, sizeof json_path, "%s/tokenizer.json", dir);
    snprintf(vocab_path, sizeof vocab_path, "%s/vocab.json", dir);
    snprintf(merges_path, sizeof merges_path, "%s/merges.txt", dir);
    if (access(dir, F_OK) != 0) return error_set("%s: tokenizer folder does not exist", dir);
    int has_json = access(json_path, F_OK) == 0;
    if (!has_json && (access(vocab_path, F_OK) != 0 || access(merges_path, F_OK) != 0))
        return error_set("%s: no tokenizer.json, nor vocab.json + merges.txt (not a tokenizer folder?)", dir);
    tokenizer_config config;
    if (tokenizer_config_read(&config, dir)) return -1;
    tokenizer *tok = NULL;
    int status;
    if (has_json) {
        status = tokenizer_load(&tok, json_path);
    } else {
        cJSON *root = NULL;
        status = tokenizer_clip_build(&root, dir, &config);
        if (!status && !(tok = tokenizer_new(vocab_path))) status = -1;
        if (!status) status = load_json(tok, root);
        cJSON_Delete(root);
    }
    if (!status) status = apply_config(tok, &config);
    tokenizer_config_free(&config);
    if (status) {
        tokenizer_free(tok);
        return -1;
    }
    *out = tok;
    return 0;
}

void tokenizer_free(tokenizer *tok)
{
    if (!tok) return;
    vocab_free(&tok->vocab);
    tokenizer_bpe_free(tok->bpe);
    unigram_free(tok->unigram);
    tokenizer_normalizer_free(tok->normalizer);
    tokenizer_pre_tokenizer_free(tok->pre_tokenizer);
    for (int i = 0; i < tok->added_count; i++) {
        free(tok->added[i].content);
        free(tok->added[i].match);
    }
    free(tok->added);
    tokenizer_regex_free(tok->word_char);
    for (int i = 0; i < tok->template_count; i++) free(tok->template_pieces[i].ids);
    free(tok->template_pieces);
    free(tok->words);
    free(tok->path);
    free(tok);
}

const char *tokenizer_path(const tokenizer *tok) { return tok->path; }
int tokenizer_num_special_tokens(const tokenizer *tok) { return tok->template_specials; }
int32_t tokenizer_vocab_size(const tokenizer *tok) { return tok->max_id + 1; }
int32_t tokenizer_pad_id(const tokenizer *tok) { return tok->pad_id; }
int32_t tokenizer_eos_id(const tokenizer *tok) { return tok->eos_id; }
int tokenizer_pads_left(const tokenizer *tok) { return tok->pad_left; }
int tokenizer_model_max_length(const tokenizer *tok) { return tok->model_max_length; }

int32_t tokenizer_token_id(const tokenizer *tok, const char *token)
{
    for (int i = 0; i < tok->added_count; i++)
        if (strcmp(tok->added[i].content, token) == 0) return tok->added[i].id;
    if (tok->model == MODEL_UNIGRAM) return unigram_token_id(tok->unigram, token, strlen(token));
    return vocab_get(model_vocab(tok), token, strlen(token));
}

const char *tokenizer_token(const tokenizer *tok, int32_t id)
{
    return id >= 0 && id <= tok->max_id && tok->words ? tok->words[id] : NULL;
}

/* ---- encoding --------------------------------------------------------------- */

typedef struct encode_state {
    text_buffer normalized;
    pre_tokenized pieces;
    id_list ids;
    /* tokenizer_unknown_words: where to list the words read as the unk
     * token (NULL: not asked), and how many there were. */
    char *unknown;
    size_t unknown_size, unknown_used;
    int unknown_count;
} encode_state;

/* Appends one WordLevel word the vocabulary lacks to the caller's list. */
static void note_unknown(encode_state *st, const char *s, size_t n)
{
    st->unknown_count++;
    if (!st->unknown || st->unknown_size == 0) return;
    size_t room = st->unknown_size - st->unknown_used;
    int wrote = snprintf(st->unknown + st->unknown_used, room, "%s\"%.*s\"", st->unknown_used ? ", " : "",
                         (int)(n > 40 ? 40 : n), s);
    if (wrote > 0 && (size_t)wrote < room) st->unknown_used += (size_t)wrote;
    else { /* the list is full: it stops here, the count still grows */
        st->unknown[st->unknown_used] = '\0';
        st->unknown_size = st->unknown_used + 1;
    }
}

/* single_word: tokenizers asks the regex crate whether \w ends the text
 * before the match or starts the text after it. */
static int char_before_is_word(const tokenizer *tok, const char *s, size_t at)
{
    return at > 0 && tokenizer_regex_matches_at(tok->word_char, s, at, utf8_previous(s, at, 0));
}

static int char_at_is_word(const tokenizer *tok, const char *s, size_t at, size_t n)
{
    return at < n && tokenizer_regex_matches_at(tok->word_char, s, n, at);
}

static size_t skip_spaces_back(const char *s, size_t at, size_t floor)
{
    while (at > floor) {
        size_t start = utf8_previous(s, at, floor);
        int32_t cp;
        if (!utf8_next(s + start, at - start, &cp) || !unicode_is_whitespace(cp)) break;
        at = start;
    }
    return at;
}

static size_t skip_spaces_forward(const char *s, size_t at, size_t n)
{
    int32_t cp;
    int len;
    while (at < n && (len = utf8_next(s + at, n - at, &cp)) && unicode_is_whitespace(cp)) at += (size_t)len;
    return at;
}

/* The longest added token (of the given normalized kind) matching at s + at. */
static const added_token *added_match_at(const tokenizer *tok, int normalized, const char *s, size_t at, size_t n)
{
    const added_token *best = NULL;
    unsigned char b = (unsigned char)s[at];
    for (int t = tok->added_first[b]; t < tok->added_first[b + 1]; t++) {
        const added_token *a = &tok->added[t];
        if (a->normalized != normalized || a->length > n - at || (best && a->length <= best->length)) continue;
        if (memcmp(s + at, a->match, a->length) == 0) best = a;
    }
    return best;
}

typedef int (*text_piece_fn)(const tokenizer *tok, const char *s, size_t n, int at_origin, encode_state *st);

/* AddedVocabulary::find_matches: cuts s[0..n) at leftmost-longest matches of
 * added tokens; matches become ids, the text between goes to on_text. */
static int split_added(const tokenizer *tok, int normalized, const char *s, size_t n, int at_origin,
                       text_piece_fn on_text, encode_state *st)
{
    size_t done = 0, at = 0;
    while (at < n) {
        const added_token *a = tok->added_count ? added_match_at(tok, normalized, s, at, n) : NULL;
        if (!a) {
            at++;
            continue;
        }
        size_t start = at, stop = at + a->length;
        at = stop;
        if (a->single_word && (char_before_is_word(tok, s, start) || char_at_is_word(tok, s, stop, n))) continue;
        if (a->lstrip) start = skip_spaces_back(s, start, done);
        if (a->rstrip) stop = skip_spaces_forward(s, stop, n);
        if (start > done && on_text(tok, s + done, start - done, at_origin && done == 0, st)) return -1;
        if (ids_push(&st->ids, a->id)) return -1;
        done = at = stop;
    }
    return done < n ? on_text(tok, s + done, n - done, at_origin && done == 0, st) : 0;
}

/* Normalized text between added tokens -> pre-tokenized pieces -> ids. */
static int on_normalized_text(const tokenizer *tok, const char *s, size_t n, int at_origin, encode_state *st)
{
    if (tokenizer_pre_tokenize(tok->pre_tokenizer, s, n, at_origin, &st->pieces)) return -1;
    const pre_tokenized *p = &st->pieces;
    for (int i = 0; i < p->pieces.count; i++) {
        const char *word = p->text.data + p->pieces.spans[i].start;
        size_t length = p->pieces.spans[i].length;
        if (tok->model == MODEL_WORD_LEVEL && tok->unk_id >= 0 && vocab_get(&tok->vocab, word, length) < 0)
            note_unknown(st, word, length);
        if (model_encode(tok, word, length, &st->ids)) return -1;
    }
    return 0;
}

static int on_raw_text(const tokenizer *tok, const char *s, size_t n, int at_origin, encode_state *st)
{
    if (tokenizer_normalizer_apply(tok->normalizer, s, n, &st->normalized)) return -1;
    /* The normalized copy must outlive the nested split: take it over. */
    text_buffer own = st->normalized;
    st->normalized = (text_buffer){0};
    int status = split_added(tok, 1, own.data, own.length, at_origin, on_normalized_text, st);
    free(own.data);
    return status;
}

/* The text's own tokens, before truncation and the template. */
static int encode_content(const tokenizer *tok, const char *text, size_t n, encode_state *st)
{
    memset(st, 0, sizeof *st);
    size_t bad = utf8_invalid_at(text, n);
    if (bad < n) return error_set("the text given to the tokenizer %s is not valid UTF-8 (byte %zu)", tok->path, bad);
    return split_added(tok, 0, text, n, 1, on_raw_text, st);
}

static void encode_state_free(encode_state *st)
{
    free(st->normalized.data);
    pre_tokenized_free(&st->pieces);
    free(st->ids.ids);
}

int tokenizer_unknown_words(const tokenizer *tok, const char *text, char *list, size_t size, int *count)
{
    *count = 0;
    if (list && size) list[0] = '\0';
    if (tok->model != MODEL_WORD_LEVEL) return 0;
    encode_state st;
    memset(&st, 0, sizeof st);
    size_t bad = utf8_invalid_at(text, strlen(text));
    if (bad < strlen(text))
        return error_set("the text given to the tokenizer %s is not valid UTF-8 (byte %zu)", tok->path, bad);
    st.unknown = list;
    st.unknown_size = list ? size : 0;
    int status = split_added(tok, 0, text, strlen(text), 1, on_raw_text, &st);
    *count = status ? 0 : st.unknown_count;
    encode_state_free(&st);
    return status;
}

int tokenizer_count(const tokenizer *tok, const char *text, int *count)
{
    encode_state st;
    int status = encode_content(tok, text, strlen(text), &st);
    *count = status ? 0 : st.ids.count + tok->template_specials;
    encode_state_free(&st);
    return status;
}

/* ids = template around content[first .. first + keep). */
static int apply_template(const tokenizer *tok, const int32_t *content, int keep, int32_t *ids)
{
    if (tok->template_count == 0) {
        if (keep > 0) memcpy(ids, content, (size_t)keep * sizeof(int32_t));
        return keep;
    }
    int n = 0;
    for (int p = 0; p < tok->template_count; p++) {
        const template_piece *piece = &tok->template_pieces[p];
        const int32_t *src = piece->is_sequence ? content : piece->ids;
        int m = piece->is_sequence ? keep : piece->count;
        if (m > 0) memcpy(ids + n, src, (size_t)m * sizeof(int32_t));
        n += m;
    }
    return n;
}

int tokenizer_encode(const tokenizer *tok, const char *text, int32_t *ids, int max_ids, int *count)
{
    *count = 0;
    int limit = max_ids;
    if (tok->truncation_max > 0 && tok->truncation_max < limit) limit = tok->truncation_max;
    if (limit < 1 || limit < tok->template_specials)
        return error_set("%s: at most %d token(s) cannot hold the %d special token(s) of the template", tok->path,
                         limit, tok->template_specials);
    encode_state st;
    if (encode_content(tok, text, strlen(text), &st)) {
        encode_state_free(&st);
        return -1;
    }
    int keep = st.ids.count, room = limit - tok->template_specials, first = 0;
    if (keep > room) {
        first = tok->truncate_left ? keep - room : 0;
        keep = room;
    }
    /* No content ids: the array is NULL, and NULL + 0 is undefined. */
    *count = apply_template(tok, keep ? st.ids.ids + first : NULL, keep, ids);
    encode_state_free(&st);
    return 0;
}

int tokenizer_encode_all(const tokenizer *tok, const char *text, size_t length, int32_t **ids, int *count)
{
    *ids = NULL;
    *count = 0;
    encode_state st;
    if (encode_content(tok, text, length, &st)) {
        encode_state_free(&st);
        return -1;
    }
    int keep = st.ids.count;
    *ids = malloc((size_t)(keep + tok->template_specials + 1) * sizeof(int32_t));
    if (!*ids) {
        encode_state_free(&st);
        return error_set("out of memory tokenizing");
    }
    *count = apply_template(tok, st.ids.ids, keep, *ids);
    encode_state_free(&st);
    return 0;
}
