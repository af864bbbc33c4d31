/* When host loops over values are worth OpenMP threads: below this many
 * values a parallel region's start-up costs more than the loop (element-wise
 * conversions, patchify, the denoising loop's per-step work). */
#ifndef MOEDIT_CORE_HOST_PARALLEL_H
#define MOEDIT_CORE_HOST_PARALLEL_H

#define HOST_PARALLEL_MIN_VALUES (1 << 16)

#endif
