/* CLIP's text encoder with its projection: transformers'
 * CLIPTextModelWithProjection, whose text_embeds HiDream-I1 takes as the
 * pooled prompt embedding from text_encoder/ (CLIP-L) and text_encoder_2/
 * (CLIP-G).
 *
 * For token ids t[S] (positions 0..S-1, S <= max_position_embeddings), with
 * LN(x) = (x - mean) / sqrt(var + eps) * weight + bias (nn.LayerNorm):
 *   x    = token_embedding[t] + position_embedding[0..S-1]
 *   per layer l (text_model.encoder.layers.l.):
 *   h    = x + out_proj(causal_attention(q_proj(LN1(x)), k_proj(LN1(x)), v_proj(LN1(x))))
 *   x'   = h + fc2(act(fc1(LN2(h))))
 * attention per head over H heads of D = C / H channels with scores
 * q k^T / sqrt(D), query i seeing keys 0..i; act = hidden_act (quick_gelu:
 * x sigmoid(1.702 x); gelu: x / 2 (1 + erf(x / sqrt 2)); gelu_new or
 * gelu_pytorch_tanh: the tanh approximation). Then
 *   pooled      = final_layer_norm(x)[e]
 *   text_embeds = text_projection(pooled)            (no bias)
 * with e the EOS position as transformers picks it: when config eos_token_id
 * is 2 (the legacy rule), the first position of the largest id; else the
 * first position whose id is eos_token_id (0 when there is none).
 *
 * Config (config.json, as CLIPTextConfig saves it): model_type
 * "clip_text_model"; hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads, max_position_embeddings, vocab_size, projection_dim,
 * hidden_act, layer_norm_eps, eos_token_id, with CLIPTextConfig's defaults
 * where absent. HiDream's two CLIPs have 248 positions (Long-CLIP).
 *
 * Weights (model.safetensors, model.safetensors.index.json or the only
 * *.safetensors in the directory; any of F32, F16, BF16):
 *   text_model.embeddings.token_embedding.weight [vocab, C]
 *   text_model.embeddings.position_embedding.weight [positions, C]
 *   text_model.encoder.layers.l.self_attn.{q,k,v,out}_proj.{weight [C, C], bias [C]}
 *   text_model.encoder.layers.l.layer_norm{1,2}.{weight, bias} [C]
 *   text_model.encoder.layers.l.mlp.fc1.{weight [I, C], bias [I]}, mlp.fc2.{weight [C, I], bias [C]}
 *   text_model.final_layer_norm.{weight, bias} [C]; text_projection.weight [P, C]
 *
 * The encoder computes through the backend seam: F32 on the CPU backend,
 * BF16 with F32 accumulation on CUDA. */
#ifndef MOEDIT_TEXT_CLIP_ENCODER_H
#define MOEDIT_TEXT_CLIP_ENCODER_H

#include "backend/arena.h"

#include <stdint.h>

typedef struct clip_encoder clip_encoder; /* opaque */

/* Loads dir/config.json and the weights in dir onto be; fails naming the
 * file and key or tensor. With random set, no weight file is opened: every
 * tensor is made from the Philox stream of (seed, its name) on the device
 * (io/weights.h), for benchmarks at real sizes. */
int clip_encoder_load(clip_encoder **out, const char *dir, backend *be, int random, uint64_t seed);

/* pooled (host, F32) [projection_dim] = text_embeds of ids[count] (1 <= count
 * <= max_position_embeddings, every id < vocab_size). scratch is on the
 * encoder's backend; what the forward takes from it is released before
 * returning. */
int clip_encoder_forward(clip_encoder *enc, arena *scratch, const int32_t *ids, int count, float *pooled);

int clip_encoder_projection_dim(const clip_encoder *enc);
/* max_position_embeddings: the longest id sequence the encoder takes. */
int clip_encoder_max_positions(const clip_encoder *enc);

void clip_encoder_free(clip_encoder *enc); /* NULL is fine */

#endif
