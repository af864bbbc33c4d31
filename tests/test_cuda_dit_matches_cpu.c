/* The transformer on the CUDA backend (BF16) matches the CPU backend (F32) on
 * the committed diffusers fixtures: every traced intermediate and the output,
 * measured as relative L2 error and PSNR against the CPU result's peak.
 *
 * BF16 gate logits may choose another expert where two nearly tie (dit_moe's
 * closest margin is 1e-3), so the checked comparison replays the CPU run's
 * routing on the GPU; the free-routing run is reported too, with how many
 * tokens chose differently. The CUDA output must also be bit-identical when
 * run again. Without a GPU the test exits 77 (ctest: skipped). */
#include "backend/cuda/backend_cuda.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "test_dit_fixture.h"

#include <stdlib.h>
#include <string.h>

#define MAX_RELATIVE_L2 3e-2
#define MIN_PSNR_DB 35.0
#define MAX_TRACES 64

typedef struct recorded {
    char name[64];
    float *values;
    int64_t n;
} recorded;

/* CPU run: records intermediates; CUDA run: compares against them. */
typedef struct tracer {
    backend *be;
    recorded traces[MAX_TRACES];
    int count;
    int comparing;
    double worst_relative;
} tracer;

typedef struct inputs {
    float *latents, *t5, *llama, *pooled, *want, *timestep;
    int64_t latent_shape[3], t5_shape[2], llama_shape[3], n_out;
} inputs;

static double relative_l2(const float *got, const float *want, int64_t n)
{
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        err += d * d;
        ref += (double)want[i] * want[i];
        if (d != d) return INFINITY;
    }
    return sqrt(err / (ref > 0 ? ref : 1));
}

/* 10 log10(peak^2 / mse), peak = max |want|. */
static double psnr(const float *got, const float *want, int64_t n)
{
    double mse = 0, peak = test_max_abs(want, n);
    for (int64_t i = 0; i < n; i++) mse += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
    mse /= (double)n;
    return mse > 0 ? 10.0 * log10(peak * peak / mse) : INFINITY;
}

static void report(const char *fixture, const char *what, const float *got, const float *want, int64_t n)
{
    printf("  %-10s %-34s rel L2 %-10.3g PSNR %6.1f dB  max |err| %.3g (scale %.3g)\n", fixture, what,
           relative_l2(got, want, n), psnr(got, want, n), test_max_abs_diff(got, want, n), test_max_abs(want, n));
}

static void on_trace(void *user, const char *name, tensor value)
{
    tracer *t = user;
    int64_t n = tensor_numel(&value);
    float *host = malloc((size_t)n * sizeof(float));
    t->be->ops->synchronize(t->be);
    t->be->ops->download(t->be, host, value);
    if (!t->comparing) {
        if (t->count == MAX_TRACES) {
            free(host);
            return;
        }
        recorded *r = &t->traces[t->count++];
        snprintf(r->name, sizeof r->name, "%s", name);
        r->values = host;
        r->n = n;
        return;
    }
    for (int i = 0; i < t->count; i++) {
        recorded *r = &t->traces[i];
        if (strcmp(r->name, name) != 0 || r->n != n) continue;
        double rel = relative_l2(host, r->values, n);
        if (rel > t->worst_relative) t->worst_relative = rel;
        report("", name, host, r->values, n);
    }
    free(host);
}

static int read_inputs(const char *dir, inputs *in)
{
    char path[600];
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    safetensors *io = NULL;
    if (safetensors_open(&io, path) != 0) return -1;
    int64_t n;
    in->latents = fixture_read(io, "latents", &n, in->latent_shape);
    in->t5 = fixture_read(io, "prompt_embeds_t5", &n, in->t5_shape);
    in->llama = fixture_read(io, "prompt_embeds_llama3", &n, in->llama_shape);
    in->pooled = fixture_read(io, "pooled_prompt_embeds", &n, NULL);
    in->want = fixture_read(io, "output", &in->n_out, NULL);
    in->timestep = fixture_read(io, "timestep", &n, NULL);
    safetensors_close(io);
    return in->latents && in->t5 && in->llama && in->pooled && in->want && in->timestep ? 0 : -1;
}

static void free_inputs(inputs *in)
{
    free(in->latents), free(in->t5), free(in->llama), free(in->pooled), free(in->want), free(in->timestep);
}

static int session_open(dit_session *s, backend *be, const char *dir, const inputs *in)
{
    dit_text_inputs text = {in->t5, in->t5_shape[0], in->llama, in->llama_shape[0], in->llama_shape[1], in->pooled};
    return dit_session_open(s, be, dir, NULL, &text, in->latent_shape[1], in->latent_shape[2], in->t5_shape[0],
                            in->llama_shape[1]);
}

/* Tokens whose chosen experts differ between two captures, over all layers. */
static int64_t routing_differences(const moe_routing *a, const moe_routing *b, int64_t *rows)
{
    int64_t differ = 0;
    *rows = 0;
    for (int i = 0; i < a->count; i++) {
        const routing_record *ra = &a->records[i];
        for (int j = 0; j < b->count; j++) {
            const routing_record *rb = &b->records[j];
            if (rb->layer != ra->layer || rb->rows != ra->rows || rb->top_k != ra->top_k) continue;
            for (int64_t r = 0; r < ra->rows; r++)
                differ += memcmp(ra->experts + r * ra->top_k, rb->experts + r * rb->top_k,
                                 (size_t)ra->top_k * sizeof(int32_t)) != 0;
            *rows += ra->rows;
        }
    }
    return differ;
}

