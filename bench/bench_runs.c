/* One run of one layout for moedit bench; see bench_layouts.h.
 *
 * With a model directory the run is moedit_generate itself, given the
 * layout's degrees and generate_hooks: the bench times exactly the code that
 * `moedit generate` runs. With a bare transformer config there is no VAE and
 * no text encoder, so the transformer runs alone, set up the way generate
 * sets it up (layout, shard, groups, Philox noise, scheduler, denoise loop),
 * on random weights and random prompt embeddings. */
#include "bench/bench_layouts.h"

#include "core/error.h"
#include "core/philox.h"
#include "io/safetensors.h"
#include "core/timer.h"
#include "dit/dit_forward.h"
#include "parallel/world.h"
#include "pipelines/denoise.h"
#include "pipelines/generate_hooks.h"
#include "pipelines/runtime.h"
#include "pipelines/scheduler.h"
#include "pipelines/step_cache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PROMPT "a red circle on a blue background"
#define VAE_FACTOR 8 /* transformer only: the latent grid of a standard VAE */

/* The probes: each group wrapped in a timer of its kind, each step recorded. */
static process_group *wrap_group(void *user, process_group *group)
{
    bench_rank_sample *s = user;
    for (int kind = 0; kind < GROUP_KINDS; kind++)
        if (!strcmp(group->name, layout_group_name((group_kind)kind))) return pg_create_timed(group, &s->groups[kind]);
    return group;
}

static void on_step(void *user, int step, double seconds)
{
    bench_rank_sample *s = user;
    if (step >= 0 && step < s->steps) s->step_seconds[step] = seconds;
}

static int run_generate(const bench_run_request *q, bench_rank_sample *s)
{
    const moedit_bench_options *o = q->options;
    const moedit_bench_layout *l = q->layout;
    parallel_degrees d = bench_layout_degrees(l, q->facts->world_size);
    const char *prompts[1] = {o->prompt ? o->prompt : DEFAULT_PROMPT};
    /* The warm-up and the timed run of a layout, and the layouts after it with
     * the same shard, share one loaded model. */
    generate_hooks hooks = {.user = s, .wrap_group = q->time_collectives ? wrap_group : NULL,
                            .on_step = q->probes ? on_step : NULL, .keep_model = 1,
                            .expert_rows = s->expert_rows, .expert_capacity = s->expert_calls};
    moedit_generate_options g = {
        .model_dir = o->model_dir, .prompts = prompts, .prompt_count = q->embeds_path ? 0 : 1,
        .prompt_embeds_path = q->embeds_path, .height = o->height, .width = o->width, .steps = q->steps,
        .guidance = o->guidance, .seed = o->seed, .images_per_prompt = l->images, .output = q->image_path,
        .latents_output = q->latents_path, .device = o->device, .precision = o->precision,
        .max_gpu_memory = o->max_gpu_memory,
        .random_weights = o->random_weights,
        .parallel = {d.tp, d.ulysses, d.ring, d.cfg, d.dp, d.expert_parallel, d.vae_patch, d.expert_scope},
        .routing_capture = q->routing_capture, .routing_replay = q->routing_replay,
        .expert_placement = q->expert_placement, .cache = o->cache, .quiet = 1,
    };
    g.cache.schedule_capture = q->cache_capture;
    g.cache.schedule_replay = q->cache_replay;
    moedit_generate_result r;
    int status = generate_with_hooks(&g, &hooks, &r);
    s->load_seconds = r.load_seconds;
    s->text_seconds = r.text_seconds;
    s->denoise_seconds = r.denoise_seconds;
    s->end_to_end_seconds = r.text_seconds + r.denoise_seconds + r.decode_seconds;
    s->vae_seconds = hooks.vae_seconds;
    s->weight_bytes = hooks.weight_bytes;
    s->expert_weight_bytes = hooks.expert_weight_bytes;
    s->activation_bytes = hooks.activation_peak_bytes;
    s->device_peak_bytes = hooks.device_peak_bytes;
    s->cache_computed = r.cache_computed_steps;
    s->cache_cached = r.cache_cached_steps;
    s->cache_flops_saved = r.cache_flops_saved;
    moedit_generate_result_free(&r);
    return status;
}

/* Host arrays of one branch's random prompt embeddings (branch 1: negative). */
typedef struct random_embeds {
    float *t5, *llama, *pooled;
    int64_t tokens, llama_layers;
} random_embeds;

