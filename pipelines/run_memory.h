/* The memory a run needs beyond its weights, estimated from the configs and
 * the size before any weight is loaded, and checked against this machine:
 * the physical memory available (MemAvailable + SwapFree, for each rank on
 * the machine) and the address-space limit (RLIMIT_AS, `ulimit -v`, less
 * what the process maps already). A run that cannot fit is refused at once
 * with the estimate and the limit, instead of failing minutes later in an
 * arena. Bytes, F32 on the CPU:
 *   host, always   4 (4 L + T p^2 c) + F H W 3 (4 + 1)
 *                  (latents L = F c h w with both branches' velocities, the
 *                  token staging, decoded frames in F32 and 8-bit)
 *   transformer    4 T / sp (24 C + 3 M)     (on the CPU backend only)
 *                  (24 floats per token and model channel C: the block's
 *                  sequence, q/k/v, attention output, norms; measured on the
 *                  demo model's arena peaks with room to spare; M the MoE's
 *                  hidden units per token, routed k x h plus shared, each
 *                  with its gate, up and product rows; sp = ulysses x ring)
 *   VAE decoder    4 * 3 max(b0, b1) H W / vae_patch   (CPU; per frame)
 *                  (three full-resolution tensors of the widest channels at
 *                  full resolution: the tiny model's arena peak is exactly
 *                  that, 192 bytes a pixel with b = 16)
 *   VAE encoder    4 * 3 b0 H W / vae_patch   (CPU; an edit's input)
 *   CPU scratch    16 MiB (attention scores, im2col bands)
 * and against the address-space limit also the arenas once more (they grow
 * by doubling blocks until their first reset, so up to twice their peak is
 * mapped) and 192 MiB per OpenMP thread (OpenBLAS's GEMM buffer, glibc's
 * malloc arena), which OpenBLAS would otherwise retry mapping forever.
 * with T the image tokens of all frames (twice that with in-context
 * tokens), p the patch size, b the VAE's block_out_channels. The clip
 * check of moedit video is this one with F frames. */
#ifndef MOEDIT_PIPELINES_RUN_MEMORY_H
#define MOEDIT_PIPELINES_RUN_MEMORY_H

#include "dit/dit_config.h"
#include "moedit.h"
#include "vae/vae_config.h"

typedef struct run_memory {
    int64_t tokens;                   /* image tokens of one job, every frame (and context) */
    double host, transformer, vae;    /* bytes */
    double total;
} run_memory;

/* The transformer line above: F32 bytes of one forward's activations over
 * `tokens` image tokens split over sp sequence-parallel ranks. */
double run_memory_transformer_bytes(const dit_config *dit, int64_t tokens, int sp);

void run_memory_estimate(const dit_config *dit, const vae_config *vae, const moedit_generate_options *o,
                         int64_t frames, int in_context, int encodes_image, run_memory *m);

/* 0, or -1 naming the run ("a 4096x4096 image", "a clip of 16 frames at
 * 256x256"), the estimate, its parts and the limit it passes. */
int run_memory_check(const dit_config *dit, const vae_config *vae, const moedit_generate_options *o, int64_t frames,
                     int in_context, int encodes_image);

/* The device bytes the run's activations may take at once, for
 * --max-gpu-memory's plan (dit/dit_weight_stream.h): the transformer and
 * VAE estimates above in the device's dtype (F32 on the CPU, BF16 on
 * CUDA), twice over (an arena holds up to twice its peak until its first
 * reset), plus RUN_ARENAS arenas' first 1 MiB block (the least an arena
 * takes; it dominates a small model's runs). */
int64_t run_memory_device_activations(const dit_config *dit, const vae_config *vae, const moedit_generate_options *o,
                                      int64_t frames, int in_context, int encodes_image);

#endif
