/* moedit_generate: prompts to images (see moedit.h and denoise.h); with an
 * input image (generate.h) the same run is moedit_edit.
 *
 * Jobs are (prompt, image index) pairs with seed = seed + image index, dealt
 * round-robin over the data-parallel replicas. Within a replica the
 * transformer runs over its tp x sp x cfg ranks; the replica's first rank
 * decodes and writes the file (to a temporary name, then renamed). Sizes are
 * checked against the configs before any weight or activation is allocated.
 *
 * An input image is encoded once per run, by every VAE group of the replica
 * at once (the groups tile it, so every rank gets the latents without a
 * broadcast): latents = (mean - shift_factor) * scaling_factor. Each job then
 * starts from scale_noise(latents, noise) at the first step the strength
 * leaves (SDEdit; at strength 1 sigma is 1 and that is the noise itself), and
 * with in-context editing the latents also enter the transformer as context
 * tokens at every step.
 *
 * With HiDream-I1's own four text encoders (text/hidream_prompt.h) the
 * prompts are encoded once, before the first job, by one pass of each
 * encoder over every prompt this rank's jobs need (its replica's jobs; on
 * CFG-parallel ranks only its branch: the prompts, or the negative prompt),
 * and each encoder is freed after its pass unless the run keeps them. No
 * two ranks encode the same prompt: the tp x sp ranks of a branch need the
 * same embeddings, so the branch's first rank encodes them alone and
 * broadcasts them (host F32, a few MB; the other ranks load no encoder),
 * the CFG branches split the prompt from the negative prompt, and the
 * replicas take their own jobs' prompts. */
#include "moedit.h"

#include "backend/backend_memory.h"
#include "core/byte_size.h"
#include "core/error.h"
#include "io/image_io.h"
#include "io/output_check.h"
#include "core/philox.h"
#include "core/progress.h"
#include "io/safetensors.h"
#include "core/timer.h"
#include "parallel/layout.h"
#include "parallel/layout_hosts.h"
#include "parallel/world.h"
#include "pipelines/denoise.h"
#include "pipelines/expert_scope.h"
#include "pipelines/generate.h"
#include "pipelines/generate_hooks.h"
#include "pipelines/model_bundle.h"
#include "pipelines/run_memory.h"
#include "text/prompt_embeds.h"
#include "text/tokenizer.h"
#include "pipelines/runtime.h"
#include "pipelines/step_cache.h"
#include "vae/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipelines/generate_state.h"

static int check_model_dir(const char *model_dir, const char *command)
{
    if (!model_dir) return error_set("%s needs --model DIR", command);
    return model_dir_check(model_dir);
}

static int validate_request(const moedit_generate_options *o, const char *command)
{
    int fp8;
    if (check_model_dir(o->model_dir, command) || dit_precision_parse(o->precision, o->device, &fp8)) return -1;
    if (o->prompt_count < 1 && !o->prompt_embeds_path) return error_set("%s needs --prompt TEXT", command);
    if (o->height < 1 || o->width < 1 || o->height > GENERATE_MAX_SIDE || o->width > GENERATE_MAX_SIDE ||
        o->height * o->width > GENERATE_MAX_PIXELS)
        return error_set("--height %lld --width %lld: each side must be 1..%d and the image at most %lld pixels",
                         (long long)o->height, (long long)o->width, GENERATE_MAX_SIDE, (long long)GENERATE_MAX_PIXELS);
    if (o->steps < 1 || o->steps > 10000) return error_set("--num-inference-steps %lld: must be 1..10000", (long long)o->steps);
    if (!isfinite(o->guidance) || o->guidance < 0 || o->guidance > 100)
        return error_set("--guidance-scale %g: must be between 0 and 100", o->guidance);
    if (o->images_per_prompt < 1 || o->images_per_prompt * (o->prompt_count ? o->prompt_count : 1) > MOEDIT_MAX_OUTPUTS)
        return error_set("--num-images-per-prompt %lld: must be >= 1 and at most %d images in all",
                         (long long)o->images_per_prompt, MOEDIT_MAX_OUTPUTS);
    if (o->parallel.cfg_parallel == 2 && o->guidance <= 1)
        return error_set("--cfg-parallel-size 2 needs --guidance-scale > 1: without guidance there is no "
                         "unconditional branch to run");
    if (o->routing_capture && o->routing_replay) return error_set("--routing-capture and --routing-replay exclude each other");
    _Static_assert(2 * MOEDIT_MAX_BATCH_SIZE <= DIT_MAX_BATCH, "a batch's CFG samples must fit the forward");
    if (o->batch_size < 0 || o->batch_size > MOEDIT_MAX_BATCH_SIZE)
        return error_set("--batch-size %lld: must be 1..%d", (long long)o->batch_size, MOEDIT_MAX_BATCH_SIZE);
    /* Routing records and the step cache's residuals are kept per CFG branch of one image. */
    if (o->batch_size > 1 && (o->routing_capture || o->routing_replay || step_cache_enabled(&o->cache)))
        return error_set("--batch-size %lld: images are denoised one at a time with --routing-capture, "
                         "--routing-replay or --cache", (long long)o->batch_size);
    /* Saved after the last image: a bad path must not surface only then. */
    if (o->routing_capture && runtime_world()->rank == 0 && output_check_writable(o->routing_capture, "--routing-capture"))
        return -1;
    if (o->latents_output && runtime_world()->rank == 0 && output_check_writable(o->latents_output, "--output-latents"))
        return -1;
    if (step_cache_check(&o->cache, runtime_world()->rank == 0)) return -1;
    if (o->expert_placement && !o->parallel.expert_parallel)
        return error_set("--expert-placement %s needs --enable-expert-parallel", o->expert_placement);
    if (o->expert_placement && access(o->expert_placement, R_OK))
        return error_set("--expert-placement %s: no such routing file (make one with --routing-capture)",
                         o->expert_placement);
    return 0;
}

