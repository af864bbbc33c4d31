/* HiDreamImagePipeline.encode_prompt natively; see hidream_prompt.h.
 *
 * Mirrors pipeline_hidream_image.py: _get_clip_prompt_embeds (padding
 * "max_length", max_length min(max_sequence_length, 218), truncation, the
 * pooled text_embeds, no mask), _get_t5_prompt_embeds (max_length
 * min(max_sequence_length, tokenizer_3.model_max_length), attention mask),
 * _get_llama3_prompt_embeds (the same with tokenizer_4, pad token = eos,
 * hidden_states[1:] stacked) and encode_prompt's defaults and concatenation. */
#include "text/hidream_prompt.h"

#include "backend/backend_memory.h"
#include "core/config.h"
#include "core/error.h"
#include "core/timer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const ENCODER_NAMES[HIDREAM_ENCODERS] = {"CLIP-L", "CLIP-G", "T5", "Llama"};

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int hidream_text_present(const char *model_dir, const char *llama_dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/text_encoder_3", model_dir);
    return llama_dir != NULL || is_dir(path);
}

/* ---- opening: folders, tokenizers, configs ---------------------------------- */

static int set_dirs(hidream_text *t, const hidream_text_options *o)
{
    static const char *const suffix[3] = {"", "_2", "_3"};
    for (int k = 0; k < 3; k++) {
        snprintf(t->encoder_dir[k], sizeof t->encoder_dir[k], "%s/text_encoder%s", o->model_dir, suffix[k]);
        snprintf(t->tokenizer_dir[k], sizeof t->tokenizer_dir[k], "%s/tokenizer%s", o->model_dir, suffix[k]);
    }
    if (o->llama_dir) {
        snprintf(t->encoder_dir[HIDREAM_LLAMA], sizeof t->encoder_dir[0], "%s", o->llama_dir);
        snprintf(t->tokenizer_dir[HIDREAM_LLAMA], sizeof t->tokenizer_dir[0], "%s", o->llama_dir);
    } else {
        snprintf(t->encoder_dir[HIDREAM_LLAMA], sizeof t->encoder_dir[0], "%s/text_encoder_4", o->model_dir);
        snprintf(t->tokenizer_dir[HIDREAM_LLAMA], sizeof t->tokenizer_dir[0], "%s/tokenizer_4", o->model_dir);
        if (!is_dir(t->encoder_dir[HIDREAM_LLAMA]))
            return error_set("%s has no text_encoder_4/: give --llama DIR (a Llama 3.1 folder: config.json, "
                             "safetensors and tokenizer.json)",
                             o->model_dir);
    }
    for (int k = 0; k < HIDREAM_ENCODERS; k++) {
        if (!is_dir(t->encoder_dir[k])) return error_set("%s: no such folder (HiDream's %s encoder)", t->encoder_dir[k], ENCODER_NAMES[k]);
        if (!is_dir(t->tokenizer_dir[k]))
            return error_set("%s: no such folder (HiDream's %s tokenizer)", t->tokenizer_dir[k], ENCODER_NAMES[k]);
    }
    return 0;
}

/* Tokenizer k, its pad id (Llama: eos, as the pipeline sets) and padded length. */
static int open_tokenizer(hidream_text *t, int k, int64_t max_sequence_length)
{
    const char *dir = t->tokenizer_dir[k];
    if (tokenizer_load_dir(&t->tok[k], dir)) return -1;
    const tokenizer *tok = t->tok[k];
    t->pad_id[k] = k == HIDREAM_LLAMA ? tokenizer_eos_id(tok) : tokenizer_pad_id(tok);
    if (t->pad_id[k] < 0)
        return error_set("%s: the tokenizer has no %s token to pad the prompt with", dir,
                         k == HIDREAM_LLAMA ? "eos" : "pad");
    if (tokenizer_pads_left(tok))
        return error_set("%s: padding_side \"left\" is not supported (HiDream pads prompts on the right)", dir);
    /* model_max_length 0: none set (transformers' "very large"). */
    int64_t limit = k <= HIDREAM_CLIP_G ? HIDREAM_CLIP_MAX_LENGTH
                    : tokenizer_model_max_length(tok) ? tokenizer_model_max_length(tok) : INT64_MAX;
    t->length[k] = max_sequence_length < limit ? max_sequence_length : limit;
    return 0;
}

