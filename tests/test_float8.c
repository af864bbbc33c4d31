/* FP8 against PyTorch (tests/fixtures/fp8, tools/make_fp8_fixtures.py):
 * every one of the 256 codes of E4M3 and E5M2 decodes to torch's float32
 * value, directly and through a safetensors file of each dtype; E4M3
 * encoding (round to nearest even, saturating at 448) gives torch's codes
 * on every tie between neighbouring values, beside them and on wide random
 * values; the CPU backend's FP8 linear (per-channel weights, per-row
 * activations, docs/fp8.md) matches the fixture's rule computed in float64,
 * with the activations quantized by the op or beforehand by quantize_rows. */
#include "backend/backend.h"
#include "core/float8.h"
#include "io/safetensors.h"
#include "test_fixture.h"
#include "test_util.h"

#include <string.h>
#include <unistd.h>

static int same_value(float a, float b) { return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b)); }

static void test_decode_every_code(const safetensors *io)
{
    float *e4m3 = fixture_read(io, "e4m3_values", NULL, NULL), *e5m2 = fixture_read(io, "e5m2_values", NULL, NULL);
    CHECK(e4m3 && e5m2);
    if (!e4m3 || !e5m2) return;
    int wrong4 = 0, wrong5 = 0;
    for (int c = 0; c < 256; c++) {
        wrong4 += !same_value(f8_e4m3_to_f32((uint8_t)c), e4m3[c]);
        wrong5 += !same_value(f8_e5m2_to_f32((uint8_t)c), e5m2[c]);
    }
    CHECK_MSG(wrong4 == 0, "%d E4M3 codes decode unlike torch", wrong4);
    CHECK_MSG(wrong5 == 0, "%d E5M2 codes decode unlike torch", wrong5);
    CHECK(f8_e4m3_to_f32(0x7E) == 448.0f && isnan(f8_e4m3_to_f32(0x7F)) && isnan(f8_e4m3_to_f32(0xFF)));
    CHECK(isinf(f8_e5m2_to_f32(0x7C)) && f8_e5m2_to_f32(0x7B) == 57344.0f);

    /* The same through a safetensors file holding all 256 codes in each dtype. */
    uint8_t codes[256];
    for (int c = 0; c < 256; c++) codes[c] = (uint8_t)c;
    int64_t n = 256;
    tensor t[2] = {tensor_make(DTYPE_F8_E4M3, DEVICE_CPU, 1, &n), tensor_make(DTYPE_F8_E5M2, DEVICE_CPU, 1, &n)};
    t[0].data = t[1].data = codes;
    const char *names[2] = {"e4m3", "e5m2"};
    char path[] = "/tmp/moedit_test_float8_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    safetensors *st = NULL;
    CHECK(safetensors_write(path, names, t, 2) == 0 && safetensors_open(&st, path) == 0);
    float read4[256], read5[256];
    CHECK(st && safetensors_read_f32(st, "e4m3", 1, &n, read4) == 0 && safetensors_read_f32(st, "e5m2", 1, &n, read5) == 0);
    CHECK(st && !strcmp(safetensors_dtype_of(st, "e4m3"), "F8_E4M3") && !strcmp(safetensors_dtype_of(st, "e5m2"), "F8_E5M2"));
    wrong4 = wrong5 = 0;
    for (int c = 0; st && c < 256; c++) wrong4 += !same_value(read4[c], e4m3[c]), wrong5 += !same_value(read5[c], e5m2[c]);
    CHECK_MSG(wrong4 == 0 && wrong5 == 0, "read back: %d E4M3 and %d E5M2 values differ", wrong4, wrong5);
    safetensors_close(st);
    unlink(path);
    free(e4m3);
    free(e5m2);
}