static int load_configs(const char *model_dir, dit_config *dit, vae_config *vae)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/transformer/config.json", model_dir);
    if (dit_config_load(dit, path)) return -1;
    snprintf(path, sizeof path, "%s/vae/config.json", model_dir);
    return vae_config_load(vae, path);
}

int generate_size_multiple(const char *model_dir, const char *command, int64_t *multiple)
{
    dit_config dit;
    vae_config vae;
    if (check_model_dir(model_dir, command) || load_configs(model_dir, &dit, &vae)) return -1;
    *multiple = (int64_t)vae.downscale * dit.patch_size;
    return 0;
}

int generate_nonsquare_max_pixels(const char *model_dir, const char *command, int64_t *pixels)
{
    dit_config dit;
    vae_config vae;
    if (check_model_dir(model_dir, command) || load_configs(model_dir, &dit, &vae)) return -1;
    *pixels = (int64_t)dit.max_resolution[0] * dit.max_resolution[1] * vae.downscale * vae.downscale;
    return 0;
}

static parallel_degrees degrees_of(const moedit_parallel *p)
{
    parallel_degrees d = {p->tensor_parallel, p->ulysses, p->ring, p->cfg_parallel, p->data_parallel,
                          p->expert_parallel, p->vae_patch_parallel, p->expert_parallel_scope};
    return d;
}

/* Sizes and memory (pipelines/run_memory.h) against the configs, before loading any weight. */
static int validate_sizes(generate_state *g)
{
    const moedit_generate_options *o = g->o;
    dit_config dit;
    vae_config vae;
    if (load_configs(o->model_dir, &dit, &vae)) return -1;
    int64_t multiple = (int64_t)vae.downscale * dit.patch_size;
    if (o->height % multiple || o->width % multiple)
        return error_set("--height %lld --width %lld: both must be multiples of %lld (VAE factor %d x patch %d)",
                         (long long)o->height, (long long)o->width, (long long)multiple, vae.downscale, dit.patch_size);
    g->latent_h = o->height / vae.downscale;
    g->latent_w = o->width / vae.downscale;
    if (o->parallel.vae_patch_parallel > g->latent_h)
        return error_set("--vae-patch-parallel-size %d: more VAE ranks than the %lld latent rows of the image",
                         o->parallel.vae_patch_parallel, (long long)g->latent_h);
    g->latent_count = g->frames * dit.in_channels * g->latent_h * g->latent_w;
    /* The same answer on any number of ranks, before any weight is loaded
     * or group made (so every rank refuses alike and it is one line). The
     * degrees against the world first: "tp 3 on 2 ranks" is about the ranks,
     * not about the heads that 3 happens not to divide. */
    parallel_layout layout;
    if (layout_init(&layout, degrees_of(&o->parallel), g->w->size, g->w->rank)) return -1;
    int tp = o->parallel.tensor_parallel > 1 ? o->parallel.tensor_parallel : 1;
    int ulysses = o->parallel.ulysses > 1 ? o->parallel.ulysses : 1;
    if (dit.heads % (tp * ulysses))
        return error_set("tensor parallel %d x ulysses %d = %d does not divide the transformer's %d attention heads",
                         tp, ulysses, tp * ulysses, dit.heads);
    if (o->parallel.expert_parallel && dit.num_routed_experts <= 1)
        return error_set("--enable-expert-parallel: the transformer is dense (%d routed experts); expert parallelism "
                         "needs a mixture of experts",
                         dit.num_routed_experts);
    char group[160];
    if (o->parallel.expert_parallel && dit.num_routed_experts % expert_scope_group_size(&o->parallel))
        return error_set("--enable-expert-parallel: %d routed experts do not divide over %s", dit.num_routed_experts,
                         expert_scope_group_text(&o->parallel, group, sizeof group));
    g->trained_pixels = (int64_t)dit.max_resolution[0] * dit.max_resolution[1] * vae.downscale * vae.downscale;
    g->trained_h = (int64_t)dit.max_resolution[0] * vae.downscale;
    g->trained_w = (int64_t)dit.max_resolution[1] * vae.downscale;
    if (run_memory_check(&dit, &vae, o, g->frames, g->condition && g->condition->in_context, g->condition != NULL))
        return -1;
    if (o->max_gpu_memory && byte_size_parse(o->max_gpu_memory, "--max-gpu-memory", &g->max_device_bytes)) return -1;
    g->activation_bytes = run_memory_device_activations(&dit, &vae, o, g->frames,
                                                        g->condition && g->condition->in_context, g->condition != NULL);
    if (g->output) return 0;
    if (g->latent_h != g->latent_w &&
        (g->latent_h / dit.patch_size) * (g->latent_w / dit.patch_size) > dit_image_tokens(&dit, g->latent_h, g->latent_w))
        return error_set("--height %lld --width %lld: a non-square image may have at most %d x %d latent pixels' "
                         "worth of patches for this transformer (max_resolution)",
                         (long long)o->height, (long long)o->width, dit.max_resolution[0], dit.max_resolution[1]);
    return 0;
}

/* moedit bench's probes (generate_hooks.h), when the options carry them:
 * every group wrapped, the weights on this rank counted. */
