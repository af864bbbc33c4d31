/* Under mpirun: every layout of tensor, Ulysses and ring parallelism over the
 * world's ranks gives the serial transformer output (max abs diff <= 1e-4 of
 * its scale) with identical routing: each rank first runs the serial
 * forward with routing capture, then the parallel forward replays it.
 * Random weights (tests/fixtures/dit_random: 8 heads, 8 experts), a non-square padded latent and
 * text lengths (7 and 5 tokens) that no rank count divides; then all again
 * with in-context tokens of a reference latent [4, 6, 6] (9 more tokens, a
 * segment of its own in the sequence split); then a clip of 3 such frames
 * (45 image tokens with RoPE ids (frame, row, col), unpadded: no rank count
 * divides them, so sequence parts cut across frames). Every EP layout runs
 * twice: experts placed in order, and placed by a scrambled order that
 * differs per block (moe_placement.expert_order). Then expert parallelism
 * over the world (DP2EP): the world split into data-parallel replicas of
 * tp x ulysses x ring ranks, each replica with inputs of its own (other
 * noise and text, and one T5 token fewer on odd replicas, so ranks bring
 * different row counts to the same MoE call), the experts spread over every
 * rank; each replica's output against the serial forward of its inputs.
 * Then everything again in
 * FP8 (--precision fp8, docs/fp8.md) against the serial FP8 forward: tp
 * splits the quantized weights and their scales, EP deals quantized
 * experts, row-parallel layers quantize with the whole row's scale. FP8
 * amplifies the last-bit differences of F32 sums in another order: an input
 * within an ulp of an E4M3 tie rounds the other way in one layout, a step of
 * 1/16 of the value, and the layers after it see inputs that differ enough
 * for more such flips. Most layouts see none and match to 1e-4 of the scale;
 * one that does must stay within FP8_FLIP_RMS relative rms of the serial FP8
 * output (at most 2.1% here: 3 of 54 FP8 layouts on 4 ranks flip, 14 of 91
 * on 8), below FP8's own 5.3% from F32. That each layer's shards quantize exactly as the serial layer does is
 * mpi_fp8_linear_layouts' check. */
#include "core/error.h"
#include "core/philox.h"
#include "dit/dit_forward.h"
#include "parallel/world.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#define LATENT_H 6
#define LATENT_W 10
#define T5_TOKENS 7
#define LLAMA_TOKENS 5
#define LLAMA_LAYERS 5
#define CONTEXT_H 6
#define CONTEXT_W 6
#define FRAMES 3
#define LATENTS (FRAMES * 4 * LATENT_H * LATENT_W)

typedef struct inputs {
    float latents[LATENTS]; /* an image uses the first frame */
    float t5[T5_TOKENS * 24];
    float llama[LLAMA_LAYERS * LLAMA_TOKENS * 20];
    float pooled[16];
    float context[4 * CONTEXT_H * CONTEXT_W];
} inputs;

static dit_config cfg;
static inputs in;
static int64_t t5_tokens = T5_TOKENS; /* of in.t5's rows, those the forward uses */
static enum { IMAGE, CONTEXT, VIDEO } mode;
static const char *const mode_names[] = {"", " context", " clip"};
static int fp8; /* the precision dimension: dit_shard.fp8 of every forward */
#define FP8_FLIP_RMS 0.03

/* One forward of the model sharded for `shard`, on the groups of `par`. */
static int forward(const dit_shard *shard, const dit_parallel *par, moe_routing *routing, float *out)
{
    backend *be = backend_cpu_create();
    dit_model model;
    dit_text text;
    dit_run run;
    int status = -1;
    dit_shard serial = {0, 1, 0, 1, NULL, NULL, fp8, 0};
    if (dit_model_load_config(&model, be, &cfg, NULL, 1, 7, shard ? shard : &serial)) goto done;
    dit_text_inputs text_in = {in.t5, t5_tokens, in.llama, LLAMA_LAYERS, LLAMA_TOKENS, in.pooled};
    if (dit_text_encode(&text, &model, &text_in) == 0) {
        dit_run_shape shape = {LATENT_H, LATENT_W, mode == CONTEXT ? CONTEXT_H : 0, mode == CONTEXT ? CONTEXT_W : 0,
                               t5_tokens, LLAMA_TOKENS, mode == VIDEO ? FRAMES : 1};
        if (dit_run_init_shape(&run, &model, &shape, par) == 0) {
            run.routing = routing;
            status = mode == CONTEXT ? dit_run_set_context(&run, in.context) : 0;
            if (status == 0) status = dit_forward(&run, &text, in.latents, 640.0f, out);
            dit_run_free(&run);
        }
        dit_text_free(&text);
    }
    dit_model_free(&model);
done:
    backend_destroy(be);
    return status;
}

