/* The CPU's FP8 products: the reference the GPU FP8 path will be tested
 * against (docs/fp8.md). Weights are F8_E4M3 codes with F32 scales per
 * output channel; activations are quantized per row to E4M3 (core/float8.h)
 * unless they come quantized; the codes' values (exact in F32) are
 * multiplied by sgemm with F32 accumulation, and each output is scaled by
 * x_scale[m] * w_scale[n] afterwards, as an FP8 tensor-core GEMM does. */
#ifndef MOEDIT_BACKEND_CPU_CPU_FP8_H
#define MOEDIT_BACKEND_CPU_CPU_FP8_H

#include "core/tensor.h"

#include <stddef.h>

/* F32 scratch cpu_fp8_linear needs for x[M, K] (its decoded codes and a
 * band of the weight's decoded rows). */
size_t cpu_fp8_scratch_floats(int64_t m, int64_t k);

/* backend.h's linear for an F8_E4M3 weight w (x F32 or F8_E4M3). */
void cpu_fp8_linear(tensor y, tensor x, tensor w, tensor bias, float *scratch);

void cpu_fp8_row_abs_max(tensor amax, tensor x);
void cpu_fp8_quantize_rows(tensor q, tensor x, tensor amax);

#endif
