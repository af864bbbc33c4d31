/* The transformer forward pass for one sample.
 *
 * dit_text holds what depends on the prompt only (computed once, reused at
 * every step): the caption projections of the t5 embeds and of each block's
 * llama layer, and the pooled embedding p_embedder(pooled).
 * dit_run holds what depends on the resolution: the RoPE tables, the routing
 * scratch, the in-context tokens, and the arena that every step resets.
 *
 * Token sequence of one step, as in diffusers (dit_sequence.h):
 *   [ image (pH*pW, or max_seq when padded) | context | t5 | llama of the last block | llama of block b ]
 *   "initial" text = t5 + last llama layer; blocks update image, context and
 *   initial text, and the per-block llama tokens only serve as keys and values.
 *
 * In-context editing (FLUX.1 Kontext, HiDream-E1): a reference image's
 * latents [C, cH, cW] are patchified and embedded like the target's and
 * appended after the target tokens, attending jointly with everything. Their
 * RoPE ids are (1, row, col) where the target's are (0, row, col), so
 * attention tells the two images apart while rows and columns still line up.
 * Only the target tokens' outputs form the result.
 *
 * Video: a clip's latents [F, C, H, W] are F frames patchified one after the
 * other (token = f * pH * pW + row * pW + col) with RoPE ids (f, row, col),
 * HiDream's 3-axis RoPE with the frame on the first axis; never padded (the
 * max_resolution padding is an image rule). Text tokens are as for images. */
#ifndef MOEDIT_DIT_FORWARD_H
#define MOEDIT_DIT_FORWARD_H

#include "backend/arena.h"
#include "dit/dit_model.h"
#include "moe/moe_ffn.h"
#include "moe/moe_routing.h"
#include "parallel/process_group.h"

typedef struct dit_text {
    arena storage;
    int64_t t5_tokens, llama_tokens;
    tensor t5;     /* [L0, C] */
    tensor *llama; /* per block [L1, C] */
    tensor pooled; /* [1, C] */
} dit_text;

/* Host inputs: t5 [t5_tokens, caption_channels_t5], llama
 * [llama_layers, llama_tokens, caption_channels_llama], pooled [text_emb_dim]. */
typedef struct dit_text_inputs {
    const float *t5;
    int64_t t5_tokens;
    const float *llama;
    int64_t llama_layers, llama_tokens;
    const float *pooled;
} dit_text_inputs;

int dit_text_encode(dit_text *text, const dit_model *model, const dit_text_inputs *inputs);
void dit_text_free(dit_text *text);

/* Called with named intermediates ("x_embed", "temb", "double_<i>_image",
 * "double_<i>_text", "single_<i>", "final") when set: tests compare them. */
typedef void (*dit_trace_fn)(void *user, const char *name, tensor value);

/* The groups a forward runs over. tp: heads and hidden units split; ulysses
 * and ring (together sp, ulysses fastest): the token sequence split; ep:
 * experts split (NULL when expert parallelism is off). Each segment of the
 * sequence (image, context, t5, llama) is cut into sp contiguous parts and sp
 * rank p holds part p of each, so every rank has a share of every segment. */
typedef struct dit_parallel {
    process_group *tp, *ulysses, *ring, *sp, *ep;
} dit_parallel;


typedef struct dit_run {
    const dit_model *model;
    int64_t latent_h, latent_w, grid_h, grid_w; /* of one frame */
    int64_t frames;       /* 1 for an image */
    int64_t valid_tokens; /* frames * pH * pW */
    int64_t image_tokens; /* valid, or max_seq when non-square */
    int64_t context_h, context_w;
    int64_t context_tokens; /* cH * cW in-context tokens (never padded); 0: none */
    int64_t text_tokens;  /* t5 + 2 * llama, the most this run accepts */
    arena persistent;     /* rope tables, embedded context */
    arena scratch;        /* reset at every forward */
    tensor rope;          /* [valid_tokens, rope_dim], ids (frame, row, col) */
    tensor context_rope;  /* [context_tokens, rope_dim], ids (1, row, col) */
    tensor context;       /* [this sp rank's context rows, C]: x_embedder(context) */
    int has_context;      /* dit_run_set_context was called */
    moe_scratch moe;
    float *host_tokens;   /* patchify / unpatchify staging */
    moe_routing *routing; /* optional capture/replay */
    struct dit_step_cache *step_cache; /* optional: skips middle blocks on some steps (dit_step_cache.h) */
    dit_parallel par;
    process_group *own_groups[4]; /* one-rank groups made for a serial run */
    dit_trace_fn trace;
    void *trace_user;
    struct dit_batch *batch; /* the samples' sequence plans of a forward (dit_blocks.h), made once */
    int max_samples;         /* of one forward: 2 (one image's CFG branches), or dit_run_hold_samples' */
} dit_run;

/* Validates the latent size against the config (multiple of the patch,
 * padded length within max_resolution) and the layout against the heads,
 * and sizes the run. par NULL: serial. */
int dit_run_init(dit_run *run, const dit_model *model, int64_t latent_h, int64_t latent_w, int64_t t5_tokens,
                 int64_t llama_tokens, const dit_parallel *par);

/* The same with in-context tokens: a context latent of context_h x
 * context_w (multiples of the patch; 0 x 0: none); or with frames > 1, a
 * clip of that many latent_h x latent_w frames (no context then). */
typedef struct dit_run_shape {
    int64_t latent_h, latent_w;
    int64_t context_h, context_w;
    int64_t t5_tokens, llama_tokens;
    int64_t frames; /* 0 or 1: an image */
} dit_run_shape;

int dit_run_init_shape(dit_run *run, const dit_model *model, const dit_run_shape *shape, const dit_parallel *par);

/* Makes room for forwards of up to `samples` samples (several images
 * denoised together; at most DIT_MAX_BATCH): the MoE's buffers for all their
 * rows. A run holds 2 unless told. */
int dit_run_hold_samples(dit_run *run, int samples);
void dit_run_free(dit_run *run);

/* The in-context image of every later forward: latents[C_in, context_h,
 * context_w] (host), patchified and embedded once (x_embedder does not depend
 * on the step). Required before dit_forward when the run has context. */
int dit_run_set_context(dit_run *run, const float *latents);

/* out[F, C_out, H, W] = transformer(latents[F, C_in, H, W], timestep, text);
 * host arrays, F = run->frames (1: an image [C, H, W]). With context tokens,
 * out is still the target image's alone. Routing capture/replay files the
 * call under branch 0 (dit_forward_batch names each sample's branch). */
int dit_forward(dit_run *run, const dit_text *text, const float *latents, float timestep, float *out);

/* Several samples at one timestep through one forward: the CFG branches of
 * a step, of one image or of several images denoised together (at most the
 * run's max_samples). Each sample attends over its own tokens; the feed-forward
 * sublayers (experts, shared expert, routing) run once over the rows of all
 * of them (dit_blocks.h). Same results as one dit_forward per sample; the
 * trace hook is not called. */
#define DIT_MAX_BATCH 16
typedef struct dit_sample {
    const dit_text *text;
    const float *latents; /* [F, C_in, H, W] */
    float *out;           /* [F, C_out, H, W] */
    int branch;           /* 0 cond, 1 uncond: routing capture/replay key */
} dit_sample;

int dit_forward_batch(dit_run *run, const dit_sample *samples, int count, float timestep);

#endif
