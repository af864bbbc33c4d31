/* T5's encoder: transformers' T5EncoderModel, HiDream-I1's text_encoder_3
 * (T5 v1.1 XXL), whose last_hidden_state is HiDream's t5 prompt embedding.
 *
 * For token ids t[S] and attention mask m[S] (1: a token, 0: padding), with
 * rms(x) = x / sqrt(mean(x^2) + eps) * weight (T5LayerNorm: no mean, no bias):
 *   x   = shared[t]
 *   per block l (encoder.block.l.):
 *   h   = x + o(attention(q(rms0(x)), k(rms0(x)), v(rms0(x)), bias))
 *   x'  = h + wo(act(wi_0(rms1(h))) * wi_1(rms1(h)))       (gated feed-forward)
 *   out = final_layer_norm(x)                              (rms)
 * attention per head h of H heads of d_kv channels, scores NOT scaled:
 *   softmax_j(q_i . k_j + bias[h, i, j]),
 *   bias[h, i, j] = relative_attention_bias[bucket(j - i), h] + (m[j] ? 0 : -FLT_MAX)
 * with the bias table of block 0 used by every block, and bucket() T5's
 * bidirectional relative position buckets (t5_relative_bucket below). No
 * linear has a bias; act is gelu_new (tanh approximation) for feed_forward_proj
 * "gated-gelu", as transformers maps it.
 *
 * Config (config.json, as T5Config saves it): model_type "t5"; d_model, d_kv,
 * d_ff, num_layers, num_heads, vocab_size, relative_attention_num_buckets
 * (32), relative_attention_max_distance (128), layer_norm_epsilon (1e-6),
 * feed_forward_proj: "gated-ACT" with ACT gelu (= gelu_new), gelu_new,
 * gelu_pytorch_tanh, quick_gelu; a feed-forward without a gate (T5 v1.0's
 * "relu") is refused.
 *
 * Weights (model.safetensors, its index, or the only *.safetensors file):
 *   shared.weight (or encoder.embed_tokens.weight) [vocab, d_model]
 *   encoder.block.l.layer.0.SelfAttention.{q,k,v}.weight [H*d_kv, d_model], .o.weight [d_model, H*d_kv]
 *   encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight [num_buckets, H]
 *   encoder.block.l.layer.0.layer_norm.weight, encoder.block.l.layer.1.layer_norm.weight [d_model]
 *   encoder.block.l.layer.1.DenseReluDense.{wi_0,wi_1}.weight [d_ff, d_model], .wo.weight [d_model, d_ff]
 *   encoder.final_layer_norm.weight [d_model]
 *
 * F32 on the CPU backend, BF16 with F32 accumulation on CUDA; the position
 * bias and the residual stream stay F32 on both (see t5_encoder.c). */
#ifndef MOEDIT_TEXT_T5_ENCODER_H
#define MOEDIT_TEXT_T5_ENCODER_H

#include "backend/arena.h"

#include <stdint.h>

typedef struct t5_encoder t5_encoder; /* opaque */

/* Loads dir/config.json and the weights in dir onto be; fails naming the
 * file and key or tensor. With random set, no weight file is opened: every
 * tensor (the position bias table too) is made from the Philox stream of
 * (seed, its name) on the device (io/weights.h), for benchmarks. */
int t5_encoder_load(t5_encoder **out, const char *dir, backend *be, int random, uint64_t seed);

/* hidden (host, F32) [count, d_model] = T5EncoderModel(ids, attention_mask)
 * .last_hidden_state for ids[count] (count >= 1, every id < vocab_size);
 * attention_mask[count] of 0/1, or NULL for all ones. scratch is on the
 * encoder's backend; what the forward takes from it is released before
 * returning. */
int t5_encoder_forward(t5_encoder *enc, arena *scratch, const int32_t *ids, int count, const int32_t *attention_mask,
                       float *hidden);

int t5_encoder_hidden_size(const t5_encoder *enc);

void t5_encoder_free(t5_encoder *enc); /* NULL is fine */

/* T5Attention._relative_position_bucket with bidirectional=True: the bucket of
 * relative position `relative` (key - query), in [0, num_buckets). Half the
 * buckets per direction; in each, distances below a quarter of num_buckets
 * their own bucket, the rest logarithmically up to max_distance, computed in
 * float32 as torch does so that the boundaries fall where its do. */
int t5_relative_bucket(int64_t relative, int num_buckets, int max_distance);

#endif