static void test_encode_like_torch(const safetensors *io)
{
    int64_t n = 0;
    float *inputs = fixture_read(io, "quant_inputs", &n, NULL);
    const safetensors_entry *codes = safetensors_find(io, "quant_codes");
    CHECK(inputs && codes && codes->dtype == DTYPE_F8_E4M3 && (int64_t)codes->nbytes == n && n > 1000);
    if (!inputs || !codes) return;
    int wrong = 0;
    for (int64_t i = 0; i < n; i++) {
        uint8_t want = ((const uint8_t *)codes->data)[i], got = f32_to_f8_e4m3(inputs[i]);
        if (got != want && wrong++ < 5) fprintf(stderr, "  e4m3(%.9g): 0x%02x, torch 0x%02x\n", inputs[i], got, want);
    }
    CHECK_MSG(wrong == 0, "%d of %lld encodings differ from torch", wrong, (long long)n);
    for (int c = 0; c < 256; c++) /* every finite code is its own encoding */
        if (!isnan(f8_e4m3_to_f32((uint8_t)c))) CHECK(f32_to_f8_e4m3(f8_e4m3_to_f32((uint8_t)c)) == c);
    CHECK(f8_row_scale(0.0f) == 1.0f && f8_row_scale(896.0f) == 2.0f);
    free(inputs);
}

/* The CPU linear with an F8 weight, x quantized by the op (quantized = 0) or by quantize_rows first. */
static void test_linear_matches_rule(const safetensors *io, int quantized)
{
    int64_t xs[2], ws[2], nx, nw;
    float *x = fixture_read(io, "linear_x", &nx, xs), *bias = fixture_read(io, "linear_bias", NULL, NULL);
    float *want = fixture_read(io, "linear_y", NULL, NULL), *w_scale = fixture_read(io, "linear_w_scale", NULL, NULL);
    float *w = fixture_read(io, "linear_w", &nw, ws);
    const safetensors_entry *w_codes = safetensors_find(io, "linear_w_codes");
    CHECK(x && bias && want && w_scale && w && w_codes);
    if (!x || !bias || !want || !w_scale || !w || !w_codes) return;
    int64_t m = xs[0], k = xs[1], n = ws[0];
    backend *be = backend_cpu_create();

    /* The loader's quantization of the weight is torch's. */
    uint8_t *codes = malloc((size_t)(n * k));
    float *scales = malloc((size_t)n * sizeof(float));
    f8_quantize_rows(w, n, k, codes, scales);
    CHECK(memcmp(codes, w_codes->data, (size_t)(n * k)) == 0 && memcmp(scales, w_scale, (size_t)n * sizeof(float)) == 0);

    tensor wt = tensor_make_2d(DTYPE_F8_E4M3, DEVICE_CPU, n, k);
    wt.data = codes;
    wt.scale = scales;
    tensor xt = tensor_make_2d(DTYPE_F32, DEVICE_CPU, m, k), bt = tensor_make(DTYPE_F32, DEVICE_CPU, 1, &n);
    xt.data = x;
    bt.data = bias;
    float *y = malloc((size_t)(m * n) * sizeof(float)), amax[64];
    uint8_t *x_codes = malloc((size_t)(m * k));
    float x_scales[64];
    tensor yt = tensor_make_2d(DTYPE_F32, DEVICE_CPU, m, n);
    yt.data = y;
    if (quantized) {
        tensor at = tensor_make_2d(DTYPE_F32, DEVICE_CPU, m, 1), qt = tensor_make_2d(DTYPE_F8_E4M3, DEVICE_CPU, m, k);
        at.data = amax;
        qt.data = x_codes;
        qt.scale = x_scales;
        be->ops->row_abs_max(be, at, xt);
        be->ops->quantize_rows(be, qt, xt, at);
        CHECK(x_scales[3] == 1.0f); /* the zero row */
        xt = qt;
    }
    be->ops->linear(be, yt, xt, wt, bt);
    double worst = test_max_abs_diff(y, want, (long)(m * n)), scale = test_max_abs(want, (long)(m * n));
    CHECK_MSG(worst <= 1e-5 * scale, "FP8 linear (%s): max |diff| %.3g (output max %.3g)",
              quantized ? "quantize_rows first" : "quantized by the op", worst, scale);
    backend_destroy(be);
    free(x), free(bias), free(want), free(w_scale), free(w), free(codes), free(scales), free(y), free(x_codes);
}

int main(void)
{
    safetensors *io = NULL;
    if (safetensors_open(&io, MOEDIT_FIXTURES "/fp8/io.safetensors") != 0) {
        fprintf(stderr, "cannot open the fixture (run tools/make_fp8_fixtures.py)\n");
        return 1;
    }
    test_decode_every_code(io);
    test_encode_like_torch(io);
    test_linear_matches_rule(io, 0);
    test_linear_matches_rule(io, 1);
    safetensors_close(io);
    return test_finish("test_float8");
}
