/* OCP FP8 conversions and per-row quantization; see float8.h. */
#include "core/float8.h"

#include <math.h>
#include <stddef.h>

float f8_e4m3_to_f32(uint8_t code)
{
    float sign = code & 0x80 ? -1.0f : 1.0f;
    int exponent = (code >> 3) & 0xF, mantissa = code & 0x7;
    if (exponent == 0xF && mantissa == 0x7) return sign * NAN;
    if (exponent == 0) return sign * ldexpf((float)mantissa, -9); /* m/8 * 2^-6 */
    return sign * ldexpf((float)(8 + mantissa), exponent - 10);  /* (1 + m/8) * 2^(e-7) */
}

float f8_e5m2_to_f32(uint8_t code)
{
    float sign = code & 0x80 ? -1.0f : 1.0f;
    int exponent = (code >> 2) & 0x1F, mantissa = code & 0x3;
    if (exponent == 0x1F) return mantissa ? sign * NAN : sign * INFINITY;
    if (exponent == 0) return sign * ldexpf((float)mantissa, -16); /* m/4 * 2^-14 */
    return sign * ldexpf((float)(4 + mantissa), exponent - 17);   /* (1 + m/4) * 2^(e-15) */
}

uint8_t f32_to_f8_e4m3(float x)
{
    uint8_t sign = signbit(x) ? 0x80 : 0x00;
    float a = fabsf(x);
    if (isnan(x)) return sign | 0x7F;
    if (a >= F8_E4M3_MAX) return sign | 0x7E;
    if (a < 0x1p-6f) /* subnormal: a multiple of 2^-9; 8 * 2^-9 is the first normal, code 0x08 */
        return sign | (uint8_t)nearbyintf(a * 512.0f);
    int e;
    frexpf(a, &e); /* a = f * 2^e, f in [0.5, 1): a in [2^(e-1), 2^e) */
    /* a / 2^(e-4) is in [8, 16): the mantissa with its leading one, rounded
     * to nearest even (exact: the division is by a power of two). 16 carries
     * into the next exponent, which the code's layout does by itself. */
    int significand = (int)nearbyintf(ldexpf(a, 4 - e));
    return sign | (uint8_t)(((e - 1 + 7) << 3) + (significand - 8));
}

void f8_e4m3_table(float table[256])
{
    for (int c = 0; c < 256; c++) table[c] = f8_e4m3_to_f32((uint8_t)c);
}

float f8_row_scale(float amax) { return amax > 0.0f ? amax / F8_E4M3_MAX : 1.0f; }

float f8_abs_max(const float *x, int64_t n)
{
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (isnan(a)) return a;
        if (a > amax) amax = a;
    }
    return amax;
}

void f8_quantize(const float *x, int64_t n, float scale, uint8_t *codes)
{
    for (int64_t i = 0; i < n; i++) codes[i] = f32_to_f8_e4m3(x[i] / scale);
}

void f8_quantize_rows(const float *x, int64_t rows, int64_t cols, uint8_t *codes, float *scales)
{
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
    for (int64_t r = 0; r < rows; r++) {
        scales[r] = f8_row_scale(f8_abs_max(x + r * cols, cols));
        f8_quantize(x + r * cols, cols, scales[r], codes + r * cols);
    }
}
