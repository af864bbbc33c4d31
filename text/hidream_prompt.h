/* HiDream-I1's own text side: four tokenizers and encoders from a model
 * folder (tokenizer/ + text_encoder/: CLIP-L, tokenizer_2/ + text_encoder_2/:
 * CLIP-G, tokenizer_3/ + text_encoder_3/: T5, tokenizer_4/ + text_encoder_4/
 * or --llama DIR: Llama 3.1), combined as diffusers'
 * HiDreamImagePipeline.encode_prompt does, for one prompt (or negative
 * prompt) with M = max_sequence_length (default 128):
 *
 *   pooled  = cat(clip_l(ids_1).text_embeds, clip_g(ids_2).text_embeds)   [P_L + P_G]
 *             ids_k = tokenizer_k(prompt_k), truncated and padded with the
 *             tokenizer's pad token to min(M, 218) ids; no attention mask
 *   t5      = t5(ids_3, mask_3).last_hidden_state                         [L0, C0]
 *             ids_3 padded to L0 = min(M, tokenizer_3.model_max_length),
 *             mask 1 on the prompt's tokens, 0 on the padding
 *   llama   = stack(llama(ids_4, mask_4, output_hidden_states).hidden_states[1:])
 *                                                                          [N, L1, C1]
 *             ids_4 padded with the eos token (the pipeline sets pad = eos)
 *             to L1 = min(M, tokenizer_4.model_max_length); every row,
 *             padded ones included, as the transformer reads them all
 *
 * prompt_2, prompt_3, prompt_4 default to prompt (an empty one too, as
 * Python's `prompt_2 or prompt`); the negative prompt defaults to "" and its
 * _2/_3/_4 to it. Tokenizers pad on the right (a left-padding tokenizer is
 * refused). Each encoder is loaded when first needed, runs over every
 * prompt asked for at once, and is freed after (diffusers' offload order
 * text_encoder -> _2 -> _3 -> _4), unless the options keep them; its time
 * (load and forward) and its peak device memory (weights and activations,
 * counted by backend_memory.h) are recorded. */
#ifndef MOEDIT_TEXT_HIDREAM_PROMPT_H
#define MOEDIT_TEXT_HIDREAM_PROMPT_H

#include "dit/dit_config.h"
#include "text/clip_encoder.h"
#include "text/t5_encoder.h"
#include "text/text_encoder.h"
#include "text/tokenizer.h"

#define HIDREAM_DEFAULT_MAX_SEQUENCE_LENGTH 128
#define HIDREAM_CLIP_MAX_LENGTH 218 /* _get_clip_prompt_embeds' cap (Long-CLIP positions) */

enum { HIDREAM_CLIP_L, HIDREAM_CLIP_G, HIDREAM_T5, HIDREAM_LLAMA, HIDREAM_ENCODERS };

/* One branch's prompts: text[k] goes to tokenizer/encoder k; NULL or "" for
 * k > 0 means text[0]. */
typedef struct hidream_prompt {
    const char *text[HIDREAM_ENCODERS];
} hidream_prompt;

/* The transformer's text inputs for one prompt, host F32. */
typedef struct hidream_prompt_embeds {
    int64_t t5_tokens, t5_channels;                      /* L0, C0 */
    int64_t llama_layers, llama_tokens, llama_channels; /* N, L1, C1 */
    int64_t pooled_channels;                             /* P */
    float *t5;     /* prompt_embeds_t5 [L0, C0] */
    float *llama;  /* prompt_embeds_llama3 [N, L1, C1] */
    float *pooled; /* pooled_prompt_embeds [P] */
} hidream_prompt_embeds;

typedef struct hidream_encoder_usage {
    double seconds;     /* loading and running it, summed over calls */
    int64_t peak_bytes; /* most device memory it held at once */
    int prompts;        /* prompts it encoded */
} hidream_encoder_usage;

typedef struct hidream_text_options {
    const char *model_dir;
    const char *llama_dir; /* NULL: model_dir/text_encoder_4 and tokenizer_4 */
    int max_sequence_length; /* 0: 128 */
    int keep_encoders;       /* keep each encoder loaded after encode */
    int random_weights;      /* no weight files: encoder k's from Philox with seed + k (io/weights.h) */
    uint64_t seed;
} hidream_text_options;

typedef struct hidream_text {
    char encoder_dir[HIDREAM_ENCODERS][4200], tokenizer_dir[HIDREAM_ENCODERS][4200];
    tokenizer *tok[HIDREAM_ENCODERS];
    int32_t pad_id[HIDREAM_ENCODERS];  /* the id prompts are padded with */
    int64_t length[HIDREAM_ENCODERS]; /* padded length per encoder */
    int64_t clip_dim[2], t5_dim;      /* from the configs, checked against the loaded encoders */
    text_encoder_config llama_cfg;
    backend *view;                    /* a memory-counting view of the backend */
    clip_encoder *clip[2];
    t5_encoder *t5;
    text_encoder llama;
    int llama_loaded, keep;
    int random_weights;   /* encoders from Philox (the configs only; the tokenizers still read their files) */
    uint64_t seed;
    hidream_encoder_usage usage[HIDREAM_ENCODERS];
} hidream_text;

/* 1 when model_dir holds HiDream's own text side (text_encoder_3/) or a
 * Llama is given apart (llama_dir); 0 for the demo's single encoder. */
int hidream_text_present(const char *model_dir, const char *llama_dir);

/* Opens the four tokenizers and reads the encoders' configs (no weights
 * yet). With `transformer`, checks that the encoders fit it: T5 d_model and
 * Llama hidden_size against caption_channels, the two CLIP projection_dims
 * against text_emb_dim, every llama_layers index against the Llama's layers. */
int hidream_text_open(hidream_text *t, backend *be, const hidream_text_options *o, const dit_config *transformer);

/* out[i] for prompts[i], i < count. On failure nothing is left in out. */
int hidream_text_encode(hidream_text *t, const hidream_prompt *prompts, int count, hidream_prompt_embeds *out);

/* The same from ids already padded (ids[k] of length t->length[k]; valid[k]
 * tokens before the padding): the encoders alone, for tests. */
int hidream_text_encode_ids(hidream_text *t, const int32_t *const ids[HIDREAM_ENCODERS],
                            const int64_t valid[HIDREAM_ENCODERS], hidream_prompt_embeds *out);

/* Frees whichever encoders are loaded (the tokenizers stay). */
void hidream_text_release_encoders(hidream_text *t);
void hidream_text_close(hidream_text *t);

/* e with the shapes hidream_text_encode gives (from the configs and
 * tokenizers alone, no encoder loaded) and uninitialised data: for a rank
 * that receives another rank's embeddings. */
int hidream_prompt_embeds_alloc(const hidream_text *t, hidream_prompt_embeds *e);
void hidream_prompt_embeds_free(hidream_prompt_embeds *e);

#endif
