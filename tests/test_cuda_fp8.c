/* The CUDA FP8 path against the CPU's, the reference (docs/fp8.md):
 *
 *   1. row_abs_max and quantize_rows: the amax, scales and E4M3 codes equal
 *      the CPU's bit for bit, from F32 and from BF16 rows, on every tie
 *      between neighbouring E4M3 values and the values beside them,
 *      saturation (rows of scale 1 holding values past 448, infinities),
 *      NaNs of both signs, zero and negative-zero rows, F32 subnormals and
 *      random rows of magnitudes from 2^-20 to 2^20. (Not a row with an
 *      infinite amax: its scale is infinite and inf / inf is the platform's
 *      default NaN, negative on x86 and positive on the GPU.)
 *   2. linear with an F8_E4M3 weight (BF16 activations quantized by the op,
 *      or quantized first by quantize_rows: the same output bit for bit) and
 *      linear_grouped, against the CPU's FP8 linear on the same codes. The
 *      two differ only in how the exact products are summed and in CUDA's
 *      BF16 output, so each element must be within
 *        2^-8 (2 |want| + |bias|) + 2^-14 x_scale w_scale |x_code| |w_code|
 *      (BF16's half ulp is at most 2^-8 of the value, and the sum before
 *      the bias, |want - bias|, is rounded too where cuBLASLt adds the bias
 *      after the product; Hopper's FP8 tensor cores keep about 14
 *      bits of their partial sums between cuBLASLt's promotions to F32, and
 *      the vector norms bound the sum of |products|). An unquantized
 *      product, 3-4% off, is far outside. Shapes: cuBLASLt's (77x256x512,
 *      4096x2560x1024, M x K x N) and the plain kernel's (K = 40, which FP8
 *      cuBLASLt refuses: rows of 16-byte multiples).
 *   3. The dit_moe transformer loaded with --precision fp8 on both backends
 *      (weights quantized on the host alike), the CPU's routing replayed:
 *      the CUDA output within 3% relative rms of the CPU's FP8 output (the
 *      policy mpi_dit_layouts gives FP8 rounding flips; the CUDA BF16
 *      activations move some E4M3 roundings), and at most half its distance
 *      from the F32 model (the FP8 error is 6.1% there), so a GPU that ran
 *      without quantizing fails.
 *
 * Without a GPU the test exits 77 (ctest: skipped). */
#include "backend/backend.h"
#include "backend/cuda/backend_cuda.h"
#include "core/error.h"
#include "core/float8.h"
#include "core/philox.h"
#include "test_dit_fixture.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROW 256 /* columns of the quantization rows (a multiple of 8: BF16 rows take the 8-wide path) */
#define MAX_ROWS 64
#define DIT_MAX_RELATIVE_RMS 3e-2

/* A [rows, cols] tensor of dtype on be (with an F32 [rows] scale for F8), from host values (F8: codes). */
static tensor put(backend *be, tensor_dtype dtype, int64_t rows, int64_t cols, const void *host, const float *scales)
{
    tensor t = tensor_make_2d(dtype, be->device, rows, cols);
    t.data = be->ops->alloc(be, tensor_nbytes(&t) ? tensor_nbytes(&t) : 1);
    if (host) be->ops->upload(be, t, host);
    if (dtype == DTYPE_F8_E4M3) {
        tensor s = tensor_make_2d(DTYPE_F32, be->device, rows, 1);
        t.scale = s.data = be->ops->alloc(be, (size_t)rows * sizeof(float));
        if (scales) be->ops->upload(be, s, scales);
    }
    return t;
}

static void drop(backend *be, tensor t)
{
    be->ops->free(be, t.data);
    if (t.scale) be->ops->free(be, t.scale);
}

/* The tensor's values (F8: codes, then rows scales when scales is given) on the host. */
static void get(backend *be, tensor t, void *host, float *scales)
{
    be->ops->synchronize(be);
    be->ops->download(be, host, t);
    if (scales) {
        tensor s = tensor_make_2d(DTYPE_F32, be->device, tensor_rows(&t), 1);
        s.data = t.scale;
        be->ops->download(be, scales, s);
    }
}

static float bf16_round(float v) { return bf16_to_f32(f32_to_bf16(v)); }

static int same_bits(float a, float b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0; }

