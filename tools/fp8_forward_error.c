/* How far one FP8 transformer forward lands from the F32 one (docs/fp8.md):
 *   fp8_forward_error CONFIG.json [LATENT_SIDE [TEXT_TOKENS [SEED]]]
 * Random weights of the config (io/weights.h's fill, the same in both runs),
 * Philox inputs (latents LATENT_SIDE^2, default 32 = 256x256 pixels; T5 and
 * Llama embeddings of TEXT_TOKENS, default 64); timestep 500. Prints the
 * relative rms difference of the output, FP8 vs F32, with the F32 run's
 * routing replayed (the quantization alone) and with free routing (what a
 * user gets: FP8 may tip near-tied gates to other experts). CPU only. */
#include "core/error.h"
#include "core/philox.h"
#include "dit/dit_forward.h"
#include "tests/test_util.h" /* test_relative_rms */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct inputs {
    float *latents, *t5, *llama, *pooled;
    int64_t side, tokens, layers, n_out;
} inputs;

static int forward(const dit_config *cfg, const inputs *in, int fp8, uint64_t seed, moe_routing *routing, float *out,
                   double *weight_mib)
{
    backend *be = backend_cpu_create();
    dit_shard shard = {0, 1, 0, 1, NULL, NULL, fp8, 0};
    dit_model model;
    dit_text text;
    dit_run run;
    int status = dit_model_load_config(&model, be, cfg, NULL, 1, seed, &shard);
    if (status == 0) {
        *weight_mib = model.weights.bytes_on_device / 1048576.0;
        dit_text_inputs text_in = {in->t5, in->tokens, in->llama, in->layers, in->tokens, in->pooled};
        status = dit_text_encode(&text, &model, &text_in);
        if (status == 0) {
            status = dit_run_init(&run, &model, in->side, in->side, in->tokens, in->tokens, NULL);
            if (status == 0) {
                run.routing = routing;
                status = dit_forward(&run, &text, in->latents, 500.0f, out);
                dit_run_free(&run);
            }
            dit_text_free(&text);
        }
        dit_model_free(&model);
    }
    backend_destroy(be);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fp8_forward_error CONFIG.json [LATENT_SIDE [TEXT_TOKENS [SEED]]]\n");
        return 2;
    }
    dit_config cfg;
    if (dit_config_load(&cfg, argv[1])) {
        fprintf(stderr, "fp8_forward_error: %s\n", error_message());
        return 1;
    }
    inputs in = {0};
    in.side = argc > 2 ? atoll(argv[2]) : 32;
    in.tokens = argc > 3 ? atoll(argv[3]) : 64;
    uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 1;
    for (int b = 0; b < dit_num_blocks(&cfg); b++)
        if (cfg.llama_layers[b] + 1 > in.layers) in.layers = cfg.llama_layers[b] + 1;
    int64_t n_latents = cfg.in_channels * in.side * in.side, n_t5 = in.tokens * cfg.caption_channels_t5;
    int64_t n_llama = in.layers * in.tokens * cfg.caption_channels_llama;
    in.n_out = cfg.out_channels * in.side * in.side;
    in.latents = malloc((size_t)n_latents * sizeof(float));
    in.t5 = malloc((size_t)n_t5 * sizeof(float));
    in.llama = malloc((size_t)n_llama * sizeof(float));
    in.pooled = malloc((size_t)cfg.text_emb_dim * sizeof(float));
    float *f32 = malloc((size_t)in.n_out * sizeof(float)), *replayed = malloc((size_t)in.n_out * sizeof(float));
    float *free_run = malloc((size_t)in.n_out * sizeof(float));
    philox_fill_normal(seed, 1, 0, n_latents, in.latents);
    philox_fill_normal(seed, 2, 0, n_t5, in.t5);
    philox_fill_normal(seed, 3, 0, n_llama, in.llama);
    philox_fill_normal(seed, 4, 0, cfg.text_emb_dim, in.pooled);
    moe_routing capture;
    moe_routing_init(&capture, ROUTING_CAPTURE);
    double f32_mib = 0, fp8_mib = 0;
    int status = forward(&cfg, &in, 0, seed, &capture, f32, &f32_mib);
    capture.mode = ROUTING_REPLAY;
    if (status == 0) status = forward(&cfg, &in, 1, seed, cfg.num_routed_experts > 1 ? &capture : NULL, replayed, &fp8_mib);
    if (status == 0) status = forward(&cfg, &in, 1, seed, NULL, free_run, &fp8_mib);
    if (status) {
        fprintf(stderr, "fp8_forward_error: %s\n", error_message());
        return 1;
    }
    printf("%s, latent %lldx%lld, %lld text tokens, seed %llu: weights %.1f MiB (F32) -> %.1f MiB (FP8); output "
           "relative rms difference FP8 vs F32: %.4f with the F32 routing replayed, %.4f routed freely\n",
           argv[1], (long long)in.side, (long long)in.side, (long long)in.tokens, (unsigned long long)seed, f32_mib,
           fp8_mib, test_relative_rms(replayed, f32, in.n_out), test_relative_rms(free_run, f32, in.n_out));
    moe_routing_free(&capture);
    (void)test_failures; /* test_util.h's counter: no checks here */
    free(in.latents), free(in.t5), free(in.llama), free(in.pooled), free(f32), free(replayed), free(free_run);
    return 0;
}