static int apply_hooks(generate_state *g)
{
    generate_hooks *h = g->hooks;
    if (!h) return 0;
    size_t dtype_bytes = dtype_size(g->bundle.be->dtype);
    h->weight_bytes = g->bundle.transformer.weights.bytes_on_device + g->bundle.vae.parameters * (int64_t)dtype_bytes +
                      (g->bundle.has_encoder ? g->bundle.encoder.weights.bytes_on_device : 0);
    h->expert_weight_bytes = dit_model_expert_bytes(&g->bundle.transformer);
    for (int kind = 0; kind < GROUP_KINDS && h->wrap_group; kind++) {
        if (!g->par.groups[kind]) continue;
        g->par.groups[kind] = h->wrap_group(h->user, g->par.groups[kind]);
        if (!g->par.groups[kind]) return -1;
    }
    return 0;
}

/* Bytes the arenas of one job held at their peaks, for the hooks. */
static int64_t job_arena_bytes(const dit_run *run, const arena *scratch, const dit_text *text, const int *have_text)
{
    int64_t bytes = (int64_t)(run->persistent.peak + run->scratch.peak + scratch->peak);
    for (int b = 0; b < 2; b++)
        if (have_text[b]) bytes += (int64_t)text[b].storage.peak;
    return bytes;
}

/* A test switch: set and not "0". */
static int env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0");
}

static int setup(generate_state *g)
{
    const moedit_generate_options *o = g->o;
    parallel_degrees d = degrees_of(&o->parallel);
    parallel_layout layout;
    if (layout_init(&layout, d, g->w->size, g->w->rank)) return -1;
    layout_describe(&layout.degrees, g->layout_text, sizeof g->layout_text);
    int ranks[LAYOUT_MAX_RANKS];
    int ep_size = d.expert_parallel ? layout_group_ranks(&layout, GROUP_EP, g->w->rank, ranks) : 1;
    int ep_rank = 0;
    for (int i = 0; i < ep_size; i++)
        if (ranks[i] == g->w->rank) ep_rank = i;
    int fp8;
    if (dit_precision_parse(o->precision, o->device, &fp8)) return -1;
    model_bundle_options mo = {o->model_dir, o->device, o->random_weights, o->seed,
                               {layout.tp_index, layout.degrees.tp, ep_rank, ep_size, NULL, NULL, fp8, 0},
                               !o->prompt_embeds_path,
                               o->expert_placement, o->lora_paths, o->lora_scales, o->lora_count,
                               o->llama_dir, o->max_sequence_length, o->keep_text_encoders, o->text_device,
                               g->max_device_bytes, o->max_gpu_memory, g->max_device_bytes ? g->activation_bytes : 0,
                               env_flag("MOEDIT_STREAM_ALL_BLOCKS_FOR_TESTS")};
    g->bundle_options = mo;
    int keep = g->hooks && g->hooks->keep_model;
    if (keep ? model_bundle_take(&g->bundle, &mo) : model_bundle_load(&g->bundle, &mo)) return -1;
    g->have_bundle = 1;
    if (parallel_context_init(&g->par, g->w, d, g->bundle.be)) return -1;
    g->have_par = 1;
    if (apply_hooks(g)) return -1;
    g->leader = layout.tp_index == 0 && layout.ulysses_index == 0 && layout.ring_index == 0 && layout.cfg_index == 0;
    int replica_size = g->w->size / layout.degrees.dp;
    g->decoder = g->w->rank % replica_size < layout.degrees.vae_patch;
    int64_t max_seq = (int64_t)g->bundle.transformer.cfg.max_resolution[0] * g->bundle.transformer.cfg.max_resolution[1] /
                      ((int64_t)g->bundle.transformer.cfg.patch_size * g->bundle.transformer.cfg.patch_size);
    /* HiDreamImagePipeline computes mu from the transformer's max_seq with
     * diffusers' default shift line; it matters only with dynamic shifting. */
    double mu = g->bundle.scheduler.use_dynamic_shifting ? scheduler_calculate_shift(max_seq, 256, 4096, 0.5, 1.15) : NAN;
    if (scheduler_set_timesteps_with_mu(&g->sched, &g->bundle.scheduler, (int)o->steps, mu, NULL, 0)) return -1;
    moe_routing_init(&g->routing, o->routing_capture ? ROUTING_CAPTURE : o->routing_replay ? ROUTING_REPLAY : ROUTING_FREE);
    if (o->routing_replay && moe_routing_load(&g->routing, o->routing_replay)) return -1;
    if (!step_cache_enabled(&o->cache)) return 0;
    if (step_cache_settings(&o->cache, &g->bundle.transformer.cfg, &g->cache_settings)) return -1;
    return o->cache.schedule_replay ? step_cache_schedule_load(o->cache.schedule_replay, g->sched.steps, &g->cache_replay)
                                    : 0;
}

/* The step cache of one job (on its run), and after it its figures and,
 * from the first job of rank 0, the captured schedule. */
static int cache_begin(generate_state *g, dit_run *run, dit_step_cache *cache, int split)
{
    if (dit_step_cache_init(cache, &g->cache_settings, g->bundle.be, g->bundle.transformer.cfg.dim, g->sched.steps,
                            g->cache_replay, split ? g->par.groups[GROUP_CFG] : NULL))
        return -1;
    run->step_cache = cache;
    return 0;
}

static int cache_end(generate_state *g, const dit_run *run, const dit_step_cache *cache, const dit_text *text,
                     moedit_generate_result *r)
{
    if (step_cache_account(r, cache, &g->bundle.transformer.cfg, run->image_tokens + run->context_tokens,
                           text->t5_tokens, text->llama_tokens))
        return -1;
    if (!g->o->cache.schedule_capture || g->w->rank != 0 || g->cache_saved) return 0;
    g->cache_saved = 1;
    return step_cache_schedule_save(g->o->cache.schedule_capture, cache);
}