/* Rows that hold the rule's corner cases; returns the row count. */
static int corner_rows(float *x)
{
    float table[256];
    f8_e4m3_table(table);
    int rows = 0, at = ROW;
    /* Every tie between neighbouring positive codes and an F32 ulp either
     * side, both signs, in rows whose amax is 448: scale 1 exactly, so the
     * quotient is the value itself. */
    for (int c = 0; c < 0x7E; c++) {
        float mid = (table[c] + table[c + 1]) / 2, values[3] = {mid, nextafterf(mid, 0.0f), nextafterf(mid, 1e9f)};
        for (int v = 0; v < 3; v++)
            for (int sign = -1; sign <= 1; sign += 2) {
                if (at == ROW) {
                    at = 1;
                    x[rows++ * ROW] = 448.0f;
                }
                x[(rows - 1) * ROW + at++] = (float)sign * values[v];
            }
    }
    for (; at < ROW; at++) x[(rows - 1) * ROW + at] = table[at % 0x7F];
    /* NaN rows: scale 1 (amax NaN is not > 0), so values past 448 saturate
     * as they stand; a NaN of each sign. */
    static const float loud[] = {448.0f, 449.0f, 460.0f, 464.0f, 465.0f, 480.0f, 500.0f, 1e6f, 3e38f, 447.9f, 1e-40f};
    float *r = x + rows++ * ROW;
    for (int c = 0; c < ROW; c++) r[c] = (c % 2 ? -1.0f : 1.0f) * loud[c % 11];
    r[7] = NAN;
    r[8] = -NAN;
    r[9] = INFINITY;
    r[10] = -INFINITY;
    /* Zero rows, of +0 and of -0 (scale 1, codes 0x00 and 0x80). */
    memset(x + rows++ * ROW, 0, ROW * sizeof(float));
    r = x + rows++ * ROW;
    for (int c = 0; c < ROW; c++) r[c] = -0.0f;
    /* Subnormal quotients and F32 subnormals beside a large amax. */
    r = x + rows++ * ROW;
    for (int c = 0; c < ROW; c++) r[c] = ldexpf((float)(c % 17) - 8.0f, -(c % 13) - 8) * (c % 3 ? 1.0f : 1e-36f);
    r[0] = 3.0f;
    /* Random rows of magnitudes from 2^-20 to 2^20. */
    for (int i = 0; rows < MAX_ROWS; i++, rows++) {
        philox_fill_normal(7, 1, (uint64_t)i * ROW, ROW, x + rows * ROW);
        for (int c = 0; c < ROW; c++) x[rows * ROW + c] = ldexpf(x[rows * ROW + c], (i * 7) % 41 - 20);
    }
    return rows;
}

/* row_abs_max and quantize_rows of x (F32 or BF16 on the GPU) against the CPU's on the same values. */
static void check_quantize(backend *cpu, backend *gpu, const float *values, int rows, tensor_dtype dtype)
{
    const char *name = dtype_name(dtype);
    tensor cx = put(cpu, DTYPE_F32, rows, ROW, values, NULL), gx = put(gpu, dtype, rows, ROW, values, NULL);
    tensor ca = put(cpu, DTYPE_F32, rows, 1, NULL, NULL), ga = put(gpu, DTYPE_F32, rows, 1, NULL, NULL);
    tensor cq = put(cpu, DTYPE_F8_E4M3, rows, ROW, NULL, NULL), gq = put(gpu, DTYPE_F8_E4M3, rows, ROW, NULL, NULL);
    cpu->ops->row_abs_max(cpu, ca, cx);
    cpu->ops->quantize_rows(cpu, cq, cx, ca);
    gpu->ops->row_abs_max(gpu, ga, gx);
    gpu->ops->quantize_rows(gpu, gq, gx, ga);
    float want_amax[MAX_ROWS], got_amax[MAX_ROWS], want_scale[MAX_ROWS], got_scale[MAX_ROWS];
    uint8_t *want = malloc((size_t)rows * ROW), *got = malloc((size_t)rows * ROW);
    get(cpu, ca, want_amax, NULL);
    get(gpu, ga, got_amax, NULL);
    get(cpu, cq, want, want_scale);
    get(gpu, gq, got, got_scale);
    CHECK_MSG(backend_cuda_status(gpu) == 0, "%s", error_message());
    int bad = 0;
    for (int r = 0; r < rows; r++) {
        CHECK_MSG(same_bits(got_amax[r], want_amax[r]), "%s row %d: amax %a, CPU %a", name, r, got_amax[r],
                  want_amax[r]);
        CHECK_MSG(same_bits(got_scale[r], want_scale[r]), "%s row %d: scale %a, CPU %a", name, r, got_scale[r],
                  want_scale[r]);
        for (int c = 0; c < ROW; c++) {
            int64_t i = (int64_t)r * ROW + c;
            if (got[i] == want[i] || bad++ >= 10) continue;
            CHECK_MSG(0, "%s row %d col %d: %a / %a gives code 0x%02x, CPU 0x%02x", name, r, c, values[i],
                      want_scale[r], got[i], want[i]);
        }
    }
    CHECK_MSG(bad == 0, "%s: %d codes differ from the CPU's", name, bad);
    printf("  quantize_rows from %s: %d rows x %d, codes, scales and amax equal the CPU's: %s\n", name, rows, ROW,
           bad ? "no" : "yes");
    free(want), free(got);
    drop(cpu, cx), drop(gpu, gx), drop(cpu, ca), drop(gpu, ga), drop(cpu, cq), drop(gpu, gq);
}

