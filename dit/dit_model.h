/* The weights of a HiDreamImageTransformer2DModel, by diffusers name.
 *
 *   x_embedder.proj                         patch embed  [C, in * p * p]
 *   t_embedder.timestep_embedder.linear_1/2 timestep MLP (256 -> C -> C)
 *   p_embedder.pooled_embedder.linear_1/2   pooled text MLP (text_emb_dim -> C -> C)
 *   caption_projection.<i>.linear           llama layer of block i -> C; the last one: t5 -> C
 *   double_stream_blocks.<i>.block.*        adaLN (12C), joint attention (image + text
 *                                           projections), ff_i (MoE), ff_t (dense)
 *   single_stream_blocks.<i>.block.*        adaLN (6C), attention, ff_i (MoE)
 *   final_layer.adaLN_modulation.1 / linear
 */
#ifndef MOEDIT_DIT_MODEL_H
#define MOEDIT_DIT_MODEL_H

#include "io/weights.h"
#include "dit/dit_block.h"
#include "dit/dit_config.h"
#include "dit/dit_weight_stream.h"

/* Which slice of the weights this rank holds. Tensor parallel: attention
 * heads and feed-forward hidden units split over tp ranks (q, k, v, w1, w3
 * by rows; out and w2 by columns, their bias on tp rank 0 only, so the
 * all-reduce of the partial outputs adds it once). Expert parallel (ep_size
 * > 1): this rank holds whole experts [ep_rank * E / ep_size, ...) and no
 * other; the shared expert stays tensor parallel. */
typedef struct dit_shard {
    int tp_rank, tp_size;
    int ep_rank, ep_size;
    /* NULL, or [blocks * routed experts]: each block's experts in the order EP
     * ranks hold them (moe_placement.expert_order); the same on every rank. */
    const int32_t *expert_order;
    /* NULL, or [blocks * (tp_size + 1)]: each block's shared-expert slices
     * per tp rank (moe_placement.shared_bounds). */
    const int64_t *shared_bounds;
    /* 1: the linear layers held as FP8 (--precision fp8, docs/fp8.md): F8_E4M3
     * codes with F32 scales per output channel, quantized from the whole
     * weight before the split (or read so from an FP8 folder). */
    int fp8;
    /* 1: each block's weights packed into host memory as it loads
     * (--max-gpu-memory): dit_weight_stream_place then decides which come
     * back to stay and which are streamed (dit/dit_weight_stream.h). */
    int host_blocks;
} dit_shard;


typedef struct dit_model {
    dit_config cfg;
    dit_shard shard;
    backend *be;
    dit_linear patch_embed;
    dit_linear time_linear_1, time_linear_2;
    dit_linear pooled_linear_1, pooled_linear_2;
    dit_linear *caption_projection; /* num_blocks + 1 */
    dit_block *blocks;              /* double blocks, then single blocks */
    dit_linear final_modulation, final_linear;
    weight_loader weights;
    int64_t bytes_on_disk;
    dit_weight_stream *stream; /* shard.host_blocks: where each block's weights are; else NULL */
} dit_model;

/* Loads transformer/config.json and its safetensors from dir (random: no
 * weight files, Philox weights from seed). shard NULL: all weights. */
int dit_model_load(dit_model *model, backend *be, const char *dir, int random, uint64_t seed, const dit_shard *shard);

/* The same with LoRAs merged, in order, into the weights they name
 * (io/lora.h), before those are split over ranks; fails when a pair of one
 * names no weight of the transformer's file (or one of another shape), and
 * with random weights. */
int dit_model_load_adapted(dit_model *model, backend *be, const char *dir, int random, uint64_t seed,
                           const dit_shard *shard, lora_set *const *loras, int lora_count);

/* Same with an already parsed config (random weights or tests). */
int dit_model_load_config(dit_model *model, backend *be, const dit_config *cfg, const safetensors *st, int random,
                          uint64_t seed, const dit_shard *shard);

/* --precision: NULL or "native" (the device's own: CPU F32, CUDA BF16) sets
 * *fp8 = 0; "fp8" sets 1 (dit_shard.fp8), on the CPU only until the GPU
 * FP8 path has passed its GPU test (device NULL: the CPU; the gate is
 * fp8_gpu_unverified in dit_model.c). Else one error naming the flag. */
int dit_precision_parse(const char *precision, const char *device, int *fp8);

/* 1 if the 2-D tensor `name` of the transformer's file is a weight that
 * --precision fp8 holds in FP8 (and `moedit quantize` writes so): every
 * "*.weight" but the embedders' (x_embedder, t_embedder, p_embedder) and the
 * MoE gates' ("*.gate.weight"); the loader's weight_load_linear calls are
 * exactly these. */
int dit_weight_quantized(const char *name);

/* Checks that heads, hidden sizes and experts divide by the shard's degrees. */
int dit_shard_validate(const dit_config *cfg, const dit_shard *shard);

/* Where a block's MoE work goes under expert parallelism, from a routing file. */
typedef struct dit_placement {
    int32_t *expert_order;  /* for dit_shard.expert_order */
    int64_t *shared_bounds; /* for dit_shard.shared_bounds, or NULL */
} dit_placement;

/* Every block's experts dealt to ep_size ranks by the loads in a routing file
 * (moe_placement_balanced); when the ep group is the tp group (ep_size ==
 * tp_size), also the shared expert split unevenly so that every rank's
 * routed plus shared work comes out alike (moe_shared_split). Fails with the
 * error set; dit_placement_free frees what it made. */
int dit_expert_placement(dit_placement *placement, const dit_config *cfg, const char *routing, int ep_size,
                         int tp_size);
void dit_placement_free(dit_placement *placement);

/* Points shard's tables at placement's. */
void dit_shard_place(dit_shard *shard, const dit_placement *placement);

/* Bytes of the routed experts' weights this rank holds (w1, w3, w2 of its
 * local experts in every block; 0 for a dense transformer): what expert
 * parallelism divides by the ranks of its group. */
int64_t dit_model_expert_bytes(const dit_model *model);

void dit_model_free(dit_model *model);

#endif
