/* moedit_bench_transformer: times the transformer forward alone on random
 * inputs (latents, text embeddings, pooled embedding from Philox); see
 * moedit.h. The caption projections run once, outside the timed loop, as in
 * a real run where they are computed once per prompt. With a batch of 2 the
 * forward carries two samples with their own latents and text, as a CFG
 * step's two branches (dit_forward_batch). */
#include "bench/bench.h"

#include "backend/backend_memory.h"
#include "core/byte_size.h"
#include "core/error.h"
#include "core/philox.h"
#include "core/timer.h"
#include "dit/dit_flops.h"
#include "dit/dit_forward.h"
#include "pipelines/run_memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VAE_FACTOR 8

/* One sample's random inputs. */
typedef struct bench_inputs {
    float *latents, *t5, *llama, *pooled, *out;
    int64_t llama_layers;
    dit_text text;
    int encoded;
} bench_inputs;

static void free_inputs(bench_inputs *in)
{
    if (in->encoded) dit_text_free(&in->text);
    free(in->latents), free(in->t5), free(in->llama), free(in->pooled), free(in->out);
}

/* Sample `sample`'s inputs from its own Philox streams, its text encoded. */
static int make_inputs(bench_inputs *in, const dit_model *model, const moedit_transformer_bench_options *o,
                       int64_t latent_h, int64_t latent_w, int sample)
{
    const dit_config *cfg = &model->cfg;
    memset(in, 0, sizeof *in);
    for (int b = 0; b < dit_num_blocks(cfg); b++)
        if (cfg->llama_layers[b] + 1 > in->llama_layers) in->llama_layers = cfg->llama_layers[b] + 1;
    int64_t frames = o->frames;
    int64_t n_latents = frames * cfg->in_channels * latent_h * latent_w;
    int64_t n_t5 = o->t5_tokens * cfg->caption_channels_t5;
    int64_t n_llama = in->llama_layers * o->llama_tokens * cfg->caption_channels_llama;
    in->latents = malloc((size_t)n_latents * sizeof(float));
    in->out = malloc((size_t)(frames * cfg->out_channels * latent_h * latent_w) * sizeof(float));
    in->t5 = malloc((size_t)n_t5 * sizeof(float));
    in->llama = malloc((size_t)n_llama * sizeof(float));
    in->pooled = malloc((size_t)cfg->text_emb_dim * sizeof(float));
    if (!in->latents || !in->out || !in->t5 || !in->llama || !in->pooled) {
        free_inputs(in);
        return error_set("out of memory for benchmark inputs");
    }
    uint64_t stream = 1 + 4 * (uint64_t)sample;
    philox_fill_normal(o->seed, stream, 0, n_latents, in->latents);
    philox_fill_normal(o->seed, stream + 1, 0, n_t5, in->t5);
    philox_fill_normal(o->seed, stream + 2, 0, n_llama, in->llama);
    philox_fill_normal(o->seed, stream + 3, 0, cfg->text_emb_dim, in->pooled);
    dit_text_inputs text_in = {in->t5, o->t5_tokens, in->llama, in->llama_layers, o->llama_tokens, in->pooled};
    if (dit_text_encode(&in->text, model, &text_in)) {
        free_inputs(in);
        return -1;
    }
    in->encoded = 1;
    return 0;
}

static int load_model(dit_model *model, backend *be, const moedit_transformer_bench_options *o)
{
    dit_shard whole = {0, 1, 0, 1, NULL, NULL, 0, o->max_gpu_memory != NULL};
    if (dit_precision_parse(o->precision, o->device, &whole.fp8)) return -1;
    if (o->model_dir) return dit_model_load(model, be, o->model_dir, o->random_weights, o->seed, &whole);
    if (!o->config_path) return error_set("bench needs --model DIR or --config FILE");
    if (!o->random_weights) return error_set("--config %s needs --random-weights (a config has no weights)", o->config_path);
    dit_config cfg;
    if (dit_config_load(&cfg, o->config_path)) return -1;
    return dit_model_load_config(model, be, &cfg, NULL, 1, o->seed, &whole);
}

static int time_forwards(dit_run *run, bench_inputs *in, int count, const moedit_transformer_bench_options *o,
                         moedit_transformer_bench_result *r)
{
    backend *be = run->model->be;
    dit_sample samples[DIT_MAX_BATCH];
    for (int b = 0; b < count; b++) samples[b] = (dit_sample){&in[b].text, in[b].latents, in[b].out, b};
    double *times = calloc((size_t)o->iterations, sizeof(double));
    if (!times) return error_set("out of memory");
    for (int64_t i = 0; i < o->warmup + o->iterations; i++) {
        double start = timer_seconds();
        if (dit_forward_batch(run, samples, count, 500.0f)) {
            free(times);
            return -1;
        }
        be->ops->synchronize(be);
        if (i >= o->warmup) times[i - o->warmup] = 1e3 * (timer_seconds() - start);
    }
    r->median_ms = timer_percentile(times, o->iterations, 50);
    r->p10_ms = timer_percentile(times, o->iterations, 10);
    r->p90_ms = timer_percentile(times, o->iterations, 90);
    r->tflops = r->forward_flops / (r->median_ms * 1e-3) / 1e12;
    free(times);
    return 0;
}

/* --max-gpu-memory: the blocks placed once the inputs and the run's own
 * buffers are on the device, with room for a forward's scratch: the
 * transformer line of pipelines/run_memory.h over the whole sequence (text
 * tokens too: they dominate small images), in the device's dtype, three
 * times over, plus 3 MiB: the arena's blocks double from 1 MiB until one
 * holds the peak, so its first forward maps up to about three times it. */