static void test_quantize(backend *cpu, backend *gpu)
{
    float *x = calloc(MAX_ROWS * ROW, sizeof(float));
    int rows = corner_rows(x);
    check_quantize(cpu, gpu, x, rows, DTYPE_F32);
    for (int i = 0; i < rows * ROW; i++) x[i] = bf16_round(x[i]); /* the values a BF16 activation holds */
    check_quantize(cpu, gpu, x, rows, DTYPE_BF16);
    free(x);
}

/* One FP8 product's operands on the host: x (BF16 values, a zero row), the
 * weight's codes and scales, a bias (BF16 values). */
typedef struct product {
    int64_t m, k, n;
    float *x, *w_scales, *bias;
    uint8_t *w_codes;
} product;

static void product_make(product *p, int64_t m, int64_t k, int64_t n)
{
    p->m = m, p->k = k, p->n = n;
    p->x = malloc((size_t)(m * k) * sizeof(float));
    p->bias = malloc((size_t)n * sizeof(float));
    p->w_scales = malloc((size_t)n * sizeof(float));
    p->w_codes = malloc((size_t)(n * k));
    float *w = malloc((size_t)(n * k) * sizeof(float));
    philox_fill_normal(11, 2, 0, m * k, p->x);
    philox_fill_normal(11, 3, 0, n * k, w);
    philox_fill_normal(11, 4, 0, n, p->bias);
    for (int64_t i = 0; i < m * k; i++) p->x[i] = bf16_round(p->x[i] * (float)(1 + i / k % 5)); /* rows of 5 magnitudes */
    memset(p->x + (m > 3 ? 3 : 0) * k, 0, (size_t)k * sizeof(float));
    for (int64_t i = 0; i < n * k; i++) w[i] *= 0.05f;
    for (int64_t i = 0; i < n; i++) p->bias[i] = bf16_round(p->bias[i]);
    f8_quantize_rows(w, n, k, p->w_codes, p->w_scales);
    free(w);
}

static void product_free(product *p) { free(p->x), free(p->bias), free(p->w_scales), free(p->w_codes); }

/* Each element of got within the bound above of want (the CPU's y). */
static void check_close(const char *what, const product *p, const float *got, const float *want, int with_bias)
{
    float table[256], *x_scales = malloc((size_t)p->m * sizeof(float)), *x_norms = malloc((size_t)p->m * sizeof(float));
    float *w_norms = malloc((size_t)p->n * sizeof(float));
    uint8_t *x_codes = malloc((size_t)(p->m * p->k));
    f8_e4m3_table(table);
    f8_quantize_rows(p->x, p->m, p->k, x_codes, x_scales);
    for (int64_t r = 0; r < p->m + p->n; r++) {
        const uint8_t *codes = r < p->m ? x_codes + r * p->k : p->w_codes + (r - p->m) * p->k;
        double sum = 0;
        for (int64_t c = 0; c < p->k; c++) sum += (double)table[codes[c]] * table[codes[c]];
        *(r < p->m ? x_norms + r : w_norms + r - p->m) = (float)sqrt(sum);
    }
    double worst = 0, max_err = 0;
    int64_t bad = 0;
    for (int64_t i = 0; i < p->m; i++)
        for (int64_t j = 0; j < p->n; j++) {
            double want_v = want[i * p->n + j], err = fabs((double)got[i * p->n + j] - want_v);
            double bound = ldexp(2 * fabs(want_v) + (with_bias ? fabs(p->bias[j]) : 0), -8) +
                           ldexp((double)x_scales[i] * p->w_scales[j] * x_norms[i] * w_norms[j], -14) + 1e-30;
            if (!(err <= bound)) bad++;
            if (err / bound > worst || err != err) worst = err != err ? INFINITY : err / bound;
            if (err > max_err) max_err = err;
        }
    printf("  %-40s max |err| %.3g (scale %.3g), worst error / bound %.3g\n", what, max_err,
           test_max_abs(want, (long)(p->m * p->n)), worst);
    CHECK_MSG(bad == 0, "%s: %lld of %lld elements beyond the bound (worst %.3g of it)", what, (long long)bad,
              (long long)(p->m * p->n), worst);
    free(x_scales), free(x_norms), free(w_norms), free(x_codes);
}