static int read_dim(const char *dir, const char *key, int64_t fallback, int64_t *out)
{
    char path[4300];
    config *c = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (config_load(&c, path)) return -1;
    int status = config_get_int_or(c, key, fallback, out);
    config_free(c);
    return status;
}

/* The encoders' sizes from their configs (CLIPTextConfig's projection_dim
 * and T5Config's d_model default to 512), against the transformer's. */
static int check_sizes(hidream_text *t, const dit_config *dit)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/config.json", t->encoder_dir[HIDREAM_LLAMA]);
    if (read_dim(t->encoder_dir[HIDREAM_CLIP_L], "projection_dim", 512, &t->clip_dim[0]) ||
        read_dim(t->encoder_dir[HIDREAM_CLIP_G], "projection_dim", 512, &t->clip_dim[1]) ||
        read_dim(t->encoder_dir[HIDREAM_T5], "d_model", 512, &t->t5_dim) ||
        text_encoder_config_load(&t->llama_cfg, path))
        return -1;
    if (!dit) return 0;
    if (t->llama_cfg.hidden_size != dit->caption_channels_llama)
        return error_set("%s: the Llama's hidden_size %lld differs from the transformer's caption_channels[1] %d",
                         t->encoder_dir[HIDREAM_LLAMA], (long long)t->llama_cfg.hidden_size,
                         dit->caption_channels_llama);
    if (t->t5_dim != dit->caption_channels_t5)
        return error_set("%s: the T5's d_model %lld differs from the transformer's caption_channels[0] %d",
                         t->encoder_dir[HIDREAM_T5], (long long)t->t5_dim, dit->caption_channels_t5);
    if (t->clip_dim[0] + t->clip_dim[1] != dit->text_emb_dim)
        return error_set("%s: the CLIP projection_dims %lld + %lld differ from the transformer's text_emb_dim %d",
                         t->encoder_dir[HIDREAM_CLIP_L], (long long)t->clip_dim[0], (long long)t->clip_dim[1],
                         dit->text_emb_dim);
    for (int b = 0; b < dit->num_double_blocks + dit->num_single_blocks; b++)
        if (dit->llama_layers[b] >= t->llama_cfg.num_layers)
            return error_set("%s: the transformer reads Llama layer %d but the Llama has %lld layers",
                             t->encoder_dir[HIDREAM_LLAMA], dit->llama_layers[b], (long long)t->llama_cfg.num_layers);
    return 0;
}

int hidream_text_open(hidream_text *t, backend *be, const hidream_text_options *o, const dit_config *transformer)
{
    memset(t, 0, sizeof *t);
    int64_t max_sequence_length = o->max_sequence_length ? o->max_sequence_length : HIDREAM_DEFAULT_MAX_SEQUENCE_LENGTH;
    t->keep = o->keep_encoders;
    t->random_weights = o->random_weights;
    t->seed = o->seed;
    if (max_sequence_length < 1)
        return error_set("--max-sequence-length %lld must be at least 1", (long long)max_sequence_length);
    int status = set_dirs(t, o);
    if (!status) status = check_sizes(t, transformer); /* configs first: cheap, and the likelier mistake */
    for (int k = 0; k < HIDREAM_ENCODERS && !status; k++) status = open_tokenizer(t, k, max_sequence_length);
    if (!status && !(t->view = backend_memory_wrap(be))) status = -1;
    if (status) hidream_text_close(t);
    return status;
}

/* ---- encoders ------------------------------------------------------------------ */

static int is_loaded(const hidream_text *t, int k)
{
    return k == HIDREAM_LLAMA ? t->llama_loaded : k == HIDREAM_T5 ? t->t5 != NULL : t->clip[k] != NULL;
}