static void random_embeds_free(random_embeds *e) { free(e->t5), free(e->llama), free(e->pooled); }

static int random_embeds_make(random_embeds *e, const dit_config *cfg, int64_t tokens, uint64_t seed, int branch)
{
    memset(e, 0, sizeof *e);
    for (int b = 0; b < dit_num_blocks(cfg); b++)
        if (cfg->llama_layers[b] + 1 > e->llama_layers) e->llama_layers = cfg->llama_layers[b] + 1;
    e->tokens = tokens;
    int64_t n_t5 = tokens * cfg->caption_channels_t5, n_llama = e->llama_layers * tokens * cfg->caption_channels_llama;
    e->t5 = malloc((size_t)n_t5 * sizeof(float));
    e->llama = malloc((size_t)n_llama * sizeof(float));
    e->pooled = malloc((size_t)cfg->text_emb_dim * sizeof(float));
    if (!e->t5 || !e->llama || !e->pooled) {
        random_embeds_free(e);
        return error_set("out of memory for random prompt embeddings");
    }
    uint64_t stream = 2 + 3 * (uint64_t)branch;
    philox_fill_normal(seed, stream, 0, n_t5, e->t5);
    philox_fill_normal(seed, stream + 1, 0, n_llama, e->llama);
    philox_fill_normal(seed, stream + 2, 0, cfg->text_emb_dim, e->pooled);
    return 0;
}

int bench_write_random_embeds(const char *path, const dit_config *cfg, int64_t tokens, uint64_t seed)
{
    random_embeds e[2];
    if (random_embeds_make(&e[0], cfg, tokens, seed, 0)) return -1;
    if (random_embeds_make(&e[1], cfg, tokens, seed, 1)) {
        random_embeds_free(&e[0]);
        return -1;
    }
    const char *names[6] = {"prompt_embeds_t5", "prompt_embeds_llama3", "pooled_prompt_embeds",
                            "negative_prompt_embeds_t5", "negative_prompt_embeds_llama3", "negative_pooled_prompt_embeds"};
    tensor t[6];
    for (int b = 0; b < 2; b++) {
        int64_t t5_shape[2] = {tokens, cfg->caption_channels_t5};
        int64_t llama_shape[3] = {e[b].llama_layers, tokens, cfg->caption_channels_llama};
        int64_t pooled_shape[1] = {cfg->text_emb_dim};
        t[3 * b] = tensor_make(DTYPE_F32, DEVICE_CPU, 2, t5_shape);
        t[3 * b + 1] = tensor_make(DTYPE_F32, DEVICE_CPU, 3, llama_shape);
        t[3 * b + 2] = tensor_make(DTYPE_F32, DEVICE_CPU, 1, pooled_shape);
        t[3 * b].data = e[b].t5, t[3 * b + 1].data = e[b].llama, t[3 * b + 2].data = e[b].pooled;
    }
    int status = safetensors_write(path, names, t, 6);
    random_embeds_free(&e[0]);
    random_embeds_free(&e[1]);
    return status;
}

/* Everything a transformer-only run holds, freed by transformer_free. */
typedef struct transformer_state {
    backend *be;
    dit_placement placement; /* the EP placement (empty without one) */
    parallel_context par;
    int have_par, have_model, have_run, have_text[2];
    dit_model model;
    dit_run run;
    dit_text text[2];
    random_embeds embeds[2];
    scheduler sched;
    moe_routing routing;
    dit_step_cache cache;
    int have_cache;
    float *latents;
    uint64_t seed; /* this replica's image: seed + its data-parallel index, as in generate */
} transformer_state;

static void transformer_free(transformer_state *t)
{
    free(t->latents);
    if (t->have_cache) dit_step_cache_free(&t->cache);
    moe_routing_free(&t->routing);
    scheduler_free(&t->sched);
    for (int b = 0; b < 2; b++) {
        if (t->have_text[b]) dit_text_free(&t->text[b]);
        random_embeds_free(&t->embeds[b]);
    }
    if (t->have_run) dit_run_free(&t->run);
    if (t->have_model) dit_model_free(&t->model);
    if (t->have_par) parallel_context_free(&t->par);
    backend_destroy(t->be);
    dit_placement_free(&t->placement);
}