/* Index of the first value of x[n] that is NaN or infinite, or -1. */
static int64_t first_non_finite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

/* The input image's latents, (mean - shift_factor) * scaling_factor, on
 * every rank; and the first step its strength leaves. */
static int encode_condition(generate_state *g, moedit_generate_result *r)
{
    const vae_config *vc = &g->bundle.vae.cfg;
    double start = timer_seconds();
    if (scheduler_start_index(&g->sched, g->condition->strength, &g->first_step)) return -1;
    g->condition_latents = malloc((size_t)g->latent_count * sizeof(float));
    if (!g->condition_latents) return error_set("out of memory encoding %s", g->condition->image_path);
    arena scratch;
    arena_init(&scratch, g->bundle.be);
    scratch.name = "the VAE encoder's activations";
    int status = vae_encode_parallel(&g->bundle.vae, &scratch, g->par.groups[GROUP_VAE], g->condition->pixels,
                                     vc->in_channels, g->o->height, g->o->width, g->condition_latents);
    arena_free(&scratch);
    if (status) return error_prefix("encoding %s", g->condition->image_path);
    for (int64_t i = 0; i < g->latent_count; i++)
        g->condition_latents[i] = (g->condition_latents[i] - (float)vc->shift_factor) * (float)vc->scaling_factor;
    r->encode_seconds = timer_seconds() - start;
    return 0;
}

/* Philox noise for the seed, or the --init-noise file. */
static int initial_latents(const generate_state *g, uint64_t seed, float *latents)
{
    const moedit_generate_options *o = g->o;
    if (!o->init_noise_path) {
        philox_fill_normal(seed, 0, 0, g->latent_count, latents);
        return 0;
    }
    safetensors *st = NULL;
    if (safetensors_open(&st, o->init_noise_path)) return -1;
    const safetensors_entry *e = safetensors_require(st, "latents");
    /* An image's [C, h, w] or [1, C, h, w]; a video's [F, C, h, w]. */
    int64_t shape[4] = {g->frames, g->bundle.transformer.cfg.in_channels, g->latent_h, g->latent_w};
    int status = -1, ndim = g->output || (e && e->ndim == 4) ? 4 : 3;
    if (e) status = safetensors_read_f32(st, "latents", ndim, ndim == 4 ? shape : shape + 1, latents);
    safetensors_close(st);
    return status;
}

/* A job's first latents: the noise, or with an input image the image's
 * latents noised to the first step's sigma (diffusers' scale_noise). */
static int start_latents(const generate_state *g, uint64_t seed, float *latents)
{
    if (initial_latents(g, seed, latents)) return -1;
    if (g->condition)
        scheduler_scale_noise(&g->sched, g->first_step, g->condition_latents, latents, latents, g->latent_count);
    return 0;
}

/* The PNG (or JPEG) of an image, or what the run's output writer makes, from
 * pixels [frames, 3, H, W]; with the run's settings as metadata. */
static int write_output(generate_state *g, const char *prompt, uint64_t seed, const float *pixels, const char *path,
                        int job, int total)
{
    const moedit_generate_options *o = g->o;
    int64_t frame_bytes = o->height * o->width * 3;
    uint8_t *rgb = malloc((size_t)(g->frames * frame_bytes));
    const uint8_t **frames = malloc((size_t)g->frames * sizeof *frames);
    if (!rgb || !frames) {
        free(rgb), free(frames);
        return error_set("out of memory writing %s", path);
    }
    for (int64_t f = 0; f < g->frames; f++) {
        image_from_float(pixels + f * 3 * o->height * o->width, o->height, o->width, rgb + f * frame_bytes);
        frames[f] = rgb + f * frame_bytes;
    }
    char seed_text[32], steps[32], guidance[32], size[64];
    snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
    snprintf(steps, sizeof steps, "%lld", (long long)o->steps);
    snprintf(guidance, sizeof guidance, "%g", o->guidance);
    snprintf(size, sizeof size, "%lldx%lld", (long long)o->width, (long long)o->height);
    image_metadata meta = {0};
    image_metadata_add(&meta, "prompt", prompt);
    image_metadata_add(&meta, "negative_prompt", o->negative_prompt ? o->negative_prompt : "");
    image_metadata_add(&meta, "seed", seed_text);
    image_metadata_add(&meta, "steps", steps);
    image_metadata_add(&meta, "guidance_scale", guidance);
    image_metadata_add(&meta, "size", size);
    image_metadata_add(&meta, "model", o->model_dir);
    image_metadata_add(&meta, "parallel_layout", g->layout_text);
    char strength[32];
    if (g->condition) {
        snprintf(strength, sizeof strength, "%g", g->condition->strength);
        image_metadata_add(&meta, "input_image", g->condition->image_path);
        image_metadata_add(&meta, "edit_mode", g->condition->in_context ? "context" : "strength");
        image_metadata_add(&meta, "strength", strength);
    }
    image_metadata_add(&meta, "software", "moedit " MOEDIT_VERSION);
    int status = g->output ? g->output->write(g->output, path, job, total, frames, o->width, o->height, &meta)
                           : image_write(path, rgb, o->width, o->height, &meta);
    free(rgb), free(frames);
    return status;
}