/* Block b's experts in the order EP ranks hold them: e -> (3 e + b) mod E,
 * a permutation (3 and E = 8 are coprime) that puts other experts together. */
static int32_t scrambled[DIT_MAX_BLOCKS * 8];

static void check_degrees(const world *w, parallel_degrees degrees, const int32_t *order, const float *serial,
                          moe_routing *capture)
{
    parallel_context ctx;
    backend *be = backend_cpu_create();
    CHECK_MSG(parallel_context_init(&ctx, w, degrees, be) == 0, "%s", error_message());
    process_group *ep_group = degrees.expert_parallel && w->size > 1 ? ctx.groups[GROUP_EP] : NULL;
    dit_parallel par = {ctx.groups[GROUP_TP], ctx.groups[GROUP_ULYSSES], ctx.groups[GROUP_RING], ctx.groups[GROUP_SP],
                        ep_group};
    dit_shard shard = {ctx.layout.tp_index, ctx.layout.degrees.tp, ep_group ? ep_group->rank : 0,
                       ep_group ? ep_group->size : 1, order, NULL, fp8, 0};
    float out[LATENTS];
    capture->mode = ROUTING_REPLAY;
    int status = forward(&shard, &par, capture, out);
    char label[160], text[128];
    layout_describe(&ctx.layout.degrees, text, sizeof text);
    snprintf(label, sizeof label, "%s%s%s%s", text, ep_group && order ? " (scrambled placement)" : "", mode_names[mode],
             fp8 ? " fp8" : "");
    CHECK_MSG(status == 0, "%s: %s", label, error_message());
    long n = (mode == VIDEO ? FRAMES : 1) * 4 * LATENT_H * LATENT_W;
    double diff = test_max_abs_diff(out, serial, n), scale = test_max_abs(serial, n);
    double rms = test_relative_rms(out, serial, n);
    CHECK_MSG(diff <= 1e-4 * scale || (fp8 && rms <= FP8_FLIP_RMS),
              "%s (rank %d): max abs diff %.3g (scale %.3g), relative rms %.3g", label, w->rank, diff, scale, rms);
    if (w->rank == 0) printf("  %s: max abs diff %.3g (scale %.3g)", label, diff, scale);
    if (w->rank == 0) printf(diff <= 1e-4 * scale ? "\n" : " (FP8 rounding flips), relative rms %.3g\n", rms);
    parallel_context_free(&ctx);
    backend_destroy(be);
}

static void check_layout(const world *w, int tp, int ulysses, int ring, int ep, const int32_t *order,
                         const float *serial, moe_routing *capture)
{
    parallel_degrees degrees = {.tp = tp, .ulysses = ulysses, .ring = ring, .expert_parallel = ep};
    check_degrees(w, degrees, order, serial, capture);
}

static void fill_inputs(uint64_t seed)
{
    philox_fill_normal(seed, 1, 0, sizeof in.latents / 4, in.latents);
    philox_fill_normal(seed, 2, 0, sizeof in.t5 / 4, in.t5);
    philox_fill_normal(seed, 3, 0, sizeof in.llama / 4, in.llama);
    philox_fill_normal(seed, 4, 0, sizeof in.pooled / 4, in.pooled);
    philox_fill_normal(seed, 5, 0, sizeof in.context / 4, in.context);
}

/* DP2EP: replicas of tp x ulysses x ring ranks over the world, each with its
 * own inputs, the experts over every rank (see the top). */
static void check_world_ep(const world *w, int tp, int ulysses, int ring, const int32_t *order)
{
    int replica = w->rank / (tp * ulysses * ring);
    fill_inputs(3 + 10 * (uint64_t)replica);
    t5_tokens = T5_TOKENS - replica % 2;
    float serial[LATENTS];
    moe_routing capture;
    moe_routing_init(&capture, ROUTING_CAPTURE);
    CHECK_MSG(forward(NULL, NULL, &capture, serial) == 0, "serial of replica %d: %s", replica, error_message());
    parallel_degrees degrees = {.tp = tp, .ulysses = ulysses, .ring = ring, .dp = w->size / (tp * ulysses * ring),
                                .expert_parallel = 1, .expert_scope = EP_SCOPE_WORLD};
    check_degrees(w, degrees, order, serial, &capture);
    moe_routing_free(&capture);
    fill_inputs(3);
    t5_tokens = T5_TOKENS;
}