static void test_linear(backend *cpu, backend *gpu, int64_t m, int64_t k, int64_t n)
{
    product p;
    product_make(&p, m, k, n);
    char what[96];
    float *want = malloc((size_t)(m * n) * sizeof(float)), *got = malloc((size_t)(m * n) * sizeof(float));
    float *again = malloc((size_t)(m * n) * sizeof(float));
    tensor cx = put(cpu, DTYPE_F32, m, k, p.x, NULL), gx = put(gpu, DTYPE_BF16, m, k, p.x, NULL);
    tensor cw = put(cpu, DTYPE_F8_E4M3, n, k, p.w_codes, p.w_scales);
    tensor gw = put(gpu, DTYPE_F8_E4M3, n, k, p.w_codes, p.w_scales);
    tensor cb = put(cpu, DTYPE_F32, n, 1, p.bias, NULL), gb = put(gpu, DTYPE_BF16, n, 1, p.bias, NULL);
    tensor cy = put(cpu, DTYPE_F32, m, n, NULL, NULL), gy = put(gpu, DTYPE_BF16, m, n, NULL, NULL);

    /* The op quantizing its BF16 input. */
    cpu->ops->linear(cpu, cy, cx, cw, cb);
    gpu->ops->linear(gpu, gy, gx, gw, gb);
    get(cpu, cy, want, NULL);
    get(gpu, gy, got, NULL);
    CHECK_MSG(backend_cuda_status(gpu) == 0, "%s", error_message());
    snprintf(what, sizeof what, "linear %lldx%lldx%lld", (long long)m, (long long)k, (long long)n);
    check_close(what, &p, got, want, 1);

    /* quantize_rows first (the row-parallel layers' way): the same codes, the same output. */
    tensor ga = put(gpu, DTYPE_F32, m, 1, NULL, NULL), gq = put(gpu, DTYPE_F8_E4M3, m, k, NULL, NULL);
    gpu->ops->row_abs_max(gpu, ga, gx);
    gpu->ops->quantize_rows(gpu, gq, gx, ga);
    gpu->ops->linear(gpu, gy, gq, gw, gb);
    get(gpu, gy, again, NULL);
    CHECK_MSG(memcmp(got, again, (size_t)(m * n) * sizeof(float)) == 0,
              "%s: the product of quantize_rows' codes differs from the op's own quantization", what);

    /* Grouped, no bias: groups of 13 rows, none, and the rest (a group whose
     * scales start off a 16-byte boundary). */
    if (m > 13) {
        int64_t offsets[4] = {0, 13, 13, m};
        tensor cws[3] = {cw, cw, cw}, gws[3] = {gw, gw, gw};
        cpu->ops->linear_grouped(cpu, cy, cx, cws, offsets, 3);
        gpu->ops->linear_grouped(gpu, gy, gx, gws, offsets, 3);
        get(cpu, cy, want, NULL);
        get(gpu, gy, got, NULL);
        CHECK_MSG(backend_cuda_status(gpu) == 0, "%s", error_message());
        snprintf(what, sizeof what, "linear_grouped %lldx%lldx%lld (13, 0, %lld)", (long long)m, (long long)k,
                 (long long)n, (long long)(m - 13));
        check_close(what, &p, got, want, 0);
    }
    drop(cpu, cx), drop(gpu, gx), drop(cpu, cw), drop(gpu, gw), drop(cpu, cb), drop(gpu, gb);
    drop(cpu, cy), drop(gpu, gy), drop(gpu, ga), drop(gpu, gq);
    free(want), free(got), free(again);
    product_free(&p);
}