/* The denoised latents of the first image, before VAE scaling, for cross-checks. */
static int save_latents(generate_state *g, const float *latents)
{
    const char *name = "latents";
    int64_t shape[4] = {g->frames, g->bundle.transformer.cfg.in_channels, g->latent_h, g->latent_w};
    tensor t = g->output ? tensor_make(DTYPE_F32, DEVICE_CPU, 4, shape) : tensor_make(DTYPE_F32, DEVICE_CPU, 3, shape + 1);
    t.data = (void *)latents;
    int64_t bad = first_non_finite(latents, g->latent_count);
    if (bad >= 0)
        return error_set("--output-latents %s: the denoised latents are not finite (value %lld of %lld); not written",
                         g->o->latents_output, (long long)bad, (long long)g->latent_count);
    return safetensors_write(g->o->latents_output, &name, &t, 1);
}

/* The frames of pixels [frames, 3, H, W] from latents [frames, C, h, w]. An
 * image, or a video with fewer frames than VAE ranks: frame by frame, each in
 * row bands over the VAE group. A video with at least as many frames as VAE
 * ranks: each rank decodes a contiguous share of whole frames alone (no
 * halo exchange or GroupNorm sums per layer), then one all-gather of the
 * pixels gives every VAE rank all frames. */
static int decode_frames(generate_state *g, arena *scratch, const float *latents, float *pixels)
{
    const vae_config *vc = &g->bundle.vae.cfg;
    process_group *group = g->par.groups[GROUP_VAE];
    int64_t frame_pixels = vc->out_channels * g->o->height * g->o->width;
    int64_t frame_latents = g->latent_count / g->frames;
    int by_frames = g->frames > 1 && group->size > 1 && g->frames >= group->size;
    int64_t first = 0, count = g->frames;
    if (by_frames) layout_split_rows(g->frames, group->size, group->rank, &first, &count);
    for (int64_t f = first; f < first + count; f++)
        if (vae_decode_parallel(&g->bundle.vae, scratch, by_frames ? NULL : group, latents + f * frame_latents,
                                vc->latent_channels, g->latent_h, g->latent_w, pixels + f * frame_pixels))
            return -1;
    if (!by_frames) return 0;
    int64_t rows[LAYOUT_MAX_RANKS], row_len = g->o->width, rows_per_frame = frame_pixels / row_len, unused;
    for (int p = 0; p < group->size; p++) {
        layout_split_rows(g->frames, group->size, p, &unused, &rows[p]);
        rows[p] *= rows_per_frame;
    }
    tensor all = tensor_make_2d(DTYPE_F32, DEVICE_CPU, g->frames * rows_per_frame, row_len);
    tensor mine = tensor_make_2d(DTYPE_F32, DEVICE_CPU, count * rows_per_frame, row_len);
    all.data = pixels;
    mine.data = pixels + first * frame_pixels;
    /* In place: rank p's share already sits where the gather puts it; a copy
     * keeps the input and output buffers apart. */
    float *share = malloc((size_t)(count * frame_pixels) * sizeof(float));
    if (!share) return error_set("out of memory gathering decoded frames");
    memcpy(share, mine.data, (size_t)(count * frame_pixels) * sizeof(float));
    mine.data = share;
    int status = group->ops->all_gather_rows(group, all, mine, rows);
    free(share);
    return status;
}

/* latents / scaling_factor + shift_factor -> VAE -> pixels -> file. */
static int decode_and_write(generate_state *g, const char *prompt, uint64_t seed, float *latents, const char *path,
                            int job, int total)
{
    const vae_config *vc = &g->bundle.vae.cfg;
    for (int64_t i = 0; i < g->latent_count; i++)
        latents[i] = latents[i] / (float)vc->scaling_factor + (float)vc->shift_factor;
    float *pixels = malloc((size_t)(g->frames * vc->out_channels * g->o->height * g->o->width) * sizeof(float));
    if (!pixels) return error_set("out of memory decoding %s", path);
    arena scratch;
    arena_init(&scratch, g->bundle.be);
    scratch.name = "the VAE decoder's activations";
    double start = timer_seconds();
    int status = decode_frames(g, &scratch, latents, pixels);
    if (g->hooks) {
        g->hooks->vae_seconds += timer_seconds() - start;
        g->vae_peak_bytes = (int64_t)scratch.peak;
    }
    arena_free(&scratch);
    int64_t count = g->frames * vc->out_channels * g->o->height * g->o->width, bad = -1;
    if (status == 0 && g->leader && (bad = first_non_finite(pixels, count)) >= 0)
        status = error_set("the VAE decoder made non-finite pixels for %s (value %lld of %lld is %g; a damaged VAE "
                           "weight?); not written", path, (long long)bad, (long long)count, pixels[bad]);
    if (status == 0 && g->leader) status = write_output(g, prompt, seed, pixels, path, job, total);
    free(pixels);
    return status;
}

/* Records a written file in the result; its arrays grow by doubling. */
static int result_add(moedit_generate_result *r, const char *path, uint64_t seed)
{
    int n = r->count;
    if ((n & (n - 1)) == 0) { /* 0, 1, 2, 4, ...: full */
        size_t capacity = n ? 2 * (size_t)n : 1;
        char **files = realloc(r->files, capacity * sizeof *files);
        if (files) r->files = files;
        unsigned long long *seeds = realloc(r->seeds, capacity * sizeof *seeds);
        if (seeds) r->seeds = seeds;
        if (!files || !seeds) return error_set("out of memory listing the outputs");
    }
    if (!(r->files[n] = strdup(path))) return error_set("out of memory listing the outputs");
    r->seeds[n] = seed;
    r->count = n + 1;
    return 0;
}

/* One image of the jobs denoised together: its prompt, seed, file, this
 * rank's texts (cond and/or uncond) and latents. */
typedef struct job_inputs {
    int job;
    const char *prompt;
    uint64_t seed;
    char path[4200];
    prompt_embeds embeds[2];
    dit_text text[2];
    int have_text[2];
    float *latents;
} job_inputs;

