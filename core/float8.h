/* OCP 8-bit floating point (OFP8, v1.0), the formats of safetensors'
 * F8_E4M3 and F8_E5M2 and of Hopper's FP8 tensor cores.
 *
 *   E4M3 ("e4m3fn"): sign, 4 exponent bits (bias 7), 3 mantissa bits. No
 *     infinities; S.1111.111 (0x7F, 0xFF) is NaN, so the largest value is
 *     S.1111.110 = 1.75 * 2^8 = 448. Subnormals m/8 * 2^-6 (smallest 2^-9).
 *   E5M2: sign, 5 exponent bits (bias 15), 2 mantissa bits, IEEE-like:
 *     S.11111.00 is infinity, S.11111.{01,10,11} NaN, largest 57344,
 *     subnormals m/4 * 2^-14.
 * Decoding is exact (every code is an F32 value). Encoding to E4M3 rounds to
 * nearest, ties to even, and saturates: |x| >= 448 (and infinity) gives
 * +-448; NaN gives 0x7F with x's sign. That is torch's
 * x.clamp(-448, 448).to(torch.float8_e4m3fn) (torch itself turns values
 * from 464 up into NaN, hence the clamp).
 *
 * Per-row quantization (the FP8 linear layers, docs/fp8.md):
 *   scale[r] = amax_r / 448 in F32 (amax_r = max |x[r, :]|; 1 when it is 0)
 *   code[r, c] = e4m3(x[r, c] / scale[r])      (F32 division, rounded once) */
#ifndef MOEDIT_CORE_FLOAT8_H
#define MOEDIT_CORE_FLOAT8_H

#include <stdint.h>

#define F8_E4M3_MAX 448.0f

float f8_e4m3_to_f32(uint8_t code);
float f8_e5m2_to_f32(uint8_t code);
uint8_t f32_to_f8_e4m3(float x);

/* table[c] = the value of E4M3 code c, for the 256 codes (a lookup for loops). */
void f8_e4m3_table(float table[256]);

/* The scale of a row whose largest magnitude is amax: amax / 448, or 1 for a
 * zero row (its codes are all zero whatever the scale). */
float f8_row_scale(float amax);

/* max |x[i]| over n values (NaN if any is NaN). */
float f8_abs_max(const float *x, int64_t n);

/* codes[i] = e4m3(x[i] / scale) for n values. */
void f8_quantize(const float *x, int64_t n, float scale, uint8_t *codes);

/* A [rows, cols] matrix quantized row by row: scales[r] = f8_row_scale of
 * the row's amax, codes as f8_quantize. */
void f8_quantize_rows(const float *x, int64_t rows, int64_t cols, uint8_t *codes, float *scales);

#endif
