/* FP8 against PyTorch (tests/fixtures/fp8, tools/make_fp8_fixtures.py):
 * every one of the 256 codes of E4M3 and E5M2 decodes to torch's float32
 * value, directly and through a safetensors file of each dtype; E4M3
 * encoding (round to nearest even, saturating at 448) gives torch's codes
 * on every tie between neighbouring values, beside them and on wide random
 * values; the CPU backend's FP8 linear (per-channel weights, per-row
 * activations, docs/fp8.md) matches the fixture's rule computed in float64,
 * with the activations quantized by the op or beforehand by quantize_rows;
 * FP8 weights of published checkpoints load by their scale conventions
 * (io/fp8_weights.h: weight_scale per row, [rows, 1] or per tensor,
 * ComfyUI's scale_weight, none; E5M2 requantized), and a scale of another
 * shape is an error naming it. */
#include "backend/backend.h"
#include "core/error.h"
#include "core/float8.h"
#include "io/fp8_weights.h"
#include "io/safetensors.h"
#include "io/weights.h"
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

static tensor host(tensor_dtype dtype, int ndim, const int64_t *shape, void *data)
{
    tensor t = tensor_make(dtype, DEVICE_CPU, ndim, shape);
    t.data = data;
    return t;
}

static void test_published_conventions(void)
{
    uint8_t codes[12];
    for (int i = 0; i < 12; i++) codes[i] = (uint8_t)(0x30 + 6 * i); /* finite in both formats; one negative below */
    codes[5] |= 0x80;
    float row_scales[3] = {0.5f, 2.0f, 0.125f}, scalar = 0.25f, bad[2] = {1, 1};
    uint16_t bf16_scales[3] = {f32_to_bf16(0.5f), f32_to_bf16(4.0f), f32_to_bf16(1.0f)};
    int64_t wshape[2] = {3, 4}, rows[1] = {3}, column[2] = {3, 1}, one[1] = {1}, two[1] = {2};
    const char *names[] = {"a.weight", "a.weight_scale", "b.weight", "b.scale_weight", "c.weight", "c.weight_scale",
                           "d.weight", "d.weight_scale", "e.weight", "f.weight", "f.weight_scale"};
    tensor t[] = {host(DTYPE_F8_E4M3, 2, wshape, codes), host(DTYPE_F32, 1, rows, row_scales),
                  host(DTYPE_F8_E4M3, 2, wshape, codes), host(DTYPE_F32, 0, NULL, &scalar),
                  host(DTYPE_F8_E4M3, 2, wshape, codes), host(DTYPE_BF16, 2, column, bf16_scales),
                  host(DTYPE_F8_E5M2, 2, wshape, codes), host(DTYPE_F32, 1, one, &scalar),
                  host(DTYPE_F8_E4M3, 2, wshape, codes), host(DTYPE_F8_E4M3, 2, wshape, codes),
                  host(DTYPE_F32, 1, two, bad)};
    char path[] = "/tmp/moedit_test_fp8_conventions_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    safetensors *st = NULL;
    CHECK(safetensors_write(path, names, t, 11) == 0 && safetensors_open(&st, path) == 0);
    if (!st) return;
    const float a_scale[3] = {0.5f, 2.0f, 0.125f}, c_scale[3] = {0.5f, 4.0f, 1.0f};
    const char *weights[5] = {"a.weight", "b.weight", "c.weight", "d.weight", "e.weight"};
    for (int w = 0; w < 5; w++) {
        float values[12], scales[3], staging[12];
        uint8_t got[12];
        CHECK_MSG(fp8_read_dequantized(st, weights[w], 3, 4, values) == 0, "%s: %s", weights[w], error_message());
        int wrong = 0;
        for (int i = 0; i < 12; i++) {
            int r = i / 4;
            float code = w == 3 ? f8_e5m2_to_f32(codes[i]) : f8_e4m3_to_f32(codes[i]);
            float scale = w == 0 ? a_scale[r] : w == 2 ? c_scale[r] : w == 4 ? 1.0f : scalar;
            wrong += values[i] != code * scale;
        }
        CHECK_MSG(wrong == 0, "%s: %d values are not code * scale", weights[w], wrong);
        CHECK(fp8_read_quantized(st, weights[w], 3, 4, got, scales, staging) == 0);
        if (w != 3) { /* E4M3 as stored: the same codes, the scales per row */
            CHECK_MSG(!memcmp(got, codes, 12), "%s: codes were requantized", weights[w]);
            for (int r = 0; r < 3; r++) CHECK(scales[r] == (w == 0 ? a_scale[r] : w == 2 ? c_scale[r] : w == 4 ? 1 : scalar));
        } else { /* E5M2: its values quantized to E4M3 per row */
            uint8_t want[12];
            float want_scales[3];
            f8_quantize_rows(values, 3, 4, want, want_scales);
            CHECK(!memcmp(got, want, 12) && !memcmp(scales, want_scales, sizeof scales));
        }
    }
    CHECK(fp8_is_scale_name(st, "a.weight_scale") && fp8_is_scale_name(st, "b.scale_weight") &&
          !fp8_is_scale_name(st, "a.weight") && !fp8_is_scale_name(st, "x.weight_scale"));
    float values[12];
    CHECK(fp8_read_dequantized(st, "f.weight", 3, 4, values) != 0);
    CHECK_MSG(strstr(error_message(), "scale tensor \"f.weight_scale\" of the FP8 weight \"f.weight\"") != NULL, "got: %s",
              error_message());

    /* The loader: native precision dequantizes; fp8 keeps the stored codes and scales. */
    backend *be = backend_cpu_create();
    weight_loader wl;
    weight_loader_init(&wl, be, st, 0, 0);
    tensor native, quantized;
    CHECK(weight_load_linear(&wl, &native, "a.weight", 3, 4, shard_whole()) == 0 && native.dtype == DTYPE_F32);
    CHECK(((float *)native.data)[4] == f8_e4m3_to_f32(codes[4]) * 2.0f);
    wl.fp8 = 1;
    CHECK(weight_load_linear(&wl, &quantized, "a.weight", 3, 4, shard_whole()) == 0 && quantized.dtype == DTYPE_F8_E4M3);
    CHECK(!memcmp(quantized.data, codes, 12) && !memcmp(quantized.scale, a_scale, sizeof a_scale));
    weight_loader_free_all(&wl);
    backend_destroy(be);
    safetensors_close(st);
    unlink(path);
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
    test_published_conventions();
    safetensors_close(io);
    return test_finish("test_float8");
}
