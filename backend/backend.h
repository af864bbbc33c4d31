/* The backend interface: the one seam between model code and a device.
 *
 * Model code (dit/, moe/, vae/, pipelines/) computes only through these
 * operations and never asks which device it runs on. A backend computes in
 * its own activation dtype (CPU: F32; CUDA: BF16 with F32 accumulation); every
 * tensor handed to an op lives on the backend's device and is contiguous
 * row-major. Matrices are [rows, cols]; sequences are [S, C] with heads packed
 * as C = H * D. Shape mismatches are programming errors (asserted in the
 * backends); user input is validated long before it reaches an op. */
#ifndef MOEDIT_BACKEND_BACKEND_H
#define MOEDIT_BACKEND_BACKEND_H

#include "backend/activation.h"
#include "core/tensor.h"

typedef struct backend backend;

#define BACKEND_UPLOAD_SLOTS 2 /* upload_async's slots: a double buffer */

typedef struct backend_memory_use {
    int64_t in_use, peak, total; /* bytes */
    char device[16];
} backend_memory_use;

typedef struct backend_ops {
    /* Memory. alloc returns NULL and sets the error on failure. */
    void *(*alloc)(backend *be, size_t bytes);
    void (*free)(backend *be, void *ptr);
    /* Host F32 <-> device tensor, converted to/from the tensor's dtype;
     * I32 tensors are copied as raw 32-bit words, F8 tensors as raw bytes
     * (codes; their scales are an F32 tensor of their own). */
    void (*upload)(backend *be, tensor dst, const float *src);
    void (*download)(backend *be, float *dst, tensor src);
    void (*copy)(backend *be, tensor dst, tensor src); /* same numel */
    void (*fill)(backend *be, tensor dst, float value);
    /* A block of a random matrix, made where it lives (--random-weights):
     * dst[r, c] = scale * u((row0 + r) * full_cols + col0 + c) with u the
     * Philox uniform of (seed, stream) (core/philox.h, philox_fill_uniform),
     * computed in F32 and stored in dst's dtype; a vector dst is one column. */
    void (*fill_uniform)(backend *be, tensor dst, uint64_t seed, uint64_t stream, float scale, int64_t full_cols,
                         int64_t row0, int64_t col0);
    void (*synchronize)(backend *be);
    void (*destroy)(backend *be);

    /* Weights kept in host memory and streamed in (--max-gpu-memory,
     * dit/dit_weight_stream.h). host_alloc: host memory the device copies
     * from fastest (CUDA: pinned), NULL with the error set; host_free frees
     * it. download_raw: device bytes to host as they are, waiting for queued
     * work. upload_async: host bytes into a device buffer as they are, after
     * every op queued so far (so a buffer a queued op still reads can be
     * refilled), overlapping ops queued later (CUDA: a copy stream); slot
     * (0 .. BACKEND_UPLOAD_SLOTS - 1) names the copy for upload_wait, which
     * makes every op queued after it wait for that slot's last copy. The host
     * bytes must stay unchanged until then. CPU: memcpy, done at once. */
    void *(*host_alloc)(backend *be, size_t bytes);
    void (*host_free)(backend *be, void *ptr);
    void (*download_raw)(backend *be, void *host, const void *device, size_t bytes);
    void (*upload_async)(backend *be, int slot, void *device, const void *host, size_t bytes);
    void (*upload_wait)(backend *be, int slot);
    /* 0, or -1 with the error set when an earlier op failed on the device
     * (device errors surface asynchronously: this waits for queued work).
     * Pipelines check it once per step and after the VAE, so a device fault
     * ends the run with its message instead of writing a garbage image. */
    int (*status)(backend *be);
    /* The bytes this backend holds on its device (its own count of what it
     * allocated: weights, arenas, its buffers) now and at most since it was
     * made, the device's total (CUDA: cudaMemGetInfo; CPU: the host's RAM)
     * and its name ("cuda:0", "cpu"). moedit serve's /metrics. */
    void (*memory)(backend *be, backend_memory_use *use);

    /* y[M, N] = x[M, K] w[N, K]^T (+ bias[N] when bias.data is not NULL).
     * FP8 (docs/fp8.md): w may be F8_E4M3 with its per-row scale; then x is
     * an F8_E4M3 activation with its per-row scale (quantize_rows), or an
     * activation the op quantizes per row itself, and
     *   y[m, n] = (sum_k x_code[m, k] w_code[n, k]) * (x_scale[m] * w_scale[n]) + bias[n]
     * with F32 accumulation (the CPU: sgemm over decoded codes; CUDA:
     * cuBLASLt's FP8 tensor-core product, output in BF16). */
    void (*linear)(backend *be, tensor y, tensor x, tensor w, tensor bias);
    /* For g in groups: y[rows g] = x[rows g] w[g]^T, rows g = [offsets[g], offsets[g+1]).
     * One launch for all experts of a layer. offsets live on the host. FP8
     * as linear (x's row scales slice with its rows). */
    void (*linear_grouped)(backend *be, tensor y, tensor x, const tensor *w, const int64_t *offsets, int groups);
    /* FP8 activations of a row split over ranks (parallel/fp8_rows.h):
     * amax[M] (F32) = max |x[m, :]|; after the ranks' amax are max-reduced,
     * q (F8_E4M3 [M, K] with q.scale [M]) = x quantized per row with scale
     * f8_row_scale(amax[m]) (core/float8.h). */
    void (*row_abs_max)(backend *be, tensor amax, tensor x);
    void (*quantize_rows)(backend *be, tensor q, tensor x, tensor amax);

    /* Elementwise. */
    void (*add)(backend *be, tensor y, tensor a, tensor b);           /* y = a + b */
    void (*silu)(backend *be, tensor y, tensor x);                    /* y = x * sigmoid(x) */
    void (*swiglu)(backend *be, tensor y, tensor gate, tensor up);    /* y = silu(gate) * up */
    void (*gated_residual)(backend *be, tensor x, tensor gate, tensor y); /* x[M,C] += gate[C] * y[M,C] */
    void (*scale_rows)(backend *be, tensor x, tensor row_scale);      /* x[i, :] *= row_scale[i] */

    /* Normalisation over the last dim. */
    /* y = layer_norm(x) * (1 + scale[C]) + shift[C]; no affine weights. */
    void (*layer_norm_modulate)(backend *be, tensor y, tensor x, tensor shift, tensor scale, float eps);
    /* y = x / sqrt(mean(x^2) + eps) * weight[C] */
    void (*rms_norm)(backend *be, tensor y, tensor x, tensor weight, float eps);

    /* Two-phase RMSNorm for a row split over tensor-parallel ranks:
     * sums[M] (F32) = sum of squares of each row of x[M, C]; after the sums
     * are all-reduced, y = x / sqrt(sums / count + eps) * weight[C]. */
    void (*row_sum_squares)(backend *be, tensor sums, tensor x);
    void (*rms_norm_with_sums)(backend *be, tensor y, tensor x, tensor sums, int64_t count, tensor weight, float eps);

    /* Ulysses packing: split_columns cuts x[M, C] into `parts` column blocks
     * stacked as rows, y[parts * M, C / parts] (block p = x[:, p*C/parts...]);
     * merge_columns is its inverse. */
    void (*split_columns)(backend *be, tensor y, tensor x, int parts);
    void (*merge_columns)(backend *be, tensor y, tensor x, int parts);

    /* Rotary embedding in place on the first rope_dim channels of every head
     * of x[S, H * D]: pairs (x0, x1) -> (c x0 - s x1, s x0 + c x1) with
     * (c, s) = cos_sin[S, rope_dim] read as rope_dim / 2 interleaved pairs. */
    void (*rope)(backend *be, tensor x, tensor cos_sin, int heads, int rope_dim);
    /* rms_norm (in place) and then rope on x, in one pass over each row: the
     * q/k normalisation and rotation of the tokens that carry positions. */
    void (*rms_norm_rope)(backend *be, tensor x, tensor weight, float eps, tensor cos_sin, int heads, int rope_dim);

    /* out[Sq, H*D] = softmax(q k^T / sqrt(D)) v per head, q[Sq, H*D],
     * k, v[Sk, H*D]. When lse.data is not NULL it receives the log-sum-exp of
     * the scaled scores, lse[H, Sq] (F32), so partial results can be merged. */
    void (*attention)(backend *be, tensor out, tensor lse, tensor q, tensor k, tensor v, int heads);

    /* Ring attention: merge a partial result over other keys into (out, lse)
     * in place: lse' = log(e^lse + e^part_lse), out' = e^(lse - lse') out +
     * e^(part_lse - lse') part_out, per head and query. */
    void (*attention_merge)(backend *be, tensor out, tensor lse, tensor part_out, tensor part_lse, int heads);

    /* The same with a causal mask: query i attends to keys 0..i (Sq == Sk). */
    void (*attention_causal)(backend *be, tensor out, tensor q, tensor k, tensor v, int heads);

    /* Images are [C, H, W] (one sample). y[Cout, Ho, Wo] = conv(x[Cin, H, W])
     * with w [Cout, Cin * kernel * kernel] (PyTorch's [Cout, Cin, kh, kw]
     * flattened), bias [Cout] or none, zero padding pad = {top, bottom, left,
     * right}: Ho = (H + top + bottom - kernel) / stride + 1. Explicit padding
     * per side serves both asymmetric downsampling and halo rows. */
    void (*conv2d)(backend *be, tensor y, tensor x, tensor w, tensor bias, int kernel, int stride, const int pad[4]);
    /* stats[groups, 2] (F32) = per group of channels of x[C, N]: (sum, sum of
     * squares), so partial statistics of image bands can be all-reduced. */
    void (*group_norm_stats)(backend *be, tensor stats, tensor x, int groups);
    /* y = (x - mean) / sqrt(var + eps) * weight[C] + bias[C] with mean and var
     * from stats summed over `count` elements per group; then SiLU when silu. */
    void (*group_norm_apply)(backend *be, tensor y, tensor x, tensor stats, int64_t count, tensor weight,
                             tensor bias, float eps, int silu);
    /* y[C, 2H, 2W] = nearest-neighbour 2x upsampling of x[C, H, W]. */
    void (*upsample_nearest2x)(backend *be, tensor y, tensor x);
    /* Images y[C, Hy, W], x[C, Hx, W] of one dtype: y[c, y_row + i, :] =
     * x[c, x_row + i, :] for i < rows and every channel: bands of rows cut
     * and pasted (VAE halos) without an index. */
    void (*copy_rows)(backend *be, tensor y, int64_t y_row, tensor x, int64_t x_row, int64_t rows);
    /* y[N, M] = x[M, N]^T (images [C, H*W] <-> token rows [H*W, C]). */
    void (*transpose)(backend *be, tensor y, tensor x);

    /* MoE data movement: y[i] = x[index[i]] (index I32 [n] on the device);
     * and the combine y[r] += weight[p] * x[p - first] summed over the K
     * positions p = positions[r, 0..K) (I32 [M, K]) in ascending order of p,
     * so every backend adds in one order (weight F32 [slots]). x holds the
     * slots at positions [first, first + rows(x)); the others are skipped
     * (under expert parallelism another rank adds them). */
    void (*gather_rows)(backend *be, tensor y, tensor x, tensor index);
    void (*combine_rows)(backend *be, tensor y, tensor x, tensor positions, tensor weight, int64_t first);
    /* MoE gate (backend/moe_gate.h, the same rule on every backend): per row of
     * logits[rows, E] (activation dtype; may be overwritten), experts[rows, K]
     * (I32) <- the K most probable, ascending, unless `forced` (a replay:
     * experts are given), and weights[rows, K] (F32) <- their probabilities. */
    void (*moe_route)(backend *be, tensor experts, tensor weights, tensor logits, int forced);
    /* MoE dispatch: the slots s = (row, j) of experts[rows, K] in a stable
     * counting sort by bucket[experts[s]] (I32 [E]; none: the expert itself),
     * buckets 0..buckets-1: rows[p] = s / K and slot_weights[p] = weights[s]
     * for the slot at position p (I32 and F32 [rows * K]), positions[s] = p
     * (I32 [rows, K], combine_rows' argument); offsets[b] (I32 [buckets + 1])
     * = the first position of bucket b, offsets[buckets] = all. */
    void (*moe_dispatch)(backend *be, tensor rows, tensor slot_weights, tensor positions, tensor offsets,
                         tensor experts, tensor weights, tensor bucket, int buckets);

    /* Text encoders (CLIP, T5: text/clip_encoder.h, text/t5_encoder.h). */
    /* y = act(x) * up elementwise (y = act(x) when up.data is NULL), act one
     * of backend_activation (backend/activation.h); y may be x. */
    void (*activation)(backend *be, tensor y, tensor x, tensor up, backend_activation act);
    /* nn.LayerNorm: y = (x - mean) / sqrt(var + eps) * weight[C] + bias[C]
     * over the last dim (biased variance; no bias when bias.data is NULL). */
    void (*layer_norm)(backend *be, tensor y, tensor x, tensor weight, tensor bias, float eps);
    /* out[Sq, H*D] = softmax(scale * q k^T + bias[h]) v per head h, q[Sq, H*D],
     * k, v[Sk, H*D], bias F32 [H, Sq, Sk] (T5's relative position bias with
     * its padding mask folded in; masked keys carry -FLT_MAX as in
     * transformers, so a row whose keys are all masked averages them all). */
    void (*attention_bias)(backend *be, tensor out, tensor q, tensor k, tensor v, tensor bias, int heads, float scale);
} backend_ops;

struct backend {
    const backend_ops *ops;
    const char *name;
    tensor_device device;
    tensor_dtype dtype; /* activation and weight dtype */
    void *impl;
};

/* "cpu" or "cuda"; NULL with the error set when unknown or unavailable. */
backend *backend_create(const char *device);
/* The device a run takes when none is named: "cuda" when this build has the
 * CUDA backend and the driver reports a GPU, else "cpu". */
const char *backend_default_device(void);

/* The CPU backend: F32, BLAS sgemm, OpenMP. NULL (error set) only when out of memory. */
backend *backend_cpu_create(void);
void backend_destroy(backend *be);

/* A tensor with no data: for optional arguments (bias, lse). */
static inline tensor tensor_none(void)
{
    tensor t = {0};
    return t;
}

#endif
