/* The CUDA backend computes the text encoders like the CPU backend.
 *
 * Ops: activation (each kind, with and without the gate), layer_norm (the
 * 8-wide and the scalar path, with and without a bias) and attention_bias
 * (T5's shape of head and T5-XXL's full shape, masked keys, a query whose
 * keys are all masked, one whose first half is masked; the default path,
 * the tensor-core flash kernel where it applies, and the two-product path
 * of MOEDIT_ATTENTION_BIAS=gemm) run on
 * the same BF16-rounded inputs on both backends; the CUDA result is within a
 * few BF16 roundings of the CPU's F32 result (elementwise 8e-3, norms 1e-2,
 * attention 2e-2 of the result's scale).
 * Encoders: the CLIP-L, CLIP-G and T5 fixtures (tests/fixtures/text_encoders)
 * on every fixture sequence, BF16 on the GPU against F32 on the CPU: a PSNR
 * of at least 40 dB (20 log10(max |cpu| / rms(gpu - cpu))) and an rms error
 * under 2% of the CPU result's rms. CLIP stays under 0.8%; T5 measured 1.0-1.6%
 * on an H100 (2026-12-07) while its wo was BF16; wo is now F32 on the GPU
 * too, as transformers keeps it under BF16 (_keep_in_fp32_modules), which
 * should bring T5 under 1% (not yet measured; tighten the bound when it
 * is). A table of the figures is printed.
 * Without a GPU the test exits 77 (ctest: skipped). */
#include "backend/backend.h"
#include "backend/cuda/backend_cuda.h"
#include "core/error.h"
#include "core/philox.h"
#include "test_fixture.h"
#include "test_util.h"
#include "text/clip_encoder.h"
#include "text/t5_encoder.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE MOEDIT_FIXTURES "/text_encoders"
#define SEED 8080u
#define TOL_ELEMENTWISE 8e-3
#define TOL_NORM 1e-2
#define TOL_ATTENTION 2e-2
#define MIN_PSNR_DB 40.0
#define MAX_RMS_RELATIVE 0.02

static backend *cpu, *gpu;
static uint64_t next_stream;

/* The same tensor on both backends (activation dtype unless f32). */
typedef struct pair {
    tensor c, g;
} pair;

static tensor storage(backend *be, int f32, int64_t rows, int64_t cols)
{
    tensor t = tensor_make_2d(f32 ? DTYPE_F32 : be->dtype, be->device, rows, cols);
    t.data = be->ops->alloc(be, tensor_nbytes(&t));
    if (!t.data) {
        fprintf(stderr, "test_cuda_text_encoders: %s\n", error_message());
        exit(2);
    }
    return t;
}

/* Standard normals * scale + offset, rounded to BF16 so both backends start equal. */
static pair random_pair(int f32, int64_t rows, int64_t cols, float scale, float offset)
{
    pair p = {storage(cpu, f32, rows, cols), storage(gpu, f32, rows, cols)};
    int64_t n = rows * cols;
    float *h = malloc((size_t)n * sizeof(float));
    philox_fill_normal(SEED, next_stream++, 0, n, h);
    for (int64_t i = 0; i < n; i++) h[i] = bf16_to_f32(f32_to_bf16(h[i] * scale + offset));
    cpu->ops->upload(cpu, p.c, h);
    gpu->ops->upload(gpu, p.g, h);
    free(h);
    return p;
}

static pair empty_pair(int64_t rows, int64_t cols)
{
    pair p = {storage(cpu, 0, rows, cols), storage(gpu, 0, rows, cols)};
    return p;
}

static void free_pair(pair p)
{
    cpu->ops->free(cpu, p.c.data);
    gpu->ops->synchronize(gpu);
    gpu->ops->free(gpu, p.g.data);
}

static float *fetch(backend *be, tensor t)
{
    float *h = malloc((size_t)tensor_numel(&t) * sizeof(float));
    be->ops->synchronize(be);
    be->ops->download(be, h, t);
    return h;
}

static void compare(const char *op, pair p, double tolerance)
{
    int64_t n = tensor_numel(&p.c);
    float *want = fetch(cpu, p.c), *got = fetch(gpu, p.g);
    double error = test_max_abs_diff(got, want, n), scale = test_max_abs(want, n);
    printf("  %-46s max |err| %-10.3g scale %-8.3g rel %-10.3g (tol %.0e)\n", op, error, scale,
           scale > 0 ? error / scale : error, tolerance);
    CHECK_MSG(error <= tolerance * scale, "%s: max |error| %.3g exceeds %.0e * scale %.3g", op, error, tolerance,
              scale);
    CHECK_MSG(gpu->ops->status(gpu) == 0, "%s: %s", op, error_message());
    free(want);
    free(got);
}

