/* e^x for arrays of floats on the CPU, four at a time (GCC/Clang vector
 * extensions, so SSE2 on any x86-64 and NEON on arm64, without -march).
 * glibc's expf is scalar (~6 ns a value on the CI machine), and softmax and
 * SiLU spent most of their time in it. */
#ifndef MOEDIT_BACKEND_CPU_CPU_EXP_H
#define MOEDIT_BACKEND_CPU_CPU_EXP_H

#include <stdint.h>

/* x[i] = e^x[i]. Within 8.3e-8 relative of e^x for x in [-87.3, 88.3]
 * (measured against double exp over 2^24 values); 0 below -87.34 (where
 * expf would give subnormals), e^88.38 above 88.38 (where expf overflows a
 * little later). */
void cpu_exp_in_place(float *x, int64_t n);

/* out[i] = in[i] / (1 + e^-in[i]) * up[i] (SiLU, times up[i] when up is
 * not NULL: SwiGLU's gate), through the same lanes, so each value is the
 * scalar formula's on cpu_exp_in_place's e^-x, bit for bit. out may be in
 * or up. */
void cpu_silu_times(float *out, const float *in, const float *up, int64_t n);

/* Softmax of x[0, n) in place; returns the log-sum-exp (-inf for n = 0). The
 * maximum is subtracted first, e^x by cpu_exp_in_place's lanes, the
 * normaliser summed in double in four running sums (one chain of dependent
 * adds was most of the time); the result does not depend on the machine. */
float cpu_softmax_in_place(float *x, int64_t n);

#endif