static void check_fixture(backend *cpu, backend *gpu, const char *fixture)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", MOEDIT_FIXTURES, fixture);
    inputs in;
    memset(&in, 0, sizeof in);
    CHECK_MSG(read_inputs(dir, &in) == 0, "%s: inputs: %s", fixture, error_message());
    dit_session c, g;
    CHECK_MSG(session_open(&c, cpu, dir, &in) == 0, "%s on the CPU: %s", fixture, error_message());
    CHECK_MSG(session_open(&g, gpu, dir, &in) == 0, "%s on CUDA: %s", fixture, error_message());
    if (test_failures) {
        dit_session_close(&c);
        dit_session_close(&g);
        free_inputs(&in);
        return;
    }
    float *want = calloc((size_t)in.n_out, sizeof(float)), *got = calloc((size_t)in.n_out, sizeof(float));
    float *again = calloc((size_t)in.n_out, sizeof(float));
    int moe = c.model.cfg.num_routed_experts > 0;

    /* CPU: the reference, its routing captured and its intermediates kept. */
    tracer *t = calloc(1, sizeof *t);
    t->be = cpu;
    moe_routing cpu_routing;
    moe_routing_init(&cpu_routing, ROUTING_CAPTURE);
    c.run.routing = moe ? &cpu_routing : NULL;
    c.run.trace = on_trace;
    c.run.trace_user = t;
    CHECK_MSG(dit_forward(&c.run, &c.text, in.latents, in.timestep[0], want) == 0, "%s", error_message());

    /* CUDA with the CPU's routing: every intermediate and the output. */
    printf("%s: CUDA (BF16) against CPU (F32), CPU routing replayed:\n", fixture);
    cpu_routing.mode = ROUTING_REPLAY;
    t->be = gpu;
    t->comparing = 1;
    g.run.routing = moe ? &cpu_routing : NULL;
    g.run.trace = on_trace;
    g.run.trace_user = t;
    CHECK_MSG(dit_forward(&g.run, &g.text, in.latents, in.timestep[0], got) == 0, "%s", error_message());
    CHECK_MSG(backend_cuda_status(gpu) == 0, "%s", error_message());
    report(fixture, "output", got, want, in.n_out);
    double rel = relative_l2(got, want, in.n_out), db = psnr(got, want, in.n_out);
    CHECK_MSG(rel <= MAX_RELATIVE_L2, "%s: output relative L2 error %.3g > %.0e", fixture, rel, MAX_RELATIVE_L2);
    CHECK_MSG(db >= MIN_PSNR_DB, "%s: output PSNR %.1f dB < %.0f dB", fixture, db, MIN_PSNR_DB);
    CHECK_MSG(t->worst_relative <= MAX_RELATIVE_L2, "%s: an intermediate's relative L2 error is %.3g", fixture,
              t->worst_relative);
    report(fixture, "output vs diffusers (F32 torch)", got, in.want, in.n_out);
    report(fixture, "CPU output vs diffusers", want, in.want, in.n_out);

    /* Again: bit-identical. */
    g.run.trace = NULL;
    CHECK(dit_forward(&g.run, &g.text, in.latents, in.timestep[0], again) == 0);
    CHECK_MSG(memcmp(got, again, (size_t)in.n_out * sizeof(float)) == 0, "%s: CUDA output differs run to run",
              fixture);

    /* Free routing on the GPU: reported, not checked. */
    if (moe) {
        moe_routing gpu_routing;
        moe_routing_init(&gpu_routing, ROUTING_CAPTURE);
        g.run.routing = &gpu_routing;
        CHECK(dit_forward(&g.run, &g.text, in.latents, in.timestep[0], again) == 0);
        int64_t rows = 0, differ = routing_differences(&cpu_routing, &gpu_routing, &rows);
        report(fixture, "output, free GPU routing", again, want, in.n_out);
        printf("  %-10s %lld of %lld routed tokens chose other experts on the GPU\n", fixture, (long long)differ,
               (long long)rows);
        moe_routing_free(&gpu_routing);
    }
    CHECK_MSG(backend_cuda_status(gpu) == 0, "%s", error_message());

    for (int i = 0; i < t->count; i++) free(t->traces[i].values);
    free(t);
    moe_routing_free(&cpu_routing);
    free(want), free(got), free(again);
    dit_session_close(&c);
    dit_session_close(&g);
    free_inputs(&in);
}

int main(void)
{
    backend *gpu = backend_cuda_create(0);
    if (!gpu) {
        printf("test_cuda_dit_matches_cpu: skipped: %s\n", error_message());
        return 77;
    }
    backend *cpu = backend_cpu_create();
    check_fixture(cpu, gpu, "dit_moe");
    check_fixture(cpu, gpu, "dit_dense");
    backend_destroy(gpu);
    backend_destroy(cpu);
    return test_finish("test_cuda_dit_matches_cpu");
}