static void test_activation(void)
{
    const char *names[3] = {"activation gelu", "activation gelu_tanh", "activation quick_gelu"};
    for (int act = BACKEND_GELU; act <= BACKEND_QUICK_GELU; act++) {
        pair x = random_pair(0, 33, 100, 3.0f, 0.0f), up = random_pair(0, 33, 100, 1.0f, 0.0f), y = empty_pair(33, 100);
        cpu->ops->activation(cpu, y.c, x.c, tensor_none(), (backend_activation)act);
        gpu->ops->activation(gpu, y.g, x.g, tensor_none(), (backend_activation)act);
        compare(names[act], y, TOL_ELEMENTWISE);
        cpu->ops->activation(cpu, x.c, x.c, up.c, (backend_activation)act);
        gpu->ops->activation(gpu, x.g, x.g, up.g, (backend_activation)act);
        char what[64];
        snprintf(what, sizeof what, "%s * up, in place", names[act]);
        compare(what, x, TOL_ELEMENTWISE);
        free_pair(x);
        free_pair(up);
        free_pair(y);
    }
}

static void test_layer_norm(void)
{
    const int64_t widths[2] = {768, 45}; /* 8-wide BF16 accesses, then the scalar path */
    for (int i = 0; i < 2; i++) {
        int64_t cols = widths[i];
        pair x = random_pair(0, 13, cols, 2.0f, 5.0f), y = empty_pair(13, cols);
        pair w = random_pair(0, 1, cols, 0.3f, 1.0f), b = random_pair(0, 1, cols, 1.0f, 0.0f);
        char what[64];
        cpu->ops->layer_norm(cpu, y.c, x.c, w.c, b.c, 1e-5f);
        gpu->ops->layer_norm(gpu, y.g, x.g, w.g, b.g, 1e-5f);
        snprintf(what, sizeof what, "layer_norm C %lld", (long long)cols);
        compare(what, y, TOL_NORM);
        cpu->ops->layer_norm(cpu, y.c, x.c, w.c, tensor_none(), 1e-5f);
        gpu->ops->layer_norm(gpu, y.g, x.g, w.g, tensor_none(), 1e-5f);
        snprintf(what, sizeof what, "layer_norm C %lld, no bias", (long long)cols);
        compare(what, y, TOL_NORM);
        free_pair(x);
        free_pair(y);
        free_pair(w);
        free_pair(b);
    }
}

/* T5's attention: unscaled scores plus an F32 bias with masked keys. */
static void test_attention_bias(int heads, int d, int64_t s, float scale)
{
    int64_t width = (int64_t)heads * d;
    pair q = random_pair(0, s, width, 0.5f, 0.0f), k = random_pair(0, s, width, 0.5f, 0.0f);
    pair v = random_pair(0, s, width, 1.0f, 0.0f), out = empty_pair(s, width);
    pair bias = random_pair(1, heads * s, s, 2.0f, 0.0f);
    float *host = fetch(cpu, bias.c);
    for (int64_t r = 0; r < heads * s; r++)
        for (int64_t j = 0; j < s; j++)
            if (j >= s - s / 4 || r % s == 1 || (r % s == 2 && j < s / 2))
                host[r * s + j] += -FLT_MAX; /* padding; query 1 sees no key; query 2 not the first half */
    cpu->ops->upload(cpu, bias.c, host);
    gpu->ops->upload(gpu, bias.g, host);
    free(host);
    cpu->ops->attention_bias(cpu, out.c, q.c, k.c, v.c, bias.c, heads, scale);
    /* The flash kernel (BF16, D a multiple of 16) and the two products. */
    for (int path = 0; path < 2; path++) {
        setenv("MOEDIT_ATTENTION_BIAS", path ? "gemm" : "flash", 1);
        gpu->ops->attention_bias(gpu, out.g, q.g, k.g, v.g, bias.g, heads, scale);
        unsetenv("MOEDIT_ATTENTION_BIAS");
        char what[96];
        snprintf(what, sizeof what, "attention_bias H %d D %d S %lld scale %g (%s)", heads, d, (long long)s, scale,
                 path ? "gemm" : "flash");
        compare(what, out, TOL_ATTENTION);
    }
    free_pair(q);
    free_pair(k);
    free_pair(v);
    free_pair(out);
    free_pair(bias);
}

/* ---- whole encoders ------------------------------------------------------- */

static void compare_encoder(const char *what, const float *got, const float *want, int64_t n)
{
    double squares = 0, reference = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        squares += d * d;
        reference += (double)want[i] * want[i];
    }
    double rms_error = sqrt(squares / (double)n), rms = sqrt(reference / (double)n), peak = test_max_abs(want, n);
    double psnr = rms_error > 0 ? 20 * log10(peak / rms_error) : 999, relative = rms > 0 ? rms_error / rms : 0;
    printf("  %-34s PSNR %6.1f dB  rms rel %.2e  max |err| %.3g (scale %.3g)\n", what, psnr, relative,
           test_max_abs_diff(got, want, n), peak);
    CHECK_MSG(psnr >= MIN_PSNR_DB && relative < MAX_RMS_RELATIVE, "%s: PSNR %.1f dB, rms rel %.3g", what, psnr,
              relative);
}