/* denoise_request.cancel of jobs denoised together: the hooks' cancel_job
 * of each (by its index in the run's jobs). */
typedef struct jobs_cancel {
    generate_hooks *hooks;
    const job_inputs *jobs;
} jobs_cancel;

static int cancel_one(void *user, int job, int step)
{
    const jobs_cancel *c = user;
    return c->hooks->cancel_job(c->hooks->user, c->jobs[job].job, step);
}

/* This rank's texts of one job (its CFG branches); adds their seconds to r. */
static int encode_job_texts(generate_state *g, job_inputs *in, arena *scratch, moedit_generate_result *r)
{
    const moedit_generate_options *o = g->o;
    int guided = o->guidance > 1, branch = generate_cfg_branch(g); /* -1: this rank runs both */
    int prompt_index = o->prompt_count ? in->job / (int)o->images_per_prompt : 0;
    double start = timer_seconds();
    for (int b = 0; b < 1 + guided; b++) {
        if (branch >= 0 && b != branch) continue;
        const char *text_prompt = b == 0 ? in->prompt : (o->negative_prompt ? o->negative_prompt : "");
        if (generate_branch_embeds(g, &in->embeds[b], prompt_index, text_prompt, b, scratch) ||
            dit_text_encode(&in->text[b], &g->bundle.transformer, &in->embeds[b].inputs))
            return -1;
        in->have_text[b] = 1;
    }
    r->text_seconds += timer_seconds() - start;
    return 0;
}

/* The transformer run of the jobs: sized for the longest of their texts and
 * for all their samples in one forward. */
static int init_jobs_run(generate_state *g, const job_inputs *in, int count, dit_run *run)
{
    int guided = g->o->guidance > 1, split = g->par.groups[GROUP_CFG]->size == 2;
    dit_parallel par = {g->par.groups[GROUP_TP], g->par.groups[GROUP_ULYSSES], g->par.groups[GROUP_RING],
                        g->par.groups[GROUP_SP], g->bundle.transformer.shard.ep_size > 1 ? g->par.groups[GROUP_EP] : NULL};
    int64_t t5 = 0, llama = 0;
    for (int j = 0; j < count; j++)
        for (int b = 0; b < 2; b++)
            if (in[j].have_text[b]) {
                if (in[j].text[b].t5_tokens > t5) t5 = in[j].text[b].t5_tokens;
                if (in[j].text[b].llama_tokens > llama) llama = in[j].text[b].llama_tokens;
            }
    int in_context = g->condition && g->condition->in_context;
    int samples = count * (split || !guided ? 1 : 2);
    dit_run_shape shape = {g->latent_h, g->latent_w, in_context ? g->latent_h : 0, in_context ? g->latent_w : 0,
                           t5, llama, g->frames};
    if (dit_run_init_shape(run, &g->bundle.transformer, &shape, &par)) return -1;
    if (dit_run_hold_samples(run, samples)) {
        dit_run_free(run);
        return -1;
    }
    return 0;
}

/* Its file (and latents file), its result entry, the hook: after the jobs' denoising. */
static int finish_job(generate_state *g, job_inputs *in, int total, moedit_generate_result *r)
{
    const moedit_generate_options *o = g->o;
    if (g->leader && o->latents_output && in->job == 0 && save_latents(g, in->latents)) return -1;
    if (g->decoder && decode_and_write(g, in->prompt, in->seed, in->latents, in->path, in->job, total)) return -1;
    if (g->leader && result_add(r, in->path, in->seed)) return -1;
    if (g->leader && g->hooks && g->hooks->on_image) g->hooks->on_image(g->hooks->user, in->job, in->path, in->seed);
    return 0;
}

/* Jobs of one shape denoised together (denoise_batch: their samples share
 * each step's transformer forward; one job: the run as it always was),
 * then each decoded and written. */