static int load_encoder(hidream_text *t, int k)
{
    if (is_loaded(t, k)) return 0;
    const char *dir = t->encoder_dir[k];
    /* Random weights: one seed per encoder, as CLIP-L's and CLIP-G's tensors share their names. */
    int random = t->random_weights;
    uint64_t seed = t->seed + (uint64_t)k;
    if (k == HIDREAM_LLAMA) {
        if (text_encoder_load(&t->llama, t->view, dir, random, seed)) return -1;
        t->llama_loaded = 1;
        return 0;
    }
    if (k == HIDREAM_T5) {
        if (t5_encoder_load(&t->t5, dir, t->view, random, seed)) return -1;
        if (t5_encoder_hidden_size(t->t5) == t->t5_dim) return 0;
        return error_set("%s: the loaded T5 has width %d, its config says d_model %lld", dir,
                         t5_encoder_hidden_size(t->t5), (long long)t->t5_dim);
    }
    if (clip_encoder_load(&t->clip[k], dir, t->view, random, seed)) return -1;
    if (clip_encoder_projection_dim(t->clip[k]) == t->clip_dim[k]) return 0;
    return error_set("%s: the loaded CLIP projects to %d, its config says projection_dim %lld", dir,
                     clip_encoder_projection_dim(t->clip[k]), (long long)t->clip_dim[k]);
}

static void free_encoder(hidream_text *t, int k)
{
    if (k == HIDREAM_LLAMA && t->llama_loaded) text_encoder_free(&t->llama);
    if (k == HIDREAM_LLAMA) t->llama_loaded = 0;
    if (k == HIDREAM_T5 && t->t5) t5_encoder_free(t->t5);
    if (k == HIDREAM_T5) t->t5 = NULL;
    if (k <= HIDREAM_CLIP_G && t->clip[k]) clip_encoder_free(t->clip[k]);
    if (k <= HIDREAM_CLIP_G) t->clip[k] = NULL;
}

int hidream_prompt_embeds_alloc(const hidream_text *t, hidream_prompt_embeds *e)
{
    memset(e, 0, sizeof *e);
    e->t5_tokens = t->length[HIDREAM_T5];
    e->t5_channels = t->t5_dim;
    e->llama_layers = t->llama_cfg.num_layers;
    e->llama_tokens = t->length[HIDREAM_LLAMA];
    e->llama_channels = t->llama_cfg.hidden_size;
    e->pooled_channels = t->clip_dim[0] + t->clip_dim[1];
    e->t5 = malloc((size_t)(e->t5_tokens * e->t5_channels) * sizeof(float));
    e->llama = malloc((size_t)(e->llama_layers * e->llama_tokens * e->llama_channels) * sizeof(float));
    e->pooled = malloc((size_t)e->pooled_channels * sizeof(float));
    if (e->t5 && e->llama && e->pooled) return 0;
    hidream_prompt_embeds_free(e);
    return error_set("out of memory for the prompt embeddings (%lld Llama layers of %lld x %lld)",
                     (long long)e->llama_layers, (long long)e->llama_tokens, (long long)e->llama_channels);
}

/* Llama: hidden_states[1:] [N, L, C] of the padded ids, straight into e->llama. */
static int run_llama(hidream_text *t, arena *scratch, const int32_t *ids, int64_t valid, hidream_prompt_embeds *e)
{
    return text_encoder_forward_states(&t->llama, scratch, ids, e->llama_tokens, valid, 1, e->llama);
}

/* Encoder k on padded ids[length[k]] (valid tokens first), into e. */
static int run_encoder(hidream_text *t, int k, arena *scratch, const int32_t *ids, int64_t valid,
                       hidream_prompt_embeds *e)
{
    int count = (int)t->length[k];
    if (k <= HIDREAM_CLIP_G) return clip_encoder_forward(t->clip[k], scratch, ids, count, e->pooled + (k ? t->clip_dim[0] : 0));
    if (k == HIDREAM_LLAMA) return run_llama(t, scratch, ids, valid, e);
    int32_t *mask = malloc((size_t)count * sizeof(int32_t));
    if (!mask) return error_set("out of memory for the T5 attention mask");
    for (int i = 0; i < count; i++) mask[i] = i < valid;
    int status = t5_encoder_forward(t->t5, scratch, ids, count, mask, e->t5);
    free(mask);
    return status;
}

/* ids = tokenizer_k(text), truncated to length[k] and padded with pad_id. */
static int tokenize(const hidream_text *t, int k, const char *text, int32_t *ids, int64_t *valid)
{
    int count = 0;
    if (tokenizer_encode(t->tok[k], text, ids, (int)t->length[k], &count)) return -1;
    if (count == 0)
        return error_set("%s: the prompt \"%.40s\" gives no tokens and the tokenizer adds none", t->tokenizer_dir[k], text);
    for (int64_t i = count; i < t->length[k]; i++) ids[i] = t->pad_id[k];
    *valid = count;
    return 0;
}

