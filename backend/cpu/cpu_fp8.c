/* FP8 linear layers on the CPU; see cpu_fp8.h and docs/fp8.md.
 *
 *   x_scale[m] = amax(x[m, :]) / 448 (1 for a zero row), x_code = e4m3(x / x_scale)
 *   y[m, n]   = (sum_k x_code[m, k] * w_code[n, k]) * (x_scale[m] * w_scale[n]) + bias[n]
 *
 * Products of two E4M3 values are exact in F32, so the only rounding besides
 * the quantization is the F32 accumulation (sgemm's order; a GPU kernel
 * sums in its own order). The weight is decoded band by band
 * (WEIGHT_BAND rows) so its F32 copy never exists whole: the model holds 1
 * byte per weight plus a scale per row. */
#include "backend/cpu/cpu_fp8.h"

#include "backend/cpu/cpu_gemm.h"
#include "core/float8.h"

#include <assert.h>
#include <string.h>

#define WEIGHT_BAND 512

size_t cpu_fp8_scratch_floats(int64_t m, int64_t k) { return (size_t)(m * k + m + WEIGHT_BAND * k); }

/* values[m, :] = the decoded codes of x's row m (quantized here when x is F32); scales[m] its scale. */
static void decode_activations(tensor x, const float *table, float *values, float *scales)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float *out = values + r * cols;
        if (x.dtype == DTYPE_F8_E4M3) {
            const uint8_t *codes = (const uint8_t *)x.data + r * cols;
            for (int64_t c = 0; c < cols; c++) out[c] = table[codes[c]];
            scales[r] = ((const float *)x.scale)[r];
            continue;
        }
        const float *in = (const float *)x.data + r * cols;
        float scale = f8_row_scale(f8_abs_max(in, cols));
        for (int64_t c = 0; c < cols; c++) out[c] = table[f32_to_f8_e4m3(in[c] / scale)];
        scales[r] = scale;
    }
}

static void decode_weight_band(const uint8_t *codes, int64_t rows, int64_t cols, const float *table, float *out)
{
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) out[r * cols + c] = table[codes[r * cols + c]];
}

void cpu_fp8_linear(tensor y, tensor x, tensor w, tensor bias, float *scratch)
{
    int64_t m = tensor_rows(&x), k = tensor_cols(&x), n = tensor_rows(&w);
    assert(w.dtype == DTYPE_F8_E4M3 && w.scale && (x.dtype == DTYPE_F32 || (x.dtype == DTYPE_F8_E4M3 && x.scale)));
    assert(tensor_cols(&w) == k && tensor_rows(&y) == m && tensor_cols(&y) == n);
    if (m == 0) return;
    float table[256];
    f8_e4m3_table(table);
    float *x_values = scratch, *x_scales = scratch + m * k, *band = x_scales + m, *out = y.data;
    const float *w_scales = w.scale, *b = bias.data;
    decode_activations(x, table, x_values, x_scales);
    for (int64_t first = 0; first < n; first += WEIGHT_BAND) {
        int64_t rows = n - first < WEIGHT_BAND ? n - first : WEIGHT_BAND;
        decode_weight_band((const uint8_t *)w.data + first * k, rows, k, table, band);
        cpu_gemm(CblasTrans, m, rows, k, 1.0f, x_values, k, band, k, 0.0f, out + first, n);
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            out[i * n + j] = out[i * n + j] * (x_scales[i] * w_scales[j]) + (b ? b[j] : 0.0f);
}

void cpu_fp8_row_abs_max(tensor amax, tensor x)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    float *out = amax.data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) out[r] = f8_abs_max((const float *)x.data + r * cols, cols);
}

void cpu_fp8_quantize_rows(tensor q, tensor x, tensor amax)
{
    int64_t rows = tensor_rows(&x), cols = tensor_cols(&x);
    assert(q.dtype == DTYPE_F8_E4M3 && q.scale && tensor_rows(&q) == rows && tensor_cols(&q) == cols);
    float *scales = q.scale;
    const float *a = amax.data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        scales[r] = f8_row_scale(a[r]);
        f8_quantize((const float *)x.data + r * cols, cols, scales[r], (uint8_t *)q.data + r * cols);
    }
}
