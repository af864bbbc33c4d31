/* Row-parallel linear layers under FP8 (docs/fp8.md).
 *
 * A row-parallel layer (attention's to_out, a SwiGLU's w2 under tensor
 * parallelism) gets x[M, K / tp] on each rank: its rows are split by
 * columns. FP8 quantizes each activation row with the scale of the whole
 * row, amax / 448, so the ranks first max-reduce their rows' amax over the
 * tp group; each then quantizes its columns with that scale and every code
 * is the serial run's, so tensor-parallel FP8 runs match serial FP8 runs as
 * F32 ones do. Weights that are not FP8, or a group of one rank: the plain
 * product (the op quantizes whole rows itself). */
#ifndef MOEDIT_PARALLEL_FP8_ROWS_H
#define MOEDIT_PARALLEL_FP8_ROWS_H

#include "backend/arena.h"
#include "parallel/process_group.h"

/* y = x w^T + bias (backend.h linear) for x split by columns over tp. */
int fp8_row_parallel_linear(backend *be, arena *scratch, process_group *tp, tensor y, tensor x, tensor w,
                            tensor bias);

/* The same for backend.h linear_grouped (every group's weight of one dtype). */
int fp8_row_parallel_linear_grouped(backend *be, arena *scratch, process_group *tp, tensor y, tensor x,
                                    const tensor *w, const int64_t *offsets, int groups);

#endif