/* prompt_k or prompt (Python's `prompt_k or prompt`). */
static const char *prompt_for(const hidream_prompt *p, int k)
{
    const char *base = p->text[0] ? p->text[0] : "";
    return k > 0 && p->text[k] && *p->text[k] ? p->text[k] : base;
}

/* Encoder k over every prompt: loaded if needed, timed, its peak recorded,
 * freed after unless kept. */
static int encode_with(hidream_text *t, int k, const hidream_prompt *prompts, const int32_t *const *given_ids,
                       const int64_t *given_valid, int count, hidream_prompt_embeds *out)
{
    double start = timer_seconds();
    int64_t before = backend_memory_in_use(t->view);
    backend_memory_reset_peak(t->view);
    int32_t *ids = malloc((size_t)t->length[k] * sizeof(int32_t));
    if (!ids) return error_set("out of memory tokenizing for %s", ENCODER_NAMES[k]);
    arena scratch;
    arena_init(&scratch, t->view);
    int status = load_encoder(t, k);
    for (int i = 0; i < count && !status; i++) {
        int64_t valid = given_valid ? given_valid[k] : 0;
        if (given_ids) memcpy(ids, given_ids[k], (size_t)t->length[k] * sizeof(int32_t));
        else status = tokenize(t, k, prompt_for(&prompts[i], k), ids, &valid);
        if (!status) status = run_encoder(t, k, &scratch, ids, valid, &out[i]);
    }
    arena_free(&scratch);
    free(ids);
    int64_t peak = backend_memory_peak(t->view) - before;
    if (!t->keep || status) free_encoder(t, k);
    hidream_encoder_usage *u = &t->usage[k];
    u->seconds += timer_seconds() - start;
    if (peak > u->peak_bytes) u->peak_bytes = peak;
    if (!status) u->prompts += count;
    if (status) error_prefix("%s (%s)", ENCODER_NAMES[k], t->encoder_dir[k]);
    return status;
}

static int encode_all(hidream_text *t, const hidream_prompt *prompts, const int32_t *const *ids, const int64_t *valid,
                      int count, hidream_prompt_embeds *out)
{
    int status = 0, made = 0;
    for (; made < count && !status; made++) status = hidream_prompt_embeds_alloc(t, &out[made]);
    for (int k = 0; k < HIDREAM_ENCODERS && !status; k++) status = encode_with(t, k, prompts, ids, valid, count, out);
    if (status)
        for (int i = 0; i < made; i++) hidream_prompt_embeds_free(&out[i]);
    return status;
}

int hidream_text_encode(hidream_text *t, const hidream_prompt *prompts, int count, hidream_prompt_embeds *out)
{
    return encode_all(t, prompts, NULL, NULL, count, out);
}

int hidream_text_encode_ids(hidream_text *t, const int32_t *const ids[HIDREAM_ENCODERS],
                            const int64_t valid[HIDREAM_ENCODERS], hidream_prompt_embeds *out)
{
    for (int k = 0; k < HIDREAM_ENCODERS; k++)
        if (valid[k] < 1 || valid[k] > t->length[k])
            return error_set("%s: %lld valid ids of %lld", ENCODER_NAMES[k], (long long)valid[k],
                             (long long)t->length[k]);
    return encode_all(t, NULL, ids, valid, 1, out);
}

void hidream_text_release_encoders(hidream_text *t)
{
    for (int k = 0; k < HIDREAM_ENCODERS; k++) free_encoder(t, k);
}

void hidream_text_close(hidream_text *t)
{
    hidream_text_release_encoders(t);
    for (int k = 0; k < HIDREAM_ENCODERS; k++) tokenizer_free(t->tok[k]);
    if (t->view) backend_destroy(t->view);
    memset(t, 0, sizeof *t);
}

void hidream_prompt_embeds_free(hidream_prompt_embeds *e)
{
    free(e->t5), free(e->llama), free(e->pooled);
    memset(e, 0, sizeof *e);
}