/* Backend, groups (wrapped when probing) and this rank's shard of random weights. */
static int transformer_load(transformer_state *t, const bench_run_request *q, bench_rank_sample *s)
{
    const world *w = runtime_world();
    parallel_degrees d = bench_layout_degrees(q->layout, w->size);
    t->be = backend_create(q->options->device);
    if (!t->be || parallel_context_init(&t->par, w, d, t->be)) return -1;
    t->have_par = 1;
    for (int kind = 0; kind < GROUP_KINDS && q->probes && q->time_collectives; kind++)
        if (t->par.groups[kind] && !(t->par.groups[kind] = wrap_group(s, t->par.groups[kind]))) return -1;
    int ranks[LAYOUT_MAX_RANKS], ep_rank = 0;
    int ep_size = d.expert_parallel ? layout_group_ranks(&t->par.layout, GROUP_EP, w->rank, ranks) : 1;
    for (int i = 0; i < ep_size; i++)
        if (ranks[i] == w->rank) ep_rank = i;
    dit_shard shard = {t->par.layout.tp_index, d.tp, ep_rank, ep_size, NULL, NULL, 0, 0};
    if (dit_precision_parse(q->options->precision, q->options->device, &shard.fp8)) return -1;
    if (q->expert_placement && ep_size > 1) {
        if (dit_expert_placement(&t->placement, &q->facts->dit, q->expert_placement, ep_size, d.tp)) return -1;
        dit_shard_place(&shard, &t->placement);
    }
    if (dit_model_load_config(&t->model, t->be, &q->facts->dit, NULL, 1, q->options->seed, &shard)) return -1;
    t->have_model = 1;
    return 0;
}

/* The step cache of the run, deciding or replaying q's schedule. */
static int step_cache_prepare(transformer_state *t, const bench_run_request *q)
{
    if (!step_cache_enabled(&q->options->cache)) return 0;
    dit_cache_settings settings;
    uint8_t *replay = NULL;
    if (step_cache_settings(&q->options->cache, &t->model.cfg, &settings)) return -1;
    if (q->cache_replay && step_cache_schedule_load(q->cache_replay, (int)q->steps, &replay)) return -1;
    process_group *cfg = t->par.groups[GROUP_CFG];
    int status = dit_step_cache_init(&t->cache, &settings, t->be, t->model.cfg.dim, (int)q->steps, replay,
                                     cfg->size == 2 ? cfg : NULL);
    free(replay);
    if (status) return -1;
    t->have_cache = 1;
    t->run.step_cache = &t->cache;
    return 0;
}

/* Text of this rank's branches, the run, the schedule and the noise. */
static int transformer_prepare(transformer_state *t, const bench_run_request *q, int64_t latent_h, int64_t latent_w)
{
    const moedit_bench_options *o = q->options;
    process_group **g = t->par.groups;
    int guided = o->guidance > 1, branch = g[GROUP_CFG]->size == 2 ? g[GROUP_CFG]->rank : -1;
    for (int b = 0; b < 1 + guided; b++) {
        if (branch >= 0 && b != branch) continue;
        random_embeds *e = &t->embeds[b];
        if (random_embeds_make(e, &t->model.cfg, o->text_tokens, o->seed, b)) return -1;
        dit_text_inputs in = {e->t5, e->tokens, e->llama, e->llama_layers, e->tokens, e->pooled};
        if (dit_text_encode(&t->text[b], &t->model, &in)) return -1;
        t->have_text[b] = 1;
    }
    dit_parallel par = {g[GROUP_TP], g[GROUP_ULYSSES], g[GROUP_RING], g[GROUP_SP], t->model.shard.ep_size > 1 ? g[GROUP_EP] : NULL};
    if (dit_run_init(&t->run, &t->model, latent_h, latent_w, o->text_tokens, o->text_tokens, &par)) return -1;
    t->have_run = 1;
    moe_routing_init(&t->routing, q->routing_capture ? ROUTING_CAPTURE : q->routing_replay ? ROUTING_REPLAY : ROUTING_FREE);
    if (q->routing_replay && moe_routing_load(&t->routing, q->routing_replay)) return -1;
    t->run.routing = q->routing_capture || q->routing_replay ? &t->routing : NULL;
    if (step_cache_prepare(t, q)) return -1;
    /* As generate: mu from the transformer's max_seq when the schedule shifts dynamically. */
    scheduler_config sc;
    scheduler_config_default(&sc);
    const dit_config *cfg = &t->model.cfg;
    int64_t max_seq = (int64_t)cfg->max_resolution[0] * cfg->max_resolution[1] / ((int64_t)cfg->patch_size * cfg->patch_size);
    double mu = sc.use_dynamic_shifting ? scheduler_calculate_shift(max_seq, 256, 4096, 0.5, 1.15) : NAN;
    if (scheduler_set_timesteps_with_mu(&t->sched, &sc, (int)q->steps, mu, NULL, 0)) return -1;
    int64_t count = (int64_t)cfg->in_channels * latent_h * latent_w;
    t->latents = malloc((size_t)count * sizeof(float));
    if (!t->latents) return error_set("out of memory for latents");
    t->seed = o->seed + (uint64_t)t->par.layout.dp_index;
    philox_fill_normal(t->seed, 0, 0, count, t->latents);
    return 0;
}

