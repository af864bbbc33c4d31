/* The token sequence of one transformer step and its split over the
 * sequence-parallel ranks.
 *
 * The whole sequence is a row of segments (diffusers' order, with in-context
 * tokens right after the target image's, as FLUX.1 Kontext appends them):
 *   [ image | context | t5 | llama (last block's) | llama (this block's) ]
 *   image    pH * pW target tokens, padded to max_seq for a non-square latent
 *   context  cH * cW tokens of a reference image (in-context editing), or none
 *   t5 + last llama: the "initial" text that blocks update
 *   block llama: the block's own llama layer, only keys and values
 * image + context form the image stream (the image projections and the image
 * MoE of double blocks); image + context + t5 + last llama carry over between
 * blocks ("kept"); the final layer reads the target image rows only.
 *
 * Under sequence parallelism every segment is cut into sp contiguous parts
 * (layout_split_rows) and sp rank p holds part p of each, in segment order:
 *   local seq = [ image part | context part | t5 part | llama part | block llama part ]
 * so every rank has a share of every segment, whatever the sizes. Attention
 * does not care about token order once RoPE is applied, so the Ulysses and
 * ring exchanges only need each rank's row counts. */
#ifndef MOEDIT_DIT_SEQUENCE_H
#define MOEDIT_DIT_SEQUENCE_H

#include "core/tensor.h"
#include "parallel/sequence_attention.h"

#include <stdint.h>

#define DIT_MAX_SP SEQUENCE_PARALLEL_MAX_RANKS

/* Lengths of the whole sequence's segments. */
typedef struct dit_segment_lengths {
    int64_t image;   /* target tokens, padding included */
    int64_t valid;   /* target tokens that are real (the rest is padding) */
    int64_t context; /* in-context image tokens; 0 for none */
    int64_t t5, llama;
} dit_segment_lengths;

/* This rank's rows of the sequence of one step, seq[S_local, C]. */
typedef struct dit_sequence {
    tensor seq;
    tensor silu_temb;        /* [1, C] */
    int branch;              /* the sample's CFG branch: routing capture/replay key */
    int64_t image_tokens;    /* local target rows, padding included */
    int64_t valid_tokens;    /* local target rows that are real (RoPE, unmasked keys) */
    int64_t image_first;     /* index of the first local target row in the image segment */
    int64_t context_tokens;  /* local context rows (after the target rows) */
    int64_t context_first;   /* index of the first local context row in the context segment */
    int64_t image_stream_tokens; /* image + context: the image stream's local rows */
    int64_t t5_tokens, llama_tokens; /* local text rows of each segment */
    int64_t kept_tokens;     /* image + context + t5 + last llama */
    /* Global layout, for routing capture/replay: first rows of each local
     * segment in the full kept sequence. */
    int64_t global_image, global_context, global_t5, global_llama;
    int64_t global_image_stream_tokens, global_kept_tokens;
    /* Rows every sp rank holds (queries = kept, keys = all), for the
     * Ulysses and ring exchanges. */
    int64_t query_rows[DIT_MAX_SP], key_rows[DIT_MAX_SP];
} dit_sequence;

/* Fills everything but seq, silu_temb and branch for part `part` of `parts`. */
void dit_sequence_plan(dit_sequence *s, const dit_segment_lengths *whole, int parts, int part);

#endif