static int place_blocks(dit_model *model, dit_run *run, const moedit_transformer_bench_options *o, int count)
{
    if (!o->max_gpu_memory) return 0;
    int64_t budget;
    if (byte_size_parse(o->max_gpu_memory, "--max-gpu-memory", &budget)) return -1;
    double share = (double)dtype_size(model->be->dtype) / 4.0;
    int64_t tokens = count * (run->image_tokens + o->t5_tokens + 2 * o->llama_tokens);
    int64_t scratch = (int64_t)(2 * share * run_memory_transformer_bytes(&model->cfg, tokens, 1)) + ((int64_t)3 << 20);
    return dit_weight_stream_place(model->stream, model->be, budget, o->max_gpu_memory,
                                   backend_memory_in_use(model->be), scratch, 0, NULL);
}

static int validate(const moedit_transformer_bench_options *o)
{
    if (o->height < VAE_FACTOR || o->width < VAE_FACTOR || o->height > MOEDIT_BENCH_MAX_SIDE ||
        o->width > MOEDIT_BENCH_MAX_SIDE || o->height % VAE_FACTOR || o->width % VAE_FACTOR)
        return error_set("--height/--width %lldx%lld: each must be a multiple of %d between %d and %d",
                         (long long)o->height, (long long)o->width, VAE_FACTOR, VAE_FACTOR, MOEDIT_BENCH_MAX_SIDE);
    if (o->iterations < 1 || o->iterations > MOEDIT_BENCH_MAX_REPEATS)
        return error_set("--iterations %lld: must be 1..%d", (long long)o->iterations, MOEDIT_BENCH_MAX_REPEATS);
    if (o->warmup < 0 || o->warmup > MOEDIT_BENCH_MAX_REPEATS)
        return error_set("--warmup %lld: must be 0..%d", (long long)o->warmup, MOEDIT_BENCH_MAX_REPEATS);
    int64_t tokens[2] = {o->t5_tokens, o->llama_tokens}; /* the CLI's --text-tokens sets both */
    for (int i = 0; i < 2; i++)
        if (tokens[i] < 1 || tokens[i] > MOEDIT_MAX_TEXT_TOKENS)
            return error_set("--text-tokens %lld: must be 1..%d", (long long)tokens[i], MOEDIT_MAX_TEXT_TOKENS);
    if (o->frames < 1 || o->frames > MOEDIT_MAX_FRAMES)
        return error_set("--num-frames %lld: must be 1..%d", (long long)o->frames, MOEDIT_MAX_FRAMES);
    if (o->batch < 1 || o->batch > 2) /* one image's CFG branches: what a transformer run holds by default */
        return error_set("--batch %lld: must be 1 or 2 (the two CFG branches)", (long long)o->batch);
    int64_t budget;
    if (o->max_gpu_memory && byte_size_parse(o->max_gpu_memory, "--max-gpu-memory", &budget)) return -1;
    return 0;
}

int moedit_bench_transformer(const moedit_transformer_bench_options *o, moedit_transformer_bench_result *r)
{
    memset(r, 0, sizeof *r);
    if (validate(o)) return -1;
    backend *device = backend_create(o->device);
    backend *be = device ? backend_memory_wrap(device) : NULL; /* counts the device memory held */
    if (!be) {
        backend_destroy(device);
        return -1;
    }
    dit_model model;
    double start = timer_seconds();
    if (load_model(&model, be, o)) {
        backend_destroy(be);
        backend_destroy(device);
        return -1;
    }
    r->load_seconds = timer_seconds() - start;
    const dit_config *cfg = &model.cfg;
    int64_t latent_h = o->height / VAE_FACTOR, latent_w = o->width / VAE_FACTOR;
    int count = (int)o->batch, made = 0;
    bench_inputs in[DIT_MAX_BATCH];
    dit_run run;
    int status = -1;
    while (made < count && make_inputs(&in[made], &model, o, latent_h, latent_w, made) == 0) made++;
    if (made < count) goto free_inputs;
    dit_run_shape shape = {latent_h, latent_w, 0, 0, o->t5_tokens, o->llama_tokens, o->frames};
    if (dit_run_init_shape(&run, &model, &shape, NULL)) goto free_inputs;
    if (place_blocks(&model, &run, o, count)) {
        dit_run_free(&run);
        goto free_inputs;
    }

    r->parameters = (long long)dit_parameter_count(cfg);
    r->active_parameters = (long long)dit_active_parameter_count(cfg);
    r->batch = count;
    r->image_tokens = (long long)run.image_tokens;
    r->text_tokens = (long long)(o->t5_tokens + 2 * o->llama_tokens);
    r->weight_mib = (double)model.weights.bytes_on_device / 1048576.0;
    r->forward_flops = count * dit_forward_flops(cfg, run.image_tokens, o->t5_tokens, o->llama_tokens);
    status = time_forwards(&run, in, count, o, r);
    r->scratch_peak_mib = (double)run.scratch.peak / 1048576.0;
    r->device_peak_mib = (double)backend_memory_peak(be) / 1048576.0;
    r->streamed_blocks = model.stream ? model.stream->streamed : 0;
    dit_run_free(&run);
free_inputs:
    for (int b = 0; b < made; b++) free_inputs(&in[b]);
    dit_model_free(&model);
    backend_destroy(be);
    backend_destroy(device);
    return status;
}