/* The serial FP8 forward is not the F32 one (the precision is in use), yet
 * near it: on these random weights, whose gate picks other experts for some
 * tokens once FP8 changes its input (each run routes freely), 5.3%. */
static void check_fp8_near_f32(const world *w, const float *fp8_out, const float *f32_out)
{
    double relative = test_relative_rms(fp8_out, f32_out, 4 * LATENT_H * LATENT_W);
    CHECK_MSG(relative > 1e-3 && relative < 0.25, "serial fp8 vs f32: relative rms difference %.3g", relative);
    if (w->rank == 0) printf("  serial fp8 vs f32: relative rms difference %.4f\n", relative);
}

int main(int argc, char **argv)
{
    world w;
    if (world_init(&w, &argc, &argv)) return 1;
    CHECK_MSG(dit_config_load(&cfg, MOEDIT_FIXTURES "/dit_random/config.json") == 0, "%s", error_message());
    CHECK(cfg.num_routed_experts == 8);
    for (int b = 0; b < DIT_MAX_BLOCKS; b++)
        for (int e = 0; e < 8; e++) scrambled[b * 8 + e] = (3 * e + b) % 8;
    fill_inputs(3);

    /* A placement that is not an order of the experts fails with the block's name. */
    static int32_t doubled[DIT_MAX_BLOCKS * 8];
    for (int i = 0; i < DIT_MAX_BLOCKS * 8; i++) doubled[i] = i % 8 == 7 ? 6 : i % 8;
    dit_shard bad = {0, 1, 1, 2, doubled, NULL, 0, 0};
    backend *cpu = backend_cpu_create();
    dit_model model;
    CHECK(dit_model_load_config(&model, cpu, &cfg, NULL, 1, 7, &bad) != 0);
    CHECK_MSG(strstr(error_message(), "not an order of the 8 experts (entry 7 is 6)") != NULL, "got: %s",
              error_message());
    backend_destroy(cpu);

    int layouts = 0;
    float serial_f32[LATENTS];
    for (fp8 = 0; fp8 <= 1; fp8++)
    for (mode = IMAGE; mode <= VIDEO; mode++) {
        float serial[LATENTS];
        moe_routing capture;
        moe_routing_init(&capture, ROUTING_CAPTURE);
        CHECK_MSG(forward(NULL, NULL, &capture, serial) == 0, "serial: %s", error_message());
        if (mode == IMAGE && !fp8) memcpy(serial_f32, serial, sizeof serial);
        if (mode == IMAGE && fp8) check_fp8_near_f32(&w, serial, serial_f32);
        for (int tp = 1; tp <= w.size; tp++)
            for (int ulysses = 1; tp * ulysses <= w.size; ulysses++) {
                if (w.size % (tp * ulysses) || cfg.heads % (tp * ulysses)) continue;
                for (int ep = 0; ep <= (w.size > 1); ep++) {
                    check_layout(&w, tp, ulysses, w.size / (tp * ulysses), ep, NULL, serial, &capture);
                    layouts++;
                }
                if (w.size > 1) {
                    check_layout(&w, tp, ulysses, w.size / (tp * ulysses), 1, scrambled, serial, &capture);
                    layouts++;
                }
            }
        moe_routing_free(&capture);
        /* DP2EP: every replica size that leaves at least two replicas (the
         * image: every split of a replica; context and clip: replicas of one rank). */
        for (int tp = 1; tp < w.size; tp++)
            for (int ulysses = 1; tp * ulysses < w.size; ulysses++)
                for (int ring = 1; tp * ulysses * ring < w.size; ring++) {
                    int replica = tp * ulysses * ring;
                    if (w.size % replica || cfg.heads % (tp * ulysses) || (mode != IMAGE && replica > 1)) continue;
                    check_world_ep(&w, tp, ulysses, ring, NULL);
                    layouts++;
                }
        if (w.size > 1) {
            check_world_ep(&w, 1, 1, 1, scrambled);
            layouts++;
        }
    }
    char name[64];
    snprintf(name, sizeof name, "mpi_dit_layouts (%d layouts, rank %d/%d)", layouts, w.rank, w.size);
    int status = test_finish(name);
    world_finalize(&w);
    return status;
}
