/* moedit's HiDream conditioning from its one Llama-style text encoder.
 *
 * HiDream-I1 conditions on two encoders (T5-XXL and Llama-3.1-8B) plus CLIP
 * pooled embeddings; moedit's native text side derives all three inputs of
 * HiDreamImageTransformer2DModel from a single encoder (text_encoder.h), by
 * this rule (moedit's own design, not a diffusers pipeline):
 *
 *   ids = tokenizer(prompt)              [L]  no padding, at most max_tokens
 *   hs  = encoder(ids).hidden_states     [N + 1, L, C]  (hs[N] after the final norm)
 *   prompt_embeds_llama3 = hs[1 .. N]    [N, L, C]   every layer's output, as
 *                                        HiDreamImagePipeline stacks
 *                                        Llama's hidden_states[1:]
 *   prompt_embeds_t5     = hs[N]         [L, C]      the final (normed) state
 *   pooled_prompt_embeds = mean_L hs[N]  [C]         its mean over tokens
 *
 * So a transformer used with it has caption_channels [C, C], text_emb_dim C
 * and every llama_layers index < N. The fields map one to one onto
 * dit_text_inputs: {t5, tokens, llama, layers, tokens, pooled}.
 *
 * An empty prompt still gives at least one token when the tokenizer's
 * template adds one (a BOS); with no template it is an error that says so.
 * Prompts longer than max_tokens are truncated by the tokenizer's contract
 * (tokenizer.h), keeping the BOS; prompt_tokens records the length before. */
#ifndef MOEDIT_TEXT_TEXT_CONDITIONING_H
#define MOEDIT_TEXT_TEXT_CONDITIONING_H

#include "text/text_encoder.h"
#include "text/tokenizer.h"

/* HiDreamImagePipeline's default max_sequence_length. */
#define TEXT_CONDITIONING_DEFAULT_MAX_TOKENS 128

typedef struct text_conditioning {
    int64_t tokens;        /* L */
    int64_t layers;        /* N */
    int64_t channels;      /* C */
    int64_t prompt_tokens; /* the prompt's length before truncation (>= tokens) */
    int32_t *ids;          /* [L] */
    float *hidden_states;  /* [N + 1, L, C], host; owns t5 and llama */
    const float *llama;    /* prompt_embeds_llama3 [N, L, C] = hidden_states + L C */
    const float *t5;       /* prompt_embeds_t5 [L, C] = hidden_states + N L C */
    float *pooled;         /* pooled_prompt_embeds [C] */
} text_conditioning;

/* Tokenizes prompt (at most max_tokens ids) and encodes it. scratch is an
 * arena on the encoder's backend; it is left as it was found. */
int text_conditioning_encode(text_conditioning *out, const text_encoder *enc, const tokenizer *tok,
                             const char *prompt, int max_tokens, arena *scratch);

/* The same from token ids (tokens >= 1). */
int text_conditioning_from_ids(text_conditioning *out, const text_encoder *enc, const int32_t *ids, int64_t tokens,
                               arena *scratch);

void text_conditioning_free(text_conditioning *c);

#endif