/* One backend's FP8 model of the dit_moe fixture (weights quantized on the host alike). */
static int session_open(dit_session *s, backend *be, const dit_fixture *f)
{
    dit_shard fp8 = {.tp_size = 1, .ep_size = 1, .fp8 = 1};
    return dit_session_open(s, be, MOEDIT_FIXTURES "/dit_moe", &fp8, &f->text, f->latent_shape[1], f->latent_shape[2],
                            f->t5_shape[0], f->llama_shape[1]);
}

static void test_dit(backend *cpu, backend *gpu)
{
    safetensors *io = NULL;
    dit_fixture f;
    memset(&f, 0, sizeof f);
    CHECK_MSG(safetensors_open(&io, MOEDIT_FIXTURES "/dit_fp8/io.safetensors") == 0, "%s", error_message());
    if (!io) return;
    CHECK(dit_fixture_read(io, &f) == 0);
    float *f32 = fixture_read(io, "output_f32", NULL, NULL);
    CHECK(f32 != NULL);
    dit_session c, g;
    CHECK_MSG(session_open(&c, cpu, &f) == 0, "the FP8 dit_moe on the CPU: %s", error_message());
    CHECK_MSG(session_open(&g, gpu, &f) == 0, "the FP8 dit_moe on CUDA: %s", error_message());
    if (!test_failures) {
        int64_t n = f.n_output;
        float *want = calloc((size_t)n, sizeof(float)), *got = calloc((size_t)n, sizeof(float));
        float *again = calloc((size_t)n, sizeof(float));
        moe_routing routing;
        moe_routing_init(&routing, ROUTING_CAPTURE);
        c.run.routing = &routing;
        CHECK_MSG(dit_forward(&c.run, &c.text, f.latents, f.timestep[0], want) == 0, "%s", error_message());
        routing.mode = ROUTING_REPLAY;
        g.run.routing = &routing;
        CHECK_MSG(dit_forward(&g.run, &g.text, f.latents, f.timestep[0], got) == 0, "%s", error_message());
        CHECK_MSG(dit_forward(&g.run, &g.text, f.latents, f.timestep[0], again) == 0, "%s", error_message());
        CHECK_MSG(backend_cuda_status(gpu) == 0, "%s", error_message());
        double to_cpu = test_relative_rms(got, want, (long)n), to_f32 = test_relative_rms(got, f32, (long)n);
        printf("  dit_moe FP8 forward, CPU routing replayed: CUDA vs CPU FP8 relative rms %.3g (max |err| %.3g, "
               "scale %.3g); vs PyTorch FP8 %.3g; vs F32 %.3g (CPU FP8 vs F32 %.3g)\n",
               to_cpu, test_max_abs_diff(got, want, (long)n), test_max_abs(want, (long)n),
               test_relative_rms(got, f.output, (long)n), to_f32, test_relative_rms(want, f32, (long)n));
        CHECK_MSG(to_cpu <= DIT_MAX_RELATIVE_RMS, "dit_moe: CUDA FP8 output %.3g relative rms from the CPU's > %.0e",
                  to_cpu, DIT_MAX_RELATIVE_RMS);
        CHECK_MSG(to_cpu <= to_f32 / 2, "dit_moe: CUDA FP8 output %.3g from the CPU's FP8, %.3g from F32: not FP8?",
                  to_cpu, to_f32);
        CHECK_MSG(memcmp(got, again, (size_t)n * sizeof(float)) == 0, "dit_moe: CUDA FP8 output differs run to run");
        moe_routing_free(&routing);
        free(want), free(got), free(again);
    }
    dit_session_close(&c);
    dit_session_close(&g);
    free(f32);
    dit_fixture_free(&f);
    safetensors_close(io);
}

int main(void)
{
    backend *gpu = backend_cuda_create(0);
    if (!gpu) {
        printf("test_cuda_fp8: skipped: %s\n", error_message());
        return 77;
    }
    backend *cpu = backend_cpu_create();
    test_quantize(cpu, gpu);
    test_linear(cpu, gpu, 77, 256, 512);
    test_linear(cpu, gpu, 4096, 2560, 1024);
    test_linear(cpu, gpu, 5, 40, 24);
    test_dit(cpu, gpu);
    backend_destroy(gpu);
    backend_destroy(cpu);
    return test_finish("test_cuda_fp8");
}