static int save_latents(const char *path, const float *latents, int64_t channels, int64_t h, int64_t w)
{
    const char *name = "latents";
    int64_t shape[3] = {channels, h, w};
    tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, 3, shape);
    t.data = (void *)latents;
    return safetensors_write(path, &name, &t, 1);
}

static int run_transformer(const bench_run_request *q, bench_rank_sample *s)
{
    const moedit_bench_options *o = q->options;
    const world *w = runtime_world();
    int64_t latent_h = o->height / VAE_FACTOR, latent_w = o->width / VAE_FACTOR;
    transformer_state t;
    memset(&t, 0, sizeof t);
    double start = timer_seconds();
    int status = transformer_load(&t, q, s);
    s->load_seconds = timer_seconds() - start;
    int works = w->rank < q->layout->ranks; /* the other ranks are idle replicas */
    if (status == 0 && works) {
        start = timer_seconds();
        status = transformer_prepare(&t, q, latent_h, latent_w);
        s->text_seconds = timer_seconds() - start;
    }
    if (status == 0 && works) {
        process_group *cfg_group = t.par.groups[GROUP_CFG];
        int split = cfg_group->size == 2;
        denoise_request request = {.run = &t.run, .cond = t.have_text[0] ? &t.text[0] : NULL,
                                   .uncond = t.have_text[1] ? &t.text[1] : NULL, .guidance = o->guidance,
                                   .sched = &t.sched, .cfg = split ? cfg_group : NULL,
                                   .noise_seed = t.seed};
        if (q->probes) {
            request.on_step = on_step;
            request.on_step_user = s;
        }
        start = timer_seconds();
        status = denoise(&request, t.latents);
        s->denoise_seconds = timer_seconds() - start;
        s->end_to_end_seconds = s->text_seconds + s->denoise_seconds;
    }
    if (status == 0 && works && w->rank == 0 && q->latents_path)
        status = save_latents(q->latents_path, t.latents, t.model.cfg.in_channels, latent_h, latent_w);
    if (status == 0 && works && w->rank == 0 && q->routing_capture) status = moe_routing_save(&t.routing, q->routing_capture);
    if (status == 0 && t.have_cache) {
        moedit_generate_result figures;
        memset(&figures, 0, sizeof figures);
        status = step_cache_account(&figures, &t.cache, &t.model.cfg, t.run.image_tokens, o->text_tokens, o->text_tokens);
        s->cache_computed = figures.cache_computed_steps;
        s->cache_cached = figures.cache_cached_steps;
        s->cache_flops_saved = figures.cache_flops_saved;
        free(figures.cache_computed);
        if (status == 0 && w->rank == 0 && q->cache_capture) status = step_cache_schedule_save(q->cache_capture, &t.cache);
    }
    if (t.have_model) s->weight_bytes = t.model.weights.bytes_on_device;
    if (t.have_model) s->expert_weight_bytes = dit_model_expert_bytes(&t.model);
    if (t.have_run) {
        s->activation_bytes = (int64_t)(t.run.persistent.peak + t.run.scratch.peak) +
                              (t.have_cache ? dit_step_cache_bytes(&t.cache) : 0);
        for (int64_t i = 0; s->expert_rows && i < s->expert_calls && i < t.run.moe.calls; i++)
            s->expert_rows[i] = t.run.moe.call_rows[i];
        for (int b = 0; b < 2; b++)
            if (t.have_text[b]) s->activation_bytes += (int64_t)t.text[b].storage.peak;
    }
    transformer_free(&t);
    return status;
}

int bench_run(const bench_run_request *q, bench_rank_sample *s)
{
    return q->options->model_dir ? run_generate(q, s) : run_transformer(q, s);
}
