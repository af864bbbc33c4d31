/* Everything a pipeline needs from a diffusers-format model directory:
 *   transformer/  HiDreamImageTransformer2DModel (sharded for this rank)
 *   vae/          AutoencoderKL
 *   scheduler/    flow-matching Euler, LCM or UniPC config (Euler defaults if absent)
 *   text_encoder/ + tokenizer/   moedit's Llama-style encoder (optional when
 *                 prompt embeddings come from a file)
 *   or HiDream-I1's own text side (text_encoder_3/ present, or a Llama
 *                 given apart): text/hidream_prompt.h, its tokenizers open
 *                 and its configs checked against the transformer; the
 *                 encoders load when the run encodes its prompts
 * loaded onto one backend (the text side onto its own when text_device
 * names another device). */
#ifndef MOEDIT_PIPELINES_MODEL_BUNDLE_H
#define MOEDIT_PIPELINES_MODEL_BUNDLE_H

#include "dit/dit_model.h"
#include "pipelines/scheduler.h"
#include "text/hidream_prompt.h"
#include "text/text_encoder.h"
#include "text/tokenizer.h"
#include "vae/vae_model.h"

typedef struct model_bundle {
    backend *be;          /* the device, seen through a counting view (backend_memory.h): the run's peak */
    backend *device_be;   /* the device's own backend under that view */
    dit_model transformer;
    vae_model vae;
    scheduler_config scheduler;
    text_encoder encoder;
    tokenizer *tok;   /* NULL when the model has no text encoder */
    int has_encoder;
    hidream_text hidream; /* HiDream's four encoders, when has_hidream */
    int has_hidream;
    backend *text_be;     /* the text side's own backend (text_device), or NULL */
    int loaded_transformer, loaded_vae;
    dit_placement placement; /* the EP placement the transformer was loaded with (empty without one) */
} model_bundle;

typedef struct model_bundle_options {
    const char *dir;
    const char *device;
    int random_weights;  /* weights from Philox, not files: transformer, VAE and HiDream's four encoders */
    uint64_t seed;
    dit_shard shard;
    int need_encoder;    /* 0 when prompt embeddings come from a file */
    /* With EP: a routing file to place each layer's experts by
     * (moe_placement_balanced); NULL: experts in id order. */
    const char *expert_placement;
    const char *const *loras;   /* LoRAs merged into the transformer (io/lora.h) */
    const double *lora_scales; /* their strengths; NULL: all 1 */
    int lora_count;
    const char *llama_dir;   /* HiDream: a Llama 3.1 folder instead of text_encoder_4/ */
    int max_sequence_length; /* HiDream: 0 = 128 */
    int keep_text_encoders;  /* HiDream: keep each encoder loaded after use */
    const char *text_device; /* HiDream: the encoders' device; NULL = device */
    /* --max-gpu-memory (0: none): the device bytes the run may take, as
     * given (max_device_text), and the run's activations' estimate; the
     * transformer's blocks are then loaded through host memory and placed
     * under the budget once the other weights are on the device
     * (dit/dit_weight_stream.h). stream_all_blocks: every block streamed
     * (tests: MOEDIT_STREAM_ALL_BLOCKS_FOR_TESTS). */
    int64_t max_device_bytes;
    const char *max_device_text;
    int64_t activation_bytes;
    int stream_all_blocks;
} model_bundle_options;

/* 0 when `dir` is a directory; else one error naming what it is instead. */
int model_dir_check(const char *dir);

int model_bundle_load(model_bundle *bundle, const model_bundle_options *options);
void model_bundle_free(model_bundle *bundle);

/* A loaded bundle kept for the next run of the same options (moedit bench
 * runs each layout twice and many layouts share a shard; loading a
 * 17B-parameter transformer takes tens of seconds). The process keeps at most
 * one: taking another frees it first, so device memory holds one model. */
int model_bundle_take(model_bundle *bundle, const model_bundle_options *options); /* load, or the kept one */
void model_bundle_keep(model_bundle *bundle, const model_bundle_options *options); /* instead of _free */
void model_bundle_drop_kept(void);

#endif
