/* The CPU backend's matrix product: c[m, n] = alpha a[m, k] op(b) + beta c
 * (row-major; op(b) is b[k, n], or b[n, k] transposed when tb is CblasTrans),
 * cut into chunks chosen from the shape alone and shared by OpenMP threads,
 * so its bits never depend on the number of threads. See cpu_gemm.c. */
#ifndef MOEDIT_BACKEND_CPU_CPU_GEMM_H
#define MOEDIT_BACKEND_CPU_CPU_GEMM_H

#include <cblas.h>
#include <stdint.h>

void cpu_gemm(CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
              const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

#endif
