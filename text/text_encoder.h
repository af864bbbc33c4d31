/* moedit's text encoder: a Llama-style decoder stack (transformers'
 * LlamaModel, without the LM head) that returns every hidden state.
 *
 * For token ids t[S] (positions 0..S-1), per layer l (weights of layers.l):
 *   h    = x + o_proj(attention_causal(rope(q_proj(rms(x))), rope(k_proj(rms(x))), v_proj(rms(x))))
 *   x'   = h + down_proj(silu(gate_proj(rms(h))) * up_proj(rms(h)))
 * with rms(x) = x / sqrt(mean(x^2) + eps) * weight (input_layernorm, then
 * post_attention_layernorm), H query heads and KV key/value heads of dim D
 * (grouped-query attention: query head h reads kv head h / (H / KV)), RoPE
 * angle pos * inv_freq[i] on the pair (x[i], x[i + D/2]), i < D/2, with
 * inv_freq[i] = theta^(-2i/D), or Llama 3.1's rescaling of it (rope_type
 * "llama3", transformers' _compute_llama3_parameters; wavelen = 2 pi / f):
 *   wavelen < old / high_freq_factor:  f                      (kept)
 *   wavelen > old / low_freq_factor:   f / factor             (stretched)
 *   otherwise, s = (old / wavelen - low) / (high - low):
 *                                      (1 - s) f / factor + s f
 * where old = original_max_position_embeddings.
 *
 * Right padding (diffusers' HiDreamImagePipeline pads the Llama prompt to
 * max_length with an attention mask): with `valid` < S, keys >= valid are
 * masked for every query, as LlamaModel(ids, attention_mask) does: query i
 * attends to keys 0 .. min(i, valid - 1); positions stay 0..S-1, and the
 * padded rows are computed (the transformer reads them too).
 * The output matches LlamaModel(ids, output_hidden_states=True).hidden_states:
 *   hidden_states[0]          = embed_tokens[t]
 *   hidden_states[l], l < N   = output of layer l (1-based: layer l-1's x')
 *   hidden_states[N]          = norm(output of layer N)   (the final RMSNorm is
 *                               applied to the last entry, as transformers does)
 *
 * Config (text_encoder/config.json, as LlamaConfig saves it): hidden_size,
 * intermediate_size, num_hidden_layers, num_attention_heads,
 * num_key_value_heads (default: heads), head_dim (default hidden / heads),
 * rms_norm_eps, vocab_size; RoPE as transformers 4 saves it (rope_theta,
 * rope_scaling null or {"rope_type" or "type": "llama3", factor,
 * low_freq_factor, high_freq_factor, original_max_position_embeddings}) or
 * as transformers 5 does (rope_parameters {rope_type "default" or "llama3",
 * rope_theta, and the same four keys}); original_max_position_embeddings at
 * the top level wins, then the RoPE object's, then max_position_embeddings.
 * Refused with a clear error: any other rope_type, hidden_act other than
 * silu, attention_bias or mlp_bias true, a model_type other than llama.
 *
 * Weights (model.safetensors, model.safetensors.index.json or the only
 * *.safetensors in the directory), named as LlamaModel saves them, or with the
 * "model." prefix LlamaForCausalLM adds:
 *   embed_tokens.weight [vocab, C]; norm.weight [C]; per layer layers.l.:
 *   self_attn.{q,k,v,o}_proj.weight [H*D, C], [KV*D, C], [KV*D, C], [C, H*D]
 *   mlp.{gate,up,down}_proj.weight  [I, C], [I, C], [C, I]
 *   {input,post_attention}_layernorm.weight [C] */
#ifndef MOEDIT_TEXT_TEXT_ENCODER_H
#define MOEDIT_TEXT_TEXT_ENCODER_H

#include "backend/arena.h"
#include "io/weights.h"

typedef struct text_encoder_config {
    int64_t hidden_size;       /* C */
    int64_t intermediate_size; /* I */
    int64_t num_layers;        /* N: num_hidden_layers */
    int64_t num_heads;         /* H */
    int64_t num_kv_heads;      /* KV */
    int64_t head_dim;          /* D */
    int64_t vocab_size;
    double rms_norm_eps;
    double rope_theta;
    int rope_llama3;           /* 1: Llama 3.1's frequency rescaling below */
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor, rope_original_max_positions;
} text_encoder_config;

typedef struct text_encoder_layer {
    tensor input_norm, post_attention_norm; /* [C] */
    tensor q_proj, k_proj, v_proj, o_proj;  /* q, k rows permuted per head: see text_encoder.c */
    tensor gate_proj, up_proj, down_proj;
} text_encoder_layer;

typedef struct text_encoder {
    text_encoder_config cfg;
    backend *be;
    tensor embed_tokens; /* [vocab, C] */
    text_encoder_layer *layers;
    tensor norm;         /* [C], the final RMSNorm */
    weight_loader weights;
} text_encoder;

/* Parses a LlamaModel config.json; fails naming the file and key. */
int text_encoder_config_load(text_encoder_config *cfg, const char *path);

/* Loads dir/config.json and the weights in dir (a model's text_encoder/
 * folder). With random set, no weight file is read (Philox weights from seed). */
int text_encoder_load(text_encoder *enc, backend *be, const char *dir, int random, uint64_t seed);

/* The same with a parsed config and an open safetensors set (NULL if random). */
int text_encoder_load_config(text_encoder *enc, backend *be, const text_encoder_config *cfg, const safetensors *st,
                             int random, uint64_t seed);

void text_encoder_free(text_encoder *enc);

/* hidden_states (host, F32) [N + 1, S, C] for ids[S] (S >= 1, every id <
 * vocab_size). scratch is on the encoder's backend; everything allocated
 * from it is released before returning. */
int text_encoder_forward(const text_encoder *enc, arena *scratch, const int32_t *ids, int64_t tokens,
                         float *hidden_states);

/* The same for a right-padded sequence: attention mask 1 for tokens
 * 0..valid-1, 0 after (1 <= valid <= tokens); see the header comment. */
int text_encoder_forward_masked(const text_encoder *enc, arena *scratch, const int32_t *ids, int64_t tokens,
                                int64_t valid, float *hidden_states);

/* The same, hidden_states [N + 1 - first, S, C] holding only states
 * first..N (0 <= first <= N): HiDream reads hidden_states[1:], written
 * straight into its buffer. */
int text_encoder_forward_states(const text_encoder *enc, arena *scratch, const int32_t *ids, int64_t tokens,
                                int64_t valid, int64_t first, float *hidden_states);

/* RoPE's inverse frequency of pair i < head_dim / 2, in float32 as
 * transformers computes it (default or llama3). */
float text_encoder_inv_freq(const text_encoder_config *cfg, int64_t i);

#endif