static int run_jobs(generate_state *g, job_inputs *in, int count, int total, moedit_generate_result *r)
{
    const moedit_generate_options *o = g->o;
    int split = g->par.groups[GROUP_CFG]->size == 2;
    dit_run run;
    dit_step_cache cache;
    int have_run = 0, have_cache = 0, status = -1;
    arena scratch;
    arena_init(&scratch, g->bundle.be);
    scratch.name = "the text encoder's activations";
    denoise_job jobs[DIT_MAX_BATCH];
    for (int j = 0; j < count; j++) {
        if (!(in[j].latents = malloc((size_t)g->latent_count * sizeof(float)))) {
            error_set("out of memory for latents");
            goto done;
        }
        if (encode_job_texts(g, &in[j], &scratch, r)) goto done;
    }
    const dit_text *mine = in[0].have_text[0] ? &in[0].text[0] : &in[0].text[1];
    if (init_jobs_run(g, in, count, &run)) goto done;
    have_run = 1;
    run.routing = o->routing_capture || o->routing_replay ? &g->routing : NULL;
    if (step_cache_enabled(&o->cache)) {
        if (cache_begin(g, &run, &cache, split)) goto done;
        have_cache = 1;
    }
    if (g->condition && g->condition->in_context && dit_run_set_context(&run, g->condition_latents)) goto done;
    for (int j = 0; j < count; j++) {
        if (start_latents(g, in[j].seed, in[j].latents)) goto done;
        jobs[j] = (denoise_job){in[j].have_text[0] ? &in[j].text[0] : NULL, in[j].have_text[1] ? &in[j].text[1] : NULL,
                                in[j].latents, in[j].seed, 0};
    }

    progress bar;
    progress_begin(&bar, "denoise", g->sched.steps - g->first_step, o->quiet || g->w->rank != 0);
    denoise_request request = {.run = &run, .guidance = o->guidance, .sched = &g->sched, .first_step = g->first_step,
                               .cfg = split ? g->par.groups[GROUP_CFG] : NULL, .bar = &bar};
    jobs_cancel cancel = {g->hooks, in};
    if (g->hooks) {
        request.on_step = g->hooks->on_step;
        request.on_step_user = g->hooks->user;
        request.cancel = g->hooks->cancel_job ? cancel_one : NULL;
        request.cancel_user = &cancel;
    }
    double start = timer_seconds();
    int denoised = denoise_batch(&request, jobs, count);
    if (denoised >= 0) progress_end(&bar);
    if (denoised == DENOISE_CANCELLED) status = 0; /* no image, and the next jobs run */
    if (denoised) goto done;
    r->denoise_seconds += timer_seconds() - start;
    if (have_cache && cache_end(g, &run, &cache, mine, r)) goto done;
    start = timer_seconds();
    for (int j = 0; j < count; j++) /* a job cancelled on the way makes no image; the others theirs */
        if (!jobs[j].cancelled && finish_job(g, &in[j], total, r)) goto done;
    r->decode_seconds += timer_seconds() - start;
    if (g->hooks) {
        int64_t bytes = job_arena_bytes(&run, &scratch, in[0].text, in[0].have_text) + g->vae_peak_bytes +
                        (have_cache ? dit_step_cache_bytes(&cache) : 0);
        if (bytes > g->hooks->activation_peak_bytes) g->hooks->activation_peak_bytes = bytes;
        for (int64_t i = 0; i < run.moe.calls; i++, g->hooks->expert_calls++)
            if (g->hooks->expert_rows && g->hooks->expert_calls < g->hooks->expert_capacity)
                g->hooks->expert_rows[g->hooks->expert_calls] = run.moe.call_rows[i];
    }
    status = 0;
done:
    if (have_run) dit_run_free(&run);
    if (have_cache) dit_step_cache_free(&cache);
    for (int j = 0; j < count; j++) {
        for (int b = 0; b < 2; b++) {
            if (in[j].have_text[b]) dit_text_free(&in[j].text[b]);
            prompt_embeds_free(&in[j].embeds[b]);
        }
        free(in[j].latents);
    }
    arena_free(&scratch);
    return status;
}

/* The most device memory the run held (the bundle's counting view), and the blocks it streamed. */
static void note_device_memory(const generate_state *g, moedit_generate_result *r)
{
    if (!g->have_bundle) return;
    r->peak_device_bytes = backend_memory_peak(g->bundle.be);
    r->streamed_blocks = g->bundle.transformer.stream ? g->bundle.transformer.stream->streamed : 0;
    if (g->hooks) g->hooks->device_peak_bytes = r->peak_device_bytes;
}

/* A failed run frees its model even when asked to keep it: the device may be in a failed state. */
static void teardown(generate_state *g, int status)
{
    moe_routing_free(&g->routing);
    free(g->cache_replay);
    scheduler_free(&g->sched);
    generate_free_hidream_prompts(g);
    if (g->have_par) parallel_context_free(&g->par);
    if (g->have_bundle && g->hooks && g->bundle.be) g->bundle.be->ops->memory(g->bundle.be, &g->hooks->device_memory);
    if (g->have_bundle && status == 0 && g->hooks && g->hooks->keep_model)
        model_bundle_keep(&g->bundle, &g->bundle_options);
    else if (g->have_bundle)
        model_bundle_free(&g->bundle);
    free(g->condition_latents);
}

/* One "moedit: warning:" line each, on rank 0, once the model is loaded (so
 * that a run refused before then prints its error alone): a size past the
 * transformer's trained one, prompt words the demo-style (WordLevel)
 * tokenizer does not know, expert parallelism with nothing to split, a
 * tensor-parallel or Ulysses group across hosts (parallel/layout_hosts.h). Not
 * with --quiet, nor under moedit bench. */
static void warn_once(const generate_state *g)
{
    const moedit_generate_options *o = g->o;
    if (o->quiet || g->hooks || g->w->rank != 0) return;
    if (o->height * o->width > g->trained_pixels)
        fprintf(stderr, "moedit: warning: %lldx%lld is past the %lldx%lld this transformer was trained at (its "
                "max_resolution); expect repeated or broken shapes\n",
                (long long)o->width, (long long)o->height, (long long)g->trained_w, (long long)g->trained_h);
    const moedit_parallel *p = &o->parallel;
    if (p->expert_parallel && g->bundle.transformer.shard.ep_size == 1)
        fprintf(stderr, "moedit: warning: --enable-expert-parallel: the expert-parallel group (%s) is 1 rank, so "
                "there is nothing to split: every rank holds all %d experts\n",
                p->expert_parallel_scope == MOEDIT_EXPERT_SCOPE_WORLD ? "every rank"
                                                                     : "tensor x ulysses x ring ranks; "
                                                                       "--expert-parallel-scope world spans them all",
                g->bundle.transformer.cfg.num_routed_experts);
    char hosts[640];
    if (g->have_par && layout_host_warning(&g->par.layout, g->w->host_of, hosts, (int)sizeof hosts))
        fprintf(stderr, "moedit: warning: %s\n", hosts);
    if (!g->bundle.tok || o->prompt_embeds_path) return;
    char words[512] = "", list[256];
    int unknown = 0, count;
    for (int i = 0; i <= o->prompt_count; i++) {
        const char *text = i < o->prompt_count ? o->prompts[i] : o->negative_prompt;
        if (!text || tokenizer_unknown_words(g->bundle.tok, text, list, sizeof list, &count) || count == 0) continue;
        if (unknown && strlen(words) + strlen(list) + 3 < sizeof words) strcat(words, ", ");
        if (strlen(words) + strlen(list) + 1 < sizeof words) strcat(words, list);
        unknown += count;
    }
    if (unknown)
        fprintf(stderr, "moedit: warning: the model's tokenizer does not know %s (%d word%s of the prompts): it reads "
                "%s as its unknown token, so the picture leaves %s out\n",
                words, unknown, unknown == 1 ? "" : "s", unknown == 1 ? "it" : "them", unknown == 1 ? "it" : "them");
}