static void test_clip(const safetensors *io, const char *model)
{
    char dir[512], name[128];
    snprintf(dir, sizeof dir, "%s/%s", FIXTURE, model);
    clip_encoder *on_cpu = NULL, *on_gpu = NULL;
    CHECK_MSG(clip_encoder_load(&on_cpu, dir, cpu, 0, 0) == 0, "%s", error_message());
    CHECK_MSG(clip_encoder_load(&on_gpu, dir, gpu, 0, 0) == 0, "%s", error_message());
    if (!on_cpu || !on_gpu) return;
    int p = clip_encoder_projection_dim(on_cpu);
    arena scratch_cpu, scratch_gpu;
    arena_init(&scratch_cpu, cpu);
    arena_init(&scratch_gpu, gpu);
    float *want = malloc((size_t)p * sizeof(float)), *got = malloc((size_t)p * sizeof(float));
    for (int i = 0;; i++) {
        int64_t count = 0;
        snprintf(name, sizeof name, "%s_ids_%d", model, i);
        int32_t *ids = fixture_read_i32(io, name, &count);
        if (!ids) break;
        CHECK_MSG(clip_encoder_forward(on_cpu, &scratch_cpu, ids, (int)count, want) == 0, "%s", error_message());
        CHECK_MSG(clip_encoder_forward(on_gpu, &scratch_gpu, ids, (int)count, got) == 0, "%s", error_message());
        snprintf(name, sizeof name, "%s %lld tokens", model, (long long)count);
        compare_encoder(name, got, want, p);
        free(ids);
    }
    free(want);
    free(got);
    arena_free(&scratch_cpu);
    arena_free(&scratch_gpu);
    clip_encoder_free(on_cpu);
    clip_encoder_free(on_gpu);
}

static void test_t5(const safetensors *io)
{
    char name[128];
    t5_encoder *on_cpu = NULL, *on_gpu = NULL;
    CHECK_MSG(t5_encoder_load(&on_cpu, FIXTURE "/t5", cpu, 0, 0) == 0, "%s", error_message());
    CHECK_MSG(t5_encoder_load(&on_gpu, FIXTURE "/t5", gpu, 0, 0) == 0, "%s", error_message());
    if (!on_cpu || !on_gpu) return;
    int c = t5_encoder_hidden_size(on_cpu);
    arena scratch_cpu, scratch_gpu;
    arena_init(&scratch_cpu, cpu);
    arena_init(&scratch_gpu, gpu);
    for (int i = 0;; i++) {
        int64_t count = 0, mask_count = 0;
        snprintf(name, sizeof name, "t5_ids_%d", i);
        int32_t *ids = fixture_read_i32(io, name, &count);
        if (!ids) break;
        snprintf(name, sizeof name, "t5_mask_%d", i);
        int32_t *mask = fixture_read_i32(io, name, &mask_count);
        float *want = malloc((size_t)(count * c) * sizeof(float)), *got = malloc((size_t)(count * c) * sizeof(float));
        CHECK_MSG(t5_encoder_forward(on_cpu, &scratch_cpu, ids, (int)count, mask, want) == 0, "%s", error_message());
        CHECK_MSG(t5_encoder_forward(on_gpu, &scratch_gpu, ids, (int)count, mask, got) == 0, "%s", error_message());
        int ones = 0;
        for (int64_t t = 0; t < count; t++) ones += mask[t];
        snprintf(name, sizeof name, "t5 %lld tokens (%d unmasked)", (long long)count, ones);
        compare_encoder(name, got, want, count * c);
        free(ids);
        free(mask);
        free(want);
        free(got);
    }
    arena_free(&scratch_cpu);
    arena_free(&scratch_gpu);
    t5_encoder_free(on_cpu);
    t5_encoder_free(on_gpu);
}

int main(void)
{
    gpu = backend_cuda_create(0);
    if (!gpu) {
        printf("test_cuda_text_encoders: skipped: %s\n", error_message());
        return 77;
    }
    cpu = backend_cpu_create();
    printf("text-encoder ops, CUDA against CPU:\n");
    test_activation();
    test_layer_norm();
    test_attention_bias(4, 64, 77, 1.0f);
    test_attention_bias(3, 8, 130, 0.35f);
    test_attention_bias(64, 64, 128, 1.0f); /* T5-XXL's */
    test_attention_bias(2, 128, 200, 0.2f);
    test_attention_bias(5, 16, 33, 1.0f);
    printf("encoders, CUDA (BF16) against CPU (F32):\n");
    safetensors *io = NULL;
    CHECK_MSG(safetensors_open(&io, FIXTURE "/io.safetensors") == 0, "%s", error_message());
    if (io) {
        test_clip(io, "clip_l");
        test_clip(io, "clip_g");
        test_t5(io);
        safetensors_close(io);
    }
    CHECK_MSG(gpu->ops->status(gpu) == 0, "%s", error_message());
    backend_destroy(cpu);
    backend_destroy(gpu);
    return test_finish("test_cuda_text_encoders");
}
