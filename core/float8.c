/* OCP FP8 conversions and per-row quantization; see float8.h. */
#include "core/float8.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

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
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    uint8_t sign = (uint8_t)((bits >> 24) & 0x80);
    uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return sign | 0x7F;  /* NaN */
    if (magnitude >= 0x43e00000u) return sign | 0x7E; /* >= 448 (and infinity): saturate */
    if (magnitude < 0x3c800000u) {                    /* below 2^-6: a multiple of 2^-9 */
        float a;
        memcpy(&a, &magnitude, sizeof a);
        return sign | (uint8_t)lrintf(a * 512.0f); /* exact product; 8 is the first normal, code 0x08 */
    }
    /* Round the 23 mantissa bits to 3, to nearest even: add just under half
     * of the kept unit plus the kept unit's lowest bit; a carry moves into
     * the exponent, which the code's layout then shows as the next binade. */
    uint32_t rounded = magnitude + 0x7ffffu + ((magnitude >> 20) & 1u);
    uint32_t exponent = (rounded >> 23) - 127 + 7, mantissa = (rounded >> 20) & 7u;
    return sign | (uint8_t)((exponent << 3) | mantissa);
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