int generate_run(const moedit_generate_options *o, const generate_plan *plan, moedit_generate_result *r)
{
    double start = timer_seconds();
    generate_state g;
    memset(&g, 0, sizeof g);
    memset(r, 0, sizeof *r);
    g.o = o;
    const generate_condition *condition = plan->condition;
    const generate_output *output = plan->output;
    g.condition = condition;
    g.output = output;
    g.hooks = plan->hooks;
    g.frames = output ? output->frames : 1;
    g.w = runtime_world();
    const char *embeds_prompt[1] = {"(prompt embeddings from file)"};
    const char *const *prompts = o->prompt_count ? o->prompts : embeds_prompt;
    int prompt_count = o->prompt_count ? o->prompt_count : 1;
    /* Everything checked without weights; every rank then follows rank 0's
     * choice of a free output name (and all of them stop if one failed). A
     * writer's base output was checked by its caller (moedit_video decides
     * file or frames directory). */
    int status = validate_request(o, plan->command);
    int total = status == 0 ? prompt_count * (int)o->images_per_prompt : 0; /* checked: at most MOEDIT_MAX_OUTPUTS */
    if (status == 0 && output && o->batch_size > 1)
        status = error_set("--batch-size %lld: clips are denoised one at a time", (long long)o->batch_size);
    if (status == 0) status = expert_scope_check(o, total);
    if (status == 0) status = generate_choose_output_name(&g, total);
    if (status == 0) status = generate_check_output_paths(&g, total);
    if (status == 0) status = validate_sizes(&g);
    /* Rank 0 makes room (a frames directory's old frames) before the share,
     * which no rank passes before rank 0 reaches it: no file of the run is
     * written before the old ones are gone. */
    if (status == 0 && g.output && g.output->prepare && g.w->rank == 0)
        status = g.output->prepare(g.output, g.output_name, total);
    uint64_t shared[1] = {(uint64_t)g.name_suffix};
    if (world_agree_share(g.w, status, shared, 1)) return -1;
    if ((int)shared[0] != g.name_suffix) generate_use_name_suffix(&g, (int)shared[0]);
    status = setup(&g);
    r->load_seconds = timer_seconds() - start;
    if (status == 0) warn_once(&g);
    if (status == 0 && g.hooks && /* their caller (moedit serve) says it once for all its runs */
        !(g.have_par && layout_host_warning(&g.par.layout, g.w->host_of, g.hooks->host_warning,
                                            (int)sizeof g.hooks->host_warning)))
        g.hooks->host_warning[0] = 0;
    if (status == 0 && condition) status = encode_condition(&g, r);
    if (status == 0 && g.bundle.has_hidream) status = generate_encode_hidream_prompts(&g, r);
    int replicas = g.have_par ? g.par.layout.degrees.dp : 1, replica = g.have_par ? g.par.layout.dp_index : 0;
    /* This replica's jobs, --batch-size of them denoised together. */
    int batch = o->batch_size > 1 ? (int)o->batch_size : 1, count = 0;
    job_inputs *in = status == 0 ? calloc((size_t)batch, sizeof *in) : NULL;
    if (status == 0 && !in) status = error_set("out of memory for a batch of %d images", batch);
    for (int job = 0; job < total && status == 0; job++) {
        if (job % replicas != replica) continue;
        job_inputs *next = &in[count++];
        memset(next, 0, sizeof *next);
        next->job = job;
        next->prompt = prompts[job / o->images_per_prompt];
        generate_job_path(&g, job, total, next->path, sizeof next->path);
        next->seed = g.hooks && g.hooks->job_seeds ? g.hooks->job_seeds[job]
                                                   : o->seed + (uint64_t)(job % o->images_per_prompt);
        int last = job + replicas >= total;
        if (count == batch || last) {
            status = run_jobs(&g, in, count, total, r);
            count = 0;
        }
    }
    free(in);
    if (status == 0 && o->routing_capture && g.w->rank == 0) status = moe_routing_save(&g.routing, o->routing_capture);
    if (status != 0) generate_note_written(r);
    note_device_memory(&g, r);
    teardown(&g, status);
    r->total_seconds = timer_seconds() - start;
    return status;
}

int moedit_generate(const moedit_generate_options *o, moedit_generate_result *r)
{
    generate_plan plan = {"generate", NULL, NULL, NULL};
    return generate_run(o, &plan, r);
}

int generate_with_hooks(const moedit_generate_options *o, generate_hooks *hooks, moedit_generate_result *r)
{
    generate_plan plan = {"generate", NULL, NULL, hooks};
    return generate_run(o, &plan, r);
}

void moedit_generate_result_free(moedit_generate_result *r)
{
    for (int i = 0; i < r->count; i++) free(r->files[i]);
    free(r->files);
    free(r->seeds);
    free(r->cache_computed);
    r->files = NULL;
    r->seeds = NULL;
    r->cache_computed = NULL;
    r->count = 0;
}
